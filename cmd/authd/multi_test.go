package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/authsvc/authsvc/internal/testdb"
)

// startApp runs an authd on 127.0.0.1:0 against dbURL, as main would.
func startApp(t *testing.T, dbURL string) string {
	t.Helper()
	cfg := config{
		Addr: "127.0.0.1:0", DatabaseURL: dbURL, Issuer: "http://authd.test",
		TokenTTL: time.Hour, SigningAlg: "EdDSA", BootstrapClientID: "root", BootstrapClientSecret: adminSecret,
		LogFormat: "json", LogLevel: "error", ShutdownTimeout: 5 * time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	ap, err := start(ctx, cfg, newLogger(cfg, &logBuffer{}))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ap.serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return "http://" + ap.ln.Addr().String()
}

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

// TestTwoAuthdInstances: two authd servers on one PostgreSQL behave as one.
func TestTwoAuthdInstances(t *testing.T) {
	dbURL := testdb.Postgres(t)
	a, b := startApp(t, dbURL), startApp(t, dbURL)
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
	t.Logf("logout at B refused at A after %v", time.Since(start).Round(time.Millisecond))
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

func TestClientLogoutAndRotateRoutes(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		adminH := map[string]string{"Authorization": "Bearer " + ts.admin}
		_, secret := ts.createClient(url.Values{"client_id": {"svc"}})
		tok := ts.token("svc", secret)
		// Rotate with grace: both secrets work; the old token stays valid.
		r := ts.do("POST", "/client/svc/rotate-secret", form, "grace=1h", adminH)
		expect(t, "rotate", r, 200)
		newSecret, _ := r.body["client_secret"].(string)
		if len(newSecret) != 43 || r.body["old_secret_valid_until"] == nil || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("rotate: %s", r.raw)
		}
		ts.token("svc", secret)
		ts.token("svc", newSecret)
		expect(t, "old token after rotation", ts.form("/verify", nil, tok), 200)
		// Rotate to a chosen secret with logout everywhere: old token refused.
		r = ts.do("POST", "/client/svc/rotate-secret", "application/json", `{"client_secret":"a brand new chosen secret","logout_everywhere":true}`, adminH)
		expect(t, "rotate chosen", r, 200)
		expect(t, "token after rotate+logout", ts.form("/verify", nil, tok), 401)
		expect(t, "secret before", ts.form("/auth", url.Values{"client_id": {"svc"}, "client_secret": {newSecret}}, ""), 401)
		time.Sleep(1100 * time.Millisecond) // past the cut-off second
		tok = ts.token("svc", "a brand new chosen secret")
		// Log out everywhere.
		r = ts.do("POST", "/client/svc/logout", "", "", adminH)
		expect(t, "logout everywhere", r, 200)
		expect(t, "token after logout everywhere", ts.form("/verify", nil, tok), 401)
		// Errors.
		expect(t, "rotate unknown", ts.do("POST", "/client/ghost/rotate-secret", "", "", adminH), 404)
		expect(t, "logout unknown", ts.do("POST", "/client/ghost/logout", "", "", adminH), 404)
		expect(t, "bad grace", ts.do("POST", "/client/svc/rotate-secret", form, "grace=forever", adminH), 400)
		expect(t, "short secret", ts.do("POST", "/client/svc/rotate-secret", form, "client_secret=short", adminH), 400)
		expect(t, "bad flag", ts.do("POST", "/client/svc/rotate-secret", form, "logout_everywhere=perhaps", adminH), 400)
		expect(t, "no admin", ts.do("POST", "/client/svc/logout", "", "", nil), 401)
		expect(t, "GET logout", ts.do("GET", "/client/svc/logout", "", "", adminH), 405)
	})
}
