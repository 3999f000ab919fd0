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
	rec := &clientRecord{
		Client: Client{
			ID: ic.ID, RowID: ic.RowID, IsAdmin: ic.IsAdmin, Scopes: scopes,
			CreatedAt: now, UpdatedAt: now,
		},
		SecretHash: hash,
	}
	if err := a.store.createClient(ctx, rec); err != nil {
		if errors.Is(err, ErrClientExists) && ic.RowID != 0 {
			if _, err2 := a.store.client(ctx, ic.ID); errors.Is(err2, ErrClientNotFound) {
				return nil, ErrRowIDTaken
			}
		}
		return nil, err
	}
	a.state.putClient(rec.ID, rec)
	a.catchUpNow()
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
	u, err := parseStoreURL(url)
	if err != nil {
		return nil, false, err
	}
	var db *sqlx.DB
	var existsQuery string
	if u.dialect == "postgres" {
		if db, err = u.open(u.raw, func() time.Duration { return defaultStoreTimeout }); err != nil {
			return nil, false, err
		}
		existsQuery = `SELECT COUNT(*) FROM (SELECT to_regclass('authsvc_clients') AS t) r WHERE t IS NOT NULL`
	} else {
		if u.path != ":memory:" {
			if _, err := os.Stat(u.path); errors.Is(err, os.ErrNotExist) {
				return map[string]int64{}, false, nil
			}
		}
		if db, err = u.open("file:"+u.path+"?mode=ro&_pragma=busy_timeout(10000)", nil); err != nil {
			return nil, false, err
		}
		existsQuery = `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'authsvc_clients'`
	}
	defer db.Close()
	var n int
	if err := db.GetContext(ctx, &n, existsQuery); err != nil {
		return nil, false, u.unreachable("read", err)
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
		return nil, false, u.unreachable("read", err)
	}
	for _, r := range rows {
		ids[r.ClientID] = r.ID
	}
	return ids, true, nil
}
