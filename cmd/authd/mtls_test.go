package main

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testcert"
	"github.com/authsvc/authsvc/internal/testdb"
)

// TestServeMTLS is issue 17's done-when for mutual TLS, through authd as
// main wires it: with AUTHSVC_TLS_CERT_FILE/KEY_FILE and
// AUTHSVC_TLS_CLIENT_CA, a client registered by the CLI with
// --tls-san-dns and --cert-bound gets a certificate-bound token with its
// certificate alone (tls_client_auth), and the token is refused without
// that certificate: at a service behind authsvc.Middleware with a
// RemoteVerifier of this authd, and at authd's own GET /verify.
func TestServeMTLS(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		dir := t.TempDir()
		serverCA, clientCA := testcert.NewCA(t, "server CA"), testcert.NewCA(t, "client CA")
		srv := serverCA.Server(t)
		write := func(name string, b []byte) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		certFile, keyFile := write("cert.pem", testcert.PEM(srv)), write("key.pem", testcert.KeyPEM(t, srv))
		caFile := write("client-ca.pem", clientCA.PEM())
		payments := clientCA.Issue(t, testcert.Names{Subject: pkix.Name{CommonName: "payments"}, DNS: []string{"payments.example.com"}})
		billing := clientCA.Issue(t, testcert.Names{Subject: pkix.Name{CommonName: "billing"}, DNS: []string{"billing.example.com"}})

		cliEnv(t, dbURL)
		var c cliClientOut
		okJSON(t, &c, "client", "create", "--id", "payments", "--scope", "notes:read", "--tls-san-dns", "payments.example.com", "--cert-bound", "--json")
		if c.TokenEndpointAuthMethod != "tls_client_auth" || c.SANDNS != "payments.example.com" || !c.CertBound || c.ClientSecret != "" {
			t.Fatalf("client create: %+v", c)
		}
		if out := ok(t, "client", "show", "payments"); !strings.Contains(out, "payments.example.com") || !strings.Contains(out, "cert-bound") {
			t.Fatalf("client show:\n%s", out)
		}

		cfg := config{
			Addr: "127.0.0.1:0", DatabaseURL: dbURL, TokenTTL: time.Hour, SigningAlg: "EdDSA",
			BootstrapClientID: "root", BootstrapClientSecret: adminSecret, LogFormat: "json", LogLevel: "error", ShutdownTimeout: 5 * time.Second,
			TLSCertFile: certFile, TLSKeyFile: keyFile, TLSClientCA: caFile, TLSSelfSignedClients: "off",
			JWKSMaxAge: time.Minute, PollInterval: time.Second, MaxStaleness: 30 * time.Second, StoreTimeout: 5 * time.Second,
		}
		cfg.Issuer = "https://authd.test" // every client below dials the listener for it
		logs := &testdb.LogBuffer{}
		ap, _ := serveForTest(t, cfg, logs)
		base := "https://authd.test"
		client := func(cert *tls.Certificate) *http.Client {
			tc := &tls.Config{RootCAs: serverCA.Pool()}
			if cert != nil {
				tc.Certificates = []tls.Certificate{*cert}
			}
			dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, ap.ln.Addr().String())
			}
			return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, DialContext: dial}, Timeout: 10 * time.Second}
		}
		token := func(cert *tls.Certificate) (int, map[string]any) {
			resp, err := client(cert).PostForm(base+"/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"payments"}})
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var m map[string]any
			json.NewDecoder(resp.Body).Decode(&m)
			return resp.StatusCode, m
		}
		s, b := token(&payments)
		if s != 200 || b["token_type"] != "Bearer" {
			t.Fatalf("token with the certificate: %d %v", s, b)
		}
		tok := b["access_token"].(string)
		claims, err := ap.auth.Verify(context.Background(), tok)
		if err != nil || claims.CertificateThumbprint() != authsvc.CertificateThumbprint(payments.Certificate[0]) {
			t.Fatalf("the token's cnf: %+v %v", claims, err)
		}
		if s, b := token(nil); s != 401 {
			t.Fatalf("token without a certificate: %d %v", s, b)
		}
		if s, b := token(&billing); s != 401 {
			t.Fatalf("token with another client's certificate: %d %v", s, b)
		}

		// Discovery says so.
		resp, err := client(nil).Get(base + "/.well-known/oauth-authorization-server")
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if doc["tls_client_certificate_bound_access_tokens"] != true || !strings.Contains(toJSON(doc["token_endpoint_auth_methods_supported"]), "tls_client_auth") ||
			strings.Contains(toJSON(doc["token_endpoint_auth_methods_supported"]), "self_signed") {
			t.Fatalf("discovery: %v", doc)
		}

		// authd's GET /verify.
		verify := func(cert *tls.Certificate) int {
			req, _ := http.NewRequest("GET", base+"/verify", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client(cert).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if s := verify(&payments); s != 200 {
			t.Fatalf("GET /verify with the certificate: %d", s)
		}
		if s := verify(nil); s != 401 {
			t.Fatalf("GET /verify without the certificate: %d", s)
		}

		// A service behind Middleware with a RemoteVerifier of this authd.
		_, secret, err := ap.auth.CreateClient(context.Background(), authsvc.NewClient{ID: "notes-svc"})
		if err != nil {
			t.Fatal(err)
		}
		rv, err := authsvc.NewRemoteVerifier(context.Background(), base, authsvc.WithClientCredentials("notes-svc", secret), authsvc.WithHTTPClient(client(nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer rv.Close()
		notes := httptest.NewUnstartedServer(authsvc.Middleware(rv)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "notes for "+authsvc.ClaimsFromContext(r.Context()).Subject)
		})))
		notes.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
		notes.StartTLS()
		defer notes.Close()
		atNotes := func(cert *tls.Certificate) (int, string) {
			tr := notes.Client().Transport.(*http.Transport).Clone()
			if cert != nil {
				tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
			}
			req, _ := http.NewRequest("GET", notes.URL+"/notes", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
		}
		if s, _ := atNotes(&payments); s != 200 {
			t.Fatalf("notes with the certificate: %d", s)
		}
		for name, cert := range map[string]*tls.Certificate{"without a certificate": nil, "with another certificate": &billing} {
			if s, www := atNotes(cert); s != 401 || !strings.Contains(www, `error="invalid_token"`) {
				t.Fatalf("notes %s: %d %q", name, s, www)
			}
		}
		if strings.Contains(logs.String(), tok) || strings.Contains(logs.String(), base64.StdEncoding.EncodeToString(payments.Certificate[0])[:40]) {
			t.Fatal("a token or a certificate in the log")
		}
	})
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
