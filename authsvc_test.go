package authsvc

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authsvc/authsvc/internal/testdb"
)

const testIssuer = "https://auth.test"

// fakeClock is a settable clock for expiry tests.
type fakeClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openStore(t *testing.T, url string) Store {
	t.Helper()
	s, err := OpenStore(context.Background(), url)
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newAuth(t *testing.T, s Store, cfg Config) *Authenticator {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = testIssuer
	}
	a, err := New(context.Background(), s, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func mustClient(t *testing.T, a *Authenticator, nc NewClient) (*Client, string) {
	t.Helper()
	c, secret, err := a.CreateClient(context.Background(), nc)
	if err != nil {
		t.Fatalf("CreateClient(%q): %v", nc.ID, err)
	}
	return c, secret
}

func mustToken(t *testing.T, a *Authenticator, id, secret string) *Token {
	t.Helper()
	tok, err := a.Authenticate(context.Background(), id, secret, TokenRequest{})
	if err != nil {
		t.Fatalf("Authenticate(%q): %v", id, err)
	}
	return tok
}

// decodeParts returns a token's header and payload as maps.
func decodeParts(t *testing.T, tok string) (map[string]any, map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	var h, p map[string]any
	for i, dst := range []*map[string]any{&h, &p} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return h, p
}

func TestIssueAndVerify(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		a := newAuth(t, openStore(t, url), Config{})
		c, secret := mustClient(t, a, NewClient{ID: "notes", Scopes: []string{"notes:read", "notes:write"}})
		if len(secret) != 43 {
			t.Fatalf("generated secret has %d chars, want 43", len(secret))
		}
		tok := mustToken(t, a, "notes", secret)
		if tok.TokenType != "Bearer" || tok.ExpiresIn != time.Hour || strings.Join(tok.Scopes, " ") != "notes:read notes:write" {
			t.Fatalf("token = %+v", tok)
		}
		h, p := decodeParts(t, tok.AccessToken)
		if h["typ"] != "at+jwt" || h["alg"] != "EdDSA" || h["kid"] == nil {
			t.Fatalf("header = %v", h)
		}
		for _, k := range []string{"iss", "sub", "client_id", "aud", "exp", "iat", "nbf", "jti", "scope", "id", "isAdmin", "clientId"} {
			if _, ok := p[k]; !ok {
				t.Errorf("claim %q missing from %v", k, p)
			}
		}
		if p["sub"] != "notes" || p["clientId"] != "notes" || p["client_id"] != "notes" || p["iss"] != testIssuer ||
			p["id"] != float64(c.RowID) || p["isAdmin"] != false {
			t.Fatalf("payload = %v", p)
		}
		jti, _ := base64.RawURLEncoding.DecodeString(p["jti"].(string))
		if len(jti) != 16 {
			t.Fatalf("jti has %d bytes, want 16", len(jti))
		}
		claims, err := a.Verify(ctx, tok.AccessToken)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if claims.Subject != "notes" || !claims.HasScope("notes:write") || claims.HasScope("admin") || claims.Audience[0] != testIssuer {
			t.Fatalf("claims = %+v", claims)
		}
	})
}

func TestAuthenticateRefuses(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		a := newAuth(t, openStore(t, url), Config{})
		_, secret := mustClient(t, a, NewClient{ID: "admin", IsAdmin: true, Scopes: []string{"a", "b"}, Audiences: []string{"https://api.test"}})
		_, chosen := mustClient(t, a, NewClient{ID: "chosen", Secret: "a chosen secret, long enough"})
		cases := []struct {
			name, id, secret string
			req              TokenRequest
			want             error
		}{
			{"wrong secret", "admin", "nope", TokenRequest{}, ErrInvalidClient},
			{"unknown client", "ghost", secret, TokenRequest{}, ErrInvalidClient},
			{"wrong chosen secret", "chosen", "a chosen secret, long enougH", TokenRequest{}, ErrInvalidClient},
			{"empty secret", "admin", "", TokenRequest{}, ErrInvalidClient},
			{"empty id", "", secret, TokenRequest{}, ErrInvalidClient},
			{"seed injection: comment", "admin' --", "anything", TokenRequest{}, ErrInvalidClient},
			{"seed injection: or true", "x' OR '1'='1' --", "anything", TokenRequest{}, ErrInvalidClient},
			{"seed injection: union", "x' UNION SELECT 1, 'x', 'da39a3ee5e6b4b0d3255bfef95601890afd80709', true --", "", TokenRequest{}, ErrInvalidClient},
			{"oversized id", strings.Repeat("a", MaxClientIDLen+1), secret, TokenRequest{}, ErrInvalidClient},
			{"oversized secret", "admin", strings.Repeat("s", MaxSecretLen+1), TokenRequest{}, ErrInvalidClient},
			{"scope not granted", "admin", secret, TokenRequest{Scopes: []string{"a", "c"}}, ErrInvalidScope},
			{"malformed scope", "admin", secret, TokenRequest{Scopes: []string{"a\"b"}}, ErrInvalidScope},
			{"bad audience", "admin", secret, TokenRequest{Audience: []string{"two words"}}, ErrInvalidTarget},
			{"audience not allowed", "admin", secret, TokenRequest{Audience: []string{"https://other.test"}}, ErrInvalidTarget},
			{"one audience not allowed", "admin", secret, TokenRequest{Audience: []string{"https://api.test", "https://other.test"}}, ErrInvalidTarget},
		}
		for _, tc := range cases {
			tok, err := a.Authenticate(ctx, tc.id, tc.secret, tc.req)
			if !errors.Is(err, tc.want) || tok != nil {
				t.Errorf("%s: Authenticate = %v, %v; want %v", tc.name, tok, err, tc.want)
			}
		}
		if _, err := a.Authenticate(ctx, "chosen", chosen, TokenRequest{}); err != nil {
			t.Fatalf("chosen secret: %v", err)
		}
		tok, err := a.Authenticate(ctx, "admin", secret, TokenRequest{Scopes: []string{"b"}, Audience: []string{"https://api.test"}})
		if err != nil {
			t.Fatal(err)
		}
		claims, err := a.Verify(ctx, tok.AccessToken)
		if err != nil || claims.Scope != "b" || len(claims.Audience) != 1 || claims.Audience[0] != "https://api.test" || !claims.IsAdmin {
			t.Fatalf("narrowed token: %+v, %v", claims, err)
		}
	})
}

func TestCreateClientRefuses(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		a := newAuth(t, openStore(t, url), Config{})
		mustClient(t, a, NewClient{ID: "taken"})
		cases := []struct {
			name string
			nc   NewClient
			want error
		}{
			{"duplicate", NewClient{ID: "taken"}, ErrClientExists},
			{"empty id", NewClient{ID: ""}, ErrInvalidArgument},
			{"space in id", NewClient{ID: "a b"}, ErrInvalidArgument},
			{"control char in id", NewClient{ID: "a\x00b"}, ErrInvalidArgument},
			{"long id", NewClient{ID: strings.Repeat("x", 129)}, ErrInvalidArgument},
			{"short secret", NewClient{ID: "short", Secret: "fifteen chars!!"}, ErrInvalidArgument},
			{"long secret", NewClient{ID: "long", Secret: strings.Repeat("x", MaxSecretLen+1)}, ErrInvalidArgument},
			{"bad scope", NewClient{ID: "scope", Scopes: []string{"a\\b"}}, ErrInvalidScope},
			{"too many scopes", NewClient{ID: "scopes", Scopes: make([]string, MaxScopes+1)}, ErrInvalidScope},
		}
		for _, tc := range cases {
			if _, _, err := a.CreateClient(ctx, tc.nc); !errors.Is(err, tc.want) {
				t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
			}
		}
		clients, err := a.Clients(ctx)
		if err != nil || len(clients) != 1 || clients[0].ID != "taken" {
			t.Fatalf("Clients = %+v, %v; want only the first", clients, err)
		}
		// SQL metacharacters are data, stored and found as written.
		weird := `o'hara";DROP/**/TABLE/**/clients;--`
		mustClient(t, a, NewClient{ID: weird})
		if c, err := a.Client(ctx, weird); err != nil || c.ID != weird {
			t.Fatalf("Client(%q) = %+v, %v", weird, c, err)
		}
	})
}

// signWith signs arbitrary claims with the Authenticator's current key, to
// build tokens it would never issue itself.
func signWith(t *testing.T, a *Authenticator, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	s := a.keys.Load().current(time.Now())
	tok := jwt.NewWithClaims(s.method, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	out, err := tok.SignedString(s.private)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyRefuses(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		clock := &fakeClock{t: time.Now()}
		a := newAuth(t, openStore(t, url), Config{Now: clock.Now})
		c, secret := mustClient(t, a, NewClient{ID: "svc"})
		good := mustToken(t, a, "svc", secret).AccessToken
		h, p := decodeParts(t, good)
		kid := h["kid"]
		valid := func() jwt.MapClaims {
			now := clock.Now().Unix()
			return jwt.MapClaims{"iss": testIssuer, "sub": "svc", "client_id": "svc", "aud": []string{testIssuer},
				"exp": now + 60, "iat": now, "nbf": now, "jti": "forged-jti", "id": c.RowID}
		}
		without := func(k string) jwt.MapClaims { m := valid(); delete(m, k); return m }
		with := func(k string, v any) jwt.MapClaims { m := valid(); m[k] = v; return m }
		atjwt := map[string]any{"typ": "at+jwt", "kid": kid}

		parts := strings.Split(good, ".")
		payload, _ := json.Marshal(p)
		noneTok := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + "."
		// Algorithm confusion: HS256 keyed with the public key's bytes.
		pub := a.keys.Load().current(time.Now()).public
		hsTok := jwt.NewWithClaims(jwt.SigningMethodHS256, valid())
		hsTok.Header["kid"], hsTok.Header["typ"] = kid, "at+jwt"
		hsSigned, _ := hsTok.SignedString([]byte(fmt.Sprint(pub)))
		flipped := []byte(parts[2])
		flipped[3] ^= 1

		cases := []struct {
			name, token string
			want        error
		}{
			{"empty", "", ErrInvalidToken},
			{"garbage", "not-a-token", ErrInvalidToken},
			{"too long", strings.Repeat("a", MaxTokenLen+1), ErrInvalidToken},
			{"bad signature", parts[0] + "." + parts[1] + "." + string(flipped), ErrInvalidToken},
			{"payload swapped", parts[0] + "." + base64.RawURLEncoding.EncodeToString(append(payload, ' ')) + "." + parts[2], ErrInvalidToken},
			{"alg none", noneTok, ErrInvalidToken},
			{"alg confusion HS256", hsSigned, ErrInvalidToken},
			{"no exp (seed flaw 6)", signWith(t, a, atjwt, without("exp")), ErrInvalidToken},
			{"no jti", signWith(t, a, atjwt, without("jti")), ErrInvalidToken},
			{"wrong issuer", signWith(t, a, atjwt, with("iss", "https://evil.test")), ErrInvalidToken},
			{"expired", signWith(t, a, atjwt, with("exp", clock.Now().Unix()-31)), ErrTokenExpired},
			{"not yet valid", signWith(t, a, atjwt, with("nbf", clock.Now().Unix()+120)), ErrInvalidToken},
			{"no typ", signWith(t, a, map[string]any{"kid": kid}, valid()), ErrInvalidToken},
			{"typ JWT", signWith(t, a, map[string]any{"kid": kid, "typ": "JWT"}, valid()), ErrInvalidToken},
			{"unknown kid", signWith(t, a, map[string]any{"kid": "nope", "typ": "at+jwt"}, valid()), ErrInvalidToken},
			{"unknown client", signWith(t, a, atjwt, with("sub", "ghost")), ErrTokenRevoked},
			{"other row id", signWith(t, a, atjwt, with("id", c.RowID+1)), ErrTokenRevoked},
		}
		for _, tc := range cases {
			claims, err := a.Verify(ctx, tc.token)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrInvalidToken) || claims != nil {
				t.Errorf("%s: Verify = %+v, %v; want %v", tc.name, claims, err, tc.want)
			}
		}
		if _, err := a.Verify(ctx, signWith(t, a, atjwt, valid())); err != nil {
			t.Fatalf("a well-formed token signed with our key must verify: %v", err)
		}
		// Within the 30 s leeway an expired token still passes; past it, no.
		clock.Add(time.Hour + 20*time.Second)
		if _, err := a.Verify(ctx, good); err != nil {
			t.Fatalf("within leeway: %v", err)
		}
		clock.Add(15 * time.Second)
		if _, err := a.Verify(ctx, good); !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("past leeway: %v, want ErrTokenExpired", err)
		}
	})
}

func TestLogout(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		a := newAuth(t, openStore(t, url), Config{})
		// Many long scopes make a token over 4 KB (the seed could not log
		// out tokens over 256 characters).
		var scopes []string
		for i := 0; i < 80; i++ {
			scopes = append(scopes, fmt.Sprintf("scope:%02d:%s", i, strings.Repeat("x", 40)))
		}
		_, secret := mustClient(t, a, NewClient{ID: "big", Scopes: scopes})
		tok := mustToken(t, a, "big", secret).AccessToken
		if len(tok) < 4096 {
			t.Fatalf("token is %d bytes, want over 4096", len(tok))
		}
		other := mustToken(t, a, "big", secret).AccessToken
		if err := a.Logout(ctx, tok); err != nil {
			t.Fatalf("Logout: %v", err)
		}
		// Twice keeps it out (the seed's second logout un-revoked it).
		for i := 0; i < 2; i++ {
			if _, err := a.Verify(ctx, tok); !errors.Is(err, ErrTokenRevoked) {
				t.Fatalf("after logout %d: Verify = %v, want ErrTokenRevoked", i+1, err)
			}
			if err := a.Logout(ctx, tok); err != nil {
				t.Fatalf("second Logout: %v", err)
			}
		}
		if _, err := a.Verify(ctx, other); err != nil {
			t.Fatalf("another token of the same client must stay valid: %v", err)
		}
		// Junk is refused and not stored (the seed stored any string).
		for _, junk := range []string{"", "junk", "'); INSERT INTO authsvc_clients VALUES (99, 'x', 'x', true); --", strings.Repeat("a.b.c", 100)} {
			if err := a.Logout(ctx, junk); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Logout(junk %.20q) = %v, want ErrInvalidToken", junk, err)
			}
		}
		sq := a.store.(*sqlStore)
		var n int
		if err := sq.db.Get(&n, `SELECT COUNT(*) FROM authsvc_revoked_tokens`); err != nil || n != 1 {
			t.Fatalf("revoked_tokens has %d rows (%v), want 1", n, err)
		}
		if err := sq.db.Get(&n, `SELECT COUNT(*) FROM authsvc_clients`); err != nil || n != 1 {
			t.Fatalf("clients has %d rows (%v), want 1", n, err)
		}
	})
}

func TestDeletedClientTokensRefused(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		a := newAuth(t, openStore(t, url), Config{})
		_, secret := mustClient(t, a, NewClient{ID: "doomed", IsAdmin: true})
		tok := mustToken(t, a, "doomed", secret).AccessToken
		if err := a.DeleteClient(ctx, "doomed"); err != nil {
			t.Fatal(err)
		}
		if err := a.DeleteClient(ctx, "doomed"); !errors.Is(err, ErrClientNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		if _, err := a.Verify(ctx, tok); !errors.Is(err, ErrTokenRevoked) {
			t.Fatalf("deleted client's token: %v, want ErrTokenRevoked", err)
		}
		// Re-created under the same client_id: the old token stays refused.
		_, secret2 := mustClient(t, a, NewClient{ID: "doomed"})
		if _, err := a.Verify(ctx, tok); !errors.Is(err, ErrTokenRevoked) {
			t.Fatalf("re-created client, old token: %v, want ErrTokenRevoked", err)
		}
		if _, err := a.Authenticate(ctx, "doomed", secret, TokenRequest{}); !errors.Is(err, ErrInvalidClient) {
			t.Fatalf("old secret of re-created client: %v", err)
		}
		mustToken(t, a, "doomed", secret2)
	})
}

func TestRestartKeepsState(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s1, err := OpenStore(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		a1 := newAuth(t, s1, Config{})
		_, secret := mustClient(t, a1, NewClient{ID: "keep", Scopes: []string{"x"}})
		live := mustToken(t, a1, "keep", secret).AccessToken
		dead := mustToken(t, a1, "keep", secret).AccessToken
		if err := a1.Logout(ctx, dead); err != nil {
			t.Fatal(err)
		}
		jwks := string(a1.JWKS())
		s1.Close()

		a2 := newAuth(t, openStore(t, url), Config{})
		if got := string(a2.JWKS()); got != jwks {
			t.Fatalf("JWKS changed across restart:\n%s\n%s", jwks, got)
		}
		if _, err := a2.Verify(ctx, live); err != nil {
			t.Fatalf("old token after restart: %v", err)
		}
		if _, err := a2.Verify(ctx, dead); !errors.Is(err, ErrTokenRevoked) {
			t.Fatalf("revoked token after restart: %v", err)
		}
		mustToken(t, a2, "keep", secret)
	})
}

func TestAlgorithms(t *testing.T) {
	for _, alg := range []string{AlgEdDSA, AlgES256, AlgRS256, AlgHS256} {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, testdb.SQLite(t))
			cfg := Config{SigningAlg: alg}
			if alg == AlgHS256 {
				cfg.HMACSecret = []byte(strings.Repeat("k", 32))
			}
			a := newAuth(t, s, cfg)
			_, secret := mustClient(t, a, NewClient{ID: "c"})
			tok := mustToken(t, a, "c", secret).AccessToken
			h, _ := decodeParts(t, tok)
			if h["alg"] != alg {
				t.Fatalf("alg = %v", h["alg"])
			}
			if _, err := a.Verify(ctx, tok); err != nil {
				t.Fatal(err)
			}
			var jwks struct{ Keys []map[string]any }
			if err := json.Unmarshal(a.JWKS(), &jwks); err != nil {
				t.Fatal(err)
			}
			if _, p := decodeParts(t, tok); (p["aud"] == nil) != (alg == AlgHS256) {
				t.Fatalf("%s token aud = %v: want none with HS256 (PyJWT refuses an aud it was not told of), the issuer otherwise", alg, p["aud"])
			}
			if alg == AlgHS256 {
				if len(jwks.Keys) != 0 {
					t.Fatalf("HS256 must publish no key: %s", a.JWKS())
				}
				// The same secret verifies; another does not.
				other := newAuth(t, s, Config{SigningAlg: AlgHS256, HMACSecret: []byte(strings.Repeat("j", 32))})
				if _, err := other.Verify(ctx, tok); !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("other HS256 secret: %v", err)
				}
				return
			}
			if len(jwks.Keys) != 1 || jwks.Keys[0]["kid"] != h["kid"] || jwks.Keys[0]["use"] != "sig" || jwks.Keys[0]["alg"] != alg {
				t.Fatalf("jwks = %s", a.JWKS())
			}
			for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
				if _, ok := jwks.Keys[0][private]; ok {
					t.Fatalf("JWKS leaks private part %q", private)
				}
			}
		})
	}
	// An HS256 instance refuses an EdDSA token and the other way round.
	s := openStore(t, testdb.SQLite(t))
	ed := newAuth(t, s, Config{})
	hs := newAuth(t, s, Config{SigningAlg: AlgHS256, HMACSecret: []byte(strings.Repeat("k", 32))})
	_, secret := mustClient(t, ed, NewClient{ID: "x"})
	if _, err := hs.Verify(context.Background(), mustToken(t, ed, "x", secret).AccessToken); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("HS256 verifier accepted EdDSA token: %v", err)
	}
	if _, err := ed.Verify(context.Background(), mustToken(t, hs, "x", secret).AccessToken); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("EdDSA verifier accepted HS256 token: %v", err)
	}
}

func TestConfigRefused(t *testing.T) {
	s := openStore(t, testdb.SQLite(t))
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no issuer", Config{}, "Issuer is required"},
		{"short HS256", Config{Issuer: "x", SigningAlg: AlgHS256, HMACSecret: []byte("short")}, "at least 32"},
		{"unknown alg", Config{Issuer: "x", SigningAlg: "none"}, "unsupported signing algorithm"},
		{"bad kek", Config{Issuer: "x", KeyEncryptionKey: []byte("short")}, "must be 32"},
		{"tiny ttl", Config{Issuer: "x", TokenTTL: time.Millisecond}, "too short"},
	}
	for _, tc := range cases {
		if _, err := New(context.Background(), s, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
	if _, err := New(context.Background(), nil, Config{Issuer: "x"}); err == nil {
		t.Error("nil store accepted")
	}
}

func TestKeyEncryptionAtRest(t *testing.T) {
	ctx := context.Background()
	url := testdb.SQLite(t)
	kek := []byte(strings.Repeat("K", 32))
	s := openStore(t, url)
	a := newAuth(t, s, Config{KeyEncryptionKey: kek})
	_, secret := mustClient(t, a, NewClient{ID: "c"})
	tok := mustToken(t, a, "c", secret).AccessToken
	var stored string
	if err := s.(*sqlStore).db.Get(&stored, `SELECT private_key FROM authsvc_signing_keys`); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stored, sealedPrefix) {
		t.Fatalf("stored key is not sealed: %.10s…", stored)
	}
	if _, err := New(ctx, s, Config{Issuer: testIssuer}); err == nil || !strings.Contains(err.Error(), "AUTHSVC_KEY_ENCRYPTION_KEY") {
		t.Fatalf("no kek: %v", err)
	}
	if _, err := New(ctx, s, Config{Issuer: testIssuer, KeyEncryptionKey: []byte(strings.Repeat("W", 32))}); err == nil {
		t.Fatal("wrong kek accepted")
	}
	a2 := newAuth(t, s, Config{KeyEncryptionKey: kek})
	if _, err := a2.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
}

func TestLegacyHashUpgraded(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := openStore(t, url)
		a := newAuth(t, s, Config{})
		sum := sha1.Sum([]byte("old-flask-secret"))
		rec := &clientRecord{Client: Client{ID: "flask", RowID: 42, IsAdmin: true}, SecretHash: hex.EncodeToString(sum[:])}
		if err := s.createClient(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Authenticate(ctx, "flask", "wrong", TokenRequest{}); !errors.Is(err, ErrInvalidClient) {
			t.Fatalf("wrong secret: %v", err)
		}
		tok := mustToken(t, a, "flask", "old-flask-secret")
		claims, err := a.Verify(ctx, tok.AccessToken)
		if err != nil || claims.ClientRowID != 42 || !claims.IsAdmin {
			t.Fatalf("claims = %+v, %v", claims, err)
		}
		got, err := s.client(ctx, "flask")
		if err != nil {
			t.Fatal(err)
		}
		if isLegacyHash(got.SecretHash) || !strings.HasPrefix(got.SecretHash, "$argon2id$") {
			t.Fatalf("hash not upgraded: %.12s…", got.SecretHash)
		}
		mustToken(t, a, "flask", "old-flask-secret")
		// The explicit row id did not break the id sequence.
		c, _ := mustClient(t, a, NewClient{ID: "after-import"})
		if c.RowID <= 42 {
			t.Fatalf("new client row id %d, want > 42", c.RowID)
		}
	})
}

func TestStoreDownFailsClosed(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s, err := OpenStore(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		a := newAuth(t, s, Config{PollInterval: 20 * time.Millisecond, MaxStaleness: 500 * time.Millisecond})
		_, secret := mustClient(t, a, NewClient{ID: "c"})
		tok := mustToken(t, a, "c", secret).AccessToken
		s.Close()
		// Verify answers from memory for a while...
		if _, err := a.Verify(ctx, tok); err != nil {
			t.Fatalf("Verify right after the store went away: %v", err)
		}
		// ...Authenticate fails closed as soon as a catch-up fails...
		waitFor(t, 2*time.Second, "Authenticate to fail closed", func() bool {
			_, err := a.Authenticate(ctx, "c", secret, TokenRequest{})
			return errors.Is(err, ErrUnavailable)
		})
		if err := a.Logout(ctx, tok); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Logout with store down = %v, want ErrUnavailable", err)
		}
		if _, _, err := a.CreateClient(ctx, NewClient{ID: "d"}); !errors.Is(err, ErrUnavailable) {
			t.Errorf("CreateClient with store down = %v, want ErrUnavailable", err)
		}
		// ...and Verify refuses once MaxStaleness has passed.
		waitFor(t, 3*time.Second, "Verify to fail closed", func() bool {
			_, err := a.Verify(ctx, tok)
			return errors.Is(err, ErrUnavailable)
		})
	})
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPurgeExpired(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		clock := &fakeClock{t: time.Now()}
		a := newAuth(t, openStore(t, url), Config{Now: clock.Now, TokenTTL: time.Minute})
		_, secret := mustClient(t, a, NewClient{ID: "c"})
		tok := mustToken(t, a, "c", secret).AccessToken
		if err := a.Logout(ctx, tok); err != nil {
			t.Fatal(err)
		}
		count := func() int {
			n, err := a.store.revocations(ctx, time.Unix(0, 0), func(_, _ []byte, _ int64) {})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if err := a.housekeep(ctx); err != nil || count() != 1 {
			t.Fatalf("purge before exp: %d left, %v", count(), err)
		}
		clock.Add(2 * time.Minute)
		if err := a.housekeep(ctx); err != nil || count() != 0 {
			t.Fatalf("purge after exp: %d left, %v", count(), err)
		}
		if _, err := a.Verify(ctx, tok); !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("purged token: %v, want ErrTokenExpired", err)
		}
	})
}

func TestConcurrentStartOneKeySet(t *testing.T) {
	testdb.Each(t, func(t *testing.T, url string) {
		const n = 6
		var wg sync.WaitGroup
		jwks := make([]string, n)
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				s, err := OpenStore(context.Background(), url)
				if err != nil {
					errs[i] = err
					return
				}
				defer s.Close()
				a, err := New(context.Background(), s, Config{Issuer: testIssuer})
				if err != nil {
					errs[i] = err
					return
				}
				defer a.Close()
				jwks[i] = string(a.JWKS())
			}(i)
		}
		wg.Wait()
		for i := range errs {
			if errs[i] != nil {
				t.Fatalf("instance %d: %v", i, errs[i])
			}
			if jwks[i] != jwks[0] {
				t.Fatalf("instance %d has another key set:\n%s\n%s", i, jwks[i], jwks[0])
			}
		}
		s := openStore(t, url)
		var keys int
		if err := s.(*sqlStore).db.Get(&keys, `SELECT COUNT(*) FROM authsvc_signing_keys`); err != nil || keys != 1 {
			t.Fatalf("%d signing keys (%v), want 1", keys, err)
		}
	})
}

// TestUnknownClientCostsTheSame checks, by the memory argon2id allocates
// rather than by time, that a wrong chosen-looking secret costs the same
// for an unknown client_id as for a client with a generated secret, and
// that a generated-looking one is cheap for both.
func TestUnknownClientCostsTheSame(t *testing.T) {
	ctx := context.Background()
	a := newAuth(t, openStore(t, testdb.SQLite(t)), Config{})
	_, generated := mustClient(t, a, NewClient{ID: "gen"})
	allocated := func(id, secret string) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := a.Authenticate(ctx, id, secret, TokenRequest{}); !errors.Is(err, ErrInvalidClient) {
			t.Fatalf("Authenticate(%s) = %v", id, err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	const argon2Memory = 16 << 20
	chosenLooking := "a wrong secret of the chosen kind"
	wrongGenerated := strings.Repeat("A", len(generated))
	if n := allocated("ghost", chosenLooking); n < argon2Memory {
		t.Errorf("unknown client, chosen-looking secret: %d bytes, want an argon2id run", n)
	}
	if n := allocated("gen", chosenLooking); n < argon2Memory {
		t.Errorf("generated-secret client, chosen-looking secret: %d bytes, want an argon2id run like an unknown client", n)
	}
	if n := allocated("ghost", wrongGenerated); n > 1<<20 {
		t.Errorf("unknown client, generated-looking secret: %d bytes, want no argon2id", n)
	}
	if n := allocated("gen", wrongGenerated); n > 1<<20 {
		t.Errorf("generated-secret client, generated-looking secret: %d bytes, want no argon2id", n)
	}
}

// TestVerifyResultIsACopy: what Verify returns is the caller's to change;
// the next Verify of the same token (answered from the cache) is not.
func TestVerifyResultIsACopy(t *testing.T) {
	a := newAuth(t, openStore(t, testdb.SQLite(t)), Config{})
	checkVerifyResultIsACopy(t, a, a.Verify)
}

// checkVerifyResultIsACopy verifies a token of a's twice with verify,
// changing what the first call returned.
func checkVerifyResultIsACopy(t *testing.T, a *Authenticator, verify func(context.Context, string) (*Claims, error)) {
	t.Helper()
	ctx := context.Background()
	_, secret := mustClient(t, a, NewClient{ID: "svc", Scopes: []string{"a", "b"}, Audiences: []string{"https://api.test"}})
	tok, err := a.Authenticate(ctx, "svc", secret, TokenRequest{Audience: []string{"https://api.test"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the first answer is parsed, the second cached
		c, err := verify(ctx, tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Audience) != 1 || c.Audience[0] != "https://api.test" || c.Scope != "a b" || c.Subject != "svc" {
			t.Fatalf("claims %+v", c)
		}
		c.Audience[0], c.Scope, c.Subject = "https://evil.test", "admin", "other"
	}
}
