package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authsvc/authsvc/internal/testdb"
)

func postForm(t *testing.T, u string, v url.Values, bearer string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", form)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// startProcess runs the authd binary at bin against dbURL, as an operator
// would, and returns its base URL once /readyz answers.
func startProcess(t *testing.T, bin, dbURL string) string {
	t.Helper()
	addr := freeTestAddr(t)
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "AUTHSVC_ADDR="+addr, "AUTHSVC_DATABASE_URL="+dbURL, "AUTHSVC_ISSUER=http://authd.test",
		"AUTHSVC_BOOTSTRAP_CLIENT_ID=root", "AUTHSVC_BOOTSTRAP_CLIENT_SECRET="+adminSecret, "AUTHSVC_LOG_LEVEL=warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("authd at %s:\n%s", addr, logs.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("authd did not become ready:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// buildAuthd builds this command into a temporary folder.
func buildAuthd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "authd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestTwoAuthdInstances: two authd processes on one PostgreSQL behave as one.
func TestTwoAuthdInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dbURL := testdb.Postgres(t)
	bin := buildAuthd(t)
	a, b := startProcess(t, bin, dbURL), startProcess(t, bin, dbURL)
	_, body := postForm(t, a+"/auth", url.Values{"client_id": {"root"}, "client_secret": {adminSecret}}, "")
	admin := body["token"].(string)
	// Create at A, authenticate at B, verify at A.
	if st, body := postForm(t, a+"/client", url.Values{"client_id": {"svc"}, "client_secret": {"svc-secret-long-enough"}}, admin); st != 201 {
		t.Fatalf("create at A: %d %v", st, body)
	}
	st, body := postForm(t, b+"/auth", url.Values{"client_id": {"svc"}, "client_secret": {"svc-secret-long-enough"}}, "")
	if st != 200 {
		t.Fatalf("auth at B: %d %v", st, body)
	}
	tok := body["token"].(string)
	if st, _ := postForm(t, a+"/verify", nil, tok); st != 200 {
		t.Fatalf("B's token at A: %d", st)
	}
	// Log out at B; A refuses within moments.
	if st, _ := postForm(t, b+"/logout", url.Values{"token": {tok}}, ""); st != 200 {
		t.Fatal("logout at B")
	}
	start := time.Now()
	for {
		st, _ := postForm(t, a+"/verify", nil, tok)
		if st == 401 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("A still accepts a token logged out at B (%d)", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("logout at process B refused at process A after %v", time.Since(start).Round(100*time.Microsecond))
	// Cut-off at A through the admin route; B refuses the client's tokens.
	_, body = postForm(t, b+"/auth", url.Values{"client_id": {"svc"}, "client_secret": {"svc-secret-long-enough"}}, "")
	tok2 := body["token"].(string)
	if st, body := postForm(t, a+"/client/svc/logout", nil, admin); st != 200 || body["tokens_valid_after"] == nil {
		t.Fatalf("cut-off at A: %d %v", st, body)
	}
	start = time.Now()
	for {
		if st, _ := postForm(t, b+"/verify", nil, tok2); st == 401 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("B accepts a token issued before the cut-off at A")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
