package authsvc

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// The public keys of others, read from JSON Web Keys (RFC 7517): a
// client's jwks or jwks_uri (private_key_jwt), a trusted issuer's keys or
// SPIFFE bundle (federation), and the remote authd's JWKS (RemoteVerifier).
// One parser for all of them.

// Limits on a JWK Set, whoever sends it.
const (
	MaxJWKSBytes = 256 << 10 // a set of MaxJWKSKeys 4096-bit RSA keys is ~50 KB
	MaxJWKSKeys  = 64
	// MaxAssertionLen bounds a client assertion: a Kubernetes service
	// account token is ~1.2 KB, a GitHub Actions token ~2 KB.
	MaxAssertionLen = 16 << 10
)

// Algorithms a client assertion may be signed with. AlgEd25519 is EdDSA
// over Ed25519 under its RFC 9864 name, which Node's openid-client v6 sends.
const (
	AlgPS256   = "PS256"
	AlgEd25519 = "Ed25519"
)

// AssertionAlgorithms are the JWS algorithms accepted on client assertions
// (discovery's token_endpoint_auth_signing_alg_values_supported): never
// none, never HS*, whose key would be a shared secret.
var AssertionAlgorithms = []string{AlgEdDSA, AlgEd25519, AlgES256, AlgRS256, AlgPS256}

// jwkIn is what a JWK may carry when read: the public members of jwk, and
// the private ones, only to refuse a set that has them.
type jwkIn struct {
	jwk
	D   string `json:"d"`
	P   string `json:"p"`
	Q   string `json:"q"`
	K   string `json:"k"` // oct: a shared secret
	Oth any    `json:"oth"`
}

// publicJWK is a parsed public key.
type publicJWK struct {
	kid string
	alg string // the key's alg member; "" allows every algorithm of its type
	key crypto.PublicKey
	raw jwk // its members, as they are written back (public only)
}

// algsFor lists the JWS algorithms a key of this type verifies.
func algsFor(pub crypto.PublicKey) []string {
	switch pub.(type) {
	case ed25519.PublicKey:
		return []string{AlgEdDSA, AlgEd25519}
	case *ecdsa.PublicKey:
		return []string{AlgES256}
	case *rsa.PublicKey:
		return []string{AlgRS256, AlgPS256}
	}
	return nil
}

// allows reports whether k may verify a JWS signed with alg: alg fits the
// key's type, and the key's own alg, when it names one, is alg (EdDSA and
// Ed25519 being one algorithm under two names).
func (k publicJWK) allows(alg string) bool {
	if !slices.Contains(algsFor(k.key), alg) {
		return false
	}
	if k.alg == "" || k.alg == alg {
		return true
	}
	return sameEdDSA(k.alg, alg)
}

func sameEdDSA(a, b string) bool {
	return (a == AlgEdDSA || a == AlgEd25519) && (b == AlgEdDSA || b == AlgEd25519)
}

// parseJWK reads one public key: OKP Ed25519, EC P-256 or RSA of 2048 to
// 8192 bits, whose use, if given, is a signature's ("sig", or SPIFFE's
// "jwt-svid"). A key with private members is refused: whoever holds its
// set could sign as its owner.
func parseJWK(k jwkIn) (publicJWK, error) {
	if k.D != "" || k.P != "" || k.Q != "" || k.Oth != nil {
		return publicJWK{}, errors.New("it holds a private key (\"d\"): give the public key only")
	}
	if k.Kty == "oct" || k.K != "" {
		return publicJWK{}, errors.New("it is a shared secret (kty oct): only public keys are accepted")
	}
	if !signatureUse(k.Use) {
		return publicJWK{}, fmt.Errorf("its use is %q, not sig", clipText(k.Use))
	}
	if k.Alg != "" && !slices.Contains(AssertionAlgorithms, k.Alg) {
		return publicJWK{}, fmt.Errorf("unsupported alg %q (supported: EdDSA, Ed25519, ES256, RS256, PS256)", clipText(k.Alg))
	}
	if len(k.Kid) > 256 || !storableText(k.Kid) {
		return publicJWK{}, errors.New("kid must be at most 256 bytes of UTF-8")
	}
	b64 := base64.RawURLEncoding.DecodeString
	var pub crypto.PublicKey
	out := jwk{Kty: k.Kty, Use: k.Use, Alg: k.Alg, Kid: k.Kid}
	switch {
	case k.Kty == "OKP" && k.Crv == "Ed25519":
		x, err := b64(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return publicJWK{}, errors.New("bad Ed25519 key: x must be 32 bytes, base64url")
		}
		pub = ed25519.PublicKey(x)
		out.Crv, out.X = k.Crv, k.X
	case k.Kty == "EC" && k.Crv == "P-256":
		x, err1 := b64(k.X)
		y, err2 := b64(k.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return publicJWK{}, errors.New("bad P-256 key: x and y must be 32 bytes each, base64url")
		}
		p, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return publicJWK{}, errors.New("bad P-256 key: not a point on the curve")
		}
		pub = p
		out.Crv, out.X, out.Y = k.Crv, k.X, k.Y
	case k.Kty == "RSA":
		n, err1 := b64(k.N)
		e, err2 := b64(k.E)
		switch {
		case err1 != nil || err2 != nil:
			return publicJWK{}, errors.New("bad RSA key: n and e must be base64url")
		case len(n) == 0 || n[0] == 0:
			return publicJWK{}, errors.New("bad RSA key: n has leading zero bytes")
		case len(n) < 256 || len(n) > 1024:
			// Below 2048 bits is breakable; above 8192 makes each
			// verification cost a caller could use to tire us.
			return publicJWK{}, fmt.Errorf("RSA keys must have 2048 to 8192 bits, not %d", len(n)*8)
		case len(e) == 0 || len(e) > 4:
			return publicJWK{}, errors.New("bad RSA key: e is not a small exponent")
		}
		exp := new(big.Int).SetBytes(e).Int64()
		if exp < 3 || exp%2 == 0 || exp > 1<<31-1 {
			return publicJWK{}, errors.New("bad RSA key: e must be odd and at least 3")
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp)}
		out.N, out.E = k.N, k.E
	case k.Kty == "OKP" || k.Kty == "EC":
		return publicJWK{}, fmt.Errorf("unsupported curve %q (supported: Ed25519, P-256)", clipText(k.Crv))
	default:
		return publicJWK{}, fmt.Errorf("unsupported key type %q (supported: OKP, EC, RSA)", clipText(k.Kty))
	}
	pk := publicJWK{kid: k.Kid, alg: k.Alg, key: pub, raw: out}
	if k.Alg != "" && !pk.allows(k.Alg) {
		return publicJWK{}, fmt.Errorf("alg %s does not fit a %s key", k.Alg, k.Kty)
	}
	return pk, nil
}

// signatureUse reports whether a key's use lets it verify signatures: none
// given, "sig", or a SPIFFE bundle's "jwt-svid".
func signatureUse(use string) bool {
	return use == "" || use == "sig" || use == "jwt-svid"
}

// jwkSet is a parsed JWK Set.
type jwkSet []publicJWK

// parseJWKSet reads a JWK Set of at most MaxJWKSBytes and MaxJWKSKeys
// keys. strict (a set an operator registers) refuses the set for any key
// it cannot use and for two keys with one kid, naming the key; otherwise
// (a set fetched from a jwks_uri, which may carry keys for other uses)
// such keys are skipped. Either way keys for another use than signatures
// are skipped, a private key is refused, and a set without a usable key is
// refused.
// A SPIFFE bundle is a JWK Set with members of its own, which are ignored.
func parseJWKSet(b []byte, strict bool) (jwkSet, error) {
	if len(b) > MaxJWKSBytes {
		return nil, fmt.Errorf("the JWK Set is larger than %d bytes", MaxJWKSBytes)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Keys == nil {
		return nil, errors.New(`not a JWK Set: want a JSON object {"keys": [...]}`)
	}
	if len(doc.Keys) > MaxJWKSKeys {
		return nil, fmt.Errorf("the JWK Set has %d keys; at most %d are accepted", len(doc.Keys), MaxJWKSKeys)
	}
	set := make(jwkSet, 0, len(doc.Keys))
	for i, raw := range doc.Keys {
		var in jwkIn
		err := json.Unmarshal(raw, &in)
		var k publicJWK
		if err == nil && in.D == "" && in.K == "" && !signatureUse(in.Use) {
			continue // for another use (enc, a SPIFFE bundle's x509-svid): not ours to judge
		}
		if err == nil {
			k, err = parseJWK(in)
		} else {
			err = errors.New("not a JSON object of string members")
		}
		if err == nil && strict && in.Kid != "" && set.hasKid(in.Kid) {
			err = errors.New("another key has the same kid")
		}
		if err != nil {
			if strict || in.D != "" || in.K != "" {
				// A private key is refused even from a jwks_uri: whoever
				// serves it has published what signs as the client.
				return nil, fmt.Errorf("key %d%s: %w", i+1, kidNote(in.Kid), err)
			}
			continue
		}
		set = append(set, k)
	}
	if len(set) == 0 {
		return nil, errors.New("the JWK Set has no usable key (Ed25519, P-256 or RSA, for signatures)")
	}
	return set, nil
}

func kidNote(kid string) string {
	if kid == "" {
		return ""
	}
	return fmt.Sprintf(" (kid %q)", clipText(kid))
}

func (s jwkSet) hasKid(kid string) bool {
	for _, k := range s {
		if k.kid == kid {
			return true
		}
	}
	return false
}

// candidates returns the keys that may verify a JWS with kid and alg: the
// keys with that kid, or, for a JWS without kid, every key.
func (s jwkSet) candidates(kid, alg string) []publicJWK {
	var out []publicJWK
	for _, k := range s {
		if (kid == "" || k.kid == kid) && k.allows(alg) {
			out = append(out, k)
		}
	}
	return out
}

// encode writes the set back with public members only: what is stored
// and shown of a registered set.
func (s jwkSet) encode() []byte {
	keys := make([]jwk, len(s))
	for i, k := range s {
		keys[i] = k.raw
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(struct {
		Keys []jwk `json:"keys"`
	}{keys})
	return bytes.TrimSpace(buf.Bytes())
}

// clipText bounds a value read from a caller's document for a message.
func clipText(s string) string {
	const most = 128
	if len(s) <= most {
		return s
	}
	return s[:most] + "…"
}
