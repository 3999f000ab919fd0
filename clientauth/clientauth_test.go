package clientauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/authhttp"
	"github.com/authsvc/authsvc/internal/testdb"
	"github.com/authsvc/authsvc/internal/testissuer"
)

// startAuthd serves authd's routes on loopback, issuer = its URL.
func startAuthd(t *testing.T) (*authsvc.Authenticator, string) {
	t.Helper()
	return startAuthdWith(t, authsvc.Config{})
}

// startAuthdWith is startAuthd with cfg (its Issuer is set).
func startAuthdWith(t *testing.T, cfg authsvc.Config) (*authsvc.Authenticator, string) {
	t.Helper()
	ctx := context.Background()
	store, err := authsvc.OpenStore(ctx, testdb.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv := httptest.NewUnstartedServer(nil)
	srv.Start()
	t.Cleanup(srv.Close)
	cfg.Issuer = srv.URL
	a, err := authsvc.New(ctx, store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	srv.Config.Handler = authhttp.NewHandler(a, authhttp.Options{})
	return a, srv.URL
}

// opaqueSigner hides the key's type, as a KMS signer does.
type opaqueSigner struct{ crypto.Signer }

func (s opaqueSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return s.Signer.Sign(r, d, o)
}

func TestPrivateKeyJWTSource(t *testing.T) {
	a, base := startAuthd(t)
	ctx := context.Background()
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, c := range []struct {
		name, alg string
		key       crypto.Signer
	}{
		{"Ed25519", "", edKey},
		{"P-256 in a KMS-like signer", "", opaqueSigner{ecKey}},
		{"RSA", "", rsaKey},
		{"RSA-PSS", "PS256", rsaKey},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := "svc-" + rand.Text()[:8]
			jwks := testissuer.JWKSNoAlg(t, &testissuer.Key{Signer: c.key, Kid: "k1"})
			if _, _, err := a.CreateClient(ctx, authsvc.NewClient{ID: id, AuthMethod: authsvc.AuthPrivateKeyJWT, JWKS: jwks, Scopes: []string{"s"}}); err != nil {
				t.Fatal(err)
			}
			cfg := &PrivateKeyJWT{ClientID: id, TokenURL: base + "/oauth/token", Key: c.key, KeyID: "k1", Algorithm: c.alg}
			ts := cfg.TokenSource(ctx)
			tok, err := ts.Token()
			if err != nil {
				t.Fatal(err)
			}
			claims, err := a.Verify(ctx, tok.AccessToken)
			if err != nil || claims.Subject != id || claims.Scope != "s" {
				t.Fatalf("token: %+v %v", claims, err)
			}
			if again, _ := ts.Token(); again.AccessToken != tok.AccessToken {
				t.Fatal("a valid token was not reused")
			}
		})
	}
	// The wrong key: the server's error, as x/oauth2 reports it.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	id := "svc-ed"
	if _, _, err := a.CreateClient(ctx, authsvc.NewClient{ID: id, AuthMethod: authsvc.AuthPrivateKeyJWT,
		JWKS: testissuer.JWKS(t, &testissuer.Key{Signer: edKey, Alg: "EdDSA", Kid: "k1"})}); err != nil {
		t.Fatal(err)
	}
	_, err := (&PrivateKeyJWT{ClientID: id, TokenURL: base + "/oauth/token", Key: other}).TokenSource(ctx).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_client" {
		t.Fatalf("wrong key: %v", err)
	}
}

func TestTokenFileSource(t *testing.T) {
	a, base := startAuthd(t)
	ctx := context.Background()
	k8s := testissuer.NewIssuer(t, "RS256")
	if _, err := a.AddTrustedIssuer(ctx, authsvc.TrustedIssuer{Issuer: k8s.URL}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.CreateClient(ctx, authsvc.NewClient{ID: "api", AuthMethod: authsvc.AuthPrivateKeyJWT,
		FederatedCredentials: []authsvc.FederatedCredential{{Issuer: k8s.URL, Subject: "system:serviceaccount:payments:api"}}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "token")
	write := func() {
		if err := os.WriteFile(path, []byte(k8s.Kubernetes(t, "payments", "api", base, time.Hour)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write()
	src := &assertionSource{ctx: ctx, tokenURL: base + "/oauth/token", assertion: (&TokenFile{Path: path}).read}
	tok, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	if c, err := a.Verify(ctx, tok.AccessToken); err != nil || c.Subject != "api" {
		t.Fatalf("token: %+v %v", c, err)
	}
	// The same file again: each token is accepted once (the issuer does
	// not allow reuse), and the server says so.
	var re *oauth2.RetrieveError
	if _, err := src.Token(); !errors.As(err, &re) || re.ErrorCode != "invalid_client" {
		t.Fatalf("replayed file: %v", err)
	}
	// Kubernetes rotates the file: the next refresh reads the new token.
	write()
	if _, err := src.Token(); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	// Through the public API too.
	write()
	if _, err := (&TokenFile{TokenURL: base + "/oauth/token", Path: path, ClientID: "api"}).TokenSource(ctx).Token(); err != nil {
		t.Fatal(err)
	}
	if _, err := (&TokenFile{TokenURL: base + "/oauth/token", Path: path + ".missing"}).TokenSource(ctx).Token(); err == nil {
		t.Fatal("a missing file gave a token")
	}
}
