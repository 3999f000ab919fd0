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
	if st.revoked.len() != len(m.exp) {
		t.Fatalf("now %d: %d revocations kept, want %d", now, st.revoked.len(), len(m.exp))
	}
	for jti, exp := range m.exp {
		if e, owner, ok := st.revoked.get(revocationKeyOf(jti)); !ok || int64(e) != exp || st.revokers.hash[owner] != revokerHash([]byte(m.client[jti])) {
			t.Fatalf("now %d: revocation %s (exp %d, client %s) forgotten before its exp, or changed", now, jti, exp, m.client[jti])
		}
	}
	if len(st.revokers.num) != len(counts) {
		t.Fatalf("now %d: counts for %d clients, want %d", now, len(st.revokers.num), len(counts))
	}
	for id, n := range counts {
		if k, ok := st.revokers.num[revokerHash([]byte(id))]; !ok || int(st.revokers.count[k]) != n {
			t.Fatalf("now %d: client %s not counted %d", now, id, n)
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
	st := newState(0)
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
			if old, live := m.exp[jti]; !live {
				m.exp[jti], m.client[jti] = exp, client
			} else {
				m.exp[jti] = max(old, exp) // the later exp, the first client
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
	for i := range revShards {
		if n := st.revoked.shards[i].n; n != 0 {
			t.Fatalf("shard %d holds %d when nothing is live", i, n)
		}
	}
	if len(st.revokers.free) != len(st.revokers.hash) || len(st.revokers.num) != 0 {
		t.Fatalf("%d client numbers of %d free when nothing is live", len(st.revokers.free), len(st.revokers.hash))
	}
}

// TestPurgeConcurrent: a purge in batches, while revocations are added and
// checked, never lets a live revocation through and keeps the counts (run
// with -race).
func TestPurgeConcurrent(t *testing.T) {
	st := newState(0)
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
	if st.revoked.len() != 2*n {
		t.Fatalf("%d revocations, want %d", st.revoked.len(), 2*n)
	}
}

// TestVerifiedCacheExpiry: cached tokens leave at their exp; a full cache
// drops the tokens that expire first, a few at a time.
func TestVerifiedCacheExpiry(t *testing.T) {
	st := newState(0)
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
// exp and forgets it after, through snapshots and incremental pages. A
// snapshot carries revocations by key, their exp rounded up to the end of
// its minute.
func TestRemoteVerifierExpiry(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	v := &RemoteVerifier{now: clock.Now, revoked: newRevocationSet(0, false), cutoffs: map[string]int64{}, deleted: map[int64]bool{}}
	now := clock.Now().Unix()
	snap := newRevocationSet(0, false)
	live := 0
	for i := range 1000 {
		k := revocationKeyOf(fmt.Sprint("s", i))
		exp := (bucketOf(now-100+int64(i)) + 1) * expiryBucketSecs
		snap.put(k, exp, 0)
		if exp >= now {
			live++
		}
	}
	v.apply(&feedPage{Cursor: 1, Reset: true}, snap, clock.Now())
	v.purgeExpired(clock.Now())
	if v.revoked.len() != live || live < 900 || live >= 960 {
		t.Fatalf("%d kept after the snapshot, want %d (900 and what ends in the minute now falls in)", v.revoked.len(), live)
	}
	clock.Add(200 * time.Second)
	now = clock.Now().Unix()
	v.apply(&feedPage{Cursor: 2, Revoked: []feedRevoked{{JTI: "p", ExpiresAt: now}, {JTI: "s999", ExpiresAt: now + 899}}}, nil, clock.Now())
	v.purgeExpired(clock.Now())
	for i := range 1000 {
		exp := (bucketOf(now-300+int64(i)) + 1) * expiryBucketSecs
		if i == 999 {
			exp = now + 899
		}
		_, _, ok := v.revoked.get(revocationKeyOf(fmt.Sprint("s", i)))
		if ok != (exp >= now) {
			t.Fatalf("revocation s%d of exp %d at %d: kept %v", i, exp, now, ok)
		}
	}
	if exp, _, _ := v.revoked.get(revocationKeyOf("p")); int64(exp) != now {
		t.Fatal("a revocation expiring now is forgotten")
	}
	if err := v.check(&Claims{ID: "p"}); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("check: %v", err)
	}
	// Purged at most once a minute.
	clock.Add(20 * time.Second)
	v.purgeExpired(clock.Now())
	if _, _, ok := v.revoked.get(revocationKeyOf("p")); !ok {
		t.Fatal("purged again within the minute")
	}
	// A snapshot replaces everything.
	only := newRevocationSet(0, false)
	only.put(revocationKeyOf("only"), now+10, 0)
	v.apply(&feedPage{Cursor: 3, Reset: true}, only, clock.Now())
	clock.Add(time.Minute)
	v.purgeExpired(clock.Now())
	if v.revoked.len() != 0 {
		t.Fatalf("after expiry: %d revocations", v.revoked.len())
	}
}

// TestRevocationSetModel: the open-addressing set agrees with a map
// through growth, sweeps that shift keys back across the table's end, and
// keys of every shape (random, counters, hashed), and gives each key its
// owner.
func TestRevocationSetModel(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	s := newRevocationSet(0, true)
	type entry struct{ exp, owner uint32 }
	model := map[revocationKey]entry{}
	key := func(i int) revocationKey {
		var k revocationKey
		switch i % 3 {
		case 0: // a counter's bytes, as another issuer's jti may be
			k[15] = byte(i)
			k[14] = byte(i >> 8)
			k[13] = byte(i >> 16)
		case 1:
			k = revocationKeyOf(fmt.Sprint("jti-", i))
		default:
			for j := range k {
				k[j] = byte(r.Uint32())
			}
		}
		return k
	}
	now := int64(1000)
	for round := range 60 {
		batch := make([]revocationKey, r.IntN(5000))
		for i := range batch {
			batch[i] = key(r.IntN(200_000))
		}
		// On odd rounds room is made first, as a snapshot's part does:
		// then no shard grows while the batch goes in.
		var sizes [revShards]int
		if round%2 == 1 {
			var more [revShards]int
			for i := range batch {
				more[shardOf(&batch[i])]++
			}
			s.reserve(&more)
			for i := range sizes {
				sizes[i] = len(s.shards[i].slots)
			}
		}
		for _, k := range batch {
			exp, owner := now+r.Int64N(600)-100, uint32(r.IntN(50))
			e, ok := model[k]
			if s.put(k, exp, owner) == ok {
				t.Fatalf("round %d: put reports new=%v for a key the model has=%v", round, !ok, ok)
			}
			if !ok {
				model[k] = entry{clampExp(exp), owner}
			} else {
				model[k] = entry{max(e.exp, clampExp(exp)), e.owner}
			}
		}
		for i := range sizes {
			if round%2 == 1 && len(s.shards[i].slots) != sizes[i] {
				t.Fatalf("round %d: shard %d grew from %d to %d slots after reserve", round, i, sizes[i], len(s.shards[i].slots))
			}
		}
		now += r.Int64N(120)
		dropped := map[uint32]int{}
		for i := range revShards {
			s.sweepShard(i, now, func(o uint32) { dropped[o]++ })
		}
		want := map[uint32]int{}
		for k, e := range model {
			if int64(e.exp) < now {
				want[e.owner]++
				delete(model, k)
			}
		}
		if fmt.Sprint(dropped) != fmt.Sprint(want) {
			t.Fatalf("round %d: dropped owners %v, want %v", round, dropped, want)
		}
		if s.len() != len(model) {
			t.Fatalf("round %d: %d held, model %d", round, s.len(), len(model))
		}
		for k, e := range model {
			if exp, owner, ok := s.get(k); !ok || exp != e.exp || owner != e.owner {
				t.Fatalf("round %d: key %x: %d %d %v, want %d %d", round, k, exp, owner, ok, e.exp, e.owner)
			}
		}
		seen := 0
		for i := range revShards {
			s.each(i, func(k revocationKey, exp uint32) {
				if model[k].exp != exp {
					t.Fatalf("each: key %x exp %d, model %d", k, exp, model[k].exp)
				}
				seen++
			})
		}
		if seen != len(model) {
			t.Fatalf("each saw %d, model %d", seen, len(model))
		}
	}
}
