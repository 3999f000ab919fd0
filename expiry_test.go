package authsvc

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// revModel is what the state must hold: every revocation not expired.
type revModel struct {
	exp    map[string]int64
	client map[string]string
}

func (m *revModel) check(t *testing.T, st *state, now int64) {
	t.Helper()
	counts := map[string]int{}
	for jti, exp := range m.exp {
		if exp < now {
			delete(m.exp, jti)
			continue
		}
		counts[m.client[jti]]++
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	if len(st.revoked) != len(m.exp) {
		t.Fatalf("now %d: %d revocations kept, want %d", now, len(st.revoked), len(m.exp))
	}
	for jti, exp := range m.exp {
		if r, ok := st.revoked[jti]; !ok || r.exp != exp {
			t.Fatalf("now %d: revocation %s (exp %d) forgotten before its exp", now, jti, exp)
		}
	}
	if len(st.revokedBy) != len(counts) {
		t.Fatalf("now %d: counts for %d clients, want %d", now, len(st.revokedBy), len(counts))
	}
	for id, n := range counts {
		if c := st.revokedBy[id]; c == nil || c.n != n || c.id != id {
			t.Fatalf("now %d: client %s counted %+v, want %d", now, id, c, n)
		}
	}
}

// TestPurgeExpiredExact: revocations expire exactly as before the expiry
// buckets: each is kept while exp >= now and dropped by the first purge
// after (none forgotten early, none kept after); per-client counts follow.
// Exps are spread over seconds within and across buckets, some already
// past when revoked, some revoked twice or again after their purge.
func TestPurgeExpiredExact(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	st := newState()
	m := &revModel{exp: map[string]int64{}, client: map[string]string{}}
	const base = 1_700_000_000
	now := int64(base)
	var jtis []string
	for round := range 200 {
		for range r.IntN(300) {
			var jti string
			if len(jtis) > 0 && r.IntN(10) == 0 {
				jti = jtis[r.IntN(len(jtis))] // again: ignored while live, back if purged
			} else {
				jti = fmt.Sprintf("jti-%d-%d", round, r.Uint32())
				jtis = append(jtis, jti)
			}
			exp := now - 120 + r.Int64N(1800)
			client := fmt.Sprintf("client-%d", r.IntN(5))
			if _, live := m.exp[jti]; !live {
				m.exp[jti], m.client[jti] = exp, client
			}
			st.revoke(jti, client, exp)
		}
		now += r.Int64N(90) // within a bucket, across one, or several
		st.purgeExpired(now)
		m.check(t, st, now)
		for c := range 5 {
			id := fmt.Sprintf("client-%d", c)
			want := 0
			for jti := range m.exp {
				if m.client[jti] == id {
					want++
				}
			}
			if got := st.liveRevocations(id); got != want {
				t.Fatalf("liveRevocations(%s) = %d, want %d", id, got, want)
			}
		}
	}
	st.purgeExpired(now + 3600)
	m.check(t, st, now+3600)
	if n := len(st.revokedExp.buckets); n != 0 {
		t.Fatalf("%d buckets left when nothing is live", n)
	}
}

// TestPurgeConcurrent: a purge in batches, while revocations are added and
// checked, never lets a live revocation through and keeps the counts (run
// with -race).
func TestPurgeConcurrent(t *testing.T) {
	st := newState()
	const now = int64(1_700_000_000)
	const n = 20_000
	for i := range n {
		st.revoke(fmt.Sprintf("old-%d", i), "a", now-1-int64(i%600)) // expired
		st.revoke(fmt.Sprintf("live-%d", i), "b", now+int64(i%600))  // live
	}
	var wg sync.WaitGroup
	wg.Go(func() { st.purgeExpired(now) })
	wg.Go(func() {
		for i := range n {
			st.revoke(fmt.Sprintf("new-%d", i), "b", now+int64(i%90))
		}
	})
	wg.Go(func() {
		for i := range n {
			if _, err := st.check(&Claims{ID: fmt.Sprintf("live-%d", i)}); !errors.Is(err, ErrTokenRevoked) {
				t.Errorf("live revocation %d let through during the purge: %v", i, err)
				return
			}
		}
	})
	wg.Wait()
	st.purgeExpired(now)
	if a, b := st.liveRevocations("a"), st.liveRevocations("b"); a != 0 || b != 2*n {
		t.Fatalf("counts a=%d b=%d, want 0 and %d", a, b, 2*n)
	}
	if len(st.revoked) != 2*n {
		t.Fatalf("%d revocations, want %d", len(st.revoked), 2*n)
	}
}

// TestVerifiedCacheExpiry: cached tokens leave at their exp; a full cache
// drops the tokens that expire first, a few at a time.
func TestVerifiedCacheExpiry(t *testing.T) {
	st := newState()
	const now = int64(1_700_000_000)
	for i := range maxVerifiedTokens {
		c := &Claims{ID: fmt.Sprint(i), ExpiresAt: now + int64(i%3600)}
		st.remember(tokenKey(c.ID), c, now)
	}
	if len(st.verified) != maxVerifiedTokens {
		t.Fatalf("%d cached", len(st.verified))
	}
	// Full: the next one drops a few of those expiring first.
	late := &Claims{ID: "late", ExpiresAt: now + 7200}
	st.remember(tokenKey("late"), late, now)
	if n := len(st.verified); n > maxVerifiedTokens || n < maxVerifiedTokens-evictBatch {
		t.Fatalf("%d cached after an insert into a full cache", n)
	}
	// Only from the first bucket (exps now-20 .. now+39: now is 20 s
	// into its minute).
	for i := range maxVerifiedTokens {
		if i%3600 >= 40 && st.cachedClaims(tokenKey(fmt.Sprint(i))) == nil {
			t.Fatalf("token %d (exp now+%d) evicted before those expiring first", i, i%3600)
		}
	}
	if st.cachedClaims(tokenKey("late")) != late {
		t.Fatal("the new token is not cached")
	}
	st.purgeExpired(now + 1800)
	for _, c := range st.verified {
		if c.ExpiresAt < now+1800 {
			t.Fatalf("token of exp %d kept after a purge at %d", c.ExpiresAt, now+1800)
		}
	}
	kept := 0
	for i := 1800; i < 3600; i++ {
		if st.cachedClaims(tokenKey(fmt.Sprint(i))) != nil {
			kept++
		}
	}
	if kept != 1800 {
		t.Fatalf("%d of the unexpired tokens 1800..3599 kept, want 1800", kept)
	}
}

// TestRemoteVerifierExpiry: a RemoteVerifier keeps a revocation until its
// exp and forgets it after, through snapshots and incremental pages.
func TestRemoteVerifierExpiry(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	v := &RemoteVerifier{now: clock.Now, revoked: map[string]int64{}, cutoffs: map[string]int64{}, deleted: map[int64]bool{}}
	now := clock.Now().Unix()
	var snap []feedRevoked
	for i := range 1000 {
		snap = append(snap, feedRevoked{JTI: fmt.Sprint("s", i), ExpiresAt: now - 100 + int64(i)})
	}
	v.apply(&feedPage{Cursor: 1, Reset: true, Revoked: snap}, clock.Now())
	v.purgeExpired(now)
	if len(v.revoked) != 900 {
		t.Fatalf("%d kept after the snapshot, want 900", len(v.revoked))
	}
	clock.Add(200 * time.Second)
	now = clock.Now().Unix()
	v.apply(&feedPage{Cursor: 2, Revoked: []feedRevoked{{JTI: "p", ExpiresAt: now}, {JTI: "s999", ExpiresAt: now + 899}}}, clock.Now())
	v.purgeExpired(now)
	for i := range 1000 {
		exp := now - 300 + int64(i)
		_, ok := v.revoked[fmt.Sprint("s", i)]
		if ok != (exp >= now) {
			t.Fatalf("revocation of exp %d at %d: kept %v", exp, now, ok)
		}
	}
	if v.revoked["p"] != now {
		t.Fatal("a revocation expiring now is forgotten")
	}
	if err := v.check(&Claims{ID: "p"}); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("check: %v", err)
	}
	// A snapshot replaces everything, the index too.
	v.apply(&feedPage{Cursor: 3, Reset: true, Revoked: []feedRevoked{{JTI: "only", ExpiresAt: now + 10}}}, clock.Now())
	v.purgeExpired(now + 11)
	if len(v.revoked) != 0 || len(v.revokedExp.buckets) != 0 {
		t.Fatalf("after expiry: %d revocations, %d buckets", len(v.revoked), len(v.revokedExp.buckets))
	}
}
