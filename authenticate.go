package authsvc

import (
	"context"
	"crypto/x509"
	"errors"
	"time"
)

// TokenRequest narrows the token Authenticate issues.
type TokenRequest struct {
	// Scopes requested; each must be granted to the client. Empty means all
	// of the client's scopes.
	Scopes []string
	// Audience sets the aud claim (RFC 8707 resource or the "audience"
	// parameter); each must be among the client's Audiences or the default
	// audience, else ErrInvalidTarget. Empty means the default audience
	// (Config.DefaultAudience).
	Audience []string
	// DPoP is the request's DPoP header (RFC 9449 §5), if it had one: the
	// token is then bound to the proof's key (cnf.jkt) and its type is
	// "DPoP". The proof is checked, after the client, against a POST to
	// TokenEndpoint; a bad proof is ErrInvalidDPoPProof, one without a
	// server nonce that Config.DPoPTokenNonce requires ErrUseDPoPNonce.
	DPoP string
	// TokenEndpoint is the token endpoint's URL as the client addressed
	// it (discovery's token_endpoint): a DPoP proof's htu.
	TokenEndpoint string
	// ClientCertificate is the TLS client certificate the request came
	// with, if any (RFC 8705 §3): the token is then bound to it (cnf
	// x5t#S256), unless DPoP binds it to a DPoP key instead. A token is
	// bound to one key at most.
	ClientCertificate *x509.Certificate
}

// Token is an issued access token.
type Token struct {
	AccessToken string
	TokenType   string // "Bearer", or "DPoP" for a token bound to a DPoP key
	ExpiresAt   time.Time
	ExpiresIn   time.Duration
	Scopes      []string
	ClientID    string
	IsAdmin     bool
	// DPoPNonce, when not empty, is a fresh DPoP server nonce for the
	// client (the DPoP-Nonce response header): the one its proof carried
	// expires soon.
	DPoPNonce string
}

// Authenticate checks a client's credentials and issues an access token.
// An unknown client_id and a wrong secret both give ErrInvalidClient, in
// about the same time.
func (a *Authenticator) Authenticate(ctx context.Context, clientID, secret string, req TokenRequest) (*Token, error) {
	if err := a.dpopNonceFirst(req); err != nil {
		return nil, err
	}
	c, err := a.AuthenticateClient(ctx, clientID, secret)
	if err != nil {
		return nil, err
	}
	return a.grant(ctx, c, req)
}

// AuthenticateClient checks a client's credentials without issuing a token
// (for endpoints where the caller authenticates as a client, such as token
// introspection and revocation). Errors as Authenticate.
func (a *Authenticator) AuthenticateClient(ctx context.Context, clientID, secret string) (*Client, error) {
	c, err := a.authenticateClient(ctx, clientID, secret)
	if errors.Is(err, ErrInvalidClient) {
		a.stats.authFailures.Add(1)
	} else if errors.Is(err, ErrUnavailable) {
		a.stats.storeErrors.Add(1)
	}
	return c, err
}

func (a *Authenticator) authenticateClient(ctx context.Context, clientID, secret string) (*Client, error) {
	if !storableID(clientID) || secret == "" || len(secret) > MaxSecretLen {
		// No client has such an id: no store lookup (PostgreSQL would
		// answer a NUL or invalid UTF-8 with an error, not "not found").
		return nil, ErrInvalidClient
	}
	// Fail closed: with the store unreachable, a deleted client cannot be
	// told from a live one.
	if err := a.fresh(true); err != nil {
		return nil, err
	}
	rec, err := a.lookupClient(ctx, clientID)
	if errors.Is(err, ErrClientNotFound) {
		a.hasher.dummyVerify(secret)
		return nil, ErrInvalidClient
	}
	if err != nil {
		return nil, err
	}
	if secretless(rec.AuthMethod) {
		a.hasher.dummyVerify(secret)
		how := "a signed client_assertion"
		if rec.AuthMethod != AuthPrivateKeyJWT {
			how = "a TLS client certificate"
		}
		return nil, refuse(ErrInvalidClient, "client %s authenticates with %s (%s), not a secret", clientID, rec.AuthMethod, how)
	}
	var ok, rehash bool
	if isGeneratedHash(rec.SecretHash) && !isGeneratedShape(secret) {
		// A generated secret always has the generated shape, so this cannot
		// match; spend what an unknown client_id costs for such a secret
		// (argon2id), so that timing does not tell that the client exists.
		a.hasher.dummyVerify(secret)
	} else {
		ok, rehash = a.checkSecret(rec, rec.SecretHash, secret)
		if !ok && isLegacyHash(rec.SecretHash) {
			// Unsalted SHA-1 answers in nanoseconds: spend what an unknown
			// client_id costs, so timing does not tell the client exists.
			a.hasher.dummyVerify(secret)
		}
	}
	if !ok && rec.OldSecretHash != "" && a.now().Before(rec.OldSecretExpiresAt) {
		// Within a rotation's grace period the previous secret still works.
		ok, _ = a.checkSecret(rec, rec.OldSecretHash, secret)
		rehash = false
	}
	if !ok {
		return nil, ErrInvalidClient
	}
	if rehash {
		a.upgradeHash(ctx, rec, secret)
	}
	c := rec.Client
	return &c, nil
}

// checkSecret verifies secret against one of rec's hashes.
func (a *Authenticator) checkSecret(rec *clientRecord, hash, secret string) (ok, rehash bool) {
	ok, rehash, err := a.hasher.verify(hash, secret)
	if err != nil {
		// A corrupt stored hash: refuse, and tell the operator (not the caller).
		a.log.Error("authsvc: stored secret hash unusable", "client_id", rec.ID, "err", err)
		return false, false
	}
	return ok, rehash
}

// upgradeHash replaces a legacy or weaker hash after a successful login. The
// secret was a caller's choice (legacy hashes come from imported clients), so
// it gets argon2id; a generated one keeps its fast hash under the pepper.
// Failure is logged, not returned: the login itself was valid.
func (a *Authenticator) upgradeHash(ctx context.Context, rec *clientRecord, secret string) {
	var newHash string
	var err error
	if isGeneratedHash(rec.SecretHash) {
		newHash = a.hasher.hashGenerated(secret)
	} else if newHash, err = a.hasher.hashChosen(secret); err != nil {
		// A legacy secret that today's rule for chosen secrets refuses (too
		// short, too repetitive) still upgrades: the rule guards new
		// secrets, the upgrade only strengthens storage.
		newHash, err = a.hasher.hashArgon2(secret)
	}
	if err == nil {
		var updated *clientRecord
		// The client's own doing: its login upgraded the hash.
		updated, err = a.store.updateClient(WithActor(ctx, rec.ID), rec.ID, ActionSecretRehashed, func(cur *clientRecord) error {
			if cur.SecretHash != rec.SecretHash {
				return errStale // rotated meanwhile: leave the new secret alone
			}
			cur.SecretHash = newHash
			return nil
		})
		if errors.Is(err, errStale) {
			return
		}
		if err == nil {
			a.state.putClient(rec.ID, updated)
			a.catchUpNow()
		}
	}
	if err != nil {
		a.log.Warn("authsvc: could not upgrade secret hash", "client_id", rec.ID, "err", err)
		return
	}
	a.log.Info("authsvc: upgraded secret hash", "client_id", rec.ID)
}
