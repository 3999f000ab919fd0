package authsvc

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/authsvc/authsvc/internal/testdb"
)

// TestClientCacheBounded: an instance keeps at most ClientCacheSize client
// records in memory, serves every client all the same (reading the others
// from the store), and what another instance changes reaches it whether or
// not the client was cached: new scopes, a cut-off, a deletion.
func TestClientCacheBounded(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		a := newAuth(t, s, Config{ClientCacheSize: 10, PollInterval: 20 * time.Millisecond})
		b := newAuth(t, s, Config{PollInterval: 20 * time.Millisecond})
		const n = 50
		secrets, tokens := make([]string, n), make([]string, n)
		for i := range n {
			_, secrets[i] = mustClient(t, b, NewClient{ID: fmt.Sprint("svc-", i), Scopes: []string{"read"}})
		}
		for i := range n {
			tokens[i] = mustToken(t, a, fmt.Sprint("svc-", i), secrets[i]).AccessToken
		}
		cached := func() int {
			a.state.mu.RLock()
			defer a.state.mu.RUnlock()
			return len(a.state.clients)
		}
		if c := cached(); c > 10 {
			t.Fatalf("%d clients cached, want at most 10", c)
		}
		for i := range n {
			if _, err := a.Verify(ctx, tokens[i]); err != nil {
				t.Fatalf("token %d: %v", i, err)
			}
		}
		if c := cached(); c > 10 || c == 0 {
			t.Fatalf("%d clients cached after verifying %d, want 1 to 10", c, n)
		}
		// Changes made elsewhere, to clients cached here or not.
		write := []string{"write"}
		for i := range n {
			if _, err := b.UpdateClient(ctx, fmt.Sprint("svc-", i), ClientUpdate{Scopes: &write}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := b.LogoutClient(ctx, "svc-1"); err != nil {
			t.Fatal(err)
		}
		if err := b.DeleteClient(ctx, "svc-2"); err != nil {
			t.Fatal(err)
		}
		waitApplied(t, a, s)
		for i := range n {
			_, err := a.Verify(ctx, tokens[i])
			switch i {
			case 1, 2:
				if !errors.Is(err, ErrTokenRevoked) {
					t.Fatalf("token %d after its client was logged out or deleted: %v", i, err)
				}
			default:
				if err != nil {
					t.Fatalf("token %d: %v", i, err)
				}
			}
			if i == 2 {
				continue
			}
			tok, err := a.Authenticate(ctx, fmt.Sprint("svc-", i), secrets[i], TokenRequest{Scopes: []string{"write"}})
			if err != nil || fmt.Sprint(tok.Scopes) != "[write]" {
				t.Fatalf("client %d with its new scope: %+v %v", i, tok, err)
			}
		}
		if c := cached(); c > 10 {
			t.Fatalf("%d clients cached, want at most 10", c)
		}
	})
}

// TestClientFillAfterChange: a record read from the store before a change
// to its client was applied is not cached (it may be older than the
// change), so that the cache never holds a stale client.
func TestClientFillAfterChange(t *testing.T) {
	st := newState(0)
	old := &clientRecord{Client: Client{ID: "svc", RowID: 1, Scopes: []string{"read"}}}
	version := st.versionOfClients() // a lookup starts reading...
	st.mu.Lock()
	st.clientsVersion++ // ...a change to the client is applied meanwhile...
	st.mu.Unlock()
	st.fillClient("svc", old, version) // ...and the read comes back.
	if st.client("svc") != nil {
		t.Fatal("a record read before a change was cached")
	}
	st.fillClient("svc", old, st.versionOfClients())
	if st.client("svc") != old {
		t.Fatal("a fresh read was not cached")
	}
}

// TestVerifyWhileLoading: an instance still reading the revocations into
// memory (millions take seconds; New does not wait for them) refuses a
// revoked token by asking the store, serves no feed snapshot, applies the
// changes it follows meanwhile, and once loaded holds both those and what
// it read.
func TestVerifyWhileLoading(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		a := newAuth(t, s, Config{PollInterval: 20 * time.Millisecond})
		b := newAuth(t, s, Config{PollInterval: 20 * time.Millisecond})
		_, secret := mustClient(t, b, NewClient{ID: "svc"})
		before := mustToken(t, b, "svc", secret).AccessToken
		during := mustToken(t, b, "svc", secret).AccessToken
		live := mustToken(t, b, "svc", secret).AccessToken
		if err := b.Logout(ctx, before); err != nil {
			t.Fatal(err)
		}
		// a restarts its load, as New does, and stops before the revocations
		// (once New's own load is over and a has caught up with the logout:
		// two loads at once are not a case, and a catch-up begun before the
		// restart would put that revocation in the interim set too).
		last, err := s.(*sqlStore).lastChange(ctx)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "a's first load and catch-up", func() bool {
			return !a.state.loading.Load() && a.state.applied().ID >= last.ID
		})
		finish, err := a.state.loadInBackground(ctx, s, time.Now(), a.tokenLifetimeAgo(), a.reloadKeys)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Verify(ctx, before); !errors.Is(err, ErrTokenRevoked) {
			t.Fatalf("a token revoked before the load, while loading: %v", err)
		}
		if _, err := a.Verify(ctx, live); err != nil {
			t.Fatalf("a live token while loading: %v", err)
		}
		if _, err := a.feed(ctx, 0); !errors.Is(err, errStillLoading) {
			t.Fatalf("a snapshot while loading: %v", err)
		}
		if err := b.Logout(ctx, during); err != nil {
			t.Fatal(err)
		}
		duringClaims, err := a.parse(during, false)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "a to apply the logout made while it loads", func() bool {
			a.state.mu.RLock()
			defer a.state.mu.RUnlock()
			return a.state.revoked.has(revocationKeyOf(duringClaims.ID))
		})
		finish(ctx, func(err error) { t.Error(err) })
		if a.state.loading.Load() {
			t.Fatal("still loading after finish")
		}
		a.state.mu.RLock()
		n := a.state.revoked.len()
		a.state.mu.RUnlock()
		if n != 2 || a.state.liveRevocations("svc") != 2 {
			t.Fatalf("after the load: %d revocations, %d counted for svc; want 2 and 2", n, a.state.liveRevocations("svc"))
		}
		for _, tok := range []string{before, during} {
			if _, err := a.Verify(ctx, tok); !errors.Is(err, ErrTokenRevoked) {
				t.Fatalf("a revoked token after the load: %v", err)
			}
		}
		if _, err := a.Verify(ctx, live); err != nil {
			t.Fatalf("a live token after the load: %v", err)
		}
		if p, err := a.feed(ctx, 0); err != nil || snapshotKeys(p) != 2 {
			t.Fatalf("snapshot after the load: %v", err)
		}
	})
}

// TestScopesSupportedSlowRead: when reading the scopes is slow (millions of
// clients), another instance's change waits for the rate bound, and this
// instance's own change shows at once.
func TestScopesSupportedSlowRead(t *testing.T) {
	s := openStore(t, testdb.SQLite(t))
	a := newAuth(t, s, Config{PollInterval: 20 * time.Millisecond})
	b := newAuth(t, s, Config{PollInterval: 20 * time.Millisecond})
	mustClient(t, a, NewClient{ID: "x", Scopes: []string{"a"}})
	if got := fmt.Sprint(a.ScopesSupported()); got != "[a]" {
		t.Fatalf("ScopesSupported = %s", got)
	}
	slow := *a.scopes.Load()
	slow.took, slow.readAt = time.Hour, time.Now() // as if the read had taken an hour
	a.scopes.Store(&slow)
	mustClient(t, b, NewClient{ID: "y", Scopes: []string{"b"}})
	waitApplied(t, a, s)
	if got := fmt.Sprint(a.ScopesSupported()); got != "[a]" {
		t.Fatalf("another instance's change, within the rate bound: %s, want [a]", got)
	}
	mustClient(t, a, NewClient{ID: "z", Scopes: []string{"c"}})
	if got := fmt.Sprint(a.ScopesSupported()); got != "[a b c]" {
		t.Fatalf("after a change of this instance's: %s, want [a b c]", got)
	}
}

// waitApplied waits until a has applied the newest change in the store's
// log, which the test's last write made. (Not "a's cursor reached b's":
// b's own cursor may not have passed b's last write yet, and ids alone do
// not order the log on PostgreSQL.)
func waitApplied(t *testing.T, a *Authenticator, s Store) {
	t.Helper()
	q := `SELECT id AS xact, id FROM authsvc_changes ORDER BY id DESC LIMIT 1`
	if s.(*sqlStore).postgres {
		q = `SELECT xact, id FROM authsvc_changes ORDER BY id DESC LIMIT 1`
	}
	newest, err := s.(*sqlStore).logPosition(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a to apply the newest change", func() bool { return !newest.after(a.state.applied()) })
}
