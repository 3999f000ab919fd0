package authsvc

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzParseAssertion: any string given as a client_assertion is parsed or
// refused with a message, never with a panic, and what parses has an
// accepted algorithm and verifies against no key of an empty-handed set.
func FuzzParseAssertion(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString([]byte(`{"alg":"EdDSA","kid":"k"}`)) + "." + enc.EncodeToString([]byte(`{"iss":"a","sub":"a","aud":"x","exp":2000000000,"jti":"j"}`))
	f.Add(signed + "." + enc.EncodeToString(ed25519.Sign(priv, []byte(signed))))
	f.Add("a.b.c")
	f.Add("..")
	f.Add(enc.EncodeToString([]byte(`{"alg":"none"}`)) + ".e30.")
	f.Add(enc.EncodeToString([]byte(`{"alg":"ES256","crit":["x"]}`)) + ".e30.AA")
	set := jwkSet{{kid: "k", key: pub, raw: jwk{Kty: "OKP", Crv: "Ed25519", X: enc.EncodeToString(pub)}}}
	f.Fuzz(func(t *testing.T, s string) {
		as, err := parseAssertion(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty message")
			}
			return
		}
		if !strings.Contains(strings.Join(AssertionAlgorithms, " "), as.alg) || len(s) > MaxAssertionLen {
			t.Fatalf("parsed %q with alg %q", s, as.alg)
		}
		as.verify(set) // must not panic, whatever the signature
		AssertionIdentity(s)
	})
}

// FuzzParseJWKSet: any document given as a JWK Set is read or refused,
// never with a panic; what is read re-encodes to a set that reads the
// same, and holds no private member.
func FuzzParseJWKSet(f *testing.F) {
	pub, _, _ := ed25519.GenerateKey(nil)
	x := base64.RawURLEncoding.EncodeToString(pub)
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","kid":"a","alg":"EdDSA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","d":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}],"spiffe_sequence":1}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"},{"kty":"oct","k":"c2VjcmV0"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","use":"x509-svid","x5c":["AA"]}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, strict := range []bool{true, false} {
			set, err := parseJWKSet(b, strict)
			if err != nil {
				continue
			}
			if len(set) == 0 || len(set) > MaxJWKSKeys {
				t.Fatalf("a set of %d keys", len(set))
			}
			out := set.encode()
			var doc map[string][]map[string]any
			if err := json.Unmarshal(out, &doc); err != nil {
				t.Fatalf("re-encoded %s: %v", out, err)
			}
			for _, k := range doc["keys"] {
				for _, private := range []string{"d", "p", "q", "k"} {
					if _, has := k[private]; has {
						t.Fatalf("re-encoded set has %q: %s", private, out)
					}
				}
			}
			again, err := parseJWKSet(out, strict)
			if err != nil || len(again) != len(set) {
				t.Fatalf("re-encoded set %s reads as %d keys, %v", out, len(again), err)
			}
		}
	})
}

// FuzzParseDPoPProof: any string given as a DPoP header is parsed or
// refused with ErrInvalidDPoPProof and a message, never with a panic; what
// parses has typ dpop+jwt, an accepted algorithm and a public key.
func FuzzParseDPoPProof(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	enc := base64.RawURLEncoding
	header := `{"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":"` + enc.EncodeToString(pub) + `"}}`
	signed := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(`{"jti":"j","htm":"POST","htu":"https://a.test/t","iat":1900000000}`))
	f.Add(signed + "." + enc.EncodeToString(ed25519.Sign(priv, []byte(signed))))
	f.Add("a.b.c")
	f.Add(enc.EncodeToString([]byte(`{"typ":"dpop+jwt","alg":"none"}`)) + ".e30.")
	f.Add(enc.EncodeToString([]byte(`{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}}`)) + ".e30.AA")
	var headers dpopHeaders // the second parse reads the header from it
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseDPoPProof(s, &headers)
		if q, err2 := parseDPoPProof(s, &headers); (err == nil) != (err2 == nil) || err == nil && (p.alg != q.alg || p.jkt != q.jkt || p.claims != q.claims) {
			t.Fatalf("parsed differently the second time: %v, then %v", err, err2)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidDPoPProof) || ErrorMessage(err) == "" {
				t.Fatalf("refused without a message: %v", err)
			}
			return
		}
		if len(s) > MaxDPoPProofLen || !slices.Contains(DPoPAlgorithms, p.alg) || !p.key.allows(p.alg) {
			t.Fatalf("parsed %q with alg %q", s, p.alg)
		}
		if p.jkt == "" || p.jkt != p.key.thumbprint() {
			t.Fatal("no thumbprint")
		}
	})
}

// FuzzDPoPClaims: the fast reading of a proof's claims agrees with
// encoding/json on everything it accepts, and parseDPoPClaims with
// json.Unmarshal on everything.
func FuzzDPoPClaims(f *testing.F) {
	f.Add(`{"jti":"j1","htm":"GET","htu":"https://a.test/x","iat":1900000000,"ath":"abc","nonce":"n"}`)
	f.Add(`{"jti":"j1","iat":1.9e9,"extra":"x","n":-0.5}`)
	f.Add(` { } `)
	f.Add(`{"JTI":"a","jti":"b"}`)
	f.Add(`{"jti":"a","jti":"b"}`)
	f.Add(`{"iat":"1900000000"}`)
	f.Add(`{"jti":1}`)
	f.Add(`{"jti":"\u0041","x":[1,{"y":null}],"iat":null}`)
	f.Add(`{"iat":01}`)
	f.Add(`{"iat":1e400}`)
	f.Fuzz(func(t *testing.T, s string) {
		var fast, std, both dpopClaims
		stdErr := json.Unmarshal([]byte(s), &std)
		if readDPoPClaims([]byte(s), &fast) && (stdErr != nil || fast != std) {
			t.Fatalf("%q: fast %+v, encoding/json %+v %v", s, fast, std, stdErr)
		}
		err := parseDPoPClaims([]byte(s), &both)
		if (err == nil) != (stdErr == nil) || err == nil && both != std {
			t.Fatalf("%q: parseDPoPClaims %+v %v, encoding/json %+v %v", s, both, err, std, stdErr)
		}
	})
}
