package authsvc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash/maphash"
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
	// SharedReplay, at a resource, records the proof's jti in the store
	// whatever Config.DPoPSharedReplay says, so that the proof is refused
	// again by every instance: for the few requests whose replay at
	// another instance would matter more than a store write (authd's
	// admin routes: a replayed secret rotation answers with the secret).
	SharedReplay bool
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

// dpopProof is a parsed DPoP proof whose signature verifies.
type dpopProof struct {
	*dpopHeader
	claims dpopClaims
}

// dpopHeader is a proof's JOSE header, read: its alg, its key and the
// key's thumbprint.
type dpopHeader struct {
	alg string
	key publicJWK
	jkt string
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

// dpopHeaders remembers the headers of proofs that verified, by their
// bytes: a client signs its proofs with one key, so each of its proofs
// has the same header, which is then read (base64, JSON, the jwk, the
// thumbprint) once. It is bounded (emptied when full), and a header goes
// in only once a proof with it verifies, so strangers cannot fill it for
// free. The zero value is ready; a nil one remembers nothing.
type dpopHeaders struct {
	mu sync.RWMutex // guards m
	m  map[string]*dpopHeader
}

// maxDPoPHeaders bounds dpopHeaders: at most ~8 MB of headers.
const maxDPoPHeaders = 1024

func (c *dpopHeaders) get(h string) *dpopHeader {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[h]
}

func (c *dpopHeaders) put(h string, dh *dpopHeader) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxDPoPHeaders {
		c.m = make(map[string]*dpopHeader)
	}
	c.m[h] = dh
}

// parseDPoPProof reads a proof of at most MaxDPoPProofLen bytes: typ
// dpop+jwt, an alg of DPoPAlgorithms, a public jwk that alg fits, and its
// signature by that key. Its claims are read, not yet judged. Headers
// (when not nil) has the headers read before.
func parseDPoPProof(s string, headers *dpopHeaders) (*dpopProof, error) {
	if s == "" || len(s) > MaxDPoPProofLen {
		return nil, dpopError("the DPoP proof must be 1 to %d bytes", MaxDPoPProofLen)
	}
	h, rest, ok1 := strings.Cut(s, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sig, ".") {
		return nil, dpopError("the DPoP proof is not a JWS in compact form (three base64url parts)")
	}
	enc := base64.RawURLEncoding
	pb, err1 := enc.DecodeString(p)
	sb, err2 := enc.DecodeString(sig)
	if err1 != nil || err2 != nil {
		return nil, dpopError("the DPoP proof is not a JWS: a part is not base64url")
	}
	dh := headers.get(h)
	known := dh != nil
	if !known {
		var err error
		if dh, err = parseDPoPHeader(h); err != nil {
			return nil, err
		}
	}
	if signingMethods[dh.alg].Verify(s[:len(h)+1+len(p)], sb, dh.key.key) != nil {
		return nil, dpopError("the DPoP proof's signature does not verify with its jwk")
	}
	if !known {
		headers.put(h, dh)
	}
	pr := &dpopProof{dpopHeader: dh}
	if err := parseDPoPClaims(pb, &pr.claims); err != nil {
		return nil, dpopError("the DPoP proof's claims are malformed (jti, htm, htu, ath and nonce strings; iat a number)")
	}
	return pr, nil
}

// parseDPoPHeader reads a proof's JOSE header (base64url): typ dpop+jwt,
// an alg of DPoPAlgorithms, no crit, and a public jwk that alg fits.
func parseDPoPHeader(h string) (*dpopHeader, error) {
	hb, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
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
	return &dpopHeader{alg: header.Alg, key: key, jkt: key.thumbprint()}, nil
}

// dpopReplay records a proof's (thumbprint, jti) until a time, reporting
// whether it is its first use.
type dpopReplay func(ctx context.Context, jkt, jti string, until, now time.Time) (bool, error)

// checkDPoPProof parses proof (with headers, which may be nil) and judges
// it against req at now: htm, htu, iat within window, ath, the nonce, and
// a jti not used before (by replay).
func checkDPoPProof(ctx context.Context, proof string, req DPoPRequest, now time.Time, window time.Duration, headers *dpopHeaders, replay dpopReplay) (*DPoPProof, error) {
	pr, err := parseDPoPProof(proof, headers)
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
	jkt := pr.jkt
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
// at a resource server. A jti is refused a second time for as long as its
// proof's iat is within Config.DPoPWindow: at the token endpoint on every
// instance sharing the store; at a resource by this process, or with
// Config.DPoPSharedReplay or req.SharedReplay by every instance (a store
// write each). The proof's key is not compared with any token's cnf: the
// caller does that with the returned Thumbprint (Middleware does). Without
// req.Nonces, a server nonce is required as Config.DPoPTokenNonce and
// DPoPResourceNonce say. Errors wrap ErrInvalidDPoPProof, ErrUseDPoPNonce,
// or ErrUnavailable when the store cannot record the jti.
func (a *Authenticator) CheckDPoPProof(ctx context.Context, proof string, req DPoPRequest) (*DPoPProof, error) {
	if req.Nonces == nil {
		if ks := a.keys.Load(); req.AccessToken == "" && a.cfg.DPoPTokenNonce {
			req.Nonces = ks.tokenNonces
		} else if req.AccessToken != "" && a.cfg.DPoPResourceNonce {
			req.Nonces = ks.resourceNonces
		}
	}
	replay := a.useDPoPJTI
	if req.AccessToken != "" && !a.cfg.DPoPSharedReplay && !req.SharedReplay {
		replay = a.dpop.seen.use
	}
	return checkDPoPProof(ctx, proof, req, a.now(), a.cfg.DPoPWindow, &a.dpop.headers, replay)
}

// useDPoPJTI records a proof's jti in the table of used assertion ids,
// under a client_id no client can have (it has a space): "dpop " and the
// key's thumbprint.
func (a *Authenticator) useDPoPJTI(ctx context.Context, jkt, jti string, until, now time.Time) (bool, error) {
	return a.store.useJTI(ctx, "dpop "+jkt, jti, until, now)
}

// dpopState is what a checker of proofs keeps in its process: the
// headers it has read and its replay window.
type dpopState struct {
	headers dpopHeaders
	seen    dpopJTIs
}

// dpopJTIs is a per-process replay window for proofs: each (thumbprint,
// jti) is remembered, as a 64-bit hash, at least until its proof's iat
// leaves the window. Instances do not share it. It is sharded, one lock a
// shard, so that concurrent checks rarely wait, and time-bucketed: an
// entry goes into the bucket of its expiry (jtiBucket wide), and a bucket
// is dropped whole once its time has passed, so no request pays for a
// sweep. A hash collision (about one in 2^64 per pair) refuses a good
// proof: it fails closed. The zero value is ready.
type dpopJTIs struct {
	seedOnce sync.Once
	seed     maphash.Seed
	shards   [jtiShards]jtiShard
}

type jtiShard struct {
	mu      sync.Mutex                    // guards buckets and n
	buckets map[int64]map[uint64]struct{} // by expiry, in jtiBucket units
	n       int                           // entries in buckets
}

const (
	jtiShards = 64
	jtiBucket = 10 * time.Second
	// maxDPoPJTIs bounds dpopJTIs (about 20 bytes an entry): beyond it, a
	// shard refuses new proofs until its oldest bucket expires (fail
	// closed), rather than memory growing without end.
	maxDPoPJTIs = 1 << 22
)

// drop deletes the buckets whose time has passed at now.
func (sh *jtiShard) drop(now time.Time) {
	cur := now.UnixNano() / int64(jtiBucket)
	for b, set := range sh.buckets {
		if b < cur {
			sh.n -= len(set)
			delete(sh.buckets, b)
		}
	}
}

func (s *dpopJTIs) use(_ context.Context, jkt, jti string, until, now time.Time) (bool, error) {
	s.seedOnce.Do(func() { s.seed = maphash.MakeSeed() })
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString(jkt)
	h.WriteByte(0)
	h.WriteString(jti)
	k := h.Sum64()
	sh := &s.shards[k%jtiShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.buckets == nil {
		sh.buckets = make(map[int64]map[uint64]struct{})
	}
	sh.drop(now)
	for _, set := range sh.buckets { // a handful: the window over jtiBucket
		if _, ok := set[k]; ok {
			return false, nil
		}
	}
	if sh.n >= maxDPoPJTIs/jtiShards {
		return false, wrapErr(ErrUnavailable, "too many DPoP proofs within the window")
	}
	b := (until.UnixNano() + int64(jtiBucket) - 1) / int64(jtiBucket) // rounded up: kept at least until then
	set := sh.buckets[b]
	if set == nil {
		set = make(map[uint64]struct{})
		sh.buckets[b] = set
	}
	set[k] = struct{}{}
	sh.n++
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
