// Package authsvc implements OAuth 2.0 client-credentials authentication for
// services that call each other, as specified in RFC 6749 §4.4, with JWT
// access tokens as specified in RFC 9068.
//
// A client (a service) proves who it is with a client_id and a secret and
// gets a signed access token (Authenticator.Authenticate). Other services
// check that token in-process (Authenticator.Verify, Middleware). A token can
// be revoked (Authenticator.Logout) and a revoked token is refused from then on.
//
// The Authenticator keeps its clients, revocations and signing keys in a
// Store: PostgreSQL for fleets, or an embedded SQLite file (see OpenStore).
package authsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// Errors returned by the Authenticator. Compare with errors.Is: returned
// errors wrap these and may carry more detail.
var (
	// ErrInvalidClient: unknown client_id or wrong secret (never says which).
	ErrInvalidClient = errors.New("authsvc: invalid client credentials")
	// ErrInvalidToken: the token is malformed, badly signed, expired, revoked
	// or belongs to a client that no longer exists. ErrTokenExpired and
	// ErrTokenRevoked wrap it, so errors.Is(err, ErrInvalidToken) holds for
	// every refused token.
	ErrInvalidToken = errors.New("authsvc: invalid token")
	// ErrTokenExpired: the token was valid but its exp has passed.
	ErrTokenExpired = fmt.Errorf("%w: expired", ErrInvalidToken)
	// ErrTokenRevoked: the token was logged out, or its client was deleted.
	ErrTokenRevoked = fmt.Errorf("%w: revoked", ErrInvalidToken)
	// ErrClientExists: CreateClient with a client_id already taken.
	ErrClientExists = errors.New("authsvc: client already exists")
	// ErrClientNotFound: no client has that client_id.
	ErrClientNotFound = errors.New("authsvc: client not found")
	// ErrInvalidScope: a requested scope is malformed or not granted to the client.
	ErrInvalidScope = errors.New("authsvc: invalid scope")
	// ErrInvalidArgument: a malformed client_id, secret or other input.
	ErrInvalidArgument = errors.New("authsvc: invalid argument")
	// ErrForbidden: the caller is authenticated but may not do this.
	ErrForbidden = errors.New("authsvc: not permitted")
	// ErrUnavailable: the store cannot be reached. Callers must fail closed:
	// treat the request as unauthenticated, never as allowed.
	ErrUnavailable = errors.New("authsvc: store unavailable")
)

// Limits on inputs, so that no caller can make the service do unbounded work.
const (
	MaxClientIDLen = 128  // bytes; the seed service's varchar(128)
	MaxTokenLen    = 8192 // bytes; our tokens are well under 1 KB
	MaxScopes      = 100
	MaxScopeLen    = 128
	MaxAudiences   = 10
)

// Signing algorithms.
const (
	AlgEdDSA = "EdDSA"
	AlgES256 = "ES256"
	AlgRS256 = "RS256"
	AlgHS256 = "HS256"
)

// Config configures an Authenticator. The zero value of each field has the
// meaning its comment gives; only Issuer is required.
type Config struct {
	// Issuer is the iss claim of every token, a URL such as
	// "https://auth.example". Required. Verify refuses tokens of other issuers.
	Issuer string

	// TokenTTL is the lifetime of issued tokens. Zero means one hour.
	TokenTTL time.Duration

	// SigningAlg is one of EdDSA (the default when empty), ES256, RS256 or
	// HS256. Asymmetric keys are generated on first use and kept in the store,
	// so every instance on one store signs with the same key set.
	SigningAlg string

	// HMACSecret is the HS256 key, used only when SigningAlg is HS256 and then
	// required, at least 32 bytes. Anyone who holds it can mint tokens:
	// prefer an asymmetric algorithm unless old clients need HS256.
	HMACSecret []byte

	// KeyEncryptionKey, when set (32 bytes), encrypts private signing keys at
	// rest in the store with AES-256-GCM. Once set, keep it: keys stored
	// encrypted cannot be loaded without it.
	KeyEncryptionKey []byte

	// SecretPepper, when set, makes server-generated secrets hash as
	// HMAC-SHA256 under it instead of plain SHA-256, so a stolen database
	// alone is not enough to check guesses.
	SecretPepper []byte

	// DefaultAudience is the aud claim of tokens whose request names no
	// audience. Empty means the Issuer, except with HS256, where it means no
	// aud at all: HS256 is the Flask service's mode, and PyJWT's decode,
	// called without an audience as that service's users call it, refuses
	// any token that has one.
	DefaultAudience []string

	// Leeway is the clock skew allowed when checking exp and nbf. Zero means
	// 30 seconds; a negative value means none.
	Leeway time.Duration

	// Logger receives the library's few log lines (legacy hash upgrades,
	// store errors). Nil means no logging. Secrets and tokens are never logged.
	Logger *slog.Logger

	// Now is the clock of token times (iat, exp). Nil means time.Now; tests
	// set it. Staleness of the in-memory state is measured on the real clock.
	Now func() time.Time

	// PollInterval is how often the in-memory state catches up with the
	// store's change log. PostgreSQL also notifies every instance at once;
	// the poll is the safety net for a lost notification, and the only
	// channel on SQLite (for changes made by another process, such as the
	// authd CLI). Zero means one second.
	PollInterval time.Duration

	// MaxStaleness bounds how long Verify keeps answering from memory while
	// the store cannot be reached: past it Verify fails with ErrUnavailable.
	// Until then a revocation made on another instance during the outage is
	// not seen. Zero means 30 seconds. Authenticate needs a reachable store
	// (it fails closed as soon as a catch-up fails).
	MaxStaleness time.Duration

	// JWKSMaxAge is how long verifiers may cache the JWKS (authd sends it as
	// Cache-Control max-age). A rotated key is published at once but used
	// for signing only after this long, so no verifier meets an unknown
	// kid. Zero means 5 minutes.
	JWKSMaxAge time.Duration

	// KeyRotationPeriod, when set, rotates the signing key automatically
	// once the newest key is older than this. Zero means never (rotate
	// with RotateKeys or `authd keys rotate`).
	KeyRotationPeriod time.Duration
}

// Client is a registered client, as callers see it: never with its secret.
type Client struct {
	ID      string // client_id
	RowID   int64  // numeric id, the "id" claim of the seed service's tokens
	IsAdmin bool
	Scopes  []string
	// TokensValidAfter is the per-client cut-off: tokens issued before it are
	// refused. Zero means none.
	TokensValidAfter time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// NewClient is what CreateClient needs.
type NewClient struct {
	ID string // client_id: 1-128 bytes of printable UTF-8 without spaces
	// Secret chosen by the caller (at least 16 characters, hashed with
	// argon2id). Empty means the server generates one (32 random bytes).
	Secret  string
	IsAdmin bool
	Scopes  []string
	// RowID, when non-zero, asks for that numeric id (used to import the
	// seed service's clients so their "id" claim is unchanged).
	RowID int64
}

// TokenRequest narrows the token Authenticate issues.
type TokenRequest struct {
	// Scopes requested; each must be granted to the client. Empty means all
	// of the client's scopes.
	Scopes []string
	// Audience sets the aud claim (RFC 8707 resource or the "audience"
	// parameter). Empty means Config.DefaultAudience.
	Audience []string
}

// Token is an issued access token.
type Token struct {
	AccessToken string
	TokenType   string // always "Bearer"
	ExpiresAt   time.Time
	ExpiresIn   time.Duration
	Scopes      []string
	ClientID    string
	IsAdmin     bool
}

// Authenticator issues, verifies and revokes tokens for the clients in its
// Store. It is safe for concurrent use. New starts two goroutines that keep
// its in-memory state current with the store; Close stops them (close the
// Store separately, after).
type Authenticator struct {
	store    Store
	cfg      Config
	hasher   *secretHasher
	keys     atomic.Pointer[keySet]
	state    *state
	now      func() time.Time
	log      *slog.Logger
	audience []string

	stats counters

	stop context.CancelFunc // stops the background sync
	done sync.WaitGroup     // the background goroutines
	kick chan struct{}      // a change notification: catch up now
}

// New checks cfg, loads (or, on a fresh store, generates) the signing keys,
// loads the clients and live revocations into memory, and starts following
// the store's change log in the background. Close stops that. It fails
// early on a bad Config.
func New(ctx context.Context, store Store, cfg Config) (*Authenticator, error) {
	if store == nil {
		return nil, errors.New("authsvc: New needs a Store")
	}
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	a := &Authenticator{
		store:    store,
		cfg:      cfg,
		hasher:   newSecretHasher(cfg.SecretPepper),
		now:      cfg.Now,
		log:      cfg.Logger,
		audience: cfg.DefaultAudience,
	}
	if len(a.audience) == 0 && cfg.SigningAlg != AlgHS256 {
		a.audience = []string{cfg.Issuer}
	}
	keys, err := loadKeySet(ctx, store, cfg)
	if err != nil {
		return nil, err
	}
	a.keys.Store(keys)
	a.state = newState()
	if err := a.state.load(ctx, store, time.Now()); err != nil {
		return nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	a.stop = stop
	a.kick = make(chan struct{}, 1)
	a.done.Add(2)
	go a.follow(bg)
	go a.watch(bg)
	return a, nil
}

// Close stops the background sync. It does not close the Store.
func (a *Authenticator) Close() error {
	a.stop()
	a.done.Wait()
	return nil
}

func checkConfig(cfg *Config) error {
	cfg.Issuer = strings.TrimSpace(cfg.Issuer)
	if cfg.Issuer == "" {
		return errors.New("authsvc: Config.Issuer is required")
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.TokenTTL < time.Second {
		return fmt.Errorf("authsvc: Config.TokenTTL %v is too short (at least 1s)", cfg.TokenTTL)
	}
	if cfg.SigningAlg == "" {
		cfg.SigningAlg = AlgEdDSA
	}
	switch cfg.SigningAlg {
	case AlgEdDSA, AlgES256, AlgRS256:
	case AlgHS256:
		if len(cfg.HMACSecret) < 32 {
			return fmt.Errorf("authsvc: the HS256 secret is %d bytes; at least 32 are required", len(cfg.HMACSecret))
		}
	default:
		return fmt.Errorf("authsvc: unsupported signing algorithm %q (use EdDSA, ES256, RS256 or HS256)", cfg.SigningAlg)
	}
	if n := len(cfg.KeyEncryptionKey); n != 0 && n != 32 {
		return fmt.Errorf("authsvc: Config.KeyEncryptionKey is %d bytes; it must be 32", n)
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Leeway < 0 {
		cfg.Leeway = 0
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.MaxStaleness <= 0 {
		cfg.MaxStaleness = 30 * time.Second
	}
	if cfg.JWKSMaxAge <= 0 {
		cfg.JWKSMaxAge = 5 * time.Minute
	}
	for _, aud := range cfg.DefaultAudience {
		if err := checkAudience(aud); err != nil {
			return fmt.Errorf("authsvc: Config.DefaultAudience: %w", err)
		}
	}
	return nil
}

// CreateClient registers a client and returns it with its secret. The secret
// is returned only here: the store keeps a hash.
func (a *Authenticator) CreateClient(ctx context.Context, nc NewClient) (*Client, string, error) {
	if err := checkClientID(nc.ID); err != nil {
		return nil, "", err
	}
	scopes, err := normalizeScopes(nc.Scopes)
	if err != nil {
		return nil, "", err
	}
	if nc.RowID < 0 {
		return nil, "", fmt.Errorf("%w: negative row id", ErrInvalidArgument)
	}
	secret, hash, err := a.newSecret(nc.Secret)
	if err != nil {
		return nil, "", err
	}
	now := a.now().UTC().Truncate(time.Second)
	rec := &ClientRecord{
		Client: Client{
			ID: nc.ID, RowID: nc.RowID, IsAdmin: nc.IsAdmin, Scopes: scopes,
			CreatedAt: now, UpdatedAt: now,
		},
		SecretHash: hash,
	}
	if err := a.store.CreateClient(ctx, rec); err != nil {
		return nil, "", err
	}
	a.state.putClient(rec.ID, rec)
	c := rec.Client
	return &c, secret, nil
}

// Client returns the client with that client_id, or ErrClientNotFound. It
// answers from memory when it can (kept current as Verify's checks are).
func (a *Authenticator) Client(ctx context.Context, clientID string) (*Client, error) {
	rec, err := a.lookupClient(ctx, clientID)
	if err != nil {
		return nil, err
	}
	c := rec.Client
	return &c, nil
}

// Clients lists every client, ordered by client_id.
func (a *Authenticator) Clients(ctx context.Context) ([]Client, error) {
	recs, err := a.store.Clients(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Client, len(recs))
	for i := range recs {
		out[i] = recs[i].Client
	}
	return out, nil
}

// DeleteClient removes a client. Its tokens are refused from then on, even
// those not yet expired: a compromised client is cut off at once.
func (a *Authenticator) DeleteClient(ctx context.Context, clientID string) error {
	if err := a.store.DeleteClient(ctx, clientID); err != nil {
		return err
	}
	a.state.putClient(clientID, nil)
	return nil
}

// ClientUpdate changes a client; nil fields are left as they are.
type ClientUpdate struct {
	IsAdmin *bool
	Scopes  *[]string
}

// UpdateClient changes a client's admin flag or scopes. Tokens already
// issued keep the claims they were issued with; admin rights are checked
// against the current record by authd's admin routes.
func (a *Authenticator) UpdateClient(ctx context.Context, clientID string, u ClientUpdate) (*Client, error) {
	var scopes []string
	if u.Scopes != nil {
		var err error
		if scopes, err = normalizeScopes(*u.Scopes); err != nil {
			return nil, err
		}
	}
	return a.updateClient(ctx, clientID, func(rec *ClientRecord) error {
		if u.IsAdmin != nil {
			rec.IsAdmin = *u.IsAdmin
		}
		if u.Scopes != nil {
			rec.Scopes = scopes
		}
		return nil
	})
}

// updateClient applies f in the store and in memory.
func (a *Authenticator) updateClient(ctx context.Context, clientID string, f func(*ClientRecord) error) (*Client, error) {
	rec, err := a.store.UpdateClient(ctx, clientID, f)
	if err != nil {
		return nil, err
	}
	a.state.putClient(clientID, rec)
	c := rec.Client
	return &c, nil
}

// LogoutClient logs a client out everywhere: every token of it issued
// before now is refused from now on, on every instance. Tokens issued in
// the same second as the call are refused too (iat has a resolution of one
// second, and refusing a few too many is the safe side).
func (a *Authenticator) LogoutClient(ctx context.Context, clientID string) (*Client, error) {
	cutoff := a.now().Truncate(time.Second).Add(time.Second)
	return a.updateClient(ctx, clientID, func(rec *ClientRecord) error {
		if cutoff.After(rec.TokensValidAfter) {
			rec.TokensValidAfter = cutoff
		}
		return nil
	})
}

// RotateSecret options.
type RotateSecret struct {
	// Secret is the new secret; empty means generate one.
	Secret string
	// Grace keeps the previous secret valid this long, so a fleet of
	// callers can switch without an outage. Zero ends it at once.
	Grace time.Duration
	// LogoutEverywhere also refuses every token issued so far.
	LogoutEverywhere bool
}

// RotateSecret gives a client a new secret and returns it. Tokens issued
// before stay valid unless LogoutEverywhere is set.
func (a *Authenticator) RotateSecret(ctx context.Context, clientID string, opt RotateSecret) (*Client, string, error) {
	if opt.Grace < 0 {
		return nil, "", fmt.Errorf("%w: negative grace period", ErrInvalidArgument)
	}
	secret, hash, err := a.newSecret(opt.Secret)
	if err != nil {
		return nil, "", err
	}
	now := a.now()
	c, err := a.updateClient(ctx, clientID, func(rec *ClientRecord) error {
		rec.OldSecretHash, rec.OldSecretExpiresAt = "", time.Time{}
		if opt.Grace > 0 {
			rec.OldSecretHash, rec.OldSecretExpiresAt = rec.SecretHash, now.Add(opt.Grace).UTC()
		}
		rec.SecretHash = hash
		if opt.LogoutEverywhere {
			rec.TokensValidAfter = now.Truncate(time.Second).Add(time.Second)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return c, secret, nil
}

// newSecret hashes a chosen secret, or generates one when chosen is empty.
func (a *Authenticator) newSecret(chosen string) (secret, hash string, err error) {
	if chosen == "" {
		if secret, err = GenerateSecret(); err != nil {
			return "", "", err
		}
		return secret, a.hasher.hashGenerated(secret), nil
	}
	if hash, err = a.hasher.hashChosen(chosen); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return chosen, hash, nil
}

// Authenticate checks a client's credentials and issues an access token.
// An unknown client_id and a wrong secret both give ErrInvalidClient, in
// about the same time.
func (a *Authenticator) Authenticate(ctx context.Context, clientID, secret string, req TokenRequest) (*Token, error) {
	c, err := a.AuthenticateClient(ctx, clientID, secret)
	if err != nil {
		return nil, err
	}
	a.stats.tokensIssued.Add(1)
	scopes, err := grantScopes(c.Scopes, req.Scopes)
	if err != nil {
		return nil, err
	}
	aud := req.Audience
	if len(aud) == 0 {
		aud = a.audience
	} else if err := checkAudiences(aud); err != nil {
		return nil, err
	}
	return a.issue(c, scopes, aud)
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
	if clientID == "" || len(clientID) > MaxClientIDLen || secret == "" || len(secret) > MaxSecretLen {
		return nil, ErrInvalidClient
	}
	// Fail closed: with the store unreachable, a deleted client cannot be
	// told from a live one.
	if _, healthy := a.state.freshness(); !healthy {
		return nil, ErrUnavailable
	}
	rec, err := a.lookupClient(ctx, clientID)
	if errors.Is(err, ErrClientNotFound) {
		a.hasher.dummyVerify(secret)
		return nil, ErrInvalidClient
	}
	if err != nil {
		return nil, err
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
func (a *Authenticator) checkSecret(rec *ClientRecord, hash, secret string) (ok, rehash bool) {
	ok, rehash, err := a.hasher.verify(hash, secret)
	if err != nil {
		// A corrupt stored hash: refuse, and tell the operator (not the caller).
		a.log.Error("authsvc: stored secret hash unusable", "client_id", rec.ID, "err", err)
		return false, false
	}
	return ok, rehash
}

// lookupClient returns a client's record from memory, or from the store
// when memory does not have it yet (created a moment ago elsewhere).
func (a *Authenticator) lookupClient(ctx context.Context, clientID string) (*ClientRecord, error) {
	if rec := a.state.client(clientID); rec != nil {
		return rec, nil
	}
	rec, err := a.store.Client(ctx, clientID)
	if err != nil {
		return nil, err
	}
	a.state.putClient(clientID, rec)
	return rec, nil
}

// upgradeHash replaces a legacy or weaker hash after a successful login. The
// secret was a caller's choice (legacy hashes come from imported clients), so
// it gets argon2id; a generated one keeps its fast hash under the pepper.
// Failure is logged, not returned: the login itself was valid.
func (a *Authenticator) upgradeHash(ctx context.Context, rec *ClientRecord, secret string) {
	var newHash string
	var err error
	if isGeneratedHash(rec.SecretHash) {
		newHash = a.hasher.hashGenerated(secret)
	} else if newHash, err = a.hasher.hashChosen(secret); err != nil {
		// A legacy secret shorter than today's minimum still upgrades: the
		// minimum guards new secrets, the upgrade only strengthens storage.
		newHash, err = a.hasher.hashArgon2(secret)
	}
	if err == nil {
		var updated *ClientRecord
		updated, err = a.store.UpdateClient(ctx, rec.ID, func(cur *ClientRecord) error {
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
		}
	}
	if err != nil {
		a.log.Warn("authsvc: could not upgrade secret hash", "client_id", rec.ID, "err", err)
		return
	}
	a.log.Info("authsvc: upgraded secret hash", "client_id", rec.ID)
}

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
	if synced, _ := a.state.freshness(); time.Since(synced) > a.cfg.MaxStaleness {
		return nil, fmt.Errorf("%w: no word from the store for %s", ErrUnavailable, time.Since(synced).Round(time.Second))
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
func (a *Authenticator) shareStrings(c *Claims, rec *ClientRecord) {
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
	if err := a.store.RevokeToken(ctx, claims.ID, claims.Subject, exp); err != nil {
		return err
	}
	a.stats.revocations.Add(1)
	a.state.revoke(claims.ID, exp.Unix())
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

// Ping checks that the store can be reached.
func (a *Authenticator) Ping(ctx context.Context) error {
	return a.store.Ping(ctx)
}

func wrapErr(base error, msg string) error { return fmt.Errorf("%w: %s", base, msg) }

// errStale: a conditional update found the record changed meanwhile.
var errStale = errors.New("authsvc: record changed meanwhile")

// checkClientID accepts 1-128 bytes of printable UTF-8 without white space.
func checkClientID(id string) error {
	if id == "" || len(id) > MaxClientIDLen || !utf8.ValidString(id) {
		return fmt.Errorf("%w: client_id must be 1 to %d bytes of UTF-8", ErrInvalidArgument, MaxClientIDLen)
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%w: client_id must not contain spaces or control characters", ErrInvalidArgument)
		}
	}
	return nil
}

// checkAudience accepts a printable, space-free string of up to 512 bytes.
func checkAudience(aud string) error {
	if aud == "" || len(aud) > 512 || !utf8.ValidString(aud) {
		return fmt.Errorf("%w: audience must be 1 to 512 bytes of UTF-8", ErrInvalidArgument)
	}
	for _, r := range aud {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%w: audience must not contain spaces or control characters", ErrInvalidArgument)
		}
	}
	return nil
}

func checkAudiences(auds []string) error {
	if len(auds) > MaxAudiences {
		return fmt.Errorf("%w: at most %d audiences", ErrInvalidArgument, MaxAudiences)
	}
	for _, aud := range auds {
		if err := checkAudience(aud); err != nil {
			return err
		}
	}
	return nil
}

// normalizeScopes checks each scope against RFC 6749 §3.3 (scope-token =
// 1*( %x21 / %x23-5B / %x5D-7E )) and removes duplicates, keeping order.
func normalizeScopes(scopes []string) ([]string, error) {
	if len(scopes) > MaxScopes {
		return nil, fmt.Errorf("%w: at most %d scopes", ErrInvalidScope, MaxScopes)
	}
	out := make([]string, 0, len(scopes))
	seen := make(map[string]bool, len(scopes))
	for _, s := range scopes {
		if s == "" || len(s) > MaxScopeLen {
			return nil, fmt.Errorf("%w: a scope must be 1 to %d characters", ErrInvalidScope, MaxScopeLen)
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
				return nil, fmt.Errorf("%w: scope %q has a character RFC 6749 forbids", ErrInvalidScope, s)
			}
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out, nil
}

// ParseScope splits a space-separated scope parameter (RFC 6749 §3.3).
func ParseScope(s string) []string {
	return strings.Fields(s)
}

// grantScopes returns the scopes a token gets: all granted when none are
// requested, else the requested ones, each of which must be granted.
func grantScopes(granted, requested []string) ([]string, error) {
	if len(requested) == 0 {
		return granted, nil
	}
	requested, err := normalizeScopes(requested)
	if err != nil {
		return nil, err
	}
	for _, r := range requested {
		found := false
		for _, g := range granted {
			if g == r {
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: %q is not granted to this client", ErrInvalidScope, r)
		}
	}
	return requested, nil
}
