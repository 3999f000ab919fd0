package dburl

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"sqlite:authd.db", "sqlite:authd.db"},
		{"postgres://u@h/db?sslmode=require", "postgres://u@h/db?sslmode=require"},
		{"postgres://u:pw-secret@h/db", "postgres://u:redacted@h/db"},
		{"postgres://:pw-secret@/db?host=%2Frun", "postgres://:redacted@/db?host=%2Frun"},
		{"postgres://u@h/db?password=pw-secret&sslmode=require", "postgres://u@h/db?password=redacted&sslmode=require"},
		{"postgres://u@h/db?sslpassword=pw-secret", "postgres://u@h/db?sslpassword=redacted"},
		{"postgres://u@h/db?password=pw-secret%zz", "redacted"}, // url.Values would drop it silently
		{"postgres://u:pw-secret%zz@h/db", "redacted"},          // does not parse at all
		{"host=h user=u password=pw-secret dbname=db", "redacted"},
		{"host=h user=u dbname=db", "host=h user=u dbname=db"},
		{"postgres:/user:pw-secret@h/db", "redacted"}, // a one-slash typo: url.Parse sees a path
		{"postgres:user:pw-secret@h/db", "redacted"},  // opaque
		{"postgres://u@h/db?sslinline=true&sslkey=-----BEGIN", "postgres://u@h/db?sslinline=true&sslkey=redacted"},
		{"postgres://u@h/db?sslkey=/etc/key.pem", "postgres://u@h/db?sslkey=/etc/key.pem"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestScrub: a driver's error text keeps no password, whether the URL
// parses or not (lib/pq quotes an unparseable URL whole).
func TestScrub(t *testing.T) {
	for raw, pw := range map[string]string{
		"postgres://user:S3cretPW@[::1/db":          "S3cretPW",
		"postgres://user:S3cretPW@h/db":             "S3cretPW",
		"postgres://user@h/db?password=S3cretPW":    "S3cretPW",
		"postgres://user:S3cretPW%zz@h/db":          "S3cretPW%zz",
		"postgres://user@h/db?password=S3cretPW%zz": "S3cretPW%zz", // a bad escape: ParseQuery drops the pair
		"postgres://user:S3cret%40PW@h/db":          "S3cret%40PW", // escaped…
		"postgres://u:S3cret%40PW@h/db?x=1":         "S3cret@PW",   // …and decoded
		"postgres:/user:S3cretPW@db/authd":          "S3cretPW",    // one slash: no user info to url.Parse
	} {
		msg := `pq: cannot parse "` + raw + `": bad URL; password ` + pw
		if got := Scrub(msg, raw); strings.Contains(got, "S3cretPW") {
			t.Errorf("Scrub(%q) = %q", raw, got)
		}
	}
}
