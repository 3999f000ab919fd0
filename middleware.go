package authsvc

import (
	"errors"
	"net/http"
	"strings"
)

// Errors of BearerToken.
var (
	// ErrNoToken: the request has no Authorization header.
	ErrNoToken = errors.New("authsvc: no bearer token")
	// ErrMalformedAuthorization: an Authorization header that is not exactly
	// one well-formed "Bearer <token>".
	ErrMalformedAuthorization = errors.New("authsvc: malformed Authorization header")
)

// BearerToken returns the token of the request's Authorization header
// (RFC 6750 §2.1): exactly one header, the scheme "Bearer" in any letter
// case, one or more spaces, then a b64token of at most MaxTokenLen bytes.
func BearerToken(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return "", ErrNoToken
	case 1:
	default:
		return "", ErrMalformedAuthorization
	}
	return parseBearer(values[0])
}

func parseBearer(h string) (string, error) {
	const scheme = "bearer"
	if len(h) < len(scheme)+2 || !strings.EqualFold(h[:len(scheme)], scheme) || h[len(scheme)] != ' ' {
		return "", ErrMalformedAuthorization
	}
	tok := strings.TrimLeft(h[len(scheme):], " ")
	if tok == "" || len(tok) > MaxTokenLen || !isB64Token(tok) {
		return "", ErrMalformedAuthorization
	}
	return tok, nil
}

// isB64Token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}
