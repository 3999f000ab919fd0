package authsvc

import (
	"context"
	"errors"
	"sort"
	"time"
)

// follow catches up with the store's change log every PollInterval, at
// once when watch reports a notification, and runs housekeeping now and
// then. It logs the store going away and coming back once each, not per
// attempt.
func (a *Authenticator) follow(ctx context.Context) {
	defer a.done.Done()
	poll := time.NewTicker(a.cfg.PollInterval)
	defer poll.Stop()
	housekeeping := time.NewTicker(housekeepingInterval)
	defer housekeeping.Stop()
	known := time.NewTicker(knownRefreshEvery)
	defer known.Stop()
	down := false
	var retry time.Duration // the pending retry's delay, doubled while changes stay held
	var caughtUp time.Time  // when the last catch-up began
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-a.kick:
			// Under a stream of writes every one kicks: a catch-up at most
			// every catchUpGap serves them all (one query for many
			// changes, not one each), a few milliseconds later at most.
			if wait := catchUpGap - time.Since(caughtUp); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		case <-housekeeping.C:
			if _, err := a.store.tryLock(ctx, "housekeeping", a.housekeep); err != nil && ctx.Err() == nil {
				a.log.Warn("authsvc: housekeeping failed", "err", err)
			}
			continue
		case <-known.C:
			// Advisory and retried each minute: a failure is not an outage
			// (the catch-up below reports those).
			if err := a.refreshKnown(ctx); err != nil && ctx.Err() == nil {
				a.log.Debug("authsvc: reading known addresses failed", "err", err)
			}
			continue
		}
		var err error
		caughtUp = time.Now()
		if synced, _ := a.state.freshness(); time.Since(synced) > a.cfg.MaxStaleness {
			// Out of touch long enough that another instance's housekeeping
			// may have purged changes we missed: reload everything. A
			// reload may be large; every round trip of it is bounded.
			err = a.state.load(ctx, a.store, time.Now(), a.tokenLifetimeAgo(), a.reloadKeys)
		} else {
			// A catch-up is small: bounded as a whole, so that a store that
			// stops answering is noticed within StoreTimeout.
			cctx, cancel := context.WithTimeout(ctx, a.cfg.StoreTimeout)
			var pending bool
			pending, err = a.state.catchUp(cctx, a.store, time.Now(), a.reloadKeys)
			cancel()
			if errors.Is(err, errFellBehind) {
				// The log was purged past our cursor (it is bounded by
				// count, Config.MaxChanges): what we missed is only in
				// the tables now.
				a.log.Warn("authsvc: fell behind the change log; reloading")
				err = a.state.load(ctx, a.store, time.Now(), a.tokenLifetimeAgo(), a.reloadKeys)
			} else if pending && err == nil {
				// Committed changes wait behind a transaction in flight,
				// whose commit may not notify (it need not be ours): ask
				// again soon, backing off up to the poll interval, since
				// another program's transaction may last long.
				retry = min(max(2*retry, pendingRetry), a.cfg.PollInterval)
				time.AfterFunc(retry, a.catchUpNow)
			} else {
				retry = 0
			}
		}
		if err != nil {
			a.state.setHealthy(false)
		}
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil && !down:
			down = true
			a.log.Error("authsvc: store unreachable: serving verifications from memory, refusing authentications", "err", err)
		case err == nil && down:
			down = false
			a.log.Info("authsvc: store reachable again")
		}
	}
}

// catchUpGap is the least time between two catch-ups asked for by kicks
// (writes, notifications): a change reaches the feed and the other
// instances at most this much later, and a stream of writes costs a
// catch-up query per gap instead of one per write.
const catchUpGap = 5 * time.Millisecond

// pendingRetry is how soon a catch-up that found changes held back behind
// a transaction in flight tries again (see store_changes.go).
const pendingRetry = 5 * time.Millisecond

// housekeepingInterval is how often an instance tries to purge expired
// revocations and retired keys (one instance at a time does).
const housekeepingInterval = 5 * time.Minute

// watch relays the store's change notifications to follow, reconnecting
// after failures, until ctx is done.
func (a *Authenticator) watch(ctx context.Context) {
	defer a.done.Done()
	for ctx.Err() == nil {
		err := a.store.watch(ctx, a.catchUpNow)
		if errors.Is(err, errNoWatch) {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// catchUpNow asks follow for a catch-up at once: on a notification, and
// after each of this instance's own writes, so that the revocation feed
// (which serves what the state has applied) carries them within a round
// trip instead of a poll interval.
func (a *Authenticator) catchUpNow() {
	select {
	case a.kick <- struct{}{}:
	default: // one catch-up pending is enough
	}
}

// reloadKeys rebuilds the key set from the store after a key change.
func (a *Authenticator) reloadKeys(ctx context.Context) error {
	if a.cfg.SigningAlg == AlgHS256 {
		return nil
	}
	stored, err := a.store.signingKeys(ctx)
	if err != nil {
		return err
	}
	ks, err := buildKeySet(stored, a.cfg)
	if err != nil {
		a.log.Error("authsvc: cannot use the stored signing keys; keeping the current set", "err", err)
		return nil
	}
	a.keys.Store(ks)
	return nil
}

// housekeep purges revocations of expired tokens, old change-log entries,
// known addresses older than 24 hours, used assertions that expired, and
// retired signing keys, and rotates the signing key when
// Config.KeyRotationPeriod says so. follow runs it every few minutes on
// one instance at a time (tests call it directly, which is safe).
func (a *Authenticator) housekeep(ctx context.Context) error {
	now := a.now()
	// Change-log entries are kept as long as a token can live, so that a
	// remote verifier's feed can still find a deletion it missed.
	// It is also bounded by count (MaxChanges): a follower that falls off
	// its end reloads (a RemoteVerifier is sent a snapshot).
	if _, err := a.store.purge(ctx, now, now.Add(-a.cfg.TokenTTL-a.cfg.Leeway-time.Hour), a.cfg.MaxChanges); err != nil {
		return err
	}
	a.state.purgeExpired(now.Unix())
	if _, err := a.store.purgeKnownAddresses(ctx, now.Add(-knownFor)); err != nil {
		return err
	}
	if _, err := a.store.purgeUsedJTIs(ctx, now); err != nil {
		return err
	}
	if a.cfg.SigningAlg == AlgHS256 {
		return nil
	}
	ks := a.keys.Load()
	cur := ks.current(now)
	var retired []string
	for kid, s := range ks.byKid {
		// A key older than the current signer signed nothing since the
		// current one took over; its tokens are gone a TTL later.
		if s != cur && s.activateAt.Before(cur.activateAt) && now.After(cur.activateAt.Add(a.cfg.TokenTTL+a.cfg.Leeway)) {
			retired = append(retired, kid)
		}
	}
	if len(retired) > 0 {
		if err := a.store.deleteSigningKeys(ctx, retired); err != nil {
			return err
		}
		a.log.Info("authsvc: retired signing keys removed", "kids", retired)
		if err := a.reloadKeys(ctx); err != nil {
			return err
		}
	}
	if p := a.cfg.KeyRotationPeriod; p > 0 {
		newest := ks.signers[len(ks.signers)-1]
		if now.Sub(newest.createdAt) >= p {
			if _, err := a.RotateKeys(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// KeyInfo describes a signing key, without its private part.
type KeyInfo struct {
	ID         string
	Alg        string
	CreatedAt  time.Time // published in the JWKS since
	ActivateAt time.Time // signs from then on (until a newer key activates)
	Signing    bool      // the key new tokens are signed with now
}

// Keys lists the signing keys, in the order they sign (by activation). With HS256 there are none.
func (a *Authenticator) Keys() []KeyInfo {
	ks := a.keys.Load()
	if a.cfg.SigningAlg == AlgHS256 {
		return nil
	}
	cur := ks.current(a.now())
	out := make([]KeyInfo, 0, len(ks.byKid))
	for _, s := range ks.byKid {
		out = append(out, KeyInfo{ID: s.kid, Alg: s.alg, CreatedAt: s.createdAt, ActivateAt: s.activateAt, Signing: s == cur})
	}
	sortKeyInfo(out)
	return out
}

// sortKeyInfo orders keys by activation, then creation.
func sortKeyInfo(k []KeyInfo) {
	sort.Slice(k, func(i, j int) bool {
		if !k[i].ActivateAt.Equal(k[j].ActivateAt) {
			return k[i].ActivateAt.Before(k[j].ActivateAt)
		}
		return k[i].CreatedAt.Before(k[j].CreatedAt)
	})
}

// RotateKeys starts a staged rotation: a new key of the configured
// algorithm is published in the JWKS at once (every instance learns of it
// through the change log) and used for signing only after JWKSMaxAge, so
// that every verifier's cached JWKS has it by then. The old key stays
// published until every token it signed has expired.
func (a *Authenticator) RotateKeys(ctx context.Context) (*KeyInfo, error) {
	if a.cfg.SigningAlg == AlgHS256 {
		return nil, refuse(ErrInvalidArgument, "HS256 uses one shared secret; change AUTHSVC_HMAC_SECRET to rotate it")
	}
	now := a.now()
	k, err := generateSigningKey(a.cfg.SigningAlg, a.cfg.KeyEncryptionKey, now, now.Add(a.cfg.JWKSMaxAge))
	if err != nil {
		return nil, err
	}
	if err := a.store.addSigningKey(ctx, k); err != nil {
		return nil, err
	}
	if err := a.reloadKeys(ctx); err != nil {
		return nil, err
	}
	a.catchUpNow()
	a.log.Info("authsvc: signing key rotation started", "kid", k.ID, "activate_at", k.ActivateAt)
	return &KeyInfo{ID: k.ID, Alg: k.Alg, CreatedAt: k.CreatedAt, ActivateAt: k.ActivateAt}, nil
}

// JWKSMaxAge is how long verifiers may cache the JWKS.
func (a *Authenticator) JWKSMaxAge() time.Duration { return a.cfg.JWKSMaxAge }
