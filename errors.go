package authsvc

import (
	"errors"
	"fmt"
)

// Errors returned by the Authenticator. Compare with errors.Is: returned
// errors wrap these and may carry more detail.
var (
	// ErrInvalidClient: unknown client_id or wrong secret (never says which).
	ErrInvalidClient = errors.New("authsvc: invalid client credentials")
	// ErrInvalidToken: the token is malformed, badly signed, expired, revoked
	// or belongs to a client that no longer exists. ErrTokenExpired and
	// ErrTokenRevoked wrap it, so errors.Is(err, ErrInvalidToken) holds for
	// every refused token.
	ErrInvalidToken = errors.New("authsvc: invalid token")
	// ErrTokenExpired: the token was valid but its exp has passed.
	ErrTokenExpired = fmt.Errorf("%w: expired", ErrInvalidToken)
	// ErrTokenRevoked: the token was logged out, or its client was deleted.
	ErrTokenRevoked = fmt.Errorf("%w: revoked", ErrInvalidToken)
	// ErrClientExists: CreateClient with a client_id already taken.
	ErrClientExists = errors.New("authsvc: client already exists")
	// ErrClientNotFound: no client has that client_id.
	ErrClientNotFound = errors.New("authsvc: client not found")
	// ErrInvalidScope: a requested scope is malformed or not granted to the client.
	ErrInvalidScope = errors.New("authsvc: invalid scope")
	// ErrInvalidArgument: a malformed client_id, secret or other input.
	ErrInvalidArgument = errors.New("authsvc: invalid argument")
	// ErrForbidden: the caller is authenticated but may not do this.
	ErrForbidden = errors.New("authsvc: not permitted")
	// ErrUnavailable: the store cannot be reached. Callers must fail closed:
	// treat the request as unauthenticated, never as allowed.
	ErrUnavailable = errors.New("authsvc: store unavailable")
)

func wrapErr(base error, msg string) error { return fmt.Errorf("%w: %s", base, msg) }

// errStale: a conditional update found the record changed meanwhile.
var errStale = errors.New("authsvc: record changed meanwhile")
