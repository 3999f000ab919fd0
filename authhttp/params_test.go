package authhttp

import (
	"net/url"
	"strings"
	"testing"

	"github.com/authsvc/authsvc/internal/testdb"
)

// TestJSONDuplicateKeys: a JSON body that names a parameter twice is
// refused (400), as a form that does is: the last value used to win, so
// {"client_id":"bob","client_id":"root",…} at /auth gave a root token
// to whoever checked only the first (issue 14).
func TestJSONDuplicateKeys(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		_, bobSecret := ts.createClient(url.Values{"client_id": {"bob"}})
		adminH := map[string]string{"Authorization": "Bearer " + ts.admin}
		cases := []struct {
			name, path, body string
			header           map[string]string
		}{
			{"auth: client_id twice", "/auth", `{"client_id":"bob","client_id":"root","client_secret":"` + adminSecret + `"}`, nil},
			{"auth: secret twice", "/auth", `{"client_id":"bob","client_secret":"x","client_secret":"` + bobSecret + `"}`, nil},
			{"auth: escaped twin", "/auth", `{"client_id":"bob","client\u005fid":"root","client_secret":"` + adminSecret + `"}`, nil},
			{"auth: null then value", "/auth", `{"client_id":null,"client_id":"root","client_secret":"` + adminSecret + `"}`, nil},
			{"client: is_admin twice", "/client", `{"client_id":"mallory","is_admin":false,"is_admin":true}`, adminH},
			{"client: scope twice", "/client", `{"client_id":"mallory","scope":["a"],"scope":"b"}`, adminH},
			{"rotate: secret twice", "/client/bob/rotate-secret", `{"client_secret":"one chosen secret here","client_secret":"another chosen secret"}`, adminH},
		}
		for _, tc := range cases {
			r := ts.do("POST", tc.path, "application/json", tc.body, tc.header)
			expect(t, tc.name, r, 400)
			if msg, _ := r.body["error"].(string); !strings.Contains(msg, "more than once") {
				t.Errorf("%s: error %q does not say a parameter was repeated", tc.name, msg)
			}
		}
		if _, err := ts.auth.Client(t.Context(), "mallory"); err == nil {
			t.Fatal("a body with a repeated parameter created a client")
		}
		// Distinct keys still work, whatever their order, and a key that
		// differs only in case is another key (as in a form).
		expect(t, "auth: distinct keys", ts.do("POST", "/auth", "application/json",
			`{"client_secret":"`+bobSecret+`","client_id":"bob","Client_Id":"root"}`, nil), 200)
	})
}
