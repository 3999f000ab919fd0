package authsvc

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
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

	// A session token's (IssueSession): when the client last proved its
	// secret (RFC 9068 §2.2.1, OpenID Connect's auth_time) and the
	// session's id (sid), both kept as the session is renewed.
	AuthTime  int64  `json:"auth_time,omitempty"`
	SessionID string `json:"sid,omitempty"`

	ClientRowID    int64  `json:"id"`       // the seed service's numeric client id
	IsAdmin        bool   `json:"isAdmin"`  // the seed service's admin flag
	LegacyClientID string `json:"clientId"` // = sub; the seed's code names it so

	// Confirmation binds the token to a key (RFC 7800 cnf): nil for a
	// bearer token.
	Confirmation *Confirmation `json:"cnf,omitempty"`
}

// Confirmation is a token's cnf claim.
type Confirmation struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the DPoP key the token is
	// bound to (RFC 9449 §6.1), base64url.
	JKT string `json:"jkt,omitempty"`
	// X5TS256 is the SHA-256 thumbprint of the TLS client certificate the
	// token is bound to (RFC 8705 §3.1), base64url. A token is bound to
	// one key at most: JKT or X5TS256.
	X5TS256 string `json:"x5t#S256,omitempty"`
}

// DPoPThumbprint is the thumbprint of the DPoP key the token is bound to,
// or "" for a bearer token.
func (c *Claims) DPoPThumbprint() string {
	if c.Confirmation == nil {
		return ""
	}
	return c.Confirmation.JKT
}

// DPoPBindingMatches reports whether a checked proof p was signed by the
// key the token is bound to (its cnf.jkt; false for an unbound token). The
// one comparison of the middleware and authd's gateway.
func (c *Claims) DPoPBindingMatches(p *DPoPProof) bool {
	jkt := c.DPoPThumbprint()
	return jkt != "" && p != nil && subtle.ConstantTimeCompare([]byte(p.Thumbprint), []byte(jkt)) == 1
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

// hasAudience reports whether aud is among the token's audiences.
func (c *Claims) hasAudience(aud string) bool {
	for _, a := range c.Audience {
		if a == aud {
			return true
		}
	}
	return false
}

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
