package authsvc

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"  // PostgreSQL driver, registered as "postgres"
	"modernc.org/sqlite" // SQLite without cgo, registered as "sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Store keeps clients, revocations, signing keys and the log of changes
// that instances follow to keep their in-memory state current. Every method
// is safe for concurrent use. Errors other than ErrClientExists and
// ErrClientNotFound wrap ErrUnavailable: the caller must fail closed. Every
// write that other instances must learn of appends a Change in the same
// transaction.
type Store interface {
	// CreateClient inserts c and sets c.RowID (unless the caller chose one).
	CreateClient(ctx context.Context, c *ClientRecord) error
	// Client returns the client with that client_id, or ErrClientNotFound.
	Client(ctx context.Context, clientID string) (*ClientRecord, error)
	// Clients returns every client, ordered by client_id.
	Clients(ctx context.Context) ([]ClientRecord, error)
	// UpdateClient reads the client, lets update change it, and writes it
	// back, all in one transaction. If update returns an error nothing is
	// written and that error is returned.
	UpdateClient(ctx context.Context, clientID string, update func(*ClientRecord) error) (*ClientRecord, error)
	// DeleteClient removes a client, or returns ErrClientNotFound.
	DeleteClient(ctx context.Context, clientID string) error
	// RevokeToken records jti as revoked until expiresAt. Revoking twice is
	// not an error and keeps the first record.
	RevokeToken(ctx context.Context, jti, clientID string, expiresAt time.Time) error
	// Revocations returns the revocations that have not expired at now.
	Revocations(ctx context.Context, now time.Time) ([]Revocation, error)
	// Changes returns up to limit changes with an id above after, in order.
	Changes(ctx context.Context, after int64, limit int) ([]Change, error)
	// Deletions returns the client deletions logged since (their ClientID
	// and RowID), for the revocation feed's snapshot.
	Deletions(ctx context.Context, since time.Time) ([]Change, error)
	// LastChange returns the id of the newest change (0 when none).
	LastChange(ctx context.Context) (int64, error)
	// Purge deletes revocations that expired before now and changes older
	// than keepChangesAfter.
	Purge(ctx context.Context, now, keepChangesAfter time.Time) (int64, error)
	// EnsureSigningKey returns every stored signing key, first storing one
	// made by generate when none of alg exists. Concurrent callers (even in
	// other processes) store at most one key.
	EnsureSigningKey(ctx context.Context, alg string, generate func() (SigningKey, error)) ([]SigningKey, error)
	// SigningKeys returns every stored signing key, oldest first.
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	// AddSigningKey stores a new key (a rotation).
	AddSigningKey(ctx context.Context, k SigningKey) error
	// DeleteSigningKeys removes retired keys.
	DeleteSigningKeys(ctx context.Context, kids []string) error
	// Watch calls notify whenever another process may have appended a
	// change, and after every reconnection, until ctx is done. Stores that
	// cannot notify return ErrNoWatch at once; callers then rely on polling.
	Watch(ctx context.Context, notify func()) error
	// TryLock runs f only if no other instance holds the named lock, and
	// reports whether it ran. Used so that housekeeping runs on one instance.
	TryLock(ctx context.Context, name string, f func(ctx context.Context) error) (bool, error)
	// Ping checks that the store can be reached.
	Ping(ctx context.Context) error
	// Close releases the store's connections.
	Close() error
}

// ErrNoWatch: the store has no change notifications (SQLite).
var ErrNoWatch = errors.New("authsvc: store has no change notifications")

// Revocation is a revoked token.
type Revocation struct {
	JTI       string
	ClientID  string
	ExpiresAt time.Time
}

// Change kinds.
const (
	ChangeRevoke        = "revoke"         // JTI, ClientID, ExpiresAt
	ChangeClient        = "client"         // ClientID created or updated
	ChangeClientDeleted = "client_deleted" // ClientID and RowID deleted
	ChangeKey           = "key"            // the signing key set changed
)

// Change is one entry of the change log.
type Change struct {
	ID        int64  `db:"id"`
	Kind      string `db:"kind"`
	ClientID  string `db:"client_id"`
	RowID     int64  `db:"row_id"`
	JTI       string `db:"jti"`
	ExpiresAt int64  `db:"expires_at"`
	At        int64  `db:"at"`
}

// ClientRecord is a client as the store keeps it, with its secret's hash.
type ClientRecord struct {
	Client
	SecretHash string // PHC string; never shown to callers
	// OldSecretHash stays valid until OldSecretExpiresAt: the grace period
	// of a secret rotation.
	OldSecretHash      string
	OldSecretExpiresAt time.Time
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
	url      string // for the PostgreSQL listener's own connection
}

// Advisory lock keys (PostgreSQL): arbitrary, fixed, distinct.
const (
	lockMigrate = 0x61757468_0001 // "auth" 1
	lockKeys    = 0x61757468_0002
	lockChanges = 0x61757468_0003 // held while appending a change: ids commit in order
	lockNamed   = 0x61757468_1000 // + hash of a TryLock name
)

// notifyChannel is the PostgreSQL channel changes are announced on.
const notifyChannel = "authsvc_changes"

func openSQLStore(ctx context.Context, rawURL string) (*sqlStore, error) {
	if rawURL == "" {
		rawURL = DefaultDatabaseURL
	}
	var s *sqlStore
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		db, err := sqlx.Open("postgres", rawURL)
		if err != nil {
			return nil, fmt.Errorf("authsvc: open postgres: %s", scrubURL(err, rawURL))
		}
		db.SetMaxOpenConns(20)
		db.SetMaxIdleConns(10)
		db.SetConnMaxIdleTime(5 * time.Minute)
		s = &sqlStore{db: db, postgres: true, url: rawURL}
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
	// Processes opening a new SQLite file together race to switch it to
	// WAL, which SQLite answers with SQLITE_BUSY without waiting: retry.
	for attempt := 0; ; attempt++ {
		err := s.db.PingContext(ctx)
		if err != nil {
			// The driver's error is not wrapped: its text may quote the URL.
			err = fmt.Errorf("%w: connect to %s: %s", ErrUnavailable, redactURL(rawURL), scrubURL(err, rawURL))
		} else {
			err = s.migrate(ctx)
		}
		if err == nil {
			return s, nil
		}
		if s.postgres || !isSQLiteBusy(err) || attempt == 20 || ctx.Err() != nil {
			s.db.Close()
			return nil, err
		}
		time.Sleep(time.Duration(10+attempt*10) * time.Millisecond)
	}
}

// isSQLiteBusy reports whether err is SQLite's "database is locked".
func isSQLiteBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
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

// redactURL hides the passwords of a database URL (in the user info and
// the password and sslpassword parameters), for messages and logs. A URL
// that does not parse is not shown at all.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a database URL that does not parse)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	for _, k := range []string{"password", "sslpassword"} {
		if q.Has(k) {
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// scrubURL removes the raw database URL and its passwords from a driver's
// error message (lib/pq quotes the URL it could not parse).
func scrubURL(err error, raw string) string {
	msg := strings.ReplaceAll(err.Error(), raw, redactURL(raw))
	if u, perr := url.Parse(raw); perr == nil {
		var secrets []string
		if u.User != nil {
			if p, ok := u.User.Password(); ok {
				secrets = append(secrets, p)
			}
		}
		secrets = append(secrets, u.Query().Get("password"), u.Query().Get("sslpassword"))
		for _, p := range secrets {
			if p != "" {
				msg = strings.ReplaceAll(msg, p, "xxxxx")
			}
		}
	} else if i := strings.Index(raw, "@"); i > 0 {
		// Unparseable: hide whatever stands before the host.
		msg = strings.ReplaceAll(msg, raw[:i], "postgres://(redacted)")
	}
	return msg
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
	RowID              int64  `db:"id"`
	ClientID           string `db:"client_id"`
	SecretHash         string `db:"secret_hash"`
	OldSecretHash      string `db:"old_secret_hash"`
	OldSecretExpiresAt int64  `db:"old_secret_expires_at"`
	IsAdmin            bool   `db:"is_admin"`
	Scopes             string `db:"scopes"`
	TokensValidAfter   int64  `db:"tokens_valid_after"`
	CreatedAt          int64  `db:"created_at"`
	UpdatedAt          int64  `db:"updated_at"`
}

const clientColumns = `id, client_id, secret_hash, old_secret_hash, old_secret_expires_at, is_admin, scopes, tokens_valid_after, created_at, updated_at`

func (r *clientRow) record() *ClientRecord {
	c := &ClientRecord{
		Client: Client{
			ID: r.ClientID, RowID: r.RowID, IsAdmin: r.IsAdmin, Scopes: ParseScope(r.Scopes),
			CreatedAt: time.Unix(r.CreatedAt, 0).UTC(), UpdatedAt: time.Unix(r.UpdatedAt, 0).UTC(),
		},
		SecretHash:    r.SecretHash,
		OldSecretHash: r.OldSecretHash,
	}
	if r.OldSecretExpiresAt != 0 {
		c.OldSecretExpiresAt = time.Unix(r.OldSecretExpiresAt, 0).UTC()
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
	args := []any{c.ID, c.SecretHash, c.OldSecretHash, unixOrZero(c.OldSecretExpiresAt), c.IsAdmin, strings.Join(c.Scopes, " "), unixOrZero(c.TokensValidAfter), created, updated}
	q := `INSERT INTO authsvc_clients (client_id, secret_hash, old_secret_hash, old_secret_expires_at, is_admin, scopes, tokens_valid_after, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id`
	if c.RowID != 0 {
		q = `INSERT INTO authsvc_clients (client_id, secret_hash, old_secret_hash, old_secret_expires_at, is_admin, scopes, tokens_valid_after, created_at, updated_at, id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id`
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
	if err := s.logChange(ctx, tx, Change{Kind: ChangeClient, ClientID: c.ID, RowID: id}); err != nil {
		return err
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

// logChange appends a change inside tx. On PostgreSQL it first takes a
// transaction-scoped advisory lock, so change ids become visible in the
// order they were assigned (a follower never skips one committed late), and
// announces the change with NOTIFY, delivered at commit.
func (s *sqlStore) logChange(ctx context.Context, tx *sqlx.Tx, c Change) error {
	if c.At == 0 {
		c.At = time.Now().Unix()
	}
	if s.postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, lockChanges); err != nil {
			return unavailable(err)
		}
	}
	var id int64
	err := tx.GetContext(ctx, &id, tx.Rebind(`INSERT INTO authsvc_changes (kind, client_id, row_id, jti, expires_at, at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`), c.Kind, c.ClientID, c.RowID, c.JTI, c.ExpiresAt, c.At)
	if err != nil {
		return unavailable(err)
	}
	if s.postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, strconv.FormatInt(id, 10)); err != nil {
			return unavailable(err)
		}
	}
	return nil
}

func (s *sqlStore) UpdateClient(ctx context.Context, clientID string, update func(*ClientRecord) error) (*ClientRecord, error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, unavailable(err)
	}
	defer tx.Rollback()
	var r clientRow
	q := `SELECT ` + clientColumns + ` FROM authsvc_clients WHERE client_id = ?`
	if s.postgres {
		q += ` FOR UPDATE`
	}
	err = tx.GetContext(ctx, &r, tx.Rebind(q), clientID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrClientNotFound
	}
	if err != nil {
		return nil, unavailable(err)
	}
	rec := r.record()
	if err := update(rec); err != nil {
		return nil, err
	}
	rec.UpdatedAt = time.Now().UTC().Truncate(time.Second)
	_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE authsvc_clients SET secret_hash = ?, old_secret_hash = ?,
		old_secret_expires_at = ?, is_admin = ?, scopes = ?, tokens_valid_after = ?, updated_at = ? WHERE id = ?`),
		rec.SecretHash, rec.OldSecretHash, unixOrZero(rec.OldSecretExpiresAt), rec.IsAdmin,
		strings.Join(rec.Scopes, " "), unixOrZero(rec.TokensValidAfter), rec.UpdatedAt.Unix(), rec.RowID)
	if err != nil {
		return nil, unavailable(err)
	}
	if err := s.logChange(ctx, tx, Change{Kind: ChangeClient, ClientID: rec.ID, RowID: rec.RowID}); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, unavailable(err)
	}
	return rec, nil
}

func (s *sqlStore) DeleteClient(ctx context.Context, clientID string) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	defer tx.Rollback()
	var rowID int64
	err = tx.GetContext(ctx, &rowID, tx.Rebind(`DELETE FROM authsvc_clients WHERE client_id = ? RETURNING id`), clientID)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrClientNotFound
	}
	if err != nil {
		return unavailable(err)
	}
	if err := s.logChange(ctx, tx, Change{Kind: ChangeClientDeleted, ClientID: clientID, RowID: rowID}); err != nil {
		return err
	}
	return unavailable(tx.Commit())
}

func (s *sqlStore) RevokeToken(ctx context.Context, jti, clientID string, expiresAt time.Time) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO authsvc_revoked_tokens (jti, client_id, expires_at)
		VALUES (?, ?, ?) ON CONFLICT (jti) DO NOTHING`), jti, clientID, expiresAt.Unix())
	if err != nil {
		return unavailable(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return unavailable(err)
	} else if n == 0 {
		return nil // revoked already
	}
	if err := s.logChange(ctx, tx, Change{Kind: ChangeRevoke, ClientID: clientID, JTI: jti, ExpiresAt: expiresAt.Unix()}); err != nil {
		return err
	}
	return unavailable(tx.Commit())
}

func (s *sqlStore) Revocations(ctx context.Context, now time.Time) ([]Revocation, error) {
	var rows []struct {
		JTI       string `db:"jti"`
		ClientID  string `db:"client_id"`
		ExpiresAt int64  `db:"expires_at"`
	}
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT jti, client_id, expires_at FROM authsvc_revoked_tokens WHERE expires_at >= ?`), now.Unix())
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]Revocation, len(rows))
	for i, r := range rows {
		out[i] = Revocation{JTI: r.JTI, ClientID: r.ClientID, ExpiresAt: time.Unix(r.ExpiresAt, 0).UTC()}
	}
	return out, nil
}

func (s *sqlStore) Changes(ctx context.Context, after int64, limit int) ([]Change, error) {
	var out []Change
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT id, kind, client_id, row_id, jti, expires_at, at
		FROM authsvc_changes WHERE id > ? ORDER BY id LIMIT ?`), after, limit)
	return out, unavailable(err)
}

func (s *sqlStore) Deletions(ctx context.Context, since time.Time) ([]Change, error) {
	var out []Change
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT id, kind, client_id, row_id, jti, expires_at, at
		FROM authsvc_changes WHERE kind = ? AND at >= ? ORDER BY id`), ChangeClientDeleted, since.Unix())
	return out, unavailable(err)
}

func (s *sqlStore) LastChange(ctx context.Context) (int64, error) {
	var id int64
	err := s.db.GetContext(ctx, &id, `SELECT COALESCE(MAX(id), 0) FROM authsvc_changes`)
	return id, unavailable(err)
}

func (s *sqlStore) Purge(ctx context.Context, now, keepChangesAfter time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM authsvc_revoked_tokens WHERE expires_at < ?`), now.Unix())
	if err != nil {
		return 0, unavailable(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, unavailable(err)
	}
	// Keep the newest change whatever its age, so the cursor never goes back.
	_, err = s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM authsvc_changes WHERE at < ?
		AND id < (SELECT MAX(id) FROM authsvc_changes)`), keepChangesAfter.Unix())
	return n, unavailable(err)
}

type keyRow struct {
	Kid        string `db:"kid"`
	Alg        string `db:"alg"`
	PrivateKey string `db:"private_key"`
	CreatedAt  int64  `db:"created_at"`
	ActivateAt int64  `db:"activate_at"`
}

const keyColumns = `kid, alg, private_key, created_at, activate_at`

func (r keyRow) key() SigningKey {
	return SigningKey{ID: r.Kid, Alg: r.Alg, PrivateKey: r.PrivateKey,
		CreatedAt: time.Unix(r.CreatedAt, 0).UTC(), ActivateAt: time.Unix(r.ActivateAt, 0).UTC()}
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
		if err := s.insertKey(ctx, tx, k); err != nil {
			return nil, err
		}
	}
	keys, err := selectKeys(ctx, tx)
	if err != nil {
		return nil, err
	}
	return keys, unavailable(tx.Commit())
}

func (s *sqlStore) insertKey(ctx context.Context, tx *sqlx.Tx, k SigningKey) error {
	if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO authsvc_signing_keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?)`),
		k.ID, k.Alg, k.PrivateKey, k.CreatedAt.Unix(), k.ActivateAt.Unix()); err != nil {
		return unavailable(err)
	}
	return s.logChange(ctx, tx, Change{Kind: ChangeKey})
}

func selectKeys(ctx context.Context, q sqlx.QueryerContext) ([]SigningKey, error) {
	var rows []keyRow
	if err := sqlx.SelectContext(ctx, q, &rows, `SELECT `+keyColumns+` FROM authsvc_signing_keys ORDER BY created_at, kid`); err != nil {
		return nil, unavailable(err)
	}
	out := make([]SigningKey, len(rows))
	for i, r := range rows {
		out[i] = r.key()
	}
	return out, nil
}

func (s *sqlStore) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	return selectKeys(ctx, s.db)
}

func (s *sqlStore) AddSigningKey(ctx context.Context, k SigningKey) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	defer tx.Rollback()
	if err := s.insertKey(ctx, tx, k); err != nil {
		return err
	}
	return unavailable(tx.Commit())
}

func (s *sqlStore) DeleteSigningKeys(ctx context.Context, kids []string) error {
	if len(kids) == 0 {
		return nil
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	defer tx.Rollback()
	for _, kid := range kids {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM authsvc_signing_keys WHERE kid = ?`), kid); err != nil {
			return unavailable(err)
		}
	}
	if err := s.logChange(ctx, tx, Change{Kind: ChangeKey}); err != nil {
		return err
	}
	return unavailable(tx.Commit())
}

// Watch listens on PostgreSQL with lib/pq's Listener, which reconnects by
// itself; notify is also called after each reconnection so the caller
// catches up on what it missed meanwhile.
func (s *sqlStore) Watch(ctx context.Context, notify func()) error {
	if !s.postgres {
		return ErrNoWatch
	}
	l := pq.NewListener(s.url, 100*time.Millisecond, 5*time.Second, nil)
	defer l.Close()
	if err := l.Listen(notifyChannel); err != nil {
		return unavailable(err)
	}
	notify() // anything committed before the LISTEN took effect
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.Notify:
			// A nil notification means the connection was re-established.
			notify()
		case <-ping.C:
			go l.Ping() // surfaces a dead connection sooner
		}
	}
}

func (s *sqlStore) TryLock(ctx context.Context, name string, f func(ctx context.Context) error) (bool, error) {
	if !s.postgres {
		return true, f(ctx) // one process per SQLite file serves; the CLI does not run housekeeping
	}
	conn, err := s.db.Connx(ctx)
	if err != nil {
		return false, unavailable(err)
	}
	defer conn.Close()
	key := int64(lockNamed) + int64(crc32.ChecksumIEEE([]byte(name)))
	var got bool
	if err := conn.GetContext(ctx, &got, `SELECT pg_try_advisory_lock($1)`, key); err != nil {
		return false, unavailable(err)
	}
	if !got {
		return false, nil
	}
	defer conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, key)
	return true, f(ctx)
}

func (s *sqlStore) Ping(ctx context.Context) error {
	return unavailable(s.db.PingContext(ctx))
}

func (s *sqlStore) Close() error {
	return s.db.Close()
}
