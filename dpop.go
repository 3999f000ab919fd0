package authsvc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// DPoP (RFC 9449): a client proves, request by request, that it holds the
// private key a token is bound to. A proof is a JWS in compact form whose
// header carries the public key that signed it; its claims name the
// request (htm, htu), when it was made (iat), a unique id (jti) and, at a
// resource server, the hash of the access token it goes with (ath).

// Limits and defaults of DPoP proofs.
const (
	// MaxDPoPProofLen bounds a DPoP header: a proof with an 8192-bit RSA
	// key in its header is about 4 KB.
	MaxDPoPProofLen = 8 << 10
	// DefaultDPoPWindow is how far a proof's iat may be from now, either
	// way, when Config.DPoPWindow is zero.
	DefaultDPoPWindow = 60 * time.Second
	// maxHTULen bounds a proof's htu and htm.
	maxHTULen = 2048
)

// DPoPAlgorithms are the JWS algorithms accepted on DPoP proofs
// (discovery's dpop_signing_alg_values_supported): asymmetric only, never
// none or HS*.
var DPoPAlgorithms = []string{AlgEdDSA, AlgEd25519, AlgES256, AlgRS256, AlgPS256}

// ErrInvalidDPoPProof: a DPoP proof is missing where one is required,
// malformed, badly signed, for another request, stale, replayed, or not
// for the key or token it is presented with (RFC 9449's
// invalid_dpop_proof).
var ErrInvalidDPoPProof = errors.New("authsvc: invalid DPoP proof")

// DPoPRequest is what a DPoP proof must match.
type DPoPRequest struct {
	// Method is the HTTP method of the request (htm).
	Method string
	// URL is the request's URL as the client addressed it: scheme, host
	// and path are compared with htu; query and fragment are ignored.
	// Behind a proxy that is the public URL, not the one the proxy called.
	URL *url.URL
	// AccessToken, at a resource server, is the token presented with the
	// proof: the proof's ath must be its hash. Empty at the token
	// endpoint, where a proof with an ath is refused.
	AccessToken string
	// Nonces, when set, requires the proof to carry a server nonce they
	// made that has not expired (RFC 9449 §8, §9); else the check fails
	// with a *DPoPNonceError naming the nonce to use. Nil: none is
	// required (an Authenticator then applies its Config).
	Nonces *DPoPNonces
}

// DPoPProof is a checked proof.
type DPoPProof struct {
	// Thumbprint is the RFC 7638 SHA-256 thumbprint of the proof's key,
	// base64url: a bound token's cnf.jkt.
	Thumbprint string
	ID         string    // jti
	IssuedAt   time.Time // iat
	// Nonce, when not empty, is a fresh server nonce to send the client
	// in the DPoP-Nonce response header: the one its proof carried
	// expires soon.
	Nonce string
}

// dpopProof is a parsed, not yet verified, DPoP proof.
type dpopProof struct {
	alg    string
	key    publicJWK
	signed string
	sig    []byte
	claims dpopClaims
}

type dpopClaims struct {
	ID       string  `json:"jti"`
	Method   string  `json:"htm"`
	URI      string  `json:"htu"`
	IssuedAt numeric `json:"iat"`
	ATH      string  `json:"ath"`
	Nonce    string  `json:"nonce"`
}

// dpopError refuses a proof with a message its sender may be shown.
func dpopError(format string, args ...any) error {
	return refuse(ErrInvalidDPoPProof, format, args...)
}

// parseDPoPProof reads a proof of at most MaxDPoPProofLen bytes: typ
// dpop+jwt, an alg of DPoPAlgorithms, a public jwk that alg fits, and its
// signature by that key. Its claims are read, not yet judged.
func parseDPoPProof(s string) (*dpopProof, error) {
	if s == "" || len(s) > MaxDPoPProofLen {
		return nil, dpopError("the DPoP proof must be 1 to %d bytes", MaxDPoPProofLen)
	}
	h, rest, ok1 := strings.Cut(s, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sig, ".") {
		return nil, dpopError("the DPoP proof is not a JWS in compact form (three base64url parts)")
	}
	enc := base64.RawURLEncoding
	hb, err1 := enc.DecodeString(h)
	pb, err2 := enc.DecodeString(p)
	sb, err3 := enc.DecodeString(sig)
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, dpopError("the DPoP proof is not a JWS: a part is not base64url")
	}
	var header struct {
		Typ  string          `json:"typ"`
		Alg  string          `json:"alg"`
		JWK  *jwkIn          `json:"jwk"`
		Crit json.RawMessage `json:"crit"`
	}
	if err := json.Unmarshal(hb, &header); err != nil {
		return nil, dpopError("the DPoP proof has a malformed JOSE header")
	}
	if header.Typ != "dpop+jwt" {
		return nil, dpopError("the DPoP proof's typ must be dpop+jwt, not %q", clipText(header.Typ))
	}
	if !slices.Contains(DPoPAlgorithms, header.Alg) {
		return nil, dpopError("the DPoP proof is signed with alg %q: accepted are %s (never none or HS*)",
			clipText(header.Alg), strings.Join(DPoPAlgorithms, ", "))
	}
	if header.Crit != nil {
		return nil, dpopError("the DPoP proof has a crit header, which is not supported")
	}
	if header.JWK == nil {
		return nil, dpopError("the DPoP proof has no jwk header")
	}
	key, err := parseJWK(*header.JWK)
	if err != nil {
		return nil, dpopError("the DPoP proof's jwk: %s", err)
	}
	if !key.allows(header.Alg) {
		return nil, dpopError("the DPoP proof's alg %s does not fit its %s key", header.Alg, header.JWK.Kty)
	}
	pr := &dpopProof{alg: header.Alg, key: key, signed: s[:len(h)+1+len(p)], sig: sb}
	if signingMethods[pr.alg].Verify(pr.signed, pr.sig, key.key) != nil {
		return nil, dpopError("the DPoP proof's signature does not verify with its jwk")
	}
	if err := json.Unmarshal(pb, &pr.claims); err != nil {
		return nil, dpopError("the DPoP proof's claims are malformed (jti, htm, htu and ath strings; iat a number)")
	}
	return pr, nil
}

// dpopReplay records a proof's (thumbprint, jti) until a time, reporting
// whether it is its first use.
type dpopReplay func(ctx context.Context, jkt, jti string, until, now time.Time) (bool, error)

// checkDPoPProof parses proof and judges it against req at now: htm, htu,
// iat within window, ath, and a jti not used before (by replay).
func checkDPoPProof(ctx context.Context, proof string, req DPoPRequest, now time.Time, window time.Duration, replay dpopReplay) (*DPoPProof, error) {
	pr, err := parseDPoPProof(proof)
	if err != nil {
		return nil, err
	}
	cl := pr.claims
	if cl.ID == "" || len(cl.ID) > maxJTILen || !storableText(cl.ID) {
		return nil, dpopError("the DPoP proof's jti must be 1 to %d bytes of UTF-8", maxJTILen)
	}
	if cl.Method == "" || len(cl.Method) > maxHTULen || cl.Method != req.Method {
		return nil, dpopError("the DPoP proof's htm is not this request's method (%s)", clipText(req.Method))
	}
	if len(cl.URI) > maxHTULen || !sameHTU(cl.URI, req.URL) {
		return nil, dpopError("the DPoP proof's htu is not this request's URL (scheme, host and path)")
	}
	if cl.IssuedAt == 0 {
		return nil, dpopError("the DPoP proof has no iat")
	}
	iat := time.Unix(int64(cl.IssuedAt), 0)
	if d := iat.Sub(now); d > window || d < -window {
		return nil, dpopError("the DPoP proof's iat is not within %s of now: make a fresh proof for each request", window)
	}
	if req.AccessToken == "" {
		if cl.ATH != "" {
			return nil, dpopError("the DPoP proof has an ath, but no access token is presented with it")
		}
	} else {
		want := AccessTokenHash(req.AccessToken)
		if subtle.ConstantTimeCompare([]byte(cl.ATH), []byte(want)) != 1 {
			return nil, dpopError("the DPoP proof's ath is not the hash of the access token presented with it")
		}
	}
	var next string
	if req.Nonces != nil {
		// Judged after the rest, so that a proof that is wrong anyway is
		// refused as such, and before the jti is used up.
		if next, err = req.Nonces.check(cl.Nonce); err != nil {
			return nil, err
		}
	}
	jkt := pr.key.thumbprint()
	// A proof stays usable until its iat leaves the window.
	fresh, err := replay(ctx, jkt, cl.ID, iat.Add(window), now)
	if err != nil {
		return nil, err
	}
	if !fresh {
		return nil, dpopError("replay: this DPoP proof (jti %q) was used before; make a fresh proof for each request", clipText(cl.ID))
	}
	return &DPoPProof{Thumbprint: jkt, ID: cl.ID, IssuedAt: iat, Nonce: next}, nil
}

// AccessTokenHash is a DPoP proof's ath for token: base64url(SHA-256).
func AccessTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// sameHTU reports whether htu names u (RFC 9449 §4.3): the same scheme,
// host and port (the scheme's default one written or not) and path, case
// aside in scheme and host; query and fragment are ignored.
func sameHTU(htu string, u *url.URL) bool {
	if u == nil {
		return false
	}
	h, err := url.Parse(htu)
	if err != nil || h.Opaque != "" || h.User != nil {
		return false
	}
	hs, hh, hp := normalURL(h)
	us, uh, up := normalURL(u)
	return hs != "" && hh != "" && hs == us && hh == uh && hp == up
}

// normalURL returns u's scheme and host in lower case, the host without
// the scheme's default port, and its path ("/" when empty).
func normalURL(u *url.URL) (scheme, host, path string) {
	scheme = strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", "", ""
	}
	host = strings.ToLower(u.Host)
	if h, port, err := net.SplitHostPort(host); err == nil {
		if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
			host = h
			if strings.Contains(h, ":") {
				host = "[" + h + "]"
			}
		}
	}
	path = u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme, host, path
}

// thumbprint is the key's RFC 7638 SHA-256 thumbprint, base64url: the
// required members of its type, in lexical order, without white space.
// parseJWK has checked every member, so none needs escaping.
func (k publicJWK) thumbprint() string {
	var b string
	switch r := k.raw; r.Kty {
	case "EC":
		b = `{"crv":"` + r.Crv + `","kty":"EC","x":"` + r.X + `","y":"` + r.Y + `"}`
	case "OKP":
		b = `{"crv":"` + r.Crv + `","kty":"OKP","x":"` + r.X + `"}`
	case "RSA":
		b = `{"e":"` + r.E + `","kty":"RSA","n":"` + r.N + `"}`
	}
	sum := sha256.Sum256([]byte(b))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// CheckDPoPProof checks a DPoP proof (the DPoP request header) against the
// request it came with, at the token endpoint (req.AccessToken empty) or
// at a resource server. A jti is refused on every instance sharing the
// store for as long as its proof's iat is within Config.DPoPWindow. The
// proof's key is not compared with any token's cnf: the caller does that
// with the returned Thumbprint (Middleware does). Without req.Nonces, a
// server nonce is required as Config.DPoPTokenNonce and DPoPResourceNonce
// say. Errors wrap ErrInvalidDPoPProof, ErrUseDPoPNonce, or ErrUnavailable
// when the store cannot record the jti.
func (a *Authenticator) CheckDPoPProof(ctx context.Context, proof string, req DPoPRequest) (*DPoPProof, error) {
	if req.Nonces == nil {
		if ks := a.keys.Load(); req.AccessToken == "" && a.cfg.DPoPTokenNonce {
			req.Nonces = ks.tokenNonces
		} else if req.AccessToken != "" && a.cfg.DPoPResourceNonce {
			req.Nonces = ks.resourceNonces
		}
	}
	return checkDPoPProof(ctx, proof, req, a.now(), a.cfg.DPoPWindow, a.useDPoPJTI)
}

// useDPoPJTI records a proof's jti in the table of used assertion ids,
// under a client_id no client can have (it has a space): "dpop " and the
// key's thumbprint.
func (a *Authenticator) useDPoPJTI(ctx context.Context, jkt, jti string, until, now time.Time) (bool, error) {
	return a.store.useJTI(ctx, "dpop "+jkt, jti, until, now)
}

// dpopJTIs is a per-process replay window for proofs checked without a
// store (RemoteVerifier): each (thumbprint, jti) until its proof's iat
// leaves the window. Instances do not share it.
type dpopJTIs struct {
	mu    sync.Mutex           // guards seen and swept
	seen  map[string]time.Time // thumbprint + " " + jti → until
	swept time.Time            // expired entries were last deleted
}

// maxDPoPJTIs bounds dpopJTIs (about 100 bytes an entry): beyond it, new
// proofs are refused until entries expire (fail closed), rather than
// memory growing without end.
const maxDPoPJTIs = 1 << 20

func (s *dpopJTIs) use(_ context.Context, jkt, jti string, until, now time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = make(map[string]time.Time)
	}
	k := jkt + " " + jti
	if t, ok := s.seen[k]; ok && !t.Before(now) {
		return false, nil
	}
	// Expired entries go once a minute, or once a second when the map is
	// full: a sweep costs a pass over the map, which must not be paid on
	// every request.
	if since := now.Sub(s.swept); since >= time.Minute || since < 0 || (len(s.seen) >= maxDPoPJTIs && since >= time.Second) {
		for k, t := range s.seen {
			if t.Before(now) {
				delete(s.seen, k)
			}
		}
		s.swept = now
	}
	if len(s.seen) >= maxDPoPJTIs {
		return false, wrapErr(ErrUnavailable, "too many DPoP proofs within the window")
	}
	s.seen[k] = until
	return true, nil
}

// DPoPChallenge is the WWW-Authenticate challenge of RFC 9449 §7.1: the
// realm, the error code when there is one, and the accepted algorithms.
// Neither realm nor errCode may come from the request.
func DPoPChallenge(realm, errCode string) string {
	c := `DPoP realm="` + realm + `"`
	if errCode != "" {
		c += `, error="` + errCode + `"`
	}
	return c + `, algs="` + strings.Join(DPoPAlgorithms, " ") + `"`
}
