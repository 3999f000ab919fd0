package main

import (
	"bufio"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/authsvc/authsvc/internal/testdb"
)

// TestStoreOutage takes authd's dedicated database away while it serves
// (connections refused and the open ones terminated with
// pg_terminate_backend; the shared server keeps running): /readyz turns
// false, what needs the store answers 503, nothing crashes, and all comes
// back, with no client or revocation lost, when the database returns.
func TestStoreOutage(t *testing.T) {
	dbURL := testdb.Postgres(t)
	u, _ := url.Parse(dbURL)
	name := strings.TrimPrefix(u.Path, "/")
	admin, err := sql.Open("postgres", os.Getenv(testdb.EnvURL))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	cfg := config{
		Addr: "127.0.0.1:0", DatabaseURL: dbURL, Issuer: "http://authd.test", TokenTTL: time.Hour, SigningAlg: "EdDSA",
		BootstrapClientID: "root", BootstrapClientSecret: adminSecret, LogFormat: "json", LogLevel: "info",
		ShutdownTimeout: 5 * time.Second, JWKSMaxAge: time.Minute, PollInterval: 100 * time.Millisecond, MaxStaleness: time.Second,
	}
	ap, _ := serveForTest(t, cfg, &testdb.LogBuffer{})
	base := "http://" + ap.ln.Addr().String()
	status := func(method, path string, v url.Values, bearer string) int {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", form)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v (authd must keep serving)", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	_, body := postForm(t, base+"/auth", url.Values{"client_id": {"root"}, "client_secret": {adminSecret}}, "")
	adminTok := body["token"].(string)
	if st, _ := postForm(t, base+"/client", url.Values{"client_id": {"svc"}, "client_secret": {"svc-secret-long-enough"}}, adminTok); st != 201 {
		t.Fatal("create")
	}
	creds := url.Values{"client_id": {"svc"}, "client_secret": {"svc-secret-long-enough"}}
	_, body = postForm(t, base+"/auth", creds, "")
	live := body["token"].(string)
	_, body = postForm(t, base+"/auth", creds, "")
	dead := body["token"].(string)
	if st := status("POST", "/logout", url.Values{"token": {dead}}, ""); st != 200 {
		t.Fatal("logout")
	}

	// The outage.
	if _, err := admin.Exec(`ALTER DATABASE ` + name + ` ALLOW_CONNECTIONS false`); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			admin.Exec(`ALTER DATABASE ` + name + ` ALLOW_CONNECTIONS true`)
		}
	}
	defer restore()
	if _, err := admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, name); err != nil {
		t.Fatal(err)
	}
	waitUntil := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitUntil("/readyz to turn 503", 5*time.Second, func() bool { return status("GET", "/readyz", nil, "") == 503 })
	waitUntil("/auth to fail closed", 5*time.Second, func() bool { return status("POST", "/auth", creds, "") == 503 })
	waitUntil("/verify to fail closed", 5*time.Second, func() bool { return status("POST", "/verify", nil, live) == 503 })
	for _, c := range []struct {
		path string
		v    url.Values
		tok  string
	}{{"/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"svc"}, "client_secret": {"svc-secret-long-enough"}}, ""},
		{"/logout", url.Values{"token": {live}}, ""}, {"/client", url.Values{"client_id": {"x"}}, adminTok}} {
		if st := status("POST", c.path, c.v, c.tok); st != 503 {
			t.Errorf("%s during the outage: %d, want 503", c.path, st)
		}
	}
	if st := status("GET", "/healthz", nil, ""); st != 200 {
		t.Fatalf("/healthz during the outage: %d", st)
	}

	// The database returns.
	restore()
	waitUntil("/readyz to recover", 15*time.Second, func() bool { return status("GET", "/readyz", nil, "") == 200 })
	waitUntil("/verify to recover", 15*time.Second, func() bool { return status("POST", "/verify", nil, live) == 200 })
	if st := status("POST", "/verify", nil, dead); st != 401 {
		t.Fatalf("a token revoked before the outage: %d, want 401", st)
	}
	if st := status("POST", "/auth", creds, ""); st != 200 {
		t.Fatalf("the client after the outage: %d", st)
	}
}

// TestSIGTERMUnderLoad runs the real binary, loads it, sends SIGTERM: every
// request sent gets a complete answer. The load stops sending when /readyz
// turns 503, as a load balancer does during AUTHSVC_SHUTDOWN_DRAIN; a
// request after the listener closed is refused, which is not a broken one.
func TestSIGTERMUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "authd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr := testdb.FreeAddr(t)
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "AUTHSVC_ADDR="+addr, "AUTHSVC_DATABASE_URL=sqlite:"+filepath.Join(dir, "a.db"),
		"AUTHSVC_BOOTSTRAP_CLIENT_ID=root", "AUTHSVC_BOOTSTRAP_CLIENT_SECRET="+adminSecret, "AUTHSVC_LOG_LEVEL=warn", "AUTHSVC_SHUTDOWN_DRAIN=500ms")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err := http.Get(base + "/readyz"); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("authd not ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, body := postForm(t, base+"/auth", url.Values{"client_id": {"root"}, "client_secret": {adminSecret}}, "")
	tok := body["token"].(string)

	var ok, refused, broken atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var drained atomic.Bool
	go func() { // the load balancer's health check
		for !drained.Load() {
			resp, err := http.Get(base + "/readyz")
			if err != nil || resp.StatusCode != 200 {
				drained.Store(true)
			}
			if err == nil {
				resp.Body.Close()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				if drained.Load() {
					time.Sleep(time.Millisecond)
					continue
				}
				req, _ := http.NewRequest("POST", base+"/verify", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				// /verify is idempotent: saying so lets the client resend a
				// request that met a keep-alive connection closing under it
				// (the server never received it: it was not in flight).
				req.Header.Set("Idempotency-Key", "verify")
				resp, err := client.Do(req)
				switch {
				case err == nil:
					resp.Body.Close()
					if resp.StatusCode == 200 {
						ok.Add(1)
					} else {
						broken.Add(1)
					}
				case isRefused(err):
					refused.Add(1)
					time.Sleep(time.Millisecond)
				default:
					broken.Add(1)
					t.Logf("broken request: %v", err)
				}
			}
		}()
	}
	// A slow request in flight across the whole shutdown: its body is sent
	// half before SIGTERM, half after the listener has closed.
	slow := make(chan string, 1)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	body2 := "token=" + tok
	fmt.Fprintf(conn, "POST /verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", tok, form, len(body2), body2[:3])
	go func() {
		time.Sleep(1200 * time.Millisecond) // SIGTERM at 300 ms + 500 ms drain: the listener is closed by now
		io.WriteString(conn, body2[3:])
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			slow <- err.Error()
			return
		}
		resp.Body.Close()
		slow <- resp.Status
	}()
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	if got := <-slow; got != "200 OK" {
		t.Fatalf("the request in flight during shutdown got %q, want 200 OK", got)
	}
	conn.Close()
	waitErr := cmd.Wait()
	close(stop)
	wg.Wait()
	if waitErr != nil {
		t.Fatalf("authd exited badly after SIGTERM: %v", waitErr)
	}
	t.Logf("during SIGTERM: %d answered, %d refused after close, %d broken", ok.Load(), refused.Load(), broken.Load())
	if ok.Load() == 0 || broken.Load() != 0 {
		t.Fatalf("%d broken requests (of %d)", broken.Load(), ok.Load())
	}
}

func isRefused(err error) bool {
	return strings.Contains(err.Error(), "connection refused")
}

// freeTestAddr forwards to testdb.FreeAddr for multi_test.go, which still
// calls it; it goes once that file calls testdb.FreeAddr itself.
func freeTestAddr(t *testing.T) string { return testdb.FreeAddr(t) }
