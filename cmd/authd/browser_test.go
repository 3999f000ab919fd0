package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testdb"
)

// The admin console in a real browser: headless Chromium (Debian's
// chromium package; .ci/run installs it) driven with chromedp against a
// running authd, as a person uses it. Screenshots of every page are taken;
// with AUTHSVC_TEST_SCREENSHOTS=1 they are written to docs/admin/ (the
// pictures of docs/admin.md), else to a temporary folder.

// findChromium returns the browser to drive, or skips the test when there
// is none (unless AUTHSVC_TEST_REQUIRE_CHROMIUM=1, which fails it).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("AUTHSVC_TEST_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("Chromium is required (AUTHSVC_TEST_REQUIRE_CHROMIUM=1) but none is installed: apt-get install chromium")
	}
	t.Skip("Chromium not installed: the browser test is skipped (apt-get install chromium)")
	return ""
}

// browserSession is a browser on one authd.
type browserSession struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string // where screenshots go
}

// do runs actions, failing the test on an error.
func (b *browserSession) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// load runs actions that navigate (a link, a form) and returns the status
// of the page they end on (after redirects).
func (b *browserSession) load(what string, actions ...chromedp.Action[chromedp.Void]) int64 {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, actions...)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return resp.Status
}

// open navigates to a console path and wants status 200.
func (b *browserSession) open(path string) {
	b.t.Helper()
	if st := b.load("open "+path, chromedp.Navigate(b.base+path)); st != http.StatusOK {
		b.t.Fatalf("open %s: status %d", path, st)
	}
}

func (b *browserSession) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func (b *browserSession) location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	return strings.TrimPrefix(loc, b.base)
}

// eval runs JavaScript in the page (through DevTools: the page's CSP does
// not apply to it); a promise is waited for.
func eval[T any](b *browserSession, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// rowIDs are the data-client-id of the client rows on the page.
func (b *browserSession) rowIDs() []string {
	b.t.Helper()
	return eval[[]string](b, `Array.from(document.querySelectorAll("tr[data-client-id]"), r => r.dataset.clientId)`)
}

// shot saves a screenshot of the whole page as name.png: a real picture
// of some size (the page rendered, with its style sheet).
func (b *browserSession) shot(name string) {
	b.t.Helper()
	buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err == nil && len(buf) > maxShot {
		// A long page: its first screenful keeps the docs small.
		buf, err = chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	}
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		b.t.Fatalf("screenshot %s is no PNG: %v", name, err)
	}
	if w := img.Bounds().Dx(); w < 300 {
		b.t.Fatalf("screenshot %s is %d pixels wide", name, w)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// maxShot bounds a screenshot's size, so that docs/admin stays small.
const maxShot = 140 << 10

// cookie returns the browser's cookie of that name for the console.
func (b *browserSession) cookie(name string) *network.Cookie {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.base + "/admin/clients"}})
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// TestConsoleInBrowser: sign in, create a client and read its secret once,
// search, edit, rotate, log out everywhere, rotate the signing key, read
// the activity and health, delete, sign out; a form posted without the
// CSRF token, or from another origin, is refused; the cookie's flags; a
// demoted admin's session ends on the next click; the keyboard alone signs
// in; the pages at phone width.
func TestConsoleInBrowser(t *testing.T) {
	chromium := findChromium(t)
	cfg := config{
		Addr: "127.0.0.1:0", DatabaseURL: testdb.SQLite(t), Issuer: "http://authd.test", TokenTTL: time.Hour, SigningAlg: "EdDSA",
		BootstrapClientID: "root", BootstrapClientSecret: adminSecret, LogFormat: "json", LogLevel: "info",
		ShutdownTimeout: 5 * time.Second, JWKSMaxAge: 5 * time.Minute, PollInterval: time.Second, MaxStaleness: 30 * time.Second,
		StoreTimeout: 5 * time.Second, MaxRevocations: 10000, MaxChanges: 1000000, Throttle: "on", AdminConsole: "on",
	}
	logs := &testdb.LogBuffer{}
	ap, _ := serveForTest(t, cfg, logs)
	base := "http://" + ap.ln.Addr().String()

	shots := t.TempDir()
	if os.Getenv("AUTHSVC_TEST_SCREENSHOTS") == "1" {
		shots = filepath.Join("..", "..", "docs", "admin")
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.WindowSize(1100, 800), chromedp.Flag("lang", "en-US"))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil { // starts the browser, without a deadline
		t.Fatalf("start Chromium: %v", err)
	}
	// A guard, not an assertion: a hung browser fails the test instead of
	// holding CI until its own limit.
	tctx, cancelRun := context.WithTimeout(bctx, 3*time.Minute)
	defer cancelRun()
	b := &browserSession{t: t, ctx: tctx, base: base, shots: shots}
	b.do("viewport", chromedp.EmulateViewport(1100, 800))
	// The clipboard API works only in a focused page; a headless browser's
	// page may not be (the copy button then says it could not copy).
	if _, err := chromedp.Call(tctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
		t.Fatalf("focus emulation: %v", err)
	}

	// Answer the confirm dialogs the script adds, as a person clicking OK.
	dialogs := chromedp.Events(tctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(tctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	// The copy button writes to the clipboard, and the test reads it back.
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(tctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name}, Setting: browser.PermissionSettingGranted, Origin: base,
		}); err != nil {
			t.Fatalf("clipboard permission: %v", err)
		}
	}

	// Signed out, /admin is the sign-in page.
	b.open("/admin")
	if loc := b.location(); loc != "/admin/signin" {
		t.Fatalf("/admin signed out went to %s", loc)
	}
	b.shot("signin")
	// A wrong secret: said next to the field, nothing set.
	st := b.load("wrong secret", chromedp.SendKeys(chromedp.ID("client_id"), "root"),
		chromedp.SendKeys(chromedp.ID("client_secret"), "not the secret of root"), chromedp.Submit(chromedp.CSS("form")))
	if st != http.StatusUnauthorized || b.text("#client_secret-error") != "⚠ Wrong client ID or secret." && b.text("#client_secret-error") != "Wrong client ID or secret." {
		t.Fatalf("wrong secret: %d %q", st, b.text("#client_secret-error"))
	}
	if b.cookie("authsvc_console") != nil {
		t.Fatal("a session cookie after a wrong secret")
	}

	// Sign in (the client_id kept its value, the secret was not sent back):
	// the cookie's flags.
	if v, _ := chromedp.Run(b.ctx, chromedp.Value(chromedp.ID("client_id"))); v != "root" {
		t.Fatalf("client_id after a refusal: %q", v)
	}
	if v, _ := chromedp.Run(b.ctx, chromedp.Value(chromedp.ID("client_secret"))); v != "" {
		t.Fatal("the secret typed is sent back")
	}
	if st := b.load("sign in", chromedp.SendKeys(chromedp.ID("client_secret"), adminSecret), chromedp.Submit(chromedp.CSS("form"))); st != http.StatusOK {
		t.Fatalf("sign in: %d", st)
	}
	if loc := b.location(); loc != "/admin/clients" {
		t.Fatalf("signed in at %s", loc)
	}
	ck := b.cookie("authsvc_console")
	if ck == nil || !ck.HTTPOnly || ck.SameSite != network.CookieSameSiteStrict || ck.Path != "/admin" || ck.Secure {
		t.Fatalf("session cookie %+v", ck)
	}
	if got := eval[string](b, `document.cookie`); strings.Contains(got, "authsvc_console") {
		t.Fatalf("script can read the session cookie: %q", got)
	}
	if ids := b.rowIDs(); !slices.Equal(ids, []string{"root"}) {
		t.Fatalf("clients: %v", ids)
	}

	// Create a client: its secret is shown once, and copied by the button.
	b.open("/admin/clients/new")
	b.shot("new-client")
	b.do("fill the new client", chromedp.SendKeys(chromedp.ID("client_id"), "notes"),
		chromedp.SendKeys(chromedp.ID("scope"), "notes:read notes:write"),
		chromedp.SendKeys(chromedp.ID("audience"), "https://notes.internal"))
	if st := b.load("create", chromedp.Click(chromedp.CSS(`form[action$="/clients/new"] button[type=submit]`))); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	secret := b.text("[data-secret]")
	if len(secret) != 43 {
		t.Fatalf("secret %q", secret)
	}
	b.shot("secret")
	b.do("copy", chromedp.Click(chromedp.CSS("button[data-copy]")))
	got, err := chromedp.Run(b.ctx, chromedp.Poll[string](`document.querySelector(".copied").textContent`))
	if err != nil || got != "Copied." {
		t.Fatalf("copy button: %q", got)
	}
	if got := eval[string](b, `navigator.clipboard.readText()`); got != secret {
		t.Fatalf("clipboard holds %q", got)
	}
	if st, body := postForm(t, base+"/auth", url.Values{"client_id": {"notes"}, "client_secret": {secret}}, ""); st != 200 {
		t.Fatalf("the secret shown does not work: %d %v", st, body)
	}
	for _, path := range []string{"/admin/client?id=notes", "/admin/clients", "/admin/activity"} {
		b.open(path)
		if html := eval[string](b, `document.documentElement.outerHTML`); strings.Contains(html, secret) {
			t.Fatalf("the secret is shown again at %s", path)
		}
	}

	// Search by prefix.
	for _, id := range []string{"billing", "notes-reader"} {
		if _, _, err := ap.auth.CreateClient(context.Background(), authsvc.NewClient{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	b.open("/admin/clients")
	if ids := b.rowIDs(); !slices.Equal(ids, []string{"billing", "notes", "notes-reader", "root"}) {
		t.Fatalf("all clients: %v", ids)
	}
	b.shot("clients")
	b.load("search", chromedp.SendKeys(chromedp.ID("prefix"), "note"), chromedp.Submit(chromedp.ID("prefix")))
	if ids := b.rowIDs(); !slices.Equal(ids, []string{"notes", "notes-reader"}) {
		t.Fatalf("search note: %v", ids)
	}
	b.shot("search")

	// Edit the client's scopes and admin flag.
	b.load("open notes", chromedp.Click(chromedp.CSS(`tr[data-client-id="notes"] a`)))
	b.do("edit", chromedp.SetValue(chromedp.ID("scope"), "notes:read"))
	if st := b.load("save", chromedp.Click(chromedp.CSS(`form[action$="/client/update"] button`))); st != http.StatusOK || b.text(".flash") != "Saved." {
		t.Fatalf("save: %d %q", st, b.text(".flash"))
	}
	if c, _ := ap.auth.Client(context.Background(), "notes"); strings.Join(c.Scopes, " ") != "notes:read" || c.IsAdmin {
		t.Fatalf("after save: %+v", c)
	}
	b.shot("client")

	// Rotate with a grace period (a confirm dialog, answered OK).
	_, oldTok := postForm(t, base+"/auth", url.Values{"client_id": {"notes"}, "client_secret": {secret}}, "")
	b.do("grace", chromedp.SetValue(chromedp.ID("grace"), "24h"))
	if st := b.load("rotate", chromedp.Click(chromedp.CSS(`form[action$="/client/rotate"] button`))); st != http.StatusOK {
		t.Fatalf("rotate: %d", st)
	}
	newSecret := b.text("[data-secret]")
	if len(newSecret) != 43 || newSecret == secret {
		t.Fatalf("rotated secret %q", newSecret)
	}
	for _, s := range []string{secret, newSecret} {
		if st, _ := postForm(t, base+"/auth", url.Values{"client_id": {"notes"}, "client_secret": {s}}, ""); st != 200 {
			t.Fatalf("a secret during the grace period: %d", st)
		}
	}

	// Log out everywhere: the token issued before is refused.
	b.open("/admin/client?id=notes")
	if st, _ := postForm(t, base+"/verify", nil, oldTok["token"].(string)); st != 200 {
		t.Fatalf("token before logout: %d", st)
	}
	if st := b.load("logout everywhere", chromedp.Click(chromedp.CSS(`form[action$="/client/logout"] button`))); st != http.StatusOK ||
		!strings.HasPrefix(b.text(".flash"), "Logged out everywhere") {
		t.Fatalf("logout everywhere: %d %q", st, b.text(".flash"))
	}
	if st, _ := postForm(t, base+"/verify", nil, oldTok["token"].(string)); st != 401 {
		t.Fatalf("token after logout everywhere: %d", st)
	}

	// A form posted without the CSRF token: refused, nothing done.
	keys := len(ap.auth.Keys())
	b.open("/admin/keys")
	b.shot("keys")
	if st := b.load("forged post", chromedp.Evaluate[chromedp.Void](`(() => {
		const f = document.querySelector('form[action$="/keys/rotate"]');
		f.querySelector('[name=csrf_token]').remove();
		f.removeAttribute("data-confirm");
		f.submit();
	})()`)); st != http.StatusForbidden || b.text("h1") != "Refused" {
		t.Fatalf("post without the CSRF token: %d %q", st, b.text("h1"))
	}
	if n := len(ap.auth.Keys()); n != keys {
		t.Fatal("a post without the CSRF token rotated the keys")
	}
	// A page of another origin (another port: the same site, so the
	// SameSite=Strict cookie goes along) posting to the console: refused.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form method="post" action="%s/admin/client/logout"><input name="client_id" value="root"><button>win a prize</button></form>`, base)
	}))
	defer evil.Close()
	b.load("another origin", chromedp.Navigate(evil.URL))
	if st := b.load("cross-origin post", chromedp.Click(chromedp.CSS("button"))); st != http.StatusForbidden {
		t.Fatalf("post from another origin: %d", st)
	}
	if c, _ := ap.auth.Client(context.Background(), "root"); !c.TokensValidAfter.IsZero() {
		t.Fatal("a post from another origin logged root out everywhere")
	}

	// Rotate the signing key (a confirm dialog, answered OK).
	b.open("/admin/keys")
	if st := b.load("rotate keys", chromedp.Click(chromedp.CSS(`form[action$="/keys/rotate"] button`))); st != http.StatusOK ||
		!strings.HasPrefix(b.text(".flash"), "A new signing key is published") {
		t.Fatalf("rotate keys: %d", st)
	}
	if n := len(ap.auth.Keys()); n != keys+1 {
		t.Fatalf("%d keys after a rotation, had %d", n, keys)
	}
	if got := eval[int](b, `document.querySelectorAll("tbody tr").length`); got != keys+1 {
		t.Fatalf("the keys page lists %d keys", got)
	}

	// Activity, filtered by client; health.
	b.open("/admin/activity?client=notes")
	actions := eval[[]string](b, `Array.from(document.querySelectorAll("tr[data-action]"), r => r.dataset.action)`)
	if !slices.Equal(actions, []string{"client_logged_out", "secret_rotated", "client_updated", "client_created"}) {
		t.Fatalf("activity of notes: %v", actions)
	}
	b.open("/admin/activity")
	b.shot("activity")
	b.open("/admin/health")
	if !strings.Contains(b.text("main"), "reachable") || !strings.Contains(b.text("main"), version) {
		t.Fatalf("health: %s", b.text("main"))
	}
	b.shot("health")

	// Delete, through its confirmation page.
	b.open("/admin/client?id=notes")
	b.load("delete link", chromedp.Click(chromedp.CSS(`a.danger`)))
	b.shot("delete")
	b.do("confirm", chromedp.SendKeys(chromedp.ID("confirm"), "notes"))
	if st := b.load("delete", chromedp.Click(chromedp.CSS(`form[action$="/client/delete"] button`))); st != http.StatusOK ||
		!strings.HasPrefix(b.text(".flash"), "The client was deleted") {
		t.Fatalf("delete: %d", st)
	}
	if ids := b.rowIDs(); slices.Contains(ids, "notes") {
		t.Fatalf("notes still listed: %v", ids)
	}
	if _, err := ap.auth.Client(context.Background(), "notes"); !errors.Is(err, authsvc.ErrClientNotFound) {
		t.Fatalf("notes after delete: %v", err)
	}

	// At phone width: no sideways scrolling of the page itself.
	b.do("phone", chromedp.EmulateViewport(390, 844))
	b.open("/admin/clients")
	if w := eval[int](b, `document.documentElement.scrollWidth`); w > 390 {
		t.Fatalf("at 390 pixels the page is %d wide", w)
	}
	b.shot("phone")
	b.do("desktop", chromedp.EmulateViewport(1100, 800))

	// Sign out: the token is revoked, the cookie gone.
	token := b.cookie("authsvc_console").Value
	if st := b.load("sign out", chromedp.Click(chromedp.CSS(`form.signout button`))); st != http.StatusOK || b.location() != "/admin/signin?reason=signed-out" {
		t.Fatalf("sign out: %d at %s", st, b.location())
	}
	if b.cookie("authsvc_console") != nil {
		t.Fatal("the session cookie outlives sign-out")
	}
	if _, err := ap.auth.Verify(context.Background(), token); !errors.Is(err, authsvc.ErrTokenRevoked) {
		t.Fatalf("the session token after sign-out: %v", err)
	}

	// The keyboard alone: Tab reaches the skip link first; the sign-in
	// form's first field has focus; type, Tab, type, Enter.
	if _, _, err := ap.auth.CreateClient(context.Background(), authsvc.NewClient{ID: "ops", Secret: "the ops team's admin secret", IsAdmin: true}); err != nil {
		t.Fatal(err)
	}
	b.open("/admin/signin")
	// Autofocus is applied at the next update of the rendering, not at
	// load (HTML, "flush autofocus candidates", which runs before that
	// update's animation frame callbacks): read the focus in one.
	if got := eval[string](b, `new Promise(done => requestAnimationFrame(() => done(document.activeElement.id)))`); got != "client_id" {
		t.Fatalf("focus on the sign-in page: %q", got)
	}
	b.do("type", chromedp.KeyEvent("ops"), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent("the ops team's admin secret"))
	if st := b.load("Enter", chromedp.KeyEvent(kb.Enter)); st != http.StatusOK || b.location() != "/admin/clients" {
		t.Fatalf("keyboard sign-in: %d at %s", st, b.location())
	}
	b.do("blur", chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`))
	b.do("tab", chromedp.KeyEvent(kb.Tab))
	if got := eval[string](b, `document.activeElement.className`); got != "skip" {
		t.Fatalf("the first Tab focuses %q, not the skip link", got)
	}
	if outline := eval[string](b, `getComputedStyle(document.activeElement).outlineStyle`); outline == "none" {
		t.Fatal("no visible focus on the skip link")
	}

	// Demoted while signed in: the next click ends the session.
	f := false
	if _, err := ap.auth.UpdateClient(context.Background(), "ops", authsvc.ClientUpdate{IsAdmin: &f}); err != nil {
		t.Fatal(err)
	}
	b.load("next click", chromedp.Click(chromedp.CSS(`nav a[href$="/activity"]`)))
	if loc := b.location(); loc != "/admin/signin?reason=demoted" || !strings.Contains(b.text(".flash"), "no longer an admin") {
		t.Fatalf("a demoted admin's click went to %s: %q", loc, b.text("main"))
	}
	if b.cookie("authsvc_console") != nil {
		t.Fatal("a demoted admin keeps the session cookie")
	}

	// Every action is in the audit log with the admin; no secret is.
	out := logs.String()
	for _, want := range []string{`"msg":"audit: console sign-in","client_id":"root"`, `"msg":"audit: client created","client_id":"notes"`,
		`"by":"root","via":"console"`, `"msg":"audit: console sign-out","client_id":"root"`,
		`"msg":"audit: console session ended: no longer an admin","client_id":"ops"`, `"msg":"audit: console refused a form post`} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %s", want)
		}
	}
	for _, s := range []string{secret, newSecret, adminSecret, token} {
		if strings.Contains(out, s) {
			t.Fatal("a secret or token is in the log")
		}
	}
}
