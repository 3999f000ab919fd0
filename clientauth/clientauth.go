// Package clientauth gets access tokens from authd (or any OAuth 2.0
// server with the client credentials grant, RFC 6749 §4.4) without a
// client secret, as golang.org/x/oauth2 token sources:
//
//   - PrivateKeyJWT signs a client assertion (RFC 7523 §2.2, OIDC Core §9
//     private_key_jwt) with a crypto.Signer for every token request: the
//     private key can stay in a KMS or an HSM.
//   - TokenFile reads a token the platform gives the workload (a
//     Kubernetes projected service account token, a SPIFFE JWT-SVID, a CI
//     job's OIDC token) from a file at every refresh, since the platform
//     rotates it, and presents it as the client assertion (workload
//     identity federation).
//   - MTLS presents a TLS client certificate (RFC 8705 tls_client_auth or
//     self_signed_tls_client_auth) and gets tokens bound to it; its
//     Client presents the certificate on the requests that use them.
//
// golang.org/x/oauth2/clientcredentials cannot do either: it sends a
// secret.
package clientauth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// assertionType is RFC 7523 §2.2's client_assertion_type.
const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// PrivateKeyJWT gets tokens for a private_key_jwt client. Fill it in as
// clientcredentials.Config; the zero value of each optional field has the
// meaning its comment gives.
type PrivateKeyJWT struct {
	ClientID string
	TokenURL string // such as https://auth.example/oauth/token
	// Key signs the assertions: an ed25519.PrivateKey, an *ecdsa.PrivateKey
	// on P-256, an *rsa.PrivateKey, or any crypto.Signer with such a
	// public key (a KMS or an HSM).
	Key crypto.Signer
	// KeyID is the kid of the key in the client's registered JWK Set.
	// Optional when the set has one key.
	KeyID string
	// Algorithm is EdDSA, ES256, RS256 or PS256. Empty means the key's:
	// EdDSA, ES256 or RS256.
	Algorithm string
	// Audience is the assertion's aud. Empty means TokenURL (RFC 7523 §3);
	// authd takes its issuer as well.
	Audience string
	// Scopes asked for; empty means all of the client's.
	Scopes []string
	// EndpointParams are more parameters of the token request, such as
	// "audience" or "resource".
	EndpointParams url.Values
	// AssertionLifetime is each assertion's lifetime. Zero means one
	// minute (authd accepts up to five by default).
	AssertionLifetime time.Duration
}

// TokenSource returns a token source that signs a new assertion for each
// token it fetches, and reuses a token until it nears its expiry. The HTTP
// client is ctx's oauth2.HTTPClient, as with x/oauth2.
func (c *PrivateKeyJWT) TokenSource(ctx context.Context) oauth2.TokenSource {
	return oauth2.ReuseTokenSource(nil, &assertionSource{ctx: ctx, clientID: c.ClientID, tokenURL: c.TokenURL,
		scopes: c.Scopes, params: c.EndpointParams, assertion: c.assertion})
}

// Client returns an HTTP client that adds a token to every request.
func (c *PrivateKeyJWT) Client(ctx context.Context) *http.Client {
	return oauth2.NewClient(ctx, c.TokenSource(ctx))
}

// assertion signs a new client assertion.
func (c *PrivateKeyJWT) assertion() (string, error) {
	if c.Key == nil || c.ClientID == "" || c.TokenURL == "" {
		return "", errors.New("clientauth: PrivateKeyJWT needs ClientID, TokenURL and Key")
	}
	alg, err := algFor(c.Key, c.Algorithm)
	if err != nil {
		return "", err
	}
	aud := c.Audience
	if aud == "" {
		aud = c.TokenURL
	}
	life := c.AssertionLifetime
	if life <= 0 {
		life = time.Minute
	}
	now := time.Now()
	claims := map[string]any{"iss": c.ClientID, "sub": c.ClientID, "aud": aud, "jti": rand.Text(),
		"iat": now.Unix(), "exp": now.Add(life).Unix()}
	header := map[string]any{"alg": alg, "typ": "JWT"}
	if c.KeyID != "" {
		header["kid"] = c.KeyID
	}
	return sign(c.Key, alg, header, claims)
}

// sign makes a compact JWS of claims with any crypto.Signer.
func sign(key crypto.Signer, alg string, header, claims map[string]any) (string, error) {
	hb, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString(hb) + "." + enc.EncodeToString(cb)
	digest := sha256.Sum256([]byte(signed))
	var sig []byte
	switch alg {
	case "EdDSA", "Ed25519":
		sig, err = key.Sign(rand.Reader, []byte(signed), crypto.Hash(0)) // Ed25519 signs the message itself
	case "ES256":
		if sig, err = key.Sign(rand.Reader, digest[:], crypto.SHA256); err == nil {
			sig, err = rawECDSA(sig) // JWS wants r||s, signers give ASN.1
		}
	case "RS256":
		sig, err = key.Sign(rand.Reader, digest[:], crypto.SHA256)
	case "PS256":
		sig, err = key.Sign(rand.Reader, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
	default:
		return "", fmt.Errorf("clientauth: unsupported algorithm %q (EdDSA, ES256, RS256, PS256)", alg)
	}
	if err != nil {
		return "", fmt.Errorf("clientauth: sign the assertion: %w", err)
	}
	return signed + "." + enc.EncodeToString(sig), nil
}

// rawECDSA turns an ASN.1 ECDSA signature into P-256's 64-byte r||s.
func rawECDSA(der []byte) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) > 0 {
		return nil, errors.New("malformed ECDSA signature")
	}
	out := make([]byte, 64)
	rs.R.FillBytes(out[:32])
	rs.S.FillBytes(out[32:])
	return out, nil
}

// TokenFile gets tokens by presenting a token the platform writes to a
// file as the client assertion: the server finds the client by the
// token's issuer and subject (a federated credential).
type TokenFile struct {
	TokenURL string
	// Path of the platform's token, read at every refresh: Kubernetes
	// rotates a projected token in place, such as
	// /var/run/secrets/tokens/authd-token.
	Path string
	// ClientID, optional: the server finds the client by the token.
	ClientID string
	// Scopes asked for; empty means all of the client's.
	Scopes []string
	// EndpointParams are more parameters of the token request.
	EndpointParams url.Values
}

// maxTokenFile bounds the file read (authd takes assertions up to 16 KiB).
const maxTokenFile = 64 << 10

// TokenSource returns a token source that reads the file and exchanges
// its token for each token it fetches, and reuses a token until it nears
// its expiry.
func (c *TokenFile) TokenSource(ctx context.Context) oauth2.TokenSource {
	return oauth2.ReuseTokenSource(nil, &assertionSource{ctx: ctx, clientID: c.ClientID, tokenURL: c.TokenURL,
		scopes: c.Scopes, params: c.EndpointParams, assertion: c.read})
}

// Client returns an HTTP client that adds a token to every request.
func (c *TokenFile) Client(ctx context.Context) *http.Client {
	return oauth2.NewClient(ctx, c.TokenSource(ctx))
}

func (c *TokenFile) read() (string, error) {
	f, err := os.Open(c.Path)
	if err != nil {
		return "", fmt.Errorf("clientauth: read the platform token: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("clientauth: read the platform token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	switch {
	case len(b) > maxTokenFile:
		return "", fmt.Errorf("clientauth: %s is larger than %d bytes: not a token", c.Path, maxTokenFile)
	case tok == "":
		return "", fmt.Errorf("clientauth: %s is empty", c.Path)
	}
	return tok, nil
}

// assertionSource fetches one token per call with a new assertion.
type assertionSource struct {
	ctx       context.Context
	clientID  string
	tokenURL  string
	scopes    []string
	params    url.Values
	assertion func() (string, error)
}

func (s *assertionSource) Token() (*oauth2.Token, error) {
	as, err := s.assertion()
	if err != nil {
		return nil, err
	}
	params := url.Values{}
	for k, v := range s.params {
		params[k] = v
	}
	params.Set("client_assertion_type", assertionType)
	params.Set("client_assertion", as)
	// clientcredentials does the request and reads RFC 6749 §5.1/§5.2
	// (errors as *oauth2.RetrieveError); with no secret and AuthStyleInParams
	// it sends only client_id, and that only when set.
	cc := clientcredentials.Config{ClientID: s.clientID, TokenURL: s.tokenURL, Scopes: s.scopes,
		EndpointParams: params, AuthStyle: oauth2.AuthStyleInParams}
	return cc.Token(s.ctx)
}
