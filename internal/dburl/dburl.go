// Package dburl hides the passwords of database URLs, for every message and
// log line that names a database: the one redactor of the module.
package dburl

import (
	"net/url"
	"strings"
)

// Redacted stands where a password was.
const Redacted = "redacted"

// Redact hides the password of a database URL, whether in the user info or
// in a password or sslpassword query parameter (lib/pq reads both). A value
// it cannot take apart, such as a URL that does not parse or a keyword/value
// DSN that mentions a password, is replaced whole: better an unhelpful log
// line than a leaked password.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return Redacted
	}
	if u.Scheme == "" {
		if strings.Contains(strings.ToLower(s), "password") {
			return Redacted
		}
		return s
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
	for _, k := range []string{"password", "sslpassword"} {
		if q.Has(k) {
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
// text (lib/pq quotes the URL it could not parse).
func Scrub(msg, raw string) string {
	msg = strings.ReplaceAll(msg, raw, Redact(raw))
	u, err := url.Parse(raw)
	if err != nil {
		// Unparseable: hide whatever stands before the host, and any
		// part of it that the driver may have quoted on its own.
		if i := strings.LastIndex(raw, "@"); i > 0 {
			msg = strings.ReplaceAll(msg, raw[:i], "(redacted)")
			if j := strings.Index(raw, "://"); j >= 0 && j+3 < i {
				if _, pw, ok := strings.Cut(raw[j+3:i], ":"); ok && pw != "" {
					msg = strings.ReplaceAll(msg, pw, Redacted)
				}
			}
		}
		return msg
	}
	secrets := []string{u.Query().Get("password"), u.Query().Get("sslpassword")}
	if p, ok := u.User.Password(); ok {
		secrets = append(secrets, p)
	}
	for _, p := range secrets {
		if p != "" {
			msg = strings.ReplaceAll(msg, p, Redacted)
		}
	}
	return msg
}
