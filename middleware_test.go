package authsvc

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/authsvc/authsvc/internal/testdb"
)

// protected is a handler behind Middleware and RequireScope, as a service
// would mount it.
func protected(a Verifier, opts ...MiddlewareOption) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+ClaimsFromContext(r.Context()).Subject)
	})
	mux.Handle("/write", RequireScope("notes:write")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "written")
	})))
	mux.Handle("/admin", RequireAdmin()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "admin")
	})))
	return Middleware(a, append([]MiddlewareOption{WithRealm("notes"), WithSkipPaths("/healthz")}, opts...)...)(mux)
}

func TestMiddleware(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Now()}
	a := newAuth(t, openStore(t, testdb.SQLite(t)), Config{Now: clock.Now})
	_, secret := mustClient(t, a, NewClient{ID: "reader", Scopes: []string{"notes:read"}})
	_, wsecret := mustClient(t, a, NewClient{ID: "writer", IsAdmin: true, Scopes: []string{"notes:read", "notes:write"}})
	reader := mustToken(t, a, "reader", secret).AccessToken
	writer := mustToken(t, a, "writer", wsecret).AccessToken
	revoked := mustToken(t, a, "reader", secret).AccessToken
	if err := a.Logout(ctx, revoked); err != nil {
		t.Fatal(err)
	}
	clock.Add(-2 * time.Hour)
	expired := mustToken(t, a, "reader", secret).AccessToken
	clock.Add(2 * time.Hour)
	parts := strings.Split(reader, ".")
	badSig := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	srv := httptest.NewServer(protected(a))
	defer srv.Close()

	cases := []struct {
		name      string
		path      string
		headers   []string // Authorization values
		status    int
		challenge string // expected WWW-Authenticate ("" = none)
		body      string // expected body substring
	}{
		{"missing", "/read", nil, 401, `Bearer realm="notes"`, "unauthorized"},
		{"skip path", "/healthz", nil, 200, "", "ok"},
		{"wrong scheme", "/read", []string{"Basic " + reader}, 401, `Bearer realm="notes"`, ""},
		{"lowercase bearer", "/read", []string{"bearer " + reader}, 200, "", "hello reader"},
		{"upper BEARER", "/read", []string{"BEARER " + reader}, 200, "", "hello reader"},
		{"extra spaces", "/read", []string{"Bearer    " + reader}, 200, "", "hello reader"},
		{"no space", "/read", []string{"Bearer" + reader}, 401, `Bearer realm="notes"`, ""},
		{"empty bearer", "/read", []string{"Bearer "}, 401, `Bearer realm="notes"`, "unauthorized"},
		{"blank bearer", "/read", []string{"bearer      "}, 401, `Bearer realm="notes"`, "unauthorized"},
		{"bare scheme", "/read", []string{"Bearer"}, 401, `Bearer realm="notes"`, "unauthorized"},
		{"two headers", "/read", []string{"Bearer " + reader, "Bearer " + reader}, 400, `error="invalid_request"`, "invalid_request"},
		{"64 KB header", "/read", []string{"Bearer " + strings.Repeat("a", 64<<10)}, 401, `error="invalid_token"`, "invalid_token"},
		{"bad chars", "/read", []string{"Bearer a b"}, 401, `error="invalid_token"`, ""},
		{"bad signature", "/read", []string{"Bearer " + badSig}, 401, `error="invalid_token"`, "invalid_token"},
		{"expired", "/read", []string{"Bearer " + expired}, 401, `error="invalid_token"`, "invalid_token"},
		{"revoked", "/read", []string{"Bearer " + revoked}, 401, `error="invalid_token"`, "invalid_token"},
		{"without scope", "/write", []string{"Bearer " + reader}, 403, `error="insufficient_scope", scope="notes:write"`, "insufficient_scope"},
		{"with scope", "/write", []string{"Bearer " + writer}, 200, "", "written"},
		{"not admin", "/admin", []string{"Bearer " + reader}, 403, `error="insufficient_scope"`, ""},
		{"admin", "/admin", []string{"Bearer " + writer}, 200, "", "admin"},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
		for _, h := range tc.headers {
			req.Header.Add("Authorization", h)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != tc.status || (tc.challenge != "" && !strings.Contains(got, tc.challenge)) || (tc.challenge == "" && got != "") {
			t.Errorf("%s: %d %q, want %d %q", tc.name, resp.StatusCode, got, tc.status, tc.challenge)
		}
		if tc.status == 401 && strings.Contains(got, "error=") && tc.challenge == `Bearer realm="notes"` {
			t.Errorf("%s: a request without a token must get no error code: %q", tc.name, got)
		}
		if !strings.Contains(string(b), tc.body) {
			t.Errorf("%s: body %q lacks %q", tc.name, b, tc.body)
		}
		if resp.StatusCode >= 400 {
			if strings.Contains(string(b), reader) || strings.Contains(string(b), "signature") || strings.Contains(string(b), "revoked") || len(b) > 100 {
				t.Errorf("%s: refusal body says too much: %q", tc.name, b)
			}
			var v map[string]any
			if json.Unmarshal(b, &v) != nil {
				t.Errorf("%s: refusal body is not JSON: %q", tc.name, b)
			}
		}
	}
}

func TestMiddlewareOptions(t *testing.T) {
	a := newAuth(t, openStore(t, testdb.SQLite(t)), Config{})
	_, secret := mustClient(t, a, NewClient{ID: "svc", Audiences: []string{"https://notes.test"}})
	forNotes, err := a.Authenticate(context.Background(), "svc", secret, TokenRequest{Audience: []string{"https://notes.test"}})
	if err != nil {
		t.Fatal(err)
	}
	other := mustToken(t, a, "svc", secret).AccessToken
	var written int
	h := protected(a, WithAudience("https://notes.test"), WithErrorWriter(func(w http.ResponseWriter, r *http.Request, status int, code string) {
		written++
		w.WriteHeader(status)
		io.WriteString(w, "custom:"+code)
	}))
	for _, c := range []struct {
		tok    string
		status int
		body   string
	}{{forNotes.AccessToken, 200, "hello svc"}, {other, 401, "custom:invalid_token"}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/read", nil)
		req.Header.Set("Authorization", "Bearer "+c.tok)
		h.ServeHTTP(rec, req)
		if rec.Code != c.status || rec.Body.String() != c.body {
			t.Errorf("got %d %q, want %d %q", rec.Code, rec.Body.String(), c.status, c.body)
		}
	}
	if written != 1 {
		t.Fatalf("custom error writer called %d times", written)
	}
	// RequireScope without Middleware in front fails closed.
	rec := httptest.NewRecorder()
	RequireScope("x")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Fatal("reached") })).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 401 {
		t.Fatalf("RequireScope alone: %d", rec.Code)
	}
}

// downVerifier plays a verifier whose store is unreachable.
type downVerifier struct{}

func (downVerifier) Verify(context.Context, string) (*Claims, error) { return nil, ErrUnavailable }

func TestMiddlewareFailsClosed(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/read", nil)
	req.Header.Set("Authorization", "Bearer abc")
	protected(downVerifier{}).ServeHTTP(rec, req)
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("store down: %d", rec.Code)
	}
}

// FuzzBearerToken: the Authorization header parser never panics, and what
// it accepts is a bounded b64token.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer a.b.c", "Bearer ", "Basic x", "Bearer  a==", "Bearer a=b", "", "Bearer\ta"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, err := parseBearer(h)
		if err != nil {
			if tok != "" {
				t.Fatal("token with error")
			}
			if !errors.Is(err, ErrNoToken) && !errors.Is(err, ErrMalformedAuthorization) && !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if tok == "" || len(tok) > MaxTokenLen || !isB64Token(tok) || strings.ContainsAny(tok, " \t") {
			t.Fatalf("accepted %q", tok)
		}
	})
}
