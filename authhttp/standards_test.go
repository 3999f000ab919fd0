package authhttp

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testdb"
)

// TestMetadataScopesSupported: RFC 8414 scopes_supported is the union of
// the clients' scopes, sorted, and follows clients created, changed and
// deleted (issue 14).
func TestMetadataScopesSupported(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		scopes := func() string {
			t.Helper()
			r := ts.do("GET", "/.well-known/oauth-authorization-server", "", "", nil)
			raw, ok := r.body["scopes_supported"].([]any)
			if r.status != 200 || !ok {
				t.Fatalf("metadata: %d %s", r.status, r.raw)
			}
			var s []string
			for _, x := range raw {
				s = append(s, x.(string))
			}
			return strings.Join(s, " ")
		}
		if got := scopes(); got != "" {
			t.Fatalf("no client has a scope, scopes_supported = %q", got)
		}
		ts.createClient(url.Values{"client_id": {"notes"}, "scope": {"notes:write notes:read"}})
		ts.createClient(url.Values{"client_id": {"billing"}, "scope": {"billing:read notes:read"}})
		if got := scopes(); got != "billing:read notes:read notes:write" {
			t.Fatalf("scopes_supported = %q", got)
		}
		both := []string{"notes:read", "audit"}
		if _, err := ts.auth.UpdateClient(context.Background(), "notes", authsvc.ClientUpdate{Scopes: &both}); err != nil {
			t.Fatal(err)
		}
		if got := scopes(); got != "audit billing:read notes:read" {
			t.Fatalf("after an update, scopes_supported = %q", got)
		}
		expect(t, "delete", ts.do("DELETE", "/client/billing", "", "", bearerHeader(ts.admin)), 200)
		if got := scopes(); got != "audit notes:read" {
			t.Fatalf("after a deletion, scopes_supported = %q", got)
		}
		// The OpenID twin says the same.
		r := ts.do("GET", "/.well-known/openid-configuration", "", "", nil)
		if got, _ := r.body["scopes_supported"].([]any); len(got) != 2 {
			t.Fatalf("openid-configuration scopes_supported = %v", r.body["scopes_supported"])
		}
	})
}

// TestJWKSMediaType: the JWKS is served as application/jwk-set+json
// (RFC 7517 §8.5.1).
func TestJWKSMediaType(t *testing.T) {
	ts := newTestServer(t, testdb.SQLite(t))
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		req, _ := http.NewRequest(method, ts.url+"/.well-known/jwks.json", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/jwk-set+json" {
			t.Errorf("%s JWKS: %d, Content-Type %q", method, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}

// TestTokensIssuedCountsIssuedTokens: authd_tokens_issued_total counts a
// token once it is issued, not a request refused for its scope or its
// audience after the client authenticated (issue 14).
func TestTokensIssuedCountsIssuedTokens(t *testing.T) {
	ts := opsServer(t, "")
	_, secret := ts.createClient(url.Values{"client_id": {"svc"}, "scope": {"a"}, "audience": {"https://notes.internal"}})
	issued := func() uint64 { return ts.auth.Stats().TokensIssued }
	before := issued()
	post := "grant_type=client_credentials&client_id=svc&client_secret=" + url.QueryEscape(secret)
	for _, refused := range []string{"&scope=b", "&scope=%22", "&audience=https://other.internal", "&audience=a%01b"} {
		r := ts.do("POST", "/oauth/token", form, post+refused, nil)
		if r.status != 400 {
			t.Fatalf("%s: %d %s", refused, r.status, r.raw)
		}
	}
	expect(t, "wrong secret", ts.form("/auth", url.Values{"client_id": {"svc"}, "client_secret": {"wrong"}}, ""), 401)
	if n := issued() - before; n != 0 {
		t.Fatalf("%d tokens counted as issued for requests that issued none", n)
	}
	ts.token("svc", secret)
	if r := ts.do("POST", "/oauth/token", form, post+"&scope=a&audience=https://notes.internal", nil); r.status != 200 {
		t.Fatalf("token: %d %s", r.status, r.raw)
	}
	if n := issued() - before; n != 2 {
		t.Fatalf("%d tokens counted, want 2", n)
	}
	resp, err := http.Get(ts.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The admin's token came from the same Authenticator: before+2 in all.
	if want := "authd_tokens_issued_total " + strconv.FormatUint(before+2, 10); !strings.Contains(string(b), want+"\n") {
		t.Fatalf("metrics lack %q", want)
	}
}
