package authsvc

import (
	"context"
	"time"
)

// knownAddress is a row of authsvc_known_addresses: ClientID authenticated
// successfully from Addr, last at At (unix seconds).
type knownAddress struct {
	ClientID string `db:"client_id"`
	Addr     string `db:"addr"`
	At       int64  `db:"last_success_at"`
}

// rememberAddresses upserts rows in one transaction; a row never moves a
// pair's last_success_at back.
func (s *sqlStore) rememberAddresses(ctx context.Context, rows []knownAddress) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	defer tx.Rollback()
	stmt, err := tx.PreparexContext(ctx, tx.Rebind(`INSERT INTO authsvc_known_addresses (client_id, addr, last_success_at)
		VALUES (?, ?, ?) ON CONFLICT (client_id, addr) DO UPDATE SET last_success_at = excluded.last_success_at
		WHERE excluded.last_success_at > authsvc_known_addresses.last_success_at`))
	if err != nil {
		return unavailable(err)
	}
	defer stmt.Close()
	for _, r := range rows {
		if _, err := stmt.ExecContext(ctx, r.ClientID, r.Addr, r.At); err != nil {
			return unavailable(err)
		}
	}
	return unavailable(tx.Commit())
}

// knownAddresses returns up to limit pairs whose last success is at or
// after since, the most recent first.
func (s *sqlStore) knownAddresses(ctx context.Context, since time.Time, limit int) ([]knownAddress, error) {
	var out []knownAddress
	err := s.db.SelectContext(ctx, &out, s.db.Rebind(`SELECT client_id, addr, last_success_at FROM authsvc_known_addresses
		WHERE last_success_at >= ? ORDER BY last_success_at DESC LIMIT ?`), since.Unix(), limit)
	return out, unavailable(err)
}

// purgeKnownAddresses deletes the pairs whose last success is at or before
// before.
func (s *sqlStore) purgeKnownAddresses(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM authsvc_known_addresses WHERE last_success_at <= ?`), before.Unix())
	if err != nil {
		return 0, unavailable(err)
	}
	n, err := res.RowsAffected()
	return n, unavailable(err)
}
