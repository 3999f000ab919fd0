package authsvc

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Signing algorithms.
const (
	AlgEdDSA = "EdDSA"
	AlgES256 = "ES256"
	AlgRS256 = "RS256"
	AlgHS256 = "HS256"
)

// signingKey is a signing key as the store keeps it.
type signingKey struct {
	ID         string // kid
	Alg        string
	PrivateKey string    // PKCS#8 DER, base64; "enc:" + AES-GCM sealed when a key-encryption key is set
	CreatedAt  time.Time // when it was generated and published in the JWKS
	ActivateAt time.Time // when instances start signing with it
}

// signer is a parsed signing key.
type signer struct {
	kid        string
	alg        string
	method     jwt.SigningMethod
	private    any // ed25519.PrivateKey, *ecdsa.PrivateKey, *rsa.PrivateKey or []byte (HS256)
	public     crypto.PublicKey
	createdAt  time.Time
	activateAt time.Time
	// header is the encoded JOSE header of the tokens this key signs
	// ({"alg","kid","typ":"at+jwt"}, base64url), made once: issue writes
	// it as it is, and parse recognises it by its bytes.
	header string
}

// keySet holds the parsed keys: those that may sign (of the configured
// algorithm, by activation time) and every one that verifies. It is built
// once per key change and never modified, so readers need no lock; the
// JWKS bytes and the parsers are made here, not per request.
type keySet struct {
	signers []*signer // of cfg.SigningAlg, oldest activation first
	byKid   map[string]*signer
	jwks    []byte
	methods []string
	parser  *jwt.Parser // checks exp/nbf/iss
	lenient *jwt.Parser // signature, alg and iss only (Logout, Revoke)
	// byHeader finds a key by the exact header segment it signs with: the
	// fast path of parse for the tokens this service issued.
	byHeader map[string]*signer
	// The DPoP server nonces of the token endpoint and of resources,
	// keyed by keys derived from the signing keys' private parts, which
	// every instance holds and no one else does (dpopNonceKeys).
	tokenNonces, resourceNonces *DPoPNonces
}

// current returns the newest signer whose activation time has come (or the
// oldest, if none has yet: a fresh store's first key).
func (ks *keySet) current(now time.Time) *signer {
	cur := ks.signers[0]
	for _, s := range ks.signers[1:] {
		if !s.activateAt.After(now) {
			cur = s
		}
	}
	return cur
}

// loadKeySet builds the key set from cfg: the HS256 secret, or the store's
// keys, generating the first one of cfg.SigningAlg on a fresh store.
func loadKeySet(ctx context.Context, store Store, cfg Config) (*keySet, error) {
	if cfg.SigningAlg == AlgHS256 {
		s := &signer{alg: AlgHS256, method: jwt.SigningMethodHS256, private: cfg.HMACSecret}
		ks := &keySet{signers: []*signer{s}, byKid: map[string]*signer{"": s}, methods: []string{AlgHS256}, jwks: []byte(`{"keys":[]}`)}
		ks.buildParsers(cfg)
		return ks, ks.dpopNonceKeys(cfg)
	}
	stored, err := store.ensureSigningKey(ctx, cfg.SigningAlg, func() (signingKey, error) {
		now := cfg.Now()
		return generateSigningKey(cfg.SigningAlg, cfg.KeyEncryptionKey, now, now)
	})
	if err != nil {
		return nil, err
	}
	return buildKeySet(stored, cfg)
}

// buildKeySet parses stored keys into a key set.
func buildKeySet(stored []signingKey, cfg Config) (*keySet, error) {
	ks := &keySet{byKid: make(map[string]*signer)}
	methodSeen := map[string]bool{}
	for _, k := range stored {
		s, err := parseSigningKey(k, cfg.KeyEncryptionKey)
		if err != nil {
			return nil, err
		}
		ks.byKid[s.kid] = s
		if !methodSeen[s.alg] {
			methodSeen[s.alg] = true
			ks.methods = append(ks.methods, s.alg)
		}
		if s.alg == cfg.SigningAlg {
			ks.signers = append(ks.signers, s)
		}
	}
	if len(ks.signers) == 0 {
		return nil, fmt.Errorf("authsvc: the store has no %s signing key", cfg.SigningAlg)
	}
	sort.SliceStable(ks.signers, func(i, j int) bool { return ks.signers[i].activateAt.Before(ks.signers[j].activateAt) })
	var err error
	if ks.jwks, err = buildJWKS(ks.byKid); err != nil {
		return nil, err
	}
	ks.buildParsers(cfg)
	return ks, ks.dpopNonceKeys(cfg)
}

// dpopNonceKeys makes the key set's DPoP nonces. Their HMAC keys are
// derived (HKDF, one label a purpose) from the private signing keys: what
// every instance on the store already shares, and only they. Each key in
// the set checks nonces, and the one that signs makes them (from its
// activation on, which every instance has known of for JWKSMaxAge by
// then), so a staged rotation invalidates no nonce; a retired key's
// nonces end with it (one use_dpop_nonce retry).
func (ks *keySet) dpopNonceKeys(cfg Config) error {
	var secrets [][]byte
	var from []time.Time
	for _, s := range ks.signers { // oldest activation first
		b, ok := s.private.([]byte) // HS256
		if !ok {
			var err error
			if b, err = x509.MarshalPKCS8PrivateKey(s.private); err != nil {
				return fmt.Errorf("authsvc: the DPoP nonce key of %s: %w", s.kid, err)
			}
		}
		secrets = append(secrets, b)
		from = append(from, s.activateAt)
	}
	ks.tokenNonces = newDPoPNonces(secrets, from, "token", cfg.DPoPWindow, cfg.Now)
	ks.resourceNonces = newDPoPNonces(secrets, from, "resource", cfg.DPoPWindow, cfg.Now)
	return nil
}

func (ks *keySet) buildParsers(cfg Config) {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(ks.methods),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
	}
	ks.parser = jwt.NewParser(opts...)
	ks.lenient = jwt.NewParser(append(opts, jwt.WithoutClaimsValidation())...)
	ks.byHeader = make(map[string]*signer, len(ks.byKid))
	for _, s := range ks.byKid {
		// The header golang-jwt would write: a map, so its keys sorted.
		h := map[string]string{"alg": s.alg, "typ": "at+jwt"}
		if s.kid != "" {
			h["kid"] = s.kid
		}
		b, _ := json.Marshal(h)
		s.header = base64.RawURLEncoding.EncodeToString(b)
		ks.byHeader[s.header] = s
	}
}

// generateSigningKey makes a new key of alg, sealed with kek when set.
func generateSigningKey(alg string, kek []byte, now, activateAt time.Time) (signingKey, error) {
	var priv any
	var err error
	switch alg {
	case AlgEdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case AlgES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgRS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return signingKey{}, fmt.Errorf("authsvc: cannot generate a %s key", alg)
	}
	if err != nil {
		return signingKey{}, fmt.Errorf("authsvc: generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return signingKey{}, fmt.Errorf("authsvc: encode %s key: %w", alg, err)
	}
	kidBytes := make([]byte, 12)
	if _, err := rand.Read(kidBytes); err != nil {
		return signingKey{}, err
	}
	kid := base64.RawURLEncoding.EncodeToString(kidBytes)
	sealed, err := sealKey(der, kid, kek)
	if err != nil {
		return signingKey{}, err
	}
	return signingKey{ID: kid, Alg: alg, PrivateKey: sealed, CreatedAt: now.UTC().Truncate(time.Second),
		ActivateAt: activateAt.UTC().Truncate(time.Second)}, nil
}

const sealedPrefix = "enc:"

// sealKey encrypts der with AES-256-GCM under kek, binding it to kid (as
// additional data) so a sealed key cannot be moved to another row.
func sealKey(der []byte, kid string, kek []byte) (string, error) {
	if len(kek) == 0 {
		return base64.StdEncoding.EncodeToString(der), nil
	}
	gcm, err := newGCM(kek)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	sealed := gcm.Seal(nonce, nonce, der, []byte(kid))
	return sealedPrefix + base64.StdEncoding.EncodeToString(sealed), nil
}

func openKey(stored, kid string, kek []byte) ([]byte, error) {
	if !strings.HasPrefix(stored, sealedPrefix) {
		return base64.StdEncoding.DecodeString(stored)
	}
	if len(kek) == 0 {
		return nil, fmt.Errorf("authsvc: signing key %s is encrypted: set the key-encryption key (AUTHSVC_KEY_ENCRYPTION_KEY)", kid)
	}
	raw, err := base64.StdEncoding.DecodeString(stored[len(sealedPrefix):])
	if err != nil {
		return nil, err
	}
	gcm, err := newGCM(kek)
	if err != nil {
		return nil, err
	}
	if len(raw) < gcm.NonceSize() {
		return nil, errors.New("authsvc: sealed key too short")
	}
	der, err := gcm.Open(nil, raw[:gcm.NonceSize()], raw[gcm.NonceSize():], []byte(kid))
	if err != nil {
		return nil, fmt.Errorf("authsvc: signing key %s cannot be decrypted with this key-encryption key", kid)
	}
	return der, nil
}

func newGCM(kek []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("authsvc: key-encryption key: %w", err)
	}
	return cipher.NewGCM(block)
}

// parseSigningKey decodes a stored key once, at load, never per request.
func parseSigningKey(k signingKey, kek []byte) (*signer, error) {
	der, err := openKey(k.PrivateKey, k.ID, kek)
	if err != nil {
		return nil, fmt.Errorf("authsvc: signing key %s: %w", k.ID, err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("authsvc: signing key %s: %w", k.ID, err)
	}
	s := &signer{kid: k.ID, alg: k.Alg, private: priv, createdAt: k.CreatedAt, activateAt: k.ActivateAt}
	switch p := priv.(type) {
	case ed25519.PrivateKey:
		s.method, s.public = jwt.SigningMethodEdDSA, p.Public()
		if k.Alg != AlgEdDSA {
			return nil, fmt.Errorf("authsvc: signing key %s: an Ed25519 key stored as %s", k.ID, k.Alg)
		}
	case *ecdsa.PrivateKey:
		s.method, s.public = jwt.SigningMethodES256, &p.PublicKey
		if k.Alg != AlgES256 || p.Curve != elliptic.P256() {
			return nil, fmt.Errorf("authsvc: signing key %s: an ECDSA key stored as %s", k.ID, k.Alg)
		}
	case *rsa.PrivateKey:
		s.method, s.public = jwt.SigningMethodRS256, &p.PublicKey
		if k.Alg != AlgRS256 {
			return nil, fmt.Errorf("authsvc: signing key %s: an RSA key stored as %s", k.ID, k.Alg)
		}
	default:
		return nil, fmt.Errorf("authsvc: signing key %s: unsupported key type %T", k.ID, priv)
	}
	return s, nil
}

// jwk is a public key in RFC 7517 form.
type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	Kid string `json:"kid,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

func buildJWKS(byKid map[string]*signer) ([]byte, error) {
	keys := make([]jwk, 0, len(byKid))
	for _, s := range byKid {
		b64 := base64.RawURLEncoding.EncodeToString
		k := jwk{Use: "sig", Alg: s.alg, Kid: s.kid}
		switch p := s.public.(type) {
		case ed25519.PublicKey:
			k.Kty, k.Crv, k.X = "OKP", "Ed25519", b64(p)
		case *ecdsa.PublicKey:
			ecdh, err := p.ECDH()
			if err != nil {
				return nil, err
			}
			raw := ecdh.Bytes() // 0x04 || X || Y, 32 bytes each for P-256
			k.Kty, k.Crv, k.X, k.Y = "EC", "P-256", b64(raw[1:33]), b64(raw[33:65])
		case *rsa.PublicKey:
			k.Kty, k.N, k.E = "RSA", b64(p.N.Bytes()), b64(big.NewInt(int64(p.E)).Bytes())
		default:
			continue
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Kid < keys[j].Kid })
	return json.Marshal(struct {
		Keys []jwk `json:"keys"`
	}{keys})
}

// JWKS returns the public keys as an RFC 7517 JSON Web Key Set document. The
// bytes are shared: do not modify them. With HS256 the set is empty: the
// shared secret is never published.
func (a *Authenticator) JWKS() []byte {
	return a.keys.Load().jwks
}

// SigningAlgorithms lists the algorithms of the keys tokens may be signed with.
func (a *Authenticator) SigningAlgorithms() []string {
	return append([]string(nil), a.keys.Load().methods...)
}
