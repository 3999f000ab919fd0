package authsvc

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/authsvc/authsvc/internal/testdb"
)

// TestSharesSeedDatabase: a Flask user keeps their .env, so authd opens the
// very database the Flask service used. Its tables must not clash with ours
// and must be left as they are.
func TestSharesSeedDatabase(t *testing.T) {
	url := testdb.Postgres(t)
	ctx := context.Background()
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(testdb.FlaskSchema); err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum([]byte("flask-secret"))
	if _, err := db.Exec(`INSERT INTO clients ("ClientId", "ClientSecret", "IsAdmin") VALUES ($1, $2, true)`, "flask-admin", hex.EncodeToString(sum[:])); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO blacklist (token) VALUES ('x.y.z')`); err != nil {
		t.Fatal(err)
	}
	a := newAuth(t, openStore(t, url), Config{})
	_, secret := mustClient(t, a, NewClient{ID: "svc"})
	if _, err := a.Verify(ctx, mustToken(t, a, "svc", secret).AccessToken); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.Get(&n, `SELECT COUNT(*) FROM clients WHERE "ClientId" = 'flask-admin'`); err != nil || n != 1 {
		t.Fatalf("seed clients table: %d rows, %v", n, err)
	}
	if err := db.Get(&n, `SELECT COUNT(*) FROM blacklist`); err != nil || n != 1 {
		t.Fatalf("seed blacklist table: %d rows, %v", n, err)
	}
}

func TestOpenStoreErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	corrupt := dir + "/corrupt.db"
	if err := os.WriteFile(corrupt, []byte(strings.Repeat("this is not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ url, want string }{
		{"mysql://x@y/z", "unsupported database URL scheme"},
		{"sqlite:" + corrupt, "not a database"},
		{"sqlite:" + dir + "/missing/dir/authd.db", "store unavailable"},
		{"postgres://nobody:secretpw@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", "store unavailable"},
		{"postgres://nobody@127.0.0.1:1/x?password=secretpw&sslmode=disable&connect_timeout=2", "store unavailable"},
		// A URL that does not parse is a configuration error, not an outage.
		{"postgres://nobody:secretpw%zz@127.0.0.1:1/x", "authsvc: open postgres"},
	}
	for _, tc := range cases {
		_, err := OpenStore(ctx, tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenStore(%q) = %v, want %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secretpw") {
			t.Errorf("OpenStore error leaks the password: %v", err)
		}
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		for i := 0; i < 3; i++ {
			s, err := OpenStore(context.Background(), url)
			if err != nil {
				t.Fatalf("open %d: %v", i, err)
			}
			var v int
			if err := s.(*sqlStore).db.Get(&v, `SELECT MAX(version) FROM authsvc_schema_migrations`); err != nil || v < 1 {
				t.Fatalf("schema version %d, %v", v, err)
			}
			s.Close()
		}
	})
}

// TestMigrationGapFilled: a migration missing below the newest applied one
// (a branch's 0002 merged after another's 0003 reached the database) is
// applied at the next open, not skipped.
func TestMigrationGapFilled(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s, err := OpenStore(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		db := s.(*sqlStore).db
		var newest int
		if err := db.Get(&newest, `SELECT MAX(version) FROM authsvc_schema_migrations`); err != nil || newest < 2 {
			t.Fatalf("schema version %d, %v: the test needs two migrations", newest, err)
		}
		// 0001 creates only what does not exist, so it can run again.
		if _, err := db.Exec(`DELETE FROM authsvc_schema_migrations WHERE version = 1`); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s, err = OpenStore(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var n int
		if err := s.(*sqlStore).db.Get(&n, `SELECT COUNT(*) FROM authsvc_schema_migrations WHERE version = 1`); err != nil || n != 1 {
			t.Fatalf("migration 1, missing below version %d, applied %d times (%v)", newest, n, err)
		}
	})
}
