package authsvc

import (
	"errors"
	"sync/atomic"
	"time"
)

// Stats counts what an Authenticator has done since New, for metrics
// (authd exports them to Prometheus). The library itself depends on no
// metrics system.
type Stats struct {
	TokensIssued      uint64 // tokens issued (a request refused for its scope or audience is none)
	AuthFailures      uint64 // unknown client or wrong secret
	Revocations       uint64 // tokens logged out or revoked by this instance
	VerifyOK          uint64
	VerifyExpired     uint64
	VerifyRevoked     uint64 // logged out, client deleted or cut off
	VerifyInvalid     uint64 // malformed, bad signature, wrong issuer…
	VerifyUnavailable uint64 // refused because the store was unreachable
	VerifyCacheHits   uint64 // tokens verified before: no signature check
	VerifyCacheMisses uint64
	StoreErrors       uint64 // operations refused because the store was unreachable
	SigningKeyAge     time.Duration
	// LastSync is when the in-memory state last caught up with the store
	// (on the real clock): Verify fails closed once it is older than
	// Config.MaxStaleness.
	LastSync time.Time

	// Known addresses (see KnownAddress): pairs in memory, and the store
	// writes of RememberAddress done, failed, and dropped (queue full).
	KnownAddresses            int
	KnownAddressWrites        uint64
	KnownAddressWriteErrors   uint64
	KnownAddressWritesDropped uint64
}

// counters are the Authenticator's live counts.
type counters struct {
	tokensIssued, authFailures, revocations                atomic.Uint64
	verifyOK, verifyExpired, verifyRevoked, verifyInvalid  atomic.Uint64
	verifyUnavailable, cacheHits, cacheMisses, storeErrors atomic.Uint64
	knownWrites, knownWriteErrors, knownDropped            atomic.Uint64
}

func (c *counters) countVerify(err error) {
	switch {
	case err == nil:
		c.verifyOK.Add(1)
	case errors.Is(err, ErrTokenExpired):
		c.verifyExpired.Add(1)
	case errors.Is(err, ErrTokenRevoked):
		c.verifyRevoked.Add(1)
	case errors.Is(err, ErrInvalidToken):
		c.verifyInvalid.Add(1)
	case errors.Is(err, ErrUnavailable):
		c.verifyUnavailable.Add(1)
		c.storeErrors.Add(1)
	}
}

// Stats returns the counts so far.
func (a *Authenticator) Stats() Stats {
	c := &a.stats
	s := Stats{
		TokensIssued: c.tokensIssued.Load(), AuthFailures: c.authFailures.Load(), Revocations: c.revocations.Load(),
		VerifyOK: c.verifyOK.Load(), VerifyExpired: c.verifyExpired.Load(), VerifyRevoked: c.verifyRevoked.Load(),
		VerifyInvalid: c.verifyInvalid.Load(), VerifyUnavailable: c.verifyUnavailable.Load(),
		VerifyCacheHits: c.cacheHits.Load(), VerifyCacheMisses: c.cacheMisses.Load(), StoreErrors: c.storeErrors.Load(),
		KnownAddresses: a.known.count(), KnownAddressWrites: c.knownWrites.Load(),
		KnownAddressWriteErrors: c.knownWriteErrors.Load(), KnownAddressWritesDropped: c.knownDropped.Load(),
	}
	s.LastSync, _ = a.state.freshness()
	if a.cfg.SigningAlg != AlgHS256 {
		s.SigningKeyAge = a.now().Sub(a.keys.Load().current(a.now()).createdAt)
	}
	return s
}
