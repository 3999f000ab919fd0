package authhttp

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testdb"
)

// proofSigner makes DPoP proofs with go-jose, an independent JOSE library.
type proofSigner struct {
	t    *testing.T
	priv crypto.Signer
	alg  jose.SignatureAlgorithm
}

func newProofSigner(t *testing.T, ed bool) proofSigner {
	if ed {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		return proofSigner{t, priv, jose.EdDSA}
	}
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return proofSigner{t, priv, jose.ES256}
}

func (p proofSigner) thumbprint() string {
	b, err := (&jose.JSONWebKey{Key: p.priv.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		p.t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// proof signs a proof for method and htu, bound to token when it is not
// empty, issued at iat.
func (p proofSigner) proofAt(method, htu, token string, iat time.Time) string {
	p.t.Helper()
	return p.proofNonce(method, htu, token, "", iat)
}

// proofNonce is proofAt with a server nonce, when not empty.
func (p proofSigner) proofNonce(method, htu, token, nonce string, iat time.Time) string {
	p.t.Helper()
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: p.alg, Key: p.priv}, opts)
	if err != nil {
		p.t.Fatal(err)
	}
	c := map[string]any{"jti": rand.Text(), "htm": method, "htu": htu, "iat": iat.Unix()}
	if token != "" {
		c["ath"] = authsvc.AccessTokenHash(token)
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	b, _ := json.Marshal(c)
	jws, err := s.Sign(b)
	if err != nil {
		p.t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

func (p proofSigner) proof(method, htu, token string) string {
	return p.proofAt(method, htu, token, time.Now())
}

// call sends a request with headers (each value a header line of its own).
func call(t *testing.T, method, u, body string, header http.Header) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(raw, &m)
	return resp.StatusCode, resp.Header, m
}

// TestDPoPEndToEnd: a client gets a DPoP-bound token from /oauth/token and
// reaches a service behind authsvc.Middleware with a fresh proof per
// request; the token without a valid proof, or as Bearer, is refused.
func TestDPoPEndToEnd(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		id, secret := ts.createClient(url.Values{"client_id": {"svc-dpop"}, "scope": {"notes:read"}})
		key := newProofSigner(t, false)
		const tokenURL = "http://authd.test/oauth/token" // the issuer's, as discovery names it
		tokenReq := func(proofs ...string) (int, map[string]any) {
			h := http.Header{"Content-Type": {form}, "Authorization": {basicAuth(id, secret)}}
			for _, p := range proofs {
				h.Add("DPoP", p)
			}
			status, _, body := call(t, "POST", ts.url+"/oauth/token", "grant_type=client_credentials", h)
			return status, body
		}

		// The token endpoint: a proof binds the token.
		status, body := tokenReq(key.proof("POST", tokenURL, ""))
		if status != 200 || body["token_type"] != "DPoP" {
			t.Fatalf("token: %d %v", status, body)
		}
		tok := body["access_token"].(string)
		claims := verifyWithJOSE(t, ts.url, tok)
		if cnf, _ := claims["cnf"].(map[string]any); cnf == nil || cnf["jkt"] != key.thumbprint() {
			t.Fatalf("cnf %v, want jkt %s", claims["cnf"], key.thumbprint())
		}
		// authd's Bearer routes and the gateway refuse the bound token
		// as Bearer (no downgrade); its admin routes take it with a proof
		// (TestDPoPAdminRoutes).
		for _, route := range []struct{ method, path string }{
			{"GET", "/verify"}, {"POST", "/verify"}, {"GET", "/clients"},
		} {
			s, _, b := call(t, route.method, ts.url+route.path, "", http.Header{"Authorization": {"Bearer " + tok}})
			if s != 401 {
				t.Errorf("%s %s with the bound token as Bearer: %d %v", route.method, route.path, s, b)
			}
		}
		// The gateway form with the DPoP scheme: the gateway names the
		// client's request, and the proof must match it.
		fwd := func(method, uri string) http.Header {
			return http.Header{"Authorization": {"DPoP " + tok}, "X-Forwarded-Method": {method},
				"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"app.test"}, "X-Forwarded-Uri": {uri}}
		}
		gw := key.proof("GET", "https://app.test/notes", tok)
		h := fwd("GET", "/notes?page=2")
		h.Set("DPoP", gw)
		if s, hd, b := call(t, "GET", ts.url+"/verify?scope=notes:read", "", h); s != 200 || hd.Get("X-Auth-Subject") != id {
			t.Fatalf("gateway with DPoP: %d %v %v", s, hd, b)
		}
		// The seed's POST /verify takes the DPoP scheme the same way and
		// answers the claims.
		hp := fwd("POST", "/notes")
		hp.Set("DPoP", key.proof("POST", "https://app.test/notes", tok))
		if s, _, b := call(t, "POST", ts.url+"/verify", "", hp); s != 200 || b["sub"] != id {
			t.Fatalf("POST /verify with DPoP: %d %v", s, b)
		}
		hp.Set("DPoP", key.proof("GET", "https://app.test/notes", tok))
		if s, hd, _ := call(t, "POST", ts.url+"/verify", "", hp); s != 401 || !strings.Contains(hd.Get("WWW-Authenticate"), "invalid_dpop_proof") {
			t.Fatalf("POST /verify with a proof for another method: %d %v", s, hd)
		}
		envoy := http.Header{"Authorization": {"DPoP " + tok}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"app.test"},
			"Dpop": {key.proof("DELETE", "https://app.test/notes/1", tok)}}
		if s, _, b := call(t, "DELETE", ts.url+"/verify/notes/1?x=y", "", envoy); s != 200 {
			t.Fatalf("Envoy form with DPoP: %d %v", s, b)
		}
		for name, c := range map[string]struct {
			h     http.Header
			proof string
			code  string
		}{
			"replayed":           {fwd("GET", "/notes"), gw, "invalid_dpop_proof"},
			"other method":       {fwd("POST", "/notes"), key.proof("GET", "https://app.test/notes", tok), "invalid_dpop_proof"},
			"other path":         {fwd("GET", "/admin"), key.proof("GET", "https://app.test/notes", tok), "invalid_dpop_proof"},
			"no forwarded uri":   {fwd("GET", ""), key.proof("GET", "https://app.test/notes", tok), "invalid_dpop_proof"},
			"other key":          {fwd("GET", "/notes"), newProofSigner(t, true).proof("GET", "https://app.test/notes", tok), "invalid_dpop_proof"},
			"no proof":           {fwd("GET", "/notes"), "", "invalid_dpop_proof"},
			"bearer token, DPoP": {http.Header{"Authorization": {"DPoP " + bearerFor(t, ts, id, secret)}, "X-Forwarded-Method": {"GET"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"app.test"}, "X-Forwarded-Uri": {"/notes"}}, key.proof("GET", "https://app.test/notes", tok), "invalid_token"},
		} {
			if c.proof != "" {
				c.h.Set("DPoP", c.proof)
			}
			s, hd, _ := call(t, "GET", ts.url+"/verify", "", c.h)
			if s != 401 || !strings.Contains(hd.Get("WWW-Authenticate"), `DPoP realm="authd", error="`+c.code+`"`) {
				t.Errorf("gateway, %s: %d %q", name, s, hd.Get("WWW-Authenticate"))
			}
		}
		// Introspection says what it is bound to.
		r := ts.form("/oauth/introspect", url.Values{"token": {tok}, "client_id": {id}, "client_secret": {secret}}, "")
		if cnf, _ := r.body["cnf"].(map[string]any); r.body["active"] != true || r.body["token_type"] != "DPoP" || cnf["jkt"] != key.thumbprint() {
			t.Errorf("introspection: %d %v", r.status, r.body)
		}
		// Discovery lists the proof algorithms.
		r = ts.do("GET", "/.well-known/oauth-authorization-server", "", "", nil)
		if algs, _ := r.body["dpop_signing_alg_values_supported"].([]any); len(algs) != len(authsvc.DPoPAlgorithms) {
			t.Errorf("discovery: %v", r.body["dpop_signing_alg_values_supported"])
		}
		// Bad proofs at the token endpoint: 400 invalid_dpop_proof.
		replayed := key.proof("POST", tokenURL, "")
		if s, _ := tokenReq(replayed); s != 200 {
			t.Fatalf("fresh proof: %d", s)
		}
		for name, proofs := range map[string][]string{
			"replayed":  {replayed},
			"wrong htu": {key.proof("POST", "http://authd.test/other", "")},
			"wrong htm": {key.proof("GET", tokenURL, "")},
			"stale iat": {key.proofAt("POST", tokenURL, "", time.Now().Add(-5*time.Minute))},
			"with ath":  {key.proof("POST", tokenURL, "x")},
			"two":       {key.proof("POST", tokenURL, ""), key.proof("POST", tokenURL, "")},
			"empty":     {""},
			"garbage":   {"not.a.proof"},
		} {
			s, b := tokenReq(proofs...)
			if s != 400 || b["error"] != "invalid_dpop_proof" || b["error_description"] == "" {
				t.Errorf("%s: %d %v", name, s, b)
			}
		}
		// Without a proof: a bearer token, as before.
		status, body = tokenReq()
		if status != 200 || body["token_type"] != "Bearer" {
			t.Fatalf("bearer token: %d %v", status, body)
		}
		bearer := body["access_token"].(string)

		// The resource server.
		api := httptest.NewServer(authsvc.Middleware(ts.auth)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, authsvc.ClaimsFromContext(r.Context()).Subject)
		})))
		defer api.Close()
		notes := api.URL + "/notes"
		get := func(auth string, proofs ...string) (int, http.Header) {
			h := http.Header{"Authorization": {auth}}
			for _, p := range proofs {
				h.Add("DPoP", p)
			}
			s, hd, _ := call(t, "GET", notes+"?page=2", "", h)
			return s, hd
		}
		if s, _ := get("DPoP "+tok, key.proof("GET", notes, tok)); s != 200 {
			t.Fatalf("DPoP request: %d", s)
		}
		if s, _ := get("Bearer " + bearer); s != 200 {
			t.Fatalf("bearer request: %d", s)
		}
		other := newProofSigner(t, true)
		used := key.proof("GET", notes, tok)
		if s, _ := get("DPoP "+tok, used); s != 200 {
			t.Fatalf("DPoP request: %d", s)
		}
		// With the replay window in process: a proof passes once.
		local := httptest.NewServer(authsvc.Middleware(ts.auth, authsvc.WithDPoPReplayInProcess())(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
		defer local.Close()
		lp := key.proof("GET", local.URL+"/x", tok)
		for i, want := range []int{200, 401} {
			if s, _, _ := call(t, "GET", local.URL+"/x", "", http.Header{"Authorization": {"DPoP " + tok}, "Dpop": {lp}}); s != want {
				t.Errorf("in-process window, request %d: %d", i+1, s)
			}
		}
		for name, c := range map[string]struct {
			auth   string
			proofs []string
			code   string
		}{
			"bound token as Bearer":   {"Bearer " + tok, []string{key.proof("GET", notes, tok)}, "invalid_token"},
			"bound token, no proof":   {"Bearer " + tok, nil, "invalid_token"},
			"DPoP, no proof":          {"DPoP " + tok, nil, "invalid_dpop_proof"},
			"replayed proof":          {"DPoP " + tok, []string{used}, "invalid_dpop_proof"},
			"wrong ath":               {"DPoP " + tok, []string{key.proof("GET", notes, bearer)}, "invalid_dpop_proof"},
			"no ath":                  {"DPoP " + tok, []string{key.proof("GET", notes, "")}, "invalid_dpop_proof"},
			"wrong key":               {"DPoP " + tok, []string{other.proof("GET", notes, tok)}, "invalid_dpop_proof"},
			"wrong htm":               {"DPoP " + tok, []string{key.proof("POST", notes, tok)}, "invalid_dpop_proof"},
			"wrong htu":               {"DPoP " + tok, []string{key.proof("GET", api.URL+"/admin", tok)}, "invalid_dpop_proof"},
			"stale iat":               {"DPoP " + tok, []string{key.proofAt("GET", notes, tok, time.Now().Add(-2*time.Minute))}, "invalid_dpop_proof"},
			"two proofs":              {"DPoP " + tok, []string{key.proof("GET", notes, tok), key.proof("GET", notes, tok)}, "invalid_dpop_proof"},
			"bearer token as DPoP":    {"DPoP " + bearer, []string{key.proof("GET", notes, bearer)}, "invalid_token"},
			"token endpoint's proof":  {"DPoP " + tok, []string{key.proof("POST", tokenURL, "")}, "invalid_dpop_proof"},
			"DPoP scheme, blank":      {"DPoP ", []string{key.proof("GET", notes, tok)}, ""},
			"DPoP scheme, not a JWT!": {"DPoP a b", []string{key.proof("GET", notes, tok)}, "invalid_token"},
		} {
			s, hd := get(c.auth, c.proofs...)
			challenges := strings.Join(hd.Values("WWW-Authenticate"), " | ")
			want := `DPoP realm="authsvc"`
			if c.code != "" {
				want += `, error="` + c.code + `"`
			}
			if s != 401 || !strings.Contains(challenges, want+`, algs="EdDSA Ed25519 ES256 RS256 PS256"`) {
				t.Errorf("%s: %d %s", name, s, challenges)
			}
		}
	})
}

// TestDPoPBoundClient: a client registered with dpop_bound_access_tokens
// gets no token without a proof; UpdateClient turns the setting off.
func TestDPoPBoundClient(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		r := ts.do("POST", "/client", "application/json", `{"client_id":"bound","client_secret":"bound-secret-0123456789abcdef","dpop_bound_access_tokens":true}`,
			map[string]string{"Authorization": "Bearer " + ts.admin})
		expect(t, "create", r, 201)
		if r.body["dpop_bound_access_tokens"] != true {
			t.Fatalf("create: %v", r.body)
		}
		key := newProofSigner(t, true)
		tokenReq := func(proof string) (int, map[string]any) {
			h := http.Header{"Content-Type": {form}, "Authorization": {basicAuth("bound", "bound-secret-0123456789abcdef")}}
			if proof != "" {
				h.Set("DPoP", proof)
			}
			s, _, b := call(t, "POST", ts.url+"/oauth/token", "grant_type=client_credentials", h)
			return s, b
		}
		if s, b := tokenReq(""); s != 400 || b["error"] != "invalid_dpop_proof" {
			t.Fatalf("no proof: %d %v", s, b)
		}
		if s, b := tokenReq(key.proof("POST", "http://authd.test/oauth/token", "")); s != 200 || b["token_type"] != "DPoP" {
			t.Fatalf("with a proof: %d %v", s, b)
		}
		c, err := ts.auth.Client(context.Background(), "bound")
		if err != nil || !c.DPoPBoundAccessTokens || !clientJSONBound(c) {
			t.Fatalf("client: %+v %v", c, err)
		}
		off := false
		if _, err := ts.auth.UpdateClient(context.Background(), "bound", authsvc.ClientUpdate{DPoPBoundAccessTokens: &off}); err != nil {
			t.Fatal(err)
		}
		if s, b := tokenReq(""); s != 200 || b["token_type"] != "Bearer" {
			t.Fatalf("setting off: %d %v", s, b)
		}
		// Not a boolean: refused.
		r = ts.do("POST", "/client", "application/json", `{"client_id":"bound2","dpop_bound_access_tokens":"maybe"}`,
			map[string]string{"Authorization": "Bearer " + ts.admin})
		expect(t, "bad flag", r, 400)
	})
}

// TestDPoPAdminRoutes: an admin whose tokens are DPoP-bound manages
// clients with its token and a proof of each request (RFC 9449 §7.1), the
// URL as authd's issuer names it; without a proof, with a proof of another
// request or key, replayed, or as Bearer, it is refused and nothing
// changes.
func TestDPoPAdminRoutes(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		id, secret := ts.createClient(url.Values{"client_id": {"admin-dpop"}, "is_admin": {"true"}, "dpop_bound_access_tokens": {"true"}})
		key := newProofSigner(t, true)
		const base = "http://authd.test" // the issuer
		s, _, b := call(t, "POST", ts.url+"/oauth/token", "grant_type=client_credentials",
			http.Header{"Content-Type": {form}, "Authorization": {basicAuth(id, secret)}, "Dpop": {key.proof("POST", base+"/oauth/token", "")}})
		if s != 200 || b["token_type"] != "DPoP" {
			t.Fatalf("token: %d %v", s, b)
		}
		tok := b["access_token"].(string)
		dpop := func(proof string) http.Header {
			h := http.Header{"Authorization": {"DPoP " + tok}, "Content-Type": {form}}
			if proof != "" {
				h.Set("DPoP", proof)
			}
			return h
		}
		// Listing and creating, each with its own proof.
		if s, _, b := call(t, "GET", ts.url+"/clients", "", dpop(key.proof("GET", base+"/clients", tok))); s != 200 {
			t.Fatalf("GET /clients with a proof: %d %v", s, b)
		}
		create := "client_id=made-by-dpop"
		if s, _, b := call(t, "POST", ts.url+"/client", create, dpop(key.proof("POST", base+"/client", tok))); s != 201 {
			t.Fatalf("POST /client with a proof: %d %v", s, b)
		}
		replayed := key.proof("POST", base+"/client", tok)
		other := newProofSigner(t, true)
		for name, h := range map[string]http.Header{
			"no proof":             dpop(""),
			"proof of GET":         dpop(key.proof("GET", base+"/client", tok)),
			"proof of another URL": dpop(key.proof("POST", base+"/clients", tok)),
			"proof of the test server's URL, not the issuer's": dpop(key.proof("POST", ts.url+"/client", tok)),
			"proof without ath":   dpop(key.proof("POST", base+"/client", "")),
			"another key's proof": dpop(other.proof("POST", base+"/client", tok)),
			"as Bearer":           {"Authorization": {"Bearer " + tok}, "Content-Type": {form}, "Dpop": {key.proof("POST", base+"/client", tok)}},
			"junk token":          {"Authorization": {"DPoP x.y.z"}, "Content-Type": {form}, "Dpop": {key.proof("POST", base+"/client", "x.y.z")}},
		} {
			if s, _, b := call(t, "POST", ts.url+"/client", "client_id=refused", h); s != 401 {
				t.Errorf("%s: %d %v, want 401", name, s, b)
			}
		}
		if s, _, _ := call(t, "POST", ts.url+"/client", "client_id=replay-1", dpop(replayed)); s != 201 {
			t.Fatalf("first use of a proof: %d", s)
		}
		if s, _, b := call(t, "POST", ts.url+"/client", "client_id=replay-2", dpop(replayed)); s != 401 {
			t.Errorf("replayed proof: %d %v, want 401", s, b)
		}
		// Replayed at another instance of the same store: refused there
		// too (the jti is in the store, whatever Config.DPoPSharedReplay).
		store2, err := authsvc.OpenStore(context.Background(), dbURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store2.Close() })
		a2, err := authsvc.New(context.Background(), store2, authsvc.Config{Issuer: "http://authd.test"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a2.Close() })
		second := httptest.NewServer(NewHandler(a2, Options{Throttle: Throttle{Off: true}}))
		t.Cleanup(second.Close)
		if s, hd, b := call(t, "POST", second.URL+"/client", "client_id=replay-3", dpop(replayed)); s != 401 || !strings.HasPrefix(hd.Get("WWW-Authenticate"), "DPoP ") {
			t.Errorf("proof replayed at another instance: %d %v %v, want 401 with a DPoP challenge", s, hd, b)
		}
		if s, _, b := call(t, "POST", second.URL+"/client", "client_id=made-at-second", dpop(key.proof("POST", base+"/client", tok))); s != 201 {
			t.Errorf("a fresh proof at the other instance: %d %v", s, b)
		}
		for _, c := range []string{"refused", "replay-2", "replay-3"} {
			if _, err := ts.auth.Client(context.Background(), c); !errors.Is(err, authsvc.ErrClientNotFound) {
				t.Errorf("client %s exists after a refused request: %v", c, err)
			}
		}
	})
}

func clientJSONBound(c *authsvc.Client) bool { return ClientToJSON(*c).DPoPBoundAccessTokens }

// bearerFor gets a bearer token (no proof) for the client.
func bearerFor(t *testing.T, ts *testServer, id, secret string) string {
	t.Helper()
	r := ts.form("/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}, "")
	if r.status != 200 {
		t.Fatalf("token: %d %s", r.status, r.raw)
	}
	return r.body["access_token"].(string)
}

// TestDPoPNonceHTTP: with AUTHSVC_DPOP_NONCE=all's settings, the token
// endpoint answers a proof without a nonce with 400 use_dpop_nonce and a
// DPoP-Nonce header, GET /verify and Middleware with 401, WWW-Authenticate
// DPoP error="use_dpop_nonce" and the header; a proof with the nonce
// passes; a nonce about to expire passes with a fresh one in the reply; an
// expired one is refused again; nonces of the token endpoint are not the
// resources'. Discovery is unchanged.
func TestDPoPNonceHTTP(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		clk := &clock{}
		ts := newTestServerWith(t, dbURL, authsvc.Config{Now: clk.now, DPoPTokenNonce: true, DPoPResourceNonce: true})
		id, secret := ts.createClient(url.Values{"client_id": {"svc-nonce"}, "scope": {"notes:read"}})
		key := newProofSigner(t, true)
		const tokenURL = "http://authd.test/oauth/token"
		tokenReq := func(nonce string) (int, http.Header, map[string]any) {
			h := http.Header{"Content-Type": {form}, "Authorization": {basicAuth(id, secret)},
				"Dpop": {key.proofNonce("POST", tokenURL, "", nonce, clk.now())}}
			return call(t, "POST", ts.url+"/oauth/token", "grant_type=client_credentials", h)
		}
		s, hd, b := tokenReq("")
		nonce := hd.Get("DPoP-Nonce")
		if s != 400 || b["error"] != "use_dpop_nonce" || nonce == "" {
			t.Fatalf("token endpoint without a nonce: %d %v %v", s, hd, b)
		}
		for name, n := range map[string]string{"forged": strings.Repeat("A", 32), "garbage": "x"} {
			if s, hd, b := tokenReq(n); s != 400 || b["error"] != "use_dpop_nonce" || hd.Get("DPoP-Nonce") == "" {
				t.Errorf("token endpoint, %s nonce: %d %v", name, s, b)
			}
		}
		s, hd, b = tokenReq(nonce)
		if s != 200 || b["token_type"] != "DPoP" || hd.Get("DPoP-Nonce") != "" {
			t.Fatalf("token endpoint with the nonce: %d %v %v", s, hd, b)
		}
		tok := b["access_token"].(string)

		// GET /verify behind a gateway.
		verify := func(nonce string) (int, http.Header) {
			h := http.Header{"Authorization": {"DPoP " + tok}, "X-Forwarded-Method": {"GET"},
				"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"app.test"}, "X-Forwarded-Uri": {"/notes"},
				"Dpop": {key.proofNonce("GET", "https://app.test/notes", tok, nonce, clk.now())}}
			s, hd, _ := call(t, "GET", ts.url+"/verify", "", h)
			return s, hd
		}
		// The token endpoint's nonce is not a resource's.
		s, hd = verify(nonce)
		rnonce := hd.Get("DPoP-Nonce")
		if s != 401 || rnonce == "" || rnonce == nonce || !strings.Contains(hd.Get("WWW-Authenticate"), `DPoP realm="authd", error="use_dpop_nonce"`) {
			t.Fatalf("/verify with the token endpoint's nonce: %d %v", s, hd)
		}
		if s, hd := verify(rnonce); s != 200 || hd.Get("DPoP-Nonce") != "" {
			t.Fatalf("/verify with its nonce: %d %v", s, hd)
		}

		// Middleware on the Authenticator: the same resource nonces.
		api := httptest.NewServer(authsvc.Middleware(ts.auth)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
		defer api.Close()
		get := func(nonce string) (int, http.Header) {
			s, hd, _ := call(t, "GET", api.URL+"/notes", "", http.Header{"Authorization": {"DPoP " + tok},
				"Dpop": {key.proofNonce("GET", api.URL+"/notes", tok, nonce, clk.now())}})
			return s, hd
		}
		if s, hd := get(""); s != 401 || hd.Get("DPoP-Nonce") == "" || !strings.Contains(strings.Join(hd.Values("WWW-Authenticate"), " | "), `DPoP realm="authsvc", error="use_dpop_nonce"`) {
			t.Fatalf("Middleware without a nonce: %d %v", s, hd)
		}
		if s, _ := get(rnonce); s != 200 {
			t.Fatalf("Middleware with the nonce: %d", s)
		}
		// A period on, the nonce is about to expire: it passes, and the
		// reply carries the next one.
		clk.advance(authsvc.DefaultDPoPWindow)
		s, hd = get(rnonce)
		next := hd.Get("DPoP-Nonce")
		if s != 200 || next == "" || next == rnonce {
			t.Fatalf("Middleware with a nonce about to roll: %d %v", s, hd)
		}
		if s, hd := verify(rnonce); s != 200 || hd.Get("DPoP-Nonce") == "" {
			t.Fatalf("/verify with a nonce about to roll: %d %v", s, hd)
		}
		// Another period on, it has expired.
		clk.advance(authsvc.DefaultDPoPWindow)
		if s, hd := get(rnonce); s != 401 || hd.Get("DPoP-Nonce") == "" {
			t.Fatalf("Middleware with an expired nonce: %d %v", s, hd)
		}
		if s, _ := verify(rnonce); s != 401 {
			t.Fatalf("/verify with an expired nonce: %d", s)
		}
		if s, _ := get(next); s != 200 {
			t.Fatalf("Middleware with the next nonce: %d", s)
		}
		// Discovery still lists the proof algorithms.
		r := ts.do("GET", "/.well-known/oauth-authorization-server", "", "", nil)
		if algs, _ := r.body["dpop_signing_alg_values_supported"].([]any); len(algs) != len(authsvc.DPoPAlgorithms) {
			t.Errorf("discovery: %v", r.body["dpop_signing_alg_values_supported"])
		}
	})
}
