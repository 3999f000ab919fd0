package authsvc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/authsvc/authsvc/internal/testdb"
	"github.com/go-jose/go-jose/v4"
)

// TestDPoPNonceRoundTrip: with nonces required, a proof without one is
// refused with the nonce to use; with it, it passes on every instance of
// the store; a nonce about to expire passes with a fresh one to send, an
// expired, forged or other-purpose one is refused with a fresh one.
func TestDPoPNonceRoundTrip(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dburl string) {
		clock := &fakeClock{t: time.Unix(1_900_000_000, 0)}
		cfg := Config{Now: clock.Now, DPoPTokenNonce: true, DPoPResourceNonce: true}
		a1 := newAuth(t, openStore(t, dburl), cfg)
		a2 := newAuth(t, openStore(t, dburl), cfg)
		other := newAuth(t, openStore(t, testdb.SQLite(t)), cfg) // another deployment
		k := newDPoPKey(t, jose.EdDSA)
		const htu = "https://auth.test/oauth/token"
		req := DPoPRequest{Method: "POST", URL: mustURL(htu)}
		proof := func(nonce string) string {
			c := dpopClaimsAt(clock.Now(), "POST", htu)
			if nonce != "" {
				c["nonce"] = nonce
			}
			return k.proof(t, c, nil)
		}
		challenged := func(a *Authenticator, p string, r DPoPRequest) string {
			t.Helper()
			_, err := a.CheckDPoPProof(context.Background(), p, r)
			var ne *DPoPNonceError
			if !errors.As(err, &ne) || !errors.Is(err, ErrUseDPoPNonce) || errors.Is(err, ErrInvalidDPoPProof) || len(ne.Nonce) != dpopNonceLen {
				t.Fatalf("want a DPoPNonceError, got %v", err)
			}
			return ne.Nonce
		}
		nonce := challenged(a1, proof(""), req)
		for _, a := range []*Authenticator{a1, a2} {
			got, err := a.CheckDPoPProof(context.Background(), proof(nonce), req)
			if err != nil || got.Nonce != "" {
				t.Fatalf("with the nonce: %+v %v", got, err)
			}
		}
		// Another deployment's, a forged one, and a token endpoint's at a
		// resource are refused.
		challenged(other, proof(nonce), req)
		challenged(a1, proof(strings.Repeat("A", dpopNonceLen)), req)
		challenged(a1, proof(nonce+"x"), req)
		tok := "eyJ.token.x"
		rreq := DPoPRequest{Method: "GET", URL: mustURL("https://api.test/notes"), AccessToken: tok}
		rproof := func(nonce string) string {
			c := dpopClaimsAt(clock.Now(), "GET", "https://api.test/notes")
			c["ath"], c["nonce"] = AccessTokenHash(tok), nonce
			return k.proof(t, c, nil)
		}
		rnonce := challenged(a1, rproof(nonce), rreq)
		if _, err := a2.CheckDPoPProof(context.Background(), rproof(rnonce), rreq); err != nil {
			t.Fatalf("the resource nonce: %v", err)
		}
		// Next period: still good, with a fresh nonce to send.
		clock.Add(DefaultDPoPWindow)
		got, err := a2.CheckDPoPProof(context.Background(), proof(nonce), req)
		if err != nil || got.Nonce == "" || got.Nonce == nonce {
			t.Fatalf("a nonce about to roll: %+v %v", got, err)
		}
		fresh := got.Nonce
		// A period later the first one has expired; the fresh one is good,
		// and so is the one the challenge names.
		clock.Add(DefaultDPoPWindow)
		current := challenged(a1, proof(nonce), req)
		for _, n := range []string{fresh, current} {
			if _, err := a1.CheckDPoPProof(context.Background(), proof(n), req); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestDPoPNoncesOff: without Config's nonce settings a proof needs none,
// and one it carries is not judged.
func TestDPoPNoncesOff(t *testing.T) {
	a := newAuth(t, openStore(t, testdb.SQLite(t)), Config{})
	k := newDPoPKey(t, jose.ES256)
	c := dpopClaimsAt(time.Now(), "POST", "https://auth.test/oauth/token")
	c["nonce"] = "whatever"
	if _, err := a.CheckDPoPProof(context.Background(), k.proof(t, c, nil), DPoPRequest{Method: "POST", URL: mustURL("https://auth.test/oauth/token")}); err != nil {
		t.Fatal(err)
	}
}

// TestNewDPoPNonces: nonces of one secret pass at every holder of it and
// nowhere else; a short secret is refused.
func TestNewDPoPNonces(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	n1, _ := NewDPoPNonces(secret)
	n2, _ := NewDPoPNonces(secret)
	n3, _ := NewDPoPNonces(nil)
	nonce := n1.Nonce()
	if _, err := n2.check(nonce); err != nil {
		t.Errorf("same secret: %v", err)
	}
	if _, err := n3.check(nonce); !errors.Is(err, ErrUseDPoPNonce) {
		t.Errorf("another secret: %v", err)
	}
	if _, err := NewDPoPNonces(secret[:31]); err == nil {
		t.Error("a 31-byte secret was accepted")
	}
}

// FuzzDPoPNonce: any string is accepted as a nonce only if it is one the
// nonces made for the current, previous or next period; anything else is
// refused with the current one, never a panic. proofNonce reads any proof.
func FuzzDPoPNonce(f *testing.F) {
	now := time.Unix(1_900_000_000, 0)
	n := newDPoPNonces([][]byte{[]byte(strings.Repeat("k", 32))}, nil, "resource", time.Minute, func() time.Time { return now })
	f.Add(n.Nonce())
	f.Add(n.make(n.keys[0].mac, n.bucket(now)-1))
	f.Add(n.make(n.keys[0].mac, n.bucket(now)-2))
	f.Add("")
	f.Add(strings.Repeat("A", dpopNonceLen))
	f.Add("eyJ.eyJub25jZSI6IngifQ.sig")
	f.Fuzz(func(t *testing.T, s string) {
		proofNonce(s)
		_, err := n.check(s)
		var ne *DPoPNonceError
		switch {
		case err == nil:
			b := n.bucket(now)
			if s != n.make(n.keys[0].mac, b) && s != n.make(n.keys[0].mac, b-1) && s != n.make(n.keys[0].mac, b+1) {
				t.Fatalf("accepted %q, which it did not make", s)
			}
		case !errors.As(err, &ne) || ne.Nonce != n.Nonce():
			t.Fatalf("refused %q with %v", s, err)
		}
	})
}

// BenchmarkDPoPNonce is what a required nonce adds to a proof's check.
func BenchmarkDPoPNonce(b *testing.B) {
	n, _ := NewDPoPNonces(nil)
	nonce := n.Nonce()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.check(nonce); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDPoPNonceKeyRotation: a staged rotation invalidates no nonce. The
// new key makes nonces only from its activation on, so an instance that
// has not loaded it yet still accepts the nonces made meanwhile, and a
// nonce made with the old key still passes once the new one signs.
func TestDPoPNonceKeyRotation(t *testing.T) {
	dburl := testdb.SQLite(t)
	clock := &fakeClock{t: time.Unix(1_900_000_000, 0)}
	cfg := Config{Now: clock.Now, DPoPTokenNonce: true, JWKSMaxAge: 10 * time.Second}
	a1 := newAuth(t, openStore(t, dburl), cfg)
	a2 := newAuth(t, openStore(t, dburl), cfg)
	before := a2.keys.Load().tokenNonces.Nonce()
	if _, err := a1.RotateKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(a1.keys.Load().signers) != 2 {
		t.Fatal("a1 did not load the new key")
	}
	during := a1.keys.Load().tokenNonces.Nonce()
	if during != before {
		t.Errorf("a nonce made with a key not yet in use")
	}
	clock.Add(10 * time.Second) // the new key signs from now on
	n1 := a1.keys.Load().tokenNonces
	after := n1.Nonce()
	if after == n1.make(n1.keys[0].mac, n1.bucket(clock.Now())) {
		t.Errorf("the new key does not make nonces once it signs")
	}
	for _, n := range []string{before, during, after} {
		if _, err := a1.keys.Load().tokenNonces.check(n); err != nil {
			t.Errorf("a1 refused %s: %v", n, err)
		}
	}
}
