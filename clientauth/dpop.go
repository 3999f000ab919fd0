package clientauth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// DPoP signs DPoP proofs (RFC 9449) with Key: at the token endpoint, so
// that the tokens are bound to the key, and on every request that uses
// one. Use TokenContext for the token source and Client for the requests:
//
//	dp := &clientauth.DPoP{Key: key}
//	ctx = dp.TokenContext(ctx)
//	ts := (&clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: u}).TokenSource(ctx)
//	client := dp.Client(ctx, ts) // Authorization: DPoP <token>, and a fresh proof per request
//
// Server nonces (RFC 9449 §8, §9): the latest DPoP-Nonce each origin
// sent goes into the proofs for that origin, and a request refused for
// its nonce (use_dpop_nonce: 400 at the token endpoint, 401 at a
// resource) is sent again once with the nonce the refusal named, when its
// body can be sent again (GetBody, as http.NewRequest sets). A DPoP must
// not be copied after first use.
type DPoP struct {
	// Key signs the proofs: an ed25519.PrivateKey, an *ecdsa.PrivateKey
	// on P-256, an *rsa.PrivateKey, or any crypto.Signer with such a
	// public key.
	Key crypto.Signer
	// Algorithm is EdDSA, ES256, RS256 or PS256. Empty means the key's:
	// EdDSA, ES256 or RS256.
	Algorithm string

	mu     sync.Mutex        // guards nonces
	nonces map[string]string // origin (scheme://host) → the latest DPoP-Nonce it sent
}

// Limits on the nonces remembered.
const (
	maxNonceLen     = 1024 // a longer DPoP-Nonce is ignored
	maxNonceOrigins = 1024 // past it, the remembered nonces are forgotten
)

func origin(u *url.URL) string {
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)
}

// nonce is the latest nonce u's origin sent, or "".
func (d *DPoP) nonce(u *url.URL) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nonces[origin(u)]
}

// noteNonce remembers the DPoP-Nonce of a response from u's origin, if it
// has a well-formed one (RFC 9449 §8.1: 1*NQCHAR), and reports whether it
// had.
func (d *DPoP) noteNonce(u *url.URL, resp *http.Response) bool {
	n := resp.Header.Get("DPoP-Nonce")
	if n == "" || len(n) > maxNonceLen {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nonces == nil || len(d.nonces) >= maxNonceOrigins {
		d.nonces = make(map[string]string)
	}
	d.nonces[origin(u)] = n
	return true
}

// Proof signs a proof for a request with method to u (its query and
// fragment are left out of htu), bound to accessToken when it is not
// empty (ath), with the latest nonce u's origin sent, if any.
func (d *DPoP) Proof(method string, u *url.URL, accessToken string) (string, error) {
	if d.Key == nil {
		return "", errors.New("clientauth: DPoP needs a Key")
	}
	alg, err := algFor(d.Key, d.Algorithm)
	if err != nil {
		return "", err
	}
	jwk, err := publicJWK(d.Key.Public())
	if err != nil {
		return "", err
	}
	htu := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	claims := map[string]any{"jti": rand.Text(), "htm": method, "htu": htu.String(), "iat": time.Now().Unix()}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	if n := d.nonce(u); n != "" {
		claims["nonce"] = n
	}
	return sign(d.Key, alg, map[string]any{"typ": "dpop+jwt", "alg": alg, "jwk": jwk}, claims)
}

// TokenContext returns ctx with an HTTP client (oauth2.HTTPClient, the
// one x/oauth2's token sources use) that adds a DPoP proof to each request
// it sends: token requests made with it get DPoP-bound tokens. The client
// ctx already carries, if any, sends them.
func (d *DPoP) TokenContext(ctx context.Context) context.Context {
	base := http.DefaultTransport
	if c, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && c != nil && c.Transport != nil {
		base = c.Transport
	}
	return context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: &dpopTransport{d: d, base: base}})
}

// Client returns an HTTP client that sends each request with
// Authorization: DPoP and the token of ts (which must be DPoP-bound to
// Key: made with TokenContext), and a fresh proof for that request.
func (d *DPoP) Client(ctx context.Context, ts oauth2.TokenSource) *http.Client {
	base := http.DefaultTransport
	if c, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && c != nil && c.Transport != nil {
		if t, ok := c.Transport.(*dpopTransport); ok {
			base = t.base // not a second proof
		} else {
			base = c.Transport
		}
	}
	return &http.Client{Transport: &dpopTransport{d: d, base: base, source: ts}}
}

// dpopTransport adds a proof to each request, and with a source the
// token it goes with.
type dpopTransport struct {
	d      *DPoP
	base   http.RoundTripper
	source oauth2.TokenSource // nil at the token endpoint
}

func (t *dpopTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var tok string
	if t.source != nil {
		ot, err := t.source.Token()
		if err != nil {
			closeBody(req)
			return nil, err
		}
		if ot.Type() != "DPoP" {
			closeBody(req)
			return nil, fmt.Errorf("clientauth: the token is of type %q, not DPoP: get it with DPoP.TokenContext", ot.Type())
		}
		tok = ot.AccessToken
	}
	resp, err := t.send(req, req.Body, tok)
	if err != nil || !t.d.noteNonce(req.URL, resp) || !nonceChallenge(resp) || (req.Body != nil && req.GetBody == nil) {
		return resp, err
	}
	// Refused for its nonce: once more, with the one the refusal named.
	body := req.Body
	if req.Body != nil {
		if body, err = req.GetBody(); err != nil {
			return resp, nil // the refusal stands
		}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp, err = t.send(req, body, tok); err == nil {
		t.d.noteNonce(req.URL, resp)
	}
	return resp, err
}

// send sends req with body, a fresh proof and, at a resource, tok.
func (t *dpopTransport) send(req *http.Request, body io.ReadCloser, tok string) (*http.Response, error) {
	proof, err := t.d.Proof(req.Method, req.URL, tok)
	if err != nil {
		if body != nil {
			body.Close()
		}
		return nil, err
	}
	r := req.Clone(req.Context()) // a RoundTripper must not change the request
	r.Body = body
	r.Header.Set("DPoP", proof)
	if tok != "" {
		r.Header.Set("Authorization", "DPoP "+tok)
	}
	return t.base.RoundTrip(r)
}

// nonceChallenge reports whether resp refuses a proof for its nonce: a
// 401 with a DPoP challenge of error use_dpop_nonce (RFC 9449 §9), or a
// 400 whose body's error is use_dpop_nonce (§8, the token endpoint). A
// 400's body is read (up to 64 KB) and put back.
func nonceChallenge(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		for _, c := range resp.Header.Values("WWW-Authenticate") {
			if len(c) > 5 && strings.EqualFold(c[:5], "dpop ") && strings.Contains(c, `error="use_dpop_nonce"`) {
				return true
			}
		}
	case http.StatusBadRequest:
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
		var e struct {
			Error string `json:"error"`
		}
		return err == nil && json.Unmarshal(b, &e) == nil && e.Error == "use_dpop_nonce"
	}
	return false
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// algFor is the JWS algorithm of key: alg when given, else the key's.
func algFor(key crypto.Signer, alg string) (string, error) {
	if alg != "" {
		return alg, nil
	}
	switch pub := key.Public().(type) {
	case ed25519.PublicKey:
		return "EdDSA", nil
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return "", errors.New("clientauth: an ECDSA key must be on P-256 (ES256)")
		}
		return "ES256", nil
	case *rsa.PublicKey:
		return "RS256", nil
	default:
		return "", fmt.Errorf("clientauth: unsupported key type %T", pub)
	}
}

// publicJWK is the JWK of a public key: its public members only.
func publicJWK(pub crypto.PublicKey) (map[string]string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64(k)}, nil
	case *ecdsa.PublicKey:
		b, err := k.Bytes()
		if err != nil || len(b) != 65 {
			return nil, errors.New("clientauth: an ECDSA key must be on P-256 (ES256)")
		}
		return map[string]string{"kty": "EC", "crv": "P-256", "x": b64(b[1:33]), "y": b64(b[33:])}, nil
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}, nil
	default:
		return nil, fmt.Errorf("clientauth: unsupported key type %T", pub)
	}
}
