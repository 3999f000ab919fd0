package clientauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"
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

// TestDPoPClientNonces: against an authd that requires server nonces at
// the token endpoint, and a resource whose Middleware requires its own
// (WithDPoPNonces), the client learns each origin's nonce from the
// refusal (400 and 401 use_dpop_nonce), sends the request again once, body
// included, and from then on uses the nonce it has: one refusal per
// origin, not one per request.
func TestDPoPClientNonces(t *testing.T) {
	a, base := startAuthdWith(t, authsvc.Config{DPoPTokenNonce: true})
	ctx := context.Background()
	_, secret, err := a.CreateClient(ctx, authsvc.NewClient{ID: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	nonces, err := authsvc.NewDPoPNonces(nil)
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(authsvc.Middleware(a, authsvc.WithDPoPNonces(nonces))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	})))
	defer api.Close()
	wire := &countingTransport{statuses: map[string][]int{}}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: wire})
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	dp := &DPoP{Key: key}
	tctx := dp.TokenContext(ctx)
	ts := (&clientcredentials.Config{ClientID: "svc", ClientSecret: secret, TokenURL: base + "/oauth/token"}).TokenSource(tctx)
	client := dp.Client(tctx, ts)
	for i := 0; i < 3; i++ {
		resp, err := client.Post(api.URL+"/notes", "text/plain", strings.NewReader("a note"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "a note" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	wire.mu.Lock()
	defer wire.mu.Unlock()
	if got := fmt.Sprint(wire.statuses["/oauth/token"]); got != "[400 200]" {
		t.Errorf("token endpoint answered %s, want [400 200]", got)
	}
	if got := fmt.Sprint(wire.statuses["/notes"]); got != "[401 200 200 200]" {
		t.Errorf("the resource answered %s, want [401 200 200 200]", got)
	}
}

// countingTransport records the status of each response by path.
type countingTransport struct {
	mu       sync.Mutex // guards statuses
	statuses map[string][]int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		c.mu.Lock()
		c.statuses[r.URL.Path] = append(c.statuses[r.URL.Path], resp.StatusCode)
		c.mu.Unlock()
	}
	return resp, err
}
