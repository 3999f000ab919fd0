package authhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testdb"
)

// TestErrorKinds: every kind of the library's errors has its status and
// OAuth code in one table; a wrapped error keeps its kind, an *Error's
// message is what the caller sees, and anything else is a 500 that says
// nothing about its cause.
func TestErrorKinds(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
		msg    string
	}{
		{authsvc.ErrUnavailable, 503, "temporarily_unavailable", "service unavailable: the store cannot be reached"},
		{fmt.Errorf("%w: dial tcp 10.0.0.1:5432: i/o timeout", authsvc.ErrUnavailable), 503, "temporarily_unavailable", "service unavailable: the store cannot be reached"},
		{authsvc.ErrInvalidClient, 401, "invalid_client", "invalid client credentials"},
		{authsvc.ErrTokenExpired, 401, "invalid_token", "invalid token"},
		{authsvc.ErrTokenRevoked, 401, "invalid_token", "invalid token"},
		{&authsvc.Error{Kind: authsvc.ErrInvalidScope, Message: `"x" is not granted to this client`}, 400, "invalid_scope", `"x" is not granted to this client`},
		{&authsvc.Error{Kind: authsvc.ErrInvalidArgument, Message: "client secret must be at least 16 characters"}, 400, "invalid_request", "client secret must be at least 16 characters"},
		{fmt.Errorf("creating: %w", &authsvc.Error{Kind: authsvc.ErrInvalidArgument, Message: "negative grace period"}), 400, "invalid_request", "negative grace period"},
		{authsvc.ErrInvalidTarget, 400, "invalid_target", "invalid target"},
		{&authsvc.Error{Kind: authsvc.ErrInvalidTarget, Message: `"https://x" is not an audience this client may request`}, 400, "invalid_target", `"https://x" is not an audience this client may request`},
		{authsvc.ErrClientExists, 409, "invalid_request", "client already exists"},
		{authsvc.ErrRowIDTaken, 409, "invalid_request", "client already exists"},
		{authsvc.ErrClientNotFound, 404, "invalid_request", "client not found"},
		{authsvc.ErrForbidden, 403, "insufficient_scope", "not permitted"},
		{errors.New("pq: relation authsvc_clients does not exist"), 500, "server_error", "internal error"},
	}
	for _, c := range cases {
		f := classify(c.err)
		if f.status != c.status || f.code != c.code || f.msg != c.msg {
			t.Errorf("classify(%v) = %+v, want %d %s %q", c.err, f, c.status, c.code, c.msg)
		}
	}
}

// TestErrorAnswers: what a caller reads of a refusal is the library's
// public message, never its internal text ("authsvc: …", "invalid
// argument: …"), and every 401 carries a challenge.
func TestErrorAnswers(t *testing.T) {
	ts := newTestServer(t, testdb.SQLite(t))
	adminH := map[string]string{"Authorization": "Bearer " + ts.admin}
	cases := []struct {
		name, path, body string
		header           map[string]string
		status           int
		msg              string
	}{
		{"short secret", "/client", "client_id=z&client_secret=short", adminH, 400, "client secret must be at least 16 characters"},
		{"space in id", "/client", "client_id=a+b", adminH, 400, "client_id must be printable ASCII (letters, digits and punctuation) without spaces or control characters"},
		{"bad scope", "/client", "client_id=z&scope=%22q", adminH, 400, `scope "\"q" has a character RFC 6749 forbids`},
		{"taken id", "/client", "client_id=root", adminH, 409, "client already exists"},
		{"wrong secret", "/auth", "client_id=root&client_secret=wrong-wrong-wrong", nil, 401, "invalid client credentials"},
		{"grace", "/client/root/rotate-secret", "grace=-1h", adminH, 400, "grace must be a duration such as 24h, at most 720h"},
	}
	for _, c := range cases {
		r := ts.do("POST", c.path, form, c.body, c.header)
		if r.status != c.status || r.body["error"] != c.msg {
			t.Errorf("%s: %d %s, want %d %q", c.name, r.status, r.raw, c.status, c.msg)
		}
		if strings.Contains(r.raw, "authsvc:") || strings.Contains(r.raw, "invalid argument:") {
			t.Errorf("%s: the answer quotes the library's internal text: %s", c.name, r.raw)
		}
		if r.status == 401 && r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", c.name)
		}
	}
	// The OAuth form: RFC 6749 §5.2 codes with the same messages.
	r := ts.do("POST", "/oauth/token", form, "grant_type=client_credentials&client_id=root&client_secret="+url.QueryEscape(adminSecret)+"&scope=nope", nil)
	if r.status != 400 || r.body["error"] != "invalid_scope" || r.body["error_description"] != `"nope" is not granted to this client` {
		t.Errorf("scope not granted at /oauth/token: %d %s", r.status, r.raw)
	}
}

// TestMountBase: the mount prefix joins the issuer unless the issuer's
// path already ends with it, segment for segment.
func TestMountBase(t *testing.T) {
	store, err := authsvc.OpenStore(context.Background(), testdb.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, c := range []struct{ issuer, prefix, want string }{
		{"http://auth", "/auth", "http://auth/auth"}, // a host named auth
		{"https://h", "/auth", "https://h/auth"},
		{"https://h/auth", "/auth", "https://h/auth"},
		{"https://h/x/auth/", "/auth", "https://h/x/auth"},
		{"https://h/myauth", "/auth", "https://h/myauth/auth"},
		{"https://h/auth", "/a/auth", "https://h/auth/a/auth"},
		{"https://h", "", "https://h"},
	} {
		a, err := authsvc.New(context.Background(), store, authsvc.Config{Issuer: c.issuer})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", c.prefix+"/.well-known/oauth-authorization-server", nil)
		r.URL.Path = "/.well-known/oauth-authorization-server" // as http.StripPrefix leaves it
		if got := (&handler{auth: a}).base(r); got != c.want {
			t.Errorf("issuer %s mounted at %q: base %s, want %s", c.issuer, c.prefix, got, c.want)
		}
		a.Close()
	}
}

// TestMountedDiscovery: under http.StripPrefix the metadata advertises the
// prefixed endpoints; Options.BaseURL overrides them.
func TestMountedDiscovery(t *testing.T) {
	ts := newTestServer(t, testdb.SQLite(t))
	mux := http.NewServeMux()
	mux.Handle("/auth/", http.StripPrefix("/auth", NewHandler(ts.auth, Options{})))
	mux.Handle("/fixed/", http.StripPrefix("/fixed", NewHandler(ts.auth, Options{BaseURL: "https://auth.example/x/"})))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for path, want := range map[string]string{
		"/auth/.well-known/oauth-authorization-server":  "http://authd.test/auth/oauth/token",
		"/auth/.well-known/openid-configuration":        "http://authd.test/auth/oauth/token",
		"/fixed/.well-known/oauth-authorization-server": "https://auth.example/x/oauth/token",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var meta map[string]any
		decodeJSON(t, resp, &meta)
		if meta["token_endpoint"] != want || meta["issuer"] != "http://authd.test" {
			t.Errorf("%s: token_endpoint %v issuer %v, want %s", path, meta["token_endpoint"], meta["issuer"], want)
		}
	}
	// Unmounted, the issuer itself is the base.
	r := ts.do("GET", "/.well-known/oauth-authorization-server", "", "", nil)
	if r.body["token_endpoint"] != "http://authd.test/oauth/token" {
		t.Errorf("unmounted token_endpoint %v", r.body["token_endpoint"])
	}
}

func decodeJSON(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", resp.Request.URL, err)
	}
}
