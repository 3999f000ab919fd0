package authhttp

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/authsvc/authsvc/internal/testdb"
)

// TestUnstorableClientIDs: a client_id no store can hold (a NUL byte,
// invalid UTF-8) is refused before the store on every route that passes a
// caller's id to it: 401 where a client authenticates, 400 where an admin
// names a client. PostgreSQL refuses such text outright, which used to
// surface as a 503 "store cannot be reached", an ERROR in the log and a
// store error in the metrics (issue 14).
func TestUnstorableClientIDs(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		adminH := map[string]string{"Authorization": "Bearer " + ts.admin}
		const secret = "some-long-enough-secret-0123"
		for _, id := range []string{"a\x00b", "\xff\xfe", "caf\xe9", "root\x00"} {
			esc := url.QueryEscape(id)
			pathEsc := url.PathEscape(id)
			cases := []struct {
				name, method, path, ct, body string
				header                       map[string]string
				status                       int
			}{
				{"/auth form", "POST", "/auth", form, "client_id=" + esc + "&client_secret=" + secret, nil, 401},
				{"/oauth/token post", "POST", "/oauth/token", form, "grant_type=client_credentials&client_id=" + esc + "&client_secret=" + secret, nil, 401},
				{"/oauth/token basic", "POST", "/oauth/token", form, "grant_type=client_credentials",
					map[string]string{"Authorization": basicAuth(id, secret)}, 401},
				{"/oauth/introspect", "POST", "/oauth/introspect", form, "token=x&client_id=" + esc + "&client_secret=" + secret, nil, 401},
				{"/oauth/revoke", "POST", "/oauth/revoke", form, "token=x",
					map[string]string{"Authorization": basicAuth(id, secret)}, 401},
				{"/revocations", "GET", "/revocations", "", "",
					map[string]string{"Authorization": basicAuth(id, secret)}, 401},
				{"DELETE /client/{id}", "DELETE", "/client/" + pathEsc, "", "", adminH, 400},
				{"DELETE /client form", "DELETE", "/client", form, "client_id=" + esc, adminH, 400},
				{"DELETE /client query", "DELETE", "/client?client_id=" + esc, "", "", adminH, 400},
				{"logout everywhere", "POST", "/client/" + pathEsc + "/logout", "", "", adminH, 400},
				{"rotate-secret", "POST", "/client/" + pathEsc + "/rotate-secret", "", "", adminH, 400},
				{"create", "POST", "/client", form, "client_id=" + esc, adminH, 400},
			}
			if strings.ContainsRune(id, 0) {
				// JSON cannot carry invalid UTF-8 (decoders replace it), but
				// it can carry a NUL.
				tc := cases[0]
				tc.name, tc.ct, tc.body = "/auth JSON", "application/json", `{"client_id":"a\u0000b","client_secret":"`+secret+`"}`
				cases = append(cases, tc)
			}
			for _, tc := range cases {
				name := tc.name + " " + strings.ToValidUTF8(url.QueryEscape(id), "?")
				r := ts.do(tc.method, tc.path, tc.ct, tc.body, tc.header)
				if r.status != tc.status {
					t.Errorf("%s: %d %s, want %d", name, r.status, r.raw, tc.status)
				}
				if r.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s: 401 without WWW-Authenticate", name)
				}
			}
		}
		if n := ts.auth.Stats().StoreErrors; n != 0 {
			t.Errorf("%d store errors counted for malformed ids", n)
		}
		if logs := ts.logs.String(); strings.Contains(logs, "store unavailable") || strings.Contains(logs, `"level":"ERROR"`) {
			t.Errorf("malformed ids logged as an outage:\n%s", logs)
		}
		// The store is fine, and says so.
		expect(t, "readyz", ts.do("GET", "/readyz", "", "", nil), 200)
	})
}
