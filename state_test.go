package authsvc

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/authsvc/authsvc/internal/testdb"
)

// TestRevocationsBounded: a client's live revocations stop at
// MaxRevocationsPerClient; the next one logs the client out everywhere
// instead (one row, every old token refused), other clients are
// untouched, and the client gets working tokens again afterwards.
func TestRevocationsBounded(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		clock := &fakeClock{t: time.Now()}
		a := newAuth(t, openStore(t, url), Config{MaxRevocationsPerClient: 3, Now: clock.Now})
		_, secret := mustClient(t, a, NewClient{ID: "churner"})
		_, otherSecret := mustClient(t, a, NewClient{ID: "other"})
		other := mustToken(t, a, "other", otherSecret)
		var toks []*Token
		for range 5 {
			toks = append(toks, mustToken(t, a, "churner", secret))
		}
		for i := range 3 {
			if err := a.Logout(ctx, toks[i].AccessToken); err != nil {
				t.Fatal(err)
			}
		}
		if n := a.state.liveRevocations("churner"); n != 3 {
			t.Fatalf("%d live revocations, want 3", n)
		}
		if _, err := a.Verify(ctx, toks[4].AccessToken); err != nil {
			t.Fatalf("an unrevoked token before the bound: %v", err)
		}
		// The fourth folds into a cut-off: no row, every old token refused.
		if err := a.Logout(ctx, toks[3].AccessToken); err != nil {
			t.Fatal(err)
		}
		if n := a.state.liveRevocations("churner"); n != 3 {
			t.Fatalf("%d live revocations after the bound, want still 3", n)
		}
		for i, tok := range toks {
			if _, err := a.Verify(ctx, tok.AccessToken); !errors.Is(err, ErrTokenRevoked) {
				t.Errorf("token %d after the fold: %v, want ErrTokenRevoked", i, err)
			}
		}
		c, err := a.Client(ctx, "churner")
		if err != nil || c.TokensValidAfter.IsZero() {
			t.Fatalf("no cut-off on the client: %+v, %v", c, err)
		}
		if _, err := a.Verify(ctx, other.AccessToken); err != nil {
			t.Fatalf("another client's token: %v", err)
		}
		// New tokens (issued after the cut-off) work…
		clock.Add(2 * time.Second)
		fresh := mustToken(t, a, "churner", secret)
		if _, err := a.Verify(ctx, fresh.AccessToken); err != nil {
			t.Fatalf("a new token after the fold: %v", err)
		}
		// …and replaying old tokens at /logout (revoked, or cut off) does
		// not fold again: anyone holding an old token could otherwise log
		// the client out over and over.
		clock.Add(5 * time.Second)
		for _, old := range toks {
			if err := a.Logout(ctx, old.AccessToken); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.Verify(ctx, fresh.AccessToken); err != nil {
			t.Fatalf("a fresh token after old ones were logged out again: %v", err)
		}
		// Expired revocations stop counting.
		clock.Add(2 * time.Hour)
		a.state.purgeExpired(clock.Now().Unix())
		if n := a.state.liveRevocations("churner"); n != 0 {
			t.Fatalf("%d live revocations after they expired", n)
		}
	})
}

// TestDeletedClientFromMemory: the token of a deleted client is refused
// from memory, by an instance that learnt of the deletion from the change
// log or that started after it, without a store round trip per request
// (shown by closing that instance's store first).
func TestDeletedClientFromMemory(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		a := newAuth(t, openStore(t, url), Config{})
		_, secret := mustClient(t, a, NewClient{ID: "gone"})
		tok := mustToken(t, a, "gone", secret)
		if err := a.DeleteClient(ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		store := openStore(t, url)
		b := newAuth(t, store, Config{}) // started after the deletion
		store.Close()
		for i := range 3 {
			if _, err := b.Verify(ctx, tok.AccessToken); !errors.Is(err, ErrTokenRevoked) {
				t.Fatalf("verification %d of a deleted client's token: %v, want ErrTokenRevoked from memory", i, err)
			}
		}
	})
}

// TestListClients: pages in byte order, of the size asked, that follow each
// other without a gap or a repeat, filtered by prefix as a range.
func TestListClients(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		a := newAuth(t, openStore(t, url), Config{})
		ids := []string{"a", "a-1", "a-2", "a.b", "aa", "ab", "b", "B", "app~", "a\u00e9", "z", "\u043f1", "\u043f2", "\u0440"}
		for _, id := range ids {
			if _, err := a.ImportClient(ctx, ImportedClient{ID: id, LegacyHash: "0123456789abcdef0123456789abcdef01234567"}); err != nil {
				t.Fatal(err)
			}
		}
		all := func(q ClientQuery) []string {
			t.Helper()
			var got []string
			for range 100 {
				page, err := a.ListClients(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if len(page.Clients) > max(q.Limit, 1) && q.Limit != 0 {
					t.Fatalf("a page of %d, asked %d", len(page.Clients), q.Limit)
				}
				for _, c := range page.Clients {
					got = append(got, c.ID)
				}
				if page.Next == "" {
					return got
				}
				q.After = page.Next
			}
			t.Fatal("pages never end")
			return nil
		}
		want := []string{"B", "a", "a-1", "a-2", "a.b", "aa", "ab", "app~", "a\u00e9", "b", "z", "\u043f1", "\u043f2", "\u0440"} // bytes
		for _, limit := range []int{1, 2, 3, 100} {
			if got := all(ClientQuery{Limit: limit}); !slices.Equal(got, want) {
				t.Errorf("limit %d: %q, want %q", limit, got, want)
			}
		}
		if got := all(ClientQuery{Prefix: "a", Limit: 2}); !slices.Equal(got, want[1:9]) {
			t.Errorf("prefix a: %q", got)
		}
		if got := all(ClientQuery{Prefix: "a-", Limit: 1}); !slices.Equal(got, []string{"a-1", "a-2"}) {
			t.Errorf("prefix a-: %q", got)
		}
		// A prefix whose last character is not ASCII: its range's bound
		// must be valid UTF-8 (PostgreSQL refuses other text).
		if got := all(ClientQuery{Prefix: "\u043f"}); !slices.Equal(got, []string{"\u043f1", "\u043f2"}) {
			t.Errorf("prefix \u043f: %q", got)
		}
		if got := all(ClientQuery{Prefix: "nobody"}); len(got) != 0 {
			t.Errorf("prefix nobody: %q", got)
		}
		for _, q := range []ClientQuery{{Limit: -1}, {Limit: MaxClientPage + 1}, {Prefix: "a\x00"}, {After: string([]byte{0xff, 0xfe})}} {
			if _, err := a.ListClients(ctx, q); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("ListClients(%+v): %v, want ErrInvalidArgument", q, err)
			}
		}
	})
}

// TestCatchUpReadBeforeOwnWrite: a catch-up that read a client from the
// store before this instance's own write of it (an admin demoted) does not
// put the older record back in memory over the write: it drops the client
// from memory instead, and its next use reads the store.
func TestCatchUpReadBeforeOwnWrite(t *testing.T) {
	st := newState(100)
	admin := &clientRecord{Client: Client{ID: "boss", RowID: 1, IsAdmin: true}}
	demoted := &clientRecord{Client: Client{ID: "boss", RowID: 1}}
	st.putClient("boss", admin)
	version := st.versionOfClients() // the catch-up reads the store now: admin
	st.putClient("boss", demoted)    // this instance demotes boss meanwhile
	st.refreshClientRead("boss", admin, version)
	if rec := st.client("boss"); rec != nil {
		t.Fatalf("memory holds %+v after a catch-up read before the demotion", rec.Client)
	}
	// Read with nothing applied since: it is cached.
	st.refreshClientRead("boss", demoted, st.versionOfClients())
	if rec := st.client("boss"); rec != demoted {
		t.Fatalf("memory holds %v, want the record read", rec)
	}
}
