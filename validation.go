package authsvc

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on inputs, so that no caller can make the service do unbounded work.
const (
	MaxClientIDLen = 128  // bytes; the seed service's varchar(128)
	MaxTokenLen    = 8192 // bytes; our tokens are well under 1 KB
	MaxScopes      = 100
	MaxScopeLen    = 128
	MaxAudiences   = 10 // in one token request
	// MaxClientAudiences bounds the audiences a client may be allowed to
	// request (Client.Audiences).
	MaxClientAudiences = 100
)

// checkLookupID accepts what a stored client_id can be: 1 to MaxClientIDLen
// bytes of UTF-8 without a NUL byte. Every operation that looks a client up
// by an id the caller gave checks it first, so that text no store can hold
// (PostgreSQL refuses a NUL byte and invalid UTF-8 in any text parameter)
// is refused as malformed instead of reaching the store as an error that
// looks like an outage. It is looser than the rules for new and imported
// ids (checkNewClientID, checkClientID), so that no client already stored
// is refused by it.
func checkLookupID(id string) error {
	if !storableID(id) {
		return refuse(ErrInvalidArgument, "client_id must be 1 to %d bytes of UTF-8 without NUL", MaxClientIDLen)
	}
	return nil
}

// storableID reports whether id passes checkLookupID.
func storableID(id string) bool {
	return id != "" && len(id) <= MaxClientIDLen && storableText(id)
}

// storableText reports whether s can be a text parameter of either store:
// valid UTF-8 without a NUL byte.
func storableText(s string) bool {
	return strings.IndexByte(s, 0) < 0 && utf8.ValidString(s)
}

// checkNewClientID is the rule for the id of a new client (CreateClient):
// 1 to MaxClientIDLen characters of printable ASCII without spaces, that
// is, letters, digits and the punctuation from '!' (0x21) to '~' (0x7e).
// ASCII only, so that no id can pass for another it looks like (a Cyrillic
// "і" in "admіn"). Clients imported from the seed service keep the older,
// wider rule (checkClientID), and every stored client is still found
// (checkLookupID).
func checkNewClientID(id string) error {
	if id == "" || len(id) > MaxClientIDLen {
		return refuse(ErrInvalidArgument, "client_id must be 1 to %d characters", MaxClientIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return refuse(ErrInvalidArgument, "client_id must be printable ASCII (letters, digits and punctuation) without spaces or control characters")
		}
	}
	return nil
}

// checkClientID accepts 1-128 bytes of printable UTF-8 without white space:
// the rule of ids imported from the seed service (ImportClient), which was
// also the rule of new ids before checkNewClientID.
func checkClientID(id string) error {
	if id == "" || len(id) > MaxClientIDLen || !utf8.ValidString(id) {
		return refuse(ErrInvalidArgument, "client_id must be 1 to %d bytes of UTF-8", MaxClientIDLen)
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return refuse(ErrInvalidArgument, "client_id must not contain spaces or control characters")
		}
	}
	return nil
}

// checkAudience accepts a printable, space-free string of up to 512 bytes.
func checkAudience(aud string) error {
	if aud == "" || len(aud) > 512 || !utf8.ValidString(aud) {
		return refuse(ErrInvalidArgument, "audience must be 1 to 512 bytes of UTF-8")
	}
	for _, r := range aud {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return refuse(ErrInvalidArgument, "audience must not contain spaces or control characters")
		}
	}
	return nil
}

// NormalizeAudiences checks audiences (aud values: RFC 8707 resources or
// names, each 1-512 bytes of printable UTF-8 without spaces, at most
// MaxAudiences) and removes duplicates, keeping order. Errors are
// ErrInvalidArgument with a message for the caller (ErrorMessage).
func NormalizeAudiences(auds []string) ([]string, error) {
	return normalizeAudiences(auds, MaxAudiences, "at most %d audiences")
}

// normalizeClientAudiences checks the audiences a client may request as
// NormalizeAudiences checks a request's, with room for MaxClientAudiences.
func normalizeClientAudiences(auds []string) ([]string, error) {
	return normalizeAudiences(auds, MaxClientAudiences, "at most %d audiences a client")
}

// normalizeAudiences is NormalizeAudiences with a bound of most, refused
// with tooMany (a format taking the bound).
func normalizeAudiences(auds []string, most int, tooMany string) ([]string, error) {
	out := make([]string, 0, len(auds))
	for _, aud := range auds {
		if err := checkAudience(aud); err != nil {
			return nil, err
		}
		if !slices.Contains(out, aud) {
			out = append(out, aud)
		}
	}
	if len(out) > most {
		return nil, refuse(ErrInvalidArgument, tooMany, most)
	}
	return out, nil
}

// grantAudiences returns the aud claim of a token for c: the default
// audience when none is requested, else the requested ones, each of which
// must be among c's Audiences or the default audience (Hydra's rule: a
// client may request only the audiences it is allowed). Errors are
// ErrInvalidTarget (RFC 8707).
func (a *Authenticator) grantAudiences(c *Client, requested []string) ([]string, error) {
	if len(requested) == 0 {
		return a.audience, nil
	}
	requested, err := NormalizeAudiences(requested)
	if err != nil {
		return nil, refuse(ErrInvalidTarget, "%s", ErrorMessage(err))
	}
	for _, r := range requested {
		if !slices.Contains(c.Audiences, r) && !slices.Contains(a.audience, r) {
			return nil, refuse(ErrInvalidTarget, "%q is not an audience this client may request", r)
		}
	}
	return requested, nil
}

// NormalizeScopes checks each scope against RFC 6749 §3.3 (scope-token =
// 1*( %x21 / %x23-5B / %x5D-7E ), at most MaxScopeLen bytes, at most
// MaxScopes) and removes duplicates, keeping order. Errors are
// ErrInvalidScope with a message for the caller (ErrorMessage).
func NormalizeScopes(scopes []string) ([]string, error) {
	out := make([]string, 0, len(scopes))
	seen := make(map[string]bool, len(scopes))
	for _, s := range scopes {
		if s == "" || len(s) > MaxScopeLen {
			return nil, refuse(ErrInvalidScope, "a scope must be 1 to %d characters", MaxScopeLen)
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
				return nil, refuse(ErrInvalidScope, "scope %q has a character RFC 6749 forbids", s)
			}
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	if len(out) > MaxScopes {
		return nil, refuse(ErrInvalidScope, "at most %d scopes", MaxScopes)
	}
	return out, nil
}

// ParseScope splits a space-separated scope parameter (RFC 6749 §3.3).
func ParseScope(s string) []string {
	return strings.Fields(s)
}

// grantScopes returns the scopes a token gets: all granted when none are
// requested, else the requested ones, each of which must be granted.
func grantScopes(granted, requested []string) ([]string, error) {
	if len(requested) == 0 {
		return granted, nil
	}
	requested, err := NormalizeScopes(requested)
	if err != nil {
		return nil, err
	}
	for _, r := range requested {
		found := false
		for _, g := range granted {
			if g == r {
				found = true
				break
			}
		}
		if !found {
			return nil, refuse(ErrInvalidScope, "%q is not granted to this client", r)
		}
	}
	return requested, nil
}
