package authsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/authsvc/authsvc/internal/testdb"
)

// Many instances on one PostgreSQL (DESIGN §9): each test opens two
// Authenticators, each on its own connection pool, as two authd processes
// would.

func twoInstances(t *testing.T, cfg Config) (*Authenticator, *Authenticator, string) {
	t.Helper()
	url := testdb.Postgres(t)
	a := newAuth(t, openStore(t, url), cfg)
	b := newAuth(t, openStore(t, url), cfg)
	return a, b, url
}

// percentile of sorted durations.
func percentile(d []time.Duration, p float64) time.Duration {
	i := int(float64(len(d)-1) * p)
	return d[i]
}

// TestRevocationPropagation: a logout at A is refused at B; the delay over
// 100 revocations is measured and reported (the target is p99 ≤ 50 ms; the
// test fails only if one never arrives within 5 s).
func TestRevocationPropagation(t *testing.T) {
	// A long poll interval: what is measured is the notification path.
	a, b, _ := twoInstances(t, Config{PollInterval: time.Minute})
	ctx := context.Background()
	_, secret := mustClient(t, a, NewClient{ID: "svc"})
	var delays []time.Duration
	for i := 0; i < 100; i++ {
		tok := mustToken(t, a, "svc", secret).AccessToken
		if _, err := b.Verify(ctx, tok); err != nil {
			t.Fatalf("token from A at B: %v", err)
		}
		start := time.Now()
		if err := a.Logout(ctx, tok); err != nil {
			t.Fatal(err)
		}
		for {
			_, err := b.Verify(ctx, tok)
			if errors.Is(err, ErrTokenRevoked) {
				break
			}
			if err != nil {
				t.Fatalf("B: %v", err)
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("revocation %d not seen at B after 5 s", i)
			}
			time.Sleep(200 * time.Microsecond)
		}
		delays = append(delays, time.Since(start))
	}
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	t.Logf("revocation A→B over %d logouts: p50 %v, p99 %v, max %v (target p99 ≤ 50ms)",
		len(delays), percentile(delays, 0.50), percentile(delays, 0.99), delays[len(delays)-1])
}

func TestClientChangesPropagate(t *testing.T) {
	a, b, _ := twoInstances(t, Config{PollInterval: time.Minute})
	ctx := context.Background()
	_, secret := mustClient(t, a, NewClient{ID: "svc"})
	// A client created at A authenticates at B at once (B looks it up).
	tok := mustToken(t, b, "svc", secret).AccessToken
	if _, err := a.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}

	// Per-client cut-off at A: B refuses the earlier token, accepts a new one
	// issued after the cut-off second.
	if _, err := a.LogoutClient(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "B to refuse a cut-off token", func() bool {
		_, err := b.Verify(ctx, tok)
		return errors.Is(err, ErrTokenRevoked)
	})
	time.Sleep(1100 * time.Millisecond) // tokens of the cut-off second are refused too
	fresh := mustToken(t, a, "svc", secret).AccessToken
	if _, err := b.Verify(ctx, fresh); err != nil {
		t.Fatalf("token after the cut-off: %v", err)
	}

	// Secret rotation with grace at A: both secrets work at B.
	_, newSecret, err := a.RotateSecret(ctx, "svc", RotateSecret{Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "B to accept the new secret", func() bool {
		_, err := b.Authenticate(ctx, "svc", newSecret, TokenRequest{})
		return err == nil
	})
	mustToken(t, b, "svc", secret) // the old one, within its grace
	if _, err := b.Verify(ctx, fresh); err != nil {
		t.Fatalf("rotation without logout must keep tokens: %v", err)
	}
	// Rotation without grace: the old secret stops at once.
	_, newest, err := a.RotateSecret(ctx, "svc", RotateSecret{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "B to refuse the previous secret", func() bool {
		_, err := b.Authenticate(ctx, "svc", newSecret, TokenRequest{})
		return errors.Is(err, ErrInvalidClient)
	})
	mustToken(t, b, "svc", newest)

	// Deleted at A: B refuses its tokens and its secret.
	if err := a.DeleteClient(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "B to refuse a deleted client's token", func() bool {
		_, err := b.Verify(ctx, fresh)
		return errors.Is(err, ErrTokenRevoked)
	})
	if _, err := b.Authenticate(ctx, "svc", newest, TokenRequest{}); !errors.Is(err, ErrInvalidClient) {
		t.Fatalf("deleted client authenticates at B: %v", err)
	}
}

// TestStagedKeyRotation: a key rotated at A is published by both A and B
// before either signs with it, then both sign with it, and the old key
// stays published (its tokens keep verifying).
func TestStagedKeyRotation(t *testing.T) {
	cfg := Config{PollInterval: time.Minute, JWKSMaxAge: 2 * time.Second}
	a, b, _ := twoInstances(t, cfg)
	ctx := context.Background()
	_, secret := mustClient(t, a, NewClient{ID: "svc"})
	oldTok := mustToken(t, a, "svc", secret).AccessToken
	oldKid, _ := decodeParts(t, oldTok)
	k, err := a.RotateKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID == oldKid["kid"] || !k.ActivateAt.After(time.Now()) {
		t.Fatalf("rotation: %+v", k)
	}
	published := func(x *Authenticator) bool { return strings.Contains(string(x.JWKS()), k.ID) }
	waitFor(t, 5*time.Second, "B to publish the new key", func() bool { return published(b) })
	if !published(a) {
		t.Fatal("A does not publish its own new key")
	}
	// Published, not yet signing: both still sign with the old key.
	for name, x := range map[string]*Authenticator{"A": a, "B": b} {
		h, _ := decodeParts(t, mustToken(t, x, "svc", secret).AccessToken)
		if h["kid"] != oldKid["kid"] && time.Now().Before(k.ActivateAt) {
			t.Fatalf("%s signs with the new key before its activation", name)
		}
	}
	time.Sleep(time.Until(k.ActivateAt) + 50*time.Millisecond)
	for name, x := range map[string]*Authenticator{"A": a, "B": b} {
		tok := mustToken(t, x, "svc", secret).AccessToken
		h, _ := decodeParts(t, tok)
		if h["kid"] != k.ID {
			t.Fatalf("%s signs with %v after activation, want %s", name, h["kid"], k.ID)
		}
		for vname, v := range map[string]*Authenticator{"A": a, "B": b} {
			if _, err := v.Verify(ctx, tok); err != nil {
				t.Fatalf("%s's new-key token at %s: %v", name, vname, err)
			}
		}
	}
	if _, err := b.Verify(ctx, oldTok); err != nil {
		t.Fatalf("old key's token after rotation: %v", err)
	}
	keys := b.Keys()
	if len(keys) != 2 || keys[1].ID != k.ID || !keys[1].Signing || keys[0].Signing {
		t.Fatalf("Keys() = %+v", keys)
	}
	var jwks struct{ Keys []json.RawMessage }
	json.Unmarshal(a.JWKS(), &jwks)
	if len(jwks.Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want both", len(jwks.Keys))
	}
}

// TestRetiredKeyPurged: housekeeping removes a superseded key only once
// every token it signed has expired.
func TestRetiredKeyPurged(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	a := newAuth(t, openStore(t, testdb.SQLite(t)), Config{Now: clock.Now, TokenTTL: time.Minute, JWKSMaxAge: time.Second})
	first := a.Keys()[0].ID
	if _, err := a.RotateKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	clock.Add(2 * time.Second) // the new key is active
	if err := a.housekeep(context.Background()); err != nil || len(a.Keys()) != 2 {
		t.Fatalf("old key purged while its tokens may live: %d keys, %v", len(a.Keys()), err)
	}
	clock.Add(2 * time.Minute)
	if err := a.housekeep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if keys := a.Keys(); len(keys) != 1 || keys[0].ID == first {
		t.Fatalf("after the TTL: %+v", keys)
	}
}

// TestListenerReconnectCatchUp kills B's LISTEN connection; a revocation
// made during the gap still reaches B through the catch-up that runs on
// reconnection (B's poll interval is too long to help).
func TestListenerReconnectCatchUp(t *testing.T) {
	a, b, url := twoInstances(t, Config{PollInterval: time.Hour})
	ctx := context.Background()
	_, secret := mustClient(t, a, NewClient{ID: "svc"})
	tok := mustToken(t, a, "svc", secret).AccessToken
	if _, err := b.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	admin, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var killed int
	waitFor(t, 5*time.Second, "listeners to connect", func() bool {
		admin.Get(&killed, `SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'`)
		return killed == 2
	})
	// Kill both listeners, then revoke at once, inside the gap.
	if err := admin.Get(&killed, `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()`); err != nil || killed != 2 {
		t.Fatalf("terminated %d listeners: %v", killed, err)
	}
	if err := a.Logout(ctx, tok); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, 15*time.Second, "B to learn of the revocation after reconnecting", func() bool {
		_, err := b.Verify(ctx, tok)
		return errors.Is(err, ErrTokenRevoked)
	})
	t.Logf("revocation made during the listener gap reached B after %v", time.Since(start).Round(time.Millisecond))
}

// TestConcurrentVerifyWhileRevoking runs many verifiers against one
// Authenticator while another revokes; run with -race.
func TestConcurrentVerifyWhileRevoking(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		a := newAuth(t, openStore(t, url), Config{PollInterval: 10 * time.Millisecond})
		b := newAuth(t, openStore(t, url), Config{PollInterval: 10 * time.Millisecond})
		_, secret := mustClient(t, a, NewClient{ID: "svc"})
		const n = 40
		toks := make([]string, n)
		for i := range toks {
			toks[i] = mustToken(t, a, "svc", secret).AccessToken
		}
		var revoked [n]atomic.Bool
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var failures atomic.Int64
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := g; ; i = (i + 1) % n {
					select {
					case <-stop:
						return
					default:
					}
					wasRevoked := revoked[i].Load()
					_, err := a.Verify(ctx, toks[i])
					// Once revoked on this instance, never accepted again.
					if wasRevoked && err == nil {
						failures.Add(1)
					}
					if err != nil && !errors.Is(err, ErrTokenRevoked) {
						failures.Add(1)
					}
				}
			}(g)
		}
		for i := 0; i < n; i += 2 {
			if err := b.Logout(ctx, toks[i]); err != nil {
				t.Fatal(err)
			}
			if i%4 == 0 {
				// Revoke through a, too, so a's own write path is exercised.
				if err := a.Logout(ctx, toks[i]); err != nil {
					t.Fatal(err)
				}
				revoked[i].Store(true)
			}
		}
		close(stop)
		wg.Wait()
		if f := failures.Load(); f > 0 {
			t.Fatalf("%d wrong answers under concurrency", f)
		}
		for i := 0; i < n; i += 2 {
			waitFor(t, 5*time.Second, fmt.Sprintf("token %d revoked at a", i), func() bool {
				_, err := a.Verify(ctx, toks[i])
				return errors.Is(err, ErrTokenRevoked)
			})
		}
		for i := 1; i < n; i += 2 {
			if _, err := a.Verify(ctx, toks[i]); err != nil {
				t.Fatalf("token %d never revoked is refused: %v", i, err)
			}
		}
	})
}

// TestHousekeepingOneAtATime: the named lock lets one instance in.
func TestHousekeepingOneAtATime(t *testing.T) {
	url := testdb.Postgres(t)
	s1, s2 := openStore(t, url), openStore(t, url)
	ctx := context.Background()
	inside := make(chan struct{})
	release := make(chan struct{})
	done := make(chan bool)
	go func() {
		ran, _ := s1.tryLock(ctx, "housekeeping", func(context.Context) error {
			close(inside)
			<-release
			return nil
		})
		done <- ran
	}()
	<-inside
	ran, err := s2.tryLock(ctx, "housekeeping", func(context.Context) error { return nil })
	if err != nil || ran {
		t.Fatalf("second instance ran housekeeping while the first held the lock (%v)", err)
	}
	close(release)
	if !<-done {
		t.Fatal("first instance did not run")
	}
	if ran, err := s2.tryLock(ctx, "housekeeping", func(context.Context) error { return nil }); err != nil || !ran {
		t.Fatalf("lock not released: %v %v", ran, err)
	}
}

// TestAutomaticKeyRotation: with KeyRotationPeriod set, housekeeping
// starts a staged rotation once the newest key is older than the period.
func TestAutomaticKeyRotation(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	a := newAuth(t, openStore(t, testdb.SQLite(t)), Config{Now: clock.Now, KeyRotationPeriod: time.Hour, JWKSMaxAge: time.Second})
	ctx := context.Background()
	if err := a.housekeep(ctx); err != nil || len(a.Keys()) != 1 {
		t.Fatalf("rotated too early: %d keys, %v", len(a.Keys()), err)
	}
	clock.Add(61 * time.Minute)
	if err := a.housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	keys := a.Keys()
	if len(keys) != 2 || keys[1].Signing || !keys[1].ActivateAt.After(clock.Now()) {
		t.Fatalf("after the period: %+v", keys)
	}
	if err := a.housekeep(ctx); err != nil || len(a.Keys()) != 2 {
		t.Fatalf("rotated twice: %d keys, %v", len(a.Keys()), err)
	}
}

// TestLongOutageReloads: an instance cut off from the store for longer than
// MaxStaleness, while another instance deletes a client and housekeeping
// purges the change log, comes back with a full reload, not a catch-up that
// would miss the purged deletion. The outage is real: instance A connects
// as its own role, whose CONNECT right is revoked and connections killed.
func TestLongOutageReloads(t *testing.T) {
	url := testdb.Postgres(t)
	ctx := context.Background()
	admin, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	clockB := &fakeClock{t: time.Now()}
	b := newAuth(t, openStore(t, url), Config{Now: clockB.Now, TokenTTL: time.Minute})
	role := fmt.Sprintf("authsvc_test_role_%d", time.Now().UnixNano())
	var db string
	admin.Get(&db, `SELECT current_database()`)
	for _, q := range []string{
		`CREATE ROLE ` + role + ` LOGIN`,
		`GRANT ALL ON SCHEMA public TO ` + role,
		`GRANT ALL ON ALL TABLES IN SCHEMA public TO ` + role,
		`GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO ` + role,
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		admin.Exec(`GRANT CONNECT ON DATABASE ` + db + ` TO PUBLIC`)
		admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, role)
		admin.Exec(`DROP OWNED BY ` + role)
		admin.Exec(`DROP ROLE IF EXISTS ` + role)
	})
	aURL := strings.Replace(url, "postgres@", role+"@", 1)
	a := newAuth(t, openStore(t, aURL), Config{PollInterval: 20 * time.Millisecond, MaxStaleness: 300 * time.Millisecond})
	_, secret := mustClient(t, b, NewClient{ID: "victim"})
	tok := mustToken(t, a, "victim", secret).AccessToken
	// A goes away (PUBLIC holds CONNECT by default; revoke it, kill A).
	for _, q := range []string{`REVOKE CONNECT ON DATABASE ` + db + ` FROM PUBLIC`} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, role)
	waitFor(t, 5*time.Second, "A to notice the outage", func() bool {
		_, err := a.Verify(ctx, tok)
		return errors.Is(err, ErrUnavailable)
	})
	// Meanwhile at B: delete the client, then housekeeping hours later purges the log.
	if err := b.DeleteClient(ctx, "victim"); err != nil {
		t.Fatal(err)
	}
	mustClient(t, b, NewClient{ID: "other"})
	// Housekeeping keeps the newest final change; another session's
	// transaction on the server can hold B's changes back for a moment.
	waitFor(t, 10*time.Second, "B's changes final", func() bool {
		var newest int64
		last, err := b.store.lastChange(ctx)
		return err == nil && admin.Get(&newest, `SELECT MAX(id) FROM authsvc_changes`) == nil && last.ID == newest
	})
	clockB.Add(3 * time.Hour)
	if err := b.housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	var deletions int
	admin.Get(&deletions, `SELECT COUNT(*) FROM authsvc_changes WHERE kind = 'client_deleted'`)
	if deletions != 0 {
		t.Fatalf("housekeeping kept %d deletion entries; the test needs them purged", deletions)
	}
	// A comes back.
	if _, err := admin.Exec(`GRANT CONNECT ON DATABASE ` + db + ` TO PUBLIC`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "A to recover", func() bool {
		_, err := a.Authenticate(ctx, "other", "nope", TokenRequest{})
		return errors.Is(err, ErrInvalidClient)
	})
	if _, err := a.Authenticate(ctx, "victim", secret, TokenRequest{}); !errors.Is(err, ErrInvalidClient) {
		t.Fatalf("a client deleted during the outage authenticates at A: %v", err)
	}
	if _, err := a.Verify(ctx, tok); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("its token verifies at A: %v", err)
	}
}
