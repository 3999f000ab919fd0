package authsvc

import (
	"context"
	"time"

	"github.com/jmoiron/sqlx"
)

type keyRow struct {
	Kid        string `db:"kid"`
	Alg        string `db:"alg"`
	PrivateKey string `db:"private_key"`
	CreatedAt  int64  `db:"created_at"`
	ActivateAt int64  `db:"activate_at"`
}

const keyColumns = `kid, alg, private_key, created_at, activate_at`

func (r keyRow) key() signingKey {
	return signingKey{ID: r.Kid, Alg: r.Alg, PrivateKey: r.PrivateKey,
		CreatedAt: time.Unix(r.CreatedAt, 0).UTC(), ActivateAt: time.Unix(r.ActivateAt, 0).UTC()}
}

func (s *sqlStore) ensureSigningKey(ctx context.Context, alg string, generate func() (signingKey, error)) ([]signingKey, error) {
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
		if err := s.insertKey(ctx, tx, k, ActionKeyCreated); err != nil {
			return nil, err
		}
	}
	keys, err := selectKeys(ctx, tx)
	if err != nil {
		return nil, err
	}
	return keys, unavailable(tx.Commit())
}

func (s *sqlStore) insertKey(ctx context.Context, tx *sqlx.Tx, k signingKey, action string) error {
	if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO authsvc_signing_keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?)`),
		k.ID, k.Alg, k.PrivateKey, k.CreatedAt.Unix(), k.ActivateAt.Unix()); err != nil {
		return unavailable(err)
	}
	return s.logChange(ctx, tx, change{Kind: changeKey, Action: action})
}

func selectKeys(ctx context.Context, q sqlx.QueryerContext) ([]signingKey, error) {
	var rows []keyRow
	if err := sqlx.SelectContext(ctx, q, &rows, `SELECT `+keyColumns+` FROM authsvc_signing_keys ORDER BY created_at, kid`); err != nil {
		return nil, unavailable(err)
	}
	out := make([]signingKey, len(rows))
	for i, r := range rows {
		out[i] = r.key()
	}
	return out, nil
}

func (s *sqlStore) signingKeys(ctx context.Context) ([]signingKey, error) {
	return selectKeys(ctx, s.db)
}

func (s *sqlStore) addSigningKey(ctx context.Context, k signingKey) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	defer tx.Rollback()
	if err := s.insertKey(ctx, tx, k, ActionKeyRotated); err != nil {
		return err
	}
	return unavailable(tx.Commit())
}

func (s *sqlStore) deleteSigningKeys(ctx context.Context, kids []string) error {
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
	if err := s.logChange(ctx, tx, change{Kind: changeKey, Action: ActionKeysRetired}); err != nil {
		return err
	}
	return unavailable(tx.Commit())
}
