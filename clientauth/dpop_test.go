package clientauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/authsvc/authsvc"
)

// TestDPoPClient: with DPoP.TokenContext, x/oauth2's clientcredentials gets
// DPoP-bound tokens from authd, and DPoP.Client reaches a service behind
// authsvc.Middleware with a fresh proof per request, for each key type.
func TestDPoPClient(t *testing.T) {
	a, base := startAuthd(t)
	ctx := context.Background()
	_, secret, err := a.CreateClient(ctx, authsvc.NewClient{ID: "svc", DPoPBoundAccessTokens: true})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(authsvc.Middleware(a)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, authsvc.ClaimsFromContext(r.Context()).DPoPThumbprint())
	})))
	defer api.Close()
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, c := range []struct {
		key crypto.Signer
		alg string
	}{{ed, ""}, {ec, ""}, {rs, ""}, {rs, "PS256"}, {opaqueSigner{ec}, ""}} {
		dp := &DPoP{Key: c.key, Algorithm: c.alg}
		tctx := dp.TokenContext(ctx)
		ts := (&clientcredentials.Config{ClientID: "svc", ClientSecret: secret, TokenURL: base + "/oauth/token"}).TokenSource(tctx)
		client := dp.Client(tctx, ts)
		for i := 0; i < 3; i++ { // one token, a proof for each request
			resp, err := client.Get(api.URL + "/notes?page=1")
			if err != nil {
				t.Fatalf("%T %s: %v", c.key, c.alg, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || len(body) != 43 {
				t.Fatalf("%T %s: %d %q", c.key, c.alg, resp.StatusCode, body)
			}
		}
	}
	// Without TokenContext the token is not bound (the client is
	// refused one: it is DPoP-bound), and nothing is sent unbound.
	dp := &DPoP{Key: ed}
	ts := (&clientcredentials.Config{ClientID: "svc", ClientSecret: secret, TokenURL: base + "/oauth/token"}).TokenSource(ctx)
	if _, err := dp.Client(ctx, ts).Get(api.URL + "/notes"); err == nil {
		t.Fatal("a token request without a proof passed")
	}
}
