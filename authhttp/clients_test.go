package authhttp

import (
	"net/url"
	"strings"
	"testing"
	"time"

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
