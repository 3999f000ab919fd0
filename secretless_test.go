package authsvc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/authsvc/authsvc/internal/testdb"
	"github.com/authsvc/authsvc/internal/testissuer"
)

func TestJWKRules(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	b64 := base64.RawURLEncoding.EncodeToString
	rsaJWK := func(k *rsa.PublicKey, extra string) string {
		return `{"keys":[{"kty":"RSA","n":"` + b64(k.N.Bytes()) + `","e":"` + b64(big.NewInt(int64(k.E)).Bytes()) + `"` + extra + `}]}`
	}
	good := testissuer.NewKey(t, "RS256", "r")
	for _, c := range []struct {
		name, set, want string
	}{
		{"1024-bit RSA", rsaJWK(&small.PublicKey, ""), "2048 to 8192 bits"},
		{"alg of another key type", rsaJWK(good.Signer.Public().(*rsa.PublicKey), `,"alg":"ES256"`), "does not fit"},
		{"HS256 key", `{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0"}]}`, "shared secret"},
		{"alg none", rsaJWK(good.Signer.Public().(*rsa.PublicKey), `,"alg":"none"`), "unsupported alg"},
		{"P-384", `{"keys":[{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}]}`, "unsupported curve"},
		{"not on the curve", `{"keys":[{"kty":"EC","crv":"P-256","x":"` + b64(make([]byte, 32)) + `","y":"` + b64(make([]byte, 32)) + `"}]}`, "not a point"},
		{"too many keys", `{"keys":[` + strings.Repeat(`{"kty":"RSA"},`, MaxJWKSKeys) + `{"kty":"RSA"}]}`, "at most"},
		{"only an encryption key", rsaJWK(good.Signer.Public().(*rsa.PublicKey), `,"use":"enc"`), "no usable key"},
	} {
		if _, err := normalizeClientJWKS([]byte(c.set)); err == nil || !strings.Contains(ErrorMessage(err), c.want) || !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// The stored form keeps public members only, whatever else came.
	var in map[string][]map[string]any
	json.Unmarshal(testissuer.JWKS(t, good), &in)
	in["keys"][0]["x5c"] = []string{"MIIB"}
	raw, _ := json.Marshal(in)
	out, err := normalizeClientJWKS(raw)
	if err != nil || strings.Contains(string(out), "x5c") || !strings.Contains(string(out), `"kid":"r"`) {
		t.Fatalf("normalized: %s %v", out, err)
	}
}

func TestUsedAssertionsPurged(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		clk := &fakeClock{t: time.Now()}
		s := openStore(t, url)
		a := newAuth(t, s, Config{Now: clk.Now})
		k := testissuer.NewKey(t, "EdDSA", "e")
		mustClient(t, a, NewClient{ID: "svc", AuthMethod: AuthPrivateKeyJWT, JWKS: testissuer.JWKS(t, k)})
		as := k.Assertion(t, "svc", testIssuer, time.Minute, "same-jti")
		if _, err := a.AuthenticateAssertion(ctx, ClientAssertion{Assertion: as}, TokenRequest{}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.AuthenticateAssertion(ctx, ClientAssertion{Assertion: as}, TokenRequest{}); !errors.Is(err, ErrInvalidClient) || !strings.Contains(ErrorMessage(err), "replay") {
			t.Fatalf("replay: %v", err)
		}
		// Housekeeping before expiry keeps the jti; after, purges it, and
		// a new assertion may use the jti again (RFC 7523: unique until exp).
		if err := a.housekeep(ctx); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.purgeUsedJTIs(ctx, clk.Now()); n != 0 {
			t.Fatalf("purged %d live jtis", n)
		}
		clk.Add(2*time.Minute + a.cfg.Leeway)
		if n, err := s.purgeUsedJTIs(ctx, clk.Now()); n != 1 || err != nil {
			t.Fatalf("purged %d expired jtis, %v", n, err)
		}
		now := clk.Now()
		again := k.Sign(t, map[string]any{"iss": "svc", "sub": "svc", "aud": testIssuer, "jti": "same-jti", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}, nil)
		if _, err := a.AuthenticateAssertion(ctx, ClientAssertion{Assertion: again}, TokenRequest{}); err != nil {
			t.Fatalf("a jti reused after the first assertion expired: %v", err)
		}
	})
}

func TestDiscoveryMustNameTheIssuer(t *testing.T) {
	ctx := context.Background()
	is := testissuer.NewIssuer(t, "ES256")
	// A discovery document that names another issuer.
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": is.URL, "jwks_uri": is.URL + "/jwks"})
	}))
	t.Cleanup(liar.Close)
	a := newAuth(t, openStore(t, testdb.SQLite(t)), Config{})
	if _, err := a.AddTrustedIssuer(ctx, TrustedIssuer{Issuer: liar.URL}); err != nil {
		t.Fatal(err)
	}
	mustClient(t, a, NewClient{ID: "w", AuthMethod: AuthPrivateKeyJWT, FederatedCredentials: []FederatedCredential{{Issuer: liar.URL, Subject: "s"}}})
	tok := is.Key().Sign(t, map[string]any{"iss": liar.URL, "sub": "s", "aud": testIssuer, "exp": time.Now().Add(time.Minute).Unix()}, nil)
	_, err := a.AuthenticateClientAssertion(ctx, ClientAssertion{Assertion: tok})
	if !errors.Is(err, ErrInvalidClient) || !strings.Contains(ErrorMessage(err), "could not be fetched") {
		t.Fatalf("discovery naming another issuer: %v", err)
	}
	// Store down: fail closed with ErrUnavailable, never a login.
	s := openStore(t, testdb.SQLite(t))
	b := newAuth(t, s, Config{})
	s.Close()
	b.catchUpNow()
	for b.fresh(true) == nil {
		time.Sleep(5 * time.Millisecond) // until the follower has seen the store go
	}
	if _, err := b.AuthenticateClientAssertion(ctx, ClientAssertion{Assertion: tok}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("store down: %v", err)
	}
}
