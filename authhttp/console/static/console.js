// authd console: a little script that only enhances what works without it.
// No inline script anywhere (the Content-Security-Policy forbids it).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Copy buttons: hidden without script, since only script can copy.
  document.querySelectorAll("button[data-copy]").forEach(function (b) {
    var target = document.getElementById(b.getAttribute("data-copy"));
    var status = b.parentElement.querySelector(".copied");
    if (!target || !navigator.clipboard) return;
    b.hidden = false;
    b.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent).then(function () {
        if (status) status.textContent = "Copied.";
      }, function () {
        if (status) status.textContent = "Could not copy: select the text and copy it.";
      });
    });
  });
  // Confirm dialogs for actions without a confirmation page of their own;
  // and one submission per form, so a double click does not act twice.
  document.querySelectorAll("form").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      var question = f.getAttribute("data-confirm");
      if (question && !window.confirm(question)) {
        e.preventDefault();
        return;
      }
      if (f.method.toLowerCase() === "post") {
        if (f.dataset.sent) { e.preventDefault(); return; }
        f.dataset.sent = "1";
      }
    });
  });
  // A page restored from the back-forward cache may post again.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form").forEach(function (f) { delete f.dataset.sent; });
  });
});
