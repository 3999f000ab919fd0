package authsvc

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// weakArgon2 builds, without the code under test, an argon2id PHC string with
// cheap parameters (below the current policy) for secret.
func weakArgon2(secret string) string {
	salt := bytes.Repeat([]byte{7}, 16)
	key := argon2.IDKey([]byte(secret), salt, 1, 64, 1, 32)
	return fmt.Sprintf("$argon2id$v=19$m=64,t=1,p=1$%s$%s",
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// mustVerify calls verify and fails the test on an error.
func mustVerify(t *testing.T, h *secretHasher, stored, secret string) (ok, rehash bool) {
	t.Helper()
	ok, rehash, err := h.verify(stored, secret)
	if err != nil {
		t.Fatalf("verify(%q): %v", stored, err)
	}
	return ok, rehash
}

func TestGenerateSecret(t *testing.T) {
	alphabet := regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	seen := make(map[string]bool)
	for range 1000 {
		s, err := generateSecret()
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 43 || !alphabet.MatchString(s) {
			t.Fatalf("generateSecret() = %q: want 43 chars of base64url", s)
		}
		if b, err := base64.RawURLEncoding.DecodeString(s); err != nil || len(b) != 32 {
			t.Fatalf("generateSecret() = %q: not 32 bytes of base64url (%v)", s, err)
		}
		if !isGeneratedShape(s) {
			t.Fatalf("isGeneratedShape(%q) = false for a generated secret", s)
		}
		if seen[s] {
			t.Fatalf("generateSecret() repeated %q", s)
		}
		seen[s] = true
	}
}

func TestIsGeneratedShape(t *testing.T) {
	good := strings.Repeat("aZ09-_", 7) + "x" // 43
	for s, want := range map[string]bool{
		good:                           true,
		good[:42]:                      false,
		good + "x":                     false,
		good[:42] + "+":                false,
		good[:42] + "=":                false,
		good[:42] + "/":                false,
		good[:41] + "é":                false, // 43 bytes, not the alphabet
		"":                             false,
		"correct horse battery staple": false,
	} {
		if got := isGeneratedShape(s); got != want {
			t.Errorf("isGeneratedShape(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestHashGeneratedSHA256(t *testing.T) {
	h := newSecretHasher(nil)
	secret, _ := generateSecret()
	stored := h.hashGenerated(secret)
	sum := sha256.Sum256([]byte(secret))
	if want := "$sha256$" + base64.RawStdEncoding.EncodeToString(sum[:]); stored != want {
		t.Fatalf("hashGenerated = %q, want %q", stored, want)
	}
	if ok, rehash := mustVerify(t, h, stored, secret); !ok || rehash {
		t.Fatalf("verify(right secret) = %v, rehash %v; want true, false", ok, rehash)
	}
	if ok, _ := mustVerify(t, h, stored, "x"+secret[1:]); ok && secret[0] != 'x' {
		t.Fatal("verify accepted a wrong secret")
	}
	if ok, _ := mustVerify(t, h, stored, "wrong"); ok {
		t.Fatal("verify accepted a wrong secret")
	}
	if !isGeneratedHash(stored) || isLegacyHash(stored) {
		t.Fatalf("isGeneratedHash/isLegacyHash wrong for %q", stored)
	}
}

func TestPepper(t *testing.T) {
	pepper := []byte("pepper-0123456789abcdef0123456789")
	h := newSecretHasher(pepper)
	pepper[0] = 'X' // the hasher must have kept its own copy
	secret, _ := generateSecret()

	stored := h.hashGenerated(secret)
	m := hmac.New(sha256.New, []byte("pepper-0123456789abcdef0123456789"))
	m.Write([]byte(secret))
	if want := "$hmac-sha256$" + base64.RawStdEncoding.EncodeToString(m.Sum(nil)); stored != want {
		t.Fatalf("hashGenerated = %q, want %q", stored, want)
	}
	if ok, rehash := mustVerify(t, h, stored, secret); !ok || rehash {
		t.Fatalf("same pepper: ok %v rehash %v; want true, false", ok, rehash)
	}
	if ok, _ := mustVerify(t, h, stored, "wrong-secret"); ok {
		t.Fatal("same pepper accepted a wrong secret")
	}
	if !isGeneratedHash(stored) {
		t.Fatal("isGeneratedHash(hmac) = false")
	}

	other := newSecretHasher([]byte("another-pepper-0123456789abcdefg"))
	if ok, _ := mustVerify(t, other, stored, secret); ok {
		t.Fatal("hmac hash verified under a different pepper")
	}

	none := newSecretHasher(nil)
	ok, _, err := none.verify(stored, secret)
	if ok || !errors.Is(err, errUnknownHash) {
		t.Fatalf("hmac hash without pepper: ok %v err %v; want false, errUnknownHash", ok, err)
	}

	// A plain SHA-256 hash from before the pepper still works, and asks to be upgraded.
	plain := none.hashGenerated(secret)
	if ok, rehash := mustVerify(t, h, plain, secret); !ok || !rehash {
		t.Fatalf("$sha256$ under pepper: ok %v rehash %v; want true, true", ok, rehash)
	}
	if ok, rehash := mustVerify(t, h, plain, "wrong-secret"); ok || rehash {
		t.Fatalf("$sha256$ under pepper, wrong secret: ok %v rehash %v", ok, rehash)
	}
}

func TestLegacySHA1(t *testing.T) {
	const secret = "s3cret-legacy-value"
	sum := sha1.Sum([]byte(secret))
	bare := hex.EncodeToString(sum[:])
	h := newSecretHasher([]byte("some-pepper"))
	for _, stored := range []string{bare, "$sha1$" + bare} {
		if !isLegacyHash(stored) || isGeneratedHash(stored) {
			t.Errorf("isLegacyHash(%q) = false or isGeneratedHash true", stored)
		}
		if ok, rehash := mustVerify(t, h, stored, secret); !ok || !rehash {
			t.Errorf("verify(%q, right) = %v, rehash %v; want true, true", stored, ok, rehash)
		}
		if ok, rehash := mustVerify(t, h, stored, secret+"x"); ok || rehash {
			t.Errorf("verify(%q, wrong) = %v, rehash %v; want false, false", stored, ok, rehash)
		}
	}
	if isLegacyHash(strings.ToUpper(bare)) || isLegacyHash(bare[:39]) || isLegacyHash("$sha256$"+bare) {
		t.Error("isLegacyHash accepted a non-legacy string")
	}
}

func TestHashChosenLength(t *testing.T) {
	h := newSecretHasher(nil)
	for _, c := range []struct {
		name, secret string
		want         error
	}{
		{"15 ascii", strings.Repeat("a", 15), errSecretTooShort},
		{"15 runes, 30 bytes", strings.Repeat("é", 15), errSecretTooShort},
		{"empty", "", errSecretTooShort},
		{"1025 bytes", strings.Repeat("a", 1025), errSecretTooLong},
		{"513 two-byte runes", strings.Repeat("é", 513), errSecretTooLong},
	} {
		if got, err := h.hashChosen(c.secret); !errors.Is(err, c.want) || got != "" {
			t.Errorf("%s: hashChosen = %q, %v; want error %v", c.name, got, err, c.want)
		}
	}
	if h.cacheLen() != 0 {
		t.Fatal("refused secrets touched the cache")
	}
}

func TestHashChosenRoundTrip(t *testing.T) {
	h := newSecretHasher([]byte("pepper does not matter for argon2id"))
	nonASCII := "秘密のパスワードをここに書くéè"
	if n := utf8.RuneCountInString(nonASCII); n != 16 {
		t.Fatalf("test secret has %d runes", n)
	}
	var long strings.Builder // 1024 bytes, not a shorter string repeated
	for i := 0; long.Len() < MaxSecretLen; i++ {
		fmt.Fprintf(&long, "%d,", i)
	}
	format := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	for _, secret := range []string{nonASCII, long.String()[:MaxSecretLen]} {
		stored, err := h.hashChosen(secret)
		if err != nil {
			t.Fatalf("hashChosen(%d bytes): %v", len(secret), err)
		}
		if !format.MatchString(stored) {
			t.Fatalf("hashChosen = %q: not the current argon2id PHC format", stored)
		}
		if ok, rehash := mustVerify(t, h, stored, secret); !ok || rehash {
			t.Fatalf("verify(right) = %v, rehash %v; want true, false", ok, rehash)
		}
		if isGeneratedHash(stored) || isLegacyHash(stored) {
			t.Fatal("argon2id hash classified as generated or legacy")
		}
	}

	// Checked against argon2 directly, so encoder and verifier cannot agree on a mistake.
	stored, err := h.hashChosen(nonASCII)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(stored, "$")
	salt, _ := base64.RawStdEncoding.DecodeString(parts[4])
	want := argon2.IDKey([]byte(nonASCII), salt, 2, 19456, 1, 32)
	if parts[5] != base64.RawStdEncoding.EncodeToString(want) {
		t.Fatal("stored hash is not argon2id(m=19456,t=2,p=1) of the secret")
	}
	if again, _ := h.hashChosen(nonASCII); again == stored {
		t.Fatal("two hashes of one secret are equal: salt not random")
	}
	if ok, rehash := mustVerify(t, h, stored, "秘密のパスワードをここに書くée"); ok || rehash {
		t.Fatalf("verify(wrong) = %v, rehash %v; want false, false", ok, rehash)
	}
}

func TestArgon2WeakParamsNeedRehash(t *testing.T) {
	h := newSecretHasher(nil)
	const secret = "a caller-chosen secret"
	stored := weakArgon2(secret)
	if ok, rehash := mustVerify(t, h, stored, secret); !ok || !rehash {
		t.Fatalf("weak argon2id: ok %v rehash %v; want true, true", ok, rehash)
	}
	if ok, rehash := mustVerify(t, h, stored, "another secret!!!"); ok || rehash {
		t.Fatalf("weak argon2id, wrong secret: ok %v rehash %v; want false, false", ok, rehash)
	}
}

func TestArgon2RehashPolicy(t *testing.T) {
	const secret = "a caller-chosen secret"
	b := base64.RawStdEncoding.EncodeToString
	salt16, salt8 := b(bytes.Repeat([]byte{1}, 16)), b(bytes.Repeat([]byte{1}, 8))
	hash32, hash16 := b(bytes.Repeat([]byte{2}, 32)), b(bytes.Repeat([]byte{2}, 16))
	for _, c := range []struct {
		params, salt, hash string
		rehash             bool
	}{
		{"m=19456,t=2,p=1", salt16, hash32, false},
		{"m=65536,t=3,p=4", salt16, hash32, false},
		{"m=19455,t=2,p=1", salt16, hash32, true},
		{"m=19456,t=1,p=1", salt16, hash32, true},
		{"m=19456,t=2,p=1", salt8, hash32, true},
		{"m=19456,t=2,p=1", salt16, hash16, true},
	} {
		// The hash does not match the secret: a planted cache entry makes
		// verify succeed without argon2, so only the parameters are judged.
		h := newSecretHasher(nil)
		stored := "$argon2id$v=19$" + c.params + "$" + c.salt + "$" + c.hash
		h.remember(h.verifiedKey(stored, secret))
		if ok, rehash := mustVerify(t, h, stored, secret); !ok || rehash != c.rehash {
			t.Errorf("%s: ok %v rehash %v; want true, %v", stored, ok, rehash, c.rehash)
		}
	}
}

func TestVerifyTooLongSecret(t *testing.T) {
	h := newSecretHasher(nil)
	long := strings.Repeat("a", MaxSecretLen+1)
	if ok, _ := mustVerify(t, h, h.hashGenerated(long), long); ok {
		t.Fatal("verify accepted a secret longer than MaxSecretLen")
	}
}

func TestMalformedHashes(t *testing.T) {
	const (
		salt = "c2FsdHNhbHRzYWx0c2FsdA" // 16 bytes
		hash = "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
	)
	ok := func(params string) string { return "$argon2id$v=19$" + params + "$" + salt + "$" + hash }
	sum := sha256.Sum256([]byte("x"))
	sha := base64.RawStdEncoding.EncodeToString(sum[:])
	// Sanity: the well-formed version parses, so each case below fails for its own reason.
	if _, err := parsePHC(ok("m=19456,t=2,p=1")); err != nil {
		t.Fatalf("well-formed argon2id refused: %v", err)
	}
	for _, s := range []string{
		"",
		"$",
		"$$",
		"hunter2",
		"$argon2id",
		"$argon2id$",
		"$argon2id$v=18$m=19456,t=2,p=1$" + salt + "$" + hash,
		"$argon2id$v=019$m=19456,t=2,p=1$" + salt + "$" + hash,
		"$argon2id$m=19456,t=2,p=1$" + salt + "$" + hash,
		"$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + hash,
		"$argon2id$v=19$" + salt + "$" + hash,
		ok("m=19456,t=2"),
		ok("t=2,m=19456,p=1"),
		ok("m=19456,t=2,p=1,k=1"),
		ok("m=0,t=2,p=1"),
		ok("m=15,t=1,p=2"),
		ok("m=1048577,t=2,p=1"),
		ok("m=99999999999,t=2,p=1"),
		ok("m=019456,t=2,p=1"),
		ok("m=+19456,t=2,p=1"),
		ok("m=19456,t=0,p=1"),
		ok("m=19456,t=17,p=1"),
		ok("m=19456,t=2,p=0"),
		ok("m=19456,t=2,p=17"),
		ok("m=19456,t=2,p=1") + "$extra",
		ok("m=19456,t=2,p=1") + "\n",
		"$argon2id$v=19$m=19456,t=2,p=1$!!!!$" + hash,
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + hash + "==",
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + hash[:20] + "\n" + hash[20:],
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$" + hash,                          // 4-byte salt
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$aGFzaA",                     // 4-byte hash
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + strings.Repeat("A", 87), // 65 bytes
		"$sha256$",
		"$sha256$" + sha[:42],
		"$sha256$" + sha + "$x",
		"$hmac-sha256$" + sha + "=",
		"$sha1$" + strings.Repeat("A", 40),
		"$sha1$" + strings.Repeat("a", 39),
		strings.Repeat("A", 40),
		strings.Repeat("g", 40),
		"$2b$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
		"$pbkdf2-sha256$29000$c2FsdA$aGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + hash + strings.Repeat("A", 600),
	} {
		h := newSecretHasher(nil)
		okv, rehash, err := h.verify(s, "any secret at all")
		if okv || rehash || !errors.Is(err, errUnknownHash) {
			t.Errorf("verify(%q) = %v, %v, %v; want false, false, errUnknownHash", s, okv, rehash, err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "authsvc: ") {
			t.Errorf("error %q lacks the authsvc: prefix", err)
		}
		if isLegacyHash(s) || isGeneratedHash(s) {
			t.Errorf("%q classified as legacy or generated", s)
		}
	}
}

func TestVerifiedCache(t *testing.T) {
	h := newSecretHasher(nil)
	clock := time.Now()
	h.now = func() time.Time { return clock }
	const secret = "the right secret, chosen"
	stored := weakArgon2(secret)

	// A wrong secret never enters the cache.
	if ok, _ := mustVerify(t, h, stored, "the wrong secret, chosen"); ok {
		t.Fatal("wrong secret accepted")
	}
	if h.cacheLen() != 0 || h.cached(h.verifiedKey(stored, "the wrong secret, chosen")) {
		t.Fatal("wrong secret was cached")
	}

	// A right one does, keyed by (stored, secret) and not by the secret alone.
	if ok, _ := mustVerify(t, h, stored, secret); !ok {
		t.Fatal("right secret refused")
	}
	if h.cacheLen() != 1 || !h.cached(h.verifiedKey(stored, secret)) {
		t.Fatal("successful argon2id verify not cached")
	}
	if h.cached(h.verifiedKey(weakArgon2("another secret"), secret)) {
		t.Fatal("cache hit for a different stored hash")
	}

	// The cache key is neither the secret nor a plain hash of it, and differs per hasher.
	k := h.verifiedKey(stored, secret)
	plain := sha256.Sum256([]byte(stored + "\x00" + secret))
	plainSecret := sha256.Sum256([]byte(secret))
	if k == plain || k == plainSecret || k == newSecretHasher(nil).verifiedKey(stored, secret) {
		t.Fatal("cache key is predictable without the per-process key")
	}

	// A hit returns ok without running argon2: plant an entry for a stored hash
	// the secret does not match; only the cache can make verify accept it.
	planted := weakArgon2("not this secret")
	h.remember(h.verifiedKey(planted, secret))
	if ok, rehash := mustVerify(t, h, planted, secret); !ok || !rehash {
		t.Fatalf("planted cache entry: ok %v rehash %v; want true, true (hit, weak params)", ok, rehash)
	}

	// The cache is consulted for argon2id only.
	sha := h.hashGenerated("not this secret")
	h.remember(h.verifiedKey(sha, secret))
	if ok, _ := mustVerify(t, h, sha, secret); ok {
		t.Fatal("cache consulted for a sha256 hash")
	}

	// After verifiedTTL, entries miss and the planted one no longer verifies.
	clock = clock.Add(verifiedTTL)
	if h.cached(h.verifiedKey(stored, secret)) {
		t.Fatal("cache entry still valid after verifiedTTL")
	}
	if ok, _ := mustVerify(t, h, planted, secret); ok {
		t.Fatal("expired planted entry still accepted")
	}
	if ok, _ := mustVerify(t, h, stored, secret); !ok || !h.cached(h.verifiedKey(stored, secret)) {
		t.Fatal("re-verification after expiry did not refill the cache")
	}
}

func TestVerifiedCacheBound(t *testing.T) {
	h := newSecretHasher(nil)
	clock := time.Now()
	h.now = func() time.Time { return clock }
	key := func(i int) (k [32]byte) {
		k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
		return k
	}
	for i := range maxVerified {
		h.remember(key(i))
	}
	if h.cacheLen() != maxVerified {
		t.Fatalf("cacheLen = %d, want %d", h.cacheLen(), maxVerified)
	}
	// Full of live entries: an arbitrary one makes room.
	h.remember(key(maxVerified))
	if h.cacheLen() != maxVerified || !h.cached(key(maxVerified)) {
		t.Fatalf("cacheLen = %d after overflow, or newest entry missing", h.cacheLen())
	}
	// Re-remembering a present key evicts nothing.
	h.remember(key(maxVerified))
	if h.cacheLen() != maxVerified {
		t.Fatalf("cacheLen = %d after refresh", h.cacheLen())
	}
	// Full of expired entries: they are all dropped.
	clock = clock.Add(verifiedTTL + time.Second)
	h.remember(key(maxVerified + 1))
	if h.cacheLen() != 1 || !h.cached(key(maxVerified+1)) {
		t.Fatalf("cacheLen = %d after expiry sweep, want 1", h.cacheLen())
	}
}

func TestVerifyConcurrent(t *testing.T) {
	h := newSecretHasher([]byte("pepper"))
	const secret = "a concurrently verified secret"
	stored := weakArgon2(secret)
	gen, _ := generateSecret()
	genStored := h.hashGenerated(gen)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				want := (g+i)%2 == 0
				s := secret
				if !want {
					s = fmt.Sprintf("wrong secret %d/%d", g, i)
				}
				if ok, _, err := h.verify(stored, s); ok != want || err != nil {
					t.Errorf("verify = %v, %v; want %v", ok, err, want)
					return
				}
				if ok, _, _ := h.verify(genStored, gen); !ok {
					t.Error("generated secret refused")
					return
				}
				h.dummyVerify(gen)
			}
		})
	}
	wg.Wait()
	if h.cacheLen() != 1 {
		t.Fatalf("cacheLen = %d, want 1 (only the right secret)", h.cacheLen())
	}
}

func TestDummyVerify(t *testing.T) {
	for _, pepper := range [][]byte{nil, []byte("pepper")} {
		h := newSecretHasher(pepper)
		gen, _ := generateSecret()
		h.dummyVerify(gen)
		h.dummyVerify("a caller-chosen secret that is not generated")
		g, err := parsePHC(h.dummyGenerated)
		wantID := schemeSHA256
		if pepper != nil {
			wantID = schemeHMAC
		}
		if err != nil || g.id != wantID {
			t.Fatalf("pepper %q: dummy generated hash %q (%v), want scheme %s", pepper, h.dummyGenerated, err, wantID)
		}
		c, err := parsePHC(h.dummyChosen)
		if err != nil || c.id != schemeArgon2id || c.m != argon2Memory || c.t != argon2Time ||
			c.p != argon2Threads || len(c.hash) != argon2KeyLen || len(c.salt) != argon2SaltLen {
			t.Fatalf("dummy argon2id hash %q (%v) does not use the current parameters", h.dummyChosen, err)
		}
		if h.cacheLen() != 0 {
			t.Fatal("dummyVerify filled the cache")
		}
		if ok, _ := mustVerify(t, h, h.dummyGenerated, gen); ok {
			t.Fatal("a secret matched the dummy hash")
		}

		// The work done, measured by memory rather than time: a generated-shape
		// secret gets the fast hash, any other the full argon2id (19 MiB).
		if n := allocated(func() { h.dummyVerify(gen) }); n > 1<<20 {
			t.Errorf("dummyVerify(generated shape) allocated %d bytes: ran argon2id?", n)
		}
		if n := allocated(func() { h.dummyVerify("a caller-chosen secret") }); n < argon2Memory*1024 {
			t.Errorf("dummyVerify(chosen) allocated %d bytes: did not run argon2id", n)
		}
	}
}

// allocated reports the bytes fn allocated on the heap.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// FuzzParsePHC checks that parsePHC never panics, fails only with
// errUnknownHash, and that what it accepts re-encodes canonically: to the
// input itself (bare SHA-1 gains its "$sha1$"), which parses to equal fields.
func FuzzParsePHC(f *testing.F) {
	for _, s := range []string{
		"",
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$sha256$LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ",
		"$hmac-sha256$LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ",
		"$sha1$aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d",
		"aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePHC(s)
		if err != nil {
			if !errors.Is(err, errUnknownHash) {
				t.Fatalf("parsePHC(%q) error %v does not wrap errUnknownHash", s, err)
			}
			return
		}
		enc := p.String()
		want := s
		if !strings.HasPrefix(s, "$") {
			want = "$sha1$" + s
		}
		if enc != want {
			t.Fatalf("parsePHC(%q).String() = %q, not canonical", s, enc)
		}
		q, err := parsePHC(enc)
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", enc, err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip changed fields: %+v != %+v", p, q)
		}
		if p.id == schemeArgon2id && (p.version != 19 || p.p < 1 || p.p > 16 || p.t < 1 || p.t > 16 ||
			p.m < 8*p.p || p.m > 1<<20 || len(p.salt) < 8 || len(p.salt) > 64 || len(p.hash) < 16 || len(p.hash) > 64) {
			t.Fatalf("parsePHC(%q) accepted out-of-bounds fields %+v", s, p)
		}
	})
}

// TestArgon2Bounded: argon2id runs at most argon2Slots at once; a further
// computation waits for a slot (so memory stays bounded under a flood of
// wrong chosen secrets or unknown client_ids).
func TestArgon2Bounded(t *testing.T) {
	h := newSecretHasher(nil)
	stored, err := h.hashChosen("a-chosen-secret-of-some-length")
	if err != nil {
		t.Fatal(err)
	}
	for range cap(argon2Slots) {
		argon2Slots <- struct{}{} // every slot taken
	}
	done := make(chan bool)
	go func() {
		ok, _, _ := h.verify(stored, "a-chosen-secret-of-some-length")
		done <- ok
	}()
	select {
	case <-done:
		t.Fatal("argon2id ran with every slot taken")
	case <-time.After(100 * time.Millisecond):
	}
	for range cap(argon2Slots) {
		<-argon2Slots
	}
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("the right secret did not verify")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("argon2id did not run once slots were free")
	}
}

// TestChosenSecretRule: a new chosen secret is refused when it is only
// white space, has fewer than MinChosenSecretDistinct different
// characters, or is a shorter string repeated (issue 14: 16 spaces and
// "aaaaaaaaaaaaaaaa" were accepted); anything else of 16+ characters is
// accepted.
func TestChosenSecretRule(t *testing.T) {
	for _, c := range []struct {
		secret string
		want   error
	}{
		{strings.Repeat(" ", 16), errSecretBlank},
		{" \t\n\r\v\f\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u3000", errSecretBlank},
		{strings.Repeat("a", 16), errSecretFewCharacters},
		{strings.Repeat("ab", 8), errSecretFewCharacters},
		{"aaaaaaaaaaaaaaab", errSecretFewCharacters},
		{strings.Repeat("1234", 5), errSecretFewCharacters},
		{"passwordpassword", errSecretRepeated},
		{"abcdeabcdeabcdea", errSecretRepeated}, // the last copy cut short
		{strings.Repeat("Tr0ub4dor&3", 2), errSecretRepeated},
		{strings.Repeat("é秘ü€x", 4), errSecretRepeated},
		{"abcdefghabcdefgh!", nil}, // a repetition plus one more: not periodic
		{"abcdeabcdeabcdez", nil},
		{"correct horse battery staple", nil},
		{"a chosen secret, long enough", nil},
		{"秘密のパスワードをここに書くéè", nil},
		{"    spaces around    x1y2z3    ", nil},
	} {
		err := checkChosenSecret(c.secret)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("checkChosenSecret(%q) = %v, want %v", c.secret, err, c.want)
		}
	}
	for _, c := range []struct {
		s    string
		want int
	}{{"", 0}, {"a", 1}, {"aaaa", 1}, {"abab", 2}, {"abcab", 3}, {"aabaab", 3}, {"abcd", 4}, {"aabaaab", 4}} {
		if got := smallestPeriod([]rune(c.s)); got != c.want {
			t.Errorf("smallestPeriod(%q) = %d, want %d", c.s, got, c.want)
		}
	}
}
