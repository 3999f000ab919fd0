package authsvc

import (
	"context"
	"path/filepath"
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
		"postgres:/user:S3cretPW@db.example/authd",                   // a slash missing
		"postgres:user:S3cretPW@db.example/authd",                    // both missing
		"host=db user=u password=S3cretPW dbname=authd",              // a keyword/value DSN
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
	// None of them was taken for a SQLite file name.
	if files, _ := filepath.Glob("*S3cretPW*"); len(files) > 0 {
		t.Errorf("a database URL became the files %v", files)
	}
	// Plain paths, Windows drives and sqlite: URLs are still files.
	for _, raw := range []string{"authd.db", "./data/authd.db", `C:\data\authd.db`, "sqlite:authd.db", "sqlite:///tmp/x.db"} {
		if u, err := parseStoreURL(raw); err != nil || u.dialect != "sqlite" {
			t.Errorf("parseStoreURL(%q) = %+v, %v; want a SQLite path", raw, u, err)
		}
	}
}
