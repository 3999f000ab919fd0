package authsvc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/authsvc/authsvc/internal/testdb"
)

// TestActivity: every change says what it was and who asked, newest first,
// a page at a time, filtered by client.
func TestActivity(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		a := newAuth(t, openStore(t, dbURL), Config{})
		boss := WithActor(ctx, "boss")
		if _, _, err := a.CreateClient(boss, NewClient{ID: "svc", Scopes: []string{"a"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.UpdateClient(boss, "svc", ClientUpdate{Scopes: &[]string{"a", "b"}}); err != nil {
			t.Fatal(err)
		}
		_, secret, err := a.RotateSecret(boss, "svc", RotateSecret{Grace: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		tok := mustToken(t, a, "svc", secret)
		if err := a.Logout(ctx, tok.AccessToken); err != nil { // no actor: the token's holder
			t.Fatal(err)
		}
		if _, err := a.LogoutClient(boss, "svc"); err != nil {
			t.Fatal(err)
		}
		if _, err := a.RotateKeys(WithActor(ctx, "keeper")); err != nil {
			t.Fatal(err)
		}
		mustClient(t, a, NewClient{ID: "other"}) // no actor: the CLI
		if err := a.DeleteClient(boss, "svc"); err != nil {
			t.Fatal(err)
		}
		// An actor no store can hold is dropped, not an outage.
		if err := a.DeleteClient(WithActor(ctx, "bad\x00actor"), "other"); err != nil {
			t.Fatal(err)
		}

		page, err := a.Activity(ctx, ActivityQuery{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range page.Changes {
			got = append(got, fmt.Sprintf("%s %s %s", c.Action, c.Actor, c.ClientID))
			if time.Since(c.At) > time.Minute || c.At.After(time.Now().Add(time.Second)) {
				t.Errorf("change %d at %v", c.ID, c.At)
			}
		}
		want := []string{
			"client_deleted  other", "client_deleted boss svc", "client_created  other", "key_rotated keeper ",
			"client_logged_out boss svc", "token_revoked svc svc", "secret_rotated boss svc", "client_updated boss svc",
			"client_created boss svc", "key_created  ",
		}
		if strings.Join(got, "|") != strings.Join(want, "|") || page.Next != 0 {
			t.Fatalf("activity:\n%s\nwant\n%s (next %d)", strings.Join(got, "\n"), strings.Join(want, "\n"), page.Next)
		}

		// Pages of 3 of svc's changes, newest first.
		var ids []int64
		q := ActivityQuery{ClientID: "svc", Limit: 3}
		for range 5 {
			p, err := a.Activity(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range p.Changes {
				if c.ClientID != "svc" {
					t.Fatalf("filtered page has %+v", c)
				}
				ids = append(ids, c.ID)
			}
			if p.Next == 0 {
				break
			}
			q.Before = p.Next
		}
		if len(ids) != 6 {
			t.Fatalf("svc's changes by pages: %v", ids)
		}
		for i := 1; i < len(ids); i++ {
			if ids[i] >= ids[i-1] {
				t.Fatalf("not newest first: %v", ids)
			}
		}
		for _, bad := range []ActivityQuery{{Limit: -1}, {Limit: MaxActivityPage + 1}, {Before: -1}, {ClientID: "a\x00b"}, {ClientID: strings.Repeat("x", 129)}} {
			if _, err := a.Activity(ctx, bad); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("Activity(%+v): %v, want ErrInvalidArgument", bad, err)
			}
		}
	})
}

// TestIssueSession: a session token carries the session's audience only,
// its sid and auth_time, no scope, lives at most the TTL asked, verifies,
// is no token for the issuer's own routes, and is refused once revoked or
// once its client is gone.
func TestIssueSession(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		a := newAuth(t, openStore(t, dbURL), Config{})
		mustClient(t, a, NewClient{ID: "boss", IsAdmin: true, Scopes: []string{"x"}})
		start := time.Now().Add(-time.Hour).Truncate(time.Second)
		tok, err := a.IssueSession(ctx, "boss", SessionRequest{Audience: "urn:test:console", TTL: 10 * time.Minute, AuthTime: start})
		if err != nil {
			t.Fatal(err)
		}
		c, err := a.Verify(ctx, tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if c.Subject != "boss" || len(c.Audience) != 1 || c.Audience[0] != "urn:test:console" || c.Scope != "" ||
			c.AuthTime != start.Unix() || len(c.SessionID) != 22 || c.ExpiresAt-c.IssuedAt != 600 || tok.ExpiresIn != 10*time.Minute {
			t.Fatalf("session claims %+v, token %+v", c, tok)
		}
		if a.ForIssuer(c) {
			t.Fatal("a session token passes for an API token")
		}
		// Renewed: the same sid and auth_time; a TTL past TokenTTL is TokenTTL.
		tok2, err := a.IssueSession(ctx, "boss", SessionRequest{Audience: "urn:test:console", TTL: 100 * time.Hour, ID: c.SessionID, AuthTime: start})
		if err != nil {
			t.Fatal(err)
		}
		c2, err := a.Verify(ctx, tok2.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if c2.SessionID != c.SessionID || c2.AuthTime != c.AuthTime || c2.ExpiresAt-c2.IssuedAt != 3600 || c2.ID == c.ID {
			t.Fatalf("renewed claims %+v", c2)
		}
		if err := a.Logout(ctx, tok.AccessToken); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Verify(ctx, tok.AccessToken); !errors.Is(err, ErrTokenRevoked) {
			t.Fatalf("revoked session token: %v", err)
		}
		for _, bad := range []SessionRequest{{}, {Audience: testIssuer}, {Audience: "a b"}, {Audience: "urn:x", ID: strings.Repeat("s", 65)}, {Audience: "urn:x", ID: "a\x00"}} {
			if _, err := a.IssueSession(ctx, "boss", bad); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("IssueSession(%+v): %v, want ErrInvalidArgument", bad, err)
			}
		}
		if _, err := a.IssueSession(ctx, "ghost", SessionRequest{Audience: "urn:x"}); !errors.Is(err, ErrClientNotFound) {
			t.Errorf("IssueSession for no client: %v", err)
		}
		if err := a.DeleteClient(ctx, "boss"); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Verify(ctx, tok2.AccessToken); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("session of a deleted client: %v", err)
		}
	})
}
