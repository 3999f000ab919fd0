package authsvc

import (
	"context"
	"errors"
	"testing"

	"github.com/authsvc/authsvc/internal/testdb"
)

// FuzzVerify: any string given as a token is refused cleanly (or, for the
// one real token in the corpus, accepted), never with a panic.
func FuzzVerify(f *testing.F) {
	a := func() *Authenticator {
		s, err := OpenStore(context.Background(), testdb.SQLite(f))
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { s.Close() })
		a, err := New(context.Background(), s, Config{Issuer: testIssuer})
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { a.Close() })
		return a
	}()
	_, secret, err := a.CreateClient(context.Background(), NewClient{ID: "svc"})
	if err != nil {
		f.Fatal(err)
	}
	tok, err := a.Authenticate(context.Background(), "svc", secret, TokenRequest{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok.AccessToken)
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.e30.")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := a.Verify(context.Background(), s)
		if err != nil {
			if c != nil || !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify(%q) = %v, %v", s, c, err)
			}
			return
		}
		if s != tok.AccessToken {
			t.Fatalf("accepted a token never issued: %q", s)
		}
	})
}
