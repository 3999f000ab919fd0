package authsvc

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// The store's side of secretless clients: federated credentials, trusted
// issuers and the assertions already used.

// putFederated replaces a client's rows in the lookup table of federated
// credentials (within the transaction that writes its record), refusing a
// pair that belongs to another client.
func (s *sqlStore) putFederated(ctx context.Context, tx *sqlx.Tx, clientID string, old, cur []FederatedCredential) error {
	if slices.Equal(old, cur) {
		return nil
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM authsvc_federated_credentials WHERE client_id = ?`), clientID); err != nil {
		return unavailable(err)
	}
	for _, fc := range cur {
		res, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO authsvc_federated_credentials (issuer, subject, client_id)
			VALUES (?, ?, ?) ON CONFLICT DO NOTHING`), fc.Issuer, fc.Subject, clientID)
		if err != nil {
			return unavailable(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return unavailable(err)
		} else if n == 0 {
			var owner string
			if err := tx.GetContext(ctx, &owner, tx.Rebind(`SELECT client_id FROM authsvc_federated_credentials WHERE issuer = ? AND subject = ?`),
				fc.Issuer, fc.Subject); err != nil {
				return unavailable(err)
			}
			return refuse(ErrInvalidArgument, "subject %q of issuer %q is already a federated credential of client %s", clipText(fc.Subject), clipText(fc.Issuer), owner)
		}
	}
	return nil
}

// federatedClient returns the client_id whose federated credential is
// (issuer, subject), or ErrClientNotFound.
func (s *sqlStore) federatedClient(ctx context.Context, issuer, subject string) (string, error) {
	var id string
	err := s.db.GetContext(ctx, &id, s.db.Rebind(`SELECT client_id FROM authsvc_federated_credentials WHERE issuer = ? AND subject = ?`), issuer, subject)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrClientNotFound
	}
	return id, unavailable(err)
}

// issuerRow is the trusted issuers table's row.
type issuerRow struct {
	Issuer      string `db:"issuer"`
	JWKS        string `db:"jwks"`
	JWKSURI     string `db:"jwks_uri"`
	Audiences   string `db:"audiences"`
	MaxLifetime int64  `db:"max_lifetime"` // seconds
	AllowReuse  bool   `db:"allow_reuse"`
	CreatedAt   int64  `db:"created_at"`
	UpdatedAt   int64  `db:"updated_at"`
}

const issuerColumns = `issuer, jwks, jwks_uri, audiences, max_lifetime, allow_reuse, created_at, updated_at`

func (r *issuerRow) issuer() *TrustedIssuer {
	ti := &TrustedIssuer{
		Issuer: r.Issuer, JWKSURI: r.JWKSURI, Audiences: strings.Fields(r.Audiences),
		MaxLifetime: time.Duration(r.MaxLifetime) * time.Second, AllowReuse: r.AllowReuse,
		CreatedAt: time.Unix(r.CreatedAt, 0).UTC(), UpdatedAt: time.Unix(r.UpdatedAt, 0).UTC(),
	}
	if r.JWKS != "" {
		ti.JWKS = []byte(r.JWKS)
	}
	return ti
}

// putIssuer stores a trusted issuer: a new one (ErrIssuerExists when it is
// there), or, with replace, over the one there (keeping its creation
// time). It sets ti's times.
func (s *sqlStore) putIssuer(ctx context.Context, ti *TrustedIssuer, replace bool) error {
	now := time.Now().Unix()
	conflict := `ON CONFLICT DO NOTHING`
	if replace {
		conflict = `ON CONFLICT (issuer) DO UPDATE SET jwks = excluded.jwks, jwks_uri = excluded.jwks_uri,
			audiences = excluded.audiences, max_lifetime = excluded.max_lifetime, allow_reuse = excluded.allow_reuse,
			updated_at = excluded.updated_at`
	}
	var created int64
	err := s.db.GetContext(ctx, &created, s.db.Rebind(`INSERT INTO authsvc_trusted_issuers (`+issuerColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) `+conflict+` RETURNING created_at`),
		ti.Issuer, string(ti.JWKS), ti.JWKSURI, strings.Join(ti.Audiences, " "), int64(ti.MaxLifetime/time.Second), ti.AllowReuse, now, now)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrIssuerExists
	}
	if err != nil {
		return unavailable(err)
	}
	ti.CreatedAt, ti.UpdatedAt = time.Unix(created, 0).UTC(), time.Unix(now, 0).UTC()
	return nil
}

func (s *sqlStore) issuer(ctx context.Context, issuer string) (*TrustedIssuer, error) {
	var r issuerRow
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT `+issuerColumns+` FROM authsvc_trusted_issuers WHERE issuer = ?`), issuer)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrIssuerNotFound
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return r.issuer(), nil
}

func (s *sqlStore) issuers(ctx context.Context) ([]TrustedIssuer, error) {
	var rows []issuerRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT `+issuerColumns+` FROM authsvc_trusted_issuers ORDER BY issuer`); err != nil {
		return nil, unavailable(err)
	}
	out := make([]TrustedIssuer, len(rows))
	for i := range rows {
		out[i] = *rows[i].issuer()
	}
	return out, nil
}

func (s *sqlStore) deleteIssuer(ctx context.Context, issuer string) error {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM authsvc_trusted_issuers WHERE issuer = ?`), issuer)
	if err != nil {
		return unavailable(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return unavailable(err)
	}
	if n == 0 {
		return ErrIssuerNotFound
	}
	return nil
}

// useJTI records that clientID used an assertion with jti, valid until
// expiresAt, and reports whether that is its first use: false when the
// same (client, jti) is recorded with an expiry not yet passed at now. One
// statement, so that two instances racing with one assertion cannot both
// see it as new.
func (s *sqlStore) useJTI(ctx context.Context, clientID, jti string, expiresAt, now time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO authsvc_used_jtis (client_id, jti, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (client_id, jti) DO UPDATE SET expires_at = excluded.expires_at WHERE authsvc_used_jtis.expires_at < ?`),
		clientID, jti, expiresAt.Unix(), now.Unix())
	if err != nil {
		return false, unavailable(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, unavailable(err)
	}
	return n == 1, nil
}

// purgeUsedJTIs deletes the used assertions that expired before now.
func (s *sqlStore) purgeUsedJTIs(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM authsvc_used_jtis WHERE expires_at < ?`), now.Unix())
	if err != nil {
		return 0, unavailable(err)
	}
	n, err := res.RowsAffected()
	return n, unavailable(err)
}
