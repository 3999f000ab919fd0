package authsvc

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authsvc/authsvc/internal/testdb"
)

func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestImportClient(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		a := newAuth(t, s, Config{})
		// Upper-case hex is accepted and stored lower-case, as "$sha1$…".
		c, err := a.ImportClient(ctx, ImportedClient{ID: "flask", RowID: 7, LegacyHash: strings.ToUpper(sha1Hex("short")), IsAdmin: true})
		if err != nil {
			t.Fatal(err)
		}
		if c.ID != "flask" || c.RowID != 7 || !c.IsAdmin {
			t.Fatalf("imported %+v", c)
		}
		rec, err := s.client(ctx, "flask")
		if err != nil {
			t.Fatal(err)
		}
		if rec.SecretHash != "$sha1$"+sha1Hex("short") {
			t.Fatalf("stored hash %.12s…, want the $sha1$ form", rec.SecretHash)
		}
		if _, err := a.Authenticate(ctx, "flask", "wrong", TokenRequest{}); !errors.Is(err, ErrInvalidClient) {
			t.Fatalf("wrong secret: %v", err)
		}
		// A secret shorter than today's minimum still logs in and is upgraded.
		tok := mustToken(t, a, "flask", "short")
		claims, err := a.Verify(ctx, tok.AccessToken)
		if err != nil || claims.ClientRowID != 7 || !claims.IsAdmin {
			t.Fatalf("claims %+v, %v", claims, err)
		}
		if rec, _ = s.client(ctx, "flask"); !strings.HasPrefix(rec.SecretHash, "$argon2id$") {
			t.Fatalf("hash not upgraded: %.12s…", rec.SecretHash)
		}

		// Same client_id again: ErrClientExists, not ErrRowIDTaken.
		_, err = a.ImportClient(ctx, ImportedClient{ID: "flask", RowID: 7, LegacyHash: sha1Hex("x")})
		if !errors.Is(err, ErrClientExists) || errors.Is(err, ErrRowIDTaken) {
			t.Fatalf("again: %v", err)
		}
		// Another client_id on a taken row id.
		_, err = a.ImportClient(ctx, ImportedClient{ID: "other", RowID: 7, LegacyHash: sha1Hex("x")})
		if !errors.Is(err, ErrRowIDTaken) || !errors.Is(err, ErrClientExists) {
			t.Fatalf("taken row id: %v", err)
		}
		if _, err := s.client(ctx, "other"); !errors.Is(err, ErrClientNotFound) {
			t.Fatalf("client on a taken row id stored: %v", err)
		}
		for _, bad := range []ImportedClient{
			{ID: "p", LegacyHash: "plaintext-secret"},
			{ID: "p", LegacyHash: sha1Hex("x")[:39]},
			{ID: "p", LegacyHash: sha1Hex("x") + "0"},
			{ID: "p", LegacyHash: "$sha1$" + sha1Hex("x")},
			{ID: "p", LegacyHash: strings.Repeat("g", 40)},
			{ID: "has space", LegacyHash: sha1Hex("x")},
			{ID: "", LegacyHash: sha1Hex("x")},
			{ID: "p", LegacyHash: sha1Hex("x"), RowID: -1},
		} {
			_, err := a.ImportClient(ctx, bad)
			if !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("ImportClient(%+v) = %v, want ErrInvalidArgument", bad, err)
			}
			if err != nil && strings.Contains(err.Error(), "plaintext-secret") {
				t.Errorf("error quotes the hash field: %v", err)
			}
		}
		// Without a row id the store chooses one past the imported ones.
		c, err = a.ImportClient(ctx, ImportedClient{ID: "auto", LegacyHash: sha1Hex("auto-secret")})
		if err != nil || c.RowID <= 7 {
			t.Fatalf("auto row id: %+v, %v", c, err)
		}
		mustToken(t, a, "auto", "auto-secret")
	})
}

func TestStoredClientIDs(t *testing.T) {
	ctx := context.Background()
	t.Run("sqlite missing file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "none.db")
		ids, init, err := StoredClientIDs(ctx, "sqlite:"+p)
		if err != nil || init || len(ids) != 0 {
			t.Fatalf("= %v, %v, %v", ids, init, err)
		}
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("StoredClientIDs created the file: %v", err)
		}
	})
	t.Run("bad url", func(t *testing.T) {
		if _, _, err := StoredClientIDs(ctx, "mysql://u:pw@h/x"); err == nil || strings.Contains(err.Error(), "pw") {
			t.Fatalf("err = %v", err)
		}
	})
	testdb.Each(t, func(t *testing.T, url string) {
		if strings.HasPrefix(url, "postgres") {
			ids, init, err := StoredClientIDs(ctx, url)
			if err != nil || init || len(ids) != 0 {
				t.Fatalf("empty database: %v, %v, %v", ids, init, err)
			}
		}
		s := openStore(t, url)
		a := newAuth(t, s, Config{})
		mustClient(t, a, NewClient{ID: "one", RowID: 5})
		mustClient(t, a, NewClient{ID: "two"})
		ids, init, err := StoredClientIDs(ctx, url)
		if err != nil || !init || len(ids) != 2 || ids["one"] != 5 || ids["two"] != 6 {
			t.Fatalf("= %v, %v, %v", ids, init, err)
		}
	})
}
