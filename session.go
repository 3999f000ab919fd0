package authsvc

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"time"
)

// SessionRequest asks IssueSession for a session token.
type SessionRequest struct {
	// Audience is the token's only aud: the program that keeps the session
	// and accepts no other token (authhttp's console has its own).
	// Required; it must not be one the Authenticator's own routes accept
	// (ForIssuer), so a session token is never an API token.
	Audience string
	// TTL is the token's lifetime: zero or more than Config.TokenTTL means
	// Config.TokenTTL (revocations are kept no longer than that).
	TTL time.Duration
	// ID is the session's id, the sid claim, kept from token to token as
	// the session is renewed; "" starts a session with a new random id.
	ID string
	// AuthTime is when the client last proved its secret, the auth_time
	// claim, kept as the session is renewed; zero means now.
	AuthTime time.Time
}

// MaxSessionIDLen bounds SessionRequest.ID.
const MaxSessionIDLen = 64

// IssueSession issues a token that stands for a session of client
// clientID, for the program that keeps the session to hold (in a cookie,
// say), not to hand to others: it carries no scope, only the session's
// audience, and the sid and auth_time claims. The client must exist now;
// the caller must have checked its secret when the session began
// (AuthenticateClient), as IssueSession checks none: renewing a session
// (a new token with the same ID and AuthTime) asks for no secret again.
// Like Authenticate it fails closed when the store is out of reach.
func (a *Authenticator) IssueSession(ctx context.Context, clientID string, req SessionRequest) (*Token, error) {
	if err := checkAudience(req.Audience); err != nil {
		return nil, err
	}
	if a.ForIssuer(&Claims{Audience: Audience{req.Audience}}) {
		return nil, refuse(ErrInvalidArgument, "a session's audience must not be the issuer's")
	}
	if len(req.ID) > MaxSessionIDLen || !storableText(req.ID) {
		return nil, refuse(ErrInvalidArgument, "a session id is at most %d bytes of UTF-8", MaxSessionIDLen)
	}
	if req.ID == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		req.ID = base64.RawURLEncoding.EncodeToString(b)
	}
	if req.TTL <= 0 || req.TTL > a.cfg.TokenTTL {
		req.TTL = a.cfg.TokenTTL
	}
	authTime := req.AuthTime
	if authTime.IsZero() {
		authTime = a.now()
	}
	if err := a.fresh(true); err != nil {
		return nil, err
	}
	rec, err := a.lookupClient(ctx, clientID)
	if err != nil {
		return nil, err
	}
	c := rec.Client
	tok, err := a.issueWith(&c, nil, []string{req.Audience}, binding{}, req.TTL, func(cl *Claims) {
		cl.SessionID, cl.AuthTime = req.ID, authTime.Unix()
	})
	if err != nil {
		return nil, err
	}
	a.stats.tokensIssued.Add(1)
	return tok, nil
}
