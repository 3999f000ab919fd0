package authsvc

// Benchmarks of expiry at scale (issue 15): how long a Verify can be held
// up while housekeeping purges expired revocations, and what applying one
// feed page costs a RemoteVerifier that holds many. They fill memory with
// N live revocations, so run them on their own, once:
//
//	go test -run '^$' -bench 'PurgeStall|RemoteFeedPage' -benchtime 1x
//	AUTHSVC_BENCH_REVOCATIONS=1000000,10000000 go test -run '^$' -bench PurgeStall -benchtime 1x -timeout 30m
//
// Latency is only reported here, never asserted (tests assert behaviour).

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsvc/authsvc/internal/testdb"
)

// benchRevocationCounts is N: AUTHSVC_BENCH_REVOCATIONS (a comma-separated
// list), else def.
func benchRevocationCounts(b *testing.B, def ...int) []int {
	s := os.Getenv("AUTHSVC_BENCH_REVOCATIONS")
	if s == "" {
		return def
	}
	var ns []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("AUTHSVC_BENCH_REVOCATIONS: %q is not a count", f)
		}
		ns = append(ns, n)
	}
	return ns
}

// benchJTI is a jti as Authenticate makes them (16 bytes, base64url), from
// a fast generator.
func benchJTI(r *rand.Rand) string {
	var raw [16]byte
	for i := 0; i < 16; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			raw[i+j] = byte(v >> (8 * j))
		}
	}
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// verifyLoop runs Verify of a seen token in a loop until stop is closed and
// reports the slowest call and the 99.9th percentile.
func verifyLoop(b *testing.B, verify func() error, stop <-chan struct{}) (slowest, p999 time.Duration, calls int) {
	var lat []time.Duration
	for {
		select {
		case <-stop:
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			if len(lat) == 0 {
				return 0, 0, 0
			}
			return lat[len(lat)-1], lat[len(lat)*999/1000], len(lat)
		default:
		}
		t0 := time.Now()
		if err := verify(); err != nil {
			b.Error(err)
			return
		}
		lat = append(lat, time.Since(t0))
	}
}

// BenchmarkPurgeStall fills an Authenticator's memory with N live
// revocations (exp spread over the next hour, as with the default TokenTTL,
// 1,000 clients) and a nearly full verified-token cache, then runs
// housekeeping's purge five minutes later (about 1/12 of them expired, what
// one housekeeping run finds) while another goroutine verifies a seen token
// in a loop. It reports the slowest Verify during the purge (max-verify-µs),
// the slowest during as long a time without a purge (idle-max-verify-µs,
// the noise floor: GC, scheduling), the purge's duration and the heap bytes
// per live revocation, and the longest hold of the lock (max-hold-µs):
// what a Verify can wait behind the purge, whatever else stalls it.
func BenchmarkPurgeStall(b *testing.B) {
	ctx := context.Background()
	for _, n := range benchRevocationCounts(b, 1_000_000) {
		b.Run(fmt.Sprintf("revocations=%d", n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				ba := newBenchAuth(b, testdb.SQLite(b), AlgEdDSA)
				a := ba.a
				tok := ba.token(b)
				if _, err := a.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
				r := rand.New(rand.NewPCG(1, uint64(n)))
				now := time.Now().Unix()
				before := heapAlloc()
				for i := range n {
					// A fresh client id string per revocation, as rows read
					// from the store give.
					a.state.revoke(benchJTI(r), fmt.Sprintf("client-%04d", i%1000), now+30+r.Int64N(3600))
				}
				perRevocation := float64(heapAlloc()-before) / float64(n)
				for range maxVerifiedTokens - 1000 {
					c := &Claims{ID: benchJTI(r), Subject: "gen", ExpiresAt: now + 30 + r.Int64N(3600)}
					a.state.remember(tokenKey(c.ID), c, now)
				}
				verify := func() error { _, err := a.Verify(ctx, tok); return err }

				// The noise floor, then the purge, each with the loop.
				idleStop := make(chan struct{})
				var idleMax time.Duration
				var wg sync.WaitGroup
				wg.Go(func() { idleMax, _, _ = verifyLoop(b, verify, idleStop) })
				stop := make(chan struct{})
				var slowest, p999 time.Duration
				var calls int
				time.Sleep(300 * time.Millisecond)
				close(idleStop)
				wg.Wait()
				wg.Go(func() { slowest, p999, calls = verifyLoop(b, verify, stop) })
				time.Sleep(20 * time.Millisecond)
				live := a.state.revocationCount()
				b.StartTimer()
				t0 := time.Now()
				hold := a.state.purgeExpired(now + 300)
				purge := time.Since(t0)
				b.StopTimer()
				time.Sleep(20 * time.Millisecond)
				close(stop)
				wg.Wait()
				purged := live - a.state.revocationCount()
				b.ReportMetric(float64(slowest.Microseconds()), "max-verify-µs")
				b.ReportMetric(float64(p999.Microseconds()), "p999-verify-µs")
				b.ReportMetric(float64(idleMax.Microseconds()), "idle-max-verify-µs")
				b.ReportMetric(float64(hold.Microseconds()), "max-hold-µs")
				b.ReportMetric(float64(purge.Microseconds())/1000, "purge-ms")
				b.ReportMetric(float64(purged), "purged")
				b.ReportMetric(perRevocation, "B/revocation")
				b.Logf("N=%d: %d purged in %v, the lock held %v at most; slowest Verify %v (p99.9 %v, %d calls), without purge %v; %.1f B/revocation",
					n, purged, purge, hold, slowest, p999, calls, idleMax, perRevocation)
			}
		})
	}
}

// BenchmarkRemoteFeedPage fills a RemoteVerifier with N live revocations
// through a snapshot of the feed (parts of 65,536 keys), then measures
// applying pages of one new revocation each: the time poll takes (an HTTP
// round trip on loopback plus the apply, during which the verifier's lock
// is held), i.e. what a logout's refusal waits for on top of the network.
// It reports the snapshot's time and the verifier's heap per revocation.
func BenchmarkRemoteFeedPage(b *testing.B) {
	for _, n := range benchRevocationCounts(b, 100_000, 330_000, 1_000_000) {
		b.Run(fmt.Sprintf("revocations=%d", n), func(b *testing.B) {
			// Served as authd serves a snapshot: from keys held by shard,
			// a part being whole shards from the one it is named after,
			// grouped by minute of expiry.
			r := rand.New(rand.NewPCG(2, uint64(n)))
			now := time.Now().Unix()
			var byShard [revShards][]revSlot
			for range n {
				k := revocationKeyOf(benchJTI(r))
				exp := uint32((bucketOf(now+30+r.Int64N(3600)) + 1) * expiryBucketSecs)
				byShard[shardOf(&k)] = append(byShard[shardOf(&k)], revSlot{key: k, exp: exp})
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				q := req.URL.Query()
				after, _ := strconv.Atoi(q.Get("after"))
				part, _ := strconv.Atoi(q.Get("part"))
				page := feedPage{Cursor: int64(after + 1), Cutoffs: []feedCutoff{}, Deleted: []feedDeletion{}}
				if after == 0 {
					page.Cursor, page.Reset, page.Part = 1, true, part
					byExp := map[int64][]byte{}
					shard, keys := part, 0
					for ; shard < revShards && keys < snapshotPartKeys; shard++ {
						for _, sl := range byShard[shard] {
							byExp[int64(sl.exp)] = append(byExp[int64(sl.exp)], sl.key[:]...)
						}
						keys += len(byShard[shard])
					}
					if shard < revShards {
						page.NextPart = shard
					}
					for exp, keys := range byExp {
						page.RevokedKeys = append(page.RevokedKeys, feedKeys{ExpiresAt: exp, Keys: keys})
					}
				} else {
					page.Revoked = []feedRevoked{{JTI: benchJTI(r), ExpiresAt: now + 30 + r.Int64N(3600)}}
				}
				json.NewEncoder(w).Encode(page)
			}))
			defer srv.Close()
			v := &RemoteVerifier{
				feedURL: srv.URL, feed: srv.Client(), clientID: "bench", secret: "bench", feedWait: time.Second,
				log: slog.New(slog.DiscardHandler), now: time.Now,
				revoked: newRevocationSet(0, false), cutoffs: map[string]int64{}, deleted: map[int64]bool{}, verified: map[[32]byte]*Claims{},
			}
			ctx := context.Background()
			before := heapAlloc()
			t0 := time.Now()
			if err := v.poll(ctx, 0); err != nil {
				b.Fatal(err)
			}
			snapshot := time.Since(t0)
			perRevocation := float64(heapAlloc()-before) / float64(n)
			if got := v.revoked.len(); got != n {
				b.Fatalf("%d revocations held, want %d", got, n)
			}
			cursor := int64(1)
			var slowest time.Duration
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				if err := v.poll(ctx, cursor); err != nil {
					b.Fatal(err)
				}
				slowest = max(slowest, time.Since(t0))
				cursor++
			}
			b.ReportMetric(float64(slowest.Microseconds()), "max-page-µs")
			b.ReportMetric(perRevocation, "B/revocation")
			b.ReportMetric(snapshot.Seconds(), "snapshot-s")
		})
	}
}

// BenchmarkClientCacheHeap fills an instance's client cache with records
// read from a store (SQLite, 20,000 clients with generated secrets and one
// scope, as authbench -scale seeds them) and reports the heap a cached
// client costs.
func BenchmarkClientCacheHeap(b *testing.B) {
	ctx := context.Background()
	a := newBenchAuth(b, testdb.SQLite(b), AlgEdDSA).a
	s := a.store
	const n = 20_000
	for i := range n {
		if _, _, err := a.CreateClient(ctx, NewClient{ID: fmt.Sprintf("scale-%09d", i), Scopes: []string{"scale:read"}}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		a.state.mu.Lock()
		clear(a.state.clients)
		a.state.mu.Unlock()
		before := heapAlloc()
		recs, err := s.listClients(ctx, "", "", n)
		if err != nil || len(recs) != n {
			b.Fatal(len(recs), err)
		}
		v := a.state.versionOfClients()
		for i := range recs {
			rec := recs[i] // a record of its own, as a lookup's
			a.state.fillClient(rec.ID, &rec, v)
		}
		recs = nil
		b.ReportMetric(float64(heapAlloc()-before)/n, "B/client")
	}
}
