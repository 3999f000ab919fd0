package authhttp

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/authsvc/authsvc/internal/testdb"
)

// opsServer is newTestServer with the throttle and metrics on, as authd
// wires them; trusted is a space-separated list of CIDRs.
func opsServer(t *testing.T, trusted string) *testServer {
	t.Helper()
	ts := newTestServer(t, testdb.SQLite(t))
	var prefixes []netip.Prefix
	for _, p := range strings.Fields(trusted) {
		prefixes = append(prefixes, netip.MustParsePrefix(p))
	}
	log := slog.New(slog.NewJSONHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := httptest.NewServer(NewHandler(ts.auth, Options{Logger: log, TrustedProxies: prefixes, Metrics: reg,
		MetricsHandler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}))
	t.Cleanup(srv.Close)
	ts.url = srv.URL
	return ts
}

func TestMetrics(t *testing.T) {
	ts := opsServer(t, "")
	_, secret := ts.createClient(url.Values{"client_id": {"svc"}})
	tok := ts.token("svc", secret)
	expect(t, "verify", ts.form("/verify", nil, tok), 200)
	expect(t, "verify again", ts.form("/verify", nil, tok), 200)
	expect(t, "bad verify", ts.form("/verify", nil, "x.y.z"), 401)
	expect(t, "logout", ts.form("/logout", url.Values{"token": {tok}}, ""), 200)
	expect(t, "revoked", ts.form("/verify", nil, tok), 401)
	expect(t, "wrong secret", ts.form("/auth", url.Values{"client_id": {"svc"}, "client_secret": {"nope"}}, ""), 401)
	for _, m := range []string{"BREW", "X-RANDOM-1", "X-RANDOM-2"} {
		req, _ := http.NewRequest(m, ts.url+"/verify", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("%s /verify: %d", m, resp.StatusCode)
		}
	}
	resp, err := http.Get(ts.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	for _, want := range []string{
		`authd_http_requests_total{method="POST",route="/auth",status="200"} 1`, // the admin token came through another server
		`authd_http_requests_total{method="POST",route="/verify",status="401"} 2`,
		`authd_http_request_duration_seconds_bucket{route="/verify",le=`,
		`authd_http_requests_total{method="other",route="/verify",status="405"} 3`, // any method a client invents is one series
		`authd_tokens_issued_total 2`,
		`authd_authentication_failures_total 1`,
		`authd_revocations_total 1`,
		`authd_verifications_total{result="ok"} 3`, // two /verify + the admin check of POST /client
		`authd_verifications_total{result="revoked"} 1`,
		`authd_verifications_total{result="invalid"} 1`,
		`authd_verify_cache_total{result="hit"}`,
		`authd_signing_key_age_seconds`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, secret) || strings.Contains(body, tok) {
		t.Fatal("metrics leak a credential")
	}
}

// TestThrottle is the throttle's model, on its own clock: failures count
// per (client_id, address), per address and per client_id; a known pair
// is exempt from the latter two; in-flight attempts count.
func TestThrottle(t *testing.T) {
	th := newThrottle(Throttle{})
	now := time.Now()
	th.now = func() time.Time { return now }
	known := map[pairKey]bool{}
	th.known = func(c, a string) bool { return known[pairKey{c, a}] }
	th.remember = func(c, a string) { known[pairKey{c, a}] = true }
	def := defaultThrottle
	try := func(c, a string, outcome string) *refusal {
		t.Helper()
		att, ref := th.allow(c, a)
		if ref == nil {
			th.finish(att, outcome == "fail", outcome == "ok")
		}
		return ref
	}
	mustAllow := func(what, c, a, outcome string) {
		t.Helper()
		if ref := try(c, a, outcome); ref != nil {
			t.Fatalf("%s: refused by %s", what, ref.limit)
		}
	}
	mustRefuse := func(what, c, a, limit string) *refusal {
		t.Helper()
		ref := try(c, a, "fail")
		if ref == nil || ref.limit != limit {
			t.Fatalf("%s: %+v, want a refusal by the %s limit", what, ref, limit)
		}
		return ref
	}

	// Pair: one client's own wrong secrets stop that client at that
	// address, and no one else.
	for i := range def.Pair.Burst {
		mustAllow(fmt.Sprint("wrong secret ", i), "c", "10.0.0.1", "fail")
	}
	if ref := mustRefuse("pair over its burst", "c", "10.0.0.1", "pair"); ref.retry != def.Pair.Every {
		t.Fatalf("retry after %v, want %v", ref.retry, def.Pair.Every)
	}
	mustAllow("a neighbour at the same address", "neighbour", "10.0.0.1", "ok")
	mustAllow("the same client elsewhere", "c", "10.0.0.2", "ok")
	now = now.Add(def.Pair.Every)
	mustAllow("the pair refilled by one", "c", "10.0.0.1", "ok")
	// A success refills the pair: a whole burst of failures again.
	for i := range def.Pair.Burst {
		mustAllow(fmt.Sprint("after a success, wrong secret ", i), "c", "10.0.0.1", "fail")
	}
	mustRefuse("pair after a success and a burst", "c", "10.0.0.1", "pair")

	// Address: spraying many client_ids from one address is slowed after
	// Address.Burst failures, except for clients known there.
	now = now.Add(time.Hour)
	mustAllow("known client", "known", "10.1.1.1", "ok")
	for i := range def.Address.Burst {
		mustAllow(fmt.Sprint("spray ", i), fmt.Sprint("spray-", i), "10.1.1.1", "fail")
	}
	if ref := mustRefuse("spraying past the address burst", "spray-x", "10.1.1.1", "address"); ref.retry != def.Address.Every {
		t.Fatalf("retry after %v, want %v", ref.retry, def.Address.Every)
	}
	mustRefuse("a client not known there", "newcomer", "10.1.1.1", "address")
	mustAllow("the known client at the sprayed address", "known", "10.1.1.1", "ok")
	mustAllow("the sprayer's client elsewhere", "spray-x", "10.1.1.2", "ok")

	// Client: a flood on one client_id from many addresses stops new
	// addresses, not one the client succeeded from.
	mustAllow("victim's first success", "victim", "192.0.2.7", "ok")
	for i := range def.Client.Burst {
		mustAllow(fmt.Sprint("flood ", i), "victim", netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}).String(), "fail")
	}
	mustRefuse("flood from a new address", "victim", "203.0.113.9", "client")
	mustAllow("the victim's known address", "victim", "192.0.2.7", "ok")
	now = now.Add(5 * def.Client.Every)
	mustAllow("the client allowance refills", "victim", "203.0.113.9", "ok")

	// In flight: from a fresh pair, parallel attempts stop at the pair's
	// burst before any of them has failed.
	var atts []attempt
	for range 3 * def.Pair.Burst {
		if att, ref := th.allow("c2", "10.9.9.9"); ref == nil {
			atts = append(atts, att)
		}
	}
	if len(atts) != def.Pair.Burst {
		t.Fatalf("%d parallel attempts allowed from a fresh pair, want %d", len(atts), def.Pair.Burst)
	}
	for _, att := range atts {
		th.finish(att, false, true) // successes give the allowance back
	}
	mustAllow("after successful parallel attempts", "c2", "10.9.9.9", "ok")
	// A known pair may have more in flight (a busy service), up to a
	// bound; what fails is owed, so over time it gets no more guesses.
	atts = atts[:0]
	for range 2 * knownInflight {
		if att, ref := th.allow("c2", "10.9.9.9"); ref == nil {
			atts = append(atts, att)
		}
	}
	if len(atts) != knownInflight {
		t.Fatalf("%d parallel attempts allowed from a known pair, want %d", len(atts), knownInflight)
	}
	for _, att := range atts {
		th.finish(att, true, false)
	}
	ref := mustRefuse("a known pair after its failures", "c2", "10.9.9.9", "pair")
	if owed := time.Duration(knownInflight-def.Pair.Burst+1) * def.Pair.Every; ref.retry != owed {
		t.Fatalf("retry after %v, want %v (every failure is owed)", ref.retry, owed)
	}
	mustAllow("the neighbours of a failing known pair", "c3", "10.9.9.9", "ok")

	// A client_id longer than any client's is one key, and a short one.
	long := strings.Repeat("x", 60<<10)
	for range def.Pair.Burst {
		mustAllow("overlong client_id", long, "10.7.7.7", "fail")
	}
	mustRefuse("overlong client_id", long+"y", "10.7.7.7", "pair")
	for k := range th.pairs.m {
		if len(k.clientID) > 128 || len(k.addr) > maxKeyLen {
			t.Fatalf("a bucket is keyed by %d + %d bytes", len(k.clientID), len(k.addr))
		}
	}
}

// TestThrottleLimitsOff: each limit can be turned off, and limits can be
// set.
func TestThrottleLimitsOff(t *testing.T) {
	th := newThrottle(Throttle{Pair: ThrottleLimit{Off: true}, Address: ThrottleLimit{Burst: 3, Every: time.Minute}})
	now := time.Now()
	th.now = func() time.Time { return now }
	for i := range 3 {
		att, ref := th.allow("c", "10.0.0.1")
		if ref != nil {
			t.Fatalf("attempt %d refused by %s", i, ref.limit)
		}
		th.finish(att, true, false)
	}
	if _, ref := th.allow("c", "10.0.0.1"); ref == nil || ref.limit != "address" || ref.retry != time.Minute {
		t.Fatalf("with the pair limit off and an address burst of 3: %+v", ref)
	}
}

func TestThrottleHTTP(t *testing.T) {
	ts := opsServer(t, "")
	_, secret := ts.createClient(url.Values{"client_id": {"svc"}})
	start := time.Now()
	for range defaultThrottle.Pair.Burst {
		expect(t, "wrong secret", ts.form("/auth", url.Values{"client_id": {"svc"}, "client_secret": {"wrong"}}, ""), 401)
	}
	// Now even the right secret is not checked.
	r := ts.form("/auth", url.Values{"client_id": {"svc"}, "client_secret": {secret}}, "")
	expect(t, "throttled /auth", r, 429)
	// A real clock: the failures took a moment, during which the pair
	// allowance refilled a little (under -race on a busy machine, over
	// ten seconds), so the wait may be 30 s less about that long.
	took := int(time.Since(start) / time.Second)
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < min(20, 28-took) || secs > 30 {
		t.Fatalf("429 with Retry-After %q after %d s of failures, want about %d", r.header.Get("Retry-After"), took, 30-took)
	}
	r = ts.do("POST", "/oauth/token", form, "grant_type=client_credentials", map[string]string{"Authorization": basicAuth("svc", secret)})
	if r.status != 429 || r.body["error"] != "too_many_requests" || r.header.Get("Retry-After") == "" {
		t.Fatalf("throttled /oauth/token: %d %s", r.status, r.raw)
	}
	// Token verification is not throttled by failed logins.
	expect(t, "verify", ts.form("/verify", nil, ts.admin), 200)
	if !strings.Contains(ts.logs.String(), `"msg":"authentication throttled","limit":"pair","client_id":"svc"`) {
		t.Fatalf("throttling not logged:\n%s", ts.logs.String())
	}
}

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
	cases := []struct{ remote, xff, want string }{
		{"203.0.113.5:1234", "1.2.3.4", "203.0.113.5"},              // untrusted peer: XFF ignored
		{"127.0.0.1:1234", "198.51.100.7", "198.51.100.7"},          // trusted proxy
		{"10.1.2.3:1234", "198.51.100.7, 10.9.9.9", "198.51.100.7"}, // two trusted hops
		{"10.1.2.3:1234", "6.6.6.6, 198.51.100.7", "198.51.100.7"},  // a forged leftmost entry is not believed
		{"10.1.2.3:1234", "garbage", "10.1.2.3"},                    // malformed
		{"10.1.2.3:1234", "", "10.1.2.3"},                           // no header
		{"[::ffff:127.0.0.1]:1234", "198.51.100.8", "198.51.100.8"}, // v4-mapped peer
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := clientAddr(r, trusted); got != c.want {
			t.Errorf("clientAddr(%s, %q) = %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
}

// TestNoSecretsInLogs drives every credential-bearing route and searches
// the whole log for any secret, token, hash or Authorization header.
func TestNoSecretsInLogs(t *testing.T) {
	ts := opsServer(t, "")
	chosen := "a chosen secret that must never be logged"
	r := ts.do("POST", "/client", "application/json", `{"client_id":"svc","client_secret":"`+chosen+`","scope":"a"}`, map[string]string{"Authorization": "Bearer " + ts.admin})
	expect(t, "create", r, 201)
	_, generated := ts.createClient(url.Values{"client_id": {"gen"}})
	tok := ts.token("svc", chosen)
	oauth := ts.do("POST", "/oauth/token", form, "grant_type=client_credentials", map[string]string{"Authorization": basicAuth("gen", generated)})
	tok2, _ := oauth.body["access_token"].(string)
	ts.form("/verify", nil, tok)
	ts.do("POST", "/oauth/introspect", form, "token="+tok2, map[string]string{"Authorization": basicAuth("gen", generated)})
	ts.form("/auth", url.Values{"client_id": {"svc"}, "client_secret": {chosen + "x"}}, "")
	ts.do("POST", "/oauth/token", form, "grant_type=client_credentials&client_id=gen&client_secret=wrong-"+generated, nil)
	rot := ts.do("POST", "/client/gen/rotate-secret", form, "grace=1h", map[string]string{"Authorization": "Bearer " + ts.admin})
	rotated, _ := rot.body["client_secret"].(string)
	ts.do("POST", "/oauth/revoke", form, "token="+tok2, map[string]string{"Authorization": basicAuth("gen", rotated)})
	ts.form("/logout", url.Values{"token": {tok}}, "")
	ts.do("GET", "/verify?access_token="+tok, "", "", nil)
	ts.do("POST", "/client/svc/logout", "", "", map[string]string{"Authorization": "Bearer " + ts.admin})
	ts.do("DELETE", "/client/svc", "", "", map[string]string{"Authorization": "Bearer " + ts.admin})

	logs := ts.logs.String()
	if !strings.Contains(logs, `"msg":"request"`) || !strings.Contains(logs, "audit: client created") || !strings.Contains(logs, "audit: authentication failed") {
		t.Fatalf("the logs lack the access or audit lines:\n%s", logs)
	}
	if !strings.Contains(logs, `"client_id":"gen"`) {
		t.Fatal("access lines lack client_id")
	}
	secrets := map[string]string{
		"admin secret": adminSecret, "chosen secret": chosen, "generated secret": generated, "rotated secret": rotated,
		"admin token": ts.admin, "token": tok, "oauth token": tok2, "token signature": strings.Split(tok, ".")[2],
		"hash": testdb.SecretHash(t, ts.dbURL, "gen"), "Basic credentials": strings.TrimPrefix(basicAuth("gen", generated), "Basic "),
		"argon2 hash prefix": "$argon2id$", "sha256 hash prefix": "$sha256$", "Authorization header": "Bearer ",
	}
	for name, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("the log contains the %s", name)
		}
	}
	if strings.Contains(strings.ToLower(logs), "authorization") {
		t.Error("the log mentions an Authorization header")
	}
}
