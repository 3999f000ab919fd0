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
	// ErrIssuerExists: AddTrustedIssuer with an issuer already trusted.
	ErrIssuerExists = errors.New("authsvc: issuer already trusted")
	// ErrIssuerNotFound: no trusted issuer has that name.
	ErrIssuerNotFound = errors.New("authsvc: issuer not found")
	// ErrInvalidScope: a requested scope is malformed or not granted to the client.
	ErrInvalidScope = errors.New("authsvc: invalid scope")
	// ErrInvalidTarget: a requested audience (or RFC 8707 resource) is
	// malformed or not one the client may request (Client.Audiences).
	ErrInvalidTarget = errors.New("authsvc: invalid target")
	// ErrInvalidArgument: a malformed client_id, secret or other input.
	ErrInvalidArgument = errors.New("authsvc: invalid argument")
	// ErrForbidden: the caller is authenticated but may not do this.
	ErrForbidden = errors.New("authsvc: not permitted")
	// ErrUnavailable: the store cannot be reached. Callers must fail closed:
	// treat the request as unauthenticated, never as allowed.
	ErrUnavailable = errors.New("authsvc: store unavailable")
)

// Error is a refusal whose reason the caller may be told. Kind is one of
// the Err* values above (errors.Is(err, Kind) holds); Message says what is
// wrong in words safe to show whoever sent the request: never a secret, a
// token, SQL or a file path. Servers answer with Message; logs get Error().
type Error struct {
	Kind    error
	Message string
	Err     error // the cause, if any (errors.Is sees it too)
}

func (e *Error) Error() string { return e.Kind.Error() + ": " + e.Message }

func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// ErrorMessage returns the Message of the first *Error in err's chain, or
// "" when there is none (the caller then says only what kind of error it is).
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return ""
}

// refuse returns an *Error of kind whose message, made as fmt.Sprintf
// makes it, the caller may be shown.
func refuse(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

func wrapErr(base error, msg string) error { return fmt.Errorf("%w: %s", base, msg) }

// errStale: a conditional update found the record changed meanwhile.
var errStale = errors.New("authsvc: record changed meanwhile")
