package clientauth

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/authhttp"
	"github.com/authsvc/authsvc/internal/testcert"
	"github.com/authsvc/authsvc/internal/testdb"
)

// TestMTLSClient: clientauth.MTLS gets a certificate-bound token with its
// certificate alone and reaches a Middleware service over TLS with it;
// the same token from a client without the certificate is refused.
func TestMTLSClient(t *testing.T) {
	ctx := context.Background()
	serverCA, clientCA := testcert.NewCA(t, "server CA"), testcert.NewCA(t, "client CA")
	store, err := authsvc.OpenStore(ctx, testdb.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv := httptest.NewUnstartedServer(nil)
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert, Certificates: []tls.Certificate{serverCA.Server(t)}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	a, err := authsvc.New(ctx, store, authsvc.Config{Issuer: srv.URL, ClientCAs: clientCA.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	srv.Config.Handler = authhttp.NewHandler(a, authhttp.Options{})
	if _, _, err := a.CreateClient(ctx, authsvc.NewClient{ID: "payments", AuthMethod: authsvc.AuthTLSClient,
		TLSClientAuth: authsvc.TLSClientAuth{SANURI: "spiffe://example.org/payments"}}); err != nil {
		t.Fatal(err)
	}
	notes := httptest.NewUnstartedServer(authsvc.Middleware(a)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, authsvc.ClaimsFromContext(r.Context()).Subject)
	})))
	notes.TLS = &tls.Config{ClientAuth: tls.RequestClientCert, Certificates: []tls.Certificate{serverCA.Server(t)}}
	notes.StartTLS()
	t.Cleanup(notes.Close)

	m := &MTLS{ClientID: "payments", TokenURL: srv.URL + "/oauth/token", RootCAs: serverCA.Pool(),
		Certificate: clientCA.Issue(t, testcert.Names{Subject: pkix.Name{CommonName: "payments"}, URIs: []string{"spiffe://example.org/payments"}})}
	tok, err := m.TokenSource(ctx).Token()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := m.Client(ctx).Get(notes.URL + "/notes")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "payments" {
		t.Fatalf("with the certificate: %d %s", resp.StatusCode, body)
	}
	// The token without the certificate.
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverCA.Pool()}}}
	req, _ := http.NewRequest("GET", notes.URL+"/notes", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("without the certificate: %d", resp.StatusCode)
	}
}
