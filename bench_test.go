package authsvc

// Benchmarks of the hot paths, with the raw signatures they rest on as the
// baseline: compare ratios measured side by side in one run, never absolute
// times across machines. Run them with
//
//	go test -run '^$' -bench . -benchmem
//
// and see docs/performance.md for the latest figures.

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authsvc/authsvc/internal/testdb"
)

// benchAuth is an Authenticator on a fresh SQLite store, with a client of
// a generated secret and one of a chosen secret.
type benchAuth struct {
	a         *Authenticator
	genSecret string
}

const benchChosenSecret = "a-chosen-secret-of-some-length"

func newBenchAuth(b *testing.B, dbURL, alg string) *benchAuth {
	b.Helper()
	ctx := context.Background()
	s, err := OpenStore(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	a, err := New(ctx, s, Config{Issuer: testIssuer, SigningAlg: alg})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	_, gen, err := a.CreateClient(ctx, NewClient{ID: "gen", Scopes: []string{"notes:read", "notes:write"}})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := a.CreateClient(ctx, NewClient{ID: "chosen", Secret: benchChosenSecret}); err != nil {
		b.Fatal(err)
	}
	return &benchAuth{a: a, genSecret: gen}
}

func (ba *benchAuth) token(b *testing.B) string {
	b.Helper()
	tok, err := ba.a.Authenticate(context.Background(), "gen", ba.genSecret, TokenRequest{})
	if err != nil {
		b.Fatal(err)
	}
	return tok.AccessToken
}

// forget drops a token from the verified-token cache, so that the next
// Verify takes the path of a token never seen.
func (a *Authenticator) forget(token string) {
	st := a.state
	st.mu.Lock()
	delete(st.verified, tokenKey(token))
	st.mu.Unlock()
}

var benchAlgs = []string{AlgEdDSA, AlgES256}

// BenchmarkRawSignature is the floor under Authenticate and Verify: the
// signature alone, with the standard library and through golang-jwt's
// SigningMethod (which adds encoding and key type checks).
//
// The message is a real token's signing input (header.payload), so that
// the hashing inside the signature costs what it does in Authenticate.
func BenchmarkRawSignature(b *testing.B) {
	tok := newBenchAuth(b, testdb.SQLite(b), AlgEdDSA).token(b)
	msg := []byte(tok[:strings.LastIndexByte(tok, '.')])
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	digest := sha256.Sum256(msg)

	b.Run("Ed25519/sign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ed25519.Sign(edPriv, msg)
		}
	})
	edSig := ed25519.Sign(edPriv, msg)
	b.Run("Ed25519/verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !ed25519.Verify(edPub, msg, edSig) {
				b.Fatal("bad signature")
			}
		}
	})
	b.Run("ES256/sign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ecdsa.SignASN1(rand.Reader, ecPriv, digest[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	ecSig, _ := ecdsa.SignASN1(rand.Reader, ecPriv, digest[:])
	b.Run("ES256/verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !ecdsa.VerifyASN1(&ecPriv.PublicKey, digest[:], ecSig) {
				b.Fatal("bad signature")
			}
		}
	})
	for _, m := range []struct {
		name       string
		method     jwt.SigningMethod
		priv, pub  any
		signingStr string
	}{
		{"jwt-EdDSA", jwt.SigningMethodEdDSA, edPriv, edPub, string(msg)},
		{"jwt-ES256", jwt.SigningMethodES256, ecPriv, &ecPriv.PublicKey, string(msg)},
	} {
		b.Run(m.name+"/sign", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.method.Sign(m.signingStr, m.priv); err != nil {
					b.Fatal(err)
				}
			}
		})
		sig, _ := m.method.Sign(m.signingStr, m.priv)
		b.Run(m.name+"/verify", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := m.method.Verify(m.signingStr, sig, m.pub); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAuthenticate issues a token: a generated secret (SHA-256), a
// chosen secret found in the verified-secret cache (warm), and a chosen
// secret that pays argon2id (cold).
func BenchmarkAuthenticate(b *testing.B) {
	ctx := context.Background()
	for _, alg := range benchAlgs {
		ba := newBenchAuth(b, testdb.SQLite(b), alg)
		a := ba.a
		b.Run(alg+"/generated", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Authenticate(ctx, "gen", ba.genSecret, TokenRequest{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/generated-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := a.Authenticate(ctx, "gen", ba.genSecret, TokenRequest{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		if alg != AlgEdDSA {
			continue
		}
		b.Run(alg+"/chosen-warm", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Authenticate(ctx, "chosen", benchChosenSecret, TokenRequest{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/chosen-cold", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a.hasher.mu.Lock()
				clear(a.hasher.verified)
				a.hasher.mu.Unlock()
				if _, err := a.Authenticate(ctx, "chosen", benchChosenSecret, TokenRequest{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify checks a token never seen (signature and claims) and one
// seen before (the verified-token cache, then revocation and client checks).
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	for _, alg := range benchAlgs {
		ba := newBenchAuth(b, testdb.SQLite(b), alg)
		a := ba.a
		tok := ba.token(b)
		b.Run(alg+"/new", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a.forget(tok)
				if _, err := a.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/seen", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/seen-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := a.Verify(ctx, tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// benchStores are the stores BenchmarkLogout writes to: SQLite, and
// PostgreSQL when AUTHSVC_TEST_DATABASE_URL names a server.
func benchStores(b *testing.B) map[string]func() string {
	stores := map[string]func() string{"sqlite": func() string { return testdb.SQLite(b) }}
	if os.Getenv(testdb.EnvURL) != "" {
		stores["postgres"] = func() string { return testdb.Postgres(b) }
	}
	return stores
}

// BenchmarkLogout revokes a token: a signature check and one store write.
func BenchmarkLogout(b *testing.B) {
	ctx := context.Background()
	for name, dbURL := range benchStores(b) {
		b.Run(name, func(b *testing.B) {
			ba := newBenchAuth(b, dbURL(), AlgEdDSA)
			tok := ba.token(b)
			b.ReportAllocs()
			for b.Loop() {
				if err := ba.a.Logout(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMiddleware is the cost Middleware adds to a handler for a token
// seen before: the bare handler and the same handler behind Middleware.
func BenchmarkMiddleware(b *testing.B) {
	ba := newBenchAuth(b, testdb.SQLite(b), AlgEdDSA)
	tok := ba.token(b)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	for _, h := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", next},
		{"middleware", Middleware(ba.a)(next)},
		{"middleware+scope", Middleware(ba.a)(RequireScope("notes:read")(next))},
	} {
		b.Run(h.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest(http.MethodGet, "/notes", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				for pb.Next() {
					w := httptest.NewRecorder()
					h.h.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Errorf("status %d", w.Code)
						return
					}
				}
			})
		})
	}
}

// BenchmarkLogoutConcurrent drives logouts from 16 callers at once against
// PostgreSQL, through one Authenticator and through two on one database
// (the callers split between them), and reports logouts per second: the
// write path's throughput, which a cluster-wide lock would cap (issue 15).
// Each logout revokes a token of its own, minted before the timer starts.
// It needs AUTHSVC_TEST_DATABASE_URL; run it with -benchtime=3s or more.
func BenchmarkLogoutConcurrent(b *testing.B) {
	if os.Getenv(testdb.EnvURL) == "" {
		b.Skip(testdb.EnvURL + " not set: PostgreSQL benchmark skipped")
	}
	const callers = 16
	for _, instances := range []int{1, 2} {
		b.Run(fmt.Sprintf("instances=%d", instances), func(b *testing.B) {
			ctx := context.Background()
			dbURL := testdb.Postgres(b)
			var as []*Authenticator
			for range instances {
				s, err := OpenStore(ctx, dbURL)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { s.Close() })
				a, err := New(ctx, s, Config{Issuer: testIssuer, MaxRevocationsPerClient: 1 << 30})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { a.Close() })
				as = append(as, a)
			}
			_, secret, err := as[0].CreateClient(ctx, NewClient{ID: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			toks := make([]string, b.N)
			for i := range toks {
				tok, err := as[0].Authenticate(ctx, "bench", secret, TokenRequest{})
				if err != nil {
					b.Fatal(err)
				}
				toks[i] = tok.AccessToken
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			b.ResetTimer()
			for c := range callers {
				a := as[c%instances]
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(len(toks)) {
							return
						}
						if err := a.Logout(ctx, toks[i]); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logouts/s")
		})
	}
}
