package authsvc

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations
var migrationFiles embed.FS

// migrate applies the embedded migrations not yet applied (by version, so a
// gap left by a migration merged late is filled too), in version order, in
// one transaction. On PostgreSQL an advisory lock makes instances
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
	var applied []int
	if err := tx.SelectContext(ctx, &applied, `SELECT version FROM authsvc_schema_migrations`); err != nil {
		return fmt.Errorf("authsvc: migrate: %w", err)
	}
	done := map[int]bool{}
	current := 0
	for _, v := range applied {
		done[v] = true
		current = max(current, v)
	}
	if len(ms) > 0 && current > ms[len(ms)-1].version {
		return fmt.Errorf("authsvc: the database schema is version %d, newer than this build knows (%d): upgrade authd", current, ms[len(ms)-1].version)
	}
	for _, m := range ms {
		// Every migration not applied yet, not only those above the newest
		// applied: branches that add migrations side by side (0002 and 0003)
		// may reach a database in either order.
		if done[m.version] {
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
