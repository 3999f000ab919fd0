package authsvc

import (
	"encoding/json"
	"strings"
)

// A DPoP proof's claims are read on every request at a resource, so the
// common shape is read without encoding/json (which is most of what a
// proof costs besides its signature): a flat object of strings without
// escapes or non-ASCII bytes, and numbers. Anything else (escapes, nested
// values, true/false/null, a member name that differs from a claim's only
// in letter case, a claim given twice, a claim of the wrong type, bad
// syntax) goes to encoding/json, which decides; so both readings agree
// (FuzzDPoPClaims checks it).

// parseDPoPClaims reads b into c as json.Unmarshal does.
func parseDPoPClaims(b []byte, c *dpopClaims) error {
	if readDPoPClaims(b, c) {
		return nil
	}
	*c = dpopClaims{}
	return json.Unmarshal(b, c)
}

// readDPoPClaims is the fast reading; false: b is not of the common shape
// (c may be partly filled).
func readDPoPClaims(b []byte, c *dpopClaims) bool {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	var seen [6]bool
	for {
		name, next, ok := scanPlainString(b, i)
		if !ok {
			return false
		}
		i = skipSpace(b, next)
		if i == len(b) || b[i] != ':' {
			return false
		}
		i = skipSpace(b, i+1)
		if i == len(b) {
			return false
		}
		field, k := c.field(name)
		if k < 0 && isClaimName(name) {
			return false // another letter case: encoding/json's rules decide
		}
		if k >= 0 {
			if seen[k] {
				return false
			}
			seen[k] = true
		}
		switch {
		case b[i] == '"':
			s, next, ok := scanPlainString(b, i)
			if !ok || (k >= 0 && field == nil) { // iat must be a number
				return false
			}
			if field != nil {
				*field = s
			}
			i = next
		case b[i] == '-' || b[i] >= '0' && b[i] <= '9':
			next, ok := scanNumber(b, i)
			if !ok || field != nil {
				return false
			}
			if k >= 0 { // iat
				if c.IssuedAt.UnmarshalJSON(b[i:next]) != nil {
					return false
				}
			}
			i = next
		default:
			return false
		}
		i = skipSpace(b, i)
		if i == len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
}

// dpopClaimNames are the members dpopClaims reads, in field order.
var dpopClaimNames = [6]string{"jti", "htm", "htu", "iat", "ath", "nonce"}

// field returns the string field of claim name and its index, (nil, 3)
// for iat, or (nil, -1) for a member that is not a claim.
func (c *dpopClaims) field(name string) (*string, int) {
	switch name {
	case "jti":
		return &c.ID, 0
	case "htm":
		return &c.Method, 1
	case "htu":
		return &c.URI, 2
	case "iat":
		return nil, 3
	case "ath":
		return &c.ATH, 4
	case "nonce":
		return &c.Nonce, 5
	}
	return nil, -1
}

func isClaimName(name string) bool {
	for _, n := range dpopClaimNames {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanPlainString reads the JSON string at b[i]: printable ASCII without
// escapes, else ok false.
func scanPlainString(b []byte, i int) (s string, next int, ok bool) {
	if i == len(b) || b[i] != '"' {
		return "", 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return string(b[i+1 : j]), j + 1, true
		case c < 0x20 || c >= 0x80 || c == '\\':
			return "", 0, false
		}
	}
	return "", 0, false
}

// scanNumber reads the JSON number at b[i] (RFC 8259 §6):
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (next int, ok bool) {
	digits := func(i int) int {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}
