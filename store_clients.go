package authsvc

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// clientRow is the clients table's row.
type clientRow struct {
	RowID              int64  `db:"id"`
	ClientID           string `db:"client_id"`
	SecretHash         string `db:"secret_hash"`
	OldSecretHash      string `db:"old_secret_hash"`
	OldSecretExpiresAt int64  `db:"old_secret_expires_at"`
	IsAdmin            bool   `db:"is_admin"`
	Scopes             string `db:"scopes"`
	Audiences          string `db:"audiences"`
	TokensValidAfter   int64  `db:"tokens_valid_after"`
	CreatedAt          int64  `db:"created_at"`
	UpdatedAt          int64  `db:"updated_at"`
	AuthMethod         string `db:"auth_method"`
	JWKS               string `db:"jwks"`
	JWKSURI            string `db:"jwks_uri"`
	Federated          string `db:"federated"` // JSON: [{"issuer","subject"}]
	DPoPBound          bool   `db:"dpop_bound_access_tokens"`
	TLSSubjectDN       string `db:"tls_client_auth_subject_dn"`
	TLSSANDNS          string `db:"tls_client_auth_san_dns"`
	TLSSANURI          string `db:"tls_client_auth_san_uri"`
	TLSSANIP           string `db:"tls_client_auth_san_ip"`
	TLSSANEmail        string `db:"tls_client_auth_san_email"`
	TLSBound           bool   `db:"tls_client_certificate_bound_access_tokens"`
}

const clientColumns = `id, client_id, secret_hash, old_secret_hash, old_secret_expires_at, is_admin, scopes, audiences, tokens_valid_after, created_at, updated_at, auth_method, jwks, jwks_uri, federated, dpop_bound_access_tokens, ` +
	`tls_client_auth_subject_dn, tls_client_auth_san_dns, tls_client_auth_san_uri, tls_client_auth_san_ip, tls_client_auth_san_email, tls_client_certificate_bound_access_tokens`

func (r *clientRow) record() *clientRecord {
	c := &clientRecord{
		Client: Client{
			ID: r.ClientID, RowID: r.RowID, IsAdmin: r.IsAdmin, Scopes: ParseScope(r.Scopes), Audiences: strings.Fields(r.Audiences),
			CreatedAt: time.Unix(r.CreatedAt, 0).UTC(), UpdatedAt: time.Unix(r.UpdatedAt, 0).UTC(),
		},
		SecretHash:    r.SecretHash,
		OldSecretHash: r.OldSecretHash,
	}
	c.AuthMethod, c.JWKSURI, c.DPoPBoundAccessTokens = r.AuthMethod, r.JWKSURI, r.DPoPBound
	c.TLSClientAuth = TLSClientAuth{SubjectDN: r.TLSSubjectDN, SANDNS: r.TLSSANDNS, SANURI: r.TLSSANURI, SANIP: r.TLSSANIP, SANEmail: r.TLSSANEmail}
	c.TLSClientCertificateBoundAccessTokens = r.TLSBound
	if c.AuthMethod == "" {
		c.AuthMethod = AuthSecretBasic
	}
	if r.JWKS != "" {
		c.JWKS = []byte(r.JWKS)
	}
	if r.Federated != "" {
		// Written by encodeFederated; unreadable means none rather than a
		// client that cannot be loaded (the lookup table still names it).
		json.Unmarshal([]byte(r.Federated), &c.FederatedCredentials)
	}
	if r.OldSecretExpiresAt != 0 {
		c.OldSecretExpiresAt = time.Unix(r.OldSecretExpiresAt, 0).UTC()
	}
	if r.TokensValidAfter != 0 {
		c.TokensValidAfter = time.Unix(r.TokensValidAfter, 0).UTC()
	}
	return c
}

// encodeFederated is the federated column of a record.
func encodeFederated(fcs []FederatedCredential) string {
	if len(fcs) == 0 {
		return ""
	}
	b, _ := json.Marshal(fcs)
	return string(b)
}

func authMethodOrDefault(m string) string {
	if m == "" {
		return AuthSecretBasic
	}
	return m
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func (s *sqlStore) createClient(ctx context.Context, c *clientRecord) error {
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
	args := []any{c.ID, c.SecretHash, c.OldSecretHash, unixOrZero(c.OldSecretExpiresAt), c.IsAdmin, strings.Join(c.Scopes, " "),
		strings.Join(c.Audiences, " "), unixOrZero(c.TokensValidAfter), created, updated,
		authMethodOrDefault(c.AuthMethod), string(c.JWKS), c.JWKSURI, encodeFederated(c.FederatedCredentials), c.DPoPBoundAccessTokens}
	args = append(args, c.TLSClientAuth.SubjectDN, c.TLSClientAuth.SANDNS, c.TLSClientAuth.SANURI, c.TLSClientAuth.SANIP, c.TLSClientAuth.SANEmail,
		c.TLSClientCertificateBoundAccessTokens)
	q := `INSERT INTO authsvc_clients (client_id, secret_hash, old_secret_hash, old_secret_expires_at, is_admin, scopes, audiences, tokens_valid_after, created_at, updated_at,
		auth_method, jwks, jwks_uri, federated, dpop_bound_access_tokens,
		tls_client_auth_subject_dn, tls_client_auth_san_dns, tls_client_auth_san_uri, tls_client_auth_san_ip, tls_client_auth_san_email, tls_client_certificate_bound_access_tokens)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id`
	if c.RowID != 0 {
		q = `INSERT INTO authsvc_clients (client_id, secret_hash, old_secret_hash, old_secret_expires_at, is_admin, scopes, audiences, tokens_valid_after, created_at, updated_at,
		auth_method, jwks, jwks_uri, federated, dpop_bound_access_tokens,
		tls_client_auth_subject_dn, tls_client_auth_san_dns, tls_client_auth_san_uri, tls_client_auth_san_ip, tls_client_auth_san_email, tls_client_certificate_bound_access_tokens, id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id`
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
	if err := s.putFederated(ctx, tx, c.ID, nil, c.FederatedCredentials); err != nil {
		return err
	}
	if err := s.logChange(ctx, tx, change{Kind: changeClient, Action: ActionClientCreated, ClientID: c.ID, RowID: id}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return unavailable(err)
	}
	c.RowID = id
	c.CreatedAt, c.UpdatedAt = time.Unix(created, 0).UTC(), time.Unix(updated, 0).UTC()
	return nil
}

// clientByIDSQL reads a client, on every miss of the client cache.
const clientByIDSQL = `SELECT ` + clientColumns + ` FROM authsvc_clients WHERE client_id = ?`

func (s *sqlStore) client(ctx context.Context, clientID string) (*clientRecord, error) {
	var r clientRow
	stmt, err := s.prepared(ctx, clientByIDSQL)
	if err != nil {
		return nil, err
	}
	err = stmt.GetContext(ctx, &r, clientID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrClientNotFound
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return r.record(), nil
}

func (s *sqlStore) clients(ctx context.Context) ([]clientRecord, error) {
	var rows []clientRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT `+clientColumns+` FROM authsvc_clients ORDER BY client_id`); err != nil {
		return nil, unavailable(err)
	}
	out := make([]clientRecord, len(rows))
	for i := range rows {
		out[i] = *rows[i].record()
	}
	return out, nil
}

func (s *sqlStore) scopeLists(ctx context.Context) ([]string, error) {
	var out []string
	err := s.db.SelectContext(ctx, &out, `SELECT DISTINCT scopes FROM authsvc_clients`)
	return out, unavailable(err)
}

// listClients returns up to limit clients whose client_id starts with
// prefix and comes after after, in byte order. The prefix is a range
// [prefix, prefixEnd(prefix)), so that the index answers it.
func (s *sqlStore) listClients(ctx context.Context, prefix, after string, limit int) ([]clientRecord, error) {
	col := "client_id"
	if s.postgres {
		col = `client_id COLLATE "C"` // the authsvc_clients_client_id_bytes index
	}
	q := `SELECT ` + clientColumns + ` FROM authsvc_clients WHERE ` + col + ` > ? AND ` + col + ` >= ?`
	args := []any{after, prefix}
	if end := prefixEnd(prefix); end != "" {
		q += ` AND ` + col + ` < ?`
		args = append(args, end)
	}
	q += ` ORDER BY ` + col + ` LIMIT ?`
	args = append(args, limit)
	var rows []clientRow
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(q), args...); err != nil {
		return nil, unavailable(err)
	}
	out := make([]clientRecord, len(rows))
	for i := range rows {
		out[i] = *rows[i].record()
	}
	return out, nil
}

// prefixEnd is the smallest string above every string that starts with
// prefix, in byte order; "" when there is none. It steps the last
// character, not the last byte, so that the bound stays valid UTF-8
// (PostgreSQL refuses any other text), and UTF-8's byte order is its code
// points' order, so the range is the same.
func prefixEnd(prefix string) string {
	r := []rune(prefix)
	for i := len(r) - 1; i >= 0; i-- {
		if r[i] < utf8.MaxRune {
			next := r[i] + 1
			if next >= 0xD800 && next <= 0xDFFF { // surrogates are not characters
				next = 0xE000
			}
			return string(r[:i]) + string(next)
		}
	}
	return ""
}

func (s *sqlStore) updateClient(ctx context.Context, clientID, action string, update func(*clientRecord) error) (*clientRecord, error) {
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
	old := slices.Clone(rec.FederatedCredentials)
	if err := update(rec); err != nil {
		return nil, err
	}
	rec.UpdatedAt = time.Now().UTC().Truncate(time.Second)
	_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE authsvc_clients SET secret_hash = ?, old_secret_hash = ?,
		old_secret_expires_at = ?, is_admin = ?, scopes = ?, audiences = ?, tokens_valid_after = ?, updated_at = ?,
		auth_method = ?, jwks = ?, jwks_uri = ?, federated = ?, dpop_bound_access_tokens = ?,
		tls_client_auth_subject_dn = ?, tls_client_auth_san_dns = ?, tls_client_auth_san_uri = ?, tls_client_auth_san_ip = ?, tls_client_auth_san_email = ?,
		tls_client_certificate_bound_access_tokens = ? WHERE id = ?`),
		rec.SecretHash, rec.OldSecretHash, unixOrZero(rec.OldSecretExpiresAt), rec.IsAdmin,
		strings.Join(rec.Scopes, " "), strings.Join(rec.Audiences, " "), unixOrZero(rec.TokensValidAfter), rec.UpdatedAt.Unix(),
		authMethodOrDefault(rec.AuthMethod), string(rec.JWKS), rec.JWKSURI, encodeFederated(rec.FederatedCredentials), rec.DPoPBoundAccessTokens,
		rec.TLSClientAuth.SubjectDN, rec.TLSClientAuth.SANDNS, rec.TLSClientAuth.SANURI, rec.TLSClientAuth.SANIP, rec.TLSClientAuth.SANEmail,
		rec.TLSClientCertificateBoundAccessTokens, rec.RowID)
	if err != nil {
		return nil, unavailable(err)
	}
	if err := s.putFederated(ctx, tx, rec.ID, old, rec.FederatedCredentials); err != nil {
		return nil, err
	}
	if err := s.logChange(ctx, tx, change{Kind: changeClient, Action: action, ClientID: rec.ID, RowID: rec.RowID}); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, unavailable(err)
	}
	return rec, nil
}

func (s *sqlStore) deleteClient(ctx context.Context, clientID string) error {
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
	if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM authsvc_federated_credentials WHERE client_id = ?`), clientID); err != nil {
		return unavailable(err)
	}
	if err := s.logChange(ctx, tx, change{Kind: changeClientDeleted, Action: ActionClientDeleted, ClientID: clientID, RowID: rowID}); err != nil {
		return err
	}
	return unavailable(tx.Commit())
}
