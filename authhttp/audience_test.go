package authhttp

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testdb"
)

// TestClientAudiences: a client may request only the audiences it is
// allowed (as Hydra's client audience list) or the default one; any other
// is invalid_target. POST /client takes and shows them, GET /clients
// shows them, and a client without any gets the default audience only
// (issue 14).
func TestClientAudiences(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		adminH := bearerHeader(ts.admin)
		r := ts.do("POST", "/client", form, url.Values{"client_id": {"caller"}, "scope": {"notes:read"},
			"audience": {"https://notes.internal https://billing.internal https://notes.internal"}}.Encode(), adminH)
		expect(t, "create with audiences", r, 201)
		if r.body["audience"] != "https://notes.internal https://billing.internal" {
			t.Fatalf("create: %s", r.raw)
		}
		secret := r.body["client_secret"].(string)
		r = ts.do("POST", "/client", "application/json", `{"client_id":"json-caller","audience":["https://a.internal","https://b.internal"]}`, adminH)
		expect(t, "create with a JSON audience array", r, 201)
		if r.body["audience"] != "https://a.internal https://b.internal" {
			t.Fatalf("create JSON: %s", r.raw)
		}
		_, plainSecret := ts.createClient(url.Values{"client_id": {"plain"}})
		for _, bad := range []string{"a\x01b", strings.Repeat("x", 513)} {
			expect(t, "malformed allowed audience", ts.do("POST", "/client", form, url.Values{"client_id": {"bad"}, "audience": {bad}}.Encode(), adminH), 400)
		}

		list := ts.do("GET", "/clients", "", "", adminH)
		expect(t, "list", list, 200)
		got := map[string]any{}
		for _, c := range list.body["clients"].([]any) {
			c := c.(map[string]any)
			got[c["client_id"].(string)] = c["audience"]
		}
		if got["caller"] != "https://notes.internal https://billing.internal" || got["plain"] != "" || got["root"] != "" {
			t.Fatalf("GET /clients audiences: %v", got)
		}

		token := func(id, secret, params string) reply {
			return ts.do("POST", "/oauth/token", form, "grant_type=client_credentials&client_id="+id+"&client_secret="+url.QueryEscape(secret)+params, nil)
		}
		audOf := func(r reply) string {
			t.Helper()
			c, err := ts.auth.Verify(context.Background(), r.body["access_token"].(string))
			if err != nil {
				t.Fatal(err)
			}
			return strings.Join(c.Audience, " ")
		}
		for _, ok := range []struct{ params, aud string }{
			{"", "http://authd.test"}, // none asked: the default
			{"&audience=https://notes.internal", "https://notes.internal"},
			{"&resource=https://billing.internal", "https://billing.internal"},
			{"&resource=https://billing.internal&audience=https://notes.internal", "https://billing.internal https://notes.internal"},
			{"&audience=http://authd.test", "http://authd.test"}, // the default, named
		} {
			r := token("caller", secret, ok.params)
			if r.status != 200 || audOf(r) != ok.aud {
				t.Errorf("caller%s: %d %s, want aud %q", ok.params, r.status, r.raw, ok.aud)
			}
		}
		for _, c := range []struct{ id, secret, params string }{
			{"caller", secret, "&audience=https://other.internal"},
			{"caller", secret, "&resource=https://other.internal"},
			{"caller", secret, "&audience=https://notes.internal+https://other.internal"},
			{"caller", secret, "&resource=https://notes.internal/sub"},
			{"plain", plainSecret, "&audience=https://notes.internal"},
			{"plain", plainSecret, "&resource=https://billing.internal"},
		} {
			r := token(c.id, c.secret, c.params)
			if r.status != 400 || r.body["error"] != "invalid_target" || !strings.Contains(r.body["error_description"].(string), "not an audience this client may request") {
				t.Errorf("%s%s: %d %s, want 400 invalid_target", c.id, c.params, r.status, r.raw)
			}
		}
		// The default audience needs no listing.
		if r := token("plain", plainSecret, ""); r.status != 200 || audOf(r) != "http://authd.test" {
			t.Errorf("plain, no audience: %d %s", r.status, r.raw)
		}
	})
}

// TestAdminRoutesNeedAnIssuerToken: an admin's token minted for another
// service (aud https://notes.internal) manages no clients; one whose aud
// includes the issuer, or is the default, does (issue 14).
func TestAdminRoutesNeedAnIssuerToken(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		ctx := context.Background()
		auds := []string{"https://notes.internal", "http://authd.test"}
		if _, err := ts.auth.UpdateClient(ctx, "root", authsvc.ClientUpdate{Audiences: &auds}); err != nil {
			t.Fatal(err)
		}
		ts.createClient(url.Values{"client_id": {"victim"}})
		forNotes := ts.oauthToken("root", adminSecret, "", "https://notes.internal")
		forBoth := ts.oauthToken("root", adminSecret, "", "https://notes.internal http://authd.test")
		forIssuer := ts.oauthToken("root", adminSecret, "", "http://authd.test")
		for _, rt := range []struct{ method, path, body string }{
			{"POST", "/client", "client_id=evil&is_admin=true"},
			{"GET", "/clients", ""},
			{"DELETE", "/client/victim", ""},
			{"DELETE", "/client", "client_id=victim"},
			{"POST", "/client/victim/logout", ""},
			{"POST", "/client/victim/rotate-secret", ""},
		} {
			r := ts.do(rt.method, rt.path, form, rt.body, bearerHeader(forNotes))
			expect(t, rt.method+" "+rt.path+" with a notes token", r, 401)
			if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="authd", error="invalid_token"` {
				t.Errorf("%s %s: WWW-Authenticate %q", rt.method, rt.path, got)
			}
		}
		if _, err := ts.auth.Client(ctx, "evil"); err == nil {
			t.Fatal("a token for another audience created a client")
		}
		if _, err := ts.auth.Client(ctx, "victim"); err != nil {
			t.Fatalf("a token for another audience deleted a client: %v", err)
		}
		if !strings.Contains(ts.logs.String(), "admin route refused a token for another audience") {
			t.Error("the refusal is not in the audit log")
		}
		for name, tok := range map[string]string{"default": ts.admin, "issuer named": forIssuer, "issuer and notes": forBoth} {
			expect(t, "list with the "+name+" token", ts.do("GET", "/clients", "", "", bearerHeader(tok)), 200)
		}
		// The token is still good for what it was minted for.
		if c, err := ts.auth.Verify(ctx, forNotes); err != nil || !slices.Equal(c.Audience, []string{"https://notes.internal"}) {
			t.Fatalf("notes token: %+v, %v", c, err)
		}
	})
}

// TestAdminRoutesHS256: in the Flask service's mode (HS256, tokens
// without aud) an admin's default token still manages clients, and one
// minted for another audience does not.
func TestAdminRoutesHS256(t *testing.T) {
	ts := newTestServerWith(t, testdb.SQLite(t), authsvc.Config{SigningAlg: authsvc.AlgHS256, HMACSecret: []byte(strings.Repeat("k", 32))})
	if c := ts.claimsOf(ts.admin); len(c.Audience) != 0 {
		t.Fatalf("HS256 default token has aud %v", c.Audience)
	}
	expect(t, "create with the default HS256 token", ts.form("/client", url.Values{"client_id": {"made"}}, ts.admin), 201)
	auds := []string{"https://notes.internal"}
	if _, err := ts.auth.UpdateClient(context.Background(), "root", authsvc.ClientUpdate{Audiences: &auds}); err != nil {
		t.Fatal(err)
	}
	forNotes := ts.oauthToken("root", adminSecret, "", "https://notes.internal")
	expect(t, "create with a notes token", ts.form("/client", url.Values{"client_id": {"evil"}}, forNotes), 401)
}
