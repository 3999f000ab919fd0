package authhttp

import (
	"testing"

	"github.com/authsvc/authsvc/internal/testdb"
)

// TestBlankBearerIsMissingToken: "Authorization: Bearer" with nothing (or
// only spaces) after it lacks authentication information: 401 with a bare
// challenge and no error code (RFC 6750 §3.1), as no header at all gets,
// not 400 invalid_request (issue 14).
func TestBlankBearerIsMissingToken(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		routes := []struct{ method, path string }{
			{"POST", "/verify"},
			{"GET", "/verify"},
			{"GET", "/verify?scope=x"},
			{"DELETE", "/verify/some/path"},
			{"POST", "/client"},
			{"GET", "/clients"},
			{"DELETE", "/client/root"},
			{"POST", "/client/root/logout"},
			{"POST", "/client/root/rotate-secret"},
			{"POST", "/logout"},
		}
		for _, rt := range routes {
			for _, h := range []string{"Bearer", "Bearer ", "Bearer     ", "bearer", "BEARER  "} {
				r := ts.do(rt.method, rt.path, "", "", map[string]string{"Authorization": h})
				name := rt.method + " " + rt.path + " with " + `"` + h + `"`
				if r.status != 401 {
					t.Errorf("%s: %d %s, want 401", name, r.status, r.raw)
				}
				if got := r.header.Get("WWW-Authenticate"); got != bearerChallenge {
					t.Errorf("%s: WWW-Authenticate %q, want %q (no error code)", name, got, bearerChallenge)
				}
			}
		}
	})
}
