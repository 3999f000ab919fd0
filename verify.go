package authsvc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Verify checks an access token: its signature, algorithm, type, issuer,
// expiry, that it has not been revoked and that its client still exists and
// has not been cut off. It returns the token's claims (shared: do not
// modify their slices).
//
// Verify answers from memory: a token seen before costs a hash and a few
// map lookups, and no store call is made for a known client. Revocations
// and client changes from other instances arrive through the store's change
// log (see Config.PollInterval); when the store has been unreachable for
// longer than Config.MaxStaleness, Verify fails with ErrUnavailable.
func (a *Authenticator) Verify(ctx context.Context, token string) (*Claims, error) {
	c, err := a.verify(ctx, token)
	a.stats.countVerify(err)
	return c, err
}

func (a *Authenticator) verify(ctx context.Context, token string) (*Claims, error) {
	if err := a.fresh(false); err != nil {
		return nil, err
	}
	if token == "" || len(token) > MaxTokenLen {
		return nil, fmt.Errorf("%w: empty or longer than %d bytes", ErrInvalidToken, MaxTokenLen)
	}
	key := tokenKey(token)
	claims := a.state.cachedClaims(key)
	seen := claims != nil
	if seen {
		a.stats.cacheHits.Add(1)
		if a.now().After(time.Unix(claims.ExpiresAt, 0).Add(a.cfg.Leeway)) {
			return nil, ErrTokenExpired
		}
	} else {
		a.stats.cacheMisses.Add(1)
		var err error
		if claims, err = a.parse(token, true); err != nil {
			return nil, err
		}
	}
	rec, err := a.state.check(claims)
	if err != nil {
		return nil, err
	}
	if a.state.loading.Load() {
		// Starting: memory does not hold every revocation yet.
		if revoked, err := a.store.isRevoked(ctx, claims.ID); err != nil {
			return nil, err
		} else if revoked {
			return nil, ErrTokenRevoked
		}
	}
	if rec == nil {
		// Not in memory: a client created a moment ago elsewhere, or gone.
		rec, err = a.lookupClient(ctx, claims.Subject)
		if errors.Is(err, ErrClientNotFound) {
			return nil, errClientDeleted
		}
		if err != nil {
			return nil, err
		}
		if err := checkClient(claims, rec); err != nil {
			return nil, err
		}
	}
	if !seen {
		// A cached token needs no second write (and no exclusive lock on
		// the state, which every Verify would otherwise contend for).
		a.shareStrings(claims, rec)
		a.state.remember(key, claims, a.now().Unix())
	}
	// A copy: the caller may change what it gets, the cache must not change.
	c := *claims
	c.Audience = slices.Clone(claims.Audience)
	return &c, nil
}

// shareStrings points the claims every token of a client repeats at the
// configuration's and the client record's copies, so that a cached token
// costs little more than its own jti (up to maxVerifiedTokens are kept).
func (a *Authenticator) shareStrings(c *Claims, rec *clientRecord) {
	if c.Issuer == a.cfg.Issuer {
		c.Issuer = a.cfg.Issuer
	}
	if c.Subject == rec.ID {
		c.Subject = rec.ID
	}
	if c.ClientID == rec.ID {
		c.ClientID = rec.ID
	}
	if c.LegacyClientID == rec.ID {
		c.LegacyClientID = rec.ID
	}
}

// Logout revokes a token until it expires. Only a token this Authenticator
// signed is stored, so junk cannot fill the store. Logging out a token twice,
// or one already expired, succeeds and keeps it out.
func (a *Authenticator) Logout(ctx context.Context, token string) error {
	claims, err := a.parse(token, false)
	if err != nil {
		return err
	}
	return a.revoke(ctx, claims)
}

// revoke stores the revocation of a parsed token until it expires.
func (a *Authenticator) revoke(ctx context.Context, claims *Claims) error {
	exp := time.Unix(claims.ExpiresAt, 0).Add(a.cfg.Leeway)
	if !exp.After(a.now()) {
		return nil // expired: refused anyway, nothing to store
	}
	if _, err := a.state.check(claims); err != nil {
		// Revoked already, cut off, or of a deleted client: refused
		// anyway. Above all no second fold below: replaying an old token
		// (/logout needs nothing else) must not log its client out again.
		return nil
	}
	if n := a.state.liveRevocations(claims.Subject); n >= a.cfg.MaxRevocationsPerClient {
		// Bounded growth: past the bound the client's revocations fold into
		// a log-out-everywhere, which refuses this token and every other it
		// was issued so far with one row instead of one per token.
		c, err := a.LogoutClient(ctx, claims.Subject)
		if errors.Is(err, ErrClientNotFound) {
			return nil // deleted: its tokens are refused already
		}
		if err != nil {
			return err
		}
		a.stats.revocations.Add(1)
		a.log.Warn("authsvc: a client's revocations reached the bound; logged out everywhere instead",
			"client_id", c.ID, "live_revocations", n, "bound", a.cfg.MaxRevocationsPerClient)
		return nil
	}
	if err := a.store.revokeToken(ctx, claims.ID, claims.Subject, exp); err != nil {
		return err
	}
	a.stats.revocations.Add(1)
	a.state.revoke(claims.ID, claims.Subject, exp.Unix())
	a.catchUpNow()
	return nil
}

// Revoke revokes a token on behalf of the client by (RFC 7009): a client
// may revoke its own tokens, an admin any token. It returns ErrInvalidToken
// for a token this Authenticator did not sign and ErrForbidden when by may
// not revoke it; RFC 7009 has the endpoint answer 200 to both.
func (a *Authenticator) Revoke(ctx context.Context, by *Client, token string) error {
	claims, err := a.parse(token, false)
	if err != nil {
		return err
	}
	if claims.Subject != by.ID && !by.IsAdmin {
		return ErrForbidden
	}
	return a.revoke(ctx, claims)
}
