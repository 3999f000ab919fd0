package authsvc

// Expiry in time buckets (issue 15). The revocation sets and the verified-
// token caches are maps read on every Verify; what expires must leave them
// without a scan of everything under their lock. Beside each map, an
// expiryIndex keeps its keys grouped by the minute they expire in, the
// minutes in a heap: a purge takes the oldest buckets only, a bounded batch
// per lock hold, so a Verify waits for at most one small batch.

// expiryBucketSecs is the width of a bucket: keys whose exp falls in the
// same minute share one.
const expiryBucketSecs = 60

// purgeBatch bounds the keys a purge examines per hold of the lock.
const purgeBatch = 256

// bucketOf is the bucket of an exp (unix seconds), rounded down.
func bucketOf(exp int64) int64 {
	b := exp / expiryBucketSecs
	if exp%expiryBucketSecs < 0 {
		b--
	}
	return b
}

// expiryIndex groups keys by the bucket of their exp. The owner's lock
// guards it; the zero value is ready to use. A key is added once per entry
// put in the owner's map; the owner's drop function decides, key by key,
// what a sweep removes, so an index entry left behind (its map entry gone
// or replaced) costs a look-up, never a wrong answer.
type expiryIndex[K comparable] struct {
	buckets map[int64]*chunkedKeys[K]
	order   minHeap // the numbers of the buckets present, oldest first
	// The sweep's position in the oldest bucket, kept between batches.
	atBucket int64
	at       int
}

func (x *expiryIndex[K]) add(k K, exp int64) {
	if x.buckets == nil {
		x.buckets = make(map[int64]*chunkedKeys[K])
	}
	b := bucketOf(exp)
	keys := x.buckets[b]
	if keys == nil {
		keys = &chunkedKeys[K]{}
		x.buckets[b] = keys
		x.order.push(b)
	}
	keys.push(k)
}

// sweep examines up to limit keys, oldest buckets first, of the buckets
// that can hold an exp before now (every key of a bucket wholly past, the
// keys of the bucket now falls in one by one). drop(k, b) reports whether k,
// indexed under bucket b, leaves the index: the owner drops its entry when
// expired, and answers true for a key whose entry is gone or lives in
// another bucket now. sweep reports whether work may remain.
func (x *expiryIndex[K]) sweep(now int64, limit int, drop func(k K, bucket int64) bool) bool {
	last := bucketOf(now - 1) // the newest bucket that can hold an exp < now
	for limit > 0 {
		b, ok := x.order.min()
		if !ok || b > last {
			return false
		}
		keys := x.buckets[b]
		i := 0
		if x.atBucket == b {
			i = min(x.at, keys.len())
		}
		for i < keys.len() && limit > 0 {
			limit--
			if drop(keys.at(i), b) {
				keys.removeAt(i) // the last key moves to i: examined next
			} else {
				i++
			}
		}
		if keys.len() == 0 {
			delete(x.buckets, b)
			x.order.pop()
			x.atBucket, x.at = 0, 0
			continue
		}
		if i == keys.len() {
			// The whole bucket was examined and some keys live on: it is
			// the bucket now falls in, and nothing later has expired.
			x.atBucket, x.at = 0, 0
			return false
		}
		x.atBucket, x.at = b, i
	}
	return true
}

// chunkedKeys is a list of keys in chunks of at most keyChunk, so that a
// bucket's spare capacity is under one chunk, where a slice grown by append
// would waste up to half its size.
type chunkedKeys[K any] struct {
	chunks [][]K
}

const keyChunk = 256

func (c *chunkedKeys[K]) len() int {
	if len(c.chunks) == 0 {
		return 0
	}
	return (len(c.chunks)-1)*keyChunk + len(c.chunks[len(c.chunks)-1])
}

func (c *chunkedKeys[K]) at(i int) K { return c.chunks[i/keyChunk][i%keyChunk] }

func (c *chunkedKeys[K]) push(k K) {
	n := len(c.chunks)
	if n == 0 || len(c.chunks[n-1]) == keyChunk {
		size := keyChunk
		if n == 0 {
			size = 4 // most buckets of a small set stay small
		}
		c.chunks = append(c.chunks, make([]K, 0, size))
		n++
	}
	c.chunks[n-1] = append(c.chunks[n-1], k)
}

// removeAt replaces key i by the last key and drops the last.
func (c *chunkedKeys[K]) removeAt(i int) {
	n := len(c.chunks)
	last := c.chunks[n-1]
	c.chunks[i/keyChunk][i%keyChunk] = last[len(last)-1]
	var zero K
	last[len(last)-1] = zero // let the key's memory go
	last = last[:len(last)-1]
	if len(last) == 0 {
		c.chunks[n-1] = nil
		c.chunks = c.chunks[:n-1]
		return
	}
	c.chunks[n-1] = last
}

// minHeap is a binary min-heap of bucket numbers.
type minHeap []int64

func (h minHeap) min() (int64, bool) {
	if len(h) == 0 {
		return 0, false
	}
	return h[0], true
}

func (h *minHeap) push(v int64) {
	*h = append(*h, v)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if s[p] <= s[i] {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *minHeap) pop() {
	s := *h
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && s[l] < s[m] {
			m = l
		}
		if r < n && s[r] < s[m] {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
}
