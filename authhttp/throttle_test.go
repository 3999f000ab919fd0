package authhttp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testdb"
)

// testClock is the clock of a throttle test: the throttle and the
// Authenticator (known addresses) both run on it, so no test sleeps.
type testClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// throttled is authd as it runs behind a proxy: the handler with the
// throttle and metrics on, 127.0.0.1 trusted, so that each request names
// its caller's address in X-Forwarded-For.
type throttled struct {
	*testServer
	clock *testClock
}

// throttledServer starts a throttled handler on a fresh store at dbURL;
// clients are created through the (unthrottled) testServer.
func throttledServer(t *testing.T, dbURL string, opts Throttle) *throttled {
	t.Helper()
	clock := &testClock{t: time.Now()}
	ts := newTestServerWith(t, dbURL, authsvc.Config{Now: clock.Now})
	th := &throttled{testServer: ts, clock: clock}
	th.serve(t, ts.auth, opts)
	return th
}

// serve puts a throttled handler for a in front of th.
func (th *throttled) serve(t *testing.T, a *authsvc.Authenticator, opts Throttle) {
	t.Helper()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewJSONHandler(th.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, hd := newHandler(a, Options{Logger: log, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Metrics: reg, MetricsHandler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), Throttle: opts})
	if h.throttle != nil {
		h.throttle.now = th.clock.Now
	}
	srv := httptest.NewServer(hd)
	t.Cleanup(srv.Close)
	th.url = srv.URL
}

// restart is a new authd process on the same store: the old Authenticator
// closed (it writes what it has queued), a new store handle, a new
// Authenticator and handler, so nothing in memory survives.
func (th *throttled) restart(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	th.auth.Close()
	th.store.Close()
	store, err := authsvc.OpenStore(ctx, th.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	a, err := authsvc.New(ctx, store, authsvc.Config{Issuer: "http://authd.test", Now: th.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	th.auth, th.store = a, store
	th.serve(t, a, Throttle{})
}

// guess is a wrong secret shaped like a generated one, so that checking it
// costs SHA-256, not argon2id (the tests make hundreds).
var guess = strings.Repeat("G", 43)

// login posts to /auth as id with secret from addr.
func (th *throttled) login(addr, id, secret string) reply {
	th.t.Helper()
	return th.do("POST", "/auth", form, url.Values{"client_id": {id}, "client_secret": {secret}}.Encode(),
		map[string]string{"X-Forwarded-For": addr})
}

// expectThrottled checks a 429 and the limit its log line names.
func (th *throttled) expectThrottled(t *testing.T, what string, r reply, limit string) {
	t.Helper()
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("%s: %d %s, want 429 with Retry-After", what, r.status, r.raw)
	}
	if !strings.Contains(th.logs.String(), `"msg":"authentication throttled","limit":"`+limit+`"`) {
		t.Fatalf("%s: no throttled line naming the %s limit", what, limit)
	}
}

// metrics returns the handler's /metrics.
func (th *throttled) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(th.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestThrottleNeighboursUnaffected: one client's wrong secrets from an
// address (a misconfigured service behind a NAT, a test suite) throttle that
// client there, and no other client at that address, known or new.
func TestThrottleNeighboursUnaffected(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		th := throttledServer(t, dbURL, Throttle{})
		_, noisy := th.createClient(url.Values{"client_id": {"noisy"}})
		_, quiet := th.createClient(url.Values{"client_id": {"quiet"}})
		_, fresh := th.createClient(url.Values{"client_id": {"fresh"}})
		const nat = "198.51.100.1"
		expect(t, "quiet before", th.login(nat, "quiet", quiet), 200)
		for i := range 25 {
			r := th.login(nat, "noisy", guess)
			if i < defaultThrottle.Pair.Burst {
				expect(t, "wrong secret", r, 401)
			} else {
				th.expectThrottled(t, "noisy over its pair limit", r, "pair")
			}
		}
		expect(t, "a neighbour known at the address", th.login(nat, "quiet", quiet), 200)
		expect(t, "a neighbour never seen at the address", th.login(nat, "fresh", fresh), 200)
		th.expectThrottled(t, "noisy with its right secret", th.login(nat, "noisy", noisy), "pair")
		expect(t, "noisy from another address", th.login("198.51.100.2", "noisy", noisy), 200)
	})
}

// TestThrottlePair: a client's own wrong secrets get it throttled at that
// address, /oauth/token too; the bucket refills on the throttle's clock, and
// a success refills it whole.
func TestThrottlePair(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		th := throttledServer(t, dbURL, Throttle{})
		_, secret := th.createClient(url.Values{"client_id": {"svc"}})
		const addr = "203.0.113.10"
		for range defaultThrottle.Pair.Burst {
			expect(t, "wrong secret", th.login(addr, "svc", guess), 401)
		}
		r := th.login(addr, "svc", secret)
		th.expectThrottled(t, "the right secret over the pair limit", r, "pair")
		if got := r.header.Get("Retry-After"); got != "30" {
			t.Fatalf("Retry-After %q, want 30", got)
		}
		r = th.do("POST", "/oauth/token", form, "grant_type=client_credentials",
			map[string]string{"Authorization": basicAuth("svc", secret), "X-Forwarded-For": addr})
		if r.status != 429 || r.body["error"] != "too_many_requests" {
			t.Fatalf("/oauth/token over the pair limit: %d %s", r.status, r.raw)
		}
		th.clock.Add(defaultThrottle.Pair.Every)
		expect(t, "after one interval", th.login(addr, "svc", secret), 200)
		for range defaultThrottle.Pair.Burst {
			expect(t, "a whole burst again after a success", th.login(addr, "svc", guess), 401)
		}
		th.expectThrottled(t, "over the burst again", th.login(addr, "svc", secret), "pair")
		if m := th.metrics(t); !strings.Contains(m, `authd_throttled_total{limit="pair"} 3`) {
			t.Fatalf("metrics lack three pair refusals:\n%s", grepLines(m, "authd_throttled_total"))
		}
	})
}

// TestThrottleSpraying: one address trying 100+ client_ids is slowed down
// (password spraying), except for a client known at that address.
func TestThrottleSpraying(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		th := throttledServer(t, dbURL, Throttle{})
		_, worker := th.createClient(url.Values{"client_id": {"worker"}})
		_, other := th.createClient(url.Values{"client_id": {"other"}})
		const addr = "203.0.113.5"
		expect(t, "worker at its address", th.login(addr, "worker", worker), 200)
		for i := range defaultThrottle.Address.Burst {
			expect(t, "spray", th.login(addr, fmt.Sprint("spray-", i), guess), 401)
		}
		th.expectThrottled(t, "spraying past the address limit", th.login(addr, "spray-x", guess), "address")
		th.expectThrottled(t, "a client not known at the sprayed address", th.login(addr, "other", other), "address")
		expect(t, "the client known at the sprayed address", th.login(addr, "worker", worker), 200)
		expect(t, "elsewhere", th.login("203.0.113.6", "other", other), 200)
		th.clock.Add(defaultThrottle.Address.Every)
		expect(t, "the address allowance refills", th.login(addr, "other", other), 200)
		if m := th.metrics(t); !strings.Contains(m, `authd_throttled_total{limit="address"} 2`) {
			t.Fatalf("metrics lack two address refusals:\n%s", grepLines(m, "authd_throttled_total"))
		}
	})
}

// TestThrottleKnownAddressSurvivesRestart: the address a client
// authenticated from is remembered in the store: after a restart a flood
// on its client_id from elsewhere, and spraying at its address, leave it
// working there; 24 hours later the exemption is gone.
func TestThrottleKnownAddressSurvivesRestart(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		th := throttledServer(t, dbURL, Throttle{})
		_, secret := th.createClient(url.Values{"client_id": {"victim"}})
		const home = "192.0.2.7"
		expect(t, "victim at home", th.login(home, "victim", secret), 200)
		th.restart(t)
		if !th.auth.KnownAddress("victim", home) {
			t.Fatalf("the known address did not survive the restart: %+v\n%s", th.auth.Stats(), grepLines(th.logs.String(), "authsvc"))
		}
		for i := range defaultThrottle.Client.Burst {
			expect(t, "flood", th.login(fmt.Sprintf("198.51.100.%d", i), "victim", guess), 401)
		}
		th.expectThrottled(t, "the flood from a new address", th.login("203.0.113.9", "victim", secret), "client")
		expect(t, "victim at home during the flood", th.login(home, "victim", secret), 200)
		for i := range defaultThrottle.Address.Burst {
			expect(t, "spray at home", th.login(home, fmt.Sprint("spray-", i), guess), 401)
		}
		th.expectThrottled(t, "spraying at home", th.login(home, "spray-x", guess), "address")
		expect(t, "victim at home while it is sprayed", th.login(home, "victim", secret), 200)
		m := th.metrics(t)
		for _, want := range []string{`authd_throttled_total{limit="client"} 1`, `authd_known_addresses 1`,
			`authd_throttle_burst{limit="pair"} 10`, `authd_throttle_interval_seconds{limit="pair"} 30`,
			`authd_throttle_burst{limit="address"} 100`, `authd_throttle_interval_seconds{limit="client"} 1`,
			`authd_known_address_writes_total{result="failed"} 0`} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s", want)
			}
		}

		// A day later, and after another restart, the exemption is gone.
		th.clock.Add(24*time.Hour + time.Minute)
		th.restart(t)
		if th.auth.KnownAddress("victim", home) {
			t.Fatal("a 24-hour-old success still exempts its address")
		}
	})
}

// TestThrottleOff: Throttle.Off turns every limit off, and a limit can be
// turned off alone or set.
func TestThrottleOff(t *testing.T) {
	th := throttledServer(t, testdb.SQLite(t), Throttle{Off: true})
	_, secret := th.createClient(url.Values{"client_id": {"svc"}})
	for range 3 * defaultThrottle.Pair.Burst {
		expect(t, "wrong secret, throttle off", th.login("10.0.0.1", "svc", guess), 401)
	}
	expect(t, "right secret, throttle off", th.login("10.0.0.1", "svc", secret), 200)
	if m := th.metrics(t); strings.Contains(m, "authd_throttle_burst") {
		t.Fatal("limits exported while the throttle is off")
	}

	th = throttledServer(t, testdb.SQLite(t), Throttle{Pair: ThrottleLimit{Off: true}, Client: ThrottleLimit{Burst: 12, Every: time.Minute}})
	_, secret = th.createClient(url.Values{"client_id": {"svc"}})
	for range 12 {
		expect(t, "wrong secret, pair limit off", th.login("10.0.0.1", "svc", guess), 401)
	}
	r := th.login("10.0.0.1", "svc", secret)
	th.expectThrottled(t, "a client limit of 12", r, "client")
	if got := r.header.Get("Retry-After"); got != "60" {
		t.Fatalf("Retry-After %q, want 60", got)
	}
	if m := th.metrics(t); strings.Contains(m, `authd_throttle_burst{limit="pair"}`) || !strings.Contains(m, `authd_throttle_burst{limit="client"} 12`) {
		t.Fatalf("limits exported:\n%s", grepLines(m, "authd_throttle_"))
	}
}

// TestThrottleLogsClipped: a 60 KB client_id (or path, or method) is logged
// as its first 128 bytes at most, whether the attempt failed or was
// throttled, on every route that authenticates a client.
func TestThrottleLogsClipped(t *testing.T) {
	th := throttledServer(t, testdb.SQLite(t), Throttle{})
	long := strings.Repeat("x", 60<<10)
	before := len(th.logs.String())
	for i := range 2 * defaultThrottle.Pair.Burst {
		switch i % 3 {
		case 0:
			th.login("10.0.0.1", long, "secret")
		case 1:
			th.do("POST", "/oauth/token", form, url.Values{"grant_type": {"client_credentials"}, "client_id": {long}, "client_secret": {"s"}}.Encode(),
				map[string]string{"X-Forwarded-For": "10.0.0.1"})
		case 2:
			th.do("POST", "/oauth/introspect", form, url.Values{"token": {"t"}, "client_id": {long}, "client_secret": {"s"}}.Encode(),
				map[string]string{"X-Forwarded-For": "10.0.0.1"})
		}
	}
	th.do("GET", "/"+strings.Repeat("y", 8<<10), "", "", nil)
	th.do(strings.Repeat("Z", 4<<10), "/verify", "", "", nil)
	logs := th.logs.String()[before:]
	for _, want := range []string{"audit: authentication failed", "authentication throttled", "…(61440 bytes)"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("the log lacks %q:\n%.2000s", want, logs)
		}
	}
	if run := regexp.MustCompile(`[xyZ]{129,}`).FindString(logs); run != "" {
		t.Fatalf("the log holds %d bytes of a caller-supplied value", len(run))
	}
	if n := len(logs); n > 40<<10 {
		t.Fatalf("22 requests grew the log by %d bytes", n)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestThrottleKnownPairGuesser: someone sharing a known client's address
// and guessing its secret alongside the client's real logins gets no more
// than the pair's burst, the in-flight allowance of a quiet known pair
// once, and the refill after: the client's successes do not forgive the
// guesser's failures.
func TestThrottleKnownPairGuesser(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	th := newThrottle(Throttle{})
	th.now = func() time.Time { return now }
	th.known = func(id, addr string) bool { return true }
	lim := th.limits[limitPair]
	guesses := 0
	const rounds = 60
	for range rounds {
		legit, ref := th.allow("victim", "10.0.0.1") // a real login starts…
		var atts []attempt
		for {
			att, r := th.allow("victim", "10.0.0.1")
			if r != nil {
				break
			}
			atts = append(atts, att)
		}
		for _, a := range atts { // …the guesses beside it fail…
			th.finish(a, true, false)
		}
		guesses += len(atts)
		if ref == nil {
			th.finish(legit, false, true) // …and it succeeds last
		}
		now = now.Add(time.Minute)
	}
	refill := int(time.Duration(rounds) * time.Minute / lim.Every)
	if most := knownInflight + lim.Burst + refill; guesses > most {
		t.Fatalf("%d guesses in %d minutes, want at most %d", guesses, rounds, most)
	}
}
