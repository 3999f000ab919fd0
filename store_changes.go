package authsvc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/authsvc/authsvc/internal/dburl"
)

// The change log without a lock (issue 15).
//
// Followers read the log with a cursor and must never skip a change that
// commits after they have read past it. Ids are assigned at INSERT, so
// concurrent writers may commit them out of order (id 6 visible, id 5 still
// in flight): a cursor on ids alone would pass 5 for good. Writers used to
// take a cluster-wide advisory lock across INSERT, NOTIFY and COMMIT so that
// ids committed in order; that capped every database at one change per
// commit round trip (~450 logouts/s here, however many instances).
//
// On PostgreSQL each change now records the id of the transaction that wrote
// it (column xact, pg_current_xact_id(): 64 bits, never wraps), the log is
// ordered by (xact, id), and a read returns only changes whose xact is below
// the horizon h = pg_snapshot_xmin(pg_current_snapshot()) of its own
// snapshot: the oldest transaction id still in flight when the statement's
// snapshot was taken (or the next id to be assigned, if none is). Proof that
// a follower never skips a change:
//
//  1. Every transaction with an id below h had finished when the snapshot
//     was taken, so each change with xact < h is either visible to the read
//     (committed) or will never exist (rolled back). The read therefore sees
//     every change that will ever have an xact below h.
//  2. Every change not visible to the read belongs to a transaction that was
//     in flight at the snapshot (its id >= h, by definition of h) or that
//     got its id later (ids are assigned in increasing order, and the next
//     one was already >= h). So it has xact >= h.
//  3. The read returns a prefix, in (xact, id) order, of the changes with
//     xact < h, and the cursor moves to the last change returned, whose xact
//     is < h. By (2) every change committed later sorts after the cursor,
//     and by (1) every change before it has been returned: nothing between
//     the old cursor and the new one can still appear.
//
// Changes that are committed but at or above h are held back (Pending), to
// be read once the transactions before them finish; a long-running write
// transaction anywhere on the server (not only authsvc's) holds them back
// that long. The cursor on the wire stays the id of the last change applied:
// its place in the log is looked up by id, and a cursor whose change is gone
// (purged, or from another database) asks for a snapshot.
//
// SQLite has one writer at a time, so ids commit in order: there the log is
// ordered by id and xact is the id.

// notifyChannel is the PostgreSQL channel changes are announced on.
const notifyChannel = "authsvc_changes"

// logPos is a change's place in the log: followers apply changes in
// (Xact, ID) order.
type logPos struct {
	Xact int64 `db:"xact"`
	ID   int64 `db:"id"`
}

// after reports whether p comes after q in the log.
func (p logPos) after(q logPos) bool {
	return p.Xact > q.Xact || p.Xact == q.Xact && p.ID > q.ID
}

func (c change) pos() logPos { return logPos{Xact: c.Xact, ID: c.ID} }

// changePage is what a follower reads of the log after its cursor.
type changePage struct {
	// Changes are in log order, every one final (see above).
	Changes []change
	// Pending: committed changes after these are held back behind a
	// transaction still in flight; ask again shortly.
	Pending bool
	// Held are (up to the page's size) those committed changes: visible
	// and final, so a follower may apply them at once (applying a change
	// twice is harmless), but its cursor must not pass them until they are
	// no longer held.
	Held []change
	// Gone: the cursor names no change the log keeps (it was purged, or the
	// store was replaced): the follower must take a snapshot.
	Gone bool
}

// logChange appends a change inside tx (without any lock: see above) and,
// on PostgreSQL, announces it with NOTIFY, delivered at commit. Its actor
// is ctx's (WithActor).
func (s *sqlStore) logChange(ctx context.Context, tx *sqlx.Tx, c change) error {
	if c.At == 0 {
		c.At = time.Now().Unix()
	}
	var id int64
	err := tx.GetContext(ctx, &id, tx.Rebind(`INSERT INTO authsvc_changes (kind, client_id, row_id, jti, expires_at, at, action, actor)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`), c.Kind, c.ClientID, c.RowID, c.JTI, c.ExpiresAt, c.At, c.Action, actorOf(ctx))
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

func (s *sqlStore) revokeToken(ctx context.Context, jti, clientID string, expiresAt time.Time) error {
	if s.postgres {
		// One prepared statement, so one round trip and its own
		// transaction: the revocation and, only if the jti is new, its
		// change. The NOTIFY is sent after the commit, batched (see
		// announce): a NOTIFY inside each transaction serializes the
		// commits of every writer on the server, which halved throughput.
		stmt, err := s.prepared(ctx, revokeSQL)
		if err != nil {
			return err
		}
		res, err := stmt.ExecContext(ctx, jti, clientID, expiresAt.Unix(), changeRevoke, time.Now().Unix(), ActionTokenRevoked, actorOf(ctx))
		if err != nil {
			return unavailable(err)
		}
		if n, err := res.RowsAffected(); err == nil && n > 0 {
			s.announce()
		}
		return nil
	}
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
	if err := s.logChange(ctx, tx, change{Kind: changeRevoke, Action: ActionTokenRevoked, ClientID: clientID, JTI: jti, ExpiresAt: expiresAt.Unix()}); err != nil {
		return err
	}
	return unavailable(tx.Commit())
}

// revokeSQL appends a revocation and its change in one statement.
const revokeSQL = `WITH r AS (
		INSERT INTO authsvc_revoked_tokens (jti, client_id, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (jti) DO NOTHING RETURNING jti, client_id, expires_at)
	INSERT INTO authsvc_changes (kind, client_id, jti, expires_at, at, action, actor)
	SELECT $4, client_id, jti, expires_at, $5, $6, $7 FROM r`

// prepared returns the hot path's query q prepared once for the store
// (database/sql prepares it again on each connection that runs it): on
// PostgreSQL one round trip a call instead of two, and no parse or plan.
func (s *sqlStore) prepared(ctx context.Context, q string) (*sqlx.Stmt, error) {
	if st, ok := s.stmts.Load(q); ok {
		return st.(*sqlx.Stmt), nil
	}
	st, err := s.db.PreparexContext(ctx, s.db.Rebind(q))
	if err != nil {
		return nil, unavailable(err)
	}
	if prev, loaded := s.stmts.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sqlx.Stmt), nil
	}
	return st, nil
}

// announce has the notifier NOTIFY listeners of changes committed outside
// logChange: at most one NOTIFY in flight and one pending, however many
// writers commit meanwhile. A lost NOTIFY (the process dies first) is made
// good by every instance's poll.
func (s *sqlStore) announce() {
	s.notifier.Do(func() {
		s.notifyKick = make(chan struct{}, 1)
		s.notifyStop = make(chan struct{})
		s.notifyDone = make(chan struct{})
		go s.notifyLoop()
	})
	select {
	case s.notifyKick <- struct{}{}:
	default: // one NOTIFY pending covers this commit too
	}
}

// notifyLoop sends the NOTIFYs announce asks for, until Close; it sends the
// last one asked for before it stops.
func (s *sqlStore) notifyLoop() {
	defer close(s.notifyDone)
	send := func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.roundTripTimeout())
		s.db.ExecContext(ctx, `SELECT pg_notify($1, '')`, notifyChannel)
		cancel()
	}
	for {
		select {
		case <-s.notifyKick:
			send()
			// Writers committing during the gap are announced by the next
			// NOTIFY: one per gap, not one per write, under a stream of
			// them (each wakes every instance for a catch-up).
			time.Sleep(catchUpGap)
		case <-s.notifyStop:
			select {
			case <-s.notifyKick:
				send()
			default:
			}
			return
		}
	}
}

func (s *sqlStore) revocationEstimate(ctx context.Context) int {
	if !s.postgres {
		return 0
	}
	var n float64
	if err := s.db.GetContext(ctx, &n, `SELECT reltuples FROM pg_class WHERE oid = 'authsvc_revoked_tokens'::regclass`); err != nil {
		return 0 // only a size hint
	}
	return int(min(max(n, 0), 1e9))
}

func (s *sqlStore) isRevoked(ctx context.Context, jti string) (bool, error) {
	var n int
	err := s.db.GetContext(ctx, &n, s.db.Rebind(`SELECT COUNT(*) FROM authsvc_revoked_tokens WHERE jti = ?`), jti)
	return n > 0, unavailable(err)
}

func (s *sqlStore) revocations(ctx context.Context, now time.Time, f func(jti, clientID []byte, exp int64)) (int, error) {
	// Streamed and scanned into raw bytes: ten million rows must not
	// become ten million pairs of strings on their way into memory.
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT jti, client_id, expires_at FROM authsvc_revoked_tokens WHERE expires_at >= ?`), now.Unix())
	if err != nil {
		return 0, unavailable(err)
	}
	defer rows.Close()
	n := 0
	var jti, clientID sql.RawBytes
	var exp int64
	for rows.Next() {
		if err := rows.Scan(&jti, &clientID, &exp); err != nil {
			return n, unavailable(err)
		}
		f(jti, clientID, exp)
		n++
	}
	if err := rows.Err(); err != nil {
		return n, unavailable(err)
	}
	return n, nil
}

// changeColumns are the change log's columns in the dialect's log order
// (xact is the id on SQLite).
func (s *sqlStore) changeColumns() string {
	if s.postgres {
		return `id, kind, client_id, row_id, jti, expires_at, at, xact`
	}
	return `id, kind, client_id, row_id, jti, expires_at, at, id AS xact`
}

func (s *sqlStore) changes(ctx context.Context, after int64, limit int) (changePage, error) {
	if s.postgres && after > 0 {
		return s.changesAfterPostgres(ctx, after, limit)
	}
	var page changePage
	if !s.postgres {
		err := s.db.SelectContext(ctx, &page.Changes, `SELECT `+s.changeColumns()+`
			FROM authsvc_changes WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
		if err != nil {
			return page, unavailable(err)
		}
	} else {
		// From the start of the log (a cursor taken when no change was
		// final yet): rare, and the log is small or the read is cut short
		// by the horizon at once.
		var rows []struct {
			change
			Horizon int64 `db:"horizon"`
		}
		if err := s.db.SelectContext(ctx, &rows, `SELECT `+s.changeColumns()+`, pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS horizon
			FROM authsvc_changes ORDER BY xact, id LIMIT $1`, limit); err != nil {
			return page, unavailable(err)
		}
		for _, r := range rows {
			page.add(r.change, r.Horizon)
		}
	}
	if after == 0 {
		// From the start of the log: complete unless housekeeping ever
		// deleted changes (it records that before it deletes).
		var purged int
		if err := s.db.GetContext(ctx, &purged, `SELECT COUNT(*) FROM authsvc_changes_purged`); err != nil {
			return page, unavailable(err)
		}
		if purged > 0 {
			return changePage{Gone: true}, nil
		}
	} else {
		// Asked after the read: the purge deletes a prefix of the log, so
		// if the cursor's change is still there, nothing after it was
		// deleted before the read either.
		var kept int
		if err := s.db.GetContext(ctx, &kept, s.db.Rebind(`SELECT COUNT(*) FROM authsvc_changes WHERE id = ?`), after); err != nil {
			return page, unavailable(err)
		}
		if kept == 0 {
			return changePage{Gone: true}, nil
		}
	}
	return page, nil
}

// add files a change read with the read's horizon: final, or held back.
func (p *changePage) add(c change, horizon int64) {
	if p.Pending || c.Xact >= horizon {
		p.Pending = true // and so is every change after it
		p.Held = append(p.Held, c)
		return
	}
	p.Changes = append(p.Changes, c)
}

// changesAfterSQL reads, in one statement and so in one snapshot, the
// horizon, the cursor's change (none if it was purged: the purge deletes a
// prefix of the log, so if it is kept, nothing after it was deleted) and
// the changes after it (authsvc_changes_after, migration 0011: a walk of
// the indexes whatever the statistics say).
const changesAfterSQL = `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
		id, kind, client_id, row_id, jti, expires_at, at, xact
	FROM authsvc_changes_after($1, $2)`

// changesAfterPostgres is changes after a cursor on PostgreSQL: one
// prepared round trip a catch-up (it was four: two statements, each parsed
// and then run).
func (s *sqlStore) changesAfterPostgres(ctx context.Context, after int64, limit int) (changePage, error) {
	stmt, err := s.prepared(ctx, changesAfterSQL)
	if err != nil {
		return changePage{}, err
	}
	rows, err := stmt.QueryContext(ctx, after, limit)
	if err != nil {
		return changePage{}, unavailable(err)
	}
	defer rows.Close()
	var page changePage
	kept := false
	for first := true; rows.Next(); first = false {
		var c change
		var horizon int64
		if err := rows.Scan(&horizon, &c.ID, &c.Kind, &c.ClientID, &c.RowID, &c.JTI, &c.ExpiresAt, &c.At, &c.Xact); err != nil {
			return changePage{}, unavailable(err)
		}
		if first {
			kept = c.ID == after // the cursor's own change comes first
			if !kept {
				break
			}
			continue
		}
		page.add(c, horizon)
	}
	if err := rows.Err(); err != nil {
		return changePage{}, unavailable(err)
	}
	if !kept {
		return changePage{Gone: true}, nil
	}
	return page, nil
}

func (s *sqlStore) activity(ctx context.Context, clientID string, before int64, limit int) ([]change, error) {
	q := `SELECT id, kind, client_id, at, action, actor FROM authsvc_changes WHERE 1 = 1`
	var args []any
	if clientID != "" {
		q += ` AND client_id = ?`
		args = append(args, clientID)
	}
	if before > 0 {
		q += ` AND id < ?`
		args = append(args, before)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	var out []change
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(q), args...)
	return out, unavailable(err)
}

func (s *sqlStore) deletions(ctx context.Context, since time.Time) ([]change, error) {
	var out []change
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT `+s.changeColumns()+`
		FROM authsvc_changes WHERE kind = ? AND at >= ? ORDER BY id`), changeClientDeleted, since.Unix())
	return out, unavailable(err)
}

func (s *sqlStore) cutoffs(ctx context.Context, since time.Time) ([]change, error) {
	var out []change
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT client_id, tokens_valid_after AS at
		FROM authsvc_clients WHERE tokens_valid_after > ?`), since.Unix())
	return out, unavailable(err)
}

func (s *sqlStore) lastChange(ctx context.Context) (logPos, error) {
	q := `SELECT id AS xact, id FROM authsvc_changes ORDER BY id DESC LIMIT 1`
	if s.postgres {
		// The newest final change (see above): a cursor past it could skip
		// a change still in flight.
		q = `SELECT xact, id FROM authsvc_changes WHERE xact < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
			ORDER BY xact DESC, id DESC LIMIT 1`
	}
	return s.logPosition(ctx, q)
}

// logPosition runs a query for at most one change's place in the log (the
// zero logPos when there is none).
func (s *sqlStore) logPosition(ctx context.Context, q string, args ...any) (logPos, error) {
	var rows []logPos
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(q), args...); err != nil {
		return logPos{}, unavailable(err)
	}
	if len(rows) == 0 {
		return logPos{}, nil
	}
	return rows[0], nil
}

func (s *sqlStore) purge(ctx context.Context, now, keepChangesAfter time.Time, maxChanges int) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM authsvc_revoked_tokens WHERE expires_at < ?`), now.Unix())
	if err != nil {
		return 0, unavailable(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, unavailable(err)
	}
	// The change log loses a prefix (in log order), so that a follower whose
	// cursor is still kept has missed nothing (see changes): everything up
	// to the newest change that is too old, or beyond the newest
	// maxChanges, whichever is further; never the newest final change
	// (nor what follows it), so that a follower that is up to date keeps
	// its cursor even while a transaction in flight holds the horizon back
	// (else every follower would reload at every catch-up until it ended).
	cols, order := `xact, id`, `ORDER BY xact DESC, id DESC`
	if !s.postgres {
		cols, order = `id AS xact, id`, `ORDER BY id DESC`
	}
	newest, err := s.lastChange(ctx)
	if err != nil {
		return 0, err
	}
	tooOld, err := s.logPosition(ctx, `SELECT `+cols+` FROM authsvc_changes WHERE at < ? `+order+` LIMIT 1`, keepChangesAfter.Unix())
	if err != nil {
		return 0, err
	}
	pastCount, err := s.logPosition(ctx, `SELECT `+cols+` FROM authsvc_changes `+order+` LIMIT 1 OFFSET ?`, maxChanges)
	if err != nil {
		return 0, err
	}
	upTo := tooOld
	if pastCount.after(upTo) {
		upTo = pastCount
	}
	if upTo == (logPos{}) {
		return n, nil
	}
	op := "<="
	if !newest.after(upTo) {
		upTo, op = newest, "<" // keep the newest
	}
	if upTo == (logPos{}) {
		return n, nil // no final change yet: nothing can go
	}
	// Recorded first, so that a follower that finds changes gone from the
	// start of the log also finds this (see changes).
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO authsvc_changes_purged (id, purged_at) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET purged_at = excluded.purged_at`), now.Unix()); err != nil {
		return 0, unavailable(err)
	}
	if s.postgres {
		_, err = s.db.ExecContext(ctx, `DELETE FROM authsvc_changes WHERE (xact, id) `+op+` ($1, $2)`, upTo.Xact, upTo.ID)
	} else {
		_, err = s.db.ExecContext(ctx, `DELETE FROM authsvc_changes WHERE id `+op+` ?`, upTo.ID)
	}
	return n, unavailable(err)
}

// watch listens on PostgreSQL with the driver's listener (package
// postgres), which reconnects by itself and calls notify after each
// reconnection too, so the caller catches up on what it missed meanwhile.
func (s *sqlStore) watch(ctx context.Context, notify func()) error {
	if !s.postgres || s.driver.Listen == nil {
		return errNoWatch
	}
	err := s.driver.Listen(ctx, s.url, notifyChannel, s.roundTripTimeout(), notify)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil {
		err = errors.New("listener stopped")
	}
	// The driver's text may quote the URL it could not reach.
	return fmt.Errorf("%w: listen: %s", ErrUnavailable, dburl.Scrub(err.Error(), s.url))
}

func (s *sqlStore) tryLock(ctx context.Context, name string, f func(ctx context.Context) error) (bool, error) {
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
