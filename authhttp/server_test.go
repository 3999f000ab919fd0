package authhttp

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testdb"
)

// testServer is authd's handler on a real store behind httptest.
type testServer struct {
	t      *testing.T
	url    string
	auth   *authsvc.Authenticator
	store  authsvc.Store
	dbURL  string // the store's URL, for testdb's SQL reads
	logs   *testdb.LogBuffer
	admin  string       // an admin's token
	secret string       // the admin's secret
	client *http.Client // nil: http.DefaultClient (a TLS server's trusts its certificate)
}

const adminSecret = "bootstrap-admin-secret-0123456789"

func newTestServer(t *testing.T, dbURL string) *testServer {
	t.Helper()
	return newTestServerWith(t, dbURL, authsvc.Config{})
}

// newTestServerWith starts authd's handler with cfg (Issuer and Logger are
// set here).
func newTestServerWith(t *testing.T, dbURL string, cfg authsvc.Config) *testServer {
	t.Helper()
	return newTestServerOpts(t, dbURL, cfg, Options{Throttle: Throttle{Off: true}})
}

// newTestServerOpts starts authd's handler with cfg and opts (Issuer and
// Logger are set here).
func newTestServerOpts(t *testing.T, dbURL string, cfg authsvc.Config, opts Options) *testServer {
	t.Helper()
	return newTestServerTLS(t, dbURL, cfg, opts, nil)
}

// newTestServerTLS is newTestServerOpts, served over TLS with tlsCfg
// when it is not nil (its certificate httptest's own unless it has one).
func newTestServerTLS(t *testing.T, dbURL string, cfg authsvc.Config, opts Options, tlsCfg *tls.Config) *testServer {
	t.Helper()
	ctx := context.Background()
	store, err := authsvc.OpenStore(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	logs := &testdb.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Issuer, cfg.Logger = "http://authd.test", log
	a, err := authsvc.New(ctx, store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if _, _, err := a.CreateClient(ctx, authsvc.NewClient{ID: "root", Secret: adminSecret, IsAdmin: true}); err != nil {
		t.Fatal(err)
	}
	opts.Logger = log
	srv := httptest.NewUnstartedServer(NewHandler(a, opts))
	var client *http.Client
	if tlsCfg != nil {
		srv.TLS = tlsCfg
		srv.StartTLS()
		client = srv.Client()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	ts := &testServer{t: t, url: srv.URL, auth: a, store: store, dbURL: dbURL, logs: logs, secret: adminSecret, client: client}
	ts.admin = ts.token("root", adminSecret)
	return ts
}

// reply is a decoded response.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (ts *testServer) do(method, path, contentType, body string, header map[string]string) reply {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.url+path, strings.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := http.DefaultClient
	if ts.client != nil {
		client = ts.client
	}
	resp, err := client.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 && method != http.MethodHead {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			ts.t.Fatalf("%s %s: body is not a JSON object: %q", method, path, raw)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			ts.t.Fatalf("%s %s: Content-Type %q", method, path, ct)
		}
	}
	return r
}

const form = "application/x-www-form-urlencoded"

func (ts *testServer) form(path string, v url.Values, bearer string) reply {
	ts.t.Helper()
	h := map[string]string{}
	if bearer != "" {
		h["Authorization"] = "Bearer " + bearer
	}
	return ts.do(http.MethodPost, path, form, v.Encode(), h)
}

func (ts *testServer) token(id, secret string) string {
	ts.t.Helper()
	r := ts.form("/auth", url.Values{"client_id": {id}, "client_secret": {secret}}, "")
	if r.status != http.StatusOK {
		ts.t.Fatalf("/auth for %s: %d %s", id, r.status, r.raw)
	}
	return r.body["token"].(string)
}

func (ts *testServer) createClient(v url.Values) (string, string) {
	ts.t.Helper()
	r := ts.form("/client", v, ts.admin)
	if r.status != http.StatusCreated || r.body["success"] != true {
		ts.t.Fatalf("POST /client %v: %d %s", v, r.status, r.raw)
	}
	return r.body["client_id"].(string), r.body["client_secret"].(string)
}

func expect(t *testing.T, name string, r reply, status int) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d; body %s", name, r.status, status, r.raw)
	}
	if status >= 400 {
		if r.body["success"] != false || r.body["error"] == nil || r.body["error"] == "" {
			t.Errorf("%s: failure body %s lacks success:false and an error", name, r.raw)
		}
	}
}

// TestSeedWalkthrough is the README's curl walk-through: create a client,
// get a token from /auth, verify it, log it out, see /verify refuse it.
func TestSeedWalkthrough(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		id, secret := ts.createClient(url.Values{"client_id": {"notes"}, "scope": {"notes:read notes:write"}})
		if id != "notes" || len(secret) != 43 {
			t.Fatalf("created %q with secret of %d chars", id, len(secret))
		}
		r := ts.form("/auth", url.Values{"client_id": {"notes"}, "client_secret": {secret}}, "")
		expect(t, "/auth", r, 200)
		if r.body["expiresIn"] != float64(3600) || r.body["expiresin"] != "3600" || r.body["isAdmin"] != false {
			t.Fatalf("/auth body %s", r.raw)
		}
		if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Pragma") != "no-cache" {
			t.Fatalf("/auth cache headers %v", r.header)
		}
		tok := r.body["token"].(string)
		v := ts.form("/verify", nil, tok)
		expect(t, "/verify", v, 200)
		if v.body["sub"] != "notes" || v.body["clientId"] != "notes" || v.body["scope"] != "notes:read notes:write" || v.body["isAdmin"] != false {
			t.Fatalf("/verify body %s", v.raw)
		}
		expect(t, "/logout", ts.form("/logout", url.Values{"token": {tok}}, ""), 200)
		v = ts.form("/verify", nil, tok)
		expect(t, "/verify after logout", v, 401)
		if !strings.Contains(v.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("WWW-Authenticate = %q", v.header.Get("WWW-Authenticate"))
		}
		// Logging out twice keeps it out (seed flaw 4).
		expect(t, "/logout again", ts.form("/logout", url.Values{"token": {tok}}, ""), 200)
		expect(t, "/verify after second logout", ts.form("/verify", nil, tok), 401)
		// Logout by bearer header works too.
		tok2 := ts.token("notes", secret)
		expect(t, "/logout bearer", ts.do("POST", "/logout", "", "", map[string]string{"Authorization": "Bearer " + tok2}), 200)
		expect(t, "/verify after bearer logout", ts.form("/verify", nil, tok2), 401)
	})
}

func TestClientAdminRoutes(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		// JSON body, chosen secret, admin, scope array.
		r := ts.do("POST", "/client", "application/json",
			`{"client_id":"ops","client_secret":"a chosen secret of length","is_admin":true,"scope":["x","y"]}`,
			map[string]string{"Authorization": "Bearer " + ts.admin})
		expect(t, "create JSON", r, 201)
		if r.body["client_secret"] != "a chosen secret of length" || r.body["is_admin"] != true || r.body["scope"] != "x y" {
			t.Fatalf("create JSON body %s", r.raw)
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Fatal("secret-bearing response is cacheable")
		}
		ops := ts.token("ops", "a chosen secret of length")
		// multipart (curl -F) works too.
		var mb bytes.Buffer
		mw := multipart.NewWriter(&mb)
		mw.WriteField("client_id", "multi")
		mw.Close()
		r = ts.do("POST", "/client", mw.FormDataContentType(), mb.String(), map[string]string{"Authorization": "Bearer " + ops})
		expect(t, "create multipart", r, 201)

		expect(t, "duplicate", ts.form("/client", url.Values{"client_id": {"ops"}}, ts.admin), 409)
		list := ts.do("GET", "/clients", "", "", map[string]string{"Authorization": "Bearer " + ts.admin})
		expect(t, "list", list, 200)
		clients := list.body["clients"].([]any)
		if len(clients) != 3 {
			t.Fatalf("list: %s", list.raw)
		}
		// (client_secret_basic is an auth method's name, not a secret.)
		if strings.Contains(strings.ReplaceAll(list.raw, `"client_secret_basic"`, ""), "secret") || strings.Contains(list.raw, "$argon2id") || strings.Contains(list.raw, "$sha256") {
			t.Fatalf("list leaks secrets or hashes: %s", list.raw)
		}
		// Non-admin: 403; no token: 401; bad token: 401.
		_, plainSecret := ts.createClient(url.Values{"client_id": {"plain"}})
		plain := ts.token("plain", plainSecret)
		expect(t, "create by non-admin", ts.form("/client", url.Values{"client_id": {"x1"}}, plain), 403)
		expect(t, "list by non-admin", ts.do("GET", "/clients", "", "", map[string]string{"Authorization": "Bearer " + plain}), 403)
		expect(t, "create without token", ts.form("/client", url.Values{"client_id": {"x2"}}, ""), 401)
		expect(t, "create with bad token", ts.form("/client", url.Values{"client_id": {"x3"}}, "abc.def.ghi"), 401)

		// Delete three ways.
		expect(t, "delete path", ts.do("DELETE", "/client/multi", "", "", map[string]string{"Authorization": "Bearer " + ts.admin}), 200)
		expect(t, "delete path again", ts.do("DELETE", "/client/multi", "", "", map[string]string{"Authorization": "Bearer " + ts.admin}), 404)
		expect(t, "delete form", ts.do("DELETE", "/client", form, "client_id=plain", map[string]string{"Authorization": "Bearer " + ts.admin}), 200)
		expect(t, "deleted client's token", ts.form("/verify", nil, plain), 401)
		ts.createClient(url.Values{"client_id": {"q"}})
		expect(t, "delete query", ts.do("DELETE", "/client?client_id=q", "", "", map[string]string{"Authorization": "Bearer " + ts.admin}), 200)
		expect(t, "delete nothing", ts.do("DELETE", "/client", "", "", map[string]string{"Authorization": "Bearer " + ts.admin}), 400)

		// Seed flaw 7: a deleted or demoted admin's token creates nothing.
		expect(t, "delete ops", ts.do("DELETE", "/client/ops", "", "", map[string]string{"Authorization": "Bearer " + ts.admin}), 200)
		expect(t, "create by deleted admin", ts.form("/client", url.Values{"client_id": {"evil"}, "is_admin": {"true"}}, ops), 401)
		if _, err := ts.auth.Client(context.Background(), "evil"); err == nil {
			t.Fatal("deleted admin created a client")
		}
	})
}

// TestDemotedAdmin: an admin re-created as a non-admin under the same id
// keeps no admin rights through old tokens, nor through new ones.
func TestDemotedAdmin(t *testing.T) {
	ts := newTestServer(t, testdb.SQLite(t))
	_, secret := ts.createClient(url.Values{"client_id": {"boss"}, "is_admin": {"1"}})
	old := ts.token("boss", secret)
	expect(t, "delete", ts.do("DELETE", "/client/boss", "", "", map[string]string{"Authorization": "Bearer " + ts.admin}), 200)
	_, secret2 := ts.createClient(url.Values{"client_id": {"boss"}, "is_admin": {"false"}})
	expect(t, "old admin token", ts.form("/client", url.Values{"client_id": {"evil"}}, old), 401)
	expect(t, "new non-admin token", ts.form("/client", url.Values{"client_id": {"evil"}}, ts.token("boss", secret2)), 403)
}

func TestSeedInjectionsRefused(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		before, _ := ts.auth.Clients(context.Background())
		// Seed flaw 1: login without the secret.
		for _, id := range []string{"root' --", "x' OR '1'='1' --", "x' UNION SELECT 1, 'root', 'x', true --", `root"; --`} {
			r := ts.form("/auth", url.Values{"client_id": {id}, "client_secret": {"anything"}}, "")
			expect(t, "injection login "+id, r, 401)
			if _, has := r.body["token"]; has {
				t.Fatalf("injection %q got a token", id)
			}
		}
		// Seed flaw 2: SQL in a token or header creates an admin.
		inj := "'); INSERT INTO authsvc_clients (client_id, secret_hash, is_admin, created_at, updated_at) VALUES ('pwned', 'x', true, 0, 0); --"
		expect(t, "injection logout", ts.form("/logout", url.Values{"token": {inj}}, ""), 400)
		expect(t, "injection verify", ts.do("POST", "/verify", "", "", map[string]string{"Authorization": "Bearer " + inj}), 401)
		expect(t, "injection create", ts.form("/client", url.Values{"client_id": {"y"}}, inj), 401)
		after, _ := ts.auth.Clients(context.Background())
		if len(after) != len(before) {
			t.Fatalf("clients changed: %d -> %d", len(before), len(after))
		}
		if _, err := ts.auth.Client(context.Background(), "pwned"); err == nil {
			t.Fatal("injected client exists")
		}
		// SQL metacharacters in a client_id are stored as data.
		weird := "o'brien\";--"
		_, secret := ts.createClient(url.Values{"client_id": {weird}})
		if v := ts.form("/verify", nil, ts.token(weird, secret)); v.status != 200 || v.body["sub"] != weird {
			t.Fatalf("weird id: %d %s", v.status, v.raw)
		}
	})
}

func TestBadInput(t *testing.T) {
	ts := newTestServer(t, testdb.SQLite(t))
	adminH := map[string]string{"Authorization": "Bearer " + ts.admin}
	big := "client_id=" + strings.Repeat("a", maxBodyBytes)
	cases := []struct {
		name, method, path, ct, body string
		header                       map[string]string
		status                       int
	}{
		{"auth: no fields", "POST", "/auth", form, "", nil, 400},
		{"auth: no secret", "POST", "/auth", form, "client_id=root", nil, 400},
		{"auth: malformed form", "POST", "/auth", form, "client_id=%zz", nil, 400},
		{"auth: repeated param", "POST", "/auth", form, "client_id=root&client_id=x&client_secret=" + adminSecret, nil, 400},
		{"auth: malformed JSON", "POST", "/auth", "application/json", `{"client_id":`, nil, 400},
		{"auth: JSON array", "POST", "/auth", "application/json", `["x"]`, nil, 400},
		{"auth: JSON trailing", "POST", "/auth", "application/json", `{"client_id":"root"} {}`, nil, 400},
		{"auth: JSON nested", "POST", "/auth", "application/json", `{"client_id":{"a":1}}`, nil, 400},
		{"auth: unknown content type", "POST", "/auth", "text/plain", "client_id=root", nil, 415},
		{"auth: body without type", "POST", "/auth", "", "client_id=root", nil, 415},
		{"auth: malformed content type", "POST", "/auth", "application/", "x", nil, 415},
		{"auth: oversized body", "POST", "/auth", form, big, nil, 413},
		{"auth: oversized JSON", "POST", "/auth", "application/json", `{"client_id":"` + strings.Repeat("a", maxBodyBytes) + `"}`, nil, 413},
		{"auth: bad multipart", "POST", "/auth", "multipart/form-data; boundary=x", "garbage", nil, 400},
		{"auth: wrong secret", "POST", "/auth", form, "client_id=root&client_secret=wrong", nil, 401},
		{"auth: GET", "GET", "/auth", "", "", nil, 405},
		{"verify: no header", "POST", "/verify", "", "", nil, 401},
		{"verify: basic scheme", "POST", "/verify", "", "", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, 401},
		{"verify: empty bearer", "POST", "/verify", "", "", map[string]string{"Authorization": "Bearer "}, 401},
		{"verify: junk", "POST", "/verify", "", "", map[string]string{"Authorization": "Bearer junk"}, 401},
		{"verify: oversize token", "POST", "/verify", "", "", map[string]string{"Authorization": "Bearer " + strings.Repeat("a", 9000)}, 401},
		{"verify: PUT", "PUT", "/verify", "", "", nil, 405},
		{"logout: nothing", "POST", "/logout", "", "", nil, 400},
		{"logout: junk", "POST", "/logout", form, "token=junk", nil, 400},
		{"logout: oversized", "POST", "/logout", form, "token=" + strings.Repeat("a", maxBodyBytes), nil, 413},
		{"logout: two tokens", "POST", "/logout", form, "token=a&token=b", nil, 400},
		{"logout: GET", "GET", "/logout", "", "", nil, 405},
		{"client: no id", "POST", "/client", form, "", adminH, 400},
		{"client: bad is_admin", "POST", "/client", form, "client_id=z&is_admin=maybe", adminH, 400},
		{"client: short secret", "POST", "/client", form, "client_id=z&client_secret=short", adminH, 400},
		{"client: space in id", "POST", "/client", form, "client_id=a+b", adminH, 400},
		{"client: long id", "POST", "/client", form, "client_id=" + strings.Repeat("i", 129), adminH, 400},
		{"client: bad scope", "POST", "/client", form, "client_id=z&scope=%22q%22", adminH, 400},
		{"client: GET", "GET", "/client", "", "", adminH, 405},
		{"clients: POST", "POST", "/clients", "", "", adminH, 405},
		{"unknown route", "GET", "/nope", "", "", nil, 404},
	}
	for _, tc := range cases {
		r := ts.do(tc.method, tc.path, tc.ct, tc.body, tc.header)
		expect(t, tc.name, r, tc.status)
		if tc.status == 405 && r.header.Get("Allow") == "" {
			t.Errorf("%s: 405 without Allow", tc.name)
		}
		for _, leak := range []string{"sql", "SQL", "panic", "goroutine", "$argon2", adminSecret} {
			if strings.Contains(r.raw, leak) {
				t.Errorf("%s: body leaks %q: %s", tc.name, leak, r.raw)
			}
		}
	}
	if r := ts.do("GET", "/auth", "", "", nil); r.header.Get("Allow") != "POST" {
		t.Errorf("Allow = %q", r.header.Get("Allow"))
	}
	// Nothing was created by any of that, and the admin still works.
	clients, _ := ts.auth.Clients(context.Background())
	if len(clients) != 1 {
		t.Fatalf("bad input created clients: %+v", clients)
	}
	expect(t, "admin still valid", ts.form("/verify", nil, ts.admin), 200)
	for _, leak := range []string{adminSecret, ts.admin} {
		if strings.Contains(ts.logs.String(), leak) {
			t.Fatal("a secret or token reached the log")
		}
	}
}

func TestStoreDownIs503(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServerWith(t, dbURL, authsvc.Config{PollInterval: 20 * time.Millisecond, MaxStaleness: 300 * time.Millisecond})
		ts.store.Close()
		deadline := time.Now().Add(3 * time.Second)
		for ts.form("/verify", nil, ts.admin).status != http.StatusServiceUnavailable {
			if time.Now().After(deadline) {
				t.Fatal("/verify still answers from memory after MaxStaleness")
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, c := range []struct {
			name string
			r    reply
		}{
			{"auth", ts.form("/auth", url.Values{"client_id": {"root"}, "client_secret": {adminSecret}}, "")},
			{"verify", ts.form("/verify", nil, ts.admin)},
			{"logout", ts.form("/logout", url.Values{"token": {ts.admin}}, "")},
			{"create", ts.form("/client", url.Values{"client_id": {"x"}}, ts.admin)},
			{"oauth token", ts.do("POST", "/oauth/token", form, "grant_type=client_credentials&client_id=root&client_secret="+adminSecret, nil)},
			{"readyz", ts.do("GET", "/readyz", "", "", nil)},
		} {
			if c.r.status != http.StatusServiceUnavailable {
				t.Errorf("%s with store down: %d %s, want 503", c.name, c.r.status, c.r.raw)
			}
			if strings.Contains(c.r.raw, "closed") || strings.Contains(c.r.raw, "sql") {
				t.Errorf("%s leaks the store error: %s", c.name, c.r.raw)
			}
		}
		expect(t, "healthz", ts.do("GET", "/healthz", "", "", nil), 200)
	})
}
