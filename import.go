package authsvc

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// ErrRowIDTaken: ImportClient asked for a row id that another client of a
// different client_id already has. It wraps ErrClientExists.
var ErrRowIDTaken = fmt.Errorf("%w: row id taken by another client", ErrClientExists)

// ImportedClient is a client carried over from the Flask tutorial service
// (the seed), whose clients table keeps an unsalted SHA-1 of each secret.
type ImportedClient struct {
	ID string // client_id (the seed's "ClientId")
	// RowID is the seed's "Id", kept so that the tokens' id claim does not
	// change. Zero lets the store choose one.
	RowID int64
	// LegacyHash is the seed's "ClientSecret": 40 hex digits, the SHA-1 of
	// the secret (either case).
	LegacyHash string
	IsAdmin    bool
	Scopes     []string
}

// ImportClient stores a client with its legacy SHA-1 hash, so that it logs
// in with its old secret; the hash is replaced by a modern one at the
// client's first successful login. It returns ErrClientExists when the
// client_id is taken, ErrRowIDTaken (which wraps ErrClientExists) when only
// the row id is, and ErrInvalidArgument for a malformed client_id or a hash
// that is not 40 hex digits.
func (a *Authenticator) ImportClient(ctx context.Context, ic ImportedClient) (*Client, error) {
	if err := ic.Validate(); err != nil {
		return nil, err
	}
	hash, _ := LegacySHA1Hash(ic.LegacyHash)
	scopes, _ := NormalizeScopes(ic.Scopes)
	now := a.now().UTC().Truncate(time.Second)
	rec := &ClientRecord{
		Client: Client{
			ID: ic.ID, RowID: ic.RowID, IsAdmin: ic.IsAdmin, Scopes: scopes,
			CreatedAt: now, UpdatedAt: now,
		},
		SecretHash: hash,
	}
	if err := a.store.CreateClient(ctx, rec); err != nil {
		if errors.Is(err, ErrClientExists) && ic.RowID != 0 {
			if _, err2 := a.store.Client(ctx, ic.ID); errors.Is(err2, ErrClientNotFound) {
				return nil, ErrRowIDTaken
			}
		}
		return nil, err
	}
	a.state.putClient(rec.ID, rec)
	c := rec.Client
	return &c, nil
}

// Validate checks what ImportClient checks before it writes: the
// client_id, the hash, the row id and the scopes. Its errors wrap
// ErrInvalidArgument or ErrInvalidScope and never quote the hash.
func (ic ImportedClient) Validate() error {
	if err := checkClientID(ic.ID); err != nil {
		return err
	}
	if _, err := LegacySHA1Hash(ic.LegacyHash); err != nil {
		return err
	}
	if ic.RowID < 0 {
		return refuse(ErrInvalidArgument, "negative row id")
	}
	_, err := NormalizeScopes(ic.Scopes)
	return err
}

// LegacySHA1Hash checks a seed-service secret hash (40 hex digits, either
// case) and returns it in the stored form "$sha1$<lowercase hex>". Its
// error never quotes the value, which may be a plaintext secret stored by
// mistake.
func LegacySHA1Hash(hexSum string) (string, error) {
	h := strings.ToLower(strings.TrimSpace(hexSum))
	if len(h) != 2*sha1.Size || !isLowerHex(h) {
		return "", refuse(ErrInvalidArgument, "a legacy secret hash must be %d hex digits (the SHA-1 of the secret), got %d characters",
			2*sha1.Size, len(hexSum))
	}
	stored := "$" + schemeSHA1 + "$" + h
	if !isLegacyHash(stored) {
		return "", refuse(ErrInvalidArgument, "not a legacy SHA-1 hash")
	}
	return stored, nil
}

// StoredClientIDs reads the client_ids and row ids of the store at url
// without writing anything: no migration is applied, no signing key is
// generated and no SQLite file is created (a dry run compares with it).
// initialised is false when the store has no authd tables yet (or, for
// SQLite, no file); ids is then empty.
func StoredClientIDs(ctx context.Context, url string) (ids map[string]int64, initialised bool, err error) {
	if url == "" {
		url = DefaultDatabaseURL
	}
	var db *sqlx.DB
	var existsQuery string
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		if db, err = sqlx.Open("postgres", url); err != nil {
			return nil, false, fmt.Errorf("authsvc: open postgres: %w", err)
		}
		existsQuery = `SELECT COUNT(*) FROM (SELECT to_regclass('authsvc_clients') AS t) r WHERE t IS NOT NULL`
	default:
		p := strings.TrimPrefix(url, "sqlite:")
		if strings.HasPrefix(p, "//") {
			p = p[2:]
		}
		if p == "" || strings.Contains(url, "://") && !strings.HasPrefix(url, "sqlite:") {
			return nil, false, fmt.Errorf("authsvc: unsupported database URL %q (use postgres:// or sqlite:PATH)", redactURL(url))
		}
		if p != ":memory:" {
			if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
				return map[string]int64{}, false, nil
			}
		}
		if db, err = sqlx.Open("sqlite", "file:"+p+"?mode=ro&_pragma=busy_timeout(10000)"); err != nil {
			return nil, false, fmt.Errorf("authsvc: open sqlite %s: %w", p, err)
		}
		existsQuery = `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'authsvc_clients'`
	}
	defer db.Close()
	var n int
	if err := db.GetContext(ctx, &n, existsQuery); err != nil {
		return nil, false, fmt.Errorf("%w: read %s: %w", ErrUnavailable, redactURL(url), err)
	}
	ids = map[string]int64{}
	if n == 0 {
		return ids, false, nil
	}
	var rows []struct {
		ID       int64  `db:"id"`
		ClientID string `db:"client_id"`
	}
	if err := db.SelectContext(ctx, &rows, `SELECT id, client_id FROM authsvc_clients`); err != nil {
		return nil, false, fmt.Errorf("%w: read %s: %w", ErrUnavailable, redactURL(url), err)
	}
	for _, r := range rows {
		ids[r.ClientID] = r.ID
	}
	return ids, true, nil
}
