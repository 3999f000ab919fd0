package authhttp

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/authsvc/authsvc"
)

// The admin console: pages under /admin for people, doing what the admin
// routes do through the same library calls. This file holds the session,
// the safety rules every page gets and the rendering; the pages are in
// console_pages.go, their templates, CSS and script in console/.
//
// A session is an access token of the admin, issued by IssueSession for
// the console's own audience (no admin route takes it, and the console
// takes no other token), kept in an HttpOnly, SameSite=Strict cookie. So
// sign-out is a revocation, a deleted client or a cut-off ends its
// sessions too, and any instance behind a load balancer can serve any
// request: nothing is kept in memory. Every request checks the token and
// that its client is an admin now.

//go:embed console
var consoleFiles embed.FS

// ConsoleOptions configures the admin console that NewHandler serves under
// /admin. The zero value is the console on, with the defaults below.
type ConsoleOptions struct {
	// Off removes the console's routes (authd: AUTHSVC_ADMIN_CONSOLE=off).
	Off bool
	// IdleTimeout ends a session after this long without a request (the
	// lifetime of the session's token, renewed as it is used). Zero means
	// 15 minutes; more than the Authenticator's token lifetime means that.
	IdleTimeout time.Duration
	// MaxAge ends a session this long after sign-in, however busy. Zero
	// means 8 hours.
	MaxAge time.Duration
	// Version is shown on the health page (authd gives its build's).
	Version string
}

const (
	// consoleAudience is the aud of session tokens: theirs alone.
	consoleAudience = "urn:authsvc:admin-console"
	// sessionCookie holds the session token; signinCookie the sign-in
	// form's CSRF token, before there is a session.
	sessionCookie = "authsvc_console"
	signinCookie  = "authsvc_console_signin"
)

// The Content-Security-Policy of every console response: nothing but the
// console's own files, no inline script or style, no framing.
const consoleCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// console serves the admin console for a handler.
type console struct {
	h       *handler
	pages   map[string]*template.Template
	static  map[string]staticFile
	idle    time.Duration
	maxAge  time.Duration
	version string
}

type staticFile struct {
	body        []byte
	contentType string
}

// newConsole parses the embedded templates and reads the static files.
func newConsole(h *handler, opts ConsoleOptions) *console {
	c := &console{h: h, idle: opts.IdleTimeout, maxAge: opts.MaxAge, version: opts.Version,
		pages: map[string]*template.Template{}, static: map[string]staticFile{}}
	if c.idle <= 0 {
		c.idle = 15 * time.Minute
	}
	if c.maxAge <= 0 {
		c.maxAge = 8 * time.Hour
	}
	funcs := template.FuncMap{"ago": ago, "abs": absTime, "iso": isoTime, "dur": humanDuration, "action": actionLabel, "field": field}
	pages, err := fs.Glob(consoleFiles, "console/*.html")
	if err != nil {
		panic(err)
	}
	for _, p := range pages {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "console/"), ".html")
		if name == "layout" {
			continue
		}
		// The files are embedded: a template that does not parse is a
		// build mistake every test catches, not a runtime condition.
		c.pages[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(consoleFiles, "console/layout.html", p))
	}
	for name, ct := range map[string]string{"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"} {
		b, err := consoleFiles.ReadFile("console/static/" + name)
		if err != nil {
			panic(err)
		}
		c.static[name] = staticFile{b, ct}
	}
	return c
}

// consoleRoutes mounts the console under /admin.
func (h *handler) consoleRoutes(mux *http.ServeMux, opts ConsoleOptions) {
	if opts.Off {
		return
	}
	c := newConsole(h, opts)
	in := http.NewServeMux()
	in.HandleFunc("GET /admin", c.home)
	in.HandleFunc("GET /admin/{$}", c.home)
	in.HandleFunc("GET /admin/static/{file}", c.serveStatic)
	in.HandleFunc("GET /admin/signin", c.signinPage)
	in.HandleFunc("POST /admin/signin", c.signin)
	in.HandleFunc("POST /admin/signout", c.authed(c.signout))
	in.HandleFunc("GET /admin/clients", c.authed(c.clientsPage))
	in.HandleFunc("GET /admin/clients/new", c.authed(c.newClientPage))
	in.HandleFunc("POST /admin/clients/new", c.authed(c.createClient))
	in.HandleFunc("GET /admin/client", c.authed(c.clientPage))
	in.HandleFunc("POST /admin/client/update", c.authed(c.updateClient))
	in.HandleFunc("POST /admin/client/rotate", c.authed(c.rotateSecret))
	in.HandleFunc("POST /admin/client/logout", c.authed(c.logoutClient))
	in.HandleFunc("GET /admin/client/delete", c.authed(c.deletePage))
	in.HandleFunc("POST /admin/client/delete", c.authed(c.deleteClient))
	in.HandleFunc("GET /admin/keys", c.authed(c.keysPage))
	in.HandleFunc("POST /admin/keys/rotate", c.authed(c.rotateKeys))
	in.HandleFunc("GET /admin/activity", c.authed(c.activityPage))
	in.HandleFunc("GET /admin/health", c.authed(c.healthPage))
	in.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		// A form's address opened as a page (a bookmark, a reload): 405,
		// saying so, rather than "no such page".
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := in.Handler(probe); m != r.Method && pattern != "/admin/" {
				w.Header().Set("Allow", m)
				c.message(w, r, http.StatusMethodNotAllowed, "Not a page", "This address takes a form the console's pages send; it is not a page to open.")
				return
			}
		}
		c.message(w, r, http.StatusNotFound, "Not found", "There is no such page in the console.")
	})
	safe := c.safe(in)
	mux.Handle("/admin", safe)
	mux.Handle("/admin/", safe)
}

// safe sets the headers every console response carries.
func (c *console) safe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", consoleCSP)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Cache-Control", "no-store")
		hd.Set("Pragma", "no-cache")
		// same-origin, not no-referrer: under no-referrer a browser sends
		// "Origin: null" with a form post, which the Origin check refuses.
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// base is where the console is reached: /admin under the mount prefix.
func (c *console) base(r *http.Request) string { return mountPrefix(r) + "/admin" }

// secure reports whether the console is reached over TLS: a request on a
// TLS connection, or an issuer (or BaseURL) that says https, as behind a
// proxy that ends TLS.
func (c *console) secure(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(c.h.base(r), "https://")
}

func (c *console) home(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, c.base(r)+"/clients", http.StatusSeeOther)
}

func (c *console) serveStatic(w http.ResponseWriter, r *http.Request) {
	f, ok := c.static[r.PathValue("file")]
	if !ok {
		c.message(w, r, http.StatusNotFound, "Not found", "There is no such file.")
		return
	}
	w.Header().Set("Content-Type", f.contentType)
	w.Write(f.body)
}

// session is a signed-in admin's request.
type session struct {
	claims *authsvc.Claims
	token  string // the session's token now (renewed by this request, maybe)
	admin  string // the admin's client_id
	csrf   string // the token every form of the session carries
}

// consoleHandler is a page of a signed-in admin; form is the checked body
// of a POST (nil for a GET).
type consoleHandler func(w http.ResponseWriter, r *http.Request, s *session, form url.Values)

// authed lets a request through to f only within a session of an admin
// who is one now, and a POST only from this console's own pages: the
// Origin check, then the session's CSRF token. The request f gets names
// the admin as the actor of its changes.
func (c *console) authed(f consoleHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && !c.sameOrigin(r) {
			c.refuseForgery(w, r, "its Origin is not this console's")
			return
		}
		s, ok := c.session(w, r)
		if !ok {
			return
		}
		r = r.WithContext(authsvc.WithActor(r.Context(), s.admin))
		var form url.Values
		if r.Method == http.MethodPost {
			v, err := readParams(w, r)
			if err != nil {
				c.bodyError(w, r, err)
				return
			}
			tok, err := param(v, "csrf_token")
			if err != nil || !equalSecret(tok, s.csrf) {
				c.refuseForgery(w, r, "its CSRF token is missing or wrong")
				return
			}
			form = v
		}
		f(w, r, s, form)
	}
}

// session checks the request's session and renews it when it is due;
// false means the request has been answered (sent to sign in, or refused
// because the store is out of reach: never let through).
func (c *console) session(w http.ResponseWriter, r *http.Request) (*session, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		c.toSignin(w, r, "")
		return nil, false
	}
	ctx := r.Context()
	claims, err := c.h.auth.Verify(ctx, ck.Value)
	if errors.Is(err, authsvc.ErrUnavailable) {
		c.failed(w, r, err)
		return nil, false
	}
	if err != nil || !isSessionToken(claims) {
		c.endSession(w, r, "", "expired") // expired, revoked, or no session token of ours
		return nil, false
	}
	setClient(r, claims.Subject)
	ctx = authsvc.WithActor(ctx, claims.Subject)
	now := c.h.auth.Now() // the clock of the token's times
	if now.Sub(time.Unix(claims.AuthTime, 0)) > c.maxAge {
		c.endSession(w, r.WithContext(ctx), ck.Value, "expired")
		return nil, false
	}
	if err := c.h.adminNow(ctx, claims.Subject); err != nil {
		if !errors.Is(err, authsvc.ErrForbidden) && !errors.Is(err, authsvc.ErrInvalidToken) {
			c.failed(w, r, err)
			return nil, false
		}
		c.h.log.Warn("audit: console session ended: no longer an admin", "client_id", claims.Subject, "remote", clip(info(r).addr))
		c.endSession(w, r.WithContext(ctx), ck.Value, "demoted")
		return nil, false
	}
	token := ck.Value
	// A third of the token's own lifetime: IdleTimeout, or less when the
	// Authenticator's token lifetime is shorter.
	if life := claims.ExpiresAt - claims.IssuedAt; now.Unix()-claims.IssuedAt >= life/3 {
		token = c.renew(w, r.WithContext(ctx), claims, token)
	}
	return &session{claims: claims, token: token, admin: claims.Subject, csrf: csrfToken(claims.SessionID)}, true
}

// isSessionToken reports whether verified claims are a console session's:
// the console's audience alone, a session id and a sign-in time.
func isSessionToken(c *authsvc.Claims) bool {
	return len(c.Audience) == 1 && c.Audience[0] == consoleAudience && c.SessionID != "" && c.AuthTime != 0
}

// renew replaces a session's token with a fresh one (the same session id
// and sign-in time), so that the session ends only after IdleTimeout
// without a request, and revokes the one it replaces, so that a copy of
// an old cookie is worth nothing. A third of its lifetime must have
// passed: renewing on every request would revoke a token per click. A
// failure keeps the current token, which is still valid. It returns the
// session's token from now on.
func (c *console) renew(w http.ResponseWriter, r *http.Request, claims *authsvc.Claims, old string) string {
	tok, err := c.h.auth.IssueSession(r.Context(), claims.Subject, authsvc.SessionRequest{
		Audience: consoleAudience, TTL: c.idle, ID: claims.SessionID, AuthTime: time.Unix(claims.AuthTime, 0)})
	if err != nil {
		c.h.log.Warn("console session not renewed", "client_id", claims.Subject, "err", err)
		return old
	}
	c.setSession(w, r, tok)
	if err := c.h.auth.Logout(r.Context(), old); err != nil {
		c.h.log.Warn("console: the renewed session token was not revoked", "client_id", claims.Subject, "err", err)
	}
	return tok.AccessToken
}

// setSession puts a session token in the cookie.
func (c *console) setSession(w http.ResponseWriter, r *http.Request, tok *authsvc.Token) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: tok.AccessToken, Path: c.base(r),
		MaxAge: int(tok.ExpiresIn / time.Second), HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode})
}

// clearCookie tells the browser to drop a cookie of the console.
func (c *console) clearCookie(w http.ResponseWriter, r *http.Request, name, path string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: path, MaxAge: -1,
		HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode})
}

// endSession revokes the session's token (when given), drops the cookie
// and sends the browser to sign in, saying why.
func (c *console) endSession(w http.ResponseWriter, r *http.Request, token, reason string) {
	if token != "" {
		if err := c.h.auth.Logout(r.Context(), token); err != nil && !errors.Is(err, authsvc.ErrInvalidToken) {
			c.h.log.Warn("console: an ended session's token was not revoked", "err", err)
		}
	}
	c.clearCookie(w, r, sessionCookie, c.base(r))
	c.toSignin(w, r, reason)
}

// toSignin sends the browser to the sign-in page.
func (c *console) toSignin(w http.ResponseWriter, r *http.Request, reason string) {
	to := c.base(r) + "/signin"
	if reason != "" {
		to += "?reason=" + url.QueryEscape(reason)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// csrfToken is the forms' token of a session: derived from its id (which
// renewals keep, so a page open in another tab still posts), not the id
// itself.
func csrfToken(sessionID string) string {
	sum := sha256.Sum256([]byte("authsvc console csrf\x00" + sessionID))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// equalSecret compares a presented token with the expected one in
// constant time; an empty one never matches.
func equalSecret(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// sameOrigin reports whether a POST comes from a page of this console:
// its Origin (or, from a browser that sends none, Sec-Fetch-Site or the
// Referer's origin) is the console's own. A request with none of them
// comes from no browser, so no cross-site forgery; the CSRF token is
// checked all the same.
func (c *console) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
			return site == "same-origin"
		}
		ref := r.Header.Get("Referer")
		if ref == "" {
			return true
		}
		u, err := url.Parse(ref)
		if err != nil {
			return false
		}
		origin = u.Scheme + "://" + u.Host
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if strings.EqualFold(origin, scheme+"://"+r.Host) {
		return true
	}
	// Behind a proxy that ends TLS or rewrites Host: the public origin.
	u, err := url.Parse(c.h.base(r))
	return err == nil && u.Host != "" && strings.EqualFold(origin, u.Scheme+"://"+u.Host)
}

// refuseForgery answers a POST that did not come from the console's own
// form: 403, logged, nothing done.
func (c *console) refuseForgery(w http.ResponseWriter, r *http.Request, why string) {
	c.h.log.Warn("audit: console refused a form post: "+why, "path", clip(r.URL.Path), "remote", clip(info(r).addr),
		"origin", clip(r.Header.Get("Origin")))
	c.message(w, r, http.StatusForbidden, "Refused",
		"This form did not come from this console's own page, or it has expired. Go back, reload the page and try again.")
}

// bodyError answers a form body that cannot be read.
func (c *console) bodyError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusBadRequest, "malformed request body"
	var eb *errBody
	if errors.As(err, &eb) {
		status, msg = eb.status, eb.msg
	}
	c.message(w, r, status, "Bad request", "The form could not be read: "+msg+".")
}

// failed answers a library error with a page: its status and message (an
// outage or an unknown error logged, never shown).
func (c *console) failed(w http.ResponseWriter, r *http.Request, err error) {
	f := classify(err)
	switch f.status {
	case http.StatusServiceUnavailable:
		c.h.log.Error("store unavailable", "path", clip(r.URL.Path), "err", err)
		w.Header().Set("Retry-After", "1")
		c.message(w, r, f.status, "Service unavailable", "The store cannot be reached, so the console does nothing until it can. Try again in a moment.")
		return
	case http.StatusInternalServerError:
		c.h.log.Error("internal error", "path", clip(r.URL.Path), "err", err)
	}
	c.message(w, r, f.status, http.StatusText(f.status), sentence(f.msg))
}

// sentence makes a library message a sentence: a capital, a full stop.
func sentence(msg string) string {
	if msg == "" {
		return msg
	}
	msg = strings.ToUpper(msg[:1]) + msg[1:]
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}

// view is what every page template gets.
type view struct {
	Title  string
	Nav    string // the navigation entry this page is under
	Base   string // the console's path: links start with it
	Admin  string // the signed-in admin; "" before sign-in
	CSRF   string // the token forms carry
	Flash  string // what the last action did
	Error  string // what went wrong, for the whole form
	Errors map[string]string
	Form   map[string]string // the values a refused form is shown again with
	Data   any

	focused bool // a field has autofocus (the first in error)
}

// newView starts a page's view for session s (nil before sign-in).
func (c *console) newView(r *http.Request, s *session, title, nav string) *view {
	v := &view{Title: title, Nav: nav, Base: c.base(r), Errors: map[string]string{}, Form: map[string]string{}}
	if s != nil {
		v.Admin, v.CSRF = s.admin, s.csrf
	}
	return v
}

// render writes page with v, whole or not at all.
func (c *console) render(w http.ResponseWriter, r *http.Request, status int, page string, v *view) {
	var buf bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		c.h.log.Error("console: rendering failed", "page", page, "err", err)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte("internal error\n"))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// message renders a page that only says something.
func (c *console) message(w http.ResponseWriter, r *http.Request, status int, title, text string) {
	v := c.newView(r, nil, title, "")
	v.Data = text
	c.render(w, r, status, "message", v)
}

// Reasons the sign-in page gives for being shown.
var signinReasons = map[string]string{
	"expired":    "Your session has ended. Sign in again.",
	"signed-out": "You have signed out.",
	"demoted":    "Your session has ended: your client is no longer an admin (or no longer exists).",
}

func (c *console) signinPage(w http.ResponseWriter, r *http.Request) {
	c.renderSignin(w, r, http.StatusOK, c.newView(r, nil, "Sign in", ""))
}

// renderSignin shows the sign-in form with a CSRF token of its own, kept
// in a cookie for the form's post to match (there is no session yet).
func (c *console) renderSignin(w http.ResponseWriter, r *http.Request, status int, v *view) {
	tok := ""
	if ck, err := r.Cookie(signinCookie); err == nil && len(ck.Value) == 43 {
		tok = ck.Value
	} else {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			c.failed(w, r, err)
			return
		}
		tok = base64.RawURLEncoding.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{Name: signinCookie, Value: tok, Path: c.base(r) + "/signin",
			HttpOnly: true, Secure: c.secure(r), SameSite: http.SameSiteStrictMode})
	}
	v.CSRF = tok
	if v.Flash == "" {
		v.Flash = signinReasons[r.URL.Query().Get("reason")]
	}
	c.render(w, r, status, "signin", v)
}

// signin: an admin client's id and secret, through the throttle like
// every authentication, start a session.
func (c *console) signin(w http.ResponseWriter, r *http.Request) {
	if !c.sameOrigin(r) {
		c.refuseForgery(w, r, "its Origin is not this console's")
		return
	}
	form, err := readParams(w, r)
	if err != nil {
		c.bodyError(w, r, err)
		return
	}
	var vals [3]string
	for i, k := range []string{"csrf_token", "client_id", "client_secret"} {
		if vals[i], err = param(form, k); err != nil {
			c.bodyError(w, r, err)
			return
		}
	}
	tok, id, secret := vals[0], vals[1], vals[2]
	v := c.newView(r, nil, "Sign in", "")
	v.Form["client_id"] = id
	if ck, err := r.Cookie(signinCookie); err != nil || !equalSecret(tok, ck.Value) {
		if err != nil {
			// No cookie at all: most likely the browser keeps none for
			// this site, which no retry fixes.
			v.Error = "Your browser did not send back this console's cookie: allow cookies for this site, reload the page and try again."
		} else {
			v.Error = "This sign-in form has expired: try again."
		}
		c.h.log.Warn("audit: console refused a sign-in form post: its CSRF token is missing or wrong", "remote", clip(info(r).addr))
		c.renderSignin(w, r, http.StatusForbidden, v)
		return
	}
	if id == "" {
		v.Errors["client_id"] = "Enter the client ID of an admin."
	}
	if secret == "" {
		v.Errors["client_secret"] = "Enter its secret."
	}
	if len(v.Errors) > 0 {
		c.renderSignin(w, r, http.StatusBadRequest, v)
		return
	}
	att, wait, ok := c.h.admit(r, id)
	if !ok {
		w.Header().Set("Retry-After", fmt.Sprint(wait))
		v.Error = fmt.Sprintf("Too many failed sign-ins: try again in %s.", humanDuration(time.Duration(wait)*time.Second))
		c.renderSignin(w, r, http.StatusTooManyRequests, v)
		return
	}
	cl, err := c.h.auth.AuthenticateClient(r.Context(), id, secret)
	c.h.noteAttempt(r, att, id, err)
	switch {
	case errors.Is(err, authsvc.ErrInvalidClient):
		v.Errors["client_secret"] = "Wrong client ID or secret."
		c.renderSignin(w, r, http.StatusUnauthorized, v)
		return
	case err != nil:
		c.failed(w, r, err)
		return
	case !cl.IsAdmin:
		c.h.log.Warn("audit: console sign-in refused: not an admin", "client_id", cl.ID, "remote", clip(info(r).addr))
		v.Errors["client_id"] = "This client is not an admin: only admin clients can sign in."
		c.renderSignin(w, r, http.StatusForbidden, v)
		return
	}
	st, err := c.h.auth.IssueSession(authsvc.WithActor(r.Context(), cl.ID), cl.ID, authsvc.SessionRequest{Audience: consoleAudience, TTL: c.idle})
	if err != nil {
		c.failed(w, r, err)
		return
	}
	c.setSession(w, r, st)
	c.clearCookie(w, r, signinCookie, c.base(r)+"/signin")
	c.h.log.Info("audit: console sign-in", "client_id", cl.ID, "remote", clip(info(r).addr))
	http.Redirect(w, r, c.base(r)+"/clients", http.StatusSeeOther)
}

// signout revokes the session's token and drops the cookie.
func (c *console) signout(w http.ResponseWriter, r *http.Request, s *session, _ url.Values) {
	c.h.log.Info("audit: console sign-out", "client_id", s.admin)
	w.Header().Del("Set-Cookie") // a renewal of this very request: the token goes anyway
	c.endSession(w, r, s.token, "signed-out")
}

// fieldView is a form field as the "input" and "check" templates show it.
type fieldView struct {
	Name, Label, Hint, Value, Error string
	Type, Autocomplete, Described   string
	Required, Autofocus, Checked    bool
}

// field makes a form field of v: its value and error come from v.Form and
// v.Errors. flags: "required", "password", "autofocus" (also given to the
// first field in error), "signin" (the browser may fill it).
func field(v *view, name, label, hint string, flags ...string) fieldView {
	f := fieldView{Name: name, Label: label, Hint: hint, Value: v.Form[name], Error: v.Errors[name], Type: "text", Autocomplete: "off"}
	signin := false
	for _, fl := range flags {
		switch fl {
		case "required":
			f.Required = true
		case "password":
			f.Type, f.Value = "password", "" // a secret is never sent back
		case "autofocus":
			f.Autofocus = len(v.Errors) == 0
		case "signin":
			signin = true
		}
	}
	if signin {
		f.Autocomplete = "username"
		if f.Type == "password" {
			f.Autocomplete = "current-password"
		}
	}
	f.Checked, _ = parseBool(f.Value)
	if f.Error != "" && !v.focused {
		f.Autofocus, v.focused = true, true
	}
	var ids []string
	if f.Error != "" {
		ids = append(ids, name+"-error")
	}
	if hint != "" {
		ids = append(ids, name+"-hint")
	}
	f.Described = strings.Join(ids, " ")
	return f
}
