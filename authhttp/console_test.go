package authhttp

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testdb"
)

// The console through plain HTTP (browser_test.go drives it in a real
// browser): a client that keeps cookies as a browser does and sends the
// Origin a browser sends.

// consoleUser is a person at the console.
type consoleUser struct {
	t      *testing.T
	base   string // the server's URL
	client *http.Client
	origin string // sent with every POST; "" sends none
	last   string // the last page's body, whose CSRF token posts use
}

// consolePage is one response (redirects not followed).
type consolePage struct {
	status int
	header http.Header
	body   string
}

func newConsoleUser(t *testing.T, base string) *consoleUser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &consoleUser{t: t, base: base, client: c, origin: base}
}

func (u *consoleUser) do(method, path string, body url.Values, header map[string]string) consolePage {
	u.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(body.Encode())
	}
	req, err := http.NewRequest(method, u.base+path, rd)
	if err != nil {
		u.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", form)
		if u.origin != "" {
			req.Header.Set("Origin", u.origin)
		}
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := u.client.Do(req)
	if err != nil {
		u.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	p := consolePage{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		u.last = p.body
	}
	return p
}

// get fetches a page, following redirects as a browser does.
func (u *consoleUser) get(path string) consolePage {
	u.t.Helper()
	p := u.do("GET", path, nil, nil)
	for i := 0; i < 5 && p.status == http.StatusSeeOther; i++ {
		p = u.do("GET", strings.TrimPrefix(p.header.Get("Location"), u.base), nil, nil)
	}
	return p
}

// post submits a form with the last page's CSRF token (unless v has one).
func (u *consoleUser) post(path string, v url.Values) consolePage {
	u.t.Helper()
	if _, ok := v["csrf_token"]; !ok {
		v.Set("csrf_token", csrfOf(u.t, u.last))
	}
	return u.do("POST", path, v, nil)
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token on the page:\n%s", body)
	}
	return html.UnescapeString(m[1])
}

// signIn signs in and lands on the clients page.
func (u *consoleUser) signIn(id, secret string) consolePage {
	u.t.Helper()
	u.get("/admin/signin")
	p := u.post("/admin/signin", url.Values{"client_id": {id}, "client_secret": {secret}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/admin/clients" {
		u.t.Fatalf("sign in as %s: %d %s\n%s", id, p.status, p.header.Get("Location"), p.body)
	}
	return p
}

// sessionToken is the session cookie's value the user holds.
func (u *consoleUser) sessionToken() string {
	for _, c := range u.client.Jar.Cookies(mustParse(u.t, u.base+"/admin/")) {
		if c.Name == sessionCookie {
			return c.Value
		}
	}
	return ""
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// want checks a page's status and that its body has each of texts.
func want(t *testing.T, name string, p consolePage, status int, texts ...string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("%s: status %d, want %d\n%s", name, p.status, status, p.body)
	}
	for _, s := range texts {
		if !strings.Contains(p.body, s) {
			t.Fatalf("%s: the page lacks %q:\n%s", name, s, p.body)
		}
	}
}

// setCookie returns the Set-Cookie header of name in p.
func setCookie(p consolePage, name string) string {
	for _, sc := range p.header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, name+"=") {
			return sc
		}
	}
	return ""
}

// TestConsoleWalkthrough: what a person does, on each store: sign in,
// create a client and see its secret once, search, edit, rotate, log out
// everywhere, delete, read the activity, keys and health, sign out.
func TestConsoleWalkthrough(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServerOpts(t, dbURL, authsvc.Config{}, Options{Throttle: Throttle{Off: true}, Console: ConsoleOptions{Version: "v1.2.3"}})
		u := newConsoleUser(t, ts.url)
		u.signIn("root", adminSecret)
		want(t, "clients", u.get("/admin/clients"), 200, `data-client-id="root"`, "Signed in as <strong>root</strong>")

		// Create: errors next to their fields, then a client and its secret, once.
		u.get("/admin/clients/new")
		p := u.post("/admin/clients/new", url.Values{"client_id": {""}})
		want(t, "create without id", p, 400, `<p class="field-error" id="client_id-error">Enter a client ID.</p>`, `aria-invalid="true"`)
		p = u.post("/admin/clients/new", url.Values{"client_id": {"bad id"}, "scope": {"a"}})
		want(t, "create with a space", p, 400, `id="client_id-error">Client_id must be printable ASCII`, `value="a"`)
		p = u.post("/admin/clients/new", url.Values{"client_id": {"svc"}, "scope": {"a\x01"}})
		want(t, "create with a bad scope", p, 400, `id="scope-error">`)
		p = u.post("/admin/clients/new", url.Values{"client_id": {"svc"}, "audience": {strings.Repeat("x", 513)}})
		want(t, "create with a bad audience", p, 400, `id="audience-error">Audience must be`)
		p = u.post("/admin/clients/new", url.Values{"client_id": {"root"}})
		want(t, "create a taken id", p, 409, `id="client_id-error">Client already exists.`)
		p = u.post("/admin/clients/new", url.Values{"client_id": {"svc"}, "scope": {"notes:read notes:write"}, "audience": {"https://notes.test"}})
		want(t, "create", p, 201, "data-secret", "It is shown this once")
		secret := regexp.MustCompile(`data-secret>([^<]+)</code>`).FindStringSubmatch(p.body)[1]
		if len(secret) != 43 {
			t.Fatalf("secret %q", secret)
		}
		old := ts.token("svc", secret)
		page := u.get("/admin/client?id=svc")
		want(t, "client page", page, 200, "<code>notes:read</code>", "<code>https://notes.test</code>")
		if strings.Contains(page.body, secret) || strings.Contains(u.get("/admin/clients").body, secret) {
			t.Fatal("the secret is shown twice")
		}

		// Search by prefix.
		u.get("/admin/clients/new")
		u.post("/admin/clients/new", url.Values{"client_id": {"other"}})
		p = u.get("/admin/clients?prefix=sv")
		want(t, "search", p, 200, `data-client-id="svc"`)
		if strings.Contains(p.body, `data-client-id="other"`) || strings.Contains(p.body, `data-client-id="root"`) {
			t.Fatalf("search sv found others:\n%s", p.body)
		}
		want(t, "search none", u.get("/admin/clients?prefix=zz"), 200, "No client's ID starts with “zz”.")
		want(t, "search NUL", u.get("/admin/clients?prefix=a%00"), 400, `id="prefix-error"`)

		// Edit scopes, audiences and the admin flag.
		u.get("/admin/client?id=svc")
		p = u.post("/admin/client/update", url.Values{"client_id": {"svc"}, "scope": {"notes:read"}, "audience": {""}, "is_admin": {"on"}})
		if p.status != 303 || p.header.Get("Location") != "/admin/client?id=svc&done=updated" {
			t.Fatalf("update: %d %v", p.status, p.header)
		}
		want(t, "updated", u.get(p.header.Get("Location")), 200, "Saved.", "<dd>yes</dd>")
		p = u.post("/admin/client/update", url.Values{"client_id": {"svc"}, "scope": {"a\x01"}})
		want(t, "update with a bad scope", p, 400, `id="scope-error">`, `value="a`)
		if c, _ := ts.auth.Client(context.Background(), "svc"); strings.Join(c.Scopes, " ") != "notes:read" || !c.IsAdmin || len(c.Audiences) != 0 {
			t.Fatalf("after update: %+v", c)
		}

		// Rotate with a grace period: both secrets work, the new one shown once.
		u.get("/admin/client?id=svc")
		want(t, "rotate bad grace", u.post("/admin/client/rotate", url.Values{"client_id": {"svc"}, "grace": {"forever"}}), 400, `id="grace-error"`)
		p = u.post("/admin/client/rotate", url.Values{"client_id": {"svc"}, "grace": {"24h"}})
		want(t, "rotate", p, 200, "data-secret", "The old secret keeps working for 1 day")
		newSecret := regexp.MustCompile(`data-secret>([^<]+)</code>`).FindStringSubmatch(p.body)[1]
		ts.token("svc", secret)
		ts.token("svc", newSecret)
		expect(t, "token after a rotation", ts.form("/verify", nil, old), 200)

		// Log out everywhere: the tokens issued so far are refused.
		u.get("/admin/client?id=svc")
		p = u.post("/admin/client/logout", url.Values{"client_id": {"svc"}})
		if p.status != 303 {
			t.Fatalf("logout: %d %s", p.status, p.body)
		}
		want(t, "logged out", u.get(p.header.Get("Location")), 200, "Logged out everywhere")
		expect(t, "token after logout everywhere", ts.form("/verify", nil, old), 401)

		// Delete: a confirmation page, and the id typed again.
		want(t, "delete page", u.get("/admin/client/delete?id=svc"), 200, "Type svc to confirm")
		want(t, "delete unconfirmed", u.post("/admin/client/delete", url.Values{"client_id": {"svc"}, "confirm": {"sv"}}), 400,
			`id="confirm-error">Type the client ID exactly as shown`)
		if _, err := ts.auth.Client(context.Background(), "svc"); err != nil {
			t.Fatalf("deleted without confirmation: %v", err)
		}
		p = u.post("/admin/client/delete", url.Values{"client_id": {"svc"}, "confirm": {"svc"}})
		if p.status != 303 || p.header.Get("Location") != "/admin/clients?done=deleted" {
			t.Fatalf("delete: %d %v", p.status, p.header)
		}
		if _, err := ts.auth.Client(context.Background(), "svc"); !errors.Is(err, authsvc.ErrClientNotFound) {
			t.Fatalf("after delete: %v", err)
		}
		want(t, "deleted client page", u.get("/admin/client?id=svc"), 404, "There is no client with that ID")
		want(t, "client page without id", u.get("/admin/client"), 400)

		// Activity: what happened to svc, by whom.
		p = u.get("/admin/activity?client=svc")
		want(t, "activity", p, 200, `data-action="client_deleted"`, `data-action="client_logged_out"`, `data-action="secret_rotated"`,
			`data-action="client_updated"`, `data-action="client_created"`, `<td data-label="By">root</td>`)
		want(t, "activity bad filter", u.get("/admin/activity?client="+strings.Repeat("x", 129)), 400, `id="client-error"`)
		want(t, "activity bad position", u.get("/admin/activity?before=x"), 400)

		// Keys: list and rotate.
		p = u.get("/admin/keys")
		want(t, "keys", p, 200, "signing now", "EdDSA")
		p = u.post("/admin/keys/rotate", url.Values{})
		if p.status != 303 {
			t.Fatalf("rotate keys: %d %s", p.status, p.body)
		}
		p = u.get(p.header.Get("Location"))
		want(t, "keys rotated", p, 200, "A new signing key is published", "next: published")
		if n := len(ts.auth.Keys()); n != 2 {
			t.Fatalf("%d keys after a rotation", n)
		}
		want(t, "health", u.get("/admin/health"), 200, `<span class="ok">reachable</span>`, "v1.2.3", "EdDSA")

		// Every action is in the audit log with the admin; no secret is.
		logs := ts.logs.String()
		for _, line := range []string{
			`"msg":"audit: console sign-in","client_id":"root"`,
			`"msg":"audit: client created","client_id":"svc","is_admin":false,"auth_method":"client_secret_basic","federated_credentials":0,"by":"root","via":"console"`,
			`"msg":"audit: client updated","client_id":"svc","by":"root","via":"console"`,
			`"msg":"audit: client secret rotated","client_id":"svc","grace":"24h0m0s","logout_everywhere":false,"by":"root","via":"console"`,
			`"msg":"audit: client logged out everywhere","client_id":"svc","by":"root","via":"console"`,
			`"msg":"audit: client deleted","client_id":"svc","by":"root","via":"console"`,
			`"msg":"audit: signing key rotation started"`,
		} {
			if !strings.Contains(logs, line) {
				t.Errorf("audit log lacks %s", line)
			}
		}
		token := u.sessionToken()
		for _, s := range []string{secret, newSecret, adminSecret, token} {
			if strings.Contains(logs, s) {
				t.Fatalf("a secret or token is in the log")
			}
		}

		// Sign out: the session's token is revoked, and the cookie ends.
		u.get("/admin/clients")
		p = u.post("/admin/signout", url.Values{})
		if p.status != 303 || p.header.Get("Location") != "/admin/signin?reason=signed-out" || !strings.Contains(setCookie(p, sessionCookie), "Max-Age=0") {
			t.Fatalf("sign out: %d %v", p.status, p.header)
		}
		if _, err := ts.auth.Verify(context.Background(), token); !errors.Is(err, authsvc.ErrTokenRevoked) {
			t.Fatalf("session token after sign-out: %v", err)
		}
		want(t, "after sign-out", u.get("/admin/clients"), 200, "Sign in with an admin client")
	})
}

// TestConsoleSignIn: only an admin's right credentials sign in, through
// the throttle; the cookies carry their flags; a refusal says why next to
// the field.
func TestConsoleSignIn(t *testing.T) {
	ts := newTestServerOpts(t, testdb.SQLite(t), authsvc.Config{}, Options{Throttle: Throttle{Pair: ThrottleLimit{Burst: 3, Every: time.Hour}}})
	_, plain := ts.createClient(url.Values{"client_id": {"plain"}})
	u := newConsoleUser(t, ts.url)

	p := u.get("/admin")
	want(t, "/admin signed out", p, 200, `action="/admin/signin"`, `name="client_id"`, `name="client_secret"`, `<label for="client_id">`, `<label for="client_secret">`)
	if sc := setCookie(u.do("GET", "/admin/signin", nil, nil), signinCookie); sc != "" {
		t.Fatalf("the sign-in cookie is set again: %s", sc) // the browser has one: it is kept
	}
	fresh := newConsoleUser(t, ts.url).do("GET", "/admin/signin", nil, nil)
	if sc := setCookie(fresh, signinCookie); !strings.Contains(sc, "Path=/admin/signin") || !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Strict") {
		t.Fatalf("sign-in cookie %q", sc)
	}

	p = u.post("/admin/signin", url.Values{"client_id": {""}, "client_secret": {""}})
	want(t, "empty", p, 400, `id="client_id-error">Enter the client ID of an admin.`, `id="client_secret-error">Enter its secret.`)
	p = u.post("/admin/signin", url.Values{"client_id": {"plain"}, "client_secret": {plain}})
	want(t, "not an admin", p, 403, `id="client_id-error">This client is not an admin`, `value="plain"`)
	p = u.post("/admin/signin", url.Values{"client_id": {"root"}, "client_secret": {"wrong secret for root, long"}})
	want(t, "wrong secret", p, 401, `id="client_secret-error">Wrong client ID or secret.`, `value="root"`)
	if strings.Contains(p.body, "wrong secret for root") {
		t.Fatal("the secret typed is sent back")
	}
	if !strings.Contains(ts.logs.String(), `"msg":"audit: authentication failed","client_id":"root"`) {
		t.Fatal("a failed sign-in is not in the audit log")
	}
	if sc := setCookie(p, sessionCookie); sc != "" {
		t.Fatalf("a refused sign-in set %s", sc)
	}
	// The throttle: the pair's burst is 3 failures.
	u.post("/admin/signin", url.Values{"client_id": {"root"}, "client_secret": {"wrong secret for root, long"}})
	u.post("/admin/signin", url.Values{"client_id": {"root"}, "client_secret": {"wrong secret for root, long"}})
	p = u.post("/admin/signin", url.Values{"client_id": {"root"}, "client_secret": {adminSecret}})
	want(t, "throttled", p, 429, "Too many failed sign-ins: try again in")
	if p.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}

	// Another client signs in from the same address (the pair limit is
	// the pair's); the session cookie's flags.
	w := newConsoleUser(t, ts.url)
	ts.createClient(url.Values{"client_id": {"boss"}, "client_secret": {"the boss's chosen secret"}, "is_admin": {"true"}})
	p = w.signIn("boss", "the boss's chosen secret")
	sc := setCookie(p, sessionCookie)
	for _, flag := range []string{"Path=/admin;", "Max-Age=900", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(sc, flag) {
			t.Fatalf("session cookie %q lacks %s", sc, flag)
		}
	}
	if strings.Contains(sc, "Secure") {
		t.Fatalf("session cookie over plain HTTP is Secure: %q", sc)
	}
	if !strings.Contains(setCookie(p, signinCookie), "Max-Age=0") {
		t.Fatal("the sign-in cookie is not dropped after sign-in")
	}
	// The session token is for the console only: not an API token.
	expect(t, "session token at an admin route", ts.do("GET", "/clients", "", "", map[string]string{"Authorization": "Bearer " + w.sessionToken()}), 401)
	// A deleted admin cannot sign in.
	if err := ts.auth.DeleteClient(context.Background(), "boss"); err != nil {
		t.Fatal(err)
	}
	x := newConsoleUser(t, ts.url)
	x.get("/admin/signin")
	want(t, "deleted admin", x.post("/admin/signin", url.Values{"client_id": {"boss"}, "client_secret": {"the boss's chosen secret"}}), 401)
}

// TestConsoleSecureCookie: under TLS the session cookie is Secure, and the
// Origin check wants the https origin.
func TestConsoleSecureCookie(t *testing.T) {
	ctx := context.Background()
	store, err := authsvc.OpenStore(ctx, testdb.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	a, err := authsvc.New(ctx, store, authsvc.Config{Issuer: "https://authd.test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if _, _, err := a.CreateClient(ctx, authsvc.NewClient{ID: "root", Secret: adminSecret, IsAdmin: true}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(NewHandler(a, Options{}))
	t.Cleanup(srv.Close)
	u := newConsoleUser(t, srv.URL)
	u.client.Transport = srv.Client().Transport
	u.get("/admin/signin")
	u.origin = strings.Replace(srv.URL, "https://", "http://", 1)
	want(t, "http origin to https", u.post("/admin/signin", url.Values{"client_id": {"root"}, "client_secret": {adminSecret}}), 403)
	u.origin = srv.URL
	p := u.signIn("root", adminSecret)
	if sc := setCookie(p, sessionCookie); !strings.Contains(sc, "; Secure") {
		t.Fatalf("session cookie under TLS: %q", sc)
	}
	// Behind a proxy that ends TLS: the issuer's origin is the page's.
	u.origin = "https://authd.test"
	u.get("/admin/clients")
	if p := u.post("/admin/keys/rotate", url.Values{}); p.status != http.StatusSeeOther {
		t.Fatalf("post with the issuer's origin: %d", p.status)
	}
}

// TestConsoleForgery: a post without the session's CSRF token, or from
// another origin, is refused and does nothing.
func TestConsoleForgery(t *testing.T) {
	ts := newTestServer(t, testdb.SQLite(t))
	ts.createClient(url.Values{"client_id": {"victim"}})
	u := newConsoleUser(t, ts.url)
	u.signIn("root", adminSecret)
	u.get("/admin/client?id=victim")
	token := csrfOf(t, u.last)
	posts := map[string]url.Values{
		"/admin/clients/new":     {"client_id": {"forged"}},
		"/admin/client/update":   {"client_id": {"victim"}, "is_admin": {"on"}},
		"/admin/client/rotate":   {"client_id": {"victim"}},
		"/admin/client/logout":   {"client_id": {"victim"}},
		"/admin/client/delete":   {"client_id": {"victim"}, "confirm": {"victim"}},
		"/admin/keys/rotate":     {},
		"/admin/signout":         {},
		"/admin/nothing-is-here": {},
	}
	for path, v := range posts {
		for _, c := range []struct {
			name   string
			token  string
			header map[string]string
		}{
			{"no token", "", nil},
			{"another session's token", csrfToken("another session"), nil},
			{"cross-site origin", token, map[string]string{"Origin": "https://evil.test"}},
			{"null origin", token, map[string]string{"Origin": "null"}},
			{"cross-site fetch", token, map[string]string{"Origin": "", "Sec-Fetch-Site": "cross-site"}},
			{"cross-site referer", token, map[string]string{"Origin": "", "Referer": "https://evil.test/page"}},
		} {
			body := url.Values{}
			for k, vs := range v {
				body[k] = vs
			}
			if c.token != "" {
				body.Set("csrf_token", c.token)
			}
			p := u.do("POST", path, body, c.header)
			wantStatus := http.StatusForbidden
			if path == "/admin/nothing-is-here" {
				wantStatus = http.StatusMethodNotAllowed
				if p.status == http.StatusNotFound {
					wantStatus = http.StatusNotFound
				}
			}
			if p.status != wantStatus {
				t.Errorf("POST %s with %s: %d, want %d", path, c.name, p.status, wantStatus)
			}
		}
	}
	if c, err := ts.auth.Client(context.Background(), "victim"); err != nil || c.IsAdmin || !c.TokensValidAfter.IsZero() {
		t.Fatalf("a forged post did something: %+v %v", c, err)
	}
	if _, err := ts.auth.Client(context.Background(), "forged"); !errors.Is(err, authsvc.ErrClientNotFound) {
		t.Fatalf("a forged post created a client: %v", err)
	}
	if n := len(ts.auth.Keys()); n != 1 {
		t.Fatalf("a forged post rotated the keys: %d keys", n)
	}
	if !strings.Contains(ts.logs.String(), "audit: console refused a form post") {
		t.Fatal("refused posts are not in the audit log")
	}
	// The session is intact; a post from the console's own page works, and
	// so does one from a program that sends no Origin but the token.
	want(t, "still signed in", u.get("/admin/clients"), 200, "Signed in as")
	p := u.do("POST", "/admin/client/logout", url.Values{"client_id": {"victim"}, "csrf_token": {token}}, map[string]string{"Origin": ""})
	if p.status != http.StatusSeeOther {
		t.Fatalf("post with the token and no Origin: %d %s", p.status, p.body)
	}
	// The sign-in form has its own token.
	v := newConsoleUser(t, ts.url)
	v.get("/admin/signin")
	want(t, "sign-in without token", v.do("POST", "/admin/signin", url.Values{"client_id": {"root"}, "client_secret": {adminSecret}}, nil), 403, "This sign-in form has expired")
	want(t, "sign-in cross-site", v.do("POST", "/admin/signin", url.Values{"csrf_token": {csrfOf(t, v.last)}, "client_id": {"root"}, "client_secret": {adminSecret}},
		map[string]string{"Origin": "https://evil.test"}), 403)
	w := newConsoleUser(t, ts.url) // no sign-in cookie at all
	want(t, "sign-in without the cookie", w.do("POST", "/admin/signin", url.Values{"csrf_token": {"x"}, "client_id": {"root"}, "client_secret": {adminSecret}}, nil), 403,
		"allow cookies for this site")
}

// TestConsoleHeaders: every console response forbids framing, inline
// script and caching; no page has inline script or style.
func TestConsoleHeaders(t *testing.T) {
	ts := newTestServer(t, testdb.SQLite(t))
	u := newConsoleUser(t, ts.url)
	check := func(path string, p consolePage) {
		t.Helper()
		hd := p.header
		csp := hd.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("%s: CSP %q lacks %s", path, csp, d)
			}
		}
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP allows inline code", path)
		}
		if hd.Get("Cache-Control") != "no-store" || hd.Get("X-Frame-Options") != "DENY" || hd.Get("X-Content-Type-Options") != "nosniff" ||
			hd.Get("Referrer-Policy") != "same-origin" {
			t.Errorf("%s: headers %v", path, hd)
		}
		if strings.HasPrefix(hd.Get("Content-Type"), "text/html") {
			for _, bad := range []string{"<script>", "<style", " style=", " onclick=", " onsubmit=", "javascript:"} {
				if strings.Contains(p.body, bad) {
					t.Errorf("%s: inline code %q", path, bad)
				}
			}
		}
	}
	for _, path := range []string{"/admin", "/admin/signin", "/admin/clients", "/admin/static/console.css", "/admin/static/nope", "/admin/nope"} {
		check(path, u.do("GET", path, nil, nil))
	}
	u.signIn("root", adminSecret)
	ts.createClient(url.Values{"client_id": {"svc"}})
	for _, path := range []string{"/admin/clients", "/admin/clients/new", "/admin/client?id=svc", "/admin/client/delete?id=svc",
		"/admin/keys", "/admin/activity", "/admin/health", "/admin/nope", "/admin/client?id=nope"} {
		p := u.do("GET", path, nil, nil)
		check(path, p)
		if p.status == 200 && !strings.Contains(p.body, `<html lang="en">`) {
			t.Errorf("%s: not a page", path)
		}
	}
	u.get("/admin/clients/new")
	check("create", u.post("/admin/clients/new", url.Values{"client_id": {"made"}}))
	for path, ct := range map[string]string{"/admin/static/console.css": "text/css; charset=utf-8", "/admin/static/console.js": "text/javascript; charset=utf-8"} {
		p := u.do("GET", path, nil, nil)
		if p.status != 200 || p.header.Get("Content-Type") != ct || len(p.body) < 100 {
			t.Errorf("%s: %d %q", path, p.status, p.header.Get("Content-Type"))
		}
	}
	// Every form that posts carries the CSRF token; every field has a label.
	for _, path := range []string{"/admin/clients", "/admin/clients/new", "/admin/client?id=svc", "/admin/client/delete?id=svc", "/admin/keys", "/admin/activity"} {
		body := u.get(path).body
		forms := regexp.MustCompile(`(?s)<form[^>]*method="post".*?</form>`).FindAllString(body, -1)
		for _, f := range forms {
			if !strings.Contains(f, `name="csrf_token"`) {
				t.Errorf("%s: a form without a CSRF token:\n%s", path, f)
			}
		}
		for _, m := range regexp.MustCompile(`<(?:input|select) [^>]*id="([^"]+)"`).FindAllStringSubmatch(body, -1) {
			if !strings.Contains(body, `<label for="`+m[1]+`">`) {
				t.Errorf("%s: field %s has no label", path, m[1])
			}
		}
	}
}

// TestConsoleSessions: a session ends when its admin is demoted or
// deleted (on the next click), after idle time, after its maximum age, and
// when its cookie holds anything but a console session token; renewal
// revokes the token it replaces.
func TestConsoleSessions(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		clock := &testClock{t: time.Now()}
		ts := newTestServerOpts(t, dbURL, authsvc.Config{Now: clock.Now},
			Options{Throttle: Throttle{Off: true}, Console: ConsoleOptions{IdleTimeout: 15 * time.Minute, MaxAge: 20 * time.Minute}})
		ctx := context.Background()
		ts.createClient(url.Values{"client_id": {"boss"}, "client_secret": {"the boss's chosen secret"}, "is_admin": {"true"}})

		// Demoted: the next click ends the session, and its token is revoked.
		u := newConsoleUser(t, ts.url)
		u.signIn("boss", "the boss's chosen secret")
		tok := u.sessionToken()
		want(t, "signed in", u.get("/admin/keys"), 200)
		f := false
		if _, err := ts.auth.UpdateClient(ctx, "boss", authsvc.ClientUpdate{IsAdmin: &f}); err != nil {
			t.Fatal(err)
		}
		p := u.do("GET", "/admin/clients", nil, nil)
		if p.status != 303 || p.header.Get("Location") != "/admin/signin?reason=demoted" || !strings.Contains(setCookie(p, sessionCookie), "Max-Age=0") {
			t.Fatalf("demoted: %d %v", p.status, p.header)
		}
		want(t, "demoted sign-in page", u.get("/admin/signin?reason=demoted"), 200, "no longer an admin")
		if _, err := ts.auth.Verify(ctx, tok); !errors.Is(err, authsvc.ErrTokenRevoked) {
			t.Fatalf("a demoted admin's session token: %v", err)
		}
		if !strings.Contains(ts.logs.String(), `"msg":"audit: console session ended: no longer an admin","client_id":"boss"`) {
			t.Fatal("the end of the session is not in the audit log")
		}
		// A form posted after the demotion does nothing.
		tr := true
		setAdmin := func(v *bool) {
			t.Helper()
			if _, err := ts.auth.UpdateClient(ctx, "boss", authsvc.ClientUpdate{IsAdmin: v}); err != nil {
				t.Fatal(err)
			}
		}
		setAdmin(&tr)
		u = newConsoleUser(t, ts.url)
		u.signIn("boss", "the boss's chosen secret")
		u.get("/admin/keys")
		setAdmin(&f)
		if p := u.post("/admin/keys/rotate", url.Values{}); p.status != 303 || !strings.Contains(p.header.Get("Location"), "reason=demoted") {
			t.Fatalf("post after demotion: %d %v", p.status, p.header)
		}
		if n := len(ts.auth.Keys()); n != 1 {
			t.Fatal("a demoted admin rotated the keys")
		}
		// Deleted: the same.
		setAdmin(&tr)
		u = newConsoleUser(t, ts.url)
		u.signIn("boss", "the boss's chosen secret")
		if err := ts.auth.DeleteClient(ctx, "boss"); err != nil {
			t.Fatal(err)
		}
		if p := u.do("GET", "/admin/clients", nil, nil); p.status != 303 || !strings.Contains(p.header.Get("Location"), "/admin/signin?reason=") {
			t.Fatalf("deleted admin: %d %v", p.status, p.header)
		}

		// Renewal: after a third of the idle time a click renews the token
		// and revokes the old one; the session lives on past the first
		// token's expiry while used; idle for longer than IdleTimeout, it
		// ends; and it ends at MaxAge however busy.
		u = newConsoleUser(t, ts.url)
		u.signIn("root", adminSecret)
		first := u.sessionToken()
		clock.Add(4 * time.Minute)
		if p := u.do("GET", "/admin/clients", nil, nil); p.status != 200 || setCookie(p, sessionCookie) != "" {
			t.Fatalf("before a third of the idle time: %d, cookie %q", p.status, setCookie(p, sessionCookie))
		}
		clock.Add(2 * time.Minute)
		csrfBefore := csrfOf(t, u.get("/admin/clients").body)
		second := u.sessionToken()
		if second == first {
			t.Fatal("not renewed after 6 minutes")
		}
		if _, err := ts.auth.Verify(ctx, first); !errors.Is(err, authsvc.ErrTokenRevoked) {
			t.Fatalf("the replaced token: %v", err)
		}
		// A form rendered before the renewal still posts (same session).
		clock.Add(6 * time.Minute)
		u.get("/admin/keys")
		if u.sessionToken() == second {
			t.Fatal("not renewed")
		}
		if p := u.post("/admin/keys/rotate", url.Values{"csrf_token": {csrfBefore}}); p.status != 303 || strings.Contains(p.header.Get("Location"), "signin") {
			t.Fatalf("post with the token of a page before renewal: %d %v", p.status, p.header)
		}
		// The old cookie, replayed, is refused.
		replay := newConsoleUser(t, ts.url)
		replay.client.Jar.SetCookies(mustParse(t, ts.url+"/admin/"), []*http.Cookie{{Name: sessionCookie, Value: second, Path: "/admin"}})
		if p := replay.do("GET", "/admin/clients", nil, nil); p.status != 303 || p.header.Get("Location") != "/admin/signin?reason=expired" {
			t.Fatalf("replayed replaced token: %d %v", p.status, p.header)
		}
		// Maximum age: 20 minutes after sign-in, however busy (12 so far).
		clock.Add(6 * time.Minute)
		want(t, "at 18 minutes", u.get("/admin/clients"), 200, "Signed in as")
		clock.Add(3 * time.Minute)
		if p := u.do("GET", "/admin/clients", nil, nil); p.status != 303 || p.header.Get("Location") != "/admin/signin?reason=expired" {
			t.Fatalf("past the maximum age: %d %v", p.status, p.header)
		}
		// Idle: a session unused for longer than IdleTimeout has ended.
		u = newConsoleUser(t, ts.url)
		u.signIn("root", adminSecret)
		clock.Add(16 * time.Minute)
		if p := u.do("GET", "/admin/clients", nil, nil); p.status != 303 || p.header.Get("Location") != "/admin/signin?reason=expired" {
			t.Fatalf("after idle time: %d %v", p.status, p.header)
		}

		// The cookie holds only console session tokens: an API token of
		// the admin, or junk, is no session.
		for name, value := range map[string]string{"API token": ts.token("root", adminSecret), "junk": "junk", "empty": ""} {
			v := newConsoleUser(t, ts.url)
			v.client.Jar.SetCookies(mustParse(t, ts.url+"/admin/"), []*http.Cookie{{Name: sessionCookie, Value: value, Path: "/admin"}})
			if p := v.do("GET", "/admin/clients", nil, nil); p.status != 303 || !strings.HasPrefix(p.header.Get("Location"), "/admin/signin") {
				t.Fatalf("%s in the cookie: %d %v", name, p.status, p.header)
			}
		}
	})
}

// TestConsoleBadInput: what the console cannot use is refused with a page
// that says so, and changes nothing.
func TestConsoleBadInput(t *testing.T) {
	ts := newTestServer(t, testdb.SQLite(t))
	ts.createClient(url.Values{"client_id": {"svc"}, "scope": {"a"}})
	u := newConsoleUser(t, ts.url)
	u.signIn("root", adminSecret)
	u.get("/admin/client?id=svc")
	token := csrfOf(t, u.last)
	for _, c := range []struct {
		name, path, ct, body string
		status               int
	}{
		{"field twice", "/admin/client/update", form, "csrf_token=" + token + "&client_id=svc&scope=b&scope=c", 400},
		{"token twice", "/admin/client/update", form, "csrf_token=" + token + "&csrf_token=" + token + "&client_id=svc", 403},
		{"too large", "/admin/client/update", form, "csrf_token=" + token + "&client_id=svc&scope=" + strings.Repeat("a", 70<<10), 413},
		{"not a form", "/admin/client/update", "text/plain", "hello", 415},
		{"malformed form", "/admin/client/update", form, "csrf_token=" + token + "&scope=%zz", 400},
		{"unknown client", "/admin/client/update", form, "csrf_token=" + token + "&client_id=ghost&scope=b", 404},
		{"no client", "/admin/client/rotate", form, "csrf_token=" + token, 400},
		{"NUL client", "/admin/client/logout", form, "csrf_token=" + token + "&client_id=a%00b", 400},
		{"bad flag", "/admin/client/update", form, "csrf_token=" + token + "&client_id=svc&is_admin=perhaps", 400},
		{"bad logout flag", "/admin/client/rotate", form, "csrf_token=" + token + "&client_id=svc&logout_everywhere=perhaps", 400},
		{"overlong client", "/admin/client/delete", form, "csrf_token=" + token + "&client_id=" + strings.Repeat("x", 200) + "&confirm=x", 400},
	} {
		req, _ := http.NewRequest("POST", ts.url+c.path, strings.NewReader(c.body))
		req.Header.Set("Content-Type", c.ct)
		req.Header.Set("Origin", ts.url)
		resp, err := u.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		p := consolePage{status: resp.StatusCode, header: resp.Header, body: string(b)}
		if p.status != c.status || !strings.Contains(p.header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %q, want %d\n%s", c.name, p.status, p.header.Get("Content-Type"), c.status, p.body)
		}
	}
	if c, _ := ts.auth.Client(context.Background(), "svc"); strings.Join(c.Scopes, " ") != "a" || c.IsAdmin || !c.TokensValidAfter.IsZero() {
		t.Fatalf("bad input changed the client: %+v", c)
	}
	want(t, "GET of a post route", u.do("GET", "/admin/client/update", nil, nil), 405)
	want(t, "unknown page", u.do("GET", "/admin/nope", nil, nil), 404, "There is no such page")
	want(t, "unknown static file", u.do("GET", "/admin/static/secret.txt", nil, nil), 404)
}

// TestConsoleOff: Console{Off: true} serves no console at all.
func TestConsoleOff(t *testing.T) {
	ts := newTestServerOpts(t, testdb.SQLite(t), authsvc.Config{}, Options{Throttle: Throttle{Off: true}, Console: ConsoleOptions{Off: true}})
	for _, path := range []string{"/admin", "/admin/", "/admin/signin", "/admin/static/console.css"} {
		r := ts.do("GET", path, "", "", nil)
		expect(t, path, r, 404)
		if r.header.Get("Content-Security-Policy") != "" {
			t.Errorf("%s: console headers with the console off", path)
		}
	}
	expect(t, "POST /admin/signin", ts.do("POST", "/admin/signin", form, "client_id=root&client_secret="+adminSecret, nil), 404)
}

// TestConsoleMounted: under a prefix (http.StripPrefix) the links and the
// cookie's path carry it.
func TestConsoleMounted(t *testing.T) {
	ctx := context.Background()
	store, err := authsvc.OpenStore(ctx, testdb.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	a, err := authsvc.New(ctx, store, authsvc.Config{Issuer: "http://authd.test/auth"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if _, _, err := a.CreateClient(ctx, authsvc.NewClient{ID: "root", Secret: adminSecret, IsAdmin: true}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/auth/", http.StripPrefix("/auth", NewHandler(a, Options{})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	u := newConsoleUser(t, srv.URL)
	p := u.do("GET", "/auth/admin", nil, nil)
	if p.status != 303 || p.header.Get("Location") != "/auth/admin/clients" {
		t.Fatalf("mounted /auth/admin: %d %v", p.status, p.header)
	}
	want(t, "mounted sign-in", u.get("/auth/admin/signin"), 200, `action="/auth/admin/signin"`, `href="/auth/admin/static/console.css"`)
	p = u.post("/auth/admin/signin", url.Values{"client_id": {"root"}, "client_secret": {adminSecret}})
	if p.status != 303 || p.header.Get("Location") != "/auth/admin/clients" || !strings.Contains(setCookie(p, sessionCookie), "Path=/auth/admin;") {
		t.Fatalf("mounted sign-in: %d %v", p.status, p.header)
	}
	want(t, "mounted clients", u.get("/auth/admin/clients"), 200, `href="/auth/admin/client?id=root"`)
}

// TestHumanTimes: times read relative and absolute.
func TestHumanTimes(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0 seconds", time.Second: "1 second", 90 * time.Second: "1 minute 30 seconds", 3 * time.Hour: "3 hours",
		26*time.Hour + 5*time.Minute + 7*time.Second: "1 day 2 hours", -2 * time.Minute: "2 minutes",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
	now := time.Now()
	for tm, want := range map[time.Time]string{
		now: "just now", now.Add(-3 * time.Hour): "3 hours ago", now.Add(10 * time.Minute): "in 10 minutes", {}: "never",
		now.Add(-49 * time.Hour): "2 days 1 hour ago",
	} {
		if got := agoFrom(tm, now); got != want {
			t.Errorf("agoFrom(%v) = %q, want %q", tm, got, want)
		}
	}
	if got := absTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)); got != "2026-01-02 03:04:05 UTC" {
		t.Errorf("absTime = %q", got)
	}
}

// TestConsoleEscapes: a client_id may hold <, >, &, quotes and slashes
// (printable ASCII): every page shows it as text and links to it intact.
func TestConsoleEscapes(t *testing.T) {
	ts := newTestServer(t, testdb.SQLite(t))
	id := `<i>x</i>&"'/?#%`
	ts.createClient(url.Values{"client_id": {id}, "scope": {"<b>"}})
	u := newConsoleUser(t, ts.url)
	u.signIn("root", adminSecret)
	for _, path := range []string{"/admin/clients", "/admin/client?id=" + url.QueryEscape(id), "/admin/activity?client=" + url.QueryEscape(id),
		"/admin/client/delete?id=" + url.QueryEscape(id)} {
		p := u.get(path)
		want(t, path, p, 200, "&lt;i&gt;x&lt;/i&gt;&amp;")
		if strings.Contains(p.body, "<i>x</i>") || strings.Contains(p.body, "<b>") {
			t.Fatalf("%s: markup from a client_id or scope is not escaped:\n%s", path, p.body)
		}
	}
	// The list's link reaches the client.
	link := regexp.MustCompile(`<a href="(/admin/client\?id=[^"]*)">&lt;i&gt;`).FindStringSubmatch(u.get("/admin/clients").body)
	if link == nil {
		t.Fatal("no link to the client")
	}
	want(t, "the link", u.get(html.UnescapeString(link[1])), 200, `data-client-id="&lt;i&gt;x&lt;/i&gt;&amp;&#34;&#39;/?#%"`)
	// And an action on it works.
	p := u.post("/admin/client/logout", url.Values{"client_id": {id}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("logout of %q: %d", id, p.status)
	}
	want(t, "after the action", u.get(p.header.Get("Location")), 200, "Logged out everywhere")
}

// TestConsolePaging: the clients and the activity come 50 a page, with a
// link to the next one, and nothing lost or shown twice.
func TestConsolePaging(t *testing.T) {
	ts := newTestServer(t, testdb.SQLite(t))
	for i := range 60 {
		if _, _, err := ts.auth.CreateClient(context.Background(), authsvc.NewClient{ID: fmt.Sprintf("svc-%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	u := newConsoleUser(t, ts.url)
	u.signIn("root", adminSecret)
	rows := regexp.MustCompile(`<tr data-client-id="([^"]+)"`)
	next := regexp.MustCompile(`<a href="([^"]+)" rel="next">`)
	var seen []string
	path := "/admin/clients?prefix=svc-"
	for range 5 {
		p := u.get(path)
		want(t, path, p, 200)
		for _, m := range rows.FindAllStringSubmatch(p.body, -1) {
			seen = append(seen, m[1])
		}
		m := next.FindStringSubmatch(p.body)
		if m == nil {
			break
		}
		path = html.UnescapeString(m[1])
	}
	if len(seen) != 60 || seen[0] != "svc-00" || seen[59] != "svc-59" {
		t.Fatalf("paged clients: %d, %v", len(seen), seen)
	}
	// The activity: 61 creations and the first key, newest first.
	var ids []string
	actions := regexp.MustCompile(`<tr data-action="client_created">\s*<td data-label="When">.*?</td>\s*<td data-label="What">created</td>\s*<td data-label="Client"><a href="[^"]*">([^<]+)</a>`)
	path = "/admin/activity"
	for range 5 {
		p := u.get(path)
		want(t, path, p, 200)
		for _, m := range actions.FindAllStringSubmatch(p.body, -1) {
			ids = append(ids, m[1])
		}
		m := next.FindStringSubmatch(p.body)
		if m == nil {
			break
		}
		path = html.UnescapeString(m[1])
	}
	if len(ids) != 61 || ids[0] != "svc-59" || ids[60] != "root" {
		t.Fatalf("paged activity: %d, %v", len(ids), ids)
	}
}

// TestConsoleAuthMethods: a client is created or edited to authenticate
// with a secret or with its own key (private_key_jwt, no secret shown).
func TestConsoleAuthMethods(t *testing.T) {
	ts := newTestServer(t, testdb.SQLite(t))
	u := newConsoleUser(t, ts.url)
	u.signIn("root", adminSecret)
	u.get("/admin/clients/new")
	want(t, "private_key_jwt without keys", u.post("/admin/clients/new", url.Values{"client_id": {"signer"}, "token_endpoint_auth_method": {"private_key_jwt"}}),
		400, `id="jwks-error">`)
	want(t, "bad method", u.post("/admin/clients/new", url.Values{"client_id": {"signer"}, "token_endpoint_auth_method": {"magic"}}),
		400, `id="token_endpoint_auth_method-error">Token_endpoint_auth_method must be`)
	want(t, "bad jwks_uri", u.post("/admin/clients/new", url.Values{"client_id": {"signer"}, "token_endpoint_auth_method": {"private_key_jwt"}, "jwks_uri": {"http://keys.example/jwks.json"}}),
		400, `id="jwks_uri-error">`)
	p := u.post("/admin/clients/new", url.Values{"client_id": {"signer"}, "token_endpoint_auth_method": {"private_key_jwt"}, "jwks_uri": {"https://keys.example/jwks.json"}})
	want(t, "private_key_jwt", p, 201, "has no secret", "<code>private_key_jwt</code>")
	if strings.Contains(p.body, "data-secret") {
		t.Fatal("a private_key_jwt client's page shows a secret")
	}
	want(t, "its page", u.get("/admin/client?id=signer"), 200, "keys at <code>https://keys.example/jwks.json</code>", `<option value="private_key_jwt" selected>`)
	// Saving its scopes leaves its keys alone; then it turns to a secret method.
	p = u.post("/admin/client/update", url.Values{"client_id": {"signer"}, "scope": {"a"}, "token_endpoint_auth_method": {"private_key_jwt"}, "jwks_uri": {"https://keys.example/jwks.json"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("save scopes: %d %s", p.status, p.body)
	}
	if c, _ := ts.auth.Client(context.Background(), "signer"); c.JWKSURI != "https://keys.example/jwks.json" || c.AuthMethod != "private_key_jwt" {
		t.Fatalf("after saving scopes: %+v", c)
	}
	ts.createClient(url.Values{"client_id": {"svc"}})
	u.get("/admin/client?id=svc")
	p = u.post("/admin/client/update", url.Values{"client_id": {"svc"}, "token_endpoint_auth_method": {"client_secret_post"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("switch to client_secret_post: %d %s", p.status, p.body)
	}
	if c, _ := ts.auth.Client(context.Background(), "svc"); c.AuthMethod != "client_secret_post" {
		t.Fatalf("after the switch: %+v", c)
	}
}
