package authsvc

import (
	"context"
	"errors"
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
		if n := a.Stats().StoreErrors; n != 0 {
			t.Errorf("%d store errors counted", n)
		}
		mustToken(t, a, "svc", secret) // the store is fine
	})
}
