package authhttp

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/authsvc/authsvc"
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

// TestNewClientIDAndSecretRules: through POST /client and rotate-secret, a
// new client_id must be printable ASCII without spaces (a homoglyph
// "admіn" with a Cyrillic і was accepted) and a chosen secret must not be
// blank or trivially repetitive (16 spaces and "aaaaaaaaaaaaaaaa" were
// accepted); imported seed clients keep their ids and legacy secrets
// (issue 14).
func TestNewClientIDAndSecretRules(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		adminH := map[string]string{"Authorization": "Bearer " + ts.admin}
		const idRule = "client_id must be printable ASCII (letters, digits and punctuation) without spaces or control characters"
		for _, id := range []string{"adm\u0456n", "café", "ｒｏｏｔ", "a\u200bb", "tab\there"} {
			for _, body := range []struct{ ct, body string }{
				{form, "client_id=" + url.QueryEscape(id)},
				{"application/json", jsonObject(t, map[string]string{"client_id": id})},
			} {
				r := ts.do("POST", "/client", body.ct, body.body, adminH)
				if r.status != 400 || r.body["error"] != idRule {
					t.Errorf("create %q (%s): %d %s, want 400 %q", id, body.ct, r.status, r.raw, idRule)
				}
			}
		}
		for _, secret := range []struct{ secret, msg string }{
			{strings.Repeat(" ", 16), "client secret must not be only white space"},
			{"\t\t\t\t        \u00a0\u2003\u2003\u3000", "client secret must not be only white space"},
			{strings.Repeat("a", 16), "client secret must have at least 5 different characters"},
			{strings.Repeat("1234", 4), "client secret must have at least 5 different characters"},
			{"passwordpassword", "client secret must not be a shorter string repeated"},
			{"hunter2!hunter2!hunter2!", "client secret must not be a shorter string repeated"},
		} {
			r := ts.do("POST", "/client", "application/json", jsonObject(t, map[string]string{"client_id": "weak", "client_secret": secret.secret}), adminH)
			if r.status != 400 || r.body["error"] != secret.msg {
				t.Errorf("create with secret %q: %d %s, want 400 %q", secret.secret, r.status, r.raw, secret.msg)
			}
			r = ts.do("POST", "/client/root/rotate-secret", form, "client_secret="+url.QueryEscape(secret.secret), adminH)
			if r.status != 400 || r.body["error"] != secret.msg {
				t.Errorf("rotate to %q: %d %s, want 400 %q", secret.secret, r.status, r.raw, secret.msg)
			}
		}
		// Printable ASCII and a good chosen secret are fine.
		id, secret := ts.createClient(url.Values{"client_id": {`svc:one/o'hara";--~`}, "client_secret": {"correct horse battery staple"}})
		ts.token(id, secret)

		// An imported seed client with a non-ASCII id and a legacy secret
		// below today's rule: it logs in (its hash is upgraded), again, and
		// an admin can manage it by its id.
		sum := sha1.Sum([]byte("flask"))
		for _, id := range []string{"adm\u0456n", "café"} {
			if _, err := ts.auth.ImportClient(context.Background(), authsvc.ImportedClient{ID: id, LegacyHash: hex.EncodeToString(sum[:]), IsAdmin: true}); err != nil {
				t.Fatalf("import %q: %v", id, err)
			}
			tok := ts.token(id, "flask")
			if !strings.HasPrefix(testdb.SecretHash(t, dbURL, id), "$argon2id$") {
				t.Fatalf("%q: legacy hash not upgraded", id)
			}
			ts.token(id, "flask")
			expect(t, "imported admin creates", ts.form("/client", url.Values{"client_id": {"made-by-" + strings.ToValidUTF8(url.PathEscape(id), "")}}, tok), 201)
			expect(t, "logout "+id, ts.do("POST", "/client/"+url.PathEscape(id)+"/logout", "", "", adminH), 200)
			expect(t, "delete "+id, ts.do("DELETE", "/client/"+url.PathEscape(id), "", "", adminH), 200)
		}
	})
}

// jsonObject encodes v as a JSON body.
func jsonObject(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
