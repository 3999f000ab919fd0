package authhttp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testdb"
	"github.com/authsvc/authsvc/internal/testissuer"
)

// Secretless clients over HTTP: private_key_jwt assertions and trusted
// issuers' tokens, signed by go-jose (internal/testissuer) with real keys.

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionForm is a token request authenticated by an assertion.
func assertionForm(clientID, assertion string) url.Values {
	v := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {jwtBearer}, "client_assertion": {assertion}}
	if clientID != "" {
		v.Set("client_id", clientID)
	}
	return v
}

// createJSON posts a JSON body to an admin route.
func (ts *testServer) createJSON(path string, body map[string]any) reply {
	ts.t.Helper()
	b, _ := json.Marshal(body)
	return ts.do(http.MethodPost, path, "application/json", string(b), map[string]string{"Authorization": "Bearer " + ts.admin})
}

// refused checks a 401 invalid_client whose description contains want,
// and that the audit log says so.
func refused(t *testing.T, ts *testServer, name string, r reply, want string) {
	t.Helper()
	if r.status != http.StatusUnauthorized || r.body["error"] != "invalid_client" {
		t.Fatalf("%s: %d %s, want 401 invalid_client", name, r.status, r.raw)
	}
	if d, _ := r.body["error_description"].(string); !strings.Contains(d, want) {
		t.Fatalf("%s: error_description %q lacks %q", name, d, want)
	}
	if !strings.Contains(ts.logs.String(), want) {
		t.Fatalf("%s: no audit line says %q", name, want)
	}
}

func TestPrivateKeyJWT(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		const aud = "http://authd.test" // the issuer; the token endpoint works too
		for _, alg := range []string{"EdDSA", "Ed25519", "ES256", "RS256", "PS256"} {
			t.Run(alg, func(t *testing.T) {
				k := testissuer.NewKey(t, alg, "k-"+alg)
				id := "pkjwt-" + strings.ToLower(alg)
				r := ts.createJSON("/client", map[string]any{"client_id": id, "token_endpoint_auth_method": "private_key_jwt",
					"scope": "notes:read", "jwks": json.RawMessage(testissuer.JWKS(t, k))})
				expect(t, "create", r, http.StatusCreated)
				if _, has := r.body["client_secret"]; has || r.body["token_endpoint_auth_method"] != "private_key_jwt" || r.body["jwks"] == nil {
					t.Fatalf("create answered %s", r.raw)
				}
				for _, a := range []string{aud, aud + "/oauth/token"} {
					tok := ts.form("/oauth/token", assertionForm("", k.Assertion(t, id, a, time.Minute, "")), "")
					if tok.status != http.StatusOK || tok.body["scope"] != "notes:read" {
						t.Fatalf("token (aud %s): %d %s", a, tok.status, tok.raw)
					}
					if c := ts.claimsOf(tok.body["access_token"].(string)); c.Subject != id {
						t.Fatalf("token for %s", c.Subject)
					}
				}
				// With client_id, at the introspection and revocation endpoints too.
				tok := ts.oauthTokenWith(assertionForm(id, k.Assertion(t, id, aud, time.Minute, "")))
				in := ts.form("/oauth/introspect", url.Values{"token": {tok}, "client_id": {id},
					"client_assertion_type": {jwtBearer}, "client_assertion": {k.Assertion(t, id, aud, time.Minute, "")}}, "")
				if in.status != http.StatusOK || in.body["active"] != true {
					t.Fatalf("introspect: %d %s", in.status, in.raw)
				}
				rv := ts.form("/oauth/revoke", url.Values{"token": {tok}, "client_assertion_type": {jwtBearer},
					"client_assertion": {k.Assertion(t, id, aud, time.Minute, "")}}, "")
				if rv.status != http.StatusOK {
					t.Fatalf("revoke: %d %s", rv.status, rv.raw)
				}
				if _, err := ts.auth.Verify(context.Background(), tok); err == nil {
					t.Fatal("revoked token still verifies")
				}
			})
		}
	})
}

// oauthTokenWith asks /oauth/token with v and returns the access token.
func (ts *testServer) oauthTokenWith(v url.Values) string {
	ts.t.Helper()
	r := ts.form("/oauth/token", v, "")
	if r.status != http.StatusOK {
		ts.t.Fatalf("/oauth/token: %d %s", r.status, r.raw)
	}
	return r.body["access_token"].(string)
}

func TestPrivateKeyJWTRefusals(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		const aud = "http://authd.test"
		k := testissuer.NewKey(t, "ES256", "k1")
		other := testissuer.NewKey(t, "ES256", "k1") // same kid, another key
		r := ts.createJSON("/client", map[string]any{"client_id": "svc", "token_endpoint_auth_method": "private_key_jwt",
			"jwks": json.RawMessage(testissuer.JWKS(t, k))})
		expect(t, "create", r, http.StatusCreated)
		now := time.Now()
		claims := func(over map[string]any) map[string]any {
			c := map[string]any{"iss": "svc", "sub": "svc", "aud": aud, "jti": "j-" + t.Name() + time.Now().String(),
				"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
			for name, v := range over {
				if v == nil {
					delete(c, name)
				} else {
					c[name] = v
				}
			}
			return c
		}
		used := k.Assertion(t, "svc", aud, time.Minute, "once")
		if r := ts.form("/oauth/token", assertionForm("svc", used), ""); r.status != http.StatusOK {
			t.Fatalf("first use: %d %s", r.status, r.raw)
		}
		for _, c := range []struct {
			name, clientID, assertion, want string
		}{
			{"replay", "svc", used, "replay"},
			{"wrong audience", "", k.Sign(t, claims(map[string]any{"aud": "https://elsewhere.example"}), nil), "wrong audience"},
			{"expired", "", k.Sign(t, claims(map[string]any{"exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix()}), nil), "expired"},
			{"too long-lived", "", k.Sign(t, claims(map[string]any{"exp": now.Add(time.Hour).Unix()}), nil), "lives too long"},
			{"no exp", "", k.Sign(t, claims(map[string]any{"exp": nil}), nil), "no exp"},
			{"no jti", "", k.Sign(t, claims(map[string]any{"jti": nil}), nil), "no jti"},
			{"bad signature", "", testissuer.Tamper(k.Assertion(t, "svc", aud, time.Minute, "")), "bad signature"},
			{"another key", "", other.Assertion(t, "svc", aud, time.Minute, ""), "bad signature"},
			{"unknown kid", "", k.Sign(t, claims(nil), map[string]any{"kid": "nope"}), "no key"},
			{"client_id differs", "someone", k.Assertion(t, "svc", aud, time.Minute, ""), "must be the client_id"},
			{"unknown client", "", k.Assertion(t, "ghost", aud, time.Minute, ""), "name no client"},
			{"access token typ", "", k.Sign(t, claims(nil), map[string]any{"typ": "at+jwt"}), "not a client assertion"},
			{"alg none", "", noneJWT(claims(nil)), "accepted are"},
			{"not a JWT", "", "a.b", "not a JWT"},
		} {
			refused(t, ts, c.name, ts.form("/oauth/token", assertionForm(c.clientID, c.assertion), ""), c.want)
		}
		// A secret client cannot log in with an assertion, nor svc with a secret.
		_, secret := ts.createClient(url.Values{"client_id": {"plain"}})
		refused(t, ts, "secret client's assertion", ts.form("/oauth/token", assertionForm("", k.Assertion(t, "plain", aud, time.Minute, "")), ""), "no keys registered")
		r = ts.form("/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"svc"}, "client_secret": {secret}}, "")
		refused(t, ts, "secret for svc", r, "authenticates with private_key_jwt")
		// Malformed requests are 400.
		for name, v := range map[string]url.Values{
			"type without assertion": {"grant_type": {"client_credentials"}, "client_assertion_type": {jwtBearer}},
			"other type":             {"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:x"}, "client_assertion": {used}},
			"with a secret":          {"grant_type": {"client_credentials"}, "client_assertion_type": {jwtBearer}, "client_assertion": {used}, "client_secret": {"x"}},
		} {
			if r := ts.form("/oauth/token", v, ""); r.status != http.StatusBadRequest || r.body["error"] != "invalid_request" {
				t.Fatalf("%s: %d %s", name, r.status, r.raw)
			}
		}
		// Nothing the refusals sent is logged: no assertion.
		if strings.Contains(ts.logs.String(), used) {
			t.Fatal("an assertion was logged")
		}
	})
}

// noneJWT is an unsigned JWT (alg none).
func noneJWT(claims map[string]any) string {
	b, _ := json.Marshal(claims)
	enc := func(s []byte) string { return strings.TrimRight(base64URL(s), "=") }
	return enc([]byte(`{"alg":"none"}`)) + "." + enc(b) + "."
}

// clock is a test's clock: the real one, advanced by hand.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// pastRefetchLimit is more than the interval within which an unknown kid
// does not fetch keys again.
const pastRefetchLimit = 6 * time.Second

func TestJWKSURIRotation(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		clk := &clock{}
		ts := newTestServerWith(t, dbURL, authsvc.Config{Now: clk.now})
		const aud = "http://authd.test"
		k1 := testissuer.NewKey(t, "RS256", "r1")
		var served atomic.Pointer[[]byte]
		jwks := testissuer.JWKS(t, k1)
		served.Store(&jwks)
		var fetches atomic.Int64
		var down atomic.Bool
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fetches.Add(1)
			if down.Load() {
				http.Error(w, "down", http.StatusBadGateway)
				return
			}
			w.Write(*served.Load())
		}))
		t.Cleanup(srv.Close)
		r := ts.createJSON("/client", map[string]any{"client_id": "rot", "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": srv.URL + "/jwks"})
		expect(t, "create", r, http.StatusCreated)
		ts.oauthTokenWith(assertionForm("", k1.Assertion(t, "rot", aud, time.Minute, "")))
		ts.oauthTokenWith(assertionForm("", k1.Assertion(t, "rot", aud, time.Minute, "")))
		if n := fetches.Load(); n != 1 {
			t.Fatalf("%d fetches for two logins with a known kid, want 1 (cached)", n)
		}
		// Rotation: the client publishes r2 and signs with it.
		clk.advance(pastRefetchLimit)
		k2 := testissuer.NewKey(t, "RS256", "r2")
		jwks2 := testissuer.JWKS(t, k2)
		served.Store(&jwks2)
		ts.oauthTokenWith(assertionForm("", k2.Assertion(t, "rot", aud, time.Minute, "")))
		if n := fetches.Load(); n != 2 {
			t.Fatalf("%d fetches after an unknown kid, want 2", n)
		}
		// Another unknown kid at once: refused without a fetch (at most one per interval).
		k3 := testissuer.NewKey(t, "RS256", "r3")
		refused(t, ts, "unknown kid within the interval", ts.form("/oauth/token", assertionForm("", k3.Assertion(t, "rot", aud, time.Minute, "")), ""), "no key")
		if n := fetches.Load(); n != 2 {
			t.Fatalf("%d fetches, want still 2", n)
		}
		// An unreachable jwks_uri fails that client only (its cached keys still work).
		down.Store(true)
		r = ts.createJSON("/client", map[string]any{"client_id": "unreachable", "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": srv.URL + "/other"})
		expect(t, "create unreachable", r, http.StatusCreated)
		refused(t, ts, "unreachable jwks_uri", ts.form("/oauth/token", assertionForm("", k1.Assertion(t, "unreachable", aud, time.Minute, "")), ""), "could not be fetched")
		if !strings.Contains(ts.logs.String(), "fetching signing keys failed") {
			t.Fatal("the failed fetch is not logged")
		}
		ts.oauthTokenWith(assertionForm("", k2.Assertion(t, "rot", aud, time.Minute, "")))
		ts.token("root", adminSecret)
	})
}

func TestFederation(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		clk := &clock{}
		ts := newTestServerWith(t, dbURL, authsvc.Config{Now: clk.now})
		const authd = "http://authd.test"
		k8s := testissuer.NewIssuer(t, "RS256")
		// The cluster's issuer, keys by OIDC discovery; a SPIFFE trust
		// domain with its bundle inline; a CI issuer whose tokens may be reused.
		expect(t, "add k8s", ts.createJSON("/issuer", map[string]any{"issuer": k8s.URL}), http.StatusCreated)
		spiffeKey := testissuer.NewKey(t, "ES256", "spire-1")
		expect(t, "add spiffe", ts.createJSON("/issuer", map[string]any{"issuer": "spiffe://example.org",
			"jwks": json.RawMessage(testissuer.Bundle(t, spiffeKey)), "audience": []string{"authd"}}), http.StatusCreated)
		ci := testissuer.NewIssuer(t, "ES256")
		expect(t, "add ci", ts.createJSON("/issuer", map[string]any{"issuer": ci.URL, "jwks_uri": ci.URL + "/jwks",
			"allow_reuse": true, "max_lifetime": "10m"}), http.StatusCreated)
		list := ts.do(http.MethodGet, "/issuers", "", "", map[string]string{"Authorization": "Bearer " + ts.admin})
		if list.status != http.StatusOK || len(list.body["issuers"].([]any)) != 3 {
			t.Fatalf("GET /issuers: %s", list.raw)
		}

		r := ts.createJSON("/client", map[string]any{"client_id": "payments-api", "token_endpoint_auth_method": "private_key_jwt", "scope": "pay",
			"federated_credentials": []map[string]string{
				{"issuer": k8s.URL, "subject": "system:serviceaccount:payments:api"},
				{"issuer": "spiffe://example.org", "subject": "spiffe://example.org/ns/payments/sa/api"},
				{"issuer": ci.URL, "subject": "system:serviceaccount:ci:deploy"},
			}})
		expect(t, "create federated client", r, http.StatusCreated)

		// A Kubernetes token, without client_id: the client is found by (iss, sub).
		tok := ts.form("/oauth/token", assertionForm("", k8s.Kubernetes(t, "payments", "api", authd, time.Hour)), "")
		if tok.status != http.StatusOK || tok.body["scope"] != "pay" {
			t.Fatalf("k8s token: %d %s", tok.status, tok.raw)
		}
		if c := ts.claimsOf(tok.body["access_token"].(string)); c.Subject != "payments-api" {
			t.Fatalf("k8s token is %s's", c.Subject)
		}
		// A SPIFFE JWT-SVID (no iss), with client_id.
		svid := testissuer.SPIFFE(t, spiffeKey, "spiffe://example.org/ns/payments/sa/api", "authd", 5*time.Minute)
		ts.oauthTokenWith(assertionForm("payments-api", svid))
		// A reusable issuer's token, twice.
		ciTok := ci.Kubernetes(t, "ci", "deploy", authd, 5*time.Minute)
		ts.oauthTokenWith(assertionForm("", ciTok))
		ts.oauthTokenWith(assertionForm("", ciTok))

		now := time.Now()
		k8sClaims := func(over map[string]any) map[string]any {
			c := map[string]any{"iss": k8s.URL, "sub": "system:serviceaccount:payments:api", "aud": []string{authd},
				"iat": now.Unix(), "exp": now.Add(30 * time.Minute).Unix(), "jti": time.Now().String()}
			for name, v := range over {
				c[name] = v
			}
			return c
		}
		stranger := testissuer.NewIssuer(t, "RS256")
		used := k8s.Kubernetes(t, "payments", "api", authd, time.Hour)
		ts.oauthTokenWith(assertionForm("", used))
		for _, c := range []struct {
			name, clientID, assertion, want string
		}{
			{"unknown issuer", "", stranger.Kubernetes(t, "payments", "api", authd, time.Hour), "unknown issuer"},
			{"no client for the subject", "", k8s.Kubernetes(t, "payments", "worker", authd, time.Hour), "no client has a federated credential"},
			{"another client's subject", "root", k8s.Kubernetes(t, "payments", "api", authd, time.Hour), "not a federated credential of client root"},
			{"wrong audience", "", k8s.Kubernetes(t, "payments", "api", "https://vault.example", time.Hour), "wrong audience"},
			{"expired", "", k8s.Claims(t, k8sClaims(map[string]any{"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix()})), "expired"},
			{"too long-lived", "", k8s.Kubernetes(t, "payments", "api", authd, 2*time.Hour), "lives too long"},
			{"bad signature", "", testissuer.Tamper(k8s.Kubernetes(t, "payments", "api", authd, time.Hour)), "bad signature"},
			{"signed by a stranger", "", stranger.Key().Sign(t, k8sClaims(nil), nil), "bad signature"},
			{"replay", "", used, "replay"},
			{"SPIFFE ID of another trust domain", "", testissuer.SPIFFE(t, spiffeKey, "spiffe://other.org/ns/payments/sa/api", "authd", time.Minute), "unknown issuer"},
			{"SPIFFE audience", "", testissuer.SPIFFE(t, spiffeKey, "spiffe://example.org/ns/payments/sa/api", authd, time.Minute), "wrong audience"},
		} {
			refused(t, ts, c.name, ts.form("/oauth/token", assertionForm(c.clientID, c.assertion), ""), c.want)
		}

		// Rotation at the cluster: tokens of the new key pass (refetched
		// on the unknown kid), the old key's no longer do.
		old := k8s.Kubernetes(t, "payments", "api", authd, time.Hour)
		k8s.Rotate(t, "key-2")
		clk.advance(pastRefetchLimit)
		ts.oauthTokenWith(assertionForm("", k8s.Kubernetes(t, "payments", "api", authd, time.Hour)))
		// The old key is no longer published: its tokens are refused.
		refused(t, ts, "old key after rotation", ts.form("/oauth/token", assertionForm("", old), ""), "no key")
		// Removing the issuer refuses its tokens at once.
		rm := ts.do(http.MethodDelete, "/issuer?issuer="+url.QueryEscape(k8s.URL), "", "", map[string]string{"Authorization": "Bearer " + ts.admin})
		expect(t, "remove", rm, http.StatusOK)
		refused(t, ts, "removed issuer", ts.form("/oauth/token", assertionForm("", k8s.Kubernetes(t, "payments", "api", authd, time.Hour)), ""), "unknown issuer")
		rm = ts.do(http.MethodDelete, "/issuer?issuer="+url.QueryEscape(k8s.URL), "", "", map[string]string{"Authorization": "Bearer " + ts.admin})
		expect(t, "remove again", rm, http.StatusNotFound)
	})
}

func TestSecretlessBadInput(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		k := testissuer.NewKey(t, "EdDSA", "e1")
		jwks := json.RawMessage(testissuer.JWKS(t, k))
		expect(t, "issuer", ts.createJSON("/issuer", map[string]any{"issuer": "https://issuer.example", "jwks": jwks}), http.StatusCreated)
		privJWK, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}}})
		for _, c := range []struct {
			name, path string
			body       map[string]any
			status     int
			want       string
		}{
			{"private key in jwks", "/client", map[string]any{"client_id": "a", "token_endpoint_auth_method": "private_key_jwt", "jwks": json.RawMessage(privJWK)}, 400, "private key"},
			{"jwks not a set", "/client", map[string]any{"client_id": "a", "token_endpoint_auth_method": "private_key_jwt", "jwks": map[string]any{"kty": "OKP"}}, 400, "not a JWK Set"},
			{"jwks and jwks_uri", "/client", map[string]any{"client_id": "a", "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks, "jwks_uri": "https://k.example/jwks"}, 400, "not both"},
			{"plain http jwks_uri", "/client", map[string]any{"client_id": "a", "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://k.example/jwks"}, 400, "https"},
			{"no keys", "/client", map[string]any{"client_id": "a", "token_endpoint_auth_method": "private_key_jwt"}, 400, "needs jwks"},
			{"secret and private_key_jwt", "/client", map[string]any{"client_id": "a", "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks, "client_secret": "a-chosen-secret-0123456789"}, 400, "no secret"},
			{"jwks on a secret client", "/client", map[string]any{"client_id": "a", "jwks": jwks}, 400, "for private_key_jwt and self_signed_tls_client_auth clients"},
			{"unknown method", "/client", map[string]any{"client_id": "a", "token_endpoint_auth_method": "none"}, 400, "token_endpoint_auth_method must be"},
			{"untrusted issuer", "/client", map[string]any{"client_id": "a", "federated_credentials": []map[string]string{{"issuer": "https://nope.example", "subject": "x"}}}, 400, "not trusted"},
			{"credentials not a list", "/client", map[string]any{"client_id": "a", "federated_credentials": map[string]string{"issuer": "x"}}, 400, "federated_credentials must be"},
			{"credential with unknown field", "/client", map[string]any{"client_id": "a", "federated_credentials": []map[string]string{{"issuer": "https://issuer.example", "sub": "x"}}}, 400, "federated_credentials must be"},
			{"issuer without keys, not https", "/issuer", map[string]any{"issuer": "kubernetes.local"}, 400, "https URL"},
			{"SPIFFE without bundle", "/issuer", map[string]any{"issuer": "spiffe://example.org"}, 400, "JWT bundle"},
			{"bad trust domain", "/issuer", map[string]any{"issuer": "spiffe://Example.org", "jwks": jwks}, 400, "trust domain"},
			{"issuer twice", "/issuer", map[string]any{"issuer": "https://issuer.example", "jwks": jwks}, 409, "already trusted"},
			{"bad max_lifetime", "/issuer", map[string]any{"issuer": "https://b.example", "jwks": jwks, "max_lifetime": "48h"}, 400, "max_lifetime"},
			{"no issuer", "/issuer", map[string]any{"jwks": jwks}, 400, "issuer is required"},
		} {
			r := ts.createJSON(c.path, c.body)
			expect(t, c.name, r, c.status)
			if e, _ := r.body["error"].(string); !strings.Contains(e, c.want) {
				t.Errorf("%s: error %q lacks %q", c.name, e, c.want)
			}
		}
		// Nothing was stored by the refusals.
		page, err := ts.auth.ListClients(context.Background(), authsvc.ClientQuery{})
		if err != nil || len(page.Clients) != 1 {
			t.Fatalf("clients after refusals: %+v %v", page, err)
		}
		if tis, _ := ts.auth.TrustedIssuers(context.Background()); len(tis) != 1 {
			t.Fatalf("issuers after refusals: %+v", tis)
		}
		// A subject belongs to one client only.
		cred := []map[string]string{{"issuer": "https://issuer.example", "subject": "one"}}
		expect(t, "first", ts.createJSON("/client", map[string]any{"client_id": "first", "federated_credentials": cred}), http.StatusCreated)
		r := ts.createJSON("/client", map[string]any{"client_id": "second", "federated_credentials": cred})
		expect(t, "second", r, http.StatusBadRequest)
		if _, err := ts.auth.Client(context.Background(), "second"); err == nil {
			t.Fatal("the refused client was stored")
		}
		// The issuer routes' other bad inputs, and callers who are not admins.
		del := func(q string, bearer string) reply {
			return ts.do(http.MethodDelete, "/issuer"+q, "", "", map[string]string{"Authorization": "Bearer " + bearer})
		}
		expect(t, "delete without issuer", del("", ts.admin), http.StatusBadRequest)
		expect(t, "delete unknown", del("?issuer=https%3A%2F%2Funknown.example", ts.admin), http.StatusNotFound)
		expect(t, "delete NUL", del("?issuer=%00", ts.admin), http.StatusBadRequest)
		expect(t, "delete twice in the query", del("?issuer=a&issuer=b", ts.admin), http.StatusBadRequest)
		_, plain := ts.createClient(url.Values{"client_id": {"plain"}})
		user := ts.token("plain", plain)
		expect(t, "delete by a non-admin", del("?issuer=https%3A%2F%2Fissuer.example", user), http.StatusForbidden)
		expect(t, "list by a non-admin", ts.do(http.MethodGet, "/issuers", "", "", map[string]string{"Authorization": "Bearer " + user}), http.StatusForbidden)
		expect(t, "list without a token", ts.do(http.MethodGet, "/issuers", "", "", nil), http.StatusUnauthorized)
		expect(t, "add by a non-admin", ts.form("/issuer", url.Values{"issuer": {"https://x.example"}}, user), http.StatusForbidden)
		expect(t, "wrong method", ts.do(http.MethodPut, "/issuer", "", "", nil), http.StatusMethodNotAllowed)
		if tis, _ := ts.auth.TrustedIssuers(context.Background()); len(tis) != 1 {
			t.Fatalf("issuers after the refused deletions: %+v", tis)
		}
		// A form body carries jwks as JSON text.
		v := url.Values{"client_id": {"formed"}, "token_endpoint_auth_method": {"private_key_jwt"}, "jwks": {string(jwks)}}
		expect(t, "form jwks", ts.form("/client", v, ts.admin), http.StatusCreated)
	})
}

func TestAssertionsThrottled(t *testing.T) {
	ctx := context.Background()
	store, err := authsvc.OpenStore(ctx, testdb.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	a, err := authsvc.New(ctx, store, authsvc.Config{Issuer: "http://authd.test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	k := testissuer.NewKey(t, "EdDSA", "e")
	if _, _, err := a.CreateClient(ctx, authsvc.NewClient{ID: "svc", AuthMethod: authsvc.AuthPrivateKeyJWT, JWKS: testissuer.JWKS(t, k)}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewHandler(a, Options{Throttle: Throttle{Pair: ThrottleLimit{Burst: 3, Every: time.Hour}}}))
	t.Cleanup(srv.Close)
	post := func(assertion string) int {
		resp, err := http.PostForm(srv.URL+"/oauth/token", assertionForm("", assertion))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	bad := testissuer.NewKey(t, "EdDSA", "e") // the right kid, the wrong key
	for i := range 3 {
		if s := post(bad.Assertion(t, "svc", "http://authd.test", time.Minute, "")); s != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, s)
		}
	}
	// The pair's allowance is spent: even the right assertion waits.
	if s := post(k.Assertion(t, "svc", "http://authd.test", time.Minute, "")); s != http.StatusTooManyRequests {
		t.Fatalf("after 3 failures: %d, want 429", s)
	}
}

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestSecretlessTwoInstances: two instances on one PostgreSQL share the
// trusted issuers, the federated credentials and the replay check.
func TestSecretlessTwoInstances(t *testing.T) {
	dbURL := testdb.Postgres(t)
	ctx := context.Background()
	const authd = "http://authd.test"
	instance := func() (*authsvc.Authenticator, string) {
		store, err := authsvc.OpenStore(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		a, err := authsvc.New(ctx, store, authsvc.Config{Issuer: authd})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		srv := httptest.NewServer(NewHandler(a, Options{Throttle: Throttle{Off: true}}))
		t.Cleanup(srv.Close)
		return a, srv.URL
	}
	a, urlA := instance()
	_, urlB := instance()
	post := func(base string, v url.Values) int {
		t.Helper()
		resp, err := http.PostForm(base+"/oauth/token", v)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Configured through A only.
	k8s := testissuer.NewIssuer(t, "RS256")
	if _, err := a.AddTrustedIssuer(ctx, authsvc.TrustedIssuer{Issuer: k8s.URL, JWKS: k8s.JWKS(t)}); err != nil {
		t.Fatal(err)
	}
	key := testissuer.NewKey(t, "ES256", "c1")
	if _, _, err := a.CreateClient(ctx, authsvc.NewClient{ID: "api", AuthMethod: authsvc.AuthPrivateKeyJWT, JWKS: testissuer.JWKS(t, key),
		FederatedCredentials: []authsvc.FederatedCredential{{Issuer: k8s.URL, Subject: "system:serviceaccount:payments:api"}}}); err != nil {
		t.Fatal(err)
	}
	// B trusts the issuer and knows the credential at once (both are read
	// from the store at each login).
	tok := k8s.Kubernetes(t, "payments", "api", authd, time.Hour)
	if s := post(urlB, assertionForm("", tok)); s != http.StatusOK {
		t.Fatalf("federated login at B: %d", s)
	}
	// A refuses the replay of what B accepted, and B of what A accepted.
	if s := post(urlA, assertionForm("", tok)); s != http.StatusUnauthorized {
		t.Fatalf("replay at A: %d, want 401", s)
	}
	as := key.Assertion(t, "api", authd, time.Minute, "")
	if s := post(urlA, assertionForm("", as)); s != http.StatusOK {
		t.Fatalf("private_key_jwt at A: %d", s)
	}
	if s := post(urlB, assertionForm("", as)); s != http.StatusUnauthorized {
		t.Fatalf("replay at B: %d, want 401", s)
	}
	// Many replays at once across both: exactly one wins.
	racing := key.Assertion(t, "api", authd, time.Minute, "")
	results := make(chan int, 8)
	for i := range 8 {
		base := urlA
		if i%2 == 1 {
			base = urlB
		}
		go func() {
			resp, err := http.PostForm(base+"/oauth/token", assertionForm("", racing))
			if err != nil {
				results <- 0
				return
			}
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	won := 0
	for range 8 {
		switch s := <-results; s {
		case http.StatusOK:
			won++
		case http.StatusUnauthorized:
		default:
			t.Errorf("racing replay: %d", s)
		}
	}
	if won != 1 {
		t.Fatalf("%d instances accepted one assertion, want 1", won)
	}
	// Removing the issuer at A refuses its tokens at B at once.
	if err := a.RemoveTrustedIssuer(ctx, k8s.URL); err != nil {
		t.Fatal(err)
	}
	if s := post(urlB, assertionForm("", k8s.Kubernetes(t, "payments", "api", authd, time.Hour))); s != http.StatusUnauthorized {
		t.Fatalf("removed issuer at B: %d", s)
	}
}
