package authsvc

import (
	"context"
	"strings"
	"testing"
	"time"

	_ "github.com/authsvc/authsvc/internal/testdb" // links both drivers
)

// TestOpenNeverPrintsPassword: OpenStore and StoredClientIDs read a URL the
// same way, and whatever fails (a URL that does not parse, a server that
// does not answer) their errors carry no password.
func TestOpenNeverPrintsPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, raw := range []string{
		"postgres://user:S3cretPW@[::1/db",                           // does not parse (the review's case)
		"postgres://user:S3cretPW@127.0.0.1:1/db?sslmode=disable",    // nothing listens
		"postgres://user@127.0.0.1:1/db?password=S3cretPW&sslmode=x", // password in the query
		"mysql://user:S3cretPW@host/db",                              // unsupported scheme
	} {
		_, err := OpenStore(ctx, raw)
		if err == nil || strings.Contains(err.Error(), "S3cretPW") {
			t.Errorf("OpenStore(%q): %v", raw, err)
		}
		_, _, err = StoredClientIDs(ctx, raw)
		if err == nil || strings.Contains(err.Error(), "S3cretPW") {
			t.Errorf("StoredClientIDs(%q): %v", raw, err)
		}
	}
}
