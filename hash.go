package authsvc

// Client-secret hashing. Secrets are stored as PHC-style strings:
//
//	$sha256$<b64>                  server-generated secret, no pepper
//	$hmac-sha256$<b64>             server-generated secret, HMAC-SHA256 under the pepper
//	$argon2id$v=19$m=..,t=..,p=..$<salt b64>$<hash b64>   caller-chosen secret
//	$sha1$<hex> or bare <hex>      legacy: unsalted SHA-1 from the seed service
//
// b64 is unpadded standard base64 (base64.RawStdEncoding), as the PHC format says.

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/crypto/argon2"
)

// Limits on client secrets.
const (
	MinChosenSecretLen = 16   // characters (runes) a caller-chosen secret must have at least
	MaxSecretLen       = 1024 // bytes; longer secrets are refused before hashing (DoS limit)
	// MinChosenSecretDistinct is how many different characters a
	// caller-chosen secret must have at least: "aaaaaaaaaaaaaaaa" and
	// "abababababababab" are long enough but guessed at once.
	MinChosenSecretDistinct = 5
)

// Errors about client secrets and their stored hashes.
var (
	// errSecretTooShort: a caller-chosen secret shorter than MinChosenSecretLen,
	// which would be guessable however slowly it is hashed.
	errSecretTooShort = errors.New("authsvc: client secret must be at least 16 characters")
	// errSecretTooLong: a secret longer than MaxSecretLen, refused so that
	// nobody can make the service hash megabytes.
	errSecretTooLong = errors.New("authsvc: client secret is longer than 1024 bytes")
	// errSecretBlank: a caller-chosen secret of white space only.
	errSecretBlank = errors.New("authsvc: client secret must not be only white space")
	// errSecretFewCharacters: a caller-chosen secret with fewer than
	// MinChosenSecretDistinct different characters.
	errSecretFewCharacters = errors.New("authsvc: client secret must have at least 5 different characters")
	// errSecretRepeated: a caller-chosen secret that is a shorter string
	// repeated ("passwordpassword", "abcabcabcabcabca").
	errSecretRepeated = errors.New("authsvc: client secret must not be a shorter string repeated")
	// errUnknownHash: a stored hash that is malformed, of an unknown scheme or
	// unusable with this configuration. Parse errors wrap it.
	errUnknownHash = errors.New("authsvc: unrecognised secret hash format")
)

// isChosenSecretRefusal reports whether err is checkChosenSecret's: the
// caller's mistake, not the hasher's.
func isChosenSecretRefusal(err error) bool {
	for _, e := range []error{errSecretTooShort, errSecretTooLong, errSecretBlank, errSecretFewCharacters, errSecretRepeated} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Hash scheme identifiers, the <id> of "$<id>$...".
const (
	schemeArgon2id = "argon2id"
	schemeSHA256   = "sha256"
	schemeHMAC     = "hmac-sha256"
	schemeSHA1     = "sha1"
)

// Current argon2id policy for caller-chosen secrets: OWASP's minimum
// (19 MiB, 2 passes, 1 lane), ~20-50 ms per hash. Stored hashes weaker than
// this are re-hashed at the next successful login.
const (
	argon2Memory  = 19456 // KiB
	argon2Time    = 2
	argon2Threads = 1
	argon2SaltLen = 16 // bytes
	argon2KeyLen  = 32 // bytes
)

// Bounds on argon2id parameters read back from the store, so that a corrupt
// or hostile row cannot make a login allocate gigabytes or spin for minutes.
const (
	maxArgon2Memory  = 1 << 20 // KiB (1 GiB)
	maxArgon2Time    = 16
	maxArgon2Threads = 16
	minPHCSaltLen    = 8
	maxPHCSaltLen    = 64
	minPHCHashLen    = 16
	maxPHCHashLen    = 64
	maxPHCLen        = 512 // bytes; the longest valid string is about 230
)

// Verified-secret cache policy: long enough that steady token traffic skips
// argon2id, short enough that a revoked secret stops working soon.
const (
	verifiedTTL = 5 * time.Minute
	maxVerified = 10000
)

// generatedSecretLen is the length of a generateSecret output: 32 bytes in
// unpadded base64url.
const generatedSecretLen = 43

// b64 is the PHC string encoding of salts and hashes.
var b64 = base64.RawStdEncoding

// generateSecret returns a new client secret: 32 bytes from crypto/rand
// (256 bits, so a fast hash is enough), base64url without padding (43 chars).
func generateSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("authsvc: generating secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// secretHasher hashes and verifies client secrets. It holds the optional
// pepper and a cache of recent successful argon2id verifications. It is safe
// for concurrent use.
type secretHasher struct {
	pepper   []byte           // HMAC key for generated secrets; nil means none
	cacheKey []byte           // random per-process HMAC key for verified-cache keys
	now      func() time.Time // clock for cache expiry; tests replace it

	mu       sync.Mutex             // guards verified
	verified map[[32]byte]time.Time // cache key -> expiry

	dummyOnce      sync.Once // builds the two dummy hashes below on first use
	dummyGenerated string    // stands in for a generated secret's hash in dummyVerify
	dummyChosen    string    // stands in for an argon2id hash in dummyVerify
}

// newSecretHasher returns a hasher; an empty pepper means none. The pepper is
// copied so that the caller's slice can change without effect.
func newSecretHasher(pepper []byte) *secretHasher {
	h := &secretHasher{
		cacheKey: make([]byte, 32),
		now:      time.Now,
		verified: make(map[[32]byte]time.Time),
	}
	if len(pepper) > 0 {
		h.pepper = bytes.Clone(pepper)
	}
	rand.Read(h.cacheKey) // never fails: crypto/rand crashes the program instead
	return h
}

// hashGenerated hashes a server-generated secret. It has 256 bits of entropy,
// so a slow hash would add only CPU cost: SHA-256, or HMAC-SHA256 under the
// pepper so that a stolen database alone cannot check guesses.
func (h *secretHasher) hashGenerated(secret string) string {
	if h.pepper != nil {
		return "$" + schemeHMAC + "$" + b64.EncodeToString(h.mac(secret))
	}
	sum := sha256.Sum256([]byte(secret))
	return "$" + schemeSHA256 + "$" + b64.EncodeToString(sum[:])
}

// hashChosen checks a new caller-chosen secret (checkChosenSecret) and
// hashes it with argon2id, since people choose guessable secrets.
func (h *secretHasher) hashChosen(secret string) (string, error) {
	if err := checkChosenSecret(secret); err != nil {
		return "", err
	}
	return h.hashArgon2(secret)
}

// checkChosenSecret is the rule for a new caller-chosen secret: at most
// MaxSecretLen bytes and at least MinChosenSecretLen characters, not only
// white space, at least MinChosenSecretDistinct different characters, and
// not a shorter string repeated (the last copy may be cut short:
// "passwordpassword", "abcdeabcdeabcdea"). It guards new secrets only:
// stored ones verify whatever they are, and a legacy secret that breaks it
// still has its hash upgraded.
func checkChosenSecret(secret string) error {
	if len(secret) > MaxSecretLen {
		return errSecretTooLong
	}
	runes := []rune(secret)
	if len(runes) < MinChosenSecretLen {
		return errSecretTooShort
	}
	blank := true
	distinct := make(map[rune]struct{}, MinChosenSecretDistinct)
	for _, r := range runes {
		blank = blank && unicode.IsSpace(r)
		if len(distinct) < MinChosenSecretDistinct {
			distinct[r] = struct{}{}
		}
	}
	switch {
	case blank:
		return errSecretBlank
	case len(distinct) < MinChosenSecretDistinct:
		return errSecretFewCharacters
	case smallestPeriod(runes) <= len(runes)/2:
		return errSecretRepeated
	}
	return nil
}

// smallestPeriod returns the smallest p > 0 such that s[i] == s[i-p] for
// every i >= p: s is its first p characters repeated, the last copy
// possibly cut short. It is len(s) minus the longest proper prefix of s
// that is also a suffix (the Knuth-Morris-Pratt failure function), found
// in linear time.
func smallestPeriod(s []rune) int {
	if len(s) == 0 {
		return 0
	}
	fail := make([]int, len(s)) // fail[i]: longest proper border of s[:i+1]
	for i, k := 1, 0; i < len(s); i++ {
		for k > 0 && s[i] != s[k] {
			k = fail[k-1]
		}
		if s[i] == s[k] {
			k++
		}
		fail[i] = k
	}
	return len(s) - fail[len(s)-1]
}

// hashArgon2 hashes a secret with argon2id under the current policy, without
// checkChosenSecret: upgrading a short or weak legacy secret still
// strengthens its storage.
func (h *secretHasher) hashArgon2(secret string) (string, error) {
	if len(secret) > MaxSecretLen {
		return "", errSecretTooLong
	}
	salt := make([]byte, argon2SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("authsvc: generating salt: %w", err)
	}
	p := phc{
		id: schemeArgon2id, version: argon2.Version,
		m: argon2Memory, t: argon2Time, p: argon2Threads,
		salt: salt,
		hash: argon2IDKey([]byte(secret), salt, argon2Time, argon2Memory, argon2Threads, argon2KeyLen),
	}
	return p.String(), nil
}

// verify checks secret against a stored hash in constant time. A wrong secret
// gives ok=false and no error; a stored hash that cannot be used gives an
// error wrapping errUnknownHash. needsRehash (set only when ok) asks the caller
// to store a fresh hash: legacy SHA-1, plain SHA-256 now that a pepper is
// configured, or argon2id weaker than the current policy.
func (h *secretHasher) verify(stored, secret string) (ok, needsRehash bool, err error) {
	if len(secret) <= MaxSecretLen && h.matchesSHA256(stored, secret) {
		return true, h.pepper != nil, nil
	}
	p, err := parsePHC(stored)
	if err != nil {
		return false, false, err
	}
	if len(secret) > MaxSecretLen {
		return false, false, nil
	}
	switch p.id {
	case schemeSHA1:
		sum := sha1.Sum([]byte(secret))
		ok = subtle.ConstantTimeCompare(sum[:], p.hash) == 1
		return ok, ok, nil
	case schemeSHA256:
		sum := sha256.Sum256([]byte(secret))
		ok = subtle.ConstantTimeCompare(sum[:], p.hash) == 1
		return ok, ok && h.pepper != nil, nil
	case schemeHMAC:
		if h.pepper == nil {
			return false, false, fmt.Errorf("%w: hmac-sha256 hash but no pepper configured", errUnknownHash)
		}
		return hmac.Equal(h.mac(secret), p.hash), false, nil
	case schemeArgon2id:
		ok = h.verifyArgon2(p, stored, secret)
		weaker := p.m < argon2Memory || p.t < argon2Time || p.p < argon2Threads ||
			len(p.salt) < argon2SaltLen || len(p.hash) < argon2KeyLen
		return ok, ok && weaker, nil
	}
	return false, false, fmt.Errorf("%w: unsupported scheme", errUnknownHash) // parsePHC returns no other id
}

// matchesSHA256 is the hot path of a generated secret's check: the stored
// text compared with the one the secret would have, without parsing it.
// Anything else (and a wrong secret) takes verify's full path, which also
// tells a corrupt hash from a wrong secret.
func (h *secretHasher) matchesSHA256(stored, secret string) bool {
	const prefix = "$" + schemeSHA256 + "$"
	if len(stored) != len(prefix)+b64EncodedSHA256Len || stored[:len(prefix)] != prefix {
		return false
	}
	sum := sha256.Sum256([]byte(secret))
	var want [len(prefix) + b64EncodedSHA256Len]byte
	copy(want[:], prefix)
	b64.Encode(want[len(prefix):], sum[:])
	return subtle.ConstantTimeCompare(want[:], []byte(stored)) == 1
}

// b64EncodedSHA256Len is the length of a SHA-256 sum in PHC base64.
const b64EncodedSHA256Len = (sha256.Size*8 + 5) / 6

// verifyArgon2 checks an argon2id hash, consulting the verified-secret cache
// first and filling it on success, so that steady traffic pays argon2id once
// per verifiedTTL. Wrong secrets are never cached.
func (h *secretHasher) verifyArgon2(p phc, stored, secret string) bool {
	k := h.verifiedKey(stored, secret)
	if h.cached(k) {
		return true
	}
	got := argon2IDKey([]byte(secret), p.salt, p.t, p.m, uint8(p.p), uint32(len(p.hash)))
	if subtle.ConstantTimeCompare(got, p.hash) != 1 {
		return false
	}
	h.remember(k)
	return true
}

// argon2Slots bounds how many argon2id computations run at once. Each
// allocates its memory parameter (19 MiB under the current policy) and
// keeps a core busy, so running more at once than there are cores adds no
// throughput, only memory: without the bound, 32 concurrent requests with a
// wrong chosen secret (or any secret for an unknown client_id, which pays
// the same argon2id in dummyVerify) took authd's RSS past 1 GB.
var argon2Slots = make(chan struct{}, runtime.GOMAXPROCS(0))

// argon2IDKey is argon2.IDKey within argon2Slots.
func argon2IDKey(secret, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
	argon2Slots <- struct{}{}
	defer func() { <-argon2Slots }()
	return argon2.IDKey(secret, salt, time, memory, threads, keyLen)
}

// mac is HMAC-SHA256 of secret under the pepper.
func (h *secretHasher) mac(secret string) []byte {
	m := hmac.New(sha256.New, h.pepper)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// dummyVerify spends the time a wrong-secret verify would, for an unknown
// client_id, so that response time does not reveal which ids exist. It runs
// verify itself against a dummy hash of the scheme such a secret would have.
func (h *secretHasher) dummyVerify(secret string) {
	h.dummyOnce.Do(h.makeDummies)
	stored := h.dummyChosen
	if isGeneratedShape(secret) {
		stored = h.dummyGenerated
	}
	h.verify(stored, secret)
}

// makeDummies builds dummyVerify's hashes from random bytes: no secret
// matches them, and building them costs no argon2id run.
func (h *secretHasher) makeDummies() {
	gen := phc{id: schemeSHA256, hash: make([]byte, sha256.Size)}
	if h.pepper != nil {
		gen.id = schemeHMAC
	}
	rand.Read(gen.hash)
	h.dummyGenerated = gen.String()

	chosen := phc{
		id: schemeArgon2id, version: argon2.Version,
		m: argon2Memory, t: argon2Time, p: argon2Threads,
		salt: make([]byte, argon2SaltLen), hash: make([]byte, argon2KeyLen),
	}
	rand.Read(chosen.salt)
	rand.Read(chosen.hash)
	h.dummyChosen = chosen.String()
}

// verifiedKey is the cache key for (stored, secret): an HMAC under a random
// per-process key, so the cache never holds the secret or a plain hash of it.
// Including stored makes a secret change invalidate old entries.
func (h *secretHasher) verifiedKey(stored, secret string) [32]byte {
	m := hmac.New(sha256.New, h.cacheKey)
	m.Write([]byte(stored))
	m.Write([]byte{0})
	m.Write([]byte(secret))
	var k [32]byte
	m.Sum(k[:0])
	return k
}

// cached reports whether k was verified less than verifiedTTL ago, dropping
// it if it has expired.
func (h *secretHasher) cached(k [32]byte) bool {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	exp, ok := h.verified[k]
	if !ok {
		return false
	}
	if !now.Before(exp) {
		delete(h.verified, k)
		return false
	}
	return true
}

// remember records a successful verification of k for verifiedTTL. At
// maxVerified entries it first drops expired ones, then an arbitrary one, so
// memory stays bounded.
func (h *secretHasher) remember(k [32]byte) {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.verified[k]; !ok && len(h.verified) >= maxVerified {
		for old, exp := range h.verified {
			if !now.Before(exp) {
				delete(h.verified, old)
			}
		}
		if len(h.verified) >= maxVerified {
			for old := range h.verified {
				delete(h.verified, old)
				break
			}
		}
	}
	h.verified[k] = now.Add(verifiedTTL)
}

// cacheLen is the number of cache entries, expired ones included; for tests.
func (h *secretHasher) cacheLen() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.verified)
}

// isGeneratedShape reports whether s looks like a generateSecret output
// (43 chars of the base64url alphabet), to pick dummyVerify's scheme.
func isGeneratedShape(s string) bool {
	if len(s) != generatedSecretLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// isGeneratedHash reports whether stored is the fast hash of a generated
// secret, so that an upgrade keeps it fast (under the pepper).
func isGeneratedHash(stored string) bool {
	p, err := parsePHC(stored)
	return err == nil && (p.id == schemeSHA256 || p.id == schemeHMAC)
}

// isLegacyHash reports whether stored is a legacy seed hash (unsalted SHA-1,
// bare or "$sha1$"), which must be re-hashed at the next login.
func isLegacyHash(stored string) bool {
	p, err := parsePHC(stored)
	return err == nil && p.id == schemeSHA1
}

// phc is a parsed stored hash. version, m, t, p and salt are set for
// argon2id only.
type phc struct {
	id      string // scheme: schemeArgon2id, schemeSHA256, schemeHMAC or schemeSHA1
	version int    // argon2 version; always 19
	m, t, p uint32 // argon2 memory (KiB), passes, lanes
	salt    []byte
	hash    []byte
}

// String encodes p in its canonical form; parsePHC(p.String()) gives p back.
// A bare legacy SHA-1 comes back in its "$sha1$" form.
func (p phc) String() string {
	switch p.id {
	case schemeArgon2id:
		return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s", p.id, p.version, p.m, p.t, p.p,
			b64.EncodeToString(p.salt), b64.EncodeToString(p.hash))
	case schemeSHA1:
		return "$" + p.id + "$" + hex.EncodeToString(p.hash)
	}
	return "$" + p.id + "$" + b64.EncodeToString(p.hash)
}

// parsePHC parses a stored hash strictly: only canonical encodings of the
// known schemes, with argon2id parameters within sane bounds, so a corrupt
// row is reported instead of verified loosely or made into a DoS. Errors wrap
// errUnknownHash and never quote the stored value, which could be a secret.
func parsePHC(s string) (phc, error) {
	if len(s) == 2*sha1.Size && isLowerHex(s) {
		h, _ := hex.DecodeString(s)
		return phc{id: schemeSHA1, hash: h}, nil
	}
	if len(s) > maxPHCLen {
		return phc{}, fmt.Errorf("%w: too long", errUnknownHash)
	}
	rest, ok := strings.CutPrefix(s, "$")
	if !ok {
		return phc{}, fmt.Errorf("%w: no $scheme$ prefix", errUnknownHash)
	}
	f := strings.Split(rest, "$")
	switch f[0] {
	case schemeSHA1:
		if len(f) != 2 || len(f[1]) != 2*sha1.Size || !isLowerHex(f[1]) {
			return phc{}, fmt.Errorf("%w: sha1 needs 40 lowercase hex digits", errUnknownHash)
		}
		h, _ := hex.DecodeString(f[1])
		return phc{id: schemeSHA1, hash: h}, nil
	case schemeSHA256, schemeHMAC:
		if len(f) != 2 {
			return phc{}, fmt.Errorf("%w: %s needs one field", errUnknownHash, f[0])
		}
		h, err := decodeB64(f[1])
		if err != nil || len(h) != sha256.Size {
			return phc{}, fmt.Errorf("%w: %s needs 32 bytes of base64", errUnknownHash, f[0])
		}
		return phc{id: f[0], hash: h}, nil
	case schemeArgon2id:
		return parseArgon2id(f[1:])
	}
	return phc{}, fmt.Errorf("%w: unsupported scheme", errUnknownHash)
}

// parseArgon2id parses the fields after "$argon2id$":
// "v=19", "m=M,t=T,p=P", salt, hash.
func parseArgon2id(f []string) (phc, error) {
	if len(f) != 4 {
		return phc{}, fmt.Errorf("%w: argon2id needs v=, m=,t=,p=, salt and hash", errUnknownHash)
	}
	v, ok := cutDecimal(f[0], "v=")
	if !ok || v != argon2.Version {
		return phc{}, fmt.Errorf("%w: argon2id version must be v=19", errUnknownHash)
	}
	ps := strings.Split(f[1], ",")
	if len(ps) != 3 {
		return phc{}, fmt.Errorf("%w: argon2id needs m=,t=,p=", errUnknownHash)
	}
	m, okM := cutDecimal(ps[0], "m=")
	t, okT := cutDecimal(ps[1], "t=")
	p, okP := cutDecimal(ps[2], "p=")
	if !okM || !okT || !okP {
		return phc{}, fmt.Errorf("%w: argon2id needs m=,t=,p= in that order", errUnknownHash)
	}
	if p < 1 || p > maxArgon2Threads || t < 1 || t > maxArgon2Time || m < 8*p || m > maxArgon2Memory {
		return phc{}, fmt.Errorf("%w: argon2id parameters out of bounds", errUnknownHash)
	}
	salt, err := decodeB64(f[2])
	if err != nil || len(salt) < minPHCSaltLen || len(salt) > maxPHCSaltLen {
		return phc{}, fmt.Errorf("%w: argon2id salt must be 8-64 bytes of base64", errUnknownHash)
	}
	hash, err := decodeB64(f[3])
	if err != nil || len(hash) < minPHCHashLen || len(hash) > maxPHCHashLen {
		return phc{}, fmt.Errorf("%w: argon2id hash must be 16-64 bytes of base64", errUnknownHash)
	}
	return phc{id: schemeArgon2id, version: int(v), m: m, t: t, p: p, salt: salt, hash: hash}, nil
}

// cutDecimal parses prefix followed by a canonical decimal uint32 (digits
// only, no sign, no leading zero), so that each value has one spelling.
func cutDecimal(s, prefix string) (uint32, bool) {
	d, ok := strings.CutPrefix(s, prefix)
	if !ok || d == "" || len(d) > 10 || (d[0] == '0' && len(d) > 1) {
		return 0, false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(d, 10, 32)
	return uint32(n), err == nil
}

// decodeB64 decodes unpadded standard base64 and accepts only the canonical
// spelling: the decoder alone would skip newlines and ignore stray low bits.
func decodeB64(s string) ([]byte, error) {
	b, err := b64.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	if b64.EncodeToString(b) != s {
		return nil, errors.New("authsvc: non-canonical base64")
	}
	return b, nil
}

// isLowerHex reports whether s is all lowercase hex digits, the only form
// the seed service (Python's hexdigest) wrote.
func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
