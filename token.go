package authsvc

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// binding is the key a token is bound to: a DPoP key (jkt, its RFC 7638
// thumbprint), a TLS client certificate (x5t, its RFC 8705 x5t#S256), or
// none (both empty). At most one is set.
type binding struct{ jkt, x5t string }

// issue signs a token for client c.
// A token bound to a DPoP key carries cnf.jkt and is of type DPoP; one
// bound to a certificate carries cnf.x5t#S256 and stays of type Bearer
// (RFC 8705 §3).
func (a *Authenticator) issue(c *Client, scopes, aud []string, b binding) (*Token, error) {
	return a.issueWith(c, scopes, aud, b, a.cfg.TokenTTL, nil)
}

// issueWith is issue for a token that lives ttl, with the claims session
// (when not nil) sets besides.
func (a *Authenticator) issueWith(c *Client, scopes, aud []string, b binding, ttl time.Duration, session func(*Claims)) (*Token, error) {
	jtiBytes := make([]byte, 16) // 128 bits, RFC 9068 §2.2
	if _, err := rand.Read(jtiBytes); err != nil {
		return nil, err
	}
	now := a.now()
	exp := now.Add(ttl)
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
	if session != nil {
		session(claims)
	}
	typ := "Bearer"
	switch {
	case b.jkt != "":
		claims.Confirmation = &Confirmation{JKT: b.jkt}
		typ = "DPoP"
	case b.x5t != "":
		claims.Confirmation = &Confirmation{X5TS256: b.x5t}
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
		TokenType:   typ,
		ExpiresAt:   time.Unix(exp.Unix(), 0),
		ExpiresIn:   ttl,
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
	var claims *Claims
	var err error
	if s := ks.byHeader[token[:max(strings.IndexByte(token, '.'), 0)]]; s != nil {
		claims, err = a.parseOwn(s, token, checkTime)
	} else {
		claims, err = a.parseJWT(ks, token, checkTime)
	}
	if err == nil && (!storableText(claims.ID) || !storableID(claims.Subject)) {
		// Only a holder of the HS256 secret can sign such claims; they must
		// not reach the store (a client lookup, a revocation) as text it
		// cannot hold.
		return nil, fmt.Errorf("%w: jti or sub is not storable text", ErrInvalidToken)
	}
	return claims, err
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
