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
		waitFor(t, 5*time.Second, "a to apply b's changes", func() bool {
			return a.state.applied().ID >= b.state.applied().ID
		})
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
