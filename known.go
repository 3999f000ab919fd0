package authsvc

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Known addresses: which client authenticated successfully from which
// address in the last 24 hours. authhttp's throttle exempts such a pair from
// the limits that other clients' failures can exhaust, so that a flood of
// wrong secrets from elsewhere, or from a neighbour behind the same NAT,
// does not lock a working client out where it works.
//
// The memory is kept in the Authenticator, read on every login attempt
// without touching the store, and recorded in the store so that it
// survives a restart and is shared by the instances on one store:
//
//   - RememberAddress updates memory and queues a store write, at most one
//     per pair per hour; a background writer drains the queue (batched,
//     bounded; a full queue drops the write, a failed write is logged and
//     retried at the pair's next success). The login never waits for it.
//   - New loads the most recent pairs (up to knownMax); every minute the
//     follow loop reads the pairs recorded since its last read, so pairs
//     other instances learned arrive within a minute or so.
//   - Housekeeping deletes pairs older than 24 hours from the store; the
//     minute read drops them from memory.
//
// It is not in the change log: it is advisory (it relaxes limits on
// failures, it never lets anyone in), and a minute's delay is harmless.
const (
	knownFor          = 24 * time.Hour   // a success exempts its pair this long
	knownWriteEvery   = time.Hour        // at most one store write per pair per this
	knownTouchEvery   = time.Minute      // memory's last success is this precise (fewer write locks)
	knownRefreshEvery = time.Minute      // how often pairs recorded elsewhere are read
	knownRefreshSlack = 10 * time.Minute // reads overlap by this much (clock skew, queued writes)
	knownMax          = 100_000          // pairs in memory, and read from the store at most
	knownMaxPerClient = 4096             // addresses kept per client: one client cannot evict the others
	knownQueueLen     = 1024             // store writes waiting; beyond it they are dropped
	knownBatch        = 256              // store writes per transaction
	knownFlushTimeout = 5 * time.Second  // bound of a batch's write, and of Close's flush of the queue
	maxKnownAddrLen   = 64               // bytes of an address (an IP address as text: 45 at most, plus a zone)
)

// knownEntry is what memory keeps of a pair.
type knownEntry struct {
	last    time.Time // last success
	written time.Time // when the store last got (or was queued) a write of it
}

// knownAddrs is the in-memory side.
type knownAddrs struct {
	mu       sync.RWMutex                     // guards byClient, n
	byClient map[string]map[string]knownEntry // client_id → address → entry
	n        int                              // pairs in byClient
	queue    chan knownAddress                // store writes for the writer

	refresh sync.Mutex // guards since: one refresh at a time
	since   time.Time  // the next refresh reads pairs from here
}

func newKnownAddrs() *knownAddrs {
	return &knownAddrs{byClient: map[string]map[string]knownEntry{}, queue: make(chan knownAddress, knownQueueLen)}
}

// validKnown reports whether (clientID, addr) may be remembered: what the
// store can hold (checkLookupID's rule for the id; an address of storable
// text), so that the background writer never fails on it.
func validKnown(clientID, addr string) bool {
	return storableID(clientID) && addr != "" && len(addr) <= maxKnownAddrLen && storableText(addr)
}

// KnownAddress reports whether clientID authenticated successfully from
// addr in the last 24 hours: on this Authenticator (RememberAddress), before
// a restart, or on another instance on the same store (learned within about
// a minute). It reads memory only and never blocks on the store. addr is the
// caller's network address as text, as the HTTP layer tells it.
func (a *Authenticator) KnownAddress(clientID, addr string) bool {
	k := a.known
	k.mu.RLock()
	e, ok := k.byClient[clientID][addr]
	k.mu.RUnlock()
	return ok && a.now().Sub(e.last) < knownFor
}

// RememberAddress records that clientID has just authenticated successfully
// from addr (the caller's network address as text, at most 64 bytes; longer
// ones are not recorded). It returns at once: the record is written to the
// store in the background, at most once an hour per (clientID, addr), and a
// failed write is logged (and counted in Stats), never returned, so it can
// never fail a login. Call it only after the client's credentials checked.
func (a *Authenticator) RememberAddress(clientID, addr string) {
	if !validKnown(clientID, addr) {
		return
	}
	k := a.known
	now := a.now()
	k.mu.RLock()
	e, ok := k.byClient[clientID][addr]
	k.mu.RUnlock()
	if ok && !now.Before(e.last) && now.Sub(e.last) < knownTouchEvery {
		return // remembered a moment ago: no write lock per login
	}
	k.mu.Lock()
	e = k.byClient[clientID][addr]
	if now.After(e.last) {
		e.last = now
	}
	write := now.Sub(e.written) >= knownWriteEvery
	if write {
		e.written = now
	}
	k.put(clientID, addr, e)
	k.mu.Unlock()
	if !write {
		return
	}
	select {
	case k.queue <- knownAddress{ClientID: clientID, Addr: addr, At: now.Unix()}:
	default:
		a.stats.knownDropped.Add(1)
		k.unmark(clientID, addr) // the pair's next success tries again
	}
}

// put stores e for the pair, evicting old pairs when memory is full; k.mu
// is held for writing.
func (k *knownAddrs) put(clientID, addr string, e knownEntry) {
	addrs := k.byClient[clientID]
	if addrs == nil {
		addrs = map[string]knownEntry{}
		k.byClient[clientID] = addrs
	}
	if _, ok := addrs[addr]; !ok {
		if len(addrs) >= knownMaxPerClient {
			oldest, first := "", true
			for a, x := range addrs {
				if first || x.last.Before(addrs[oldest].last) {
					oldest, first = a, false
				}
			}
			delete(addrs, oldest)
			k.n--
		}
		if k.n >= knownMax {
			k.evictOldest(knownMax * 9 / 10)
		}
		k.n++
	}
	addrs[addr] = e
}

// evictOldest drops the pairs with the oldest last success until keep are
// left; k.mu is held for writing. Rare (once per knownMax/10 new pairs).
func (k *knownAddrs) evictOldest(keep int) {
	type pair struct {
		clientID, addr string
		last           time.Time
	}
	all := make([]pair, 0, k.n)
	for c, addrs := range k.byClient {
		for a, e := range addrs {
			all = append(all, pair{c, a, e.last})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].last.Before(all[j].last) })
	for _, p := range all[:max(0, len(all)-keep)] {
		k.remove(p.clientID, p.addr)
	}
}

// remove forgets a pair; k.mu is held for writing.
func (k *knownAddrs) remove(clientID, addr string) {
	addrs := k.byClient[clientID]
	if _, ok := addrs[addr]; !ok {
		return
	}
	delete(addrs, addr)
	k.n--
	if len(addrs) == 0 {
		delete(k.byClient, clientID)
	}
}

// unmark forgets that a pair's write was queued, so its next success
// queues another.
func (k *knownAddrs) unmark(clientID, addr string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.byClient[clientID][addr]; ok {
		e.written = time.Time{}
		k.byClient[clientID][addr] = e
	}
}

// merge adds pairs read from the store (they need no write until an hour
// after their recorded time) and drops pairs older than knownFor.
func (k *knownAddrs) merge(rows []knownAddress, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for c, addrs := range k.byClient {
		for a, e := range addrs {
			if now.Sub(e.last) >= knownFor {
				k.remove(c, a)
			}
		}
	}
	for _, r := range rows {
		at := time.Unix(r.At, 0)
		if now.Sub(at) >= knownFor || !validKnown(r.ClientID, r.Addr) {
			continue
		}
		e := k.byClient[r.ClientID][r.Addr]
		if at.After(e.last) {
			e.last = at
		}
		if at.After(e.written) {
			e.written = at
		}
		k.put(r.ClientID, r.Addr, e)
	}
}

// count is the number of pairs in memory.
func (k *knownAddrs) count() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.n
}

// refreshKnown reads the pairs recorded since the last read (by any
// instance) into memory; the first read, in New, takes the last 24 hours.
func (a *Authenticator) refreshKnown(ctx context.Context) error {
	k := a.known
	k.refresh.Lock()
	defer k.refresh.Unlock()
	now := a.now()
	since := now.Add(-knownFor)
	if !k.since.IsZero() && k.since.After(since) {
		since = k.since
	}
	rows, err := a.store.knownAddresses(ctx, since, knownMax)
	if err != nil {
		return err
	}
	k.merge(rows, now)
	k.since = now.Add(-knownRefreshEvery - knownRefreshSlack)
	return nil
}

// writeKnown is the background writer of RememberAddress's records. When
// ctx is done it finishes the write under way and writes what is still
// queued, each within knownFlushTimeout, so that a clean shutdown loses
// nothing.
func (a *Authenticator) writeKnown(ctx context.Context) {
	defer a.done.Done()
	batch := make([]knownAddress, 0, knownBatch)
	for {
		select {
		case <-ctx.Done():
			a.flushKnown(batch)
			return
		case r := <-a.known.queue:
			batch = a.known.drain(append(batch[:0], r))
			// Not cancelled by Close: a write under way finishes (bounded).
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), knownFlushTimeout)
			a.storeKnown(wctx, batch)
			cancel()
		}
	}
}

// flushKnown writes what is still queued, within knownFlushTimeout.
func (a *Authenticator) flushKnown(batch []knownAddress) {
	ctx, cancel := context.WithTimeout(context.Background(), knownFlushTimeout)
	defer cancel()
	for ctx.Err() == nil {
		if batch = a.known.drain(batch[:0]); len(batch) == 0 {
			return
		}
		a.storeKnown(ctx, batch)
	}
}

// drain appends what is queued to batch, up to knownBatch, without waiting.
func (k *knownAddrs) drain(batch []knownAddress) []knownAddress {
	for len(batch) < knownBatch {
		select {
		case r := <-k.queue:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// storeKnown writes one batch; a failure is logged and counted, and the
// pairs are unmarked so that their next success tries again.
func (a *Authenticator) storeKnown(ctx context.Context, batch []knownAddress) {
	if err := a.store.rememberAddresses(ctx, batch); err != nil {
		a.log.Warn("authsvc: recording the addresses clients authenticated from failed (logins are not affected)",
			"pairs", len(batch), "err", err)
		for _, r := range batch {
			a.known.unmark(r.ClientID, r.Addr)
		}
		// Counted last: whoever watches the count sees the rest done.
		a.stats.knownWriteErrors.Add(uint64(len(batch)))
		return
	}
	a.stats.knownWrites.Add(uint64(len(batch)))
}
