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

// Claims are the claims of an access token: RFC 9068's, plus the seed
// service's id, isAdmin and clientId so its users' code keeps working.
type Claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"` // the client_id
	Audience  Audience `json:"aud,omitempty"`
	ExpiresAt int64    `json:"exp"` // unix seconds
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	ID        string   `json:"jti"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope,omitempty"` // space-separated

	ClientRowID    int64  `json:"id"`       // the seed service's numeric client id
	IsAdmin        bool   `json:"isAdmin"`  // the seed service's admin flag
	LegacyClientID string `json:"clientId"` // = sub; the seed's code names it so
}

// Scopes returns the token's scopes.
func (c *Claims) Scopes() []string { return ParseScope(c.Scope) }

// HasScope reports whether the token carries scope s.
func (c *Claims) HasScope(s string) bool {
	for _, have := range ParseScope(c.Scope) {
		if have == s {
			return true
		}
	}
	return false
}

// HasAudience reports whether aud is among the token's audiences.
func (c *Claims) HasAudience(aud string) bool {
	for _, a := range c.Audience {
		if a == aud {
			return true
		}
	}
	return false
}

// Expiry returns exp as a time.
func (c *Claims) Expiry() time.Time { return time.Unix(c.ExpiresAt, 0) }

// The jwt.Claims methods, so golang-jwt validates exp, nbf, iss and aud.
func (c *Claims) GetExpirationTime() (*jwt.NumericDate, error) { return numericDate(c.ExpiresAt), nil }
func (c *Claims) GetIssuedAt() (*jwt.NumericDate, error)       { return numericDate(c.IssuedAt), nil }
func (c *Claims) GetNotBefore() (*jwt.NumericDate, error)      { return numericDate(c.NotBefore), nil }
func (c *Claims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *Claims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *Claims) GetAudience() (jwt.ClaimStrings, error)       { return jwt.ClaimStrings(c.Audience), nil }

func numericDate(unix int64) *jwt.NumericDate {
	if unix == 0 {
		return nil // absent: WithExpirationRequired refuses a token without exp
	}
	return jwt.NewNumericDate(time.Unix(unix, 0))
}

// Audience is the aud claim: written as an array, read from a string or an
// array (RFC 7519 §4.1.3 allows both).
type Audience []string

// UnmarshalJSON accepts a string or an array of strings.
func (a *Audience) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '[' {
		// An array, as we write it: no failed string decoding first.
		var many []string
		if err := json.Unmarshal(b, &many); err != nil {
			return errors.New("authsvc: aud must be a string or an array of strings")
		}
		*a = many
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = Audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("authsvc: aud must be a string or an array of strings")
	}
	*a = many
	return nil
}

// SigningKey is a signing key as the store keeps it.
type SigningKey struct {
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
		return ks, nil
	}
	stored, err := store.EnsureSigningKey(ctx, cfg.SigningAlg, func() (SigningKey, error) {
		now := cfg.Now()
		return generateSigningKey(cfg.SigningAlg, cfg.KeyEncryptionKey, now, now)
	})
	if err != nil {
		return nil, err
	}
	return buildKeySet(stored, cfg)
}

// buildKeySet parses stored keys into a key set.
func buildKeySet(stored []SigningKey, cfg Config) (*keySet, error) {
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
	return ks, nil
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
func generateSigningKey(alg string, kek []byte, now, activateAt time.Time) (SigningKey, error) {
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
		return SigningKey{}, fmt.Errorf("authsvc: cannot generate a %s key", alg)
	}
	if err != nil {
		return SigningKey{}, fmt.Errorf("authsvc: generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return SigningKey{}, fmt.Errorf("authsvc: encode %s key: %w", alg, err)
	}
	kidBytes := make([]byte, 12)
	if _, err := rand.Read(kidBytes); err != nil {
		return SigningKey{}, err
	}
	kid := base64.RawURLEncoding.EncodeToString(kidBytes)
	sealed, err := sealKey(der, kid, kek)
	if err != nil {
		return SigningKey{}, err
	}
	return SigningKey{ID: kid, Alg: alg, PrivateKey: sealed, CreatedAt: now.UTC().Truncate(time.Second),
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
func parseSigningKey(k SigningKey, kek []byte) (*signer, error) {
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

// JWK is a public key in RFC 7517 form.
type JWK struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

func buildJWKS(byKid map[string]*signer) ([]byte, error) {
	keys := make([]JWK, 0, len(byKid))
	for _, s := range byKid {
		b64 := base64.RawURLEncoding.EncodeToString
		k := JWK{Use: "sig", Alg: s.alg, Kid: s.kid}
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
		Keys []JWK `json:"keys"`
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

// Issuer returns the configured issuer.
func (a *Authenticator) Issuer() string { return a.cfg.Issuer }

// issue signs a token for client c.
func (a *Authenticator) issue(c *Client, scopes, aud []string) (*Token, error) {
	jtiBytes := make([]byte, 16) // 128 bits, RFC 9068 §2.2
	if _, err := rand.Read(jtiBytes); err != nil {
		return nil, err
	}
	now := a.now()
	exp := now.Add(a.cfg.TokenTTL)
	claims := &Claims{
		Issuer:         a.cfg.Issuer,
		Subject:        c.ID,
		Audience:       aud,
		ExpiresAt:      exp.Unix(),
		IssuedAt:       now.Unix(),
		NotBefore:      now.Unix(),
		ID:             base64.RawURLEncoding.EncodeToString(jtiBytes),
		ClientID:       c.ID,
		Scope:          strings.Join(scopes, " "),
		ClientRowID:    c.RowID,
		IsAdmin:        c.IsAdmin,
		LegacyClientID: c.ID,
	}
	s := a.keys.Load().current(now)
	// What jwt.Token.SignedString makes, without encoding the same header
	// as a map for every token: header (made once), payload, signature.
	payload, err := json.Marshal(claims)
	if err != nil {
		return nil, fmt.Errorf("authsvc: sign token: %w", err)
	}
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, len(s.header)+enc.EncodedLen(len(payload))+enc.EncodedLen(512)+2)
	buf = append(buf, s.header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	sig, err := s.method.Sign(string(buf), s.private)
	if err != nil {
		return nil, fmt.Errorf("authsvc: sign token: %w", err)
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return &Token{
		AccessToken: string(buf),
		TokenType:   "Bearer",
		ExpiresAt:   time.Unix(exp.Unix(), 0),
		ExpiresIn:   a.cfg.TokenTTL,
		Scopes:      scopes,
		ClientID:    c.ID,
		IsAdmin:     c.IsAdmin,
	}, nil
}

// parse checks a token's signature, algorithm, typ, issuer and, when
// checkTime, its exp and nbf. It does not consult the store.
func (a *Authenticator) parse(token string, checkTime bool) (*Claims, error) {
	if token == "" || len(token) > MaxTokenLen {
		return nil, fmt.Errorf("%w: empty or longer than %d bytes", ErrInvalidToken, MaxTokenLen)
	}
	ks := a.keys.Load()
	if s := ks.byHeader[token[:max(strings.IndexByte(token, '.'), 0)]]; s != nil {
		return a.parseOwn(s, token, checkTime)
	}
	return a.parseJWT(ks, token, checkTime)
}

// parseJWT is parse through golang-jwt's parser: for any token whose header
// is not byte for byte one this service writes.
func (a *Authenticator) parseJWT(ks *keySet, token string, checkTime bool) (*Claims, error) {
	p := ks.parser
	if !checkTime {
		p = ks.lenient
	}
	claims, err := parseAccessToken(p, token, func(t *jwt.Token) (any, error) { return ks.keyFor(t) })
	if err != nil {
		return nil, err
	}
	// The lenient parser checks neither exp nor iss: check them here.
	if claims.ExpiresAt == 0 || claims.Issuer != a.cfg.Issuer {
		return nil, fmt.Errorf("%w: missing exp or another iss", ErrInvalidToken)
	}
	return claims, nil
}

// parseAccessToken parses a JWT access token with p (which checks the
// algorithm and the time claims it was built to check) and the key keyFunc
// finds, then checks typ (RFC 9068 §4: so that an ID token or another JWT
// signed by the same key cannot pass for an access token) and that jti and
// sub are present. Shared by Authenticator and RemoteVerifier.
func parseAccessToken(p *jwt.Parser, token string, keyFunc jwt.Keyfunc) (*Claims, error) {
	claims := &Claims{}
	t, err := p.ParseWithClaims(token, claims, keyFunc)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, fmt.Errorf("%w: %w", ErrTokenExpired, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return nil, fmt.Errorf("%w: typ is not at+jwt", ErrInvalidToken)
	}
	if claims.ID == "" || claims.Subject == "" {
		return nil, fmt.Errorf("%w: missing jti or sub", ErrInvalidToken)
	}
	return claims, nil
}

// keyFor finds the verification key of a token by its kid, and refuses a
// token whose alg is not that key's (no algorithm confusion).
func (ks *keySet) keyFor(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	s, ok := ks.byKid[kid]
	if !ok {
		return nil, errors.New("unknown kid")
	}
	if t.Method.Alg() != s.alg {
		return nil, errors.New("alg does not match the key")
	}
	if s.public == nil {
		return s.private, nil // HS256: the shared secret verifies
	}
	return s.public, nil
}

// parseOwn is parse for a token whose header segment is, byte for byte,
// the one signer s writes: so its alg is s's (one of the valid methods),
// its kid is s's and its typ is at+jwt, and none of that needs decoding.
// It checks what golang-jwt's parser would check after that, in the same
// way, with the signature first: the signature over header.payload with
// s's key, then (when checkTime) exp (required, with leeway), nbf (when
// present, with leeway) and iss, then the claims parse itself requires.
func (a *Authenticator) parseOwn(s *signer, token string, checkTime bool) (*Claims, error) {
	rest := token[len(s.header)+1:]
	dot := strings.IndexByte(rest, '.')
	if dot < 0 || strings.IndexByte(rest[dot+1:], '.') >= 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, jwt.ErrTokenMalformed)
	}
	enc := base64.RawURLEncoding // golang-jwt's default decoding
	sig, err := enc.DecodeString(rest[dot+1:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, jwt.ErrTokenMalformed)
	}
	key := s.public
	if key == nil {
		key = s.private // HS256: the shared secret verifies
	}
	if err := s.method.Verify(token[:len(s.header)+1+dot], sig, key); err != nil {
		return nil, fmt.Errorf("%w: %w: %w", ErrInvalidToken, jwt.ErrTokenSignatureInvalid, err)
	}
	payload, err := enc.DecodeString(rest[:dot])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, jwt.ErrTokenMalformed)
	}
	claims := &Claims{}
	if err := json.Unmarshal(payload, claims); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, jwt.ErrTokenMalformed)
	}
	if checkTime {
		now, leeway := a.cfg.Now(), a.cfg.Leeway
		switch {
		case claims.ExpiresAt == 0:
			return nil, fmt.Errorf("%w: %w", ErrInvalidToken, jwt.ErrTokenRequiredClaimMissing)
		case !now.Before(time.Unix(claims.ExpiresAt, 0).Add(leeway)):
			return nil, fmt.Errorf("%w: %w", ErrTokenExpired, jwt.ErrTokenExpired)
		case claims.NotBefore != 0 && now.Add(leeway).Before(time.Unix(claims.NotBefore, 0)):
			return nil, fmt.Errorf("%w: %w", ErrInvalidToken, jwt.ErrTokenNotValidYet)
		case claims.Issuer != a.cfg.Issuer:
			return nil, fmt.Errorf("%w: %w", ErrInvalidToken, jwt.ErrTokenInvalidIssuer)
		}
	}
	if claims.ID == "" || claims.Subject == "" || claims.ExpiresAt == 0 || claims.Issuer != a.cfg.Issuer {
		return nil, fmt.Errorf("%w: missing jti, sub, exp or iss", ErrInvalidToken)
	}
	return claims, nil
}
