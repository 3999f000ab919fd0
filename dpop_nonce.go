package authsvc

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Server nonces (RFC 9449 §8 and §9) bound how long before its use a
// proof can have been made: a server that requires them refuses a proof
// without a nonce it gave out recently, and says which one to use.
//
// They are stateless, so that many instances can check each other's
// without a store round trip: a nonce is a time bucket and an HMAC of it
// under a key the instances share, accepted while the bucket is the
// current or the previous one (one to two periods), or the next one (a
// peer's clock a little ahead).

// ErrUseDPoPNonce: a DPoP proof lacks a server nonce this server requires,
// or carries one it did not make or that has expired (RFC 9449's
// use_dpop_nonce). The error is a *DPoPNonceError, which carries the nonce
// to use.
var ErrUseDPoPNonce = errors.New("authsvc: use the DPoP server nonce")

// DPoPNonceError refuses a proof for its nonce: the client must make a new
// proof with Nonce (sent to it in the DPoP-Nonce header).
type DPoPNonceError struct {
	Nonce string
}

func (e *DPoPNonceError) Error() string {
	return "authsvc: the DPoP proof must carry the server's current nonce (use_dpop_nonce)"
}

// Is makes errors.Is(err, ErrUseDPoPNonce) true.
func (e *DPoPNonceError) Is(target error) bool { return target == ErrUseDPoPNonce }

// dpopNonceLen is the length of a nonce: base64url of an 8-byte bucket
// and a 16-byte MAC.
const dpopNonceLen = 32

// DPoPNonces makes and checks stateless DPoP server nonces. Give a
// Middleware one with WithDPoPNonces; an Authenticator makes its own
// (Config.DPoPTokenNonce, Config.DPoPResourceNonce). Safe for concurrent use.
type DPoPNonces struct {
	keys   []nonceKey // each checks; the last one in use makes them
	period time.Duration
	now    func() time.Time
}

// nonceKey is an HMAC key of nonces, in use from a time on (a signing
// key's activation).
type nonceKey struct {
	mac  []byte
	from time.Time
}

// NewDPoPNonces returns nonces keyed by secret, valid for one to two
// periods of DefaultDPoPWindow. Every instance of a service that is given
// the same secret (at least 32 bytes) accepts the others' nonces; a nil
// secret means a random one, for a service of one process.
func NewDPoPNonces(secret []byte) (*DPoPNonces, error) {
	if secret == nil {
		secret = make([]byte, 32)
		rand.Read(secret)
	}
	if len(secret) < 32 {
		return nil, errors.New("authsvc: a DPoP nonce secret must be at least 32 bytes")
	}
	return newDPoPNonces([][]byte{secret}, nil, "resource", DefaultDPoPWindow, time.Now), nil
}

// newDPoPNonces derives the HMAC keys of purpose from secrets (in use from
// the times from gives, ascending; nil: all from the start): nonces made
// for one purpose (the token endpoint, resources) do not pass for another.
func newDPoPNonces(secrets [][]byte, from []time.Time, purpose string, period time.Duration, now func() time.Time) *DPoPNonces {
	n := &DPoPNonces{period: period, now: now}
	for i, s := range secrets {
		k, err := hkdf.Key(sha256.New, s, nil, "authsvc DPoP nonce v1 "+purpose, 32)
		if err != nil {
			panic(err) // only for lengths over 255 hashes
		}
		nk := nonceKey{mac: k}
		if from != nil {
			nk.from = from[i]
		}
		n.keys = append(n.keys, nk)
	}
	return n
}

// Nonce returns the current nonce.
func (n *DPoPNonces) Nonce() string {
	now := n.now()
	return n.make(n.minter(now), n.bucket(now))
}

// minter is the key that makes nonces at now: the newest in use (the
// oldest when none is yet).
func (n *DPoPNonces) minter(now time.Time) []byte {
	k := n.keys[0].mac
	for _, nk := range n.keys[1:] {
		if !nk.from.After(now) {
			k = nk.mac
		}
	}
	return k
}

func (n *DPoPNonces) bucket(t time.Time) uint64 {
	return uint64(t.UnixNano() / int64(n.period))
}

func (n *DPoPNonces) make(key []byte, bucket uint64) string {
	var b [24]byte
	binary.BigEndian.PutUint64(b[:8], bucket)
	m := hmac.New(sha256.New, key)
	m.Write(b[:8])
	copy(b[8:], m.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// check judges a proof's nonce at now: nil, with the nonce to send back
// when the one presented is about to expire (else ""), or a
// *DPoPNonceError.
func (n *DPoPNonces) check(nonce string) (next string, err error) {
	t := n.now()
	now, minter := n.bucket(t), n.minter(t)
	if len(nonce) == dpopNonceLen {
		var b [24]byte
		if m, e := base64.RawURLEncoding.Decode(b[:], []byte(nonce)); e == nil && m == len(b) {
			bucket := binary.BigEndian.Uint64(b[:8])
			if bucket+1 >= now && bucket <= now+1 {
				for _, k := range n.keys {
					mac := hmac.New(sha256.New, k.mac)
					mac.Write(b[:8])
					if hmac.Equal(mac.Sum(nil)[:16], b[8:]) {
						if bucket < now {
							return n.make(minter, now), nil // it expires with this period
						}
						return "", nil
					}
				}
			}
		}
	}
	return "", &DPoPNonceError{Nonce: n.make(minter, now)}
}

// dpopNonceFirst refuses a token request whose DPoP proof lacks a current
// server nonce, before the client is authenticated: a client assertion,
// whose jti authentication uses up, can then be sent again with a new
// proof. Only the proof's nonce claim is read here; grant checks the whole
// proof, the nonce again included.
func (a *Authenticator) dpopNonceFirst(req TokenRequest) error {
	if req.DPoP == "" || !a.cfg.DPoPTokenNonce {
		return nil
	}
	_, err := a.keys.Load().tokenNonces.check(proofNonce(req.DPoP))
	return err
}

// proofNonce is the nonce claim of a DPoP proof, unverified, or "".
func proofNonce(proof string) string {
	if len(proof) > MaxDPoPProofLen {
		return ""
	}
	_, rest, _ := strings.Cut(proof, ".")
	payload, _, _ := strings.Cut(rest, ".")
	b, err := base64.RawURLEncoding.DecodeString(payload)
	var claims struct {
		Nonce string `json:"nonce"`
	}
	if err != nil || json.Unmarshal(b, &claims) != nil {
		return ""
	}
	return claims.Nonce
}
