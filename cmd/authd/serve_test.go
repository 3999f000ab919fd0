package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer collects log lines so tests can check that nothing secret is
// written.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

const adminSecret = "bootstrap-admin-secret-0123456789"

// TestServeProcess runs authd's start and serve as main does, on a real
// port and a real SQLite file, bootstrap admin included, then shuts down.
func TestServeProcess(t *testing.T) {
	dir := t.TempDir()
	cfg := config{
		Addr: "127.0.0.1:0", DatabaseURL: "sqlite:" + dir + "/authd.db", Issuer: "http://authd.test",
		TokenTTL: time.Hour, SigningAlg: "EdDSA", BootstrapClientID: "root", BootstrapClientSecret: adminSecret,
		LogFormat: "json", LogLevel: "info", ShutdownTimeout: 5 * time.Second,
	}
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	ap, err := start(ctx, cfg, newLogger(cfg, logs))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ap.serve(ctx) }()
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
	cancel()
	if err := <-done; err != nil {
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
