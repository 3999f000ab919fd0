package authhttp

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/authsvc/authsvc"
)

// Throttle sets the limits on failed client authentications that RFC 6749
// §2.3.1 asks of a token endpoint, so that secrets cannot be brute-forced.
// Only failures (an unknown client_id or a wrong secret) count; an attempt
// over a limit is answered 429 with Retry-After and its secret is not
// checked. Three limits apply, each a bucket of failures that refills:
//
//   - Pair: one client_id from one address (default 10 failures, then one
//     more every 30 s). A client's own wrong secrets stop here, and stop
//     only that client at that address.
//   - Address: one address across client_ids, against password spraying
//     (default 100, then one every 6 s).
//   - Client: one client_id across addresses, against a distributed attack
//     on one client (default 50, then one per second).
//
// A client that authenticated successfully from an address in the last 24
// hours (authsvc.Authenticator.KnownAddress: kept in the store, so it
// survives restarts and is shared by instances) is exempt there from the
// Address and Client limits: other clients' failures never refuse it. Its
// own Pair limit still applies, so a stolen client_id used from a known
// address cannot guess without bound. A success refills the pair's bucket.
//
// Attempts in flight count against the buckets they are checked against,
// so parallel requests cannot check more secrets than a bucket holds; a
// known pair may have up to 256 attempts in flight whatever its bucket
// holds, but a failure is charged even when the bucket is empty (it then
// owes it), so over time it still gets no more than its refill rate.
//
// The zero value is the defaults; a zero field of a ThrottleLimit is that
// field's default.
type Throttle struct {
	// Off turns every limit off. Only for tests, or behind a proxy that
	// limits failures the same way: without limits a client secret can be
	// guessed at the speed of the network.
	Off bool

	Pair    ThrottleLimit // one client_id from one address; default 10 / 30 s
	Address ThrottleLimit // one address, any client_id; default 100 / 6 s
	Client  ThrottleLimit // one client_id, any address; default 50 / 1 s
}

// ThrottleLimit is one limit of a Throttle: Burst failures at once, then
// one more every Every. Zero (or negative) fields take the limit's default.
type ThrottleLimit struct {
	Off   bool // this limit is not applied
	Burst int
	Every time.Duration
}

// The throttle's dimensions, in the order they are checked, and their
// names in the log, the metrics and the configuration.
const (
	limitPair = iota
	limitAddress
	limitClient
	numLimits
)

var limitNames = [numLimits]string{"pair", "address", "client"}

// defaultThrottle is the zero Throttle's limits.
var defaultThrottle = Throttle{
	Pair:    ThrottleLimit{Burst: 10, Every: 30 * time.Second},
	Address: ThrottleLimit{Burst: 100, Every: 6 * time.Second},
	Client:  ThrottleLimit{Burst: 50, Every: time.Second},
}

// limits returns t's limits with the defaults filled in, by dimension.
func (t Throttle) limits() [numLimits]ThrottleLimit {
	given := [numLimits]ThrottleLimit{t.Pair, t.Address, t.Client}
	def := [numLimits]ThrottleLimit{defaultThrottle.Pair, defaultThrottle.Address, defaultThrottle.Client}
	for i := range given {
		if given[i].Burst <= 0 {
			given[i].Burst = def[i].Burst
		}
		if given[i].Every <= 0 {
			given[i].Every = def[i].Every
		}
	}
	return given
}

const (
	throttleLimit = 100_000 // buckets per dimension before idle ones are swept
	knownInflight = 64      // attempts in flight at once for a known pair with no recent failure
	maxKeyLen     = 64      // longer addresses are keyed by their hash
)

// throttle applies a Throttle.
type throttle struct {
	mu      sync.Mutex // guards the buckets
	limits  [numLimits]ThrottleLimit
	pairs   buckets[pairKey]
	addrs   buckets[string]
	clients buckets[string]

	now      func() time.Time
	known    func(clientID, addr string) bool // nil: none is
	remember func(clientID, addr string)      // nil: nothing remembered
}

type pairKey struct{ clientID, addr string }

// bucket is a token bucket of failures: tokens at at, refilled at one per
// Every up to Burst. A failure takes one even from an empty bucket, which
// then owes it (tokens < 0) and refills from below zero.
type bucket struct {
	tokens   float64
	at       time.Time
	inflight int // attempts allowed and not finished
}

func (l ThrottleLimit) level(b *bucket, now time.Time) float64 {
	return min(float64(l.Burst), b.tokens+float64(now.Sub(b.at))/float64(l.Every))
}

// wait is how long until b holds need tokens.
func (l ThrottleLimit) wait(b *bucket, now time.Time, need float64) time.Duration {
	return time.Duration(max(0, need-l.level(b, now)) * float64(l.Every))
}

// buckets are one dimension's buckets.
type buckets[K comparable] struct {
	m   map[K]*bucket
	lim *ThrottleLimit
}

// get returns key's bucket, creating a full one; t.mu is held.
func (bs *buckets[K]) get(key K, now time.Time) *bucket {
	b := bs.m[key]
	if b == nil {
		if len(bs.m) >= throttleLimit {
			bs.sweep(now)
		}
		b = &bucket{tokens: float64(bs.lim.Burst), at: now}
		bs.m[key] = b
	}
	return b
}

// sweep drops buckets that are full again and idle (the same as no
// bucket), then, if that is not enough, arbitrary idle ones.
func (bs *buckets[K]) sweep(now time.Time) {
	for k, b := range bs.m {
		if b.inflight == 0 && bs.lim.level(b, now) >= float64(bs.lim.Burst) {
			delete(bs.m, k)
		}
	}
	for k, b := range bs.m { // map order is random
		if len(bs.m) < throttleLimit*9/10 {
			break
		}
		if b.inflight == 0 {
			delete(bs.m, k)
		}
	}
}

func newThrottle(cfg Throttle) *throttle {
	t := &throttle{limits: cfg.limits(), now: time.Now}
	t.pairs = buckets[pairKey]{m: map[pairKey]*bucket{}, lim: &t.limits[limitPair]}
	t.addrs = buckets[string]{m: map[string]*bucket{}, lim: &t.limits[limitAddress]}
	t.clients = buckets[string]{m: map[string]*bucket{}, lim: &t.limits[limitClient]}
	return t
}

// attempt is an authentication allow let through, for finish.
type attempt struct {
	clientID, addr string          // the throttle's keys
	known          bool            // the client succeeded from addr lately
	counted        [numLimits]bool // the buckets it is in flight in
}

// refusal says which limit refused an attempt, and for how long.
type refusal struct {
	limit string
	retry time.Duration
}

// keyOf bounds a caller-supplied key: a client_id longer than any client's
// (they can never authenticate) is one key for all of them, and an overlong
// address (only an embedding program's RemoteAddr can be one) its hash.
func keyOf(clientID, addr string) (string, string) {
	if len(clientID) > authsvc.MaxClientIDLen {
		clientID = "\x00overlong client_id"
	}
	if len(addr) > maxKeyLen {
		sum := sha256.Sum256([]byte(addr))
		addr = "\x00" + hex.EncodeToString(sum[:16])
	}
	return clientID, addr
}

// allow reports whether an authentication of clientID from addr may be
// tried now; if not, which limit refused and how long to wait. Every
// allowed attempt must be ended with finish.
func (t *throttle) allow(clientID, addr string) (attempt, *refusal) {
	id, key := keyOf(clientID, addr)
	att := attempt{clientID: id, addr: key}
	att.known = id != "" && t.known != nil && t.known(id, key)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var (
		bs  [numLimits]*bucket
		ref *refusal
	)
	check := func(d int, b *bucket) {
		lim := t.limits[d]
		bs[d] = b
		need := 1 + float64(b.inflight) // in-flight attempts may all fail
		ok := lim.level(b, now) >= need
		if d == limitPair && att.known && !ok {
			// A busy known client may have more logins in flight than
			// its pair allows failures, but only while none has failed
			// lately (a full bucket): whoever shares its address and
			// guesses gets at most knownInflight tries once, then owes
			// them.
			ok = lim.level(b, now) >= float64(lim.Burst) && b.inflight < knownInflight
		}
		if ok {
			return
		}
		wait := lim.wait(b, now, need)
		if ref == nil {
			ref = &refusal{limit: limitNames[d], retry: wait}
		} else {
			ref.retry = max(ref.retry, wait)
		}
	}
	if !t.limits[limitPair].Off {
		check(limitPair, t.pairs.get(pairKey{id, key}, now))
	}
	// A known pair is exempt from the limits other clients can exhaust.
	if !att.known && !t.limits[limitAddress].Off {
		check(limitAddress, t.addrs.get(key, now))
	}
	if !att.known && id != "" && !t.limits[limitClient].Off {
		check(limitClient, t.clients.get(id, now))
	}
	if ref != nil {
		return att, ref
	}
	for d, b := range bs {
		if b != nil {
			b.inflight++
			att.counted[d] = true
		}
	}
	return att, nil
}

// finish ends an attempt allow let through. A failure is charged to every
// bucket the attempt was counted in; a success refills its pair's bucket
// and remembers the address as known for the client; any other outcome
// (the store was down, a bad scope) only ends the attempt.
func (t *throttle) finish(att attempt, failed, succeeded bool) {
	t.mu.Lock()
	now := t.now()
	for d, counted := range att.counted {
		if !counted {
			continue
		}
		var b *bucket
		switch d {
		case limitPair:
			b = t.pairs.get(pairKey{att.clientID, att.addr}, now)
		case limitAddress:
			b = t.addrs.get(att.addr, now)
		case limitClient:
			b = t.clients.get(att.clientID, now)
		}
		b.inflight = max(0, b.inflight-1)
		switch {
		case failed:
			b.tokens, b.at = t.limits[d].level(b, now)-1, now
		case succeeded && d == limitPair && b.inflight == 0 && t.limits[d].level(b, now) >= 0:
			// Consecutive failures are forgiven by a success, but not a
			// debt, nor failures of attempts that ran beside it: a guesser
			// sharing the address must not be forgiven by the real
			// client's logins.
			b.tokens, b.at = float64(t.limits[d].Burst), now
		}
	}
	t.mu.Unlock()
	if succeeded && t.remember != nil && att.clientID != "" {
		t.remember(att.clientID, att.addr)
	}
}

// clientAddr is the address of the party that sent the request: the TCP
// peer, or, when the peer is a trusted proxy, the rightmost address of
// X-Forwarded-For that is not itself a trusted proxy. X-Forwarded-For from
// anyone else is ignored: it is whatever the caller wants it to be.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !isTrusted(peer, trusted) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return host // malformed: trust nothing further left
		}
		if !isTrusted(a.Unmap(), trusted) {
			return a.Unmap().String()
		}
	}
	return host
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// allowAttempt applies the throttle before a client's secret is checked;
// false means a 429 has been written. The attempt goes to noteAttempt.
func (h *handler) allowAttempt(w http.ResponseWriter, r *http.Request, clientID string, oauth bool) (attempt, bool) {
	att, wait, ok := h.admit(r, clientID)
	if ok {
		return att, true
	}
	w.Header().Set("Retry-After", strconv.Itoa(wait))
	msg := "too many failed authentications: retry later"
	if oauth {
		oauthError(w, http.StatusTooManyRequests, "too_many_requests", msg)
	} else {
		writeError(w, http.StatusTooManyRequests, msg)
	}
	return att, false
}

// admit is the throttle's check before a secret is checked, for every
// route where a client authenticates (the console's sign-in too): false
// means refused, logged and counted here, with the whole seconds to wait;
// the caller answers. An attempt let through goes to noteAttempt.
func (h *handler) admit(r *http.Request, clientID string) (attempt, int, bool) {
	if h.throttle == nil {
		return attempt{}, 0, true
	}
	att, ref := h.throttle.allow(clientID, info(r).addr)
	if ref == nil {
		return att, 0, true
	}
	secs := max(1, int((ref.retry+time.Second-1)/time.Second)) // whole seconds, rounded up
	h.log.Warn("authentication throttled", "limit", ref.limit, "client_id", clip(clientID), "remote", clip(info(r).addr), "retry_after_s", secs)
	if h.metrics != nil {
		h.metrics.throttled.WithLabelValues(ref.limit).Inc()
	}
	return att, secs, false
}

// noteAttempt ends an attempt allowAttempt let through: it feeds the
// outcome to the throttle and the audit log, whose line for a failure
// says why when the library did (authsvc.ErrorMessage), with audit added.
func (h *handler) noteAttempt(r *http.Request, att attempt, clientID string, err error, audit ...any) {
	ri := info(r)
	failed := errors.Is(err, authsvc.ErrInvalidClient)
	if err == nil {
		ri.clientID = clientID
	}
	if failed {
		logged := clientID
		if strings.HasPrefix(logged, "\x00") {
			logged = "" // an assertion's subject (clientCredentials.throttleKey), logged by audit
		}
		attrs := []any{"client_id", clip(logged), "remote", clip(ri.addr), "route", clip(r.URL.Path)}
		if reason := authsvc.ErrorMessage(err); reason != "" {
			attrs = append(attrs, "reason", reason) // ours; what it quotes of the caller's is clipped
		}
		h.log.Warn("audit: authentication failed", append(attrs, audit...)...)
	}
	if h.throttle != nil {
		h.throttle.finish(att, failed, err == nil)
	}
}
