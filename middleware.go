package authsvc

import (
	"errors"
	"net/http"
	"strings"
)

// Errors of BearerToken.
var (
	// ErrNoToken: the request has no Authorization header, or one of another
	// scheme (RFC 6750 §3.1: a request that lacks bearer credentials).
	ErrNoToken = errors.New("authsvc: no bearer token")
	// ErrMalformedAuthorization: more than one Authorization header, or
	// "Bearer" with nothing after it (RFC 6750 invalid_request).
	ErrMalformedAuthorization = errors.New("authsvc: malformed Authorization header")
)

// BearerToken returns the token of the request's Authorization header
// (RFC 6750 §2.1): exactly one header, the scheme "Bearer" in any letter
// case, one or more spaces, then a b64token of at most MaxTokenLen bytes.
// A token that is not a b64token, or is too long, gives ErrInvalidToken.
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
	if len(h) < len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) || len(h) > len(scheme) && h[len(scheme)] != ' ' {
		return "", ErrNoToken
	}
	tok := strings.TrimLeft(h[len(scheme):], " ")
	if tok == "" {
		return "", ErrMalformedAuthorization
	}
	if len(tok) > MaxTokenLen || !isB64Token(tok) {
		return "", ErrInvalidToken
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
