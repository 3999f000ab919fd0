package authsvc

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// A client assertion (RFC 7521, RFC 7523): a JWS in compact form whose
// header and claims are read before its signature is checked, since the
// claims say whose keys check it. Our own tokens go through parse
// (token.go); assertions are signed by others, with algorithms and key
// sources of their own, so they have this parser.

// assertion is a parsed, not yet verified, client assertion.
type assertion struct {
	raw    string
	alg    string
	kid    string
	signed string // header.payload, what the signature covers
	sig    []byte
	claims assertionClaims
}

// assertionClaims are the claims an assertion is judged by.
type assertionClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  Audience `json:"aud"`
	ExpiresAt numeric  `json:"exp"`
	IssuedAt  numeric  `json:"iat"`
	NotBefore numeric  `json:"nbf"`
	ID        string   `json:"jti"`
}

// numeric is a NumericDate (RFC 7519 §2): seconds, possibly fractional,
// kept whole (rounded down); 0 when absent.
type numeric int64

// UnmarshalJSON reads a JSON value, which encoding/json has checked (so a
// number here is one in JSON's syntax, which strconv.ParseFloat reads as
// encoding/json would); null is 0.
func (n *numeric) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = 0
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f < 0 || f > math.MaxInt32*100 {
		return errors.New("a time claim must be a number of seconds")
	}
	*n = numeric(f)
	return nil
}

// maxJTILen bounds a jti that is stored for the replay check.
const maxJTILen = 256

// parseAssertion reads a compact JWS of at most MaxAssertionLen bytes whose
// alg is one of AssertionAlgorithms. Its errors are worded for the caller.
func parseAssertion(s string) (*assertion, error) {
	if s == "" || len(s) > MaxAssertionLen {
		return nil, fmt.Errorf("client_assertion must be 1 to %d bytes", MaxAssertionLen)
	}
	h, rest, ok1 := strings.Cut(s, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sig, ".") {
		return nil, errors.New("client_assertion is not a JWT (a JWS in compact form: three base64url parts)")
	}
	enc := base64.RawURLEncoding
	hb, err1 := enc.DecodeString(h)
	pb, err2 := enc.DecodeString(p)
	sb, err3 := enc.DecodeString(sig)
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, errors.New("client_assertion is not a JWT: a part is not base64url")
	}
	var header struct {
		Alg  string          `json:"alg"`
		Kid  string          `json:"kid"`
		Typ  string          `json:"typ"`
		Crit json.RawMessage `json:"crit"`
	}
	if err := json.Unmarshal(hb, &header); err != nil {
		return nil, errors.New("client_assertion has a malformed JOSE header")
	}
	if !slices.Contains(AssertionAlgorithms, header.Alg) {
		return nil, fmt.Errorf("client_assertion is signed with alg %q: accepted are %s (never none or HS*)",
			clipText(header.Alg), strings.Join(AssertionAlgorithms, ", "))
	}
	if header.Crit != nil {
		// RFC 7515 §4.1.11: extensions we do not understand must not pass.
		return nil, errors.New("client_assertion has a crit header, which is not supported")
	}
	switch strings.TrimPrefix(strings.ToLower(header.Typ), "application/") {
	case "at+jwt", "dpop+jwt":
		// Another kind of JWT signed by the same key must not pass for an
		// assertion (RFC 8725 §3.11).
		return nil, fmt.Errorf("client_assertion has typ %q: it is not a client assertion", clipText(header.Typ))
	}
	if len(header.Kid) > 256 {
		return nil, errors.New("client_assertion's kid is longer than 256 bytes")
	}
	a := &assertion{raw: s, alg: header.Alg, kid: header.Kid, signed: s[:len(h)+1+len(p)], sig: sb}
	if err := json.Unmarshal(pb, &a.claims); err != nil {
		return nil, errors.New("client_assertion's claims are malformed (iss, sub and jti strings; aud a string or strings; exp, iat, nbf numbers)")
	}
	return a, nil
}

// signingMethods are golang-jwt's verifiers of AssertionAlgorithms.
var signingMethods = map[string]jwt.SigningMethod{
	AlgEdDSA:   jwt.SigningMethodEdDSA,
	AlgEd25519: jwt.SigningMethodEdDSA,
	AlgES256:   jwt.SigningMethodES256,
	AlgRS256:   jwt.SigningMethodRS256,
	AlgPS256:   jwt.SigningMethodPS256,
}

// Why verify fails.
var (
	errNoKey        = errors.New("no key of the signer has the assertion's kid and alg")
	errBadSignature = errors.New("the assertion's signature does not verify")
)

// verify checks the signature with the keys of set that may have made it.
func (as *assertion) verify(set jwkSet) error {
	keys := set.candidates(as.kid, as.alg)
	if len(keys) == 0 {
		return errNoKey
	}
	m := signingMethods[as.alg]
	for _, k := range keys {
		if m.Verify(as.signed, as.sig, k.key) == nil {
			return nil
		}
	}
	return errBadSignature
}

// AssertionIdentity returns the iss and sub a client assertion claims,
// unverified ("" when it cannot be read): for keying rate limits and for
// logs before it is checked, never for a decision.
func AssertionIdentity(assertion string) (iss, sub string) {
	as, err := parseAssertion(assertion)
	if err != nil {
		return "", ""
	}
	return as.claims.Issuer, as.claims.Subject
}
