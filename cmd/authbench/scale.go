package main

// The scale mode (issue 15): how authd's costs grow with the number of
// clients and live revocations in its store.
//
//	go run ./cmd/authbench -scale -clients 1000000 -revocations 1000000 [-store postgres]
//
// It seeds a fresh store with the project's own schema by bulk insert
// (COPY on PostgreSQL), not through the HTTP API, starts authd on it and
// reports: start to ready and RSS against an empty store, a /clients page's
// latency, the revocation feed's snapshot (bytes, parts, time), a
// RemoteVerifier's start and heap, POST /oauth/token throughput over
// random clients, POST /verify latency, and logouts per second from 16
// callers on one instance and (PostgreSQL) on two.

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	_ "github.com/lib/pq"  // the "postgres" driver the seeding COPY runs on
	_ "modernc.org/sqlite" // to seed the benchmark's SQLite store

	"github.com/authsvc/authsvc"
)

// scaleReport is what the scale mode measured; -json writes it.
type scaleReport struct {
	Time        time.Time `json:"time"`
	GoVersion   string    `json:"go_version"`
	CPUs        int       `json:"cpus"`
	Store       string    `json:"store"`
	Clients     int       `json:"clients"`
	Revocations int       `json:"revocations"`
	Cutoffs     int       `json:"cutoffs"`
	SeedS       float64   `json:"seed_s"`

	EmptyReadyMs float64 `json:"empty_start_to_ready_ms"`
	EmptyRSSMB   float64 `json:"empty_rss_mb"`
	ReadyMs      float64 `json:"start_to_ready_ms"`
	LoadedMs     float64 `json:"start_to_revocations_in_memory_ms"`
	RSSMB        float64 `json:"rss_idle_mb"`
	// RSSPerRevocationB is the idle RSS over the empty store's, per live
	// revocation: everything the seeded store costs at start (clients are
	// read on use), so an upper bound of a revocation's share.
	RSSPerRevocationB float64 `json:"rss_per_revocation_b"`

	ClientsPageP50Ms float64 `json:"clients_page_p50_ms"`
	ClientsPageMaxMs float64 `json:"clients_page_max_ms"`

	SnapshotBytes          int64   `json:"snapshot_bytes"`
	SnapshotParts          int     `json:"snapshot_parts"`
	SnapshotS              float64 `json:"snapshot_s"`
	SnapshotPerRevocationB float64 `json:"snapshot_bytes_per_revocation"`

	RemoteStartS          float64 `json:"remote_verifier_start_s"`
	RemoteHeapPerRevocDel float64 `json:"remote_verifier_heap_per_revocation_b"`

	Token  result `json:"token"`
	Verify result `json:"verify"`
	// TokenVsBaseline (-baseline-clients): Token against a smaller store,
	// in turns.
	TokenVsBaseline *baselineReport `json:"token_vs_baseline,omitempty"`

	Callers    int     `json:"callers"`
	LogoutsOne float64 `json:"logouts_per_s_one_instance"`
	LogoutsTwo float64 `json:"logouts_per_s_two_instances,omitempty"`
	// LogoutCPU is the CPU a logout cost, one instance: where the time of
	// a machine that runs the load, authd and the database goes.
	LogoutCPU cpuMeter `json:"logout_cpu"`
	// LogoutCPUTwo: the same with two instances (authd is both together).
	LogoutCPUTwo *cpuMeter `json:"logout_cpu_two_instances,omitempty"`
	// With -instance-cpu: logouts again with each instance held to that
	// many cores, as instances on machines of their own that share the
	// database. On a machine that one instance already saturates, two can
	// only share its cores; held each to its own share, they show whether
	// the write path lets instances add up.
	InstanceCPU       float64 `json:"instance_cpu,omitempty"`
	LogoutsOneLimited float64 `json:"logouts_per_s_one_instance_limited,omitempty"`
	LogoutsTwoLimited float64 `json:"logouts_per_s_two_instances_limited,omitempty"`

	RSSAfterMB float64 `json:"rss_after_mb"` // after the load: the client cache filled
}

// runScale runs the scale mode. Every seeded client shares the admin's
// generated secret (its stored hash is copied): a generated secret is
// checked with SHA-256, so token requests measure the lookups, not
// argon2id.
func runScale(ctx context.Context, o options, stdout io.Writer) error {
	readyWithin = 10 * time.Minute
	dir, err := os.MkdirTemp("", "authbench-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rep := &scaleReport{Time: time.Now().UTC().Truncate(time.Second), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(),
		Store: o.store, Clients: o.clients, Revocations: o.revocations, Callers: o.conns}
	bin := o.authd
	if bin == "" {
		fmt.Fprintln(os.Stderr, "authbench: building cmd/authd")
		if bin, err = buildAuthd(ctx, dir); err != nil {
			return err
		}
	}
	// The empty store's figures, the baseline, are taken before seeding.
	var proc *authdProc
	st, err := newScaleStore(ctx, o, bin, dir, o.clients, o.revocations, func(env []string) error {
		p, ready, err := startAuthd(ctx, bin, dir, env)
		if err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
		rep.EmptyReadyMs = ms(ready)
		rep.EmptyRSSMB, _ = p.memory()
		p.stop()
		return nil
	})
	if err != nil {
		return err
	}
	defer st.drop()
	env, adminID, secret := st.env, st.adminID, st.secret
	rep.Cutoffs, rep.SeedS = st.cutoffs, st.seedS

	fmt.Fprintln(os.Stderr, "authbench: starting authd on the seeded store")
	proc, ready, err := startAuthd(ctx, bin, dir, env)
	if err != nil {
		return err
	}
	defer func() { proc.stop() }()
	rep.ReadyMs = ms(ready)
	// Ready is before millions of revocations are in memory (authd checks
	// tokens against the store until then); the feed serves its snapshot
	// once they are.
	loaded, err := awaitSnapshot(ctx, "http://"+proc.addr, adminID, secret)
	if err != nil {
		return err
	}
	rep.LoadedMs = ms(ready + loaded)
	rep.LogoutCPU = cpuMeter{authd: []int{proc.cmd.Process.Pid}, postgres: st.postgresPids}
	time.Sleep(time.Second) // what start left for the collector goes first
	rep.RSSMB, _ = proc.memory()
	if o.revocations > 0 {
		rep.RSSPerRevocationB = round((rep.RSSMB-rep.EmptyRSSMB)*1e6/float64(o.revocations), 1)
	}
	base := "http://" + proc.addr
	a := &api{base: base, client: &http.Client{Timeout: time.Minute}}

	if err := scaleClientsPage(a, adminID, secret, o.clients, rep); err != nil {
		return err
	}
	if err := scaleSnapshot(ctx, base, adminID, secret, rep); err != nil {
		return err
	}
	if err := scaleRemote(ctx, base, adminID, secret, rep); err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "authbench: POST /oauth/token over random clients, %s\n", o.duration)
	host := proc.addr
	rep.Token = run(host, o.conns, o.warmup, o.duration, func(i int) worker {
		return &randomClientWorker{host: host, secret: secret, clients: o.clients, admin: adminID,
			r: rand.New(rand.NewPCG(uint64(i), 1))}
	})
	rep.Token.Route = "POST /oauth/token, random clients"
	if o.baselineClients > 0 {
		if rep.TokenVsBaseline, err = tokenVsBaseline(ctx, o, bin, dir, host, adminID, secret); err != nil {
			return err
		}
	}
	tokens, err := issueTokens(a, adminID, secret, o.clients, o.conns)
	if err != nil {
		return err
	}
	rep.Verify = run(host, o.conns, o.warmup, o.duration, func(i int) worker {
		return &staticWorker{req: verifyRequest(host, tokens[i%len(tokens)]), status: http.StatusOK, contains: []byte(`"jti":"`)}
	})
	rep.Verify.Route = "POST /verify"

	logouts := o.logouts
	fmt.Fprintf(os.Stderr, "authbench: %d logouts from %d callers, one instance\n", logouts, o.conns)
	if rep.LogoutsOne, err = logoutRate(ctx, a, []*api{a}, adminID, secret, o.clients, logouts, o.conns, &rep.LogoutCPU); err != nil {
		return err
	}
	if o.store == "postgres" {
		if err := twoInstances(ctx, o, bin, dir, env, proc, a, st, rep); err != nil {
			return err
		}
	}
	rep.RSSAfterMB, _ = proc.memory()
	printScale(stdout, rep)
	return writeJSON(o.jsonFile, stdout, rep)
}

// twoInstances measures logouts with a second instance beside proc, and,
// with -instance-cpu, one and then two instances each held to that many
// cores (one first, alone: a second instance would follow its logouts).
func twoInstances(ctx context.Context, o options, bin, dir string, env []string, proc *authdProc, a *api, st *scaleStore, rep *scaleReport) error {
	var releases []func()
	release := func() {
		for _, r := range releases {
			r()
		}
		releases = nil
	}
	defer release()
	limit := func(p *authdProc) error {
		r, err := limitCPU(p.cmd.Process.Pid, o.instanceCPU)
		if err != nil {
			return fmt.Errorf("-instance-cpu: %w", err)
		}
		releases = append(releases, r)
		// The Go runtime reads its CPU limit again now and then
		// (GOMAXPROCS follows a cgroup's quota): let it see the new one.
		time.Sleep(2 * time.Second)
		return nil
	}
	var err error
	if o.instanceCPU > 0 {
		rep.InstanceCPU = o.instanceCPU
		if err := limit(proc); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "authbench: %d logouts from %d callers, one instance held to %g cores\n", o.logouts, o.conns, o.instanceCPU)
		if rep.LogoutsOneLimited, err = logoutRate(ctx, a, []*api{a}, st.adminID, st.secret, o.clients, o.logouts, o.conns, nil); err != nil {
			return err
		}
	}
	// Behind one address, as a fleet is: the same issuer.
	second, _, err := startAuthd(ctx, bin, dir, append(env, "AUTHSVC_ISSUER="+a.base))
	if err != nil {
		return err
	}
	defer second.stop()
	b := &api{base: "http://" + second.addr, client: a.client}
	if _, err := awaitSnapshot(ctx, b.base, st.adminID, st.secret); err != nil { // its revocations in memory
		return err
	}
	if o.instanceCPU > 0 {
		if err := limit(second); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "authbench: %d logouts from %d callers, two instances each held to %g cores\n", o.logouts, o.conns, o.instanceCPU)
		if rep.LogoutsTwoLimited, err = logoutRate(ctx, a, []*api{a, b}, st.adminID, st.secret, o.clients, o.logouts, o.conns, nil); err != nil {
			return err
		}
		release()
		time.Sleep(2 * time.Second) // GOMAXPROCS back to the machine's
	}
	fmt.Fprintf(os.Stderr, "authbench: %d logouts from %d callers, two instances\n", o.logouts, o.conns)
	rep.LogoutCPUTwo = &cpuMeter{authd: []int{proc.cmd.Process.Pid, second.cmd.Process.Pid}, postgres: st.postgresPids}
	rep.LogoutsTwo, err = logoutRate(ctx, a, []*api{a, b}, st.adminID, st.secret, o.clients, o.logouts, o.conns, rep.LogoutCPUTwo)
	return err
}

// scaleStore is a fresh store of the scale mode: its authd environment, an
// admin, and the seeded clients and revocations.
type scaleStore struct {
	env             []string
	adminID, secret string
	cutoffs         int
	seedS           float64
	drop            func()
	// postgresPids lists the server processes serving the store's
	// database (nil on SQLite).
	postgresPids func() []int
}

// newScaleStore makes a fresh store (a database on -postgres, or a SQLite
// file in dir) with an admin, calls beforeSeed (if not nil) with its
// environment, and seeds it.
func newScaleStore(ctx context.Context, o options, bin, dir string, clients, revocations int, beforeSeed func(env []string) error) (st *scaleStore, err error) {
	st = &scaleStore{drop: func() {}}
	dbURL, driverName, dsn := "sqlite:"+dir+"/authd.db", "sqlite", dir+"/authd.db"
	if o.store == "postgres" {
		pg, err := createPostgres(ctx, o.postgres)
		if err != nil {
			return nil, err
		}
		st.drop = func() {
			if err := pg.drop(); err != nil {
				fmt.Fprintf(os.Stderr, "authbench: drop database %s: %v\n", pg.name, err)
			}
		}
		dbURL, driverName, dsn = pg.url, "postgres", pg.url
		st.postgresPids = func() []int { return pg.backends() }
	}
	defer func() {
		if err != nil {
			st.drop()
		}
	}()
	st.env = []string{"AUTHSVC_DATABASE_URL=" + dbURL, "AUTHSVC_LOG_LEVEL=error", "AUTHSVC_THROTTLE=off"}
	if st.adminID, st.secret, err = createAdmin(ctx, bin, dir, st.env); err != nil {
		return nil, err
	}
	if beforeSeed != nil {
		if err := beforeSeed(st.env); err != nil {
			return nil, err
		}
	}
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	fmt.Fprintf(os.Stderr, "authbench: seeding %d clients and %d revocations\n", clients, revocations)
	t0 := time.Now()
	if st.cutoffs, err = seed(ctx, db, o.store == "postgres", st.adminID, clients, revocations); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	st.seedS = round(time.Since(t0).Seconds(), 1)
	return st, nil
}

// tokenVsBaseline seeds a second store of -baseline-clients clients (and
// revocations in the same proportion), starts authd on it, and measures
// POST /oauth/token over random clients on the main instance (at host) and
// on it in turns, main-baseline-baseline-main, so that both sizes see the
// same machine: the ratio of each round is side by side.
func tokenVsBaseline(ctx context.Context, o options, bin, dir, host, adminID, secret string) (*baselineReport, error) {
	bdir := filepath.Join(dir, "baseline")
	if err := os.Mkdir(bdir, 0o700); err != nil {
		return nil, err
	}
	brev := int(int64(o.revocations) * int64(o.baselineClients) / int64(max(o.clients, 1)))
	st, err := newScaleStore(ctx, o, bin, bdir, o.baselineClients, brev, nil)
	if err != nil {
		return nil, err
	}
	defer st.drop()
	proc, _, err := startAuthd(ctx, bin, bdir, st.env)
	if err != nil {
		return nil, err
	}
	defer proc.stop()
	if _, err := awaitSnapshot(ctx, "http://"+proc.addr, st.adminID, st.secret); err != nil {
		return nil, err
	}
	tokens := func(host, secret, admin string, clients int) float64 {
		r := run(host, o.conns, o.warmup, o.duration, func(i int) worker {
			return &randomClientWorker{host: host, secret: secret, clients: clients, admin: admin,
				r: rand.New(rand.NewPCG(uint64(i), 2))}
		})
		return r.RPS
	}
	rep := &baselineReport{Clients: o.baselineClients, Revocations: brev}
	fmt.Fprintf(os.Stderr, "authbench: POST /oauth/token, %d clients against %d, in turns\n", o.clients, o.baselineClients)
	const rounds = 3
	for i := range rounds {
		var m, b float64
		if i%2 == 0 {
			m = tokens(host, secret, adminID, o.clients)
			b = tokens(proc.addr, st.secret, st.adminID, o.baselineClients)
		} else {
			b = tokens(proc.addr, st.secret, st.adminID, o.baselineClients)
			m = tokens(host, secret, adminID, o.clients)
		}
		rep.Rounds = append(rep.Rounds, [2]float64{m, b})
		if b > 0 {
			rep.Ratios = append(rep.Ratios, round(m/b, 2))
		}
	}
	return rep, nil
}

// baselineReport is POST /oauth/token over random clients at -clients
// against -baseline-clients, measured in turns.
type baselineReport struct {
	Clients     int          `json:"baseline_clients"`
	Revocations int          `json:"baseline_revocations"`
	Rounds      [][2]float64 `json:"rounds_rps"` // each round: this store's req/s, the baseline's
	Ratios      []float64    `json:"ratios"`
}

// seed inserts clients scale-000000000… (every thousandth logged out
// everywhere a minute ago) and revocations spread over them, expiring
// over the next hour. It returns how many cut-offs it set.
func seed(ctx context.Context, db *sql.DB, postgres bool, adminID string, clients, revocations int) (int, error) {
	var hash string
	if err := db.QueryRowContext(ctx, rebind(postgres, `SELECT secret_hash FROM authsvc_clients WHERE client_id = ?`), adminID).Scan(&hash); err != nil {
		return 0, err
	}
	now := time.Now().Unix()
	cutoffs := 0
	client := func(i int) (id string, cutoff int64) {
		if i%1000 == 999 {
			cutoff = now - 60
		}
		return fmt.Sprintf("scale-%09d", i), cutoff
	}
	r := rand.New(rand.NewPCG(15, 15))
	revocation := func() (jti, clientID string, exp int64) {
		var raw [16]byte
		for i := 0; i < 16; i += 8 {
			v := r.Uint64()
			for j := range 8 {
				raw[i+j] = byte(v >> (8 * j))
			}
		}
		id, _ := client(r.IntN(max(clients, 1)))
		return base64.RawURLEncoding.EncodeToString(raw[:]), id, now + 600 + r.Int64N(3000)
	}
	for i := range clients {
		if _, c := client(i); c != 0 {
			cutoffs++
		}
	}
	if postgres {
		return cutoffs, seedPostgres(ctx, db, clients, revocations, hash, now, client, revocation)
	}
	return cutoffs, seedSQLite(ctx, db, clients, revocations, hash, now, client, revocation)
}

func rebind(postgres bool, q string) string {
	if postgres {
		return strings.Replace(q, "?", "$1", 1)
	}
	return q
}

func seedPostgres(ctx context.Context, db *sql.DB, clients, revocations int, hash string, now int64,
	client func(int) (string, int64), revocation func() (string, string, int64)) error {
	// COPY in batches, each its own transaction: one transaction of ten
	// million rows holds the server's xmin horizon for minutes, and every
	// change-log reader on the server (authd's followers, the tests of
	// another checkout) waits behind it (docs/design.md §9).
	copyRows := func(table string, cols []string, n int, row func(i int) []any) error {
		for from := 0; from < n; from += copyBatch {
			if err := copyBatchRows(ctx, db, table, cols, from, min(n, from+copyBatch), row); err != nil {
				return err
			}
		}
		return nil
	}
	if err := copyRows("authsvc_clients", []string{"client_id", "secret_hash", "scopes", "tokens_valid_after", "created_at", "updated_at"}, clients,
		func(i int) []any {
			id, cutoff := client(i)
			return []any{id, hash, "scale:read", cutoff, now, now}
		}); err != nil {
		return err
	}
	if err := copyRows("authsvc_revoked_tokens", []string{"jti", "client_id", "expires_at"}, revocations,
		func(int) []any {
			jti, id, exp := revocation()
			return []any{jti, id, exp}
		}); err != nil {
		return err
	}
	// As a store that has lived: rows frozen and visible to all, statistics
	// fresh. Without it autovacuum works through the freshly copied
	// millions while the load is measured, and every first read of a row
	// sets its hint bits (and dirties its page): a cost the smaller store
	// pays for a moment and the larger one for the whole run.
	_, err := db.ExecContext(ctx, `VACUUM (FREEZE, ANALYZE)`)
	return err
}

// copyBatch is how many rows one transaction of seedPostgres copies.
const copyBatch = 200_000

// copyBatchRows copies rows [from, to) into table in one transaction.
func copyBatchRows(ctx context.Context, db *sql.DB, table string, cols []string, from, to int, row func(i int) []any) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// The table and columns are this file's own names, never input
	// (pq.CopyIn, which built this, is deprecated).
	stmt, err := tx.PrepareContext(ctx, "COPY "+table+" ("+strings.Join(cols, ", ")+") FROM STDIN")
	if err != nil {
		return err
	}
	for i := from; i < to; i++ {
		if _, err := stmt.ExecContext(ctx, row(i)...); err != nil {
			return err
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return err
	}
	if err := stmt.Close(); err != nil {
		return err
	}
	return tx.Commit()
}

func seedSQLite(ctx context.Context, db *sql.DB, clients, revocations int, hash string, now int64,
	client func(int) (string, int64), revocation func() (string, string, int64)) error {
	insert := func(q string, n int, args func(i int) []any) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		stmt, err := tx.PrepareContext(ctx, q)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range n {
			if _, err := stmt.ExecContext(ctx, args(i)...); err != nil {
				return err
			}
		}
		return tx.Commit()
	}
	if err := insert(`INSERT INTO authsvc_clients (client_id, secret_hash, scopes, tokens_valid_after, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`, clients,
		func(i int) []any {
			id, cutoff := client(i)
			return []any{id, hash, "scale:read", cutoff, now, now}
		}); err != nil {
		return err
	}
	return insert(`INSERT INTO authsvc_revoked_tokens (jti, client_id, expires_at) VALUES (?, ?, ?)`, revocations,
		func(int) []any {
			jti, id, exp := revocation()
			return []any{jti, id, exp}
		})
}

// scaleClientsPage times GET /clients pages: first pages of id prefixes
// spread over the clients, and the page after each.
func scaleClientsPage(a *api, adminID, secret string, clients int, rep *scaleReport) error {
	admin, err := a.token(adminID, secret)
	if err != nil {
		return err
	}
	var took []time.Duration
	for i := range 20 {
		prefix := fmt.Sprintf("scale-%09d", i*max(clients, 1)/20)[:12] // scale-NNNNNN: a thousand clients
		cursor := ""
		for range 2 {
			q := url.Values{"limit": {"100"}, "prefix": {prefix}}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			req, _ := http.NewRequest("GET", a.base+"/clients?"+q.Encode(), nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			t0 := time.Now()
			status, body, err := a.send(req)
			took = append(took, time.Since(t0))
			if err != nil || status != http.StatusOK {
				return fmt.Errorf("GET /clients: %d %v %v", status, body, err)
			}
			cursor, _ = body["next_cursor"].(string)
			if cursor == "" {
				break
			}
		}
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	rep.ClientsPageP50Ms, rep.ClientsPageMaxMs = ms(took[len(took)/2]), ms(took[len(took)-1])
	return nil
}

// awaitSnapshot asks for the feed's snapshot until authd serves it (it
// answers 503 while it reads the revocations into memory) and returns how
// long that took.
func awaitSnapshot(ctx context.Context, base, id, secret string) (time.Duration, error) {
	t0 := time.Now()
	for ctx.Err() == nil && time.Since(t0) < readyWithin {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/revocations?v=2&after=0", nil)
		req.SetBasicAuth(id, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return time.Since(t0), nil
		case http.StatusServiceUnavailable:
			time.Sleep(20 * time.Millisecond)
		default:
			return 0, fmt.Errorf("snapshot: %s", resp.Status)
		}
	}
	return 0, fmt.Errorf("no snapshot after %s", readyWithin)
}

// scaleSnapshot reads the feed's snapshot, every part, as a verifier does.
func scaleSnapshot(ctx context.Context, base, id, secret string, rep *scaleReport) error {
	t0 := time.Now()
	u := base + "/revocations?v=2&after=0"
	keys := 0
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
		req.SetBasicAuth(id, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		var page struct {
			Cursor      int64 `json:"cursor"`
			NextPart    int   `json:"next_part"`
			RevokedKeys []struct {
				Keys []byte `json:"keys"`
			} `json:"revoked_keys"`
		}
		cr := &countingReader{r: resp.Body}
		err = json.NewDecoder(cr).Decode(&page)
		io.Copy(io.Discard, cr)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("snapshot: %s %v", resp.Status, err)
		}
		rep.SnapshotBytes += cr.n
		rep.SnapshotParts++
		for _, g := range page.RevokedKeys {
			keys += len(g.Keys) / 16
		}
		if page.NextPart == 0 {
			break
		}
		u = fmt.Sprintf("%s/revocations?v=2&snapshot=%d&part=%d", base, page.Cursor, page.NextPart)
	}
	rep.SnapshotS = round(time.Since(t0).Seconds(), 2)
	if keys > 0 {
		rep.SnapshotPerRevocationB = round(float64(rep.SnapshotBytes)/float64(keys), 1)
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// scaleRemote starts a RemoteVerifier in this process and measures its
// start and the heap it holds.
func scaleRemote(ctx context.Context, base, id, secret string, rep *scaleReport) error {
	before := heapInUse()
	t0 := time.Now()
	v, err := authsvc.NewRemoteVerifier(ctx, base, authsvc.WithClientCredentials(id, secret))
	if err != nil {
		return err
	}
	rep.RemoteStartS = round(time.Since(t0).Seconds(), 2)
	if rep.Revocations > 0 {
		rep.RemoteHeapPerRevocDel = round(float64(heapInUse()-before)/float64(rep.Revocations), 1)
	}
	runtime.KeepAlive(v)
	return v.Close()
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// randomClientWorker asks tokens for a random seeded client each time.
type randomClientWorker struct {
	host, secret, admin string
	clients             int
	r                   *rand.Rand
}

func (w *randomClientWorker) next() request {
	id := w.admin
	if w.clients > 0 {
		id = fmt.Sprintf("scale-%09d", w.r.IntN(w.clients))
	}
	cred := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(w.secret)))
	return newRequest("POST", w.host, "/oauth/token", map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Basic " + cred}, "grant_type=client_credentials")
}

func (w *randomClientWorker) check(resp response) bool {
	return resp.status == http.StatusOK && strings.Contains(string(resp.body), `"access_token":"`)
}

// issueTokens gets n tokens of random seeded clients (of the admin when
// there are none).
func issueTokens(a *api, adminID, secret string, clients, n int) ([]string, error) {
	r := rand.New(rand.NewPCG(9, uint64(n)))
	out := make([]string, n)
	for i := range out {
		id := adminID
		if clients > 0 {
			id = fmt.Sprintf("scale-%09d", r.IntN(clients))
		}
		tok, err := a.token(id, secret)
		if err != nil {
			return nil, fmt.Errorf("token of %s: %w", id, err)
		}
		out[i] = tok
	}
	return out, nil
}

// logoutRate issues n tokens, then logs them out from callers concurrent
// callers spread over the instances, and returns logouts per second.
func logoutRate(ctx context.Context, issuer *api, instances []*api, adminID, secret string, clients, n, callers int, cpu *cpuMeter) (float64, error) {
	var tokens []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	var issueErr error
	for range callers {
		wg.Go(func() {
			mine, err := issueTokens(issuer, adminID, secret, clients, n/callers)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				issueErr = err
			}
			tokens = append(tokens, mine...)
		})
	}
	wg.Wait()
	if issueErr != nil {
		return 0, issueErr
	}
	// Requests are prepared and sent on one keep-alive connection a caller
	// (the load generator's, see load.go): net/http's client keeps two idle
	// connections a host, so 14 of 16 callers dialled anew for every logout
	// and the rate measured connection set-up more than logouts. Any caller
	// may send any of them, whichever instance it talks to: their Host is
	// the issuer's, as behind a fleet's one address.
	host := strings.TrimPrefix(issuer.base, "http://")
	reqs := make([]request, len(tokens))
	for i, tok := range tokens {
		reqs[i] = newRequest("POST", host, "/logout",
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, url.Values{"token": {tok}}.Encode())
	}
	var next, failed atomic.Int64
	var firstErr atomic.Value
	if cpu != nil {
		cpu.start()
	}
	t0 := time.Now()
	deadline := t0.Add(time.Minute + time.Duration(len(tokens))*2*time.Millisecond)
	for c := range callers {
		api := instances[c%len(instances)]
		wg.Go(func() {
			cn := &conn{addr: strings.TrimPrefix(api.base, "http://")}
			defer cn.closeConn()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(tokens) {
					return
				}
				resp, err := cn.do(reqs[i], deadline)
				if err != nil || resp.status != http.StatusOK {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %q %v", resp.status, resp.body, err))
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	if cpu != nil {
		cpu.stop(len(tokens))
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if f := failed.Load(); f > 0 {
		return 0, fmt.Errorf("%d of %d logouts failed, first: %v", f, len(tokens), firstErr.Load())
	}
	return round(float64(len(tokens))/elapsed.Seconds(), 0), nil
}

func writeJSON(file string, stdout io.Writer, v any) error {
	if file == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if file == "-" {
		_, err = stdout.Write(b)
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

func printScale(w io.Writer, r *scaleReport) {
	fmt.Fprintf(w, "authd scale, %s store: %d clients, %d live revocations (%d cut-offs); seeded in %.1f s\n", r.Store, r.Clients, r.Revocations, r.Cutoffs, r.SeedS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "start to ready\t%.0f ms (empty store %.0f ms); revocations in memory after %.0f ms\n", r.ReadyMs, r.EmptyReadyMs, r.LoadedMs)
	fmt.Fprintf(tw, "idle RSS\t%.1f MB (empty store %.1f MB): %.1f B a live revocation, at most\n", r.RSSMB, r.EmptyRSSMB, r.RSSPerRevocationB)
	fmt.Fprintf(tw, "GET /clients page (limit 100, prefix)\tp50 %.1f ms, max %.1f ms\n", r.ClientsPageP50Ms, r.ClientsPageMaxMs)
	fmt.Fprintf(tw, "feed snapshot\t%d bytes in %d parts, %.2f s: %.1f B a revocation\n", r.SnapshotBytes, r.SnapshotParts, r.SnapshotS, r.SnapshotPerRevocationB)
	fmt.Fprintf(tw, "NewRemoteVerifier\t%.2f s, heap %.1f B a revocation\n", r.RemoteStartS, r.RemoteHeapPerRevocDel)
	fmt.Fprintf(tw, "%s\t%.0f req/s, p99 %.0f µs, %d errors %s\n", r.Token.Route, r.Token.RPS, r.Token.P99us, r.Token.Errors, r.Token.FirstError)
	if b := r.TokenVsBaseline; b != nil {
		fmt.Fprintf(tw, "  against %d clients, in turns\t", b.Clients)
		for i, rd := range b.Rounds {
			fmt.Fprintf(tw, "%.0f vs %.0f req/s (%.2f×)  ", rd[0], rd[1], b.Ratios[i])
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintf(tw, "%s\t%.0f req/s, p99 %.0f µs, %d errors %s\n", r.Verify.Route, r.Verify.RPS, r.Verify.P99us, r.Verify.Errors, r.Verify.FirstError)
	fmt.Fprintf(tw, "logouts, %d callers\tone instance %.0f/s", r.Callers, r.LogoutsOne)
	if r.LogoutsTwo > 0 {
		fmt.Fprintf(tw, ", two instances %.0f/s", r.LogoutsTwo)
	}
	fmt.Fprintf(tw, "\n")
	c := r.LogoutCPU
	fmt.Fprintf(tw, "  CPU a logout, one instance\tauthd %.0f µs, PostgreSQL %.0f µs, authbench %.0f µs (%.1f of %d cores busy)\n",
		c.AuthdUs, c.PostgresUs, c.LoadUs, c.CoresBusy, r.CPUs)
	if c := r.LogoutCPUTwo; c != nil {
		fmt.Fprintf(tw, "  CPU a logout, two instances\tauthd %.0f µs (both), PostgreSQL %.0f µs, authbench %.0f µs (%.1f of %d cores busy)\n",
			c.AuthdUs, c.PostgresUs, c.LoadUs, c.CoresBusy, r.CPUs)
	}
	if r.InstanceCPU > 0 {
		fmt.Fprintf(tw, "  each instance held to %g cores\tone instance %.0f/s, two instances %.0f/s (%.2f×)\n",
			r.InstanceCPU, r.LogoutsOneLimited, r.LogoutsTwoLimited, r.LogoutsTwoLimited/max(r.LogoutsOneLimited, 1))
	}
	fmt.Fprintf(tw, "RSS after the load\t%.1f MB\n", r.RSSAfterMB)
	tw.Flush()
}

// cpuMeter measures the CPU time that authd, the store's PostgreSQL
// backends and authbench itself spend between start and stop, per
// operation. A rate on a shared machine depends on what else runs; the CPU
// an operation costs does not (much).
type cpuMeter struct {
	authd    []int // the instances
	postgres func() []int

	AuthdUs    float64 `json:"authd_us"`
	PostgresUs float64 `json:"postgres_us"`
	LoadUs     float64 `json:"authbench_us"`
	CoresBusy  float64 `json:"cores_busy"` // all three, over the wall time

	t0            time.Time
	authd0, self0 float64
	pg0           map[int]float64
}

func (m *cpuMeter) start() {
	m.t0, m.authd0, m.self0 = time.Now(), procsCPU(m.authd), procCPU(os.Getpid())
	m.pg0 = map[int]float64{}
	if m.postgres != nil {
		for _, pid := range m.postgres() {
			m.pg0[pid] = procCPU(pid)
		}
	}
}

func (m *cpuMeter) stop(ops int) {
	wall := time.Since(m.t0).Seconds()
	authd, self, pg := procsCPU(m.authd)-m.authd0, procCPU(os.Getpid())-m.self0, 0.0
	if m.postgres != nil {
		// A backend that started meanwhile counts from zero; one that
		// ended meanwhile is lost (authd's pool keeps its connections).
		for _, pid := range m.postgres() {
			pg += procCPU(pid) - m.pg0[pid]
		}
	}
	per := 1e6 / float64(max(ops, 1))
	m.AuthdUs, m.PostgresUs, m.LoadUs = round(authd*per, 0), round(pg*per, 0), round(self*per, 0)
	m.CoresBusy = round((authd+pg+self)/wall, 1)
}

// procsCPU is the CPU seconds the processes pids have used together.
func procsCPU(pids []int) float64 {
	var sum float64
	for _, pid := range pids {
		sum += procCPU(pid)
	}
	return sum
}

// procCPU is the user and system CPU seconds process pid has used (Linux:
// /proc/PID/stat, in clock ticks of 1/100 s); 0 when it cannot be read.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces and parentheses:
	// count fields after the last ")". utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}
