package authhttp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testdb"
)

// oauthToken gets a token from POST /oauth/token with the given scope and
// audience (either may be empty).
func (ts *testServer) oauthToken(id, secret, scope, audience string) string {
	ts.t.Helper()
	v := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		v.Set("scope", scope)
	}
	if audience != "" {
		v.Set("audience", audience)
	}
	r := ts.do(http.MethodPost, "/oauth/token", form, v.Encode(), map[string]string{"Authorization": basicAuth(id, secret)})
	if r.status != http.StatusOK {
		ts.t.Fatalf("/oauth/token for %s scope %q audience %q: %d %s", id, scope, audience, r.status, r.raw)
	}
	return r.body["access_token"].(string)
}

// expiredToken mints a token for the client that expired an hour ago, with
// a second Authenticator on the same store (so with the same signing keys)
// whose clock is two hours behind.
func (ts *testServer) expiredToken(id, secret string) string {
	ts.t.Helper()
	past := time.Now().Add(-2 * time.Hour)
	a, err := authsvc.New(context.Background(), ts.store, authsvc.Config{Issuer: "http://authd.test", Now: func() time.Time { return past }})
	if err != nil {
		ts.t.Fatal(err)
	}
	tok, err := a.Authenticate(context.Background(), id, secret, authsvc.TokenRequest{})
	if err != nil {
		ts.t.Fatal(err)
	}
	return tok.AccessToken
}

func bearerHeader(tok string) map[string]string {
	if tok == "" {
		return nil
	}
	return map[string]string{"Authorization": "Bearer " + tok}
}

var authHeaders = []string{headerSubject, headerScope, headerAdmin, headerExpires}

// expectPass checks a gateway pass: 200, no body, no caching, and the
// X-Auth-* headers of the token.
func expectPass(t *testing.T, name string, r reply, sub, scope string, admin bool, exp int64) {
	t.Helper()
	expect(t, name, r, http.StatusOK)
	want := map[string]string{
		headerSubject: sub, headerScope: scope,
		headerAdmin: strconv.FormatBool(admin), headerExpires: strconv.FormatInt(exp, 10),
	}
	for _, h := range authHeaders {
		// Present even when empty, so that it replaces a header of that
		// name the client may have sent.
		if got := r.header.Values(h); len(got) != 1 || got[0] != want[h] {
			t.Errorf("%s: %s = %q, want [%q]", name, h, got, want[h])
		}
	}
	if r.raw != "" {
		t.Errorf("%s: body %q, want none", name, r.raw)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("%s: Cache-Control %q", name, r.header.Get("Cache-Control"))
	}
}

// expectRefusal checks a gateway refusal: the status, the WWW-Authenticate
// challenge (exactly, when want is not empty), and no X-Auth-* header.
func expectRefusal(t *testing.T, name string, r reply, status int, challenge string) {
	t.Helper()
	expect(t, name, r, status)
	if challenge != "" && r.header.Get("WWW-Authenticate") != challenge {
		t.Errorf("%s: WWW-Authenticate = %q, want %q", name, r.header.Get("WWW-Authenticate"), challenge)
	}
	for _, h := range authHeaders {
		if v := r.header.Values(h); v != nil {
			t.Errorf("%s: refusal carries %s: %q", name, h, v)
		}
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("%s: Cache-Control %q", name, r.header.Get("Cache-Control"))
	}
}

// claimsOf returns a token's claims as authd verifies them.
func (ts *testServer) claimsOf(tok string) *authsvc.Claims {
	ts.t.Helper()
	c, err := ts.auth.Verify(context.Background(), tok)
	if err != nil {
		ts.t.Fatal(err)
	}
	return c
}

const (
	challengeNone    = `Bearer realm="authd"`
	challengeInvalid = `Bearer realm="authd", error="invalid_token"`
)

// TestForwardAuthHeaders: a pass carries each X-Auth-* header of the
// token, on GET and HEAD, with no body; the token itself is never echoed.
func TestForwardAuthHeaders(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		_, secret := ts.createClient(url.Values{"client_id": {"notes"}, "scope": {"notes:read notes:write"}})
		_, bareSecret := ts.createClient(url.Values{"client_id": {"bare"}})

		cases := []struct {
			name, tok, sub, scope string
			admin                 bool
		}{
			{"all scopes", ts.token("notes", secret), "notes", "notes:read notes:write", false},
			{"narrowed scope", ts.oauthToken("notes", secret, "notes:read", ""), "notes", "notes:read", false},
			{"no scope", ts.token("bare", bareSecret), "bare", "", false},
			{"admin", ts.admin, "root", "", true},
		}
		for _, c := range cases {
			exp := ts.claimsOf(c.tok).ExpiresAt
			if exp < time.Now().Unix() || exp > time.Now().Add(2*time.Hour).Unix() {
				t.Fatalf("%s: exp %d is not within the token lifetime", c.name, exp)
			}
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				r := ts.do(method, "/verify", "", "", bearerHeader(c.tok))
				expectPass(t, method+" "+c.name, r, c.sub, c.scope, c.admin, exp)
				for k, vs := range r.header {
					for _, v := range vs {
						if strings.Contains(v, c.tok) {
							t.Errorf("%s %s: header %s echoes the token", method, c.name, k)
						}
					}
				}
			}
		}
		// The seed's POST form is unchanged: the claims as JSON.
		r := ts.form("/verify", nil, cases[0].tok)
		expect(t, "POST /verify", r, http.StatusOK)
		if r.body["sub"] != "notes" || r.body["scope"] != "notes:read notes:write" {
			t.Fatalf("POST /verify body %s", r.raw)
		}
		for _, c := range cases {
			if strings.Contains(ts.logs.String(), c.tok) {
				t.Fatalf("%s: the token reached the log", c.name)
			}
		}
	})
}

// TestForwardAuthRequirements: the scope and audience query parameters,
// repeated or space-separated, are all required; a token without one of
// them is 403 with an insufficient_scope challenge; a malformed query is
// 400 whatever the token.
func TestForwardAuthRequirements(t *testing.T) {
	ts := newTestServer(t, testdb.SQLite(t))
	_, secret := ts.createClient(url.Values{"client_id": {"notes"}, "scope": {"notes:read notes:write admin:x"},
		"audience": {"https://notes.example https://billing.example"}})
	readOnly := ts.oauthToken("notes", secret, "notes:read", "")
	readWrite := ts.oauthToken("notes", secret, "notes:read notes:write", "")
	notesAud := ts.oauthToken("notes", secret, "notes:read", "https://notes.example")
	bothAud := ts.oauthToken("notes", secret, "notes:read", "https://notes.example https://billing.example")
	defaultAud := readOnly // aud is the issuer

	const insufficient = `Bearer realm="authd", error="insufficient_scope"`
	cases := []struct {
		name, tok, query string
		status           int
		challenge        string // exact WWW-Authenticate of a refusal, when not ""
	}{
		{"no requirement", readOnly, "", 200, ""},
		{"scope held", readOnly, "scope=notes:read", 200, ""},
		{"scope lacked", readOnly, "scope=notes:write", 403, insufficient + `, scope="notes:write"`},
		{"repeated, both held", readWrite, "scope=notes:read&scope=notes:write", 200, ""},
		{"repeated, one lacked", readOnly, "scope=notes:read&scope=notes:write", 403, insufficient + `, scope="notes:read notes:write"`},
		{"space-separated, both held", readWrite, "scope=notes:read+notes:write", 200, ""},
		{"space-separated %20", readWrite, "scope=notes:read%20notes:write", 200, ""},
		{"space-separated, one lacked", readOnly, "scope=notes:write+notes:read", 403, insufficient + `, scope="notes:write notes:read"`},
		{"repeated value", readOnly, "scope=notes:read&scope=notes:read", 200, ""},
		{"scope granted to the client but not in the token", readOnly, "scope=admin:x", 403, insufficient + `, scope="admin:x"`},
		{"scope prefix is not the scope", readOnly, "scope=notes", 403, ""},
		{"audience held", notesAud, "audience=https://notes.example", 200, ""},
		{"audience escaped", notesAud, "audience=" + url.QueryEscape("https://notes.example"), 200, ""},
		{"audience lacked", notesAud, "audience=https://billing.example", 403, insufficient},
		{"default audience is the issuer", defaultAud, "audience=http://authd.test", 200, ""},
		{"default audience lacks another", defaultAud, "audience=https://notes.example", 403, insufficient},
		{"two audiences, one held", notesAud, "audience=https://notes.example&audience=https://billing.example", 403, insufficient},
		{"two audiences, both held", bothAud, "audience=https://notes.example&audience=https://billing.example", 200, ""},
		{"two audiences space-separated, both held", bothAud, "audience=https://billing.example+https://notes.example", 200, ""},
		{"scope and audience held", bothAud, "scope=notes:read&audience=https://billing.example", 200, ""},
		{"scope held, audience lacked", readOnly, "scope=notes:read&audience=https://notes.example", 403, insufficient + `, scope="notes:read"`},
		{"audience held, scope lacked", notesAud, "scope=notes:write&audience=https://notes.example", 403, insufficient + `, scope="notes:write"`},
		{"unknown parameter", readWrite, "scopes=notes:write", 400, ""},
		{"unknown parameter beside a good one", readWrite, "scope=notes:read&rd=/x", 400, ""},
		{"bad escape", readWrite, "scope=%zz", 400, ""},
		{"semicolon", readWrite, "scope=notes:read;scope=x", 400, ""},
		{"empty scope", readWrite, "scope=", 400, ""},
		{"blank scope", readWrite, "scope=+", 400, ""},
		{"empty audience", readWrite, "audience=", 400, ""},
		{"scope with a quote", readWrite, "scope=" + url.QueryEscape(`a"b`), 400, ""},
		{"scope with a backslash", readWrite, "scope=" + url.QueryEscape(`a\b`), 400, ""},
		{"scope not ASCII", readWrite, "scope=" + url.QueryEscape("notes:lé"), 400, ""},
		{"scope too long", readWrite, "scope=" + strings.Repeat("s", authsvc.MaxScopeLen+1), 400, ""},
		{"too many scopes", readWrite, "scope=" + manyScopes(authsvc.MaxScopes+1), 400, ""},
		{"as many scopes as allowed", readWrite, "scope=" + manyScopes(authsvc.MaxScopes), 403, ""},
		{"audience with a control character", notesAud, "audience=" + url.QueryEscape("a\x01b"), 400, ""},
		{"audience not UTF-8", notesAud, "audience=%ff", 400, ""},
		{"audience too long", notesAud, "audience=" + strings.Repeat("a", 513), 400, ""},
		{"too many audiences", notesAud, "audience=" + manyScopes(authsvc.MaxAudiences+1), 400, ""},
		{"query too long", readWrite, "scope=notes:read&audience=" + strings.Repeat("a", maxGatewayQuery), 400, ""},
		// The query is a gateway's configuration: it is checked first, so a
		// mistake shows even on requests without a token.
		{"malformed query, no token", "", "scope=", 400, ""},
		{"requirement, no token", "", "scope=notes:read", 401, challengeNone},
		{"requirement, junk token", "junk", "scope=notes:read", 401, challengeInvalid},
	}
	for _, c := range cases {
		path := "/verify"
		if c.query != "" {
			path += "?" + c.query
		}
		r := ts.do(http.MethodGet, path, "", "", bearerHeader(c.tok))
		if c.status == 200 {
			cl := ts.claimsOf(c.tok)
			expectPass(t, c.name, r, cl.Subject, cl.Scope, false, cl.ExpiresAt)
			continue
		}
		expectRefusal(t, c.name, r, c.status, c.challenge)
		if c.status == 403 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), insufficient) {
			t.Errorf("%s: WWW-Authenticate = %q", c.name, r.header.Get("WWW-Authenticate"))
		}
	}
	// A malformed query is the gateway's configuration at fault: the
	// operator finds it in the log.
	if !strings.Contains(ts.logs.String(), `unknown query parameter \"scopes\"`) {
		t.Errorf("a malformed query was not logged:\n%s", ts.logs.String())
	}
}

func manyScopes(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = "s" + strconv.Itoa(i)
	}
	return strings.Join(s, "+")
}

// TestForwardAuthRefusals: no token, a malformed header, a junk, expired,
// revoked or orphaned token are 401 with the right challenge; a store
// outage is 503; none of them carries an X-Auth-* header.
func TestForwardAuthRefusals(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServerWith(t, dbURL, authsvc.Config{PollInterval: 20 * time.Millisecond, MaxStaleness: 300 * time.Millisecond})
		_, secret := ts.createClient(url.Values{"client_id": {"notes"}, "scope": {"notes:read"}})
		good := ts.token("notes", secret)
		expired := ts.expiredToken("notes", secret)
		revoked := ts.token("notes", secret)
		expect(t, "logout", ts.form("/logout", url.Values{"token": {revoked}}, ""), 200)
		_, goneSecret := ts.createClient(url.Values{"client_id": {"gone"}})
		orphan := ts.token("gone", goneSecret)
		expect(t, "delete client", ts.do("DELETE", "/client/gone", "", "", bearerHeader(ts.admin)), 200)

		expectPass(t, "control: good token", ts.do("GET", "/verify", "", "", bearerHeader(good)), "notes", "notes:read", false, ts.claimsOf(good).ExpiresAt)
		cases := []struct {
			name      string
			header    map[string]string
			status    int
			challenge string
		}{
			{"no Authorization", nil, 401, challengeNone},
			{"Basic scheme", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, 401, challengeNone},
			{"token in another header", map[string]string{"X-Token": good}, 401, challengeNone},
			// A blank credential is no credential (RFC 6750 §3.1).
			{"empty bearer", map[string]string{"Authorization": "Bearer "}, 401, challengeNone},
			{"junk", bearerHeader("junk"), 401, challengeInvalid},
			{"not a b64token", map[string]string{"Authorization": "Bearer a,b"}, 401, challengeInvalid},
			{"oversized", bearerHeader(strings.Repeat("a", authsvc.MaxTokenLen+1)), 401, challengeInvalid},
			{"tampered", bearerHeader(good[:len(good)-2] + "xx"), 401, challengeInvalid},
			{"expired", bearerHeader(expired), 401, challengeInvalid},
			{"revoked", bearerHeader(revoked), 401, challengeInvalid},
			{"client deleted", bearerHeader(orphan), 401, challengeInvalid},
		}
		for _, c := range cases {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				r := ts.do(method, "/verify", "", "", c.header)
				if method == http.MethodHead {
					// No body to check on HEAD: status and headers only.
					if r.status != c.status || r.header.Get("WWW-Authenticate") != c.challenge || r.header.Get(headerSubject) != "" {
						t.Errorf("HEAD %s: %d %q %v", c.name, r.status, r.header.Get("WWW-Authenticate"), r.header)
					}
					continue
				}
				expectRefusal(t, c.name, r, c.status, c.challenge)
			}
		}
		// Two Authorization headers: refused, not resolved one way or the other.
		req, _ := http.NewRequest(http.MethodGet, ts.url+"/verify", nil)
		req.Header.Add("Authorization", "Bearer "+good)
		req.Header.Add("Authorization", "Bearer junk")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get(headerSubject) != "" || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_request") {
			t.Errorf("two Authorization headers: %d %v", resp.StatusCode, resp.Header)
		}
		// A wrong method on /verify is 405 with Allow.
		r := ts.do(http.MethodPut, "/verify", "", "", bearerHeader(good))
		expect(t, "PUT /verify", r, 405)
		if r.header.Get("Allow") != "GET, HEAD, POST" {
			t.Errorf("Allow = %q", r.header.Get("Allow"))
		}
		if strings.Contains(ts.logs.String(), good) || strings.Contains(ts.logs.String(), expired) {
			t.Fatal("a token reached the log")
		}
		// The store down: once memory is older than MaxStaleness, 503, fail
		// closed, for a token that was valid.
		ts.store.Close()
		deadline := time.Now().Add(3 * time.Second)
		for r = ts.do(http.MethodGet, "/verify", "", "", bearerHeader(good)); r.status == 200 && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
			r = ts.do(http.MethodGet, "/verify", "", "", bearerHeader(good))
		}
		expectRefusal(t, "store down", r, 503, "")
		if r.header.Get("Retry-After") == "" || strings.Contains(r.raw, "sql") || strings.Contains(r.raw, "closed") {
			t.Errorf("store down: %v %s", r.header, r.raw)
		}
	})
}

// TestForwardAuthSubtree: Envoy's path_prefix form, /verify/{client's
// path}, checks the token for any method and ignores the client's query.
func TestForwardAuthSubtree(t *testing.T) {
	ts := newTestServer(t, testdb.SQLite(t))
	_, secret := ts.createClient(url.Values{"client_id": {"notes"}, "scope": {"notes:read"}})
	tok := ts.token("notes", secret)
	exp := ts.claimsOf(tok).ExpiresAt
	for _, method := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		for _, path := range []string{"/verify/", "/verify/notes/1", "/verify/notes/1?scope=other:thing&page=2", "/verify/a/b/c?%zz"} {
			name := method + " " + path
			r := ts.do(method, path, "", "", bearerHeader(tok))
			if method == http.MethodHead {
				if r.status != 200 || r.header.Get(headerSubject) != "notes" {
					t.Errorf("%s: %d %v", name, r.status, r.header)
				}
			} else {
				expectPass(t, name, r, "notes", "notes:read", false, exp)
			}
			r = ts.do(method, path, "", "", nil)
			if r.status != 401 || r.header.Get("WWW-Authenticate") != challengeNone || r.header.Get(headerSubject) != "" {
				t.Errorf("%s without a token: %d %v", name, r.status, r.header)
			}
		}
	}
	expect(t, "/verifyx is no route", ts.do("GET", "/verifyx", "", "", bearerHeader(tok)), 404)
}

// TestVerifyPostWithQuery: a gateway whose sub-request is a POST gets the
// same checks as with GET: the query is not ignored.
func TestVerifyPostWithQuery(t *testing.T) {
	ts := newTestServer(t, testdb.SQLite(t))
	_, secret := ts.createClient(url.Values{"client_id": {"notes"}, "scope": {"notes:read notes:write"}})
	readOnly := ts.oauthToken("notes", secret, "notes:read", "")
	readWrite := ts.oauthToken("notes", secret, "notes:read notes:write", "")

	r := ts.do(http.MethodPost, "/verify?scope=notes:write", "", "", bearerHeader(readOnly))
	expectRefusal(t, "POST under-scoped", r, 403, `Bearer realm="authd", error="insufficient_scope", scope="notes:write"`)
	r = ts.do(http.MethodPost, "/verify?audience=https://notes.example", "", "", bearerHeader(readOnly))
	expectRefusal(t, "POST without audience", r, 403, `Bearer realm="authd", error="insufficient_scope"`)
	expectRefusal(t, "POST unknown parameter", ts.do(http.MethodPost, "/verify?scopes=x", "", "", bearerHeader(readWrite)), 400, "")
	expectRefusal(t, "POST with a query, no token", ts.do(http.MethodPost, "/verify?scope=notes:write", "", "", nil), 401, challengeNone)

	r = ts.do(http.MethodPost, "/verify?scope=notes:write", "", "", bearerHeader(readWrite))
	expect(t, "POST scoped", r, 200)
	if r.body["sub"] != "notes" || r.body["scope"] != "notes:read notes:write" || r.header.Get(headerSubject) != "notes" || r.header.Get(headerScope) != "notes:read notes:write" {
		t.Errorf("POST scoped: %v %s", r.header, r.raw)
	}
}

// BenchmarkForwardAuth measures the gateway hop as a gateway sees it: one
// GET /verify?scope=… over a kept-alive loopback connection.
func BenchmarkForwardAuth(b *testing.B) {
	ctx := context.Background()
	store, err := authsvc.OpenStore(ctx, "sqlite:"+b.TempDir()+"/authd.db")
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	a, err := authsvc.New(ctx, store, authsvc.Config{Issuer: "http://authd.test"})
	if err != nil {
		b.Fatal(err)
	}
	_, secret, err := a.CreateClient(ctx, authsvc.NewClient{ID: "notes", Scopes: []string{"notes:read"}})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := a.Authenticate(ctx, "notes", secret, authsvc.TokenRequest{})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(a, Options{}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/verify?scope=notes:read", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	for b.Loop() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// TestForwardAuthAdminIsCurrent: X-Auth-Admin follows a demotion at once,
// although the token still says isAdmin.
func TestForwardAuthAdminIsCurrent(t *testing.T) {
	ts := newTestServer(t, testdb.SQLite(t))
	_, secret := ts.createClient(url.Values{"client_id": {"boss"}, "is_admin": {"true"}})
	tok := ts.token("boss", secret)
	if r := ts.do(http.MethodGet, "/verify", "", "", bearerHeader(tok)); r.header.Get("X-Auth-Admin") != "true" {
		t.Fatalf("admin: %v", r.header)
	}
	no := false
	if _, err := ts.auth.UpdateClient(context.Background(), "boss", authsvc.ClientUpdate{IsAdmin: &no}); err != nil {
		t.Fatal(err)
	}
	if r := ts.do(http.MethodGet, "/verify", "", "", bearerHeader(tok)); r.status != 200 || r.header.Get("X-Auth-Admin") != "false" {
		t.Fatalf("after demotion: %d %v", r.status, r.header)
	}
}
