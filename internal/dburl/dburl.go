// Package dburl hides the passwords of database URLs, for every message and
// log line that names a database: the one redactor of the module.
package dburl

import (
	"net/url"
	"strings"
)

// Redacted stands where a password was.
const Redacted = "redacted"

// secretParams are the query parameters lib/pq reads a secret from
// (sslkey holds the private key itself when sslinline is set).
var secretParams = []string{"password", "sslpassword", "sslkey"}

// Redact hides the password of a database URL, whether in the user info or
// in a password or sslpassword query parameter (lib/pq reads both), and an
// inline TLS key. A value it cannot take apart, such as a URL that does
// not parse, a keyword/value DSN that mentions a password, or a URL whose
// user info did not parse as such ("postgres:/user:pw@host"), is replaced
// whole: better an unhelpful log line than a leaked password.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return Redacted
	}
	lower := strings.ToLower(s)
	if u.Scheme == "" {
		if strings.Contains(lower, "password") {
			return Redacted
		}
		return s
	}
	if u.User == nil && (strings.Contains(s, "@") || strings.Contains(lower, "password")) && (u.Opaque != "" || u.Host == "") {
		return Redacted
	}
	changed := false
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), Redacted)
		changed = true
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Redacted // u.Query would silently drop a malformed password parameter
	}
	for _, k := range secretParams {
		if q.Has(k) && (k != "sslkey" || q.Get("sslinline") == "true") {
			q.Set(k, Redacted)
			u.RawQuery = q.Encode()
			changed = true
		}
	}
	if !changed {
		return s
	}
	return u.String()
}

// Scrub removes the raw URL and its passwords from msg, a driver's error
// text (lib/pq quotes the URL it could not parse, and may quote a value on
// its own): every form a password takes in raw, escaped or not.
func Scrub(msg, raw string) string {
	msg = strings.ReplaceAll(msg, raw, Redact(raw))
	var secrets []string
	// The user info as written, whether or not the URL parses, and even
	// with a slash missing after the scheme ("postgres:/user:pw@host").
	if i := strings.Index(raw, ":"); i > 0 {
		start := i + 1
		for start < len(raw) && raw[start] == '/' {
			start++
		}
		authority := raw[start:]
		if j := strings.IndexAny(authority, "/?#"); j >= 0 {
			authority = authority[:j]
		}
		if at := strings.LastIndex(authority, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(authority[:at], ":"); ok {
				secrets = append(secrets, pw)
				if dec, err := url.PathUnescape(pw); err == nil {
					secrets = append(secrets, dec)
				}
			}
			msg = strings.ReplaceAll(msg, raw[:start+at], "(redacted)")
		}
	}
	// The secret query parameters as written, and decoded where they decode.
	if _, query, ok := strings.Cut(raw, "?"); ok {
		for _, pair := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(pair, "=")
			for _, name := range secretParams {
				if strings.EqualFold(k, name) {
					secrets = append(secrets, v)
					if dec, err := url.QueryUnescape(v); err == nil {
						secrets = append(secrets, dec)
					}
				}
			}
		}
	}
	for _, p := range secrets {
		if len(p) >= 3 { // a one- or two-character "password" would scrub the message itself
			msg = strings.ReplaceAll(msg, p, Redacted)
		}
	}
	return msg
}
