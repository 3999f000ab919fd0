package authsvc

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"  // PostgreSQL driver, registered as "postgres"
	_ "modernc.org/sqlite" // SQLite without cgo, registered as "sqlite"
)

// Store keeps clients, revocations and signing keys. Every method is safe for
// concurrent use. Errors other than ErrClientExists and ErrClientNotFound
// wrap ErrUnavailable: the caller must fail closed.
type Store interface {
	// CreateClient inserts c and sets c.RowID (unless the caller chose one).
	CreateClient(ctx context.Context, c *ClientRecord) error
	// Client returns the client with that client_id, or ErrClientNotFound.
	Client(ctx context.Context, clientID string) (*ClientRecord, error)
	// Clients returns every client, ordered by client_id.
	Clients(ctx context.Context) ([]ClientRecord, error)
	// DeleteClient removes a client, or returns ErrClientNotFound.
	DeleteClient(ctx context.Context, clientID string) error
	// UpdateSecretHash replaces the hash only if it is still oldHash, so two
	// concurrent upgrades cannot undo a secret rotation. It reports whether
	// it replaced it.
	UpdateSecretHash(ctx context.Context, clientID, oldHash, newHash string) (bool, error)
	// RevokeToken records jti as revoked until expiresAt. Revoking twice is
	// not an error and keeps the first record.
	RevokeToken(ctx context.Context, jti, clientID string, expiresAt time.Time) error
	// IsRevoked reports whether jti is revoked.
	IsRevoked(ctx context.Context, jti string) (bool, error)
	// PurgeRevocations deletes revocations that expired before now.
	PurgeRevocations(ctx context.Context, now time.Time) (int64, error)
	// EnsureSigningKey returns every stored signing key, first storing one
	// made by generate when none of alg exists. Concurrent callers (even in
	// other processes) store at most one key.
	EnsureSigningKey(ctx context.Context, alg string, generate func() (SigningKey, error)) ([]SigningKey, error)
	// Ping checks that the store can be reached.
	Ping(ctx context.Context) error
	// Close releases the store's connections.
	Close() error
}

// ClientRecord is a client as the store keeps it, with its secret's hash.
type ClientRecord struct {
	Client
	SecretHash string // PHC string; never shown to callers
}

//go:embed migrations
var migrationFiles embed.FS

// DefaultDatabaseURL is the embedded SQLite file in the working directory.
const DefaultDatabaseURL = "sqlite:authd.db"

// OpenStore opens the store at url and applies pending migrations:
// "postgres://…" or "postgresql://…" is PostgreSQL; "sqlite:PATH" or a plain
// path is an embedded SQLite file (created if absent).
func OpenStore(ctx context.Context, url string) (Store, error) {
	return openSQLStore(ctx, url)
}

// sqlStore is the Store on PostgreSQL or SQLite. The SQL is shared; the
// dialect decides the few statements that differ.
type sqlStore struct {
	db       *sqlx.DB
	postgres bool
}

// Advisory lock keys (PostgreSQL): arbitrary, fixed, distinct.
const (
	lockMigrate = 0x61757468_0001 // "auth" 1
	lockKeys    = 0x61757468_0002
)

func openSQLStore(ctx context.Context, rawURL string) (*sqlStore, error) {
	if rawURL == "" {
		rawURL = DefaultDatabaseURL
	}
	var s *sqlStore
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		db, err := sqlx.Open("postgres", rawURL)
		if err != nil {
			return nil, fmt.Errorf("authsvc: open postgres: %w", err)
		}
		db.SetMaxOpenConns(20)
		db.SetMaxIdleConns(10)
		db.SetConnMaxIdleTime(5 * time.Minute)
		s = &sqlStore{db: db, postgres: true}
	default:
		p := strings.TrimPrefix(rawURL, "sqlite:")
		if strings.HasPrefix(p, "//") { // sqlite:///abs/path
			p = p[2:]
		}
		if p == "" {
			return nil, errors.New("authsvc: empty sqlite path")
		}
		if strings.Contains(rawURL, "://") && !strings.HasPrefix(rawURL, "sqlite:") {
			return nil, fmt.Errorf("authsvc: unsupported database URL scheme in %q (use postgres:// or sqlite:PATH)", redactURL(rawURL))
		}
		db, err := sqlx.Open("sqlite", sqliteDSN(p))
		if err != nil {
			return nil, fmt.Errorf("authsvc: open sqlite %s: %w", p, err)
		}
		if p == ":memory:" {
			db.SetMaxOpenConns(1) // each connection would be its own database
		}
		s = &sqlStore{db: db}
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("%w: connect to %s: %w", ErrUnavailable, redactURL(rawURL), err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// sqliteDSN asks for WAL (readers never wait for the writer), a busy timeout
// (writers queue instead of failing) and BEGIN IMMEDIATE (a transaction
// takes the write lock up front, so two cannot deadlock upgrading).
func sqliteDSN(p string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	return "file:" + p + "?" + q.Encode()
}

// redactURL hides the password of a database URL, for messages and logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func (s *sqlStore) dialect() string {
	if s.postgres {
		return "postgres"
	}
	return "sqlite"
}

func unavailable(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// migrate applies the embedded migrations not yet applied, in version
// order, in one transaction. On PostgreSQL an advisory lock makes instances
// that start together wait for each other; on SQLite BEGIN IMMEDIATE does.
// Migrations only add: none drops or rewrites data.
func (s *sqlStore) migrate(ctx context.Context) error {
	dir := path.Join("migrations", s.dialect())
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return err
	}
	type migration struct {
		version int
		name    string
	}
	var ms []migration
	for _, e := range entries {
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return fmt.Errorf("authsvc: bad migration file name %s", e.Name())
		}
		ms = append(ms, migration{v, e.Name()})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })

	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	defer tx.Rollback()
	if s.postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, lockMigrate); err != nil {
			return unavailable(err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS authsvc_schema_migrations (
		version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("authsvc: migrate: %w", err)
	}
	var current int
	if err := tx.GetContext(ctx, &current, `SELECT COALESCE(MAX(version), 0) FROM authsvc_schema_migrations`); err != nil {
		return fmt.Errorf("authsvc: migrate: %w", err)
	}
	if len(ms) > 0 && current > ms[len(ms)-1].version {
		return fmt.Errorf("authsvc: the database schema is version %d, newer than this build knows (%d): upgrade authd", current, ms[len(ms)-1].version)
	}
	for _, m := range ms {
		if m.version <= current {
			continue
		}
		body, err := migrationFiles.ReadFile(path.Join(dir, m.name))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return fmt.Errorf("authsvc: migration %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO authsvc_schema_migrations (version, applied_at) VALUES (?, ?)`),
			m.version, time.Now().Unix()); err != nil {
			return fmt.Errorf("authsvc: migration %s: %w", m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("authsvc: migrate: %w", err)
	}
	return nil
}

// clientRow is the clients table's row.
type clientRow struct {
	RowID            int64  `db:"id"`
	ClientID         string `db:"client_id"`
	SecretHash       string `db:"secret_hash"`
	IsAdmin          bool   `db:"is_admin"`
	Scopes           string `db:"scopes"`
	TokensValidAfter int64  `db:"tokens_valid_after"`
	CreatedAt        int64  `db:"created_at"`
	UpdatedAt        int64  `db:"updated_at"`
}

const clientColumns = `id, client_id, secret_hash, is_admin, scopes, tokens_valid_after, created_at, updated_at`

func (r *clientRow) record() *ClientRecord {
	c := &ClientRecord{
		Client: Client{
			ID: r.ClientID, RowID: r.RowID, IsAdmin: r.IsAdmin, Scopes: ParseScope(r.Scopes),
			CreatedAt: time.Unix(r.CreatedAt, 0).UTC(), UpdatedAt: time.Unix(r.UpdatedAt, 0).UTC(),
		},
		SecretHash: r.SecretHash,
	}
	if r.TokensValidAfter != 0 {
		c.TokensValidAfter = time.Unix(r.TokensValidAfter, 0).UTC()
	}
	return c
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func (s *sqlStore) CreateClient(ctx context.Context, c *ClientRecord) error {
	now := time.Now().Unix()
	created, updated := unixOrZero(c.CreatedAt), unixOrZero(c.UpdatedAt)
	if created == 0 {
		created = now
	}
	if updated == 0 {
		updated = created
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	defer tx.Rollback()
	var id int64
	args := []any{c.ID, c.SecretHash, c.IsAdmin, strings.Join(c.Scopes, " "), unixOrZero(c.TokensValidAfter), created, updated}
	q := `INSERT INTO authsvc_clients (client_id, secret_hash, is_admin, scopes, tokens_valid_after, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id`
	if c.RowID != 0 {
		q = `INSERT INTO authsvc_clients (client_id, secret_hash, is_admin, scopes, tokens_valid_after, created_at, updated_at, id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id`
		args = append(args, c.RowID)
	}
	err = tx.GetContext(ctx, &id, tx.Rebind(q), args...)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrClientExists
	}
	if err != nil {
		return unavailable(err)
	}
	if c.RowID != 0 && s.postgres {
		// An explicit id leaves the identity sequence behind: move it past.
		if _, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('authsvc_clients', 'id'), GREATEST((SELECT MAX(id) FROM authsvc_clients), 1))`); err != nil {
			return unavailable(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return unavailable(err)
	}
	c.RowID = id
	c.CreatedAt, c.UpdatedAt = time.Unix(created, 0).UTC(), time.Unix(updated, 0).UTC()
	return nil
}

func (s *sqlStore) Client(ctx context.Context, clientID string) (*ClientRecord, error) {
	var r clientRow
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT `+clientColumns+` FROM authsvc_clients WHERE client_id = ?`), clientID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrClientNotFound
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return r.record(), nil
}

func (s *sqlStore) Clients(ctx context.Context) ([]ClientRecord, error) {
	var rows []clientRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT `+clientColumns+` FROM authsvc_clients ORDER BY client_id`); err != nil {
		return nil, unavailable(err)
	}
	out := make([]ClientRecord, len(rows))
	for i := range rows {
		out[i] = *rows[i].record()
	}
	return out, nil
}

func (s *sqlStore) DeleteClient(ctx context.Context, clientID string) error {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM authsvc_clients WHERE client_id = ?`), clientID)
	if err != nil {
		return unavailable(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return unavailable(err)
	} else if n == 0 {
		return ErrClientNotFound
	}
	return nil
}

func (s *sqlStore) UpdateSecretHash(ctx context.Context, clientID, oldHash, newHash string) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE authsvc_clients SET secret_hash = ?, updated_at = ?
		WHERE client_id = ? AND secret_hash = ?`), newHash, time.Now().Unix(), clientID, oldHash)
	if err != nil {
		return false, unavailable(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, unavailable(err)
	}
	return n == 1, nil
}

func (s *sqlStore) RevokeToken(ctx context.Context, jti, clientID string, expiresAt time.Time) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO authsvc_revoked_tokens (jti, client_id, expires_at)
		VALUES (?, ?, ?) ON CONFLICT (jti) DO NOTHING`), jti, clientID, expiresAt.Unix())
	return unavailable(err)
}

func (s *sqlStore) IsRevoked(ctx context.Context, jti string) (bool, error) {
	var n int
	err := s.db.GetContext(ctx, &n, s.db.Rebind(`SELECT COUNT(*) FROM authsvc_revoked_tokens WHERE jti = ?`), jti)
	if err != nil {
		return false, unavailable(err)
	}
	return n > 0, nil
}

func (s *sqlStore) PurgeRevocations(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM authsvc_revoked_tokens WHERE expires_at < ?`), now.Unix())
	if err != nil {
		return 0, unavailable(err)
	}
	n, err := res.RowsAffected()
	return n, unavailable(err)
}

type keyRow struct {
	Kid        string `db:"kid"`
	Alg        string `db:"alg"`
	PrivateKey string `db:"private_key"`
	CreatedAt  int64  `db:"created_at"`
}

func (s *sqlStore) EnsureSigningKey(ctx context.Context, alg string, generate func() (SigningKey, error)) ([]SigningKey, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, unavailable(err)
	}
	defer tx.Rollback()
	if s.postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKeys); err != nil {
			return nil, unavailable(err)
		}
	}
	var n int
	if err := tx.GetContext(ctx, &n, tx.Rebind(`SELECT COUNT(*) FROM authsvc_signing_keys WHERE alg = ?`), alg); err != nil {
		return nil, unavailable(err)
	}
	if n == 0 {
		k, err := generate()
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO authsvc_signing_keys (kid, alg, private_key, created_at) VALUES (?, ?, ?, ?)`),
			k.ID, k.Alg, k.PrivateKey, k.CreatedAt.Unix()); err != nil {
			return nil, unavailable(err)
		}
	}
	var rows []keyRow
	if err := tx.SelectContext(ctx, &rows, `SELECT kid, alg, private_key, created_at FROM authsvc_signing_keys ORDER BY created_at, kid`); err != nil {
		return nil, unavailable(err)
	}
	if err := tx.Commit(); err != nil {
		return nil, unavailable(err)
	}
	out := make([]SigningKey, len(rows))
	for i, r := range rows {
		out[i] = SigningKey{ID: r.Kid, Alg: r.Alg, PrivateKey: r.PrivateKey, CreatedAt: time.Unix(r.CreatedAt, 0).UTC()}
	}
	return out, nil
}

func (s *sqlStore) Ping(ctx context.Context) error {
	return unavailable(s.db.PingContext(ctx))
}

func (s *sqlStore) Close() error {
	return s.db.Close()
}
