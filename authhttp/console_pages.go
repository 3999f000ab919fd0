package authhttp

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/authsvc/authsvc"
)

// The console's pages. Each action calls the library as the admin route
// that does the same does, and writes the same audit line (with
// via=console).

// doneMessages say what an action did, on the page it redirects to
// (?done=KEY: a key, never text from the request).
var doneMessages = map[string]string{
	"updated":     "Saved.",
	"logged-out":  "Logged out everywhere: every token this client was issued until now is refused.",
	"deleted":     "The client was deleted: its tokens are refused from now on.",
	"key-rotated": "A new signing key is published. It signs once verifiers have had time to fetch it (see when below).",
}

// flash is the message of the request's ?done=.
func flash(r *http.Request) string { return doneMessages[r.URL.Query().Get("done")] }

// clientURL is a client's page.
func (c *console) clientURL(r *http.Request, id, done string) string {
	u := c.base(r) + "/client?id=" + url.QueryEscape(id)
	if done != "" {
		u += "&done=" + done
	}
	return u
}

// fieldOf says which form field a library error is about ("" : none).
func fieldOf(err error) string {
	msg := authsvc.ErrorMessage(err)
	switch {
	case errors.Is(err, authsvc.ErrClientExists), strings.HasPrefix(msg, "client_id"):
		return "client_id"
	case errors.Is(err, authsvc.ErrInvalidScope):
		return "scope"
	case strings.HasPrefix(msg, "audience"), strings.Contains(msg, "audiences"):
		return "audience"
	case strings.HasPrefix(msg, "token_endpoint_auth_method"):
		return "token_endpoint_auth_method"
	case strings.HasPrefix(msg, "jwks_uri"):
		return "jwks_uri"
	case strings.HasPrefix(msg, "jwks"), strings.Contains(msg, "(jwks or jwks_uri)"), strings.Contains(msg, "needs jwks"):
		return "jwks"
	}
	return ""
}

// formError puts a library error next to the field it is about, or over
// the whole form; false means it is no caller's mistake and has been
// answered with an error page.
func (c *console) formError(w http.ResponseWriter, r *http.Request, v *view, err error) bool {
	f := classify(err)
	if f.status >= 500 || f.status == http.StatusNotFound {
		c.failed(w, r, err)
		return false
	}
	if field := fieldOf(err); field != "" {
		v.Errors[field] = sentence(f.msg)
	} else {
		v.Error = sentence(f.msg)
	}
	return true
}

// fields reads single-valued form fields; a field given twice is an error.
func fields(form url.Values, keys ...string) (map[string]string, error) {
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		v, err := param(form, k)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

type clientsData struct {
	Clients []authsvc.Client
	Prefix  string
	Next    string // the after of the next page; "" on the last
	Paged   bool   // not the first page
}

func (c *console) clientsPage(w http.ResponseWriter, r *http.Request, s *session, _ url.Values) {
	q := r.URL.Query()
	v := c.newView(r, s, "Clients", "clients")
	v.Flash = flash(r)
	d := &clientsData{Prefix: q.Get("prefix")}
	v.Data, v.Form["prefix"] = d, d.Prefix
	page, err := c.h.auth.ListClients(r.Context(), authsvc.ClientQuery{Prefix: d.Prefix, After: q.Get("after"), Limit: 50})
	if err != nil {
		f := classify(err)
		if f.status != http.StatusBadRequest {
			c.failed(w, r, err)
			return
		}
		v.Errors["prefix"] = "Search by the start of a client ID: at most 128 bytes, without NUL."
		c.render(w, r, http.StatusBadRequest, "clients", v)
		return
	}
	d.Clients, d.Next, d.Paged = page.Clients, page.Next, q.Get("after") != ""
	c.render(w, r, http.StatusOK, "clients", v)
}

func (c *console) newClientPage(w http.ResponseWriter, r *http.Request, s *session, _ url.Values) {
	c.render(w, r, http.StatusOK, "new", c.newView(r, s, "New client", "clients"))
}

// secretData is the page that shows a secret, once.
type secretData struct {
	Client  *authsvc.Client
	Secret  string
	Rotated bool
	Grace   time.Duration // the old secret's, after a rotation
	Until   time.Time
	Logout  bool // the rotation also logged the client out everywhere
}

func (c *console) createClient(w http.ResponseWriter, r *http.Request, s *session, form url.Values) {
	f, err := fields(form, "client_id", "scope", "audience", "is_admin", "token_endpoint_auth_method", "jwks_uri", "jwks")
	if err != nil {
		c.bodyError(w, r, err)
		return
	}
	v := c.newView(r, s, "New client", "clients")
	v.Form = f
	isAdmin, err := parseBool(f["is_admin"])
	if err != nil {
		v.Errors["is_admin"] = "Admin must be checked or not."
	}
	if f["client_id"] == "" {
		v.Errors["client_id"] = "Enter a client ID."
	}
	if len(v.Errors) > 0 {
		c.render(w, r, http.StatusBadRequest, "new", v)
		return
	}
	nc := authsvc.NewClient{ID: f["client_id"], IsAdmin: isAdmin, Scopes: authsvc.ParseScope(f["scope"]),
		Audiences: strings.Fields(f["audience"]), AuthMethod: f["token_endpoint_auth_method"], JWKSURI: f["jwks_uri"]}
	if f["jwks"] != "" {
		nc.JWKS = []byte(f["jwks"])
	}
	cl, secret, err := c.h.auth.CreateClient(r.Context(), nc)
	if err != nil {
		if c.formError(w, r, v, err) {
			status := http.StatusBadRequest
			if errors.Is(err, authsvc.ErrClientExists) {
				status = http.StatusConflict
			}
			c.render(w, r, status, "new", v)
		}
		return
	}
	c.h.log.Info("audit: client created", "client_id", cl.ID, "is_admin", cl.IsAdmin, "auth_method", cl.AuthMethod,
		"federated_credentials", len(cl.FederatedCredentials), "by", s.admin, "via", "console")
	v = c.newView(r, s, "Client created", "clients")
	v.Data = &secretData{Client: cl, Secret: secret}
	c.render(w, r, http.StatusCreated, "secret", v)
}

// clientData is a client's page.
type clientData struct {
	Client *authsvc.Client
	Self   bool // the signed-in admin's own client
}

// client finds the client a page or action is about, answering itself
// when there is none (false).
func (c *console) client(w http.ResponseWriter, r *http.Request, id string) (*authsvc.Client, bool) {
	if id == "" {
		c.message(w, r, http.StatusBadRequest, "Bad request", "Which client? The link lacks its ID.")
		return nil, false
	}
	cl, err := c.h.auth.Client(r.Context(), id)
	if errors.Is(err, authsvc.ErrClientNotFound) {
		c.message(w, r, http.StatusNotFound, "No such client", "There is no client with that ID (any more).")
		return nil, false
	}
	if err != nil {
		c.failed(w, r, err)
		return nil, false
	}
	return cl, true
}

func (c *console) clientPage(w http.ResponseWriter, r *http.Request, s *session, _ url.Values) {
	cl, ok := c.client(w, r, r.URL.Query().Get("id"))
	if !ok {
		return
	}
	c.renderClient(w, r, s, cl, http.StatusOK, nil)
}

// renderClient shows a client's page; a refused edit comes back with what
// was typed (edit) and the errors in v.
func (c *console) renderClient(w http.ResponseWriter, r *http.Request, s *session, cl *authsvc.Client, status int, v *view) {
	if v == nil {
		v = c.newView(r, s, cl.ID, "clients")
		v.Flash = flash(r)
		v.Form = clientForm(cl)
	}
	v.Title = cl.ID
	v.Data = &clientData{Client: cl, Self: cl.ID == s.admin}
	c.render(w, r, status, "client", v)
}

// clientForm is the edit form's values for cl as it is.
func clientForm(cl *authsvc.Client) map[string]string {
	f := map[string]string{"scope": strings.Join(cl.Scopes, " "), "audience": strings.Join(cl.Audiences, " "),
		"token_endpoint_auth_method": cl.AuthMethod, "jwks_uri": cl.JWKSURI, "jwks": string(cl.JWKS)}
	if cl.IsAdmin {
		f["is_admin"] = "on"
	}
	return f
}

func (c *console) updateClient(w http.ResponseWriter, r *http.Request, s *session, form url.Values) {
	f, err := fields(form, "client_id", "scope", "audience", "is_admin", "token_endpoint_auth_method", "jwks_uri", "jwks")
	if err != nil {
		c.bodyError(w, r, err)
		return
	}
	cl, ok := c.client(w, r, f["client_id"])
	if !ok {
		return
	}
	v := c.newView(r, s, cl.ID, "clients")
	v.Form = f
	isAdmin, err := parseBool(f["is_admin"])
	if err != nil {
		v.Errors["is_admin"] = "Admin must be checked or not."
		c.renderClient(w, r, s, cl, http.StatusBadRequest, v)
		return
	}
	scopes, auds := authsvc.ParseScope(f["scope"]), strings.Fields(f["audience"])
	u := authsvc.ClientUpdate{IsAdmin: &isAdmin, Scopes: &scopes, Audiences: &auds}
	// The way it authenticates changes only when the form says another,
	// or other keys: saving scopes leaves a client's keys alone.
	if m := f["token_endpoint_auth_method"]; m != "" && m != cl.AuthMethod {
		u.AuthMethod = &m
	}
	if uri := f["jwks_uri"]; uri != cl.JWKSURI {
		u.JWKSURI = &uri
	}
	if jwks := f["jwks"]; jwks != string(cl.JWKS) {
		b := []byte(jwks)
		u.JWKS = &b
	}
	updated, err := c.h.auth.UpdateClient(r.Context(), cl.ID, u)
	if err != nil {
		if c.formError(w, r, v, err) {
			c.renderClient(w, r, s, cl, http.StatusBadRequest, v)
		}
		return
	}
	c.h.auditUpdate(updated, u, s.admin, "via", "console")
	http.Redirect(w, r, c.clientURL(r, cl.ID, "updated"), http.StatusSeeOther)
}

func (c *console) rotateSecret(w http.ResponseWriter, r *http.Request, s *session, form url.Values) {
	f, err := fields(form, "client_id", "grace", "logout_everywhere")
	if err != nil {
		c.bodyError(w, r, err)
		return
	}
	cl, ok := c.client(w, r, f["client_id"])
	if !ok {
		return
	}
	v := c.newView(r, s, cl.ID, "clients")
	v.Form = clientForm(cl)
	v.Form["grace"], v.Form["logout_everywhere"] = f["grace"], f["logout_everywhere"]
	var opt authsvc.RotateSecret
	if opt.Grace, err = parseGrace(f["grace"]); err != nil {
		v.Errors["grace"] = "Choose how long the old secret keeps working."
	}
	if opt.LogoutEverywhere, err = parseBool(f["logout_everywhere"]); err != nil {
		v.Errors["logout_everywhere"] = "Log out everywhere must be checked or not."
	}
	if len(v.Errors) > 0 {
		c.renderClient(w, r, s, cl, http.StatusBadRequest, v)
		return
	}
	rotated, secret, err := c.h.auth.RotateSecret(r.Context(), cl.ID, opt)
	if err != nil {
		if c.formError(w, r, v, err) {
			c.renderClient(w, r, s, cl, http.StatusBadRequest, v)
		}
		return
	}
	c.h.log.Info("audit: client secret rotated", "client_id", rotated.ID, "grace", opt.Grace.String(),
		"logout_everywhere", opt.LogoutEverywhere, "by", s.admin, "via", "console")
	v = c.newView(r, s, "Secret rotated", "clients")
	v.Data = &secretData{Client: rotated, Secret: secret, Rotated: true, Grace: opt.Grace, Until: time.Now().Add(opt.Grace),
		Logout: opt.LogoutEverywhere}
	c.render(w, r, http.StatusOK, "secret", v)
}

func (c *console) logoutClient(w http.ResponseWriter, r *http.Request, s *session, form url.Values) {
	f, err := fields(form, "client_id")
	if err != nil {
		c.bodyError(w, r, err)
		return
	}
	cl, err := c.h.auth.LogoutClient(r.Context(), f["client_id"])
	if errors.Is(err, authsvc.ErrClientNotFound) {
		c.message(w, r, http.StatusNotFound, "No such client", "There is no client with that ID (any more).")
		return
	}
	if err != nil {
		c.failed(w, r, err)
		return
	}
	c.h.log.Info("audit: client logged out everywhere", "client_id", cl.ID, "by", s.admin, "via", "console")
	http.Redirect(w, r, c.clientURL(r, cl.ID, "logged-out"), http.StatusSeeOther)
}

func (c *console) deletePage(w http.ResponseWriter, r *http.Request, s *session, _ url.Values) {
	cl, ok := c.client(w, r, r.URL.Query().Get("id"))
	if !ok {
		return
	}
	v := c.newView(r, s, "Delete "+cl.ID, "clients")
	v.Data = &clientData{Client: cl, Self: cl.ID == s.admin}
	c.render(w, r, http.StatusOK, "delete", v)
}

// deleteClient deletes a client once its id has been typed again: the
// confirmation step (the delete page) is enforced, not only offered.
func (c *console) deleteClient(w http.ResponseWriter, r *http.Request, s *session, form url.Values) {
	f, err := fields(form, "client_id", "confirm")
	if err != nil {
		c.bodyError(w, r, err)
		return
	}
	cl, ok := c.client(w, r, f["client_id"])
	if !ok {
		return
	}
	if f["confirm"] != cl.ID {
		v := c.newView(r, s, "Delete "+cl.ID, "clients")
		v.Data = &clientData{Client: cl, Self: cl.ID == s.admin}
		v.Form["confirm"] = f["confirm"]
		v.Errors["confirm"] = "Type the client ID exactly as shown to delete it."
		c.render(w, r, http.StatusBadRequest, "delete", v)
		return
	}
	if err := c.h.auth.DeleteClient(r.Context(), cl.ID); err != nil {
		if errors.Is(err, authsvc.ErrClientNotFound) {
			c.message(w, r, http.StatusNotFound, "No such client", "There is no client with that ID (any more).")
			return
		}
		c.failed(w, r, err)
		return
	}
	c.h.log.Info("audit: client deleted", "client_id", cl.ID, "by", s.admin, "via", "console")
	http.Redirect(w, r, c.base(r)+"/clients?done=deleted", http.StatusSeeOther)
}

// keyRow is a signing key as the keys page shows it.
type keyRow struct {
	authsvc.KeyInfo
	State string
	Age   time.Duration
}

type keysData struct {
	Keys []keyRow
	HS   bool // HS256: one shared secret, no keys to list
}

func (c *console) keysPage(w http.ResponseWriter, r *http.Request, s *session, _ url.Values) {
	v := c.newView(r, s, "Signing keys", "keys")
	v.Flash = flash(r)
	c.renderKeys(w, r, http.StatusOK, v)
}

// keyStateLabels say keyState's states for people.
var keyStateLabels = map[string]string{
	"signing":         "signing now",
	"next":            "next: published, signs from its activation",
	"retired":         "retired: verifies the tokens it signed until they expire",
	"other-algorithm": "verifies only: its algorithm is no longer configured",
}

func (c *console) renderKeys(w http.ResponseWriter, r *http.Request, status int, v *view) {
	keys := c.h.auth.Keys()
	d := &keysData{HS: len(keys) == 0}
	now := c.h.auth.Now()
	for _, k := range keys {
		d.Keys = append(d.Keys, keyRow{KeyInfo: k, State: keyStateLabels[keyState(k, keys, now)], Age: now.Sub(k.CreatedAt)})
	}
	v.Data = d
	c.render(w, r, status, "keys", v)
}

func (c *console) rotateKeys(w http.ResponseWriter, r *http.Request, s *session, _ url.Values) {
	k, err := c.h.auth.RotateKeys(r.Context())
	if err != nil {
		v := c.newView(r, s, "Signing keys", "keys")
		if c.formError(w, r, v, err) {
			c.renderKeys(w, r, http.StatusBadRequest, v)
		}
		return
	}
	c.h.log.Info("audit: signing key rotation started", "kid", k.ID, "activate_at", k.ActivateAt, "by", s.admin, "via", "console")
	http.Redirect(w, r, c.base(r)+"/keys?done=key-rotated", http.StatusSeeOther)
}

type activityData struct {
	Changes []authsvc.Change
	Client  string
	Next    int64
	Paged   bool
}

func (c *console) activityPage(w http.ResponseWriter, r *http.Request, s *session, _ url.Values) {
	q := r.URL.Query()
	v := c.newView(r, s, "Activity", "activity")
	d := &activityData{Client: q.Get("client")}
	v.Data, v.Form["client"] = d, d.Client
	var before int64
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			c.message(w, r, http.StatusBadRequest, "Bad request", "The link to older changes is malformed.")
			return
		}
		before = n
	}
	page, err := c.h.auth.Activity(r.Context(), authsvc.ActivityQuery{ClientID: d.Client, Before: before})
	if err != nil {
		if classify(err).status != http.StatusBadRequest {
			c.failed(w, r, err)
			return
		}
		v.Errors["client"] = "A client ID is 1 to 128 bytes, without NUL."
		c.render(w, r, http.StatusBadRequest, "activity", v)
		return
	}
	d.Changes, d.Next, d.Paged = page.Changes, page.Next, before != 0
	c.render(w, r, http.StatusOK, "activity", v)
}

type healthData struct {
	Reachable bool
	LastSync  time.Time
	KeyAge    time.Duration
	Algs      string
	Issuer    string
	Version   string
	Stats     authsvc.Stats
}

func (c *console) healthPage(w http.ResponseWriter, r *http.Request, s *session, _ url.Values) {
	st := c.h.auth.Stats()
	d := &healthData{Reachable: c.h.ready(r.Context()) == nil, LastSync: st.LastSync, KeyAge: st.SigningKeyAge,
		Algs: strings.Join(c.h.auth.SigningAlgorithms(), ", "), Issuer: c.h.auth.Issuer(), Version: c.version, Stats: st}
	if d.Version == "" {
		d.Version = "unknown (set by the program that serves the console)"
	}
	v := c.newView(r, s, "Health", "health")
	v.Data = d
	c.render(w, r, http.StatusOK, "health", v)
}

// Template functions.

// ago says how long ago (or how soon) t is, in words.
func ago(t time.Time) string { return agoFrom(t, time.Now()) }

// agoFrom says how long before (or after) now t is.
func agoFrom(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := t.Sub(now)
	switch {
	case d > 5*time.Second:
		return "in " + humanDuration(d)
	case d > -5*time.Second:
		return "just now"
	}
	return humanDuration(-d) + " ago"
}

// humanDuration says d in its two largest units: "3 days 4 hours".
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	units := []struct {
		name string
		d    time.Duration
	}{{"day", 24 * time.Hour}, {"hour", time.Hour}, {"minute", time.Minute}, {"second", time.Second}}
	var parts []string
	for _, u := range units {
		if n := d / u.d; n > 0 || (u.d == time.Second && len(parts) == 0) {
			if n == 1 {
				parts = append(parts, "1 "+u.name)
			} else {
				parts = append(parts, fmt.Sprintf("%d %ss", n, u.name))
			}
			d -= n * u.d
		}
		if len(parts) == 2 {
			break
		}
	}
	return strings.Join(parts, " ")
}

func absTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }
func isoTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// actionLabel names an activity's action for people.
func actionLabel(a string) string {
	switch a {
	case authsvc.ActionClientCreated:
		return "created"
	case authsvc.ActionClientUpdated:
		return "updated"
	case authsvc.ActionSecretRotated:
		return "secret rotated"
	case authsvc.ActionSecretRehashed:
		return "secret rehashed"
	case authsvc.ActionClientLoggedOut:
		return "logged out everywhere"
	case authsvc.ActionClientDeleted:
		return "deleted"
	case authsvc.ActionTokenRevoked:
		return "token revoked"
	case authsvc.ActionKeyCreated:
		return "first signing key"
	case authsvc.ActionKeyRotated:
		return "signing key rotated"
	case authsvc.ActionKeysRetired:
		return "old signing keys removed"
	case authsvc.ActionKeysChanged:
		return "signing keys changed"
	}
	return "created or updated"
}
