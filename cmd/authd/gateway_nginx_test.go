package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testdb"
)

// The nginx configuration of examples/gateway, the one docs/gateways.md
// shows: the test runs that very file.
const (
	nginxTemplate = "../../examples/gateway/nginx.conf.tmpl"
	gatewaysDoc   = "../../docs/gateways.md"
)

// requireNginxEnv makes a missing nginx a failure instead of a skip (.ci/run
// installs nginx and sets it).
const requireNginxEnv = "AUTHSVC_TEST_REQUIRE_NGINX"

// findNginx returns the nginx binary, or skips the test (fails it under
// AUTHSVC_TEST_REQUIRE_NGINX=1). Debian installs nginx in /usr/sbin, which
// is not always on PATH.
func findNginx(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if os.Getenv(requireNginxEnv) == "1" {
		t.Fatalf("nginx is not on PATH nor in /usr/sbin, but %s=1", requireNginxEnv)
	}
	t.Skipf("nginx not found: the gateway integration test needs it (apt-get install nginx; %s=1 makes this a failure)", requireNginxEnv)
	return ""
}

// renderNginxConf fills in the template's addresses.
func renderNginxConf(t *testing.T, listen, authd, upstream string) string {
	t.Helper()
	tmpl, err := os.ReadFile(nginxTemplate)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("@LISTEN@", listen, "@AUTHD@", authd, "@UPSTREAM@", upstream).Replace(string(tmpl))
	if left := regexp.MustCompile(`@[A-Z_]+@`).FindString(conf); left != "" {
		t.Fatalf("%s: placeholder %s not filled in", nginxTemplate, left)
	}
	return conf
}

// startNginx runs nginx in the foreground on the example's configuration,
// everything (pid, logs, temp files) inside a temporary prefix, and stops it
// when the test ends. It returns nginx's base URL.
func startNginx(t *testing.T, bin, authd, upstream string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		listen := testdb.FreeAddr(t)
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o755); err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(renderNginxConf(t, listen, authd, upstream)), 0o644); err != nil {
			t.Fatal(err)
		}
		errorLog := filepath.Join(dir, "error.log")
		var out bytes.Buffer
		cmd := exec.Command(bin, "-p", dir+"/", "-e", errorLog, "-c", conf)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start nginx: %v", err)
		}
		done := make(chan struct{}) // closed when nginx has exited; waitErr then says how
		var waitErr error
		go func() { waitErr = cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			if t.Failed() {
				logs, _ := os.ReadFile(errorLog)
				t.Logf("nginx output:\n%s\nnginx error.log:\n%s", out.String(), logs)
			}
		})
		if waitReady(t, listen, done) {
			return "http://" + listen
		}
		logs, _ := os.ReadFile(errorLog)
		if attempt < 3 && bytes.Contains(logs, []byte("Address already in use")) {
			t.Logf("nginx: %s was taken meanwhile; trying another port", listen)
			continue
		}
		t.Fatalf("nginx exited at start (%v):\n%s\n%s", waitErr, out.String(), logs)
	}
}

// waitReady waits until addr accepts connections (true) or the process
// has exited (false).
func waitReady(t *testing.T, addr string, exited <-chan struct{}) bool {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return true
		}
		select {
		case <-exited:
			return false
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not answer on %s", addr)
		}
	}
}

// echoUpstream is the unchanged service behind nginx: it answers each
// request with what it received, and counts the requests that reach it.
type echoUpstream struct {
	url  string
	hits atomic.Int64
}

type echoReply struct {
	Method string      `json:"method"`
	URI    string      `json:"uri"`
	Header http.Header `json:"header"`
	Body   string      `json:"body"`
}

func startEchoUpstream(t *testing.T) *echoUpstream {
	t.Helper()
	u := &echoUpstream{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echoReply{Method: r.Method, URI: r.RequestURI, Header: r.Header, Body: string(body)})
	}))
	t.Cleanup(srv.Close)
	u.url = srv.URL
	return u
}

// gatewayClient talks to nginx and authd as a client would.
type gatewayClient struct {
	t    *testing.T
	http *http.Client
}

type gatewayReply struct {
	status int
	header http.Header
	body   []byte
}

func (c *gatewayClient) do(method, u, token, body string, header map[string]string) gatewayReply {
	c.t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return gatewayReply{status: resp.StatusCode, header: resp.Header, body: b}
}

// jsonField posts a form to authd and returns one string field of the reply.
func (c *gatewayClient) jsonField(u string, v url.Values, token, field string) string {
	c.t.Helper()
	r := c.do(http.MethodPost, u, token, v.Encode(), nil)
	var m map[string]any
	json.Unmarshal(r.body, &m)
	s, ok := m[field].(string)
	if r.status/100 != 2 || !ok {
		c.t.Fatalf("POST %s: %d %s", u, r.status, r.body)
	}
	return s
}

// TestNginxGateway puts a real nginx, configured with
// examples/gateway/nginx.conf.tmpl, in front of an echo upstream, with
// auth_request to an authd started as main starts it, and checks what gets
// through: valid tokens with the X-Auth-* headers; never a missing, junk,
// expired, revoked or under-scoped token; nothing once authd is down.
func TestNginxGateway(t *testing.T) {
	bin := findNginx(t)

	dir := t.TempDir()
	cfg := config{
		Addr: "127.0.0.1:0", DatabaseURL: "sqlite:" + filepath.Join(dir, "authd.db"), Issuer: "http://authd.test",
		TokenTTL: time.Hour, SigningAlg: "EdDSA", BootstrapClientID: "root", BootstrapClientSecret: adminSecret,
		LogFormat: "json", LogLevel: "info", ShutdownTimeout: 5 * time.Second,
	}
	logs := &testdb.LogBuffer{}
	ap, stop := serveForTest(t, cfg, logs)
	authdAddr := ap.ln.Addr().String()
	authdURL := "http://" + authdAddr

	app := startEchoUpstream(t)
	gw := startNginx(t, bin, authdAddr, strings.TrimPrefix(app.url, "http://"))
	c := &gatewayClient{t: t, http: &http.Client{Timeout: 10 * time.Second}}

	// Clients and tokens, from authd directly.
	admin := c.jsonField(authdURL+"/auth", url.Values{"client_id": {"root"}, "client_secret": {adminSecret}}, "", "token")
	readerSecret := c.jsonField(authdURL+"/client", url.Values{"client_id": {"reader"}, "scope": {"notes:read"}}, admin, "client_secret")
	writerSecret := c.jsonField(authdURL+"/client", url.Values{"client_id": {"writer"}, "scope": {"notes:read notes:write"}}, admin, "client_secret")
	tokenOf := func(id, secret string) string {
		return c.jsonField(authdURL+"/auth", url.Values{"client_id": {id}, "client_secret": {secret}}, "", "token")
	}
	reader, writer := tokenOf("reader", readerSecret), tokenOf("writer", writerSecret)
	expOf := func(tok string) string {
		claims, err := ap.auth.Verify(context.Background(), tok)
		if err != nil {
			t.Fatal(err)
		}
		return strconv.FormatInt(claims.ExpiresAt, 10)
	}
	// An expired token: minted with authd's keys by a clock two hours behind.
	past := time.Now().Add(-2 * time.Hour)
	pastAuth, err := authsvc.New(context.Background(), ap.store, authsvc.Config{Issuer: cfg.Issuer, Now: func() time.Time { return past }})
	if err != nil {
		t.Fatal(err)
	}
	old, err := pastAuth.Authenticate(context.Background(), "reader", readerSecret, authsvc.TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	expired := old.AccessToken

	// through sends a request through nginx and, when it reaches the
	// upstream, returns what the upstream received.
	through := func(name string, method, path, token, body string, header map[string]string, status int) (gatewayReply, *echoReply) {
		t.Helper()
		before := app.hits.Load()
		r := c.do(method, gw+path, token, body, header)
		reached := app.hits.Load() > before
		if r.status != status {
			t.Errorf("%s: nginx answered %d, want %d: %.200s", name, r.status, status, r.body)
		}
		if status/100 != 2 {
			if reached {
				t.Errorf("%s: refused with %d, yet the upstream was reached", name, r.status)
			}
			return r, nil
		}
		if !reached {
			t.Errorf("%s: %d but the upstream was not reached", name, r.status)
			return r, nil
		}
		var e echoReply
		if err := json.Unmarshal(r.body, &e); err != nil {
			t.Fatalf("%s: upstream reply %q: %v", name, r.body, err)
		}
		return r, &e
	}
	// sawIdentity checks the X-Auth-* headers the upstream received: one
	// value each, authd's.
	sawIdentity := func(name string, e *echoReply, want map[string]string) {
		t.Helper()
		if e == nil {
			return
		}
		for h, v := range want {
			if got := e.Header.Values(h); v == "" && got != nil {
				// nginx sends no header for an empty value (a token without
				// scopes), and drops the client's of that name all the same.
				t.Errorf("%s: upstream saw %s = %q, want none", name, h, got)
			} else if v != "" && (len(got) != 1 || got[0] != v) {
				t.Errorf("%s: upstream saw %s = %q, want [%q]", name, h, got, v)
			}
		}
	}

	// A valid token passes, and the upstream learns who called, even when
	// the client tries to say it itself.
	_, e := through("reader GET", "GET", "/notes/1?page=2", reader, "",
		map[string]string{"X-Auth-Subject": "root", "X-Auth-Admin": "true", "X-Auth-Scope": "notes:write"}, 200)
	sawIdentity("reader GET", e, map[string]string{
		"X-Auth-Subject": "reader", "X-Auth-Scope": "notes:read", "X-Auth-Admin": "false", "X-Auth-Expires": expOf(reader),
	})
	if e != nil && (e.Method != "GET" || e.URI != "/notes/1?page=2") {
		t.Errorf("upstream saw %s %s", e.Method, e.URI)
	}
	// A body still reaches the upstream (the check drops it, not the request).
	_, e = through("reader POST", "POST", "/notes", reader, "title=hello", nil, 200)
	if e != nil && (e.Method != "POST" || e.Body != "title=hello") {
		t.Errorf("upstream saw %s with body %q", e.Method, e.Body)
	}
	_, e = through("admin GET", "GET", "/", admin, "", map[string]string{"X-Auth-Scope": "notes:write"}, 200)
	sawIdentity("admin GET", e, map[string]string{"X-Auth-Subject": "root", "X-Auth-Admin": "true", "X-Auth-Scope": ""})

	// Refusals, with authd's challenge passed on by nginx.
	challenge := func(name string, r gatewayReply, want string) {
		t.Helper()
		if got := r.header.Get("WWW-Authenticate"); got != want {
			t.Errorf("%s: WWW-Authenticate = %q, want %q", name, got, want)
		}
	}
	r, _ := through("no token", "GET", "/notes/1", "", "", nil, 401)
	challenge("no token", r, `Bearer realm="authd"`)
	through("forged identity, no token", "GET", "/notes/1", "", "", map[string]string{"X-Auth-Subject": "root", "X-Auth-Admin": "true"}, 401)
	r, _ = through("junk token", "GET", "/notes/1", "junk.junk.junk", "", nil, 401)
	challenge("junk token", r, `Bearer realm="authd", error="invalid_token"`)
	through("another scheme", "GET", "/notes/1", "", "", map[string]string{"Authorization": "Basic cm9vdDp4"}, 401)
	through("malformed header", "GET", "/notes/1", "", "", map[string]string{"Authorization": "Bearer "}, 401)
	r, _ = through("expired token", "GET", "/notes/1", expired, "", nil, 401)
	challenge("expired token", r, `Bearer realm="authd", error="invalid_token"`)

	// /write/ needs notes:write: 403 for the reader, 200 for the writer.
	r, _ = through("reader writes", "POST", "/write/notes", reader, "title=x", nil, 403)
	challenge("reader writes", r, `Bearer realm="authd", error="insufficient_scope", scope="notes:write"`)
	through("no token writes", "POST", "/write/notes", "", "title=x", nil, 401)
	_, e = through("writer writes", "POST", "/write/notes", writer, "title=x", nil, 200)
	sawIdentity("writer writes", e, map[string]string{"X-Auth-Subject": "writer", "X-Auth-Scope": "notes:read notes:write"})
	if e != nil && e.Body != "title=x" {
		t.Errorf("writer's body reached the upstream as %q", e.Body)
	}

	// A logout at authd is honoured by the very next request through nginx.
	through("writer before logout", "GET", "/notes/2", writer, "", nil, 200)
	if r := c.do(http.MethodPost, authdURL+"/logout", "", url.Values{"token": {writer}}.Encode(), nil); r.status != 200 {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	r, _ = through("writer after logout", "GET", "/notes/2", writer, "", nil, 401)
	challenge("writer after logout", r, `Bearer realm="authd", error="invalid_token"`)
	through("writer writes after logout", "POST", "/write/notes", writer, "title=x", nil, 401)
	through("reader unaffected", "GET", "/notes/2", reader, "", nil, 200)

	// The hop's cost, as nginx pays it (logged; the bound is loose on purpose).
	const n = 200
	begin := time.Now()
	for range n {
		if r := c.do("GET", gw+"/notes/1", reader, "", nil); r.status != 200 {
			t.Fatalf("timing loop: %d", r.status)
		}
	}
	per := time.Since(begin) / n
	t.Logf("a request through nginx, authd's check and the upstream: %v on average", per)
	if per > 50*time.Millisecond {
		t.Errorf("a checked request takes %v", per)
	}

	for _, secret := range []string{adminSecret, readerSecret, writerSecret, reader, writer, expired, admin} {
		if strings.Contains(logs.String(), secret) {
			t.Fatal("a secret or token reached authd's log")
		}
	}

	// authd down: nginx refuses (fail closed), it does not let requests through.
	if err := stop(); err != nil {
		t.Errorf("authd serve: %v", err)
	}
	r, _ = through("authd down", "GET", "/notes/1", reader, "", nil, 500)
	if r.status/100 == 2 {
		t.Fatal("authd down, yet nginx let the request through")
	}
}

// TestGatewayDocsShowTestedConfig: the nginx snippet of docs/gateways.md is
// the tested template's, with the example's addresses.
func TestGatewayDocsShowTestedConfig(t *testing.T) {
	conf := renderNginxConf(t, "127.0.0.1:8080", "127.0.0.1:5000", "127.0.0.1:8081")
	_, rest, ok := strings.Cut(conf, "    # >>> gateway snippet\n")
	snippet, _, ok2 := strings.Cut(rest, "    # <<< gateway snippet\n")
	if !ok || !ok2 {
		t.Fatalf("%s lacks the gateway snippet markers", nginxTemplate)
	}
	var dedented strings.Builder
	for line := range strings.Lines(snippet) {
		dedented.WriteString(strings.TrimPrefix(line, "    "))
	}
	doc, err := os.ReadFile(gatewaysDoc)
	if errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s is missing", gatewaysDoc)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```nginx\n"+dedented.String()+"```\n") {
		t.Fatalf("%s does not show the tested nginx configuration; it should contain, in a ```nginx block:\n%s", gatewaysDoc, dedented.String())
	}
}
