package authsvc

import (
	"errors"
	"slices"
)

// Error is a refusal whose reason the caller may be told. Kind is one of
// the Err* values above (errors.Is(err, Kind) holds); Message says what is
// wrong in words safe to show whoever sent the request: never a secret, a
// token, SQL or a file path. Servers answer with Message; logs get Error().
type Error struct {
	Kind    error
	Message string
}

func (e *Error) Error() string { return e.Kind.Error() + ": " + e.Message }
func (e *Error) Unwrap() error { return e.Kind }

// ErrorMessage returns the Message of the first *Error in err's chain, or
// "" when there is none (the caller then says only what kind of error it is).
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return ""
}

// refuse returns an *Error of kind with a message for the caller.
func refuse(kind error, msg string) error { return &Error{Kind: kind, Message: msg} }

// TEMP (moved into validation.go at merge)
func NormalizeScopes(s []string) ([]string, error) { return normalizeScopes(s) }
func NormalizeAudiences(a []string) ([]string, error) {
	var out []string
	for _, x := range a {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out, checkAudiences(out)
}
