package authsvc

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/authsvc/authsvc/internal/testdb"
)

// storedAddresses reads the store's known addresses, as client|addr → time.
func storedAddresses(t *testing.T, s Store) map[string]int64 {
	t.Helper()
	rows, err := s.knownAddresses(context.Background(), time.Unix(0, 0), 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, r := range rows {
		out[r.ClientID+"|"+r.Addr] = r.At
	}
	return out
}

// TestKnownAddress: RememberAddress is known at once, written to the store
// at most once an hour per pair, survives a restart, reaches another
// instance on the same store, and is forgotten (and purged) after 24 hours.
func TestKnownAddress(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		clock := &fakeClock{t: time.Unix(1_900_000_000, 0)}
		a, err := New(ctx, openStore(t, url), Config{Issuer: testIssuer, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		start := clock.Now()
		a.RememberAddress("svc", "192.0.2.1")
		if !a.KnownAddress("svc", "192.0.2.1") {
			t.Fatal("a remembered address is not known")
		}
		for _, p := range [][2]string{{"svc", "192.0.2.2"}, {"other", "192.0.2.1"}} {
			if a.KnownAddress(p[0], p[1]) {
				t.Fatalf("%v is known, never remembered", p)
			}
		}
		clock.Add(30 * time.Minute)
		a.RememberAddress("svc", "192.0.2.1") // within the hour: memory only
		clock.Add(31 * time.Minute)
		a.RememberAddress("svc", "192.0.2.1") // an hour after the first write: written
		a.RememberAddress("svc", "192.0.2.1")
		a.RememberAddress("svc", "2001:db8::1")
		a.RememberAddress("svc", strings.Repeat("1", maxKnownAddrLen+1)) // not an address: ignored
		a.RememberAddress(strings.Repeat("c", MaxClientIDLen+1), "192.0.2.1")
		a.Close() // writes what is queued
		if s := a.Stats(); s.KnownAddressWrites != 3 || s.KnownAddressWriteErrors != 0 || s.KnownAddresses != 2 {
			t.Fatalf("stats %+v: want 3 writes (two of one pair, an hour apart), 2 pairs", s)
		}
		want := map[string]int64{"svc|192.0.2.1": start.Add(61 * time.Minute).Unix(), "svc|2001:db8::1": start.Add(61 * time.Minute).Unix()}
		if got := storedAddresses(t, a.store); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("stored %v, want %v", got, want)
		}

		// A restart: a new Authenticator on the store knows the pair.
		b := newAuth(t, openStore(t, url), Config{Now: clock.Now})
		if !b.KnownAddress("svc", "192.0.2.1") || !b.KnownAddress("svc", "2001:db8::1") {
			t.Fatal("known addresses did not survive a restart")
		}
		// Another instance, running already, learns at its next read.
		c := newAuth(t, openStore(t, url), Config{Now: clock.Now})
		b.RememberAddress("late", "198.51.100.1")
		waitFor(t, 5*time.Second, "the write", func() bool { return b.Stats().KnownAddressWrites == 1 })
		if c.KnownAddress("late", "198.51.100.1") {
			t.Fatal("known before any read")
		}
		if err := c.refreshKnown(ctx); err != nil {
			t.Fatal(err)
		}
		if !c.KnownAddress("late", "198.51.100.1") {
			t.Fatal("a pair another instance learned is not known after a read")
		}

		// 24 hours after the last success: not known, and purged.
		clock.Add(knownFor)
		if b.KnownAddress("svc", "192.0.2.1") || c.KnownAddress("late", "198.51.100.1") {
			t.Fatal("a pair is known 24 hours after its last success")
		}
		if err := b.housekeep(ctx); err != nil {
			t.Fatal(err)
		}
		if got := storedAddresses(t, b.store); len(got) != 0 {
			t.Fatalf("housekeeping left %v", got)
		}
		if err := c.refreshKnown(ctx); err != nil {
			t.Fatal(err)
		}
		if n := c.Stats().KnownAddresses; n != 0 {
			t.Fatalf("%d expired pairs still in memory after a read", n)
		}
	})
}

// TestKnownAddressWriteFails: with the store gone, RememberAddress still
// returns at once, the address is still known in memory, and the failure
// is logged and counted; the pair's next success tries the write again.
func TestKnownAddressWriteFails(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	logs := &testdb.LogBuffer{}
	s := openStore(t, testdb.SQLite(t))
	a := newAuth(t, s, Config{Now: clock.Now, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	s.Close()
	a.RememberAddress("svc", "192.0.2.1")
	if !a.KnownAddress("svc", "192.0.2.1") {
		t.Fatal("not known in memory")
	}
	waitFor(t, 10*time.Second, "the failed write", func() bool { return a.Stats().KnownAddressWriteErrors == 1 })
	if !strings.Contains(logs.String(), "recording the addresses clients authenticated from failed") {
		t.Fatalf("the failure is not logged:\n%s", logs)
	}
	clock.Add(2 * knownTouchEvery)
	a.RememberAddress("svc", "192.0.2.1")
	waitFor(t, 10*time.Second, "the retried write", func() bool { return a.Stats().KnownAddressWriteErrors == 2 })
}

// TestKnownAddressBounds: memory keeps at most knownMaxPerClient addresses
// a client and knownMax pairs, evicting the oldest successes.
func TestKnownAddressBounds(t *testing.T) {
	k := newKnownAddrs()
	t0 := time.Unix(1_900_000_000, 0)
	for i := range knownMaxPerClient + 10 {
		k.put("busy", fmt.Sprint("a", i), knownEntry{last: t0.Add(time.Duration(i) * time.Second)})
	}
	if n := len(k.byClient["busy"]); n != knownMaxPerClient || k.n != n {
		t.Fatalf("%d addresses kept for one client (count %d), want %d", n, k.n, knownMaxPerClient)
	}
	if _, ok := k.byClient["busy"]["a0"]; ok {
		t.Fatal("the oldest address was not the one evicted")
	}
	for i := range knownMax {
		k.put(fmt.Sprint("c", i), "192.0.2.1", knownEntry{last: t0.Add(2*time.Hour + time.Duration(i)*time.Millisecond)})
	}
	if k.n > knownMax || k.n != k.count() {
		t.Fatalf("%d pairs in memory, at most %d", k.n, knownMax)
	}
	if _, ok := k.byClient["busy"]; ok {
		t.Fatal("the oldest pairs were not the ones evicted")
	}
	if _, ok := k.byClient[fmt.Sprint("c", knownMax-1)]; !ok {
		t.Fatal("the newest pair was evicted")
	}
}
