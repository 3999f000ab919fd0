package main

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testdb"
)

const adminSecret = "bootstrap-admin-secret-0123456789"

// serveForTest starts authd with cfg as `authd serve` does (start, then
// serve), logging to logs, and returns it with stop, which shuts it down
// and returns serve's error. stop runs when the test ends if the test has
// not called it; an error of serve's then fails the test.
func serveForTest(t *testing.T, cfg config, logs io.Writer) (*app, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ap, err := start(ctx, cfg, newLogger(cfg, logs))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ap.serve(ctx) }()
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			serveErr = <-served
		})
		return serveErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("authd serve: %v", err)
		}
	})
	return ap, stop
}

// TestServeProcess runs authd's start and serve as main does, on a real
// port and a real SQLite file, bootstrap admin included, then shuts down.
func TestServeProcess(t *testing.T) {
	dir := t.TempDir()
	cfg := config{
		Addr: "127.0.0.1:0", DatabaseURL: "sqlite:" + dir + "/authd.db", Issuer: "http://authd.test",
		TokenTTL: time.Hour, SigningAlg: "EdDSA", BootstrapClientID: "root", BootstrapClientSecret: adminSecret,
		LogFormat: "json", LogLevel: "info", ShutdownTimeout: 5 * time.Second,
	}
	logs := &testdb.LogBuffer{}
	ap, stop := serveForTest(t, cfg, logs)
	base := "http://" + ap.ln.Addr().String()
	resp, err := http.PostForm(base+"/auth", url.Values{"client_id": {"root"}, "client_secret": {adminSecret}})
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 200 || body["isAdmin"] != true {
		t.Fatalf("/auth: %d %v", resp.StatusCode, body)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	out := logs.String()
	for _, want := range []string{`"msg":"authd listening"`, `"alg":"EdDSA"`, `"store":"sqlite:`, `bootstrap admin client created`, `"msg":"stopped"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, adminSecret) || strings.Contains(out, body["token"].(string)) {
		t.Fatal("secret or token in the log")
	}
	// A restart on the same file keeps the admin and its old token valid.
	ap2, err := start(context.Background(), cfg, newLogger(cfg, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer ap2.close()
	defer ap2.ln.Close()
	if _, err := ap2.auth.Verify(context.Background(), body["token"].(string)); err != nil {
		t.Fatalf("token after restart: %v", err)
	}
}

const form = "application/x-www-form-urlencoded"

// testServer is a started authd (start, as main wires it) on dbURL, with
// the bootstrap admin "root", and a few HTTP helpers for the tests of the
// commands that prepare its store (import-seed). The routes themselves are
// tested in package authhttp.
type testServer struct {
	t     *testing.T
	url   string
	auth  *authsvc.Authenticator
	admin string // root's token
}

func newTestServer(t *testing.T, dbURL string) *testServer {
	t.Helper()
	cfg := config{
		Addr: "127.0.0.1:0", DatabaseURL: dbURL, Issuer: "http://authd.test", TokenTTL: time.Hour, SigningAlg: "EdDSA",
		BootstrapClientID: "root", BootstrapClientSecret: adminSecret, LogFormat: "json", LogLevel: "error", ShutdownTimeout: 5 * time.Second,
	}
	ap, _ := serveForTest(t, cfg, io.Discard)
	ts := &testServer{t: t, url: "http://" + ap.ln.Addr().String(), auth: ap.auth}
	ts.admin = ts.token("root", adminSecret)
	return ts
}

// withT returns a copy of ts that reports its failures to t, a sub-test of
// the test that started the server.
func (ts *testServer) withT(t *testing.T) *testServer {
	c := *ts
	c.t = t
	return &c
}

// reply is a decoded response.
type reply struct {
	status int
	body   map[string]any
	raw    string
}

func (ts *testServer) do(method, path, contentType, body string, header map[string]string) reply {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.url+path, strings.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(raw)}
	json.Unmarshal(raw, &r.body)
	return r
}

func (ts *testServer) form(path string, v url.Values, bearer string) reply {
	ts.t.Helper()
	h := map[string]string{}
	if bearer != "" {
		h["Authorization"] = "Bearer " + bearer
	}
	return ts.do(http.MethodPost, path, form, v.Encode(), h)
}

func (ts *testServer) token(id, secret string) string {
	ts.t.Helper()
	r := ts.form("/auth", url.Values{"client_id": {id}, "client_secret": {secret}}, "")
	if r.status != http.StatusOK {
		ts.t.Fatalf("/auth for %s: %d %s", id, r.status, r.raw)
	}
	return r.body["token"].(string)
}

func (ts *testServer) createClient(v url.Values) (string, string) {
	ts.t.Helper()
	r := ts.form("/client", v, ts.admin)
	if r.status != http.StatusCreated {
		ts.t.Fatalf("POST /client %v: %d %s", v, r.status, r.raw)
	}
	return r.body["client_id"].(string), r.body["client_secret"].(string)
}

func expect(t *testing.T, name string, r reply, status int) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d; body %s", name, r.status, status, r.raw)
	}
}

func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// TestBootstrapExistingClientUnderOlderRules: an existing bootstrap client
// is left alone even when today's rules would refuse its id or its
// secret as new ones (a client imported from the seed service, a secret
// chosen before the repetition rule): authd starts, and the client logs in.
func TestBootstrapExistingClientUnderOlderRules(t *testing.T) {
	for _, c := range []struct{ id, secret string }{
		{"café-admin", "bootstrap-admin-secret-0123456789"},
		{"admin", strings.Repeat("a", 16)},
	} {
		dbURL := "sqlite:" + t.TempDir() + "/authd.db"
		cfg := config{
			Addr: "127.0.0.1:0", DatabaseURL: dbURL, Issuer: "http://authd.test", TokenTTL: time.Hour, SigningAlg: "EdDSA",
			BootstrapClientID: c.id, BootstrapClientSecret: c.secret, LogFormat: "json", LogLevel: "info", ShutdownTimeout: 5 * time.Second,
		}
		ctx := context.Background()
		store, a, err := openAuthenticator(ctx, cfg, newLogger(cfg, io.Discard))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha1.Sum([]byte(c.secret))
		if _, err := a.ImportClient(ctx, authsvc.ImportedClient{ID: c.id, LegacyHash: hex.EncodeToString(sum[:]), IsAdmin: true}); err != nil {
			t.Fatal(err)
		}
		a.Close()
		store.Close()
		logs := &testdb.LogBuffer{}
		ap, err := start(ctx, cfg, newLogger(cfg, logs))
		if err != nil {
			t.Fatalf("%q: start: %v", c.id, err)
		}
		if !strings.Contains(logs.String(), "bootstrap admin client exists") {
			t.Errorf("%q: log lacks the bootstrap line:\n%s", c.id, logs)
		}
		if _, err := ap.auth.Authenticate(ctx, c.id, c.secret, authsvc.TokenRequest{}); err != nil {
			t.Errorf("%q: %v", c.id, err)
		}
		ap.ln.Close()
		ap.close()
	}
}

// TestServeThrottleConfig: the AUTHSVC_THROTTLE* settings reach the running
// server: a pair limit of 2/1h refuses the third wrong secret (and says so
// in /metrics), and AUTHSVC_THROTTLE=off refuses none, with a warning.
func TestServeThrottleConfig(t *testing.T) {
	serve := func(t *testing.T, throttle, pair string) (string, *testdb.LogBuffer) {
		t.Helper()
		cfg := config{
			Addr: "127.0.0.1:0", DatabaseURL: "sqlite:" + t.TempDir() + "/authd.db", Issuer: "http://authd.test",
			TokenTTL: time.Hour, SigningAlg: "EdDSA", BootstrapClientID: "root", BootstrapClientSecret: adminSecret,
			LogFormat: "json", LogLevel: "info", ShutdownTimeout: 5 * time.Second, Throttle: throttle, ThrottlePair: pair,
		}
		logs := &testdb.LogBuffer{}
		ap, _ := serveForTest(t, cfg, logs)
		return "http://" + ap.ln.Addr().String(), logs
	}
	wrong := func(t *testing.T, base string) (int, string) {
		t.Helper()
		resp, err := http.PostForm(base+"/auth", url.Values{"client_id": {"root"}, "client_secret": {"not-the-admin-secret"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}

	base, _ := serve(t, "on", "2/1h")
	for i := range 2 {
		if status, _ := wrong(t, base); status != 401 {
			t.Fatalf("wrong secret %d: %d", i, status)
		}
	}
	if status, retry := wrong(t, base); status != 429 || retry != "3600" {
		t.Fatalf("third wrong secret with AUTHSVC_THROTTLE_PAIR=2/1h: %d, Retry-After %q", status, retry)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`authd_throttle_burst{limit="pair"} 2`, `authd_throttle_interval_seconds{limit="pair"} 3600`, `authd_throttled_total{limit="pair"} 1`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	base, logs := serve(t, "off", "2/1h")
	for i := range 30 {
		if status, _ := wrong(t, base); status != 401 {
			t.Fatalf("wrong secret %d with AUTHSVC_THROTTLE=off: %d", i, status)
		}
	}
	if !strings.Contains(logs.String(), "AUTHSVC_THROTTLE=off") {
		t.Fatal("no warning that the throttle is off")
	}
}

// TestServeAdminConsoleConfig: AUTHSVC_ADMIN_CONSOLE=off removes the
// console's routes from the running server; on (the default) serves it.
func TestServeAdminConsoleConfig(t *testing.T) {
	for _, setting := range []string{"on", "off"} {
		t.Run(setting, func(t *testing.T) {
			cfg := config{
				Addr: "127.0.0.1:0", DatabaseURL: testdb.SQLite(t), Issuer: "http://authd.test", TokenTTL: time.Hour, SigningAlg: "EdDSA",
				LogFormat: "json", LogLevel: "info", ShutdownTimeout: 5 * time.Second, AdminConsole: setting,
			}
			ap, _ := serveForTest(t, cfg, &testdb.LogBuffer{})
			resp, err := http.Get("http://" + ap.ln.Addr().String() + "/admin/signin")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			ct := resp.Header.Get("Content-Type")
			switch {
			case setting == "on" && (resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/html")):
				t.Fatalf("console on: %d %s", resp.StatusCode, ct)
			case setting == "off" && (resp.StatusCode != 404 || ct != "application/json"):
				t.Fatalf("console off: %d %s", resp.StatusCode, ct)
			}
		})
	}
}
