package authsvc

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authsvc/authsvc/internal/testdb"
)

// TestUnstorableIDsNeverReachTheStore: an id no store can hold (a NUL byte,
// invalid UTF-8) is a malformed argument or a wrong credential on both
// stores, never an outage; PostgreSQL answers such text with an error.
func TestUnstorableIDsNeverReachTheStore(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		a := newAuth(t, openStore(t, url), Config{})
		_, secret := mustClient(t, a, NewClient{ID: "svc"})
		admin := &Client{ID: "root", IsAdmin: true}
		for _, id := range []string{"svc\x00", "\xff", "caf\xe9", "\x00"} {
			if _, err := a.Authenticate(ctx, id, secret, TokenRequest{}); !errors.Is(err, ErrInvalidClient) {
				t.Errorf("Authenticate(%q): %v, want ErrInvalidClient", id, err)
			}
			if _, err := a.AuthenticateClient(ctx, id, secret); !errors.Is(err, ErrInvalidClient) {
				t.Errorf("AuthenticateClient(%q): %v, want ErrInvalidClient", id, err)
			}
			admin := true
			for name, op := range map[string]func() error{
				"Client":       func() error { _, err := a.Client(ctx, id); return err },
				"DeleteClient": func() error { return a.DeleteClient(ctx, id) },
				"UpdateClient": func() error { _, err := a.UpdateClient(ctx, id, ClientUpdate{IsAdmin: &admin}); return err },
				"LogoutClient": func() error { _, err := a.LogoutClient(ctx, id); return err },
				"RotateSecret": func() error { _, _, err := a.RotateSecret(ctx, id, RotateSecret{}); return err },
			} {
				err := op()
				if !errors.Is(err, ErrInvalidArgument) || ErrorMessage(err) == "" {
					t.Errorf("%s(%q): %v, want ErrInvalidArgument with a message", name, id, err)
				}
			}
		}
		// A token whose sub or jti no store can hold is invalid; only a
		// holder of the HS256 secret can sign one, but it must not make a
		// Verify or a revocation look like an outage either.
		for _, c := range []jwt.MapClaims{
			{"sub": "svc\x00", "jti": "j1"},
			{"sub": "svc", "jti": "j\x00"},
		} {
			c["iss"], c["exp"], c["iat"], c["id"] = testIssuer, time.Now().Add(time.Hour).Unix(), time.Now().Unix(), 1
			tok := signWith(t, a, map[string]any{"typ": "at+jwt"}, c)
			if _, err := a.Verify(ctx, tok); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Verify(sub %q, jti %q): %v, want ErrInvalidToken", c["sub"], c["jti"], err)
			}
			if err := a.Logout(ctx, tok); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Logout(sub %q, jti %q): %v, want ErrInvalidToken", c["sub"], c["jti"], err)
			}
			if err := a.Revoke(ctx, admin, tok); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Revoke(sub %q, jti %q): %v, want ErrInvalidToken", c["sub"], c["jti"], err)
			}
		}
		// Nor is such an id (or address) remembered for the throttle, whose
		// writer would hand it to the store.
		for _, pair := range [][2]string{{"svc\x00", "10.0.0.1"}, {"\xff", "10.0.0.1"}, {"svc", "10.0.0.1\x00"}, {"svc", "\xfe"}} {
			a.RememberAddress(pair[0], pair[1])
			if a.KnownAddress(pair[0], pair[1]) {
				t.Errorf("RememberAddress(%q, %q) was kept", pair[0], pair[1])
			}
		}
		if n := a.Stats().StoreErrors; n != 0 {
			t.Errorf("%d store errors counted", n)
		}
		mustToken(t, a, "svc", secret) // the store is fine
	})
}

// TestNewClientRules: a new client's id is printable ASCII without spaces
// and a chosen secret must not be blank or trivially repetitive (issue 14);
// imported seed clients, whose ids may be any printable UTF-8 and whose
// legacy secrets may break today's rule, keep working, and so does a
// stored secret chosen under the older rule.
func TestNewClientRules(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		a := newAuth(t, s, Config{})
		for _, id := range []string{"adm\u0456n", "café", "a\tb", "a b", "x\u00a0y", "\u200bzero-width", "ｆｕｌｌ"} {
			_, _, err := a.CreateClient(ctx, NewClient{ID: id})
			if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(ErrorMessage(err), "printable ASCII") {
				t.Errorf("CreateClient(%q): %v, want ErrInvalidArgument naming printable ASCII", id, err)
			}
		}
		for _, id := range []string{"svc:one", `o'hara";--`, "!", "~", "a.b-c_d/e@f+g", strings.Repeat("z", MaxClientIDLen)} {
			mustClient(t, a, NewClient{ID: id})
		}
		for _, secret := range []string{strings.Repeat(" ", 16), strings.Repeat("a", 16), "passwordpassword", "\t\n\v\f\r \u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u3000"} {
			if _, _, err := a.CreateClient(ctx, NewClient{ID: "weak", Secret: secret}); !errors.Is(err, ErrInvalidArgument) || ErrorMessage(err) == "" {
				t.Errorf("CreateClient with secret %q: %v, want ErrInvalidArgument with a message", secret, err)
			}
			if _, _, err := a.RotateSecret(ctx, "svc:one", RotateSecret{Secret: secret}); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("RotateSecret to %q: %v, want ErrInvalidArgument", secret, err)
			}
		}
		// An imported seed client: a homoglyph id and a legacy secret far
		// below today's rule log in, have their hash upgraded, log in
		// again, and can be managed.
		for _, id := range []string{"adm\u0456n", "café"} {
			sum := sha1.Sum([]byte("aaaa"))
			if _, err := a.ImportClient(ctx, ImportedClient{ID: id, LegacyHash: hex.EncodeToString(sum[:])}); err != nil {
				t.Fatalf("ImportClient(%q): %v", id, err)
			}
			mustToken(t, a, id, "aaaa")
			if rec, err := s.client(ctx, id); err != nil || !strings.HasPrefix(rec.SecretHash, "$argon2id$") {
				t.Fatalf("%q after login: %v, hash %.12q", id, err, rec.SecretHash)
			}
			mustToken(t, a, id, "aaaa")
			if _, err := a.LogoutClient(ctx, id); err != nil {
				t.Fatalf("LogoutClient(%q): %v", id, err)
			}
			if err := a.DeleteClient(ctx, id); err != nil {
				t.Fatalf("DeleteClient(%q): %v", id, err)
			}
		}
		// A secret chosen under the older rule, stored before it changed.
		hash, err := a.hasher.hashArgon2(strings.Repeat("a", 16))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.createClient(ctx, &clientRecord{Client: Client{ID: "old-chosen"}, SecretHash: hash}); err != nil {
			t.Fatal(err)
		}
		mustToken(t, a, "old-chosen", strings.Repeat("a", 16))
	})
}

// TestClientAudienceRule: a token request may name only the client's
// audiences or the default one (ErrInvalidTarget otherwise, malformed ones
// included); the list is set at creation and by UpdateClient, and
// survives a restart. ForIssuer tells authd's own tokens from others'.
func TestClientAudienceRule(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		a := newAuth(t, s, Config{})
		c, secret := mustClient(t, a, NewClient{ID: "svc", Audiences: []string{"https://a.test", "https://b.test", "https://a.test"}})
		if strings.Join(c.Audiences, " ") != "https://a.test https://b.test" {
			t.Fatalf("Audiences = %v", c.Audiences)
		}
		aud := func(req ...string) ([]string, error) {
			tok, err := a.Authenticate(ctx, "svc", secret, TokenRequest{Audience: req})
			if err != nil {
				return nil, err
			}
			claims, err := a.Verify(ctx, tok.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			if !a.ForIssuer(claims) != (len(req) > 0 && !strings.Contains(strings.Join(req, " "), testIssuer)) {
				t.Errorf("ForIssuer(aud %v) = %v", claims.Audience, a.ForIssuer(claims))
			}
			return claims.Audience, nil
		}
		for _, ok := range [][]string{nil, {"https://a.test"}, {"https://b.test", "https://a.test"}, {testIssuer}, {testIssuer, "https://b.test"}} {
			got, err := aud(ok...)
			want := ok
			if len(ok) == 0 {
				want = []string{testIssuer}
			}
			if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("request %v: aud %v, %v; want %v", ok, got, err, want)
			}
		}
		for _, bad := range [][]string{{"https://c.test"}, {"https://a.test", "https://c.test"}, {"https://a.test/"}, {"a b"}, {""}} {
			if _, err := aud(bad...); !errors.Is(err, ErrInvalidTarget) || ErrorMessage(err) == "" {
				t.Errorf("request %q: %v, want ErrInvalidTarget with a message", bad, err)
			}
		}
		for _, bad := range [][]string{{"a\x01b"}, {strings.Repeat("x", 513)}, make([]string, MaxClientAudiences+1)} {
			if _, _, err := a.CreateClient(ctx, NewClient{ID: "bad", Audiences: bad}); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("CreateClient with audiences %.20q: %v, want ErrInvalidArgument", bad, err)
			}
		}
		many := make([]string, MaxClientAudiences)
		for i := range many {
			many[i] = "https://svc" + strings.Repeat("x", i%7) + ".test/" + string(rune('a'+i%26)) + strings.Repeat("y", i/26)
		}
		if _, err := a.UpdateClient(ctx, "svc", ClientUpdate{Audiences: &many}); err != nil {
			t.Fatalf("UpdateClient with %d audiences: %v", len(many), err)
		}
		none := []string{}
		if _, err := a.UpdateClient(ctx, "svc", ClientUpdate{Audiences: &none}); err != nil {
			t.Fatal(err)
		}
		if _, err := aud("https://a.test"); !errors.Is(err, ErrInvalidTarget) {
			t.Errorf("after the list was emptied: %v, want ErrInvalidTarget", err)
		}
		only := []string{"https://b.test"}
		if _, err := a.UpdateClient(ctx, "svc", ClientUpdate{Audiences: &only}); err != nil {
			t.Fatal(err)
		}
		// Another instance on the same store (a restart) reads the list.
		b := newAuth(t, s, Config{})
		if c, err := b.Client(ctx, "svc"); err != nil || strings.Join(c.Audiences, " ") != "https://b.test" {
			t.Fatalf("after restart: %+v, %v", c, err)
		}
		if _, err := b.Authenticate(ctx, "svc", secret, TokenRequest{Audience: []string{"https://b.test"}}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestAudiencesMigration: a store made before migration 0002 (here one
// that has 0003 already, as a database main's build migrated would) keeps
// its clients, which get an empty audience list: tokens for the default
// audience, and invalid_target for a request naming another.
func TestAudiencesMigration(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		a := newAuth(t, s, Config{})
		_, secret := mustClient(t, a, NewClient{ID: "old"})
		a.Close()
		// Back to the schema without 0002.
		db := s.(*sqlStore).db
		for _, q := range []string{`ALTER TABLE authsvc_clients DROP COLUMN audiences`, `DELETE FROM authsvc_schema_migrations WHERE version = 2`} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		s.Close()
		s = openStore(t, url) // migrates again
		a = newAuth(t, s, Config{})
		c, err := a.Client(ctx, "old")
		if err != nil || len(c.Audiences) != 0 {
			t.Fatalf("old client after the migration: %+v, %v", c, err)
		}
		if tok := mustToken(t, a, "old", secret); tok == nil {
			t.Fatal("no token")
		}
		if _, err := a.Authenticate(ctx, "old", secret, TokenRequest{Audience: []string{"https://notes.internal"}}); !errors.Is(err, ErrInvalidTarget) {
			t.Fatalf("old client asking for an audience: %v, want ErrInvalidTarget", err)
		}
	})
}

// TestTokensIssuedAndScopesSupported: Stats.TokensIssued counts tokens
// issued, not requests refused for their scope or audience; and
// ScopesSupported is the sorted union of the clients' scopes, current with
// every change, on this instance and on another one on the same store.
func TestTokensIssuedAndScopesSupported(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		a := newAuth(t, s, Config{PollInterval: 20 * time.Millisecond})
		other := newAuth(t, s, Config{PollInterval: 20 * time.Millisecond})
		_, secret := mustClient(t, a, NewClient{ID: "svc", Scopes: []string{"b", "a"}})
		for _, req := range []TokenRequest{{Scopes: []string{"c"}}, {Audience: []string{"https://x.test"}}, {Audience: []string{"a b"}}} {
			if _, err := a.Authenticate(ctx, "svc", secret, req); err == nil {
				t.Fatalf("%+v was granted", req)
			}
		}
		if _, err := a.Authenticate(ctx, "svc", "wrong", TokenRequest{}); !errors.Is(err, ErrInvalidClient) {
			t.Fatal(err)
		}
		if n := a.Stats().TokensIssued; n != 0 {
			t.Fatalf("TokensIssued = %d after refusals only", n)
		}
		mustToken(t, a, "svc", secret)
		if n := a.Stats().TokensIssued; n != 1 {
			t.Fatalf("TokensIssued = %d, want 1", n)
		}

		if got := strings.Join(a.ScopesSupported(), " "); got != "a b" {
			t.Fatalf("ScopesSupported = %q", got)
		}
		mustClient(t, a, NewClient{ID: "more", Scopes: []string{"c", "a"}})
		if got := strings.Join(a.ScopesSupported(), " "); got != "a b c" {
			t.Fatalf("ScopesSupported = %q", got)
		}
		if err := a.DeleteClient(ctx, "svc"); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(a.ScopesSupported(), " "); got != "a c" {
			t.Fatalf("after a deletion, ScopesSupported = %q", got)
		}
		waitFor(t, 5*time.Second, "the other instance to see the changes", func() bool {
			return strings.Join(other.ScopesSupported(), " ") == "a c"
		})
	})
}
