package authsvc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authsvc/authsvc/internal/testdb"
	"github.com/go-jose/go-jose/v4"
)

// dpopKey is a client's DPoP key, whose proofs go-jose signs: an
// independent JOSE implementation, so that ours is not checked against
// itself.
type dpopKey struct {
	priv crypto.Signer
	alg  jose.SignatureAlgorithm
}

func newDPoPKey(t testing.TB, alg jose.SignatureAlgorithm) dpopKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256, jose.PS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	return dpopKey{priv: priv, alg: alg}
}

// thumbprint is go-jose's RFC 7638 thumbprint of the key, base64url.
func (k dpopKey) thumbprint(t testing.TB) string {
	t.Helper()
	b, err := (&jose.JSONWebKey{Key: k.priv.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// proof signs a DPoP proof with claims; header members in extra are added
// (or, set to nil, the jwk is left out).
func (k dpopKey) proof(t testing.TB, claims map[string]any, extra map[jose.HeaderKey]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("dpop+jwt")
	opts.EmbedJWK = true
	for h, v := range extra {
		opts = opts.WithHeader(h, v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func dpopClaimsAt(now time.Time, method, htu string) map[string]any {
	return map[string]any{"jti": rand.Text(), "htm": method, "htu": htu, "iat": now.Unix()}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// TestDPoPProofAlgorithms: a proof by each accepted algorithm passes, and
// its thumbprint is go-jose's.
func TestDPoPProofAlgorithms(t *testing.T) {
	now := time.Unix(1_900_000_000, 0)
	var seen dpopJTIs
	for _, alg := range []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256, jose.RS256, jose.PS256} {
		k := newDPoPKey(t, alg)
		p := k.proof(t, dpopClaimsAt(now, "POST", "https://auth.test/oauth/token"), nil)
		got, err := checkDPoPProof(context.Background(), p, DPoPRequest{Method: "POST", URL: mustURL("https://AUTH.test:443/oauth/token?x=1")}, now, time.Minute, nil, seen.use)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if want := k.thumbprint(t); got.Thumbprint != want {
			t.Errorf("%s: thumbprint %s, go-jose says %s", alg, got.Thumbprint, want)
		}
	}
}

// TestDPoPProofRefused: each bad proof is refused with ErrInvalidDPoPProof
// and a message, and a good proof refused for its request is not used up.
func TestDPoPProofRefused(t *testing.T) {
	now := time.Unix(1_900_000_000, 0)
	k := newDPoPKey(t, jose.ES256)
	other := newDPoPKey(t, jose.ES256)
	const htu = "https://api.test/notes"
	token := "eyJ.token.x"
	good := func() map[string]any {
		c := dpopClaimsAt(now, "GET", htu)
		c["ath"] = AccessTokenHash(token)
		return c
	}
	with := func(k string, v any) map[string]any {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	enc := base64.RawURLEncoding.EncodeToString
	// A proof whose header carries another key than the one that signed it.
	swapped := func() string {
		p := k.proof(t, good(), nil)
		q := other.proof(t, good(), nil)
		return q[:strings.IndexByte(q, '.')] + p[strings.IndexByte(p, '.'):]
	}()
	hs := enc([]byte(`{"typ":"dpop+jwt","alg":"HS256","jwk":{"kty":"oct","k":"c2VjcmV0"}}`)) + "." + enc([]byte(`{}`)) + ".AA"
	none := enc([]byte(`{"typ":"dpop+jwt","alg":"none"}`)) + "." + enc([]byte(`{}`)) + "."
	priv, _ := json.Marshal((&jose.JSONWebKey{Key: k.priv}))
	var privJWK map[string]any
	json.Unmarshal(priv, &privJWK)
	cases := []struct {
		name  string
		proof string
		req   DPoPRequest
		want  string
	}{
		{"empty", "", DPoPRequest{}, "1 to"},
		{"too long", strings.Repeat("a", MaxDPoPProofLen+1), DPoPRequest{}, "1 to"},
		{"not a JWS", "a.b", DPoPRequest{}, "compact"},
		{"none", none, DPoPRequest{}, "alg"},
		{"HS256", hs, DPoPRequest{}, "alg"},
		{"wrong typ", k.proof(t, good(), map[jose.HeaderKey]any{"typ": "JWT"}), DPoPRequest{}, "typ"},
		{"private jwk", k.proof(t, good(), map[jose.HeaderKey]any{"jwk": privJWK}), DPoPRequest{}, "private"},
		{"wrong key", swapped, DPoPRequest{}, "signature"},
		{"wrong htm", k.proof(t, with("htm", "POST"), nil), DPoPRequest{}, "htm"},
		{"wrong htu host", k.proof(t, with("htu", "https://evil.test/notes"), nil), DPoPRequest{}, "htu"},
		{"wrong htu path", k.proof(t, with("htu", "https://api.test/notes/1"), nil), DPoPRequest{}, "htu"},
		{"wrong htu scheme", k.proof(t, with("htu", "http://api.test/notes"), nil), DPoPRequest{}, "htu"},
		{"no htu", k.proof(t, with("htu", nil), nil), DPoPRequest{}, "htu"},
		{"stale iat", k.proof(t, with("iat", now.Add(-2*time.Minute).Unix()), nil), DPoPRequest{}, "iat"},
		{"future iat", k.proof(t, with("iat", now.Add(2*time.Minute).Unix()), nil), DPoPRequest{}, "iat"},
		{"no iat", k.proof(t, with("iat", nil), nil), DPoPRequest{}, "iat"},
		{"no jti", k.proof(t, with("jti", nil), nil), DPoPRequest{}, "jti"},
		{"wrong ath", k.proof(t, with("ath", AccessTokenHash("another")), nil), DPoPRequest{}, "ath"},
		{"no ath", k.proof(t, with("ath", nil), nil), DPoPRequest{}, "ath"},
		{"ath at the token endpoint", k.proof(t, good(), nil), DPoPRequest{AccessToken: "-"}, "ath"},
		{"iat not a number", k.proof(t, with("iat", "soon"), nil), DPoPRequest{}, "claims"},
		{"claims null", k.proof(t, nil, nil), DPoPRequest{}, "jti"},
	}
	var seen dpopJTIs
	for _, c := range cases {
		req := DPoPRequest{Method: "GET", URL: mustURL(htu), AccessToken: token}
		if c.req.AccessToken == "-" {
			req.AccessToken = ""
		}
		_, err := checkDPoPProof(context.Background(), c.proof, req, now, time.Minute, nil, seen.use)
		if !errors.Is(err, ErrInvalidDPoPProof) || !strings.Contains(ErrorMessage(err), c.want) {
			t.Errorf("%s: got %v, want ErrInvalidDPoPProof saying %q", c.name, err, c.want)
		}
	}
	if n := seen.len(); n != 0 {
		t.Errorf("refused proofs used up %d jtis", n)
	}
	// The good proof, once: a replay is refused, and stays refused until
	// its iat leaves the window.
	p := k.proof(t, good(), nil)
	req := DPoPRequest{Method: "GET", URL: mustURL(htu), AccessToken: token}
	if _, err := checkDPoPProof(context.Background(), p, req, now, time.Minute, nil, seen.use); err != nil {
		t.Fatal(err)
	}
	_, err := checkDPoPProof(context.Background(), p, req, now.Add(59*time.Second), time.Minute, nil, seen.use)
	if !errors.Is(err, ErrInvalidDPoPProof) || !strings.Contains(ErrorMessage(err), "replay") {
		t.Fatalf("replay: %v", err)
	}
}

// TestDPoPReplayShared: the Authenticator records a proof's jti in the
// store, so a second instance refuses its replay.
func TestDPoPReplayShared(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dburl string) {
		clock := &fakeClock{t: time.Unix(1_900_000_000, 0)}
		cfg := Config{Now: clock.Now}
		a1 := newAuth(t, openStore(t, dburl), cfg)
		a2 := newAuth(t, openStore(t, dburl), cfg)
		k := newDPoPKey(t, jose.EdDSA)
		p := k.proof(t, dpopClaimsAt(clock.Now(), "POST", "https://auth.test/oauth/token"), nil)
		req := DPoPRequest{Method: "POST", URL: mustURL("https://auth.test/oauth/token")}
		got, err := a1.CheckDPoPProof(context.Background(), p, req)
		if err != nil {
			t.Fatal(err)
		}
		if got.Thumbprint != k.thumbprint(t) {
			t.Errorf("thumbprint %s", got.Thumbprint)
		}
		if _, err := a2.CheckDPoPProof(context.Background(), p, req); !errors.Is(err, ErrInvalidDPoPProof) {
			t.Fatalf("replay on another instance: %v", err)
		}
	})
}

func TestSameHTU(t *testing.T) {
	for _, c := range []struct {
		htu, url string
		same     bool
	}{
		{"https://a.test/x", "https://a.test/x", true},
		{"HTTPS://A.TEST/x", "https://a.test:443/x?q=1#f", true},
		{"https://a.test/x?q=2", "https://a.test/x", true},
		{"http://a.test:80", "http://a.test/", true},
		{"https://[::1]:443/x", "https://[::1]/x", true},
		{"https://a.test/X", "https://a.test/x", false},
		{"https://a.test:8443/x", "https://a.test/x", false},
		{"https://u@a.test/x", "https://a.test/x", false},
		{"/x", "https://a.test/x", false},
		{"ftp://a.test/x", "ftp://a.test/x", false},
		{"https:a.test/x", "https://a.test/x", false},
	} {
		if got := sameHTU(c.htu, mustURL(c.url)); got != c.same {
			t.Errorf("sameHTU(%q, %q) = %v", c.htu, c.url, got)
		}
	}
}

// TestDPoPRemoteMiddleware: a service behind Middleware with a
// RemoteVerifier takes a DPoP-bound token with its proof, refuses it as
// Bearer, without a proof, and with a replayed proof.
func TestDPoPRemoteMiddleware(t *testing.T) {
	ctx := context.Background()
	m := newMiniAuthd(t, Config{})
	_, secret := mustClient(t, m.a, NewClient{ID: "svc"})
	key := newDPoPKey(t, jose.ES256)
	tokenURL := m.URL + "/oauth/token"
	tok, err := m.a.Authenticate(ctx, "svc", secret, TokenRequest{
		DPoP: key.proof(t, dpopClaimsAt(time.Now(), "POST", tokenURL), nil), TokenEndpoint: tokenURL,
	})
	if err != nil || tok.TokenType != "DPoP" {
		t.Fatalf("Authenticate: %+v %v", tok, err)
	}
	v := newRemote(t, m)
	api := httptest.NewServer(Middleware(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	defer api.Close()
	u := api.URL + "/notes"
	proof := func() string {
		c := dpopClaimsAt(time.Now(), "GET", u)
		c["ath"] = AccessTokenHash(tok.AccessToken)
		return key.proof(t, c, nil)
	}
	get := func(auth, proof string) int {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Authorization", auth)
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	p := proof()
	if s := get("DPoP "+tok.AccessToken, p); s != 200 {
		t.Fatalf("with its proof: %d", s)
	}
	for name, s := range map[string]int{
		"replayed":  get("DPoP "+tok.AccessToken, p),
		"as Bearer": get("Bearer "+tok.AccessToken, ""),
		"no proof":  get("DPoP "+tok.AccessToken, ""),
	} {
		if s != 401 {
			t.Errorf("%s: %d", name, s)
		}
	}
}

// BenchmarkDPoP is the cost of a DPoP-bound request at a resource: Verify
// of a seen token plus its proof's check (a second signature, the claims;
// the header is read once per key), with the proof's jti recorded in the
// store (the token endpoint's way, and a resource's with
// Config.DPoPSharedReplay), in the process (a resource's default), or not
// at all (the cost of the check alone). Beside them, in the same run so
// that ratios hold on a noisy machine: raw-verify, a bare Ed25519
// signature check of a token (what a new token costs at least), and
// bearer, Verify of a seen bearer token. Each also reports cpu-ns/op, the
// CPU time of the benchmark's own thread per call (threadCPU), which other
// jobs on the machine disturb far less than ns/op; it leaves out work on
// other threads (the garbage collector's, SQLite's none: it runs in the
// calling goroutine).
func BenchmarkDPoP(b *testing.B) {
	ctx := context.Background()
	ba := newBenchAuth(b, testdb.SQLite(b), AlgEdDSA)
	a := ba.a
	u := mustURL("https://api.test/notes")
	bearer := ba.token(b)
	msg := []byte(bearer[:strings.LastIndexByte(bearer, '.')])
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	edSig := ed25519.Sign(edPriv, msg)
	b.Run("raw-verify", func(b *testing.B) {
		defer cpuPerOp(b)()
		for b.Loop() {
			if !ed25519.Verify(edPub, msg, edSig) {
				b.Fatal("bad signature")
			}
		}
	})
	b.Run("bearer", func(b *testing.B) {
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			if _, err := a.Verify(ctx, bearer); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, alg := range []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256} {
		key := newDPoPKey(b, alg)
		tokReq := TokenRequest{DPoP: key.proof(b, dpopClaimsAt(time.Now(), "POST", testIssuer+"/oauth/token"), nil), TokenEndpoint: testIssuer + "/oauth/token"}
		t, err := a.Authenticate(ctx, "gen", ba.genSecret, tokReq)
		if err != nil {
			b.Fatal(err)
		}
		tok := t.AccessToken
		proofs := make([]string, 4096)
		for i := range proofs {
			c := dpopClaimsAt(time.Now(), "GET", u.String())
			c["ath"] = AccessTokenHash(tok)
			proofs[i] = key.proof(b, c, nil)
		}
		req := DPoPRequest{Method: "GET", URL: u, AccessToken: tok}
		var round atomic.Int64 // a new round of the proofs: new jtis
		var seen dpopJTIs
		replays := map[string]dpopReplay{
			"none": func(context.Context, string, string, time.Time, time.Time) (bool, error) { return true, nil },
			"process": func(ctx context.Context, jkt, jti string, until, now time.Time) (bool, error) {
				return seen.use(ctx, jkt, fmt.Sprint(round.Load())+jti, until, now)
			},
			"store": func(ctx context.Context, jkt, jti string, until, now time.Time) (bool, error) {
				return a.store.useJTI(ctx, "dpop "+jkt, fmt.Sprint(round.Load())+jti, until, now)
			},
		}
		var headers dpopHeaders
		for _, name := range []string{"none", "process", "store"} {
			replay := replays[name]
			b.Run(string(alg)+"/"+name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				defer cpuPerOp(b)()
				for b.Loop() {
					if i == len(proofs) {
						i = 0
						round.Add(1)
					}
					if _, err := a.Verify(ctx, tok); err != nil {
						b.Fatal(err)
					}
					if _, err := checkDPoPProof(ctx, proofs[i], req, time.Now(), time.Minute, &headers, replay); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

// cpuPerOp pins the benchmark to its thread and returns what reports
// the thread's CPU time per op (cpu-ns/op) once the loop is over.
func cpuPerOp(b *testing.B) func() {
	runtime.LockOSThread()
	start := threadCPU()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(threadCPU()-start)/float64(b.N), "cpu-ns/op")
		}
		runtime.UnlockOSThread()
	}
}

// TestDPoPJTIsExpire: the per-process window forgets a jti once its proof
// is out of the window, and drops expired buckets whole.
func TestDPoPJTIsExpire(t *testing.T) {
	var s dpopJTIs
	ctx := context.Background()
	now := time.Unix(1_900_000_000, 0)
	for i := 0; i < 100; i++ {
		if ok, _ := s.use(ctx, "k", fmt.Sprint(i), now.Add(time.Minute), now); !ok {
			t.Fatal("fresh jti refused")
		}
	}
	if ok, _ := s.use(ctx, "k", "0", now.Add(time.Minute), now.Add(59*time.Second)); ok {
		t.Fatal("replay within the window passed")
	}
	if ok, _ := s.use(ctx, "other key", "0", now.Add(time.Minute), now); !ok {
		t.Fatal("another key's jti was refused")
	}
	later := now.Add(2 * time.Minute)
	if ok, _ := s.use(ctx, "k", "0", later.Add(time.Minute), later); !ok {
		t.Fatal("a jti out of the window is still refused")
	}
	for i := range s.shards { // as each shard's next use does
		s.shards[i].drop(later)
	}
	if n := s.len(); n != 1 {
		t.Fatalf("%d entries after the window, want 1", n)
	}
}

// len counts the entries of s.
func (s *dpopJTIs) len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.n
		sh.mu.Unlock()
	}
	return n
}

// TestDPoPResourceReplay: at a resource (a proof with an access token) an
// Authenticator remembers jtis in its process by default, so a replay to
// the same instance is refused and one to another instance passes there;
// with Config.DPoPSharedReplay every instance refuses it.
func TestDPoPResourceReplay(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dburl string) {
		for _, shared := range []bool{false, true} {
			clock := &fakeClock{t: time.Unix(1_900_000_000, 0)}
			cfg := Config{Now: clock.Now, DPoPSharedReplay: shared}
			a1 := newAuth(t, openStore(t, dburl), cfg)
			a2 := newAuth(t, openStore(t, dburl), cfg)
			k := newDPoPKey(t, jose.ES256)
			const tok = "eyJ.token.x"
			c := dpopClaimsAt(clock.Now(), "GET", "https://api.test/notes")
			c["ath"] = AccessTokenHash(tok)
			p := k.proof(t, c, nil)
			req := DPoPRequest{Method: "GET", URL: mustURL("https://api.test/notes"), AccessToken: tok}
			if _, err := a1.CheckDPoPProof(context.Background(), p, req); err != nil {
				t.Fatal(err)
			}
			if _, err := a1.CheckDPoPProof(context.Background(), p, req); !errors.Is(err, ErrInvalidDPoPProof) {
				t.Fatalf("shared %v: a replay to the same instance: %v", shared, err)
			}
			_, err := a2.CheckDPoPProof(context.Background(), p, req)
			if shared && !errors.Is(err, ErrInvalidDPoPProof) || !shared && err != nil {
				t.Fatalf("shared %v: a replay to another instance: %v", shared, err)
			}
		}
	})
}
