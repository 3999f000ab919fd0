package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/authhttp"
	"github.com/authsvc/authsvc/internal/testdb"
	"github.com/authsvc/authsvc/internal/testissuer"
)

// TestSecretless runs the client as the README does, without a secret:
// with its private key (private_key_jwt), and with a platform token file
// (workload identity federation), against authd's handler and a stand-in
// for the notes service that checks the tokens; and with -dpop, with a
// secret and with its key, against an authd and a service that require
// DPoP server nonces (the client's first token request and first request
// are refused for their nonce and sent again).
func TestSecretless(t *testing.T) {
	ctx := context.Background()
	store, err := authsvc.OpenStore(ctx, testdb.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	authd := httptest.NewUnstartedServer(nil)
	authd.Start()
	defer authd.Close()
	a, err := authsvc.New(ctx, store, authsvc.Config{Issuer: authd.URL, DPoPTokenNonce: true, DPoPResourceNonce: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	authd.Config.Handler = authhttp.NewHandler(a, authhttp.Options{})
	notes := httptest.NewServer(authsvc.Middleware(a)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
		}
		c := authsvc.ClaimsFromContext(r.Context())
		bound := ""
		if c.DPoPThumbprint() != "" {
			bound = " (DPoP)"
		}
		w.Write([]byte(`["` + c.Subject + bound + `"]` + "\n"))
	})))
	defer notes.Close()

	// private_key_jwt: the key in a PKCS#8 PEM file, its public half registered.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	if _, _, err := a.CreateClient(ctx, authsvc.NewClient{ID: "keyed", AuthMethod: authsvc.AuthPrivateKeyJWT,
		JWKS: testissuer.JWKS(t, &testissuer.Key{Signer: priv, Alg: "EdDSA", Kid: "k1"})}); err != nil {
		t.Fatal(err)
	}
	// Federation: a Kubernetes-shaped token in a file.
	k8s := testissuer.NewIssuer(t, "RS256")
	if _, err := a.AddTrustedIssuer(ctx, authsvc.TrustedIssuer{Issuer: k8s.URL}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.CreateClient(ctx, authsvc.NewClient{ID: "pod", AuthMethod: authsvc.AuthPrivateKeyJWT,
		FederatedCredentials: []authsvc.FederatedCredential{{Issuer: k8s.URL, Subject: "system:serviceaccount:payments:api"}}}); err != nil {
		t.Fatal(err)
	}
	_, secret, err := a.CreateClient(ctx, authsvc.NewClient{ID: "bound", DPoPBoundAccessTokens: true})
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(k8s.Kubernetes(t, "payments", "api", authd.URL, time.Hour)), 0o600)

	for _, c := range []struct {
		who  string
		args []string
	}{
		{"keyed", []string{"-client-id", "keyed", "-key-file", keyFile, "-key-id", "k1"}},
		{"pod", []string{"-token-file", tokenFile}},
		{"bound (DPoP)", []string{"-client-id", "bound", "-client-secret", secret, "-dpop"}},
		{"keyed (DPoP)", []string{"-client-id", "keyed", "-key-file", keyFile, "-key-id", "k1", "-dpop"}},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"-token-url", authd.URL + "/oauth/token", "-notes", notes.URL, "-scope", ""}, c.args...)
		if code := run(ctx, args, &stdout, &stderr); code != 0 {
			t.Fatalf("client %v: exit %d: %s", c.args, code, stderr.String())
		}
		if !strings.Contains(stdout.String(), `notes: ["`+c.who+`"]`) {
			t.Fatalf("client %v printed %q", c.args, stdout.String())
		}
	}
}
