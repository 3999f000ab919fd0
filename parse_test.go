package authsvc

import (
	"encoding/base64"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authsvc/authsvc/internal/testdb"
)

// TestParseOwnAgreesWithJWT: the fast path for our own tokens' headers
// (parseOwn) accepts and refuses exactly what golang-jwt's parser does,
// with the same claims and the same error category, on every algorithm.
func TestParseOwnAgreesWithJWT(t *testing.T) {
	for _, alg := range []string{AlgEdDSA, AlgES256, AlgRS256, AlgHS256} {
		t.Run(alg, func(t *testing.T) {
			clock := &fakeClock{t: time.Now().Truncate(time.Second)}
			cfg := Config{Now: clock.Now, SigningAlg: alg}
			if alg == AlgHS256 {
				cfg.HMACSecret = []byte(strings.Repeat("k", 32))
			}
			a := newAuth(t, openStore(t, testdb.SQLite(t)), cfg)
			_, secret := mustClient(t, a, NewClient{ID: "svc"})
			good := mustToken(t, a, "svc", secret).AccessToken
			ks := a.keys.Load()
			s := ks.byHeader[good[:strings.IndexByte(good, '.')]]
			if s == nil {
				t.Fatal("an issued token's header is not one parse recognises")
			}
			now := clock.Now().Unix()
			valid := func() jwt.MapClaims {
				return jwt.MapClaims{"iss": testIssuer, "sub": "svc", "client_id": "svc", "aud": []string{testIssuer},
					"exp": now + 60, "iat": now, "nbf": now, "jti": "j", "id": 1}
			}
			with := func(k string, v any) jwt.MapClaims { m := valid(); m[k] = v; return m }
			without := func(k string) jwt.MapClaims { m := valid(); delete(m, k); return m }
			// signRaw signs any payload bytes under our exact header.
			signRaw := func(payload string) string {
				in := s.header + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
				sig, err := s.method.Sign(in, s.private)
				if err != nil {
					t.Fatal(err)
				}
				return in + "." + base64.RawURLEncoding.EncodeToString(sig)
			}
			header := map[string]any{"typ": "at+jwt"}
			if s.kid != "" {
				header["kid"] = s.kid
			}
			sign := func(c jwt.MapClaims) string { return signWith(t, a, header, c) }
			parts := strings.Split(good, ".")
			flipped := []byte(parts[2])
			flipped[5] ^= 2
			tokens := map[string]string{
				"issued":             good,
				"crafted":            sign(valid()),
				"expired":            sign(with("exp", now-31)),
				"expired in leeway":  sign(with("exp", now-29)),
				"exp now-30":         sign(with("exp", now-30)),
				"nbf future":         sign(with("nbf", now+31)),
				"nbf in leeway":      sign(with("nbf", now+29)),
				"no nbf":             sign(without("nbf")),
				"no exp":             sign(without("exp")),
				"exp string":         sign(with("exp", "soon")),
				"exp float":          sign(with("exp", float64(now)+60.5)),
				"wrong iss":          sign(with("iss", "https://evil.test")),
				"no iss":             sign(without("iss")),
				"no jti":             sign(without("jti")),
				"no sub":             sign(without("sub")),
				"aud string":         sign(with("aud", "x")),
				"aud null":           sign(with("aud", nil)),
				"aud number":         sign(with("aud", 7)),
				"bad signature":      parts[0] + "." + parts[1] + "." + string(flipped),
				"short signature":    parts[0] + "." + parts[1] + "." + parts[2][:20],
				"no signature":       parts[0] + "." + parts[1] + ".",
				"signature not b64":  parts[0] + "." + parts[1] + ".*" + parts[2][1:],
				"four segments":      good + ".x",
				"two segments":       parts[0] + "." + parts[1],
				"header only":        parts[0] + ".",
				"payload not JSON":   signRaw("not json"),
				"payload array":      signRaw(`[1,2]`),
				"payload trailing":   signRaw(`{"iss":"` + testIssuer + `","sub":"svc","exp":` + itoa(now+60) + `,"jti":"j"} x`),
				"payload whitespace": signRaw(` {"iss":"` + testIssuer + `","sub":"svc","exp":` + itoa(now+60) + `,"jti":"j"} `),
				"payload empty":      signRaw(""),
				"payload swapped":    parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin"}`)) + "." + parts[2],
			}
			accepted := map[string]bool{"issued": true, "crafted": true, "expired in leeway": true, "nbf in leeway": true,
				"no nbf": true, "aud string": true, "aud null": true, "payload whitespace": true}
			for name, tok := range tokens {
				if !strings.HasPrefix(tok, s.header+".") {
					t.Fatalf("%s: not under our header", name)
				}
				for _, checkTime := range []bool{true, false} {
					fast, fastErr := a.parse(tok, checkTime)
					slow, slowErr := a.parseJWT(ks, tok, checkTime)
					if checkTime && (fastErr == nil) != accepted[name] {
						t.Errorf("%s: accepted %v, want %v (%v)", name, fastErr == nil, accepted[name], fastErr)
					}
					if (fastErr == nil) != (slowErr == nil) || !reflect.DeepEqual(fast, slow) ||
						errors.Is(fastErr, ErrTokenExpired) != errors.Is(slowErr, ErrTokenExpired) ||
						(fastErr != nil && !errors.Is(fastErr, ErrInvalidToken)) {
						t.Errorf("%s (checkTime %v): fast path %+v, %v; golang-jwt %+v, %v", name, checkTime, fast, fastErr, slow, slowErr)
					}
				}
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
