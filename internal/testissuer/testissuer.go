// Package testissuer is for tests only: real keys and real signatures made
// by an independent JOSE library (go-jose), never by the code under test.
// It gives a token issuer served on loopback (OIDC discovery and JWKS)
// that mints Kubernetes-shaped service account tokens and SPIFFE
// JWT-SVIDs, and client keys that sign private_key_jwt assertions.
package testissuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Key is a signing key: a client's, or an issuer's.
type Key struct {
	Signer crypto.Signer
	Alg    string // EdDSA, Ed25519 (EdDSA under RFC 9864's name), ES256, RS256, PS256
	Kid    string
}

// NewKey generates a key for alg with key id kid.
func NewKey(t testing.TB, alg, kid string) *Key {
	t.Helper()
	var s crypto.Signer
	var err error
	switch alg {
	case "EdDSA", "Ed25519":
		_, s, err = ed25519.GenerateKey(rand.Reader)
	case "ES256":
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256", "PS256":
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("testissuer: no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &Key{Signer: s, Alg: alg, Kid: kid}
}

// JWK is the key's public JSON Web Key (go-jose's encoding), with its alg
// unless noAlg.
func (k *Key) JWK(noAlg bool) jose.JSONWebKey {
	j := jose.JSONWebKey{Key: k.Signer.Public(), KeyID: k.Kid, Use: "sig"}
	if !noAlg && k.Alg != "Ed25519" {
		j.Algorithm = k.Alg
	}
	return j
}

// JWKS returns a JWK Set of the keys' public parts.
func JWKS(t testing.TB, keys ...*Key) []byte {
	t.Helper()
	return jwks(t, false, keys)
}

// JWKSNoAlg is JWKS without the keys' alg members (optional in RFC 7517).
func JWKSNoAlg(t testing.TB, keys ...*Key) []byte {
	t.Helper()
	return jwks(t, true, keys)
}

func jwks(t testing.TB, noAlg bool, keys []*Key) []byte {
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.JWK(noAlg))
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Sign makes a JWT of claims signed by k, with extra JOSE header fields.
// An "Ed25519" key signs by hand (go-jose knows only "EdDSA"): the JWS is
// simple enough, and crypto/ed25519 is not the code under test either.
func (k *Key) Sign(t testing.TB, claims map[string]any, header map[string]any) string {
	t.Helper()
	if k.Alg == "Ed25519" {
		h := map[string]any{"alg": "Ed25519", "kid": k.Kid, "typ": "JWT"}
		for name, v := range header {
			h[name] = v
		}
		hb, _ := json.Marshal(h)
		cb, _ := json.Marshal(claims)
		enc := base64.RawURLEncoding
		signed := enc.EncodeToString(hb) + "." + enc.EncodeToString(cb)
		return signed + "." + enc.EncodeToString(ed25519.Sign(k.Signer.(ed25519.PrivateKey), []byte(signed)))
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	for name, v := range header {
		opts = opts.WithHeader(jose.HeaderKey(name), v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Alg),
		Key: jose.JSONWebKey{Key: k.Signer, KeyID: k.Kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Assertion is a private_key_jwt client assertion (RFC 7523 §3) of
// clientID for aud, expiring in ttl, with jti (random when "").
func (k *Key) Assertion(t testing.TB, clientID, aud string, ttl time.Duration, jti string) string {
	t.Helper()
	if jti == "" {
		jti = rand.Text()
	}
	now := time.Now()
	return k.Sign(t, map[string]any{"iss": clientID, "sub": clientID, "aud": aud, "jti": jti,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix()}, nil)
}

// Issuer is a token issuer on loopback: GET /.well-known/openid-configuration
// and GET /jwks, whose keys can be rotated and whose server can be taken
// down.
type Issuer struct {
	URL string // the issuer, http://127.0.0.1:port

	mu        sync.Mutex // guards keys and published
	keys      []*Key     // signing: the first
	published []*Key     // served at /jwks
	Fetches   atomic.Int64
	down      atomic.Bool
	srv       *httptest.Server
}

// NewIssuer starts an issuer with one key of alg, closed with the test.
func NewIssuer(t testing.TB, alg string) *Issuer {
	t.Helper()
	is := &Issuer{}
	k := NewKey(t, alg, "key-1")
	is.keys, is.published = []*Key{k}, []*Key{k}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"issuer": is.URL, "jwks_uri": is.URL + "/jwks"})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		is.Fetches.Add(1)
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(is.JWKS(t))
	})
	is.srv = httptest.NewServer(mux)
	is.URL = is.srv.URL
	t.Cleanup(is.srv.Close)
	return is
}

// JWKS is the key set the issuer publishes.
func (is *Issuer) JWKS(t testing.TB) []byte {
	is.mu.Lock()
	defer is.mu.Unlock()
	return JWKS(t, is.published...)
}

// Key is the issuer's signing key.
func (is *Issuer) Key() *Key {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.keys[0]
}

// Rotate signs with a new key of the same algorithm from now on and
// publishes only it (the old key's tokens then fail).
func (is *Issuer) Rotate(t testing.TB, kid string) *Key {
	t.Helper()
	k := NewKey(t, is.Key().Alg, kid)
	is.mu.Lock()
	is.keys, is.published = []*Key{k}, []*Key{k}
	is.mu.Unlock()
	return k
}

// SetDown makes the issuer answer 503 to everything (true) or serve again.
func (is *Issuer) SetDown(down bool) { is.down.Store(down) }

// Kubernetes mints a projected service account token of
// system:serviceaccount:ns:sa for aud, as kube-apiserver does (RS256 or
// the issuer's alg, kid, the kubernetes.io claim), issued now and living
// ttl.
func (is *Issuer) Kubernetes(t testing.TB, ns, sa, aud string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	return is.Key().Sign(t, map[string]any{
		"iss": is.URL, "sub": "system:serviceaccount:" + ns + ":" + sa, "aud": []string{aud},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix(), "jti": rand.Text(),
		"kubernetes.io": map[string]any{
			"namespace":      ns,
			"pod":            map[string]any{"name": sa + "-7d9f8c6b5-x2x4q", "uid": "3d9a3d2e-0f7c-4f6a-9a37-6f3c0c2b1a55"},
			"serviceaccount": map[string]any{"name": sa, "uid": "c1f0e2a4-5b6d-4e8f-9a0b-1c2d3e4f5a6b"},
		},
	}, nil)
}

// Claims mints a token with exactly these claims (for the refusals).
func (is *Issuer) Claims(t testing.TB, claims map[string]any) string {
	t.Helper()
	return is.Key().Sign(t, claims, nil)
}

// SPIFFE mints a JWT-SVID (SPIFFE JWT-SVID spec: sub the SPIFFE ID, aud,
// exp, iat; no iss) signed by k, a key of the trust domain's bundle.
func SPIFFE(t testing.TB, k *Key, id, aud string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	return k.Sign(t, map[string]any{"sub": id, "aud": []string{aud}, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}, nil)
}

// Bundle is a SPIFFE trust bundle in its JWK Set form, with the key as a
// JWT-SVID authority (use "jwt-svid") and an X.509 authority beside it.
func Bundle(t testing.TB, k *Key) []byte {
	t.Helper()
	j := k.JWK(true)
	j.Use = "jwt-svid"
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	x509Key := NewKey(t, "ES256", "x509-authority").JWK(true)
	x509Key.Use = "x509-svid"
	xb, _ := json.Marshal(x509Key)
	return []byte(`{"keys":[` + string(b) + `,` + string(xb) + `],"spiffe_sequence":1,"spiffe_refresh_hint":300}`)
}

// Tamper changes the last character of a JWS's signature.
func Tamper(jws string) string {
	i := strings.LastIndexByte(jws, '.') + 1
	c := byte('A')
	if jws[i] == 'A' {
		c = 'B'
	}
	return jws[:i] + string(c) + jws[i+1:]
}
