package authsvc

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"math"
	"math/bits"
)

// revocationSet holds the live revocations as the hot paths read them: in
// authd's state and in a RemoteVerifier (issue 15). Ten million of them
// must fit in a few hundred megabytes, start in seconds and never stall a
// Verify, so the set is not a Go map of strings:
//
//   - a revocation is its 16-byte key (revocationKeyOf) and its exp in
//     unix seconds, 20 bytes in a slot, plus 4 for its owner (authd's
//     count per client); nothing in it is a pointer, so the garbage
//     collector never scans it;
//   - slots live in revShards open-addressing tables (linear probing,
//     backward-shift deletion, so no tombstones), grown by half when three
//     quarters full: between 20/0.75 and 20/0.5 bytes a revocation, and a
//     growth rehashes one shard, 1/1024 of the set, under the lock;
//   - expiry needs no index: a purge sweeps one shard per hold of the
//     lock (sweep), a bounded pause whatever the size.
//
// The caller's lock guards it; the zero value is empty and ready.
type revocationSet struct {
	shards [revShards]revShard
	n      int
	owners bool // slots carry an owner (authd); a RemoteVerifier's do not
}

// revShards is the number of tables a set is split into: enough that
// growing one (a rehash under the caller's lock) is short at ten million.
const revShards = 1 << shardBits

type revShard struct {
	slots []revSlot
	owner []uint32 // per slot, when the set has owners
	n     int
}

type revSlot struct {
	key revocationKey
	exp uint32 // unix seconds; 0: the slot is empty
}

// revocationKey is what a revocation is known by in memory and on the
// feed's snapshots.
type revocationKey [16]byte

// revocationKeyOf is the key of a jti. authd's own jtis are 16 random bytes
// in unpadded base64url: their key is those bytes (strict decoding, so one
// jti has one key). Any other jti (of an imported token, say) is hashed.
func revocationKeyOf(jti string) revocationKey {
	var k revocationKey
	if len(jti) == 22 {
		if n, err := strictBase64URL.Decode(k[:], []byte(jti)); err == nil && n == len(k) {
			return k
		}
	}
	sum := sha256.Sum256([]byte(jti))
	copy(k[:], sum[:])
	return k
}

var strictBase64URL = base64.RawURLEncoding.Strict()

// clampExp fits an exp into a slot: at least 1 (0 marks an empty slot),
// at most what 32 bits hold (the year 2106).
func clampExp(exp int64) uint32 {
	return uint32(min(max(exp, 1), math.MaxUint32))
}

// newRevocationSet returns a set sized for about n revocations.
func newRevocationSet(n int, owners bool) *revocationSet {
	s := &revocationSet{owners: owners}
	if per := n / revShards; per > 0 {
		for i := range s.shards {
			s.shards[i].resize(per*4/3+1, owners)
		}
	}
	return s
}

// mix spreads a key's bytes over 64 bits: a key of authd's is random, but
// another issuer's 16-byte jti may be a counter, whose bytes would crowd
// one shard and one run of slots. (Not a defence against chosen keys: jtis
// come from signed tokens.)
func mix(k *revocationKey) uint64 {
	h := binary.LittleEndian.Uint64(k[0:8])*0x9e3779b97f4a7c15 ^ binary.LittleEndian.Uint64(k[8:16])
	h ^= h >> 31
	h *= 0xd6e8feb86659fd93
	h ^= h >> 32
	return h
}

const shardBits = 10 // revShards = 1 << shardBits

func (s *revocationSet) shard(k *revocationKey) *revShard {
	return &s.shards[shardOf(k)]
}

// shardOf is the index of a key's shard.
func shardOf(k *revocationKey) int { return int(mix(k) >> (64 - shardBits)) }

// reserve makes room for more[i] more revocations in shard i, so that
// adding them grows each shard once instead of step by step: a snapshot
// part carries whole shards of the sender's set, so a set built from one
// part at a time allocates each table at its final size and fills it while
// it is in the cache.
func (s *revocationSet) reserve(more *[revShards]int) {
	for i, m := range more {
		sh := &s.shards[i]
		if need := (sh.n+m)*4/3 + 1; m > 0 && need > len(sh.slots) {
			sh.resize(need, s.owners)
		}
	}
}

// home is the slot a key's probe starts at, in a table of size slots: the
// mixed bits the shard did not use, scaled to any size by a multiply.
func home(k *revocationKey, size int) int {
	hi, _ := bits.Mul64(mix(k)<<shardBits, uint64(size))
	return int(hi)
}

// find returns the slot holding k in the shard, or -1.
func (sh *revShard) find(k *revocationKey) int {
	size := len(sh.slots)
	if size == 0 {
		return -1
	}
	for i := home(k, size); ; {
		sl := &sh.slots[i]
		if sl.exp == 0 {
			return -1
		}
		if sl.key == *k {
			return i
		}
		if i++; i == size {
			i = 0
		}
	}
}

// get returns a revocation's exp and owner.
func (s *revocationSet) get(k revocationKey) (exp uint32, owner uint32, ok bool) {
	sh := s.shard(&k)
	i := sh.find(&k)
	if i < 0 {
		return 0, 0, false
	}
	if sh.owner != nil {
		owner = sh.owner[i]
	}
	return sh.slots[i].exp, owner, true
}

func (s *revocationSet) has(k revocationKey) bool {
	return s.shard(&k).find(&k) >= 0
}

// put adds a revocation, or moves a known one's exp later (keeping its
// owner). It reports whether the key was new.
func (s *revocationSet) put(k revocationKey, exp int64, owner uint32) bool {
	e := clampExp(exp)
	sh := s.shard(&k)
	if (sh.n+1)*4 > len(sh.slots)*3 {
		sh.resize(max(8, len(sh.slots)*3/2), s.owners)
	}
	size := len(sh.slots)
	i := home(&k, size)
	for sh.slots[i].exp != 0 {
		if sh.slots[i].key == k {
			sh.slots[i].exp = max(sh.slots[i].exp, e)
			return false
		}
		if i++; i == size {
			i = 0
		}
	}
	sh.slots[i] = revSlot{key: k, exp: e}
	if sh.owner != nil {
		sh.owner[i] = owner
	}
	sh.n++
	s.n++
	return true
}

// insert places a key known to be absent, in a table with room.
func (sh *revShard) insert(k revocationKey, exp uint32, owner uint32) {
	size := len(sh.slots)
	i := home(&k, size)
	for sh.slots[i].exp != 0 {
		if i++; i == size {
			i = 0
		}
	}
	sh.slots[i] = revSlot{key: k, exp: exp}
	if sh.owner != nil {
		sh.owner[i] = owner
	}
	sh.n++
}

// resize rehashes the shard into size slots.
func (sh *revShard) resize(size int, owners bool) {
	old, oldOwner := sh.slots, sh.owner
	sh.slots, sh.owner, sh.n = make([]revSlot, size), nil, 0
	if owners {
		sh.owner = make([]uint32, size)
	}
	for i := range old {
		if old[i].exp != 0 {
			var o uint32
			if oldOwner != nil {
				o = oldOwner[i]
			}
			sh.insert(old[i].key, old[i].exp, o)
		}
	}
}

// removeAt empties slot i and shifts back the keys after it that probed
// past it, so that every key stays reachable from its home.
func (sh *revShard) removeAt(i int) {
	size := len(sh.slots)
	for j := i; ; {
		if j++; j == size {
			j = 0
		}
		if sh.slots[j].exp == 0 {
			break
		}
		// The key at j may move to i if i lies on its probe path, from its
		// home up to j (cyclically).
		h := home(&sh.slots[j].key, size)
		if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			sh.slots[i] = sh.slots[j]
			if sh.owner != nil {
				sh.owner[i] = sh.owner[j]
			}
			i = j
		}
	}
	sh.slots[i] = revSlot{}
	if sh.owner != nil {
		sh.owner[i] = 0
	}
	sh.n--
}

// sweepShard removes the revocations of shard i that expired before now,
// calling dropped with each one's owner. A key shifted back over the
// position being examined is examined again, not skipped.
func (s *revocationSet) sweepShard(i int, now int64, dropped func(owner uint32)) {
	sh := &s.shards[i]
	for j := 0; j < len(sh.slots); {
		sl := &sh.slots[j]
		if sl.exp == 0 || int64(sl.exp) >= now {
			j++
			continue
		}
		if dropped != nil && sh.owner != nil {
			dropped(sh.owner[j])
		}
		sh.removeAt(j)
		s.n--
		// A key from before j (wrapped around) can land at j too: j is
		// examined again either way.
	}
}

// each calls f with every revocation of shard i.
func (s *revocationSet) each(i int, f func(k revocationKey, exp uint32)) {
	for _, sl := range s.shards[i].slots {
		if sl.exp != 0 {
			f(sl.key, sl.exp)
		}
	}
}

// len is the number of revocations held.
func (s *revocationSet) len() int { return s.n }
