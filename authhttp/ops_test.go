package authhttp

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
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

func TestThrottle(t *testing.T) {
	th := newThrottle()
	now := time.Now()
	th.now = func() time.Time { return now }
	// Per address: 20 failures, then refused, whatever the client_id.
	for i := 0; i < addrBurst; i++ {
		if ok, _ := th.allow("c", "10.0.0.1"); !ok {
			t.Fatalf("attempt %d refused", i)
		}
		th.finish("c", "10.0.0.1", true)
	}
	if ok, retry := th.allow("other", "10.0.0.1"); ok || retry <= 0 {
		t.Fatalf("21st failure from one address allowed (%v)", retry)
	}
	now = now.Add(addrEvery)
	if ok, _ := th.allow("c", "10.0.0.1"); !ok {
		t.Fatal("the address allowance does not refill")
	}
	// Per client_id, from many addresses: the flood locks out unknown
	// addresses, but not one the client succeeded from before.
	if ok, _ := th.allow("victim", "192.0.2.7"); !ok {
		t.Fatal("first attempt refused")
	}
	th.finish("victim", "192.0.2.7", false)
	for i := 0; i < clientBurst; i++ {
		addr := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}).String()
		if ok, _ := th.allow("victim", addr); !ok {
			t.Fatalf("flood attempt %d refused early", i)
		}
		th.finish("victim", addr, true)
	}
	if ok, _ := th.allow("victim", "203.0.113.9"); ok {
		t.Fatal("a flood on one client_id did not limit new addresses")
	}
	if ok, _ := th.allow("victim", "192.0.2.7"); !ok {
		t.Fatal("the real client's known address is locked out by a flood from elsewhere")
	}
	now = now.Add(5 * clientEvery)
	if ok, _ := th.allow("victim", "203.0.113.9"); !ok {
		t.Fatal("the client allowance does not refill after the flood")
	}
	// In-flight attempts count: from a fresh address, parallel attempts stop
	// at the allowance even before any of them has failed.
	allowed := 0
	for i := 0; i < 3*addrBurst; i++ {
		if ok, _ := th.allow("c2", "10.9.9.9"); ok {
			allowed++
		}
	}
	if allowed != addrBurst {
		t.Fatalf("%d parallel attempts allowed from one address, want %d", allowed, addrBurst)
	}
	for i := 0; i < allowed; i++ {
		th.finish("c2", "10.9.9.9", false) // successes give the allowance back
	}
	if ok, _ := th.allow("c2", "10.9.9.9"); !ok {
		t.Fatal("successful attempts used up the allowance")
	}
}

func TestThrottleHTTP(t *testing.T) {
	ts := opsServer(t, "")
	_, secret := ts.createClient(url.Values{"client_id": {"svc"}})
	for i := 0; i < addrBurst; i++ {
		expect(t, "wrong secret", ts.form("/auth", url.Values{"client_id": {"svc"}, "client_secret": {"wrong"}}, ""), 401)
	}
	// Now even the right secret is not checked.
	r := ts.form("/auth", url.Values{"client_id": {"svc"}, "client_secret": {secret}}, "")
	expect(t, "throttled /auth", r, 429)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	r = ts.do("POST", "/oauth/token", form, "grant_type=client_credentials", map[string]string{"Authorization": basicAuth("svc", secret)})
	if r.status != 429 || r.body["error"] != "too_many_requests" || r.header.Get("Retry-After") == "" {
		t.Fatalf("throttled /oauth/token: %d %s", r.status, r.raw)
	}
	// Token verification is not throttled by failed logins.
	expect(t, "verify", ts.form("/verify", nil, ts.admin), 200)
	if !strings.Contains(ts.logs.String(), "authentication throttled") {
		t.Fatal("throttling not logged")
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
