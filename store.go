package authsvc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/authsvc/authsvc/internal/dburl"
	"github.com/authsvc/authsvc/internal/driver"
)

// Store is where an Authenticator keeps its clients, revocations, signing
// keys and the addresses clients recently authenticated from, and the log
// of changes that instances follow to keep their in-memory state current.
// OpenStore opens one and New takes it; it is otherwise opaque: only Ping
// and Close are exported, so no other package implements a Store or reads
// or writes one past the Authenticator (use the Authenticator's methods).
// Every method is safe for concurrent use. Errors other than
// ErrClientExists, ErrClientNotFound, ErrIssuerExists, ErrIssuerNotFound
// and refusals (*Error) wrap ErrUnavailable: the caller
// must fail closed. Every write that other instances must learn of appends
// a change in the same transaction.
type Store interface {
	// createClient inserts c and sets c.RowID (unless the caller chose one).
	createClient(ctx context.Context, c *clientRecord) error
	// client returns the client with that client_id, or ErrClientNotFound.
	client(ctx context.Context, clientID string) (*clientRecord, error)
	// clients returns every client, ordered by client_id.
	clients(ctx context.Context) ([]clientRecord, error)
	// listClients returns a page of clients, in byte order of client_id.
	listClients(ctx context.Context, prefix, after string, limit int) ([]clientRecord, error)
	// updateClient reads the client, lets update change it, and writes it
	// back, all in one transaction, logging the change as action. If update
	// returns an error nothing is written and that error is returned.
	updateClient(ctx context.Context, clientID, action string, update func(*clientRecord) error) (*clientRecord, error)
	// deleteClient removes a client, or returns ErrClientNotFound.
	deleteClient(ctx context.Context, clientID string) error
	// revokeToken records jti as revoked until expiresAt. Revoking twice is
	// not an error and keeps the first record.
	revokeToken(ctx context.Context, jti, clientID string, expiresAt time.Time) error
	// revocationEstimate is about how many revocations are stored (the
	// planner's count on PostgreSQL; 0 when unknown), to size memory for
	// them at once.
	revocationEstimate(ctx context.Context) int
	// isRevoked reports whether jti is revoked (expired or not).
	isRevoked(ctx context.Context, jti string) (bool, error)
	// revocations calls f with each revocation that has not expired at
	// now, and returns how many; f's slices are valid during the call only.
	revocations(ctx context.Context, now time.Time, f func(jti, clientID []byte, exp int64)) (int, error)
	// changes returns up to limit final changes after the change whose id
	// is after (0: from the start of the log), in log order, or Gone when
	// the log no longer keeps that change (see store_changes.go).
	changes(ctx context.Context, after int64, limit int) (changePage, error)
	// activity returns up to limit changes, newest (by id) first: those of
	// clientID ("" : all) with an id below before (0: any).
	activity(ctx context.Context, clientID string, before int64, limit int) ([]change, error)
	// deletions returns the client deletions logged since (their ClientID
	// and RowID), for the revocation feed's snapshot.
	deletions(ctx context.Context, since time.Time) ([]change, error)
	// scopeLists returns the distinct scope lists (space-separated) of
	// every client.
	scopeLists(ctx context.Context) ([]string, error)
	// cutoffs returns the clients whose cut-off (tokens_valid_after) is
	// after since, as changes with ClientID and At (the cut-off), through
	// an index: for the revocation feed's snapshot.
	cutoffs(ctx context.Context, since time.Time) ([]change, error)
	// lastChange returns the place of the newest final change (zero when
	// none): a cursor there skips nothing still in flight.
	lastChange(ctx context.Context) (logPos, error)
	// purge deletes revocations that expired before now, and the oldest
	// changes: those older than keepChangesAfter and those beyond the
	// newest maxChanges (never the newest change).
	purge(ctx context.Context, now, keepChangesAfter time.Time, maxChanges int) (int64, error)
	// ensureSigningKey returns every stored signing key, first storing one
	// made by generate when none of alg exists. Concurrent callers (even in
	// other processes) store at most one key.
	ensureSigningKey(ctx context.Context, alg string, generate func() (signingKey, error)) ([]signingKey, error)
	// signingKeys returns every stored signing key, oldest first.
	signingKeys(ctx context.Context) ([]signingKey, error)
	// addSigningKey stores a new key (a rotation).
	addSigningKey(ctx context.Context, k signingKey) error
	// deleteSigningKeys removes retired keys.
	deleteSigningKeys(ctx context.Context, kids []string) error
	// watch calls notify whenever another process may have appended a
	// change, and after every reconnection, until ctx is done. Stores that
	// cannot notify return errNoWatch at once; callers then rely on polling.
	watch(ctx context.Context, notify func()) error
	// rememberAddresses records that each row's client authenticated from
	// its address at its time (an upsert that never moves a time back).
	rememberAddresses(ctx context.Context, rows []knownAddress) error
	// knownAddresses returns up to limit recorded (client, address) pairs
	// whose last success is at or after since, the most recent first.
	knownAddresses(ctx context.Context, since time.Time, limit int) ([]knownAddress, error)
	// purgeKnownAddresses deletes pairs whose last success is at or before before.
	purgeKnownAddresses(ctx context.Context, before time.Time) (int64, error)
	// federatedClient returns the client_id that has the federated
	// credential (issuer, subject), or ErrClientNotFound.
	federatedClient(ctx context.Context, issuer, subject string) (string, error)
	// putIssuer stores a trusted issuer, new (else ErrIssuerExists) or,
	// with replace, over the one there; it sets ti's times.
	putIssuer(ctx context.Context, ti *TrustedIssuer, replace bool) error
	// issuer returns a trusted issuer, or ErrIssuerNotFound.
	issuer(ctx context.Context, issuer string) (*TrustedIssuer, error)
	// issuers returns every trusted issuer, ordered by name.
	issuers(ctx context.Context) ([]TrustedIssuer, error)
	// deleteIssuer removes a trusted issuer, or returns ErrIssuerNotFound.
	deleteIssuer(ctx context.Context, issuer string) error
	// useJTI records an assertion's use by (client, jti) until expiresAt,
	// reporting false when it was used before and has not expired at now.
	useJTI(ctx context.Context, clientID, jti string, expiresAt, now time.Time) (bool, error)
	// purgeUsedJTIs deletes the used assertions expired before now.
	purgeUsedJTIs(ctx context.Context, now time.Time) (int64, error)
	// tryLock runs f only if no other instance holds the named lock, and
	// reports whether it ran. Used so that housekeeping runs on one instance.
	tryLock(ctx context.Context, name string, f func(ctx context.Context) error) (bool, error)
	// setTimeout bounds each round trip to the store's server (PostgreSQL:
	// a dial, or a read or write that makes no progress, fails after d).
	setTimeout(d time.Duration)
	// Ping checks that the store can be reached.
	Ping(ctx context.Context) error
	// Close releases the store's connections.
	Close() error
}

// errNoWatch: the store has no change notifications (SQLite).
var errNoWatch = errors.New("authsvc: store has no change notifications")

// Change kinds.
const (
	changeRevoke        = "revoke"         // JTI, ClientID, ExpiresAt
	changeClient        = "client"         // ClientID created or updated
	changeClientDeleted = "client_deleted" // ClientID and RowID deleted
	changeKey           = "key"            // the signing key set changed
)

// change is one entry of the change log.
type change struct {
	ID        int64  `db:"id"`
	Kind      string `db:"kind"`
	ClientID  string `db:"client_id"`
	RowID     int64  `db:"row_id"`
	JTI       string `db:"jti"`
	ExpiresAt int64  `db:"expires_at"`
	At        int64  `db:"at"`
	Xact      int64  `db:"xact"` // the writing transaction (PostgreSQL; the id on SQLite): see logPos
	// What it was and who asked (see Activity); followers need neither.
	Action string `db:"action"`
	Actor  string `db:"actor"`
}

// clientRecord is a client as the store keeps it, with its secret's hash.
type clientRecord struct {
	Client
	SecretHash string // PHC string; never shown to callers
	// OldSecretHash stays valid until OldSecretExpiresAt: the grace period
	// of a secret rotation.
	OldSecretHash      string
	OldSecretExpiresAt time.Time
}

// defaultDatabaseURL is the embedded SQLite file in the working directory.
const defaultDatabaseURL = "sqlite:authd.db"

// OpenStore opens the store at url and applies pending migrations:
// "postgres://…" or "postgresql://…" is PostgreSQL; "sqlite:PATH" or a plain
// path is an embedded SQLite file (created if absent); "" is
// "sqlite:authd.db", in the working directory.
func OpenStore(ctx context.Context, url string) (Store, error) {
	return openSQLStore(ctx, url)
}

// sqlStore is the Store on PostgreSQL or SQLite. The SQL is shared; the
// dialect decides the few statements that differ.
type sqlStore struct {
	db       *sqlx.DB
	postgres bool
	url      string        // for the PostgreSQL listener's own connection
	driver   driver.Driver // the registered driver's extras
	timeout  atomic.Int64  // a round trip's bound, in nanoseconds (see setTimeout)

	stmts      sync.Map      // query → *sqlx.Stmt: the hot paths' statements, prepared (see prepared)
	notifier   sync.Once     // starts notifyLoop on the first announce
	notifyKick chan struct{} // announce → notifyLoop
	notifyStop chan struct{} // closed by Close
	notifyDone chan struct{} // closed when notifyLoop has stopped
	closing    sync.Once     // Close may be called twice
}

// defaultStoreTimeout bounds a round trip until New sets Config.StoreTimeout.
const defaultStoreTimeout = 5 * time.Second

func (s *sqlStore) setTimeout(d time.Duration) { s.timeout.Store(int64(d)) }

func (s *sqlStore) roundTripTimeout() time.Duration { return time.Duration(s.timeout.Load()) }

// Advisory lock keys (PostgreSQL): arbitrary, fixed, distinct.
const (
	lockMigrate = 0x61757468_0001 // "auth" 1
	lockKeys    = 0x61757468_0002
	// 0x61757468_0003 was held while appending a change, until issue 15.
	lockNamed = 0x61757468_1000 // + hash of a tryLock name
)

// storeURL is a parsed database URL: the one reading of OpenStore's URL
// syntax, for every function that opens a store.
type storeURL struct {
	raw     string // as given, for messages only through dburl
	dialect string // "postgres" or "sqlite"
	path    string // sqlite: the file (or ":memory:")
	driver  driver.Driver
}

// The packages that register each dialect's driver, for the error that
// names the import a program lacks.
var driverImports = map[string]string{
	"postgres": "github.com/authsvc/authsvc/postgres",
	"sqlite":   "github.com/authsvc/authsvc/sqlite",
}

// parseStoreURL reads "postgres://…" or "postgresql://…" (PostgreSQL),
// "sqlite:PATH", "sqlite:///abs/path" or a plain path (SQLite); "" is
// defaultDatabaseURL. Anything else that has a scheme, or that looks like a
// keyword/value connection string, is refused rather than taken for a file
// name (a mistyped PostgreSQL URL must not quietly open an empty SQLite
// store named after its password). It fails when the dialect's driver is
// not linked in.
func parseStoreURL(raw string) (storeURL, error) {
	if raw == "" {
		raw = defaultDatabaseURL
	}
	u := storeURL{raw: raw}
	switch {
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		u.dialect = "postgres"
	case !strings.HasPrefix(raw, "sqlite:") && hasScheme(raw):
		return u, fmt.Errorf("authsvc: unsupported database URL scheme in %q (use postgres://… or sqlite:PATH; a file name with a colon needs the sqlite: prefix)", dburl.Redact(raw))
	case strings.Contains(raw, "=") && strings.ContainsAny(raw, " \t"):
		return u, errors.New("authsvc: the database URL looks like a keyword/value connection string: use a postgres:// URL")
	default:
		u.dialect = "sqlite"
		u.path = strings.TrimPrefix(raw, "sqlite:")
		u.path = strings.TrimPrefix(u.path, "//") // sqlite:///abs/path
		if u.path == "" {
			return u, errors.New("authsvc: empty sqlite path")
		}
	}
	d, ok := driver.Lookup(u.dialect)
	if !ok {
		return u, fmt.Errorf("authsvc: no %s driver is linked in: add import _ %q", u.dialect, driverImports[u.dialect])
	}
	u.driver = d
	return u, nil
}

// hasScheme reports whether s starts with a URL scheme (RFC 3986 §3.1) of
// two or more characters: one letter and a colon is a Windows drive.
func hasScheme(s string) bool {
	i := strings.IndexByte(s, ':')
	if i < 2 {
		return false
	}
	for j := 0; j < i; j++ {
		c := s[j]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (j == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

// open opens the database without touching it; dsn is the driver's.
// timeout, when the driver can apply it, bounds every round trip.
func (u storeURL) open(dsn string, timeout func() time.Duration) (*sqlx.DB, error) {
	if u.driver.Connector != nil && timeout != nil {
		c, err := u.driver.Connector(dsn, timeout)
		if err != nil {
			return nil, fmt.Errorf("authsvc: open %s: %s", u.dialect, dburl.Scrub(err.Error(), u.raw))
		}
		return sqlx.NewDb(sql.OpenDB(c), u.driver.SQLName), nil
	}
	db, err := sqlx.Open(u.driver.SQLName, dsn)
	if err != nil {
		// The driver's error is not wrapped: its text may quote the URL.
		return nil, fmt.Errorf("authsvc: open %s: %s", u.dialect, dburl.Scrub(err.Error(), u.raw))
	}
	return db, nil
}

// unreachable is ErrUnavailable for a failed round trip to the store at u,
// without the URL's passwords (drivers quote what they could not reach).
func (u storeURL) unreachable(what string, err error) error {
	return fmt.Errorf("%w: %s %s: %s", ErrUnavailable, what, dburl.Redact(u.raw), dburl.Scrub(err.Error(), u.raw))
}

func openSQLStore(ctx context.Context, rawURL string) (*sqlStore, error) {
	u, err := parseStoreURL(rawURL)
	if err != nil {
		return nil, err
	}
	s := &sqlStore{postgres: u.dialect == "postgres", url: u.raw, driver: u.driver}
	s.setTimeout(defaultStoreTimeout)
	if s.postgres {
		if s.db, err = u.open(u.raw, s.roundTripTimeout); err != nil {
			return nil, err
		}
		// As many idle as open: with fewer, a burst of concurrent writes
		// closes the connections beyond the idle bound when they are
		// released and opens them again for the next burst (a server
		// process each, and every prepared statement again): 16 callers
		// logging out did 1,630/s with 10 idle and 2,460/s with 20.
		s.db.SetMaxOpenConns(20)
		s.db.SetMaxIdleConns(20)
		s.db.SetConnMaxIdleTime(5 * time.Minute)
	} else {
		if s.db, err = u.open(sqliteDSN(u.path), nil); err != nil {
			return nil, err
		}
		if u.path == ":memory:" {
			s.db.SetMaxOpenConns(1) // each connection would be its own database
		}
	}
	// Processes opening a new SQLite file together race to switch it to
	// WAL, which SQLite answers with SQLITE_BUSY without waiting: retry.
	for attempt := 0; ; attempt++ {
		err := s.db.PingContext(ctx)
		// Busy is told from the driver's own error: unreachable keeps only
		// its text (the URL scrubbed from it), so the retry never saw a busy
		// ping (TestConcurrentStartOneKeySet failed now and then).
		busy := err != nil && s.driver.IsBusy != nil && s.driver.IsBusy(err)
		if err != nil {
			err = u.unreachable("connect to", err)
		} else if err = s.migrate(ctx); err != nil {
			busy = s.driver.IsBusy != nil && s.driver.IsBusy(err)
		}
		if err == nil {
			return s, nil
		}
		if !busy || attempt == 20 || ctx.Err() != nil {
			s.db.Close()
			return nil, err
		}
		time.Sleep(time.Duration(10+attempt*10) * time.Millisecond)
	}
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

func (s *sqlStore) Ping(ctx context.Context) error {
	return unavailable(s.db.PingContext(ctx))
}

func (s *sqlStore) Close() error {
	s.notifier.Do(func() {}) // no notifier starts from now on
	s.closing.Do(func() {
		if s.notifyStop != nil {
			close(s.notifyStop) // the notifier sends what is pending, then stops
			<-s.notifyDone
		}
		s.stmts.Range(func(_, st any) bool {
			st.(*sqlx.Stmt).Close()
			return true
		})
	})
	return s.db.Close()
}
