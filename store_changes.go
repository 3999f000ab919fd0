package authsvc

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/authsvc/authsvc/internal/dburl"
)

// notifyChannel is the PostgreSQL channel changes are announced on.
const notifyChannel = "authsvc_changes"

// logChange appends a change inside tx. On PostgreSQL it first takes a
// transaction-scoped advisory lock, so change ids become visible in the
// order they were assigned (a follower never skips one committed late), and
// announces the change with NOTIFY, delivered at commit.
func (s *sqlStore) logChange(ctx context.Context, tx *sqlx.Tx, c change) error {
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

func (s *sqlStore) revokeToken(ctx context.Context, jti, clientID string, expiresAt time.Time) error {
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
	if err := s.logChange(ctx, tx, change{Kind: changeRevoke, ClientID: clientID, JTI: jti, ExpiresAt: expiresAt.Unix()}); err != nil {
		return err
	}
	return unavailable(tx.Commit())
}

func (s *sqlStore) revocations(ctx context.Context, now time.Time) ([]revocation, error) {
	var rows []struct {
		JTI       string `db:"jti"`
		ClientID  string `db:"client_id"`
		ExpiresAt int64  `db:"expires_at"`
	}
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT jti, client_id, expires_at FROM authsvc_revoked_tokens WHERE expires_at >= ?`), now.Unix())
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]revocation, len(rows))
	for i, r := range rows {
		out[i] = revocation{JTI: r.JTI, ClientID: r.ClientID, ExpiresAt: time.Unix(r.ExpiresAt, 0).UTC()}
	}
	return out, nil
}

func (s *sqlStore) changes(ctx context.Context, after int64, limit int) ([]change, error) {
	var out []change
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT id, kind, client_id, row_id, jti, expires_at, at
		FROM authsvc_changes WHERE id > ? ORDER BY id LIMIT ?`), after, limit)
	return out, unavailable(err)
}

func (s *sqlStore) deletions(ctx context.Context, since time.Time) ([]change, error) {
	var out []change
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT id, kind, client_id, row_id, jti, expires_at, at
		FROM authsvc_changes WHERE kind = ? AND at >= ? ORDER BY id`), changeClientDeleted, since.Unix())
	return out, unavailable(err)
}

func (s *sqlStore) lastChange(ctx context.Context) (int64, error) {
	var id int64
	err := s.db.GetContext(ctx, &id, `SELECT COALESCE(MAX(id), 0) FROM authsvc_changes`)
	return id, unavailable(err)
}

func (s *sqlStore) purge(ctx context.Context, now, keepChangesAfter time.Time) (int64, error) {
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
