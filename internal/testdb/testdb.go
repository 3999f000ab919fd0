// Package testdb gives tests real databases: a fresh SQLite file always, and
// a fresh PostgreSQL database when AUTHSVC_TEST_DATABASE_URL names a server
// (each test its own database, dropped afterwards). With
// AUTHSVC_TEST_REQUIRE_POSTGRES=1 a missing PostgreSQL fails the test instead
// of skipping it. FreeAddr gives tests that start a server a loopback port.
// SecretHash and LastChange read what the store keeps, with plain SQL, for
// tests outside package authsvc, whose Store methods are unexported.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/authsvc/authsvc/postgres" // the drivers every test store needs
	_ "github.com/authsvc/authsvc/sqlite"
)

// FlaskSchema is the Flask tutorial service's schema exactly as its article
// creates it (see SEED-FORMAT.md): quoted mixed-case columns, the secret as
// the lowercase hex SHA-1, the blacklist as whole tokens.
const FlaskSchema = `
CREATE TABLE public.clients (
    "Id" integer NOT NULL GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "ClientId" character varying(128) NOT NULL UNIQUE,
    "ClientSecret" character varying(256) NOT NULL,
    "IsAdmin" boolean NOT NULL
);
CREATE TABLE public.blacklist (
    token character varying(256) NOT NULL
);`

// EnvURL names the PostgreSQL server tests may create databases on.
const EnvURL = "AUTHSVC_TEST_DATABASE_URL"

// SQLite returns the URL of a new SQLite file in a temporary folder.
func SQLite(t testing.TB) string {
	t.Helper()
	return "sqlite:" + filepath.Join(t.TempDir(), "authd.db")
}

// Postgres returns the URL of a new, empty PostgreSQL database, dropped when
// the test ends; it skips the test when no server is configured (or fails it
// when AUTHSVC_TEST_REQUIRE_POSTGRES=1).
func Postgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		if os.Getenv("AUTHSVC_TEST_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("%s is not set but AUTHSVC_TEST_REQUIRE_POSTGRES=1", EnvURL)
		}
		t.Skipf("%s not set: PostgreSQL tests skipped", EnvURL)
	}
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatalf("open %s: %v", EnvURL, err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := make([]byte, 6)
	rand.Read(b)
	name := "authsvc_test_" + hex.EncodeToString(b)
	// A database name cannot be a bound parameter; this one is made of hex
	// digits we generated, never of input.
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create test database (is PostgreSQL up at %s?): %v", EnvURL, err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("postgres", base)
		if err != nil {
			return
		}
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

// FreeAddr returns a loopback address, "127.0.0.1:port", whose port was free
// a moment ago: the kernel chose it for a listener that is closed again
// before FreeAddr returns. Nothing reserves it: another process or test may
// take the port before the caller listens on it, so a caller that can lose
// that race (one that starts a server on the address) must retry with a new
// address when the port turns out to be taken.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Each runs f once per store kind: "sqlite" always, "postgres" when
// configured (see Postgres).
func Each(t *testing.T, f func(t *testing.T, url string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { f(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, Postgres(t)) })
}

// isPostgres tells a PostgreSQL URL from a SQLite one, as OpenStore does.
func isPostgres(dbURL string) bool {
	return strings.HasPrefix(dbURL, "postgres://") || strings.HasPrefix(dbURL, "postgresql://")
}

// open opens the authsvc store at dbURL ("sqlite:PATH" or a postgres://
// URL) with database/sql, for a test to read with plain SQL.
func open(t testing.TB, dbURL string) *sql.DB {
	t.Helper()
	driver, dsn := "postgres", dbURL
	if !isPostgres(dbURL) {
		path := strings.TrimPrefix(dbURL, "sqlite:")
		path = strings.TrimPrefix(path, "//") // sqlite:///abs/path
		driver, dsn = "sqlite", "file:"+path+"?_pragma=busy_timeout(10000)"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("open the store at %s: %v", dbURL, err)
	}
	return db
}

// queryRow runs query on the store at dbURL and scans its one row into dest;
// no row, or any error, fails the test.
func queryRow(t testing.TB, dbURL, what, query string, args []any, dest ...any) {
	t.Helper()
	db := open(t, dbURL)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.QueryRowContext(ctx, query, args...).Scan(dest...); err != nil {
		t.Fatalf("read %s from the store: %v", what, err)
	}
}

// SecretHash returns the stored secret hash (authsvc_clients.secret_hash)
// of the client clientID in the store at dbURL. A client that is not
// there, or a store that cannot be read, fails the test.
func SecretHash(t testing.TB, dbURL, clientID string) string {
	t.Helper()
	q := `SELECT secret_hash FROM authsvc_clients WHERE client_id = ?`
	if isPostgres(dbURL) {
		q = `SELECT secret_hash FROM authsvc_clients WHERE client_id = $1`
	}
	var hash string
	queryRow(t, dbURL, "the secret hash of "+clientID, q, []any{clientID}, &hash)
	return hash
}

// LastChange returns the id of the newest entry of the store's change log
// (authsvc_changes), 0 when it is empty: it grows with every write another
// instance must learn of, so a write shows as a new value.
func LastChange(t testing.TB, dbURL string) int64 {
	t.Helper()
	var id int64
	queryRow(t, dbURL, "the last change", `SELECT COALESCE(MAX(id), 0) FROM authsvc_changes`, nil, &id)
	return id
}

// LogBuffer collects a logger's lines for tests that search them (for a
// credential that must not be there, or an audit line that must); safe for
// the concurrent writes of a server's handlers.
type LogBuffer struct {
	mu  sync.Mutex // guards buf
	buf strings.Builder
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
