package authhttp

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testdb"
)

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

// TestListClientsHTTP: GET /clients pages with limit, cursor and prefix,
// and refuses what it cannot use.
func TestListClientsHTTP(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		admin := map[string]string{"Authorization": "Bearer " + ts.admin}
		for _, id := range []string{"svc-a", "svc-b", "svc-c", "other"} {
			ts.createClient(url.Values{"client_id": {id}})
		}
		var got []string
		cursor := ""
		for range 10 {
			path := "/clients?prefix=svc-&limit=2"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			r := ts.do("GET", path, "", "", admin)
			expect(t, "GET "+path, r, 200)
			for _, c := range r.body["clients"].([]any) {
				got = append(got, c.(map[string]any)["client_id"].(string))
			}
			cursor, _ = r.body["next_cursor"].(string)
			if cursor == "" {
				break
			}
		}
		if strings.Join(got, " ") != "svc-a svc-b svc-c" {
			t.Fatalf("paged listing: %q", got)
		}
		r := ts.do("GET", "/clients", "", "", admin)
		expect(t, "GET /clients", r, 200)
		if n := len(r.body["clients"].([]any)); n != 5 || r.body["next_cursor"] != "" {
			t.Fatalf("default page: %d clients, next %v", n, r.body["next_cursor"])
		}
		for _, bad := range []string{"limit=0", "limit=1001", "limit=x", "cursor=%%%", "cursor=!!", "limit=1&limit=2", "page=2", "prefix=a%00"} {
			expect(t, "GET /clients?"+bad, ts.do("GET", "/clients?"+bad, "", "", admin), 400)
		}
	})
}

// TestUpdateClientRoute: PATCH /client/{id} changes scopes, the admin flag
// and audiences (JSON or form, a field left out is left alone), and every
// bad input is refused with a clear message and changes nothing.
func TestUpdateClientRoute(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		adminH := map[string]string{"Authorization": "Bearer " + ts.admin}
		ts.createClient(url.Values{"client_id": {"svc"}, "scope": {"a b"}, "audience": {"https://x.test"}})
		show := func() string {
			t.Helper()
			c, err := ts.auth.Client(context.Background(), "svc")
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("admin=%t scope=%q aud=%q auth=%s", c.IsAdmin, strings.Join(c.Scopes, " "), strings.Join(c.Audiences, " "), c.AuthMethod)
		}
		r := ts.do("PATCH", "/client/svc", "application/json", `{"scope":["c","a"],"is_admin":true}`, adminH)
		expect(t, "PATCH JSON", r, 200)
		if r.body["success"] != true || r.body["client_id"] != "svc" || r.body["scope"] != "c a" || r.body["is_admin"] != true || r.body["audience"] != "https://x.test" {
			t.Fatalf("PATCH JSON body %s", r.raw)
		}
		if got := show(); got != `admin=true scope="c a" aud="https://x.test" auth=client_secret_basic` {
			t.Fatalf("after PATCH JSON: %s", got)
		}
		expect(t, "PATCH form", ts.do("PATCH", "/client/svc", form, "is_admin=false&audience=", adminH), 200)
		if got := show(); got != `admin=false scope="c a" aud="" auth=client_secret_basic` {
			t.Fatalf("after PATCH form: %s", got)
		}
		expect(t, "PATCH empty scope", ts.do("PATCH", "/client/svc", form, "scope=", adminH), 200)
		expect(t, "PATCH null is absent", ts.do("PATCH", "/client/svc", "application/json", `{"scope":"z","is_admin":null}`, adminH), 200)
		before := show()
		if before != `admin=false scope="z" aud="" auth=client_secret_basic` {
			t.Fatalf("after PATCH null: %s", before)
		}
		if !strings.Contains(ts.logs.String(), `"msg":"audit: client updated","client_id":"svc","by":"root","scope":"z"`) {
			t.Fatalf("no audit line for the update:\n%s", ts.logs)
		}
		for _, bad := range []struct {
			name, ct, body string
			status         int
			msg            string
		}{
			{"nothing", form, "", 400, "nothing to change: give " + patchFields},
			{"only null", "application/json", `{"scope":null}`, 400, "nothing to change: give " + patchFields},
			{"misspelt", form, "scopes=a", 400, `unknown parameter "scopes": PATCH /client/{id} takes ` + patchFields},
			{"bad auth method", form, "token_endpoint_auth_method=bogus", 400, ""},
			{"bad federated", form, "federated_credentials=nope", 400, `federated_credentials must be a JSON array of {"issuer": …, "subject": …}`},
			{"bad jwks_uri", form, "jwks_uri=ftp%3A%2F%2Fx", 400, ""},
			{"bad jwks", "application/json", `{"jwks":{"keys":"no"}}`, 400, ""},
			{"client_id", form, "client_id=other", 400, "a client_id cannot be changed: create a client and delete this one"},
			{"secret", form, "client_secret=a%20new%20secret%20of%20length", 400, "a secret is changed with POST /client/{id}/rotate-secret"},
			{"bad flag", form, "is_admin=perhaps", 400, "is_admin must be true or false"},
			{"empty flag", form, "is_admin=", 400, "is_admin must be true or false"},
			{"twice", form, "scope=a&scope=b", 400, `parameter "scope" given more than once`},
			{"JSON twice", "application/json", `{"scope":"a","scope":"b"}`, 400, `parameter "scope" given more than once`},
			{"bad scope", form, "scope=" + url.QueryEscape("a\x01"), 400, ""},
			{"bad audience", form, "audience=" + url.QueryEscape("\x7f"), 400, ""},
			{"too many audiences", form, "audience=" + url.QueryEscape(manyWords(101)), 400, ""},
			{"malformed JSON", "application/json", `{"scope":`, 400, "malformed request body"},
			{"JSON array", "application/json", `["scope"]`, 400, "malformed JSON body: want an object"},
			{"bad type", "text/plain", "scope=a", 415, ""},
			{"too large", form, "scope=" + strings.Repeat("a", 70<<10), 413, ""},
			{"partly bad", form, "scope=ok&is_admin=maybe", 400, "is_admin must be true or false"},
		} {
			r := ts.do("PATCH", "/client/svc", bad.ct, bad.body, adminH)
			expect(t, "PATCH "+bad.name, r, bad.status)
			if bad.msg != "" && r.body["error"] != bad.msg {
				t.Errorf("PATCH %s: error %q, want %q", bad.name, r.body["error"], bad.msg)
			}
			if got := show(); got != before {
				t.Fatalf("PATCH %s changed the client: %s", bad.name, got)
			}
		}
		r = ts.do("PATCH", "/client/svc", form, "token_endpoint_auth_method=client_secret_post", adminH)
		expect(t, "PATCH auth method", r, 200)
		if r.body["token_endpoint_auth_method"] != "client_secret_post" {
			t.Fatalf("PATCH auth method: %s", r.raw)
		}
		before = show()
		expect(t, "PATCH unknown client", ts.do("PATCH", "/client/ghost", form, "scope=a", adminH), 404)
		expect(t, "PATCH no admin", ts.do("PATCH", "/client/svc", form, "scope=a", nil), 401)
		_, plain := ts.createClient(url.Values{"client_id": {"plain"}})
		expect(t, "PATCH by a non-admin", ts.do("PATCH", "/client/svc", form, "scope=a", map[string]string{"Authorization": "Bearer " + ts.token("plain", plain)}), 403)
		if got := show(); got != before {
			t.Fatalf("refused PATCHes changed the client: %s", got)
		}
		// The change log says who did it.
		page, err := ts.auth.Activity(context.Background(), authsvc.ActivityQuery{ClientID: "svc", Limit: 1})
		if err != nil || len(page.Changes) != 1 || page.Changes[0].Action != authsvc.ActionClientUpdated || page.Changes[0].Actor != "root" {
			t.Fatalf("activity: %+v %v", page, err)
		}
	})
}

// manyWords returns n distinct words separated by spaces.
func manyWords(n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = fmt.Sprintf("aud-%d", i)
	}
	return strings.Join(w, " ")
}

// TestKeysAndActivityRoutes: GET /keys, POST /keys/rotate and GET
// /activity do for scripts what the console's pages do.
func TestKeysAndActivityRoutes(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ts := newTestServer(t, dbURL)
		adminH := map[string]string{"Authorization": "Bearer " + ts.admin}
		r := ts.do("GET", "/keys", "", "", adminH)
		expect(t, "GET /keys", r, 200)
		keys := r.body["keys"].([]any)
		if len(keys) != 1 || keys[0].(map[string]any)["state"] != "signing" || keys[0].(map[string]any)["alg"] != "EdDSA" {
			t.Fatalf("GET /keys: %s", r.raw)
		}
		r = ts.do("POST", "/keys/rotate", "", "", adminH)
		expect(t, "POST /keys/rotate", r, 200)
		kid := r.body["kid"]
		r = ts.do("GET", "/keys", "", "", adminH)
		keys = r.body["keys"].([]any)
		if len(keys) != 2 || keys[1].(map[string]any)["kid"] != kid || keys[1].(map[string]any)["state"] != "next" || keys[1].(map[string]any)["signing"] != false {
			t.Fatalf("GET /keys after a rotation: %s", r.raw)
		}
		if !strings.Contains(ts.logs.String(), `"msg":"audit: signing key rotation started","kid":"`) {
			t.Fatal("the rotation is not in the audit log")
		}
		ts.createClient(url.Values{"client_id": {"svc"}})
		expect(t, "logout", ts.do("POST", "/client/svc/logout", "", "", adminH), 200)
		r = ts.do("GET", "/activity?client=svc", "", "", adminH)
		expect(t, "GET /activity", r, 200)
		changes := r.body["changes"].([]any)
		if len(changes) != 2 || changes[0].(map[string]any)["action"] != "client_logged_out" || changes[0].(map[string]any)["actor"] != "root" ||
			changes[1].(map[string]any)["action"] != "client_created" || r.body["next_before"] != float64(0) {
			t.Fatalf("GET /activity?client=svc: %s", r.raw)
		}
		r = ts.do("GET", "/activity?limit=1", "", "", adminH)
		if n := len(r.body["changes"].([]any)); n != 1 || r.body["next_before"] == float64(0) {
			t.Fatalf("GET /activity?limit=1: %s", r.raw)
		}
		next := int64(r.body["next_before"].(float64))
		r = ts.do("GET", fmt.Sprintf("/activity?limit=1&before=%d", next), "", "", adminH)
		expect(t, "GET /activity, page 2", r, 200)
		if id := r.body["changes"].([]any)[0].(map[string]any)["id"].(float64); int64(id) >= next {
			t.Fatalf("page 2 is not older: %s", r.raw)
		}
		for _, bad := range []string{"limit=0", "limit=501", "limit=x", "before=0", "before=x", "client=a%00b", "client=" + strings.Repeat("x", 129), "client=a&client=b", "page=2", "%zz"} {
			expect(t, "GET /activity?"+bad, ts.do("GET", "/activity?"+bad, "", "", adminH), 400)
		}
		for _, route := range []struct{ method, path string }{{"GET", "/keys"}, {"POST", "/keys/rotate"}, {"GET", "/activity"}} {
			expect(t, route.path+" without a token", ts.do(route.method, route.path, "", "", nil), 401)
		}
		_, plain := ts.createClient(url.Values{"client_id": {"plain"}})
		expect(t, "rotate by a non-admin", ts.do("POST", "/keys/rotate", "", "", map[string]string{"Authorization": "Bearer " + ts.token("plain", plain)}), 403)
		expect(t, "GET /keys/rotate", ts.do("GET", "/keys/rotate", "", "", adminH), 405)
	})
}
