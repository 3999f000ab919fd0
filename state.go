package authsvc

import (
	"context"
	"crypto/sha256"
	"errors"
	"hash/maphash"
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// state is what the hot paths read instead of the store: the clients, the
// live revocations and the tokens already verified. It follows the store's
// change log, so a change made by any instance (or by the CLI on the same
// database) reaches it: at once through the Authenticator that made it,
// within milliseconds through PostgreSQL's NOTIFY, and within PollInterval
// in any case.
type state struct {
	mu sync.RWMutex // guards every field below
	// clients is a bounded cache of client records (maxClients), filled
	// from the store on a miss and kept current by the change log: with
	// ten million clients, holding them all made start take a minute and
	// seven gigabytes (issue 15).
	clients    map[string]*clientRecord
	maxClients int
	deleted    map[int64]bool // row ids of clients deleted within a token's lifetime before start, or since: never stored again
	revoked    *revocationSet // each revocation's owner is its client's number in revokers
	// revokers counts each client's live revocations, so that no client
	// can grow them without bound (Config.MaxRevocationsPerClient).
	revokers revokers
	verified map[[32]byte]*Claims
	// loading: revoked does not hold every live revocation yet (see
	// loadInBackground). Read without the lock.
	loading atomic.Bool
	// verifiedExp: the keys of verified, by the tokens' exp.
	verifiedExp expiryIndex[[32]byte]
	cursor      logPos // the last change applied (its ID is the feed's cursor)
	// clientsVersion counts the client changes applied (this instance's
	// own writes, and the change log's), not cache fills: a fill that read
	// the store before a change must not cache what it read, and what is
	// derived from every client (ScopesSupported) is read again after one.
	clientsVersion uint64
	ownChanges     uint64    // the client changes this instance made (putClient)
	synced         time.Time // when the store last answered a catch-up
	healthy        bool      // the last catch-up succeeded

	// changed is closed and replaced whenever a change is applied, so that
	// long-polling feeds can wait for one.
	changed chan struct{}
}

// maxVerifiedTokens bounds the verified-token cache.
const maxVerifiedTokens = 100_000

// defaultMaxClients is the client cache's size when Config.ClientCacheSize
// is zero.
const defaultMaxClients = 100_000

func newState(maxClients int) *state {
	if maxClients <= 0 {
		maxClients = defaultMaxClients
	}
	return &state{
		clients:    make(map[string]*clientRecord),
		maxClients: maxClients,
		deleted:    make(map[int64]bool),
		revoked:    newRevocationSet(0, true),
		verified:   make(map[[32]byte]*Claims),
		changed:    make(chan struct{}),
	}
}

// load fills the state from the store: the live revocations and the recent
// deletions, with the client cache emptied (clients are read as they are
// used; New warms the cache in the background). The cursor is read first, so a
// change made while loading is applied again by the next catch-up (applying
// a change twice is harmless); the keys are reloaded after it, so that the
// state never claims a key change it has not applied (the revocation feed
// announces what the state has applied).
//
// deletedSince is as far back as a live token can have been issued: the
// clients deleted since then are remembered, so that their tokens are
// refused from memory.
func (st *state) load(ctx context.Context, store Store, now, deletedSince time.Time, reloadKeys func(context.Context) error) error {
	cursor, deletions, err := loadStart(ctx, store, deletedSince, reloadKeys)
	if err != nil {
		return err
	}
	revoked, revokers, err := loadRevocations(ctx, store, now)
	if err != nil {
		return err
	}
	st.install(cursor, deletions, revoked, revokers, now)
	return nil
}

// loadStart reads what every load begins with: the cursor, the keys and
// the recent deletions.
func loadStart(ctx context.Context, store Store, deletedSince time.Time, reloadKeys func(context.Context) error) (logPos, []change, error) {
	cursor, err := store.lastChange(ctx)
	if err != nil {
		return logPos{}, nil, err
	}
	if err := reloadKeys(ctx); err != nil {
		return logPos{}, nil, err
	}
	deletions, err := store.deletions(ctx, deletedSince)
	return cursor, deletions, err
}

// install replaces the state with what a load read.
func (st *state) install(cursor logPos, deletions []change, revoked *revocationSet, revokers revokers, now time.Time) {
	// Replace, not merge: load also serves to recover after an outage long
	// enough that the change log may have been purged of what was missed
	// (a deletion, a rotation), so nothing of the old state may survive.
	st.mu.Lock()
	defer st.mu.Unlock()
	// The client cache starts empty: clients are read as they are used.
	st.clients, st.revoked, st.revokers = make(map[string]*clientRecord), revoked, revokers
	st.clientsVersion++
	for _, d := range deletions {
		st.deleted[d.RowID] = true
	}
	clear(st.verified)
	st.verifiedExp = expiryIndex[[32]byte]{}
	st.cursor, st.synced, st.healthy = cursor, now, true
	st.notifyLocked()
}

// loadInBackground is load for a starting instance, which need not wait
// for millions of revocations to be in memory before it serves: it reads
// the cursor, keys and deletions now, and returns finish, which reads the
// revocations (run it on another goroutine; it retries until ctx is done).
// Until they are in (loading), revocations applied by catch-ups go to an
// interim set, merged at the end, and a token not refused by memory is
// looked up in the store (see Authenticator.verify).
func (st *state) loadInBackground(ctx context.Context, store Store, now, deletedSince time.Time, reloadKeys func(context.Context) error) (finish func(ctx context.Context, log func(error)), err error) {
	cursor, deletions, err := loadStart(ctx, store, deletedSince, reloadKeys)
	if err != nil {
		return nil, err
	}
	st.loading.Store(true)
	st.install(cursor, deletions, newRevocationSet(0, true), revokers{}, now)
	return func(ctx context.Context, log func(error)) {
		for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
			revoked, counts, err := loadRevocations(ctx, store, now)
			if err == nil {
				// Counted before the merge: after it the set may be the
				// state's, written under its lock by revocations.
				n := revoked.len()
				st.mergeLoaded(revoked, counts)
				if n >= bigLoad {
					// The load's garbage (the driver's rows, about as much
					// again as the set) would otherwise be held by the
					// process for minutes, until the runtime's scavenger
					// returns it: a ten-million load idled at twice its
					// live heap. Once, at start.
					debug.FreeOSMemory()
				}
				return
			}
			if ctx.Err() != nil {
				return
			}
			log(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}, nil
}

// bigLoad is how many revocations make a background load return its
// garbage to the operating system at once.
const bigLoad = 500_000

// mergeLoaded installs the revocations a background load read, with those
// applied meanwhile.
func (st *state) mergeLoaded(revoked *revocationSet, counts revokers) {
	st.mu.Lock()
	defer st.mu.Unlock()
	interim, interimCounts := st.revoked, st.revokers
	for i := range revShards {
		sh := &interim.shards[i]
		for j, sl := range sh.slots {
			if sl.exp != 0 {
				n := counts.number(interimCounts.hash[sh.owner[j]])
				counts.add(n, revoked.put(sl.key, int64(sl.exp), n))
			}
		}
	}
	st.revoked, st.revokers = revoked, counts
	st.loading.Store(false)
	st.notifyLocked()
}

// loadRevocations reads the live revocations into a new set. The rows are
// decoded on one goroutine and put in the set on another, in batches:
// with millions of them, the driver's decoding and the set's random
// writes each take about half the time, and overlap.
func loadRevocations(ctx context.Context, store Store, now time.Time) (*revocationSet, revokers, error) {
	type row struct {
		key    revocationKey
		client uint64 // revokerHash of its client_id
		exp    int64
	}
	const batch = 4096
	batches, free := make(chan []row, 4), make(chan []row, 4)
	// Sized at once when the store can tell about how many: growing
	// through every size on the way leaves garbage of every size.
	set, counts := newRevocationSet(store.revocationEstimate(ctx), true), revokers{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range batches {
			for i := range b {
				n := counts.number(b[i].client)
				counts.add(n, set.put(b[i].key, b[i].exp, n))
			}
			select {
			case free <- b[:0]:
			default:
			}
		}
	}()
	cur := make([]row, 0, batch)
	_, err := store.revocations(ctx, now, func(jti, clientID []byte, exp int64) {
		cur = append(cur, row{revocationKeyOf(string(jti)), revokerHash(clientID), exp})
		if len(cur) == batch {
			batches <- cur
			select {
			case cur = <-free:
			default:
				cur = make([]row, 0, batch)
			}
		}
	})
	batches <- cur
	close(batches)
	<-done
	return set, counts, err
}

// errFellBehind: the change log no longer keeps the change a follower's
// cursor names (housekeeping purged past it, or the store was replaced):
// only a reload (load) catches up.
var errFellBehind = errors.New("authsvc: the change log was purged past this instance's cursor: reloading")

// client returns the in-memory record of a client, or nil.
func (st *state) client(id string) *clientRecord {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.clients[id]
}

// putClient stores a client's newest record, written by this instance
// (nil: it was deleted). A record of a client known to be deleted is not
// stored again: a lookup that read the store just before the deletion must
// not bring it back.
func (st *state) putClient(id string, rec *clientRecord) {
	st.mu.Lock()
	st.ownChanges++
	st.mu.Unlock()
	st.refreshClient(id, rec)
}

// refreshClient is putClient for a record the change log said changed.
func (st *state) refreshClient(id string, rec *clientRecord) {
	st.mu.Lock()
	st.refreshClientLocked(id, rec)
	st.mu.Unlock()
}

// refreshClientLocked is refreshClient with st.mu held.
func (st *state) refreshClientLocked(id string, rec *clientRecord) {
	switch {
	case rec == nil:
		if old := st.clients[id]; old != nil {
			st.deleted[old.RowID] = true
		}
		delete(st.clients, id)
	case !st.deleted[rec.RowID]:
		st.cacheLocked(id, rec)
	}
	st.clientsVersion++
	st.notifyLocked()
}

// refreshClientRead is refreshClient for a record read from the store
// when clientsVersion was version. If a client change was applied since
// (this instance's own write of the same client, above all), the record
// may be older than what memory holds: it is dropped instead, and the
// client's next use reads the store. Else an update made here (an admin
// demoted) could be undone in memory by the catch-up of an earlier change
// that read the store just before it, until the next catch-up.
func (st *state) refreshClientRead(id string, rec *clientRecord, version uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.clientsVersion != version {
		delete(st.clients, id)
		st.clientsVersion++
		st.notifyLocked()
		return
	}
	st.refreshClientLocked(id, rec)
}

// fillClient caches a record read from the store on a miss, unless a
// client change was applied since the read began (at version): the record
// may predate it, and the change's catch-up did not refresh a client that
// was not cached.
func (st *state) fillClient(id string, rec *clientRecord, version uint64) {
	st.mu.Lock()
	if st.clientsVersion == version && !st.deleted[rec.RowID] {
		st.cacheLocked(id, rec)
	}
	st.mu.Unlock()
}

// cacheLocked puts a record in the cache, making room when it is full by
// dropping a few records at random (map order): a client dropped is read
// again on its next use.
func (st *state) cacheLocked(id string, rec *clientRecord) {
	if _, ok := st.clients[id]; !ok && len(st.clients) >= st.maxClients {
		drop := max(1, st.maxClients/100)
		for k := range st.clients {
			delete(st.clients, k)
			if drop--; drop == 0 {
				break
			}
		}
	}
	st.clients[id] = rec
}

// versionOfClients is clientsVersion (see fillClient).
func (st *state) versionOfClients() uint64 {
	v, _ := st.clientChanges()
	return v
}

// clientChanges returns clientsVersion and ownChanges.
func (st *state) clientChanges() (all, own uint64) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.clientsVersion, st.ownChanges
}

// revokers numbers the clients that have live revocations, so that a
// revocation names its client in four bytes, and counts each one's. A
// client is known by a 64-bit hash of its id (maphash, seeded per
// process): a million clients with revocations are a map of numbers, not
// of strings, and two ids that collide (about one chance in 10^13 among a
// million) would only share a bound. The state's lock guards it; the zero
// value is ready.
type revokers struct {
	num   map[uint64]uint32 // by hash
	hash  []uint64          // by number
	count []int32           // by number; 0 for a free number
	free  []uint32
}

var revokerSeed = maphash.MakeSeed()

func revokerHash(id []byte) uint64 { return maphash.Bytes(revokerSeed, id) }

// number returns the number of the client whose id hashes to h (see
// revokerHash), giving it one if it has none; the caller then says with
// add whether it counted a revocation with it.
func (r *revokers) number(h uint64) uint32 {
	if n, ok := r.num[h]; ok {
		return n
	}
	if r.num == nil {
		r.num = make(map[uint64]uint32)
	}
	var n uint32
	if last := len(r.free) - 1; last >= 0 {
		n, r.free = r.free[last], r.free[:last]
		r.hash[n] = h
	} else {
		n = uint32(len(r.hash))
		r.hash, r.count = append(r.hash, h), append(r.count, 0)
	}
	r.num[h] = n
	return n
}

// add counts a revocation of the client numbered n, put in the set (added)
// or not (a duplicate): a number counting nothing is freed.
func (r *revokers) add(n uint32, added bool) {
	if added {
		r.count[n]++
	} else if r.count[n] == 0 {
		r.release(n)
	}
}

// drop uncounts a revocation of client number n.
func (r *revokers) drop(n uint32) {
	if int(n) >= len(r.count) || r.count[n] <= 0 {
		return
	}
	if r.count[n]--; r.count[n] == 0 {
		r.release(n)
	}
}

func (r *revokers) release(n uint32) {
	delete(r.num, r.hash[n])
	r.free = append(r.free, n)
}

// live is how many live revocations client id has.
func (r *revokers) live(id string) int {
	if n, ok := r.num[maphash.String(revokerSeed, id)]; ok {
		return int(r.count[n])
	}
	return 0
}

// revoke records a revocation; recording one twice changes nothing (an
// instance's own revocations come back through the change log).
func (st *state) revoke(jti, clientID string, exp int64) {
	k := revocationKeyOf(jti)
	st.mu.Lock()
	n := st.revokers.number(revokerHash([]byte(clientID)))
	st.revokers.add(n, st.revoked.put(k, exp, n))
	st.notifyLocked()
	st.mu.Unlock()
}

// eachRevocation calls f with each revocation of one shard of the set,
// under the read lock, and returns how many.
func (st *state) eachRevocation(shard int, f func(k revocationKey, exp uint32)) int {
	st.mu.RLock()
	defer st.mu.RUnlock()
	n := 0
	st.revoked.each(shard, func(k revocationKey, exp uint32) { f(k, exp); n++ })
	return n
}

// revocationCount is how many revocations memory holds.
func (st *state) revocationCount() int {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.revoked.len()
}

// liveRevocations is how many unexpired revocations a client has.
func (st *state) liveRevocations(clientID string) int {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.revokers.live(clientID)
}

func (st *state) notifyLocked() {
	close(st.changed)
	st.changed = make(chan struct{})
}

// waitChange returns a channel closed at the next applied change.
func (st *state) waitChange() <-chan struct{} {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.changed
}

func tokenKey(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// cachedClaims returns the claims of a token verified before, or nil.
func (st *state) cachedClaims(k [32]byte) *Claims {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.verified[k]
}

// remember caches a verified token's claims; they are dropped when the
// token expires, and every use re-checks revocation and the client.
func (st *state) remember(k [32]byte, c *Claims, now int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.verified[k]; ok {
		return // remembered by a concurrent Verify of the same token
	}
	if len(st.verified) >= maxVerifiedTokens {
		// Full: drop the tokens that expire first (the expired ones
		// among them), a few at a time, not a scan of the whole cache.
		st.verifiedExp.sweep(math.MaxInt64, evictBatch, st.dropVerified(math.MaxInt64))
	}
	st.verified[k] = c
	st.verifiedExp.add(k, c.ExpiresAt)
}

// evictBatch is how many cached tokens a full cache drops at once.
const evictBatch = 64

// dropVerified is the sweep's drop function for the verified-token cache:
// it drops a token that expired before now.
func (st *state) dropVerified(now int64) func([32]byte, int64) bool {
	return func(k [32]byte, b int64) bool {
		c, ok := st.verified[k]
		switch {
		case !ok || bucketOf(c.ExpiresAt) != b:
			return true // gone, or indexed again elsewhere
		case c.ExpiresAt >= now:
			return false
		}
		delete(st.verified, k)
		return true
	}
}

// check applies what the store knows to verified claims: revocation, the
// client's existence (same row id) and its cut-off. It returns the client's
// record when known, or nil when the client is not in memory.
func (st *state) check(c *Claims) (*clientRecord, error) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.revoked.has(revocationKeyOf(c.ID)) {
		return nil, ErrTokenRevoked
	}
	rec := st.clients[c.Subject]
	if rec == nil {
		if st.deleted[c.ClientRowID] {
			// Refused from memory: a deleted client's tokens must not
			// cost a store round trip each (anyone holding one could
			// load the database with it).
			return nil, errClientDeleted
		}
		return nil, nil
	}
	if err := checkClient(c, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

func checkClient(c *Claims, rec *clientRecord) error {
	// A client deleted and created again under the same client_id gets a
	// new row id: the old client's tokens stay refused.
	if rec.RowID != c.ClientRowID {
		return errClientDeleted
	}
	if !rec.TokensValidAfter.IsZero() && c.IssuedAt < rec.TokensValidAfter.Unix() {
		return errClientCutOff
	}
	return nil
}

var (
	errClientDeleted = wrapErr(ErrTokenRevoked, "client deleted")
	errClientCutOff  = wrapErr(ErrTokenRevoked, "client logged out everywhere")
)

// catchUp applies the store's changes after the cursor. reloadKeys is
// called when the key set changed. pending reports that committed changes
// are held back behind a transaction still in flight (ask again shortly);
// errFellBehind that the cursor fell off the log's end (reload instead).
func (st *state) catchUp(ctx context.Context, store Store, now time.Time, reloadKeys func(context.Context) error) (pending bool, err error) {
	st.mu.RLock()
	cursor := st.cursor
	st.mu.RUnlock()
	for {
		page, err := store.changes(ctx, cursor.ID, 500)
		if err != nil {
			st.setHealthy(false)
			return false, err
		}
		if page.Gone {
			return false, errFellBehind
		}
		keys := false
		// Held changes are applied now (a transaction of another program
		// on the same server may hold them back for long: a revocation
		// must not wait for it), but only page.Changes move the cursor.
		for i, c := range append(page.Changes, page.Held...) {
			switch c.Kind {
			case changeRevoke:
				st.revoke(c.JTI, c.ClientID, c.ExpiresAt)
			case changeClient:
				if st.client(c.ClientID) == nil {
					// Not cached: its next use reads it from the store.
					st.mu.Lock()
					st.clientsVersion++
					st.mu.Unlock()
					break
				}
				version := st.versionOfClients()
				rec, err := store.client(ctx, c.ClientID)
				if errors.Is(err, ErrClientNotFound) {
					rec, err = nil, nil // deleted since: a later change says so
				}
				if err != nil {
					st.setHealthy(false)
					return false, err
				}
				if rec != nil {
					st.refreshClientRead(c.ClientID, rec, version)
				}
			case changeClientDeleted:
				st.mu.Lock()
				st.deleted[c.RowID] = true
				if rec := st.clients[c.ClientID]; rec != nil && rec.RowID == c.RowID {
					delete(st.clients, c.ClientID)
				}
				st.clientsVersion++
				st.notifyLocked()
				st.mu.Unlock()
			case changeKey:
				keys = true
			}
			if i < len(page.Changes) {
				cursor = c.pos()
			}
		}
		if keys {
			if err := reloadKeys(ctx); err != nil {
				st.setHealthy(false)
				return false, err
			}
		}
		st.mu.Lock()
		if cursor.after(st.cursor) {
			st.cursor = cursor
		}
		st.synced, st.healthy = now, true
		if len(page.Changes) > 0 || len(page.Held) > 0 {
			st.notifyLocked() // wake long-polling feeds (key changes too)
		}
		st.mu.Unlock()
		if len(page.Changes) < 500 {
			return page.Pending, nil
		}
	}
}

// applied is the place of the last change the state has applied.
func (st *state) applied() logPos {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.cursor
}

func (st *state) setHealthy(ok bool) {
	st.mu.Lock()
	st.healthy = ok
	st.mu.Unlock()
}

// freshness reports when the store last answered and whether it did the
// last time it was asked.
func (st *state) freshness() (time.Time, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.synced, st.healthy
}

// purgeExpired drops revocations and cached tokens past their exp (exp <
// now): the revocations a shard per hold of the lock, the cached tokens
// from their oldest expiry buckets, purgeBatch keys per hold, so that a
// Verify waits for one small batch at most. It returns the longest hold,
// that wait's bound.
func (st *state) purgeExpired(now int64) (longestHold time.Duration) {
	held := func(f func()) {
		st.mu.Lock()
		t0 := time.Now()
		f()
		longestHold = max(longestHold, time.Since(t0))
		st.mu.Unlock()
	}
	for i := range revShards {
		// The set may have been replaced by a reload meanwhile: each
		// shard is swept in whichever set is current.
		held(func() { st.revoked.sweepShard(i, now, st.revokers.drop) })
	}
	dropVerified := st.dropVerified(now)
	for more := true; more; {
		held(func() { more = st.verifiedExp.sweep(now, purgeBatch, dropVerified) })
	}
	return longestHold
}
