package authhttp

// Benchmarks of authd's handler in process (no network): what each route
// costs on top of the library call it makes. Run with
//
//	go test ./cmd/authd -run '^$' -bench . -benchmem
//
// cmd/authbench measures the same routes over real connections.

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testdb"
)

// benchHandler is authd's handler on a fresh SQLite store, logging at
// error level as in production under load, with a client that gets tokens
// and one that introspects.
func benchHandler(b *testing.B) (h http.Handler, callerBasic, token, rsBasic string) {
	b.Helper()
	ctx := context.Background()
	store, err := authsvc.OpenStore(ctx, testdb.SQLite(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	a, err := authsvc.New(ctx, store, authsvc.Config{Issuer: "http://authd.test", Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	_, secret, err := a.CreateClient(ctx, authsvc.NewClient{ID: "caller", Scopes: []string{"notes:read"}})
	if err != nil {
		b.Fatal(err)
	}
	_, rsSecret, err := a.CreateClient(ctx, authsvc.NewClient{ID: "rs"})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := a.Authenticate(ctx, "caller", secret, authsvc.TokenRequest{})
	if err != nil {
		b.Fatal(err)
	}
	basic := func(id, secret string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	}
	return NewHandler(a, Options{Logger: log, Throttle: Throttle{Off: true}}), basic("caller", secret), tok.AccessToken, basic("rs", rsSecret)
}

func BenchmarkHandler(b *testing.B) {
	h, callerBasic, token, rsBasic := benchHandler(b)
	formType := "application/x-www-form-urlencoded"
	for _, rt := range []struct {
		name, method, path, body string
		header                   map[string]string
	}{
		{"token", "POST", "/oauth/token", "grant_type=client_credentials",
			map[string]string{"Authorization": callerBasic, "Content-Type": formType}},
		{"verify", "POST", "/verify", "", map[string]string{"Authorization": "Bearer " + token}},
		{"introspect", "POST", "/oauth/introspect", url.Values{"token": {token}}.Encode(),
			map[string]string{"Authorization": rsBasic, "Content-Type": formType}},
		{"jwks", "GET", "/.well-known/jwks.json", "", nil},
	} {
		b.Run(rt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(rt.body))
				for k, v := range rt.header {
					req.Header.Set(k, v)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", rt.path, w.Code, w.Body)
				}
			}
		})
	}
}

// BenchmarkRequest is the floor under BenchmarkHandler: building the
// request and the recorder, with a handler that only writes a tiny body.
func BenchmarkRequest(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/verify", strings.NewReader(""))
		req.Header.Set("Authorization", "Bearer x")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
	}
}
