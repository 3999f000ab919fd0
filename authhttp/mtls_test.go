package authhttp

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testcert"
	"github.com/authsvc/authsvc/internal/testdb"
)

// mtlsEnv is authd's handler over real TLS that requests (and does not
// verify) client certificates, with tls_client_auth (trusting ca) and
// self_signed_tls_client_auth enabled, and the certificates of the tests.
type mtlsEnv struct {
	*testServer
	ca, otherCA *testcert.CA
	good        tls.Certificate // issued by ca: CN=payments,OU=svc,O=Example and SANs
	wrongCA     tls.Certificate // the same names, issued by otherCA
	wrongName   tls.Certificate // issued by ca, other names
	self        tls.Certificate // self-signed: CN=payments
	otherSelf   tls.Certificate // self-signed, another key
}

func newMTLSEnv(t *testing.T, dbURL string, opts Options) *mtlsEnv {
	t.Helper()
	e := &mtlsEnv{ca: testcert.NewCA(t, "client CA"), otherCA: testcert.NewCA(t, "other CA")}
	names := testcert.Names{Subject: pkix.Name{CommonName: "payments", OrganizationalUnit: []string{"svc"}, Organization: []string{"Example"}},
		DNS: []string{"payments.example.com"}, URIs: []string{"spiffe://example.org/payments"}, IPs: []string{"10.0.0.7"}, Emails: []string{"payments@example.com"}}
	e.good = e.ca.Issue(t, names)
	e.wrongCA = e.otherCA.Issue(t, names)
	e.wrongName = e.ca.Issue(t, testcert.Names{Subject: pkix.Name{CommonName: "billing", OrganizationalUnit: []string{"svc"}, Organization: []string{"Example"}},
		DNS: []string{"billing.example.com"}, URIs: []string{"spiffe://example.org/billing"}, IPs: []string{"10.0.0.8"}, Emails: []string{"billing@example.com"}})
	e.self = testcert.SelfSigned(t, "payments")
	e.otherSelf = testcert.SelfSigned(t, "payments")
	if opts.Throttle == (Throttle{}) {
		opts.Throttle = Throttle{Off: true}
	}
	e.testServer = newTestServerTLS(t, dbURL, authsvc.Config{ClientCAs: e.ca.Pool(), SelfSignedClientCerts: true}, opts,
		&tls.Config{ClientAuth: tls.RequestClientCert})
	return e
}

// with returns an HTTP client of the server that presents cert (none
// when nil).
func (e *mtlsEnv) with(cert *tls.Certificate) *http.Client {
	tr := e.client.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = tr.TLSClientConfig.Clone()
	if cert != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: tr}
}

// post sends a form to the server with cert; header may add headers.
func post(t *testing.T, c *http.Client, u string, v url.Values, header http.Header) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(v.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	if header != nil {
		req.Header = header.Clone()
	}
	req.Header.Set("Content-Type", form)
	return send(t, c, req)
}

func send(t *testing.T, c *http.Client, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(raw, &m)
	if m == nil {
		m = map[string]any{}
	}
	m["_www"] = resp.Header.Values("WWW-Authenticate")
	return resp.StatusCode, m
}

// claimsOf decodes a token's claims (no checks: the tests verify elsewhere).
func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	var m map[string]any
	if err := json.Unmarshal(mustB64(t, parts[1]), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func x5t(c tls.Certificate) string { return authsvc.CertificateThumbprint(c.Certificate[0]) }

func cnfOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	cnf, _ := claimsOf(t, tok)["cnf"].(map[string]any)
	return cnf
}

// TestMTLS runs the mTLS tests below on one server per store (a server
// costs a store, its migrations and keys; the package runs near CI's
// timeout under -race on a busy machine).
func TestMTLS(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		e := newMTLSEnv(t, dbURL, Options{})
		for _, tc := range []struct {
			name string
			run  func(*testing.T, *mtlsEnv)
		}{
			{"client authentication", mtlsClientAuthentication},
			{"bound tokens", mtlsBoundTokens},
			{"behind a proxy", mtlsBehindProxy},
			{"client validation", mtlsClientValidation},
			{"discovery", mtlsDiscovery},
		} {
			t.Run(tc.name, func(t *testing.T) {
				sub := *e
				ts := *e.testServer
				ts.t = t
				sub.testServer = &ts
				tc.run(t, &sub)
			})
		}
	})
}

// mtlsClientAuthentication: tls_client_auth by each name of RFC 8705
// §2.1.2 and self_signed_tls_client_auth at /oauth/token, with the right
// certificate, one of another CA, one with other names, a self-signed one,
// another key and none; tokens bound to the certificate.
func mtlsClientAuthentication(t *testing.T, e *mtlsEnv) {
	admin := map[string]string{"Authorization": "Bearer " + e.admin}
	clients := []map[string]any{
		{"client_id": "by-dn", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=payments, OU=svc, O=Example"},
		{"client_id": "by-dns", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "Payments.Example.com"},
		{"client_id": "by-uri", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_uri": "spiffe://example.org/payments"},
		{"client_id": "by-ip", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_ip": "10.0.0.7"},
		{"client_id": "by-email", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_email": "payments@example.com"},
		{"client_id": "self", "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": json.RawMessage(testcert.JWKS(t, e.self))},
	}
	for _, c := range clients {
		b, _ := json.Marshal(c)
		r := e.do("POST", "/client", "application/json", string(b), admin)
		expect(t, "create "+c["client_id"].(string), r, 201)
		if _, has := r.body["client_secret"]; has {
			t.Fatalf("%s got a secret: %v", c["client_id"], r.body)
		}
	}
	if c, err := e.auth.Client(context.Background(), "by-dn"); err != nil || c.TLSClientAuth.SubjectDN != "CN=payments,OU=svc,O=Example" {
		t.Fatalf("stored DN: %+v %v", c, err)
	}
	tokenURL := e.url + "/oauth/token"
	get := func(id string, cert *tls.Certificate) (int, map[string]any) {
		return post(t, e.with(cert), tokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {id}}, nil)
	}
	for _, id := range []string{"by-dn", "by-dns", "by-uri", "by-ip", "by-email"} {
		s, b := get(id, &e.good)
		if s != 200 || b["token_type"] != "Bearer" {
			t.Fatalf("%s with its certificate: %d %v", id, s, b)
		}
		if cnf := cnfOf(t, b["access_token"].(string)); cnf["x5t#S256"] != x5t(e.good) || cnf["jkt"] != nil {
			t.Fatalf("%s: cnf %v", id, cnf)
		}
		for name, cert := range map[string]*tls.Certificate{"another CA": &e.wrongCA, "other names": &e.wrongName, "self-signed": &e.self} {
			if s, b := get(id, cert); s != 401 || b["error"] != "invalid_client" {
				t.Fatalf("%s with a certificate of %s: %d %v", id, name, s, b)
			}
		}
		if s, b := get(id, nil); s != 401 || b["error"] != "invalid_client" {
			t.Fatalf("%s without a certificate: %d %v", id, s, b)
		}
	}
	s, b := get("self", &e.self)
	if s != 200 || cnfOf(t, b["access_token"].(string))["x5t#S256"] != x5t(e.self) {
		t.Fatalf("self-signed: %d %v", s, b)
	}
	for name, cert := range map[string]*tls.Certificate{"another key": &e.otherSelf, "a CA's": &e.good} {
		if s, b := get("self", cert); s != 401 || b["error"] != "invalid_client" {
			t.Fatalf("self-signed client with %s certificate: %d %v", name, s, b)
		}
	}
	// A certificate client has no secret; a secret client no certificate login.
	if s, b := post(t, e.with(&e.good), tokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {"by-dn"}, "client_secret": {"whatever-secret-0123"}}, nil); s != 401 {
		t.Fatalf("certificate client with a secret: %d %v", s, b)
	}
	if s, b := get("root", &e.good); s != 401 || !strings.Contains(b["error_description"].(string), "not a TLS client certificate") {
		t.Fatalf("secret client by certificate: %d %v", s, b)
	}
	if s, b := get("nobody", &e.good); s != 401 {
		t.Fatalf("unknown client: %d %v", s, b)
	}

	// Introspection and revocation authenticate the same way; the
	// token's cnf is in the introspection (RFC 8705 §3.2).
	_, b = get("by-dns", &e.good)
	tok := b["access_token"].(string)
	s, b = post(t, e.with(&e.good), e.url+"/oauth/introspect", url.Values{"client_id": {"by-uri"}, "token": {tok}}, nil)
	if s != 200 || b["active"] != true || b["token_type"] != "Bearer" {
		t.Fatalf("introspect by certificate: %d %v", s, b)
	}
	if cnf, _ := b["cnf"].(map[string]any); cnf["x5t#S256"] != x5t(e.good) {
		t.Fatalf("introspection cnf: %v", b["cnf"])
	}
	if s, b := post(t, e.with(nil), e.url+"/oauth/introspect", url.Values{"client_id": {"by-uri"}, "token": {tok}}, nil); s != 401 {
		t.Fatalf("introspect without a certificate: %d %v", s, b)
	}
	if s, b := post(t, e.with(&e.good), e.url+"/oauth/revoke", url.Values{"client_id": {"by-dns"}, "token": {tok}}, nil); s != 200 {
		t.Fatalf("revoke by certificate: %d %v", s, b)
	}
	if _, err := e.auth.Verify(context.Background(), tok); err == nil {
		t.Fatal("revoked token still verifies")
	}
}

// mtlsBoundTokens: a client_secret client that presents a certificate
// gets a token bound to it (RFC 8705 §3); the token works at a service
// behind Middleware over TLS only with that certificate, and at authd's
// own Bearer routes likewise. A DPoP proof binds the token to its key
// instead; tls_client_certificate_bound_access_tokens makes a certificate
// mandatory.
func mtlsBoundTokens(t *testing.T, e *mtlsEnv) {
	id, secret := e.createClient(url.Values{"client_id": {"notes-client"}, "scope": {"notes:read"}})
	basic := http.Header{"Authorization": {basicAuth(id, secret)}}
	grant := url.Values{"grant_type": {"client_credentials"}}
	s, b := post(t, e.with(&e.self), e.url+"/oauth/token", grant, basic)
	if s != 200 || b["token_type"] != "Bearer" {
		t.Fatalf("token with a certificate: %d %v", s, b)
	}
	bound := b["access_token"].(string)
	if cnf := cnfOf(t, bound); cnf["x5t#S256"] != x5t(e.self) {
		t.Fatalf("cnf: %v", cnf)
	}
	s, b = post(t, e.with(nil), e.url+"/oauth/token", grant, basic)
	if s != 200 || cnfOf(t, b["access_token"].(string)) != nil {
		t.Fatalf("token without a certificate is a bearer token: %d %v", s, b)
	}
	bearer := b["access_token"].(string)

	// A resource server behind Middleware, over TLS, asking for
	// client certificates.
	rs := httptest.NewUnstartedServer(authsvc.Middleware(e.auth)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, authsvc.ClaimsFromContext(r.Context()).Subject)
	})))
	rs.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	rs.StartTLS()
	defer rs.Close()
	at := func(tok string, cert *tls.Certificate) (int, map[string]any) {
		tr := rs.Client().Transport.(*http.Transport).Clone()
		if cert != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
		}
		req, _ := http.NewRequest("GET", rs.URL+"/notes", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		return send(t, &http.Client{Transport: tr}, req)
	}
	if s, b := at(bound, &e.self); s != 200 {
		t.Fatalf("bound token with its certificate: %d %v", s, b)
	}
	for name, cert := range map[string]*tls.Certificate{"no": nil, "another": &e.otherSelf, "a CA's": &e.good} {
		s, b := at(bound, cert)
		if s != 401 || b["error"] != "invalid_token" || !slices.ContainsFunc(b["_www"].([]string), func(h string) bool { return strings.Contains(h, `error="invalid_token"`) }) {
			t.Fatalf("bound token with %s certificate: %d %v", name, s, b)
		}
	}
	if s, b := at(bearer, nil); s != 200 {
		t.Fatalf("bearer token without a certificate: %d %v", s, b)
	}
	if s, b := at(bearer, &e.self); s != 200 {
		t.Fatalf("bearer token with a certificate: %d %v", s, b)
	}

	// authd's own Bearer routes: an admin's bound token at GET /clients.
	s, b = post(t, e.with(&e.good), e.url+"/oauth/token", grant, http.Header{"Authorization": {basicAuth("root", adminSecret)}})
	if s != 200 {
		t.Fatalf("admin token: %d %v", s, b)
	}
	adminBound := b["access_token"].(string)
	list := func(cert *tls.Certificate) int {
		req, _ := http.NewRequest("GET", e.url+"/clients", nil)
		req.Header.Set("Authorization", "Bearer "+adminBound)
		s, _ := send(t, e.with(cert), req)
		return s
	}
	if s := list(&e.good); s != 200 {
		t.Fatalf("GET /clients with the certificate: %d", s)
	}
	if s := list(nil); s != 401 {
		t.Fatalf("GET /clients without the certificate: %d", s)
	}

	// DPoP and a certificate: the token is bound to the DPoP key only.
	key := newProofSigner(t, false)
	h := basic.Clone()
	h.Set("DPoP", key.proof("POST", "http://authd.test/oauth/token", ""))
	s, b = post(t, e.with(&e.self), e.url+"/oauth/token", grant, h)
	if cnf := cnfOf(t, b["access_token"].(string)); s != 200 || b["token_type"] != "DPoP" || cnf["jkt"] == nil || cnf["x5t#S256"] != nil {
		t.Fatalf("DPoP with a certificate: %d %v %v", s, b, cnf)
	}

	// tls_client_certificate_bound_access_tokens: no certificate, no token.
	r := e.do("POST", "/client", "application/json", `{"client_id":"must-bind","client_secret":"must-bind-secret-0123456789","tls_client_certificate_bound_access_tokens":true}`,
		map[string]string{"Authorization": "Bearer " + e.admin})
	expect(t, "create cert-bound", r, 201)
	mb := http.Header{"Authorization": {basicAuth("must-bind", "must-bind-secret-0123456789")}}
	if s, b := post(t, e.with(nil), e.url+"/oauth/token", grant, mb); s != 400 || b["error"] != "invalid_request" {
		t.Fatalf("cert-bound client without a certificate: %d %v", s, b)
	}
	if s, b := post(t, e.with(&e.self), e.url+"/oauth/token", grant, mb); s != 200 || cnfOf(t, b["access_token"].(string))["x5t#S256"] != x5t(e.self) {
		t.Fatalf("cert-bound client with a certificate: %d %v", s, b)
	}
	h = mb.Clone()
	h.Set("DPoP", key.proof("POST", "http://authd.test/oauth/token", ""))
	if s, b := post(t, e.with(&e.self), e.url+"/oauth/token", grant, h); s != 400 {
		t.Fatalf("cert-bound client with a DPoP proof: %d %v", s, b)
	}
}

// escapedPEM is a certificate as nginx's $ssl_client_escaped_cert gives it.
func escapedPEM(c tls.Certificate) string { return url.PathEscape(string(testcert.PEM(c))) }

// xfcc is a certificate as Envoy's X-Forwarded-Client-Cert gives it (with
// an earlier proxy's element before it).
func xfcc(c tls.Certificate) string {
	return `By=spiffe://example.org/edge;Hash=00;Subject="CN=edge",By=spiffe://example.org/envoy;Hash=` + x5t(c) +
		`;Cert="` + escapedPEM(c) + `";Subject="CN=payments,OU=svc,O=Example";URI=spiffe://example.org/payments`
}

// mtlsBehindProxy: the client certificate named by a header of a
// trusted proxy (nginx's escaped PEM, Envoy's XFCC): at Middleware, at
// the token endpoint (tls_client_auth) and at GET /verify; the header
// from an untrusted address is ignored.
func mtlsBehindProxy(t *testing.T, e *mtlsEnv) {
	loopback := netip.MustParsePrefix("127.0.0.0/8")
	elsewhere := netip.MustParsePrefix("10.0.0.0/8")
	// authd's handler as a proxy's upstream: plain HTTP, the header
	// believed from loopback.
	plain := httptest.NewServer(NewHandler(e.auth, Options{Throttle: Throttle{Off: true}, TrustedProxies: []netip.Prefix{loopback}, ClientCertHeader: "X-SSL-Client-Cert"}))
	defer plain.Close()
	r := e.do("POST", "/client", "application/json", `{"client_id":"proxied","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_dns":"payments.example.com"}`,
		map[string]string{"Authorization": "Bearer " + e.admin})
	expect(t, "create", r, 201)
	grant := url.Values{"grant_type": {"client_credentials"}, "client_id": {"proxied"}}
	s, b := post(t, http.DefaultClient, plain.URL+"/oauth/token", grant, http.Header{"X-SSL-Client-Cert": {escapedPEM(e.good)}})
	if s != 200 || cnfOf(t, b["access_token"].(string))["x5t#S256"] != x5t(e.good) {
		t.Fatalf("token through the proxy: %d %v", s, b)
	}
	tok := b["access_token"].(string)
	if s, b := post(t, http.DefaultClient, plain.URL+"/oauth/token", grant, http.Header{"X-SSL-Client-Cert": {escapedPEM(e.wrongCA)}}); s != 401 {
		t.Fatalf("token through the proxy, another CA: %d %v", s, b)
	}
	if s, b := post(t, http.DefaultClient, plain.URL+"/oauth/token", grant, http.Header{"X-SSL-Client-Cert": {"not%20a%20certificate"}}); s != 400 {
		t.Fatalf("unreadable header: %d %v", s, b)
	}

	// GET /verify, as nginx's auth_request sends it.
	verify := func(h http.Header) int {
		req, _ := http.NewRequest("GET", plain.URL+"/verify", nil)
		req.Header = h
		req.Header.Set("Authorization", "Bearer "+tok)
		s, _ := send(t, http.DefaultClient, req)
		return s
	}
	if s := verify(http.Header{"X-SSL-Client-Cert": {escapedPEM(e.good)}}); s != 200 {
		t.Fatalf("GET /verify with the certificate: %d", s)
	}
	if s := verify(http.Header{"X-SSL-Client-Cert": {escapedPEM(e.wrongName)}}); s != 401 {
		t.Fatalf("GET /verify with another certificate: %d", s)
	}
	if s := verify(http.Header{}); s != 401 {
		t.Fatalf("GET /verify without a certificate: %d", s)
	}

	// Middleware behind a proxy, both header forms; and the header
	// from an address not trusted.
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	for _, tc := range []struct {
		name, header, value string
		trusted             netip.Prefix
		want                int
	}{
		{"nginx", "X-SSL-Client-Cert", escapedPEM(e.good), loopback, 200},
		{"nginx, another certificate", "X-SSL-Client-Cert", escapedPEM(e.wrongCA), loopback, 401},
		{"envoy", "X-Forwarded-Client-Cert", xfcc(e.good), loopback, 200},
		{"envoy, another certificate", "X-Forwarded-Client-Cert", xfcc(e.self), loopback, 401},
		{"caddy (base64 DER)", "X-Client-Cert-DER", b64std(e.good.Certificate[0]), loopback, 200},
		{"untrusted address", "X-SSL-Client-Cert", escapedPEM(e.good), elsewhere, 401},
		{"malformed", "X-Forwarded-Client-Cert", `Cert="unterminated`, loopback, 401},
	} {
		rs := httptest.NewServer(authsvc.Middleware(e.auth, authsvc.WithClientCertHeader(tc.header, tc.trusted))(hello))
		req, _ := http.NewRequest("GET", rs.URL+"/notes", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set(tc.header, tc.value)
		if s, b := send(t, http.DefaultClient, req); s != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.name, s, b, tc.want)
		}
		rs.Close()
	}
}

// mtlsClientValidation: every bad piece of RFC 8705 metadata is 400
// with a message that says what is wrong, and nothing is stored.
func mtlsClientValidation(t *testing.T, e *mtlsEnv) {
	admin := map[string]string{"Authorization": "Bearer " + e.admin}
	jwks := string(testcert.JWKS(t, e.self))
	for _, tc := range []struct{ name, body, want string }{
		{"no name", `{"token_endpoint_auth_method":"tls_client_auth"}`, "needs the name its certificate carries"},
		{"two names", `{"token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_dns":"a.example","tls_client_auth_san_ip":"10.0.0.1"}`, "give one of"},
		{"DN without value", `{"token_endpoint_auth_method":"tls_client_auth","tls_client_auth_subject_dn":"CN"}`, "type=value"},
		{"DN unknown type", `{"token_endpoint_auth_method":"tls_client_auth","tls_client_auth_subject_dn":"XX=1"}`, "unknown DN attribute type"},
		{"DN bad escape", `{"token_endpoint_auth_method":"tls_client_auth","tls_client_auth_subject_dn":"CN=a\\q"}`, "bad escape"},
		{"bad DNS name", `{"token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_dns":"a..example"}`, "must be a DNS name"},
		{"bad IP", `{"token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_ip":"10.0.0"}`, "must be an IPv4 or IPv6 address"},
		{"bad URI", `{"token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_uri":"payments"}`, "must be an absolute URI"},
		{"bad email", `{"token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_email":"payments"}`, "must be an email address"},
		{"name too long", `{"token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_uri":"spiffe://x/` + strings.Repeat("a", 1100) + `"}`, "at most 1024 bytes"},
		{"name on a secret client", `{"tls_client_auth_san_dns":"a.example"}`, "are for tls_client_auth clients"},
		{"secret with tls_client_auth", `{"client_secret":"a-chosen-secret-0123456","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_dns":"a.example"}`, "has no secret"},
		{"self-signed without keys", `{"token_endpoint_auth_method":"self_signed_tls_client_auth"}`, "needs jwks or jwks_uri"},
		{"self-signed with a name", `{"token_endpoint_auth_method":"self_signed_tls_client_auth","jwks":` + jwks + `,"tls_client_auth_san_dns":"a.example"}`, "are for tls_client_auth clients"},
		{"both bindings", `{"dpop_bound_access_tokens":true,"tls_client_certificate_bound_access_tokens":true}`, "bound to one key"},
		{"flag not a boolean", `{"tls_client_certificate_bound_access_tokens":"maybe"}`, "must be true or false"},
		{"unknown method", `{"token_endpoint_auth_method":"tls_client_authx"}`, "self_signed_tls_client_auth"},
	} {
		body := `{"client_id":"bad",` + tc.body[1:]
		r := e.do("POST", "/client", "application/json", body, admin)
		if r.status != 400 || !strings.Contains(r.body["error"].(string), tc.want) {
			t.Errorf("%s: %d %v, want 400 with %q", tc.name, r.status, r.body, tc.want)
		}
		if _, err := e.auth.Client(context.Background(), "bad"); err == nil {
			t.Fatalf("%s: the client was stored", tc.name)
		}
	}

	// PATCH: a name replaces the registered one; a bad one changes nothing.
	r := e.do("POST", "/client", "application/json", `{"client_id":"svc","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_dns":"payments.example.com"}`, admin)
	expect(t, "create", r, 201)
	r = e.do("PATCH", "/client/svc", "application/json", `{"tls_client_auth_subject_dn":"CN=payments,OU=svc,O=Example","tls_client_certificate_bound_access_tokens":true}`, admin)
	if r.status != 200 || r.body["tls_client_auth_subject_dn"] != "CN=payments,OU=svc,O=Example" || r.body["tls_client_auth_san_dns"] != nil || r.body["tls_client_certificate_bound_access_tokens"] != true {
		t.Fatalf("PATCH: %d %v", r.status, r.body)
	}
	r = e.do("PATCH", "/client/svc", "application/json", `{"tls_client_auth_san_ip":"300.1.1.1"}`, admin)
	expect(t, "PATCH bad IP", r, 400)
	if c, _ := e.auth.Client(context.Background(), "svc"); c.TLSClientAuth.SubjectDN != "CN=payments,OU=svc,O=Example" || c.TLSClientAuth.SANIP != "" {
		t.Fatalf("after a refused PATCH: %+v", c.TLSClientAuth)
	}
	r = e.do("PATCH", "/client/svc", "application/json", `{"tls_client_auth_subject_dn":""}`, admin)
	expect(t, "PATCH clearing the only name", r, 400)
	// The name in GET /clients.
	r = e.do("GET", "/clients", "", "", admin)
	if !strings.Contains(r.raw, `"tls_client_auth_subject_dn":"CN=payments,OU=svc,O=Example"`) {
		t.Fatalf("GET /clients: %s", r.raw)
	}
}

// mtlsDiscovery: the mTLS methods and tls_client_certificate_bound_access_tokens
// are advertised only when enabled.
func mtlsDiscovery(t *testing.T, e *mtlsEnv) {
	r := e.do("GET", "/.well-known/oauth-authorization-server", "", "", nil)
	for _, field := range []string{"token_endpoint_auth_methods_supported", "introspection_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported"} {
		got := r.body[field].([]any)
		if !slices.Contains(got, any("tls_client_auth")) || !slices.Contains(got, any("self_signed_tls_client_auth")) || !slices.Contains(got, any("client_secret_basic")) {
			t.Fatalf("%s: %v", field, got)
		}
	}
	if r.body["tls_client_certificate_bound_access_tokens"] != true {
		t.Fatalf("tls_client_certificate_bound_access_tokens: %v", r.body)
	}
	if _, has := r.body["mtls_endpoint_aliases"]; has {
		t.Fatal("mtls_endpoint_aliases: the same endpoints serve mTLS")
	}
	a, err := authsvc.New(context.Background(), e.store, authsvc.Config{Issuer: "http://authd.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srv := httptest.NewServer(NewHandler(a, Options{}))
	defer srv.Close()
	plain := &testServer{t: t, url: srv.URL}
	r = plain.do("GET", "/.well-known/oauth-authorization-server", "", "", nil)
	if _, has := r.body["tls_client_certificate_bound_access_tokens"]; has || slices.Contains(r.body["token_endpoint_auth_methods_supported"].([]any), any("tls_client_auth")) {
		t.Fatalf("mTLS advertised without it: %v", r.body)
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func b64std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
