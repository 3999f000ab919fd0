package authhttp

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/authsvc/authsvc"
)

// throttle limits failed client authentications, as RFC 6749 §2.3.1 asks
// of a token endpoint, so that secrets cannot be brute-forced:
//
//   - per remote address: 20 failures at once, then one more every 6 s;
//   - per client_id: 50 failures at once, then one more every second.
//
// Over either limit the request is answered 429 with Retry-After and no
// secret is even checked. Only failures count; a success never does.
//
// A flood of failures aimed at one client_id from elsewhere empties that
// client_id's allowance, but it cannot lock the real client out: an
// address from which that client_id has authenticated successfully in the
// last 24 hours is exempt from the per-client limit (not from its own
// per-address limit), and the allowance refills as soon as the flood stops.
type throttle struct {
	mu       sync.Mutex // guards byAddr, byClient, good
	byAddr   map[string]*limiter
	byClient map[string]*limiter
	good     map[goodKey]time.Time // (client_id, address) → last success
	now      func() time.Time
}

type limiter struct {
	lim      *rate.Limiter
	seen     time.Time
	inflight int // attempts allowed but not yet finished
}

type goodKey struct{ clientID, addr string }

const (
	addrBurst     = 20
	addrEvery     = 6 * time.Second
	clientBurst   = 50
	clientEvery   = time.Second
	goodFor       = 24 * time.Hour
	throttleLimit = 100_000 // entries per map before idle ones are swept
)

func newThrottle() *throttle {
	return &throttle{byAddr: map[string]*limiter{}, byClient: map[string]*limiter{}, good: map[goodKey]time.Time{}, now: time.Now}
}

// get returns the limiter of key, creating it; the caller holds t.mu.
func (t *throttle) get(m map[string]*limiter, key string, every time.Duration, burst int, now time.Time) *limiter {
	l := m[key]
	if l == nil {
		if len(m) >= throttleLimit {
			t.sweep(m, now)
		}
		l = &limiter{lim: rate.NewLimiter(rate.Every(every), burst)}
		m[key] = l
	}
	l.seen = now
	return l
}

// sweep drops limiters idle long enough to have refilled completely.
func (t *throttle) sweep(m map[string]*limiter, now time.Time) {
	for k, l := range m {
		if now.Sub(l.seen) > 10*time.Minute {
			delete(m, k)
		}
	}
	for k := range m { // still full: drop arbitrary ones (map order is random)
		if len(m) < throttleLimit*9/10 {
			break
		}
		delete(m, k)
	}
}

// allow reports whether an authentication of clientID from addr may be
// tried now, and if not, how long to wait. Attempts still in flight count
// against the allowance, so that a burst of parallel requests cannot check
// more secrets than the allowance holds. Every allowed attempt must be
// ended with finish.
func (t *throttle) allow(clientID, addr string) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	a := t.get(t.byAddr, addr, addrEvery, addrBurst, now)
	if a.lim.TokensAt(now)-float64(a.inflight) < 1 {
		return false, wait(a.lim, now)
	}
	var c *limiter
	if clientID != "" {
		c = t.get(t.byClient, clientID, clientEvery, clientBurst, now)
		if c.lim.TokensAt(now)-float64(c.inflight) < 1 {
			if last, ok := t.good[goodKey{clientID, addr}]; !ok || now.Sub(last) >= goodFor {
				return false, wait(c.lim, now)
			}
			c = nil // exempt: its attempts do not count against the client_id
		}
	}
	a.inflight++
	if c != nil {
		c.inflight++
	}
	return true, 0
}

// finish ends an attempt allowed by allow: a failure consumes allowance, a
// success remembers the address as good for the client.
func (t *throttle) finish(clientID, addr string, failed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	a := t.get(t.byAddr, addr, addrEvery, addrBurst, now)
	a.inflight = max(0, a.inflight-1)
	var c *limiter
	if clientID != "" {
		c = t.get(t.byClient, clientID, clientEvery, clientBurst, now)
		c.inflight = max(0, c.inflight-1)
	}
	if failed {
		a.lim.AllowN(now, 1)
		if c != nil {
			c.lim.AllowN(now, 1)
		}
		return
	}
	t.rememberGood(clientID, addr, now)
}

func wait(l *rate.Limiter, now time.Time) time.Duration {
	r := l.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return d
}

// rememberGood notes that clientID authenticates from addr; t.mu is held.
func (t *throttle) rememberGood(clientID, addr string, now time.Time) {
	if clientID == "" {
		return
	}
	if len(t.good) >= throttleLimit {
		for k, last := range t.good {
			if now.Sub(last) > goodFor || len(t.good) >= throttleLimit*9/10 {
				delete(t.good, k)
			}
		}
	}
	t.good[goodKey{clientID, addr}] = now
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
// false means a 429 has been written.
func (h *handler) allowAttempt(w http.ResponseWriter, r *http.Request, clientID string, oauth bool) bool {
	if h.throttle == nil {
		return true
	}
	ok, retry := h.throttle.allow(clientID, info(r).addr)
	if ok {
		return true
	}
	secs := int(retry/time.Second) + 1
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	h.log.Warn("authentication throttled", "client_id", clientID, "remote", info(r).addr, "retry_after_s", secs)
	if h.metrics != nil {
		h.metrics.throttled.Inc()
	}
	msg := "too many failed authentications: retry later"
	if oauth {
		oauthError(w, http.StatusTooManyRequests, "too_many_requests", msg)
	} else {
		writeError(w, http.StatusTooManyRequests, msg)
	}
	return false
}

// noteAttempt ends an attempt allowAttempt let through: it feeds the
// outcome to the throttle and the audit log.
func (h *handler) noteAttempt(r *http.Request, clientID string, err error) {
	ri := info(r)
	failed := errors.Is(err, authsvc.ErrInvalidClient)
	if err == nil {
		ri.clientID = clientID
	}
	if failed {
		h.log.Warn("audit: authentication failed", "client_id", clientID, "remote", ri.addr, "route", r.URL.Path)
	}
	if h.throttle != nil {
		h.throttle.finish(clientID, ri.addr, failed)
	}
}
