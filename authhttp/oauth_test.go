package authhttp

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testdb"
)

func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// TestOAuthInterop: golang.org/x/oauth2 gets tokens both ways, and an
// independent JOSE library verifies them against the served JWKS.
func TestOAuthInterop(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		// A secret with ':', '%', '+', spaces and non-ASCII, through Basic.
		secret := "p:a%s+s wörd-ünïcode-€"
		r := ts.do("POST", "/client", "application/json",
			`{"client_id":"svc:one","client_secret":"`+secret+`","scope":"notes:read notes:write","audience":["https://notes.test"]}`,
			map[string]string{"Authorization": "Bearer " + ts.admin})
		expect(t, "create", r, 201)
		for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
			cfg := clientcredentials.Config{
				ClientID: "svc:one", ClientSecret: secret, TokenURL: ts.url + "/oauth/token",
				Scopes: []string{"notes:read"}, AuthStyle: style,
				EndpointParams: url.Values{"audience": {"https://notes.test"}},
			}
			tok, err := cfg.Token(context.Background())
			if err != nil {
				t.Fatalf("style %d: %v", style, err)
			}
			if tok.TokenType != "Bearer" || tok.Expiry.Before(time.Now().Add(50*time.Minute)) || tok.Extra("scope") != "notes:read" {
				t.Fatalf("style %d: token %+v scope %v", style, tok, tok.Extra("scope"))
			}
			claims := verifyWithJOSE(t, ts.url, tok.AccessToken)
			if claims["sub"] != "svc:one" || claims["scope"] != "notes:read" || claims["aud"].([]any)[0] != "https://notes.test" {
				t.Fatalf("claims %v", claims)
			}
		}
		// A wrong secret through x/oauth2 surfaces RFC 6749 §5.2's error code.
		bad := clientcredentials.Config{ClientID: "svc:one", ClientSecret: "wrong", TokenURL: ts.url + "/oauth/token", AuthStyle: oauth2.AuthStyleInHeader}
		_, err := bad.Token(context.Background())
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_client" || re.Response.StatusCode != 401 {
			t.Fatalf("wrong secret: %v", err)
		}
	})
}

// verifyWithJOSE checks a token with go-jose against the served JWKS and
// returns its claims.
func verifyWithJOSE(t *testing.T, base, token string) map[string]any {
	t.Helper()
	resp, err := http.Get(base + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); !strings.HasPrefix(cc, "public, max-age=") {
		t.Fatalf("JWKS Cache-Control %q", cc)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.Signatures[0].Protected
	if hdr.ExtraHeaders["typ"] != "at+jwt" {
		t.Fatalf("typ = %v", hdr.ExtraHeaders["typ"])
	}
	keys := set.Key(hdr.KeyID)
	if len(keys) != 1 || !keys[0].IsPublic() || keys[0].Use != "sig" {
		t.Fatalf("JWKS has %d keys for kid %q", len(keys), hdr.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("go-jose refuses the signature: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func TestTokenEndpointErrors(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		_, secret := ts.createClient(url.Values{"client_id": {"svc"}, "scope": {"a b"}, "audience": {"https://api.test/x svc-b"}})
		good := "grant_type=client_credentials&client_id=svc&client_secret=" + url.QueryEscape(secret)
		basic := map[string]string{"Authorization": basicAuth("svc", secret)}
		cases := []struct {
			name, ct, body string
			header         map[string]string
			status         int
			code           string
		}{
			{"no grant_type", form, "client_id=svc&client_secret=" + secret, nil, 400, "invalid_request"},
			{"password grant", form, "grant_type=password&username=a&password=b", basic, 400, "unsupported_grant_type"},
			{"both auth methods", form, good, basic, 400, "invalid_request"},
			{"no credentials", form, "grant_type=client_credentials", nil, 401, "invalid_client"},
			{"wrong secret post", form, "grant_type=client_credentials&client_id=svc&client_secret=nope", nil, 401, "invalid_client"},
			{"wrong secret basic", form, "grant_type=client_credentials", map[string]string{"Authorization": basicAuth("svc", "nope")}, 401, "invalid_client"},
			{"unknown client basic", form, "grant_type=client_credentials", map[string]string{"Authorization": basicAuth("ghost", secret)}, 401, "invalid_client"},
			{"malformed basic", form, "grant_type=client_credentials", map[string]string{"Authorization": "Basic !!!"}, 400, "invalid_request"},
			{"basic without colon", form, "grant_type=client_credentials", map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("svc"))}, 400, "invalid_request"},
			{"bearer instead of basic", form, "grant_type=client_credentials", map[string]string{"Authorization": "Bearer x"}, 400, "invalid_request"},
			{"scope not granted", form, good + "&scope=a+c", nil, 400, "invalid_scope"},
			{"malformed scope", form, good + "&scope=%22", nil, 400, "invalid_scope"},
			{"bad resource", form, good + "&resource=not-absolute", nil, 400, "invalid_target"},
			{"resource with fragment", form, good + "&resource=https://x.test/%23frag", nil, 400, "invalid_target"},
			{"resource not allowed", form, good + "&resource=https://api.test/y", nil, 400, "invalid_target"},
			{"audience not allowed", form, good + "&audience=svc-c", nil, 400, "invalid_target"},
			{"malformed audience", form, good + "&audience=a%01b", nil, 400, "invalid_target"},
			{"repeated grant_type", form, good + "&grant_type=client_credentials", nil, 400, "invalid_request"},
			{"JSON body", "application/json", `{"grant_type":"client_credentials"}`, basic, 400, "invalid_request"},
			{"oversized", form, good + "&scope=" + strings.Repeat("a", maxBodyBytes), nil, 413, "invalid_request"},
			{"malformed form", form, "grant_type=%zz", basic, 400, "invalid_request"},
		}
		for _, tc := range cases {
			r := ts.do("POST", "/oauth/token", tc.ct, tc.body, tc.header)
			if r.status != tc.status || r.body["error"] != tc.code || r.body["error_description"] == nil {
				t.Errorf("%s: %d %s; want %d %s", tc.name, r.status, r.raw, tc.status, tc.code)
			}
			// Every 401 carries a challenge (RFC 9110 §11.6.1), whichever
			// way the client authenticated; no other status does.
			if got := r.header.Get("WWW-Authenticate"); (tc.status == 401) != strings.HasPrefix(got, "Basic realm=") {
				t.Errorf("%s: WWW-Authenticate %q", tc.name, got)
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: Cache-Control %q", tc.name, r.header.Get("Cache-Control"))
			}
		}
		expect(t, "GET token", ts.do("GET", "/oauth/token", "", "", nil), 405)

		// Success per §5.1, both ways; resource and audience set aud.
		for _, h := range []map[string]string{nil, basic} {
			body := good
			if h != nil {
				body = "grant_type=client_credentials"
			}
			r := ts.do("POST", "/oauth/token", form, body+"&scope=b&resource=https://api.test/x&audience=svc-b", h)
			if r.status != 200 || r.body["token_type"] != "Bearer" || r.body["expires_in"] != float64(3600) || r.body["scope"] != "b" {
				t.Fatalf("success: %d %s", r.status, r.raw)
			}
			if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Pragma") != "no-cache" {
				t.Fatalf("success headers %v", r.header)
			}
			claims, err := ts.auth.Verify(context.Background(), r.body["access_token"].(string))
			if err != nil || strings.Join(claims.Audience, ",") != "https://api.test/x,svc-b" {
				t.Fatalf("aud = %v, %v", claims, err)
			}
		}
		// No scope, or an empty one (RFC 6749 §3.1: as if omitted): all of them.
		for _, body := range []string{good, good + "&scope="} {
			r := ts.do("POST", "/oauth/token", form, body, nil)
			if r.status != 200 || r.body["scope"] != "a b" {
				t.Fatalf("default scope: %d %s", r.status, r.raw)
			}
		}
	})
}

func TestIntrospection(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		_, rsSecret := ts.createClient(url.Values{"client_id": {"resource-server"}})
		_, secret := ts.createClient(url.Values{"client_id": {"svc"}, "scope": {"x"}})
		rs := map[string]string{"Authorization": basicAuth("resource-server", rsSecret)}
		introspect := func(tok string) map[string]any {
			t.Helper()
			r := ts.do("POST", "/oauth/introspect", form, "token="+url.QueryEscape(tok), rs)
			if r.status != 200 || r.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("introspect: %d %s", r.status, r.raw)
			}
			return r.body
		}
		live := ts.token("svc", secret)
		got := introspect(live)
		for _, k := range []string{"scope", "client_id", "sub", "exp", "iat", "nbf", "iss", "aud", "jti", "token_type"} {
			if _, ok := got[k]; !ok {
				t.Errorf("introspection lacks %q: %v", k, got)
			}
		}
		if got["active"] != true || got["client_id"] != "svc" || got["scope"] != "x" || got["token_type"] != "Bearer" {
			t.Fatalf("active: %v", got)
		}
		// client_secret_post works for the caller too.
		r := ts.do("POST", "/oauth/introspect", form, "client_id=resource-server&client_secret="+url.QueryEscape(rsSecret)+"&token="+live, nil)
		if r.body["active"] != true {
			t.Fatalf("post auth: %s", r.raw)
		}

		revoked := ts.token("svc", secret)
		expect(t, "logout", ts.form("/logout", url.Values{"token": {revoked}}, ""), 200)
		parts := strings.Split(live, ".")
		tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
		_, doomedSecret := ts.createClient(url.Values{"client_id": {"doomed"}})
		doomed := ts.token("doomed", doomedSecret)
		expect(t, "delete", ts.do("DELETE", "/client/doomed", "", "", map[string]string{"Authorization": "Bearer " + ts.admin}), 200)
		for name, tok := range map[string]string{"revoked": revoked, "tampered": tampered, "deleted client": doomed, "junk": "junk", "huge": strings.Repeat("a", 9000)} {
			r := ts.do("POST", "/oauth/introspect", form, "token="+url.QueryEscape(tok), rs)
			if r.status != 200 || r.raw != "{\"active\":false}\n" {
				t.Errorf("%s: %d %q, want exactly {\"active\":false}", name, r.status, r.raw)
			}
		}
		// Expired: an authenticator whose clock is later.
		// (Expiry itself is covered by the library's tests; here the route's
		// mapping of any refusal to active:false is what matters.)

		// Caller authentication is required.
		r = ts.do("POST", "/oauth/introspect", form, "token="+live, nil)
		if r.status != 401 || r.body["error"] != "invalid_client" {
			t.Fatalf("no caller auth: %d %s", r.status, r.raw)
		}
		r = ts.do("POST", "/oauth/introspect", form, "token="+live, map[string]string{"Authorization": basicAuth("resource-server", "wrong")})
		if r.status != 401 || r.body["error"] != "invalid_client" || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
			t.Fatalf("wrong caller secret: %d %s", r.status, r.raw)
		}
		r = ts.do("POST", "/oauth/introspect", form, "", rs)
		if r.status != 400 || r.body["error"] != "invalid_request" {
			t.Fatalf("no token: %d %s", r.status, r.raw)
		}
	})
}

func TestRevocation(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		_, aSecret := ts.createClient(url.Values{"client_id": {"a"}})
		_, bSecret := ts.createClient(url.Values{"client_id": {"b"}})
		aAuth := map[string]string{"Authorization": basicAuth("a", aSecret)}
		bAuth := map[string]string{"Authorization": basicAuth("b", bSecret)}
		revoke := func(h map[string]string, tok string) reply {
			return ts.do("POST", "/oauth/revoke", form, "token="+url.QueryEscape(tok)+"&token_type_hint=access_token", h)
		}
		aTok := ts.token("a", aSecret)
		// b may not revoke a's token: 200, but nothing revoked, and logged.
		if r := revoke(bAuth, aTok); r.status != 200 {
			t.Fatalf("non-owner: %d %s", r.status, r.raw)
		}
		if r := ts.form("/verify", nil, aTok); r.status != 200 {
			t.Fatalf("non-owner revoked the token: %d", r.status)
		}
		if !strings.Contains(ts.logs.String(), "revocation refused") {
			t.Fatal("refused revocation not logged")
		}
		// Unknown and invalid tokens: 200.
		for _, tok := range []string{"junk", strings.Repeat("x", 9000)} {
			if r := revoke(aAuth, tok); r.status != 200 {
				t.Fatalf("invalid token: %d %s", r.status, r.raw)
			}
		}
		// The owner can.
		if r := revoke(aAuth, aTok); r.status != 200 {
			t.Fatalf("owner: %d", r.status)
		}
		if r := ts.form("/verify", nil, aTok); r.status != 401 {
			t.Fatalf("revoked token verifies: %d", r.status)
		}
		// An admin can revoke anyone's.
		bTok := ts.token("b", bSecret)
		if r := revoke(map[string]string{"Authorization": basicAuth("root", adminSecret)}, bTok); r.status != 200 {
			t.Fatalf("admin: %d", r.status)
		}
		if r := ts.form("/verify", nil, bTok); r.status != 401 {
			t.Fatalf("admin-revoked token verifies: %d", r.status)
		}
		// Unauthenticated: 401.
		if r := revoke(nil, bTok); r.status != 401 || r.body["error"] != "invalid_client" {
			t.Fatalf("unauthenticated: %d %s", r.status, r.raw)
		}
	})
}

func TestDiscoveryAndJWKS(t *testing.T) {
	ts := newTestServer(t, testdb.SQLite(t))
	var docs [2]map[string]any
	for i, p := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		r := ts.do("GET", p, "", "", nil)
		if r.status != 200 {
			t.Fatalf("%s: %d", p, r.status)
		}
		docs[i] = r.body
	}
	d := docs[0]
	if d["issuer"] != "http://authd.test" || d["token_endpoint"] != "http://authd.test/oauth/token" ||
		d["jwks_uri"] != "http://authd.test/.well-known/jwks.json" || d["introspection_endpoint"] != "http://authd.test/oauth/introspect" ||
		d["revocation_endpoint"] != "http://authd.test/oauth/revoke" {
		t.Fatalf("discovery %v", d)
	}
	if g := d["grant_types_supported"].([]any); len(g) != 1 || g[0] != "client_credentials" {
		t.Fatalf("grant types %v", g)
	}
	if m := d["token_endpoint_auth_methods_supported"].([]any); len(m) != 3 || m[2] != "private_key_jwt" {
		t.Fatalf("auth methods %v", m)
	}
	if a := d["token_endpoint_auth_signing_alg_values_supported"].([]any); len(a) != 5 || a[0] != "EdDSA" || a[1] != "Ed25519" {
		t.Fatalf("assertion algs %v", a)
	}
	if a := d["access_token_signing_alg_values_supported"].([]any); len(a) != 1 || a[0] != "EdDSA" {
		t.Fatalf("algs %v", a)
	}
	b0, _ := json.Marshal(docs[0])
	b1, _ := json.Marshal(docs[1])
	if string(b0) != string(b1) {
		t.Fatal("the two discovery documents differ")
	}
	// JWKS: the same bytes every time (computed once), public parts only.
	get := func() string {
		resp, err := http.Get(ts.url + "/.well-known/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	j := get()
	if j != get() || j != string(ts.auth.JWKS()) {
		t.Fatal("JWKS not stable")
	}
	if strings.Contains(j, `"d"`) {
		t.Fatalf("JWKS has a private part: %s", j)
	}
	expect(t, "POST jwks", ts.do("POST", "/.well-known/jwks.json", "", "", nil), 405)
}

// TestRFCExamples replays the requests of the RFCs' own examples, byte for
// byte where they give them: RFC 6749 §4.4.2 (client s6BhdRkqt3 with
// secret gX1fBat3bV in HTTP Basic), RFC 7662 §2.1 and RFC 7009 §2.1.
func TestRFCExamples(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		// The RFCs' example secret is 10 characters: shorter than authd lets a
		// caller choose, so the client is imported with its SHA-1, as the seed
		// service's clients are.
		sum := sha1.Sum([]byte("gX1fBat3bV"))
		if _, err := ts.auth.ImportClient(context.Background(), authsvc.ImportedClient{
			ID: "s6BhdRkqt3", LegacyHash: hex.EncodeToString(sum[:]),
		}); err != nil {
			t.Fatal(err)
		}
		basic := map[string]string{"Authorization": "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW"}
		// RFC 6749 §4.4.2.
		r := ts.do("POST", "/oauth/token", "application/x-www-form-urlencoded", "grant_type=client_credentials", basic)
		if r.status != 200 || r.body["token_type"] != "Bearer" || r.body["access_token"] == nil || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("RFC 6749 §4.4.2: %d %s", r.status, r.raw)
		}
		tok := r.body["access_token"].(string)
		// RFC 7662 §2.1 (the example authenticates the protected resource with Basic).
		r = ts.do("POST", "/oauth/introspect", "application/x-www-form-urlencoded", "token="+tok+"&token_type_hint=access_token", basic)
		if r.status != 200 || r.body["active"] != true || r.body["client_id"] != "s6BhdRkqt3" {
			t.Fatalf("RFC 7662 §2.1: %d %s", r.status, r.raw)
		}
		r = ts.do("POST", "/oauth/introspect", "application/x-www-form-urlencoded", "token=mF_9.B5f-4.1JqM&token_type_hint=access_token", basic)
		if r.status != 200 || r.raw != "{\"active\":false}\n" {
			t.Fatalf("RFC 7662 inactive: %d %s", r.status, r.raw)
		}
		// RFC 7009 §2.1: an unknown refresh token is 200; our token is revoked.
		r = ts.do("POST", "/oauth/revoke", "application/x-www-form-urlencoded", "token=45ghiukldjahdnhzdauz&token_type_hint=refresh_token", basic)
		if r.status != 200 {
			t.Fatalf("RFC 7009 unknown token: %d %s", r.status, r.raw)
		}
		r = ts.do("POST", "/oauth/revoke", "application/x-www-form-urlencoded", "token="+tok+"&token_type_hint=access_token", basic)
		if r.status != 200 {
			t.Fatalf("RFC 7009: %d %s", r.status, r.raw)
		}
		r = ts.do("POST", "/oauth/introspect", "application/x-www-form-urlencoded", "token="+tok, basic)
		if r.body["active"] != false {
			t.Fatalf("revoked token still active: %s", r.raw)
		}
	})
}

// TestIntrospectionWithBearer: /oauth/introspect also takes a valid access
// token meant for authd as the caller's authorization (RFC 7662 §2.1); a
// bad one is 401 invalid_token, a blank one 401 with a bare challenge
// (issue 14).
func TestIntrospectionWithBearer(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		_, rsSecret := ts.createClient(url.Values{"client_id": {"resource-server"}, "audience": {"https://notes.internal"}})
		_, secret := ts.createClient(url.Values{"client_id": {"svc"}, "scope": {"x"}})
		rsToken := ts.token("resource-server", rsSecret)
		live := ts.token("svc", secret)
		introspect := func(header map[string]string, body string) reply {
			return ts.do("POST", "/oauth/introspect", form, body, header)
		}
		r := introspect(bearerHeader(rsToken), "token="+live)
		if r.status != 200 || r.body["active"] != true || r.body["client_id"] != "svc" || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("bearer caller: %d %s", r.status, r.raw)
		}
		if r := introspect(bearerHeader(rsToken), "token=junk"); r.status != 200 || r.raw != "{\"active\":false}\n" {
			t.Fatalf("bearer caller, junk token: %d %s", r.status, r.raw)
		}

		revoked := ts.token("resource-server", rsSecret)
		expect(t, "logout", ts.form("/logout", url.Values{"token": {revoked}}, ""), 200)
		forNotes := ts.oauthToken("resource-server", rsSecret, "", "https://notes.internal")
		for name, tok := range map[string]string{
			"junk": "junk", "revoked": revoked, "tampered": rsToken[:len(rsToken)-2] + "xx",
			"for another audience": forNotes, "expired": ts.expiredToken("resource-server", rsSecret),
		} {
			r := introspect(bearerHeader(tok), "token="+live)
			if r.status != 401 || r.body["error"] != "invalid_token" || r.body["active"] != nil {
				t.Errorf("%s caller token: %d %s, want 401 invalid_token", name, r.status, r.raw)
			}
			if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="authd", error="invalid_token"` {
				t.Errorf("%s caller token: WWW-Authenticate %q", name, got)
			}
		}
		for _, h := range []string{"Bearer", "Bearer   "} {
			r := introspect(map[string]string{"Authorization": h}, "token="+live)
			if r.status != 401 || r.header.Get("WWW-Authenticate") != bearerChallenge {
				t.Errorf("%q: %d %q %s, want 401 with a bare Bearer challenge", h, r.status, r.header.Get("WWW-Authenticate"), r.raw)
			}
		}
		r = introspect(bearerHeader(rsToken), "token="+live+"&client_id=resource-server&client_secret="+url.QueryEscape(rsSecret))
		if r.status != 400 || r.body["error"] != "invalid_request" {
			t.Errorf("bearer and client_secret: %d %s, want 400 invalid_request", r.status, r.raw)
		}
		if r := introspect(bearerHeader(rsToken), ""); r.status != 400 || r.body["error"] != "invalid_request" {
			t.Errorf("bearer caller, no token: %d %s", r.status, r.raw)
		}
		// Client authentication still works, and is still checked.
		if r := introspect(map[string]string{"Authorization": basicAuth("resource-server", rsSecret)}, "token="+live); r.body["active"] != true {
			t.Fatalf("basic caller: %d %s", r.status, r.raw)
		}
	})
}

// rawBasic is HTTP Basic as clients that do not form-encode send it
// (authlib 1.2, python-requests, curl -u): id and secret as they are.
func rawBasic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

// TestBasicRawCredentials: a chosen secret with "+" or "%" works through
// HTTP Basic from a client that does not form-encode it, as one attempt
// for the throttle; clients that do form-encode work as before (issue 14).
func TestBasicRawCredentials(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		secrets := map[string]string{
			"plus":    "a+b+c+d+e+f+g+h+i",       // decodes to spaces
			"percent": "50%off-for-everyone-now", // "%of" does not decode
			"escape":  "x%41yz-abcdefghijk",      // decodes to xAyz…
			"both":    "p+ss%2Bw%rd-1234567",
		}
		for id, secret := range secrets {
			r := ts.do("POST", "/client", "application/json", jsonObject(t, map[string]string{"client_id": id, "client_secret": secret}), bearerHeader(ts.admin))
			expect(t, "create "+id, r, 201)
		}
		_, generated := ts.createClient(url.Values{"client_id": {"a+b"}}) // an id that form-decodes otherwise
		secrets["a+b"] = generated
		for id, secret := range secrets {
			for name, h := range map[string]string{"raw": rawBasic(id, secret), "form-encoded": basicAuth(id, secret)} {
				r := ts.do("POST", "/oauth/token", form, "grant_type=client_credentials", map[string]string{"Authorization": h})
				if r.status != 200 {
					t.Errorf("%s %s: /oauth/token %d %s", name, id, r.status, r.raw)
					continue
				}
				if c, err := ts.auth.Verify(context.Background(), r.body["access_token"].(string)); err != nil || c.Subject != id {
					t.Errorf("%s %s: token of %v, %v", name, id, c, err)
				}
				r = ts.do("POST", "/oauth/introspect", form, "token=junk", map[string]string{"Authorization": h})
				if r.status != 200 {
					t.Errorf("%s %s: /oauth/introspect %d %s", name, id, r.status, r.raw)
				}
			}
			// A body client_id naming the raw id agrees with HTTP Basic.
			r := ts.do("POST", "/oauth/token", form, "grant_type=client_credentials&client_id="+url.QueryEscape(id), map[string]string{"Authorization": rawBasic(id, secret)})
			expect(t, "raw basic with the body's client_id "+id, r, 200)
		}
		// Wrong secrets are still wrong, either way. (The form-encoding of
		// "a b c d e f g h i" is the real secret's bytes, and passes.)
		for _, h := range []string{rawBasic("plus", "a+b+c+d+e+f+g+h+j"), rawBasic("percent", "50%off-for-everyone-nox"), basicAuth("plus", "a+b+c+d+e+f+g+h+j")} {
			r := ts.do("POST", "/oauth/token", form, "grant_type=client_credentials", map[string]string{"Authorization": h})
			if r.status != 401 || r.body["error"] != "invalid_client" {
				t.Errorf("wrong secret: %d %s", r.status, r.raw)
			}
		}
		if strings.Contains(ts.logs.String(), "50%off") || strings.Contains(ts.logs.String(), "a+b+c+d") {
			t.Fatal("a secret reached the log")
		}
	})
}

// TestBasicRawFallbackIsOneAttempt: a wrong secret whose raw and decoded
// readings differ costs the throttle one attempt, as any wrong secret does.
func TestBasicRawFallbackIsOneAttempt(t *testing.T) {
	refusedAfter := func(header func(i int) string) int {
		ts := opsServer(t, "")
		ts.createClient(url.Values{"client_id": {"svc"}})
		for i := 1; i <= 1000; i++ {
			r := ts.do("POST", "/oauth/token", form, "grant_type=client_credentials", map[string]string{"Authorization": header(i)})
			if r.status == http.StatusTooManyRequests {
				return i
			}
			if r.status != 401 {
				t.Fatalf("attempt %d: %d %s", i, r.status, r.raw)
			}
		}
		t.Fatal("never throttled")
		return 0
	}
	plain := refusedAfter(func(i int) string { return rawBasic("svc", fmt.Sprintf("wrong-secret-%04d", i)) })
	twoReadings := refusedAfter(func(i int) string { return rawBasic("svc", fmt.Sprintf("wrong+secret+%04d", i)) })
	if plain != twoReadings {
		t.Fatalf("throttled after %d plain wrong secrets but %d with two readings each", plain, twoReadings)
	}
}

// TestBasicRawIDRemembered: when the raw client_id passes and its
// form-decoding was another id, the throttle remembers the address for
// the id that passed, not for the decoded one (which would then be exempt
// there from the address and client limits without ever having logged in),
// and never hands the store an id it cannot hold.
func TestBasicRawIDRemembered(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		srv := httptest.NewServer(NewHandler(ts.auth, Options{Logger: slog.New(slog.NewJSONHandler(ts.logs, nil))}))
		t.Cleanup(srv.Close)
		ts.url = srv.URL
		secrets := map[string]string{}
		for _, id := range []string{"a%00b", "c+d", "e%41f"} {
			_, secrets[id] = ts.createClient(url.Values{"client_id": {id}})
		}
		decoded := map[string]string{"a%00b": "a\x00b", "c+d": "c d", "e%41f": "eAf"}
		ts.createClient(url.Values{"client_id": {"eAf"}}) // the decoded id of one of them exists too
		for id, secret := range secrets {
			r := ts.do("POST", "/oauth/token", form, "grant_type=client_credentials", map[string]string{"Authorization": rawBasic(id, secret)})
			if r.status != 200 {
				t.Fatalf("%s: %d %s", id, r.status, r.raw)
			}
			if !ts.auth.KnownAddress(id, "127.0.0.1") {
				t.Errorf("%s: the address is not remembered for the client that logged in", id)
			}
			if ts.auth.KnownAddress(decoded[id], "127.0.0.1") {
				t.Errorf("%s: the address is remembered for %q, which never logged in", id, decoded[id])
			}
		}
		if n := ts.auth.Stats().StoreErrors; n != 0 {
			t.Errorf("%d store errors", n)
		}
	})
}
