package authhttp

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/faultproxy"
	"github.com/authsvc/authsvc/internal/testdb"
)

// TestBlackholedStore: PostgreSQL goes silent behind a proxy that drops
// every packet and closes nothing (a network partition). The instance
// behind it stops issuing within a catch-up's bound, /readyz says so
// within a second, what needs the store answers 503 instead of hanging,
// verification from memory stops at MaxStaleness, and a secret rotated
// meanwhile on an instance that still reaches the store is the only one
// that works once the partition heals. Then the proxy resets every
// connection, and the instance recovers from that too.
func TestBlackholedStore(t *testing.T) {
	dbURL := testdb.Postgres(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faultproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	u.Host = proxy.Addr()
	ctx := context.Background()
	const issuer = "http://authd.test"

	// B reaches the database directly: the rest of the fleet.
	storeB, err := authsvc.OpenStore(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer storeB.Close()
	b, err := authsvc.New(ctx, storeB, authsvc.Config{Issuer: issuer, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, secret, err := b.CreateClient(ctx, authsvc.NewClient{ID: "svc"})
	if err != nil {
		t.Fatal(err)
	}

	// A goes through the proxy.
	storeA, err := authsvc.OpenStore(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer storeA.Close()
	const storeTimeout, maxStaleness = 300 * time.Millisecond, 1500 * time.Millisecond
	a, err := authsvc.New(ctx, storeA, authsvc.Config{Issuer: issuer, PollInterval: 50 * time.Millisecond,
		StoreTimeout: storeTimeout, MaxStaleness: maxStaleness})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srv := httptest.NewServer(NewHandler(a, Options{Throttle: Throttle{Off: true}, Logger: slog.New(slog.DiscardHandler)}))
	defer srv.Close()

	post := func(path string, v url.Values, bearer string) (int, time.Duration) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+path, nil)
		if v != nil {
			req, _ = http.NewRequest("POST", srv.URL+path, strings.NewReader(v.Encode()))
			req.Header.Set("Content-Type", form)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}
	get := func(path string, h map[string]string) (int, time.Duration) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}
	tokenAt := func(id, secret string) int {
		st, _ := post("/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}, "")
		return st
	}
	eventually := func(what string, within time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s", what, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// A knows svc, issues and verifies.
	eventually("A learns of svc", 5*time.Second, func() bool { _, err := a.Client(ctx, "svc"); return err == nil })
	tok, err := a.Authenticate(ctx, "svc", secret, authsvc.TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st := tokenAt("svc", secret); st != 200 {
		t.Fatalf("/oauth/token before the partition: %d", st)
	}
	if st, _ := get("/readyz", nil); st != 200 {
		t.Fatalf("/readyz before the partition: %d", st)
	}

	proxy.Pause()
	// Verification goes on from memory for now…
	if st, _ := post("/verify", nil, tok.AccessToken); st != 200 {
		t.Fatalf("/verify just after the partition: %d", st)
	}
	// …but issuing stops within a catch-up's bound, and stays stopped.
	eventually("A stops issuing", storeTimeout+time.Second, func() bool { return tokenAt("svc", secret) == 503 })
	// /readyz answers, and says no, within a second.
	if st, d := get("/readyz", nil); st != 503 || d > 1500*time.Millisecond {
		t.Fatalf("/readyz while partitioned: %d after %s", st, d)
	}
	// What needs the store answers 503 instead of hanging.
	if _, _, err := b.CreateClient(ctx, authsvc.NewClient{ID: "newcomer", Secret: "newcomer-secret-0123456789"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		do   func() (int, time.Duration)
	}{
		{"/auth for a client A never saw", func() (int, time.Duration) {
			return post("/auth", url.Values{"client_id": {"newcomer"}, "client_secret": {"newcomer-secret-0123456789"}}, "")
		}},
		{"/logout", func() (int, time.Duration) { return post("/logout", url.Values{"token": {tok.AccessToken}}, "") }},
		{"/revocations", func() (int, time.Duration) {
			return get("/revocations?v=2&after=0", map[string]string{"Authorization": basicAuth("svc", secret)})
		}},
	} {
		if st, d := c.do(); st != 503 || d > 2*storeTimeout+time.Second {
			t.Errorf("%s while partitioned: %d after %s", c.name, st, d)
		}
	}
	// The fleet rotates svc's secret meanwhile (no grace).
	_, rotated, err := b.RotateSecret(ctx, "svc", authsvc.RotateSecret{})
	if err != nil {
		t.Fatal(err)
	}
	if st := tokenAt("svc", secret); st != 503 {
		t.Fatalf("A issues with the old secret while partitioned: %d", st)
	}
	// Past MaxStaleness even verification from memory stops.
	eventually("A stops verifying", maxStaleness+time.Second, func() bool {
		st, _ := post("/verify", nil, tok.AccessToken)
		return st == 503
	})
	if _, err := a.Verify(ctx, tok.AccessToken); err == nil {
		t.Fatal("Verify accepts a token past MaxStaleness")
	}

	proxy.Resume()
	eventually("A ready after the partition", 10*time.Second, func() bool { st, _ := get("/readyz", nil); return st == 200 })
	if st := tokenAt("svc", secret); st != 401 {
		t.Fatalf("the secret rotated during the partition still works at A: %d", st)
	}
	if st := tokenAt("svc", rotated); st != 200 {
		t.Fatalf("the new secret at A after the partition: %d", st)
	}

	// A reset of every connection: pooled connections fail once each
	// (fail closed), then A reconnects and serves.
	proxy.Drop()
	eventually("A ready after a reset", 10*time.Second, func() bool { st, _ := get("/readyz", nil); return st == 200 })
	eventually("A serves after a reset", 10*time.Second, func() bool { return tokenAt("svc", rotated) == 200 })
}

// TestReadyzDraining: while Options.Draining says so, /readyz answers 503
// "draining" (a load balancer stops sending requests) and every other
// route still serves.
func TestReadyzDraining(t *testing.T) {
	ts := newTestServer(t, testdb.SQLite(t))
	var draining atomic.Bool
	srv := httptest.NewServer(NewHandler(ts.auth, Options{Draining: draining.Load}))
	defer srv.Close()
	ready := func() (int, string) {
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Status string }
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Status
	}
	if st, s := ready(); st != 200 || s != "ready" {
		t.Fatalf("/readyz: %d %s", st, s)
	}
	draining.Store(true)
	if st, s := ready(); st != 503 || s != "draining" {
		t.Fatalf("/readyz while draining: %d %s", st, s)
	}
	resp, err := http.Get(srv.URL + "/.well-known/jwks.json")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("JWKS while draining: %v %v", resp, err)
	}
	resp.Body.Close()
}
