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
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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

	// DPoPWindow is how far a DPoP proof's iat may be from now, either way
	// (RFC 9449 §11.1); its jti is remembered that long. Zero means
	// DefaultDPoPWindow (60 seconds); at most 10 minutes.
	DPoPWindow time.Duration

	// ClientCAs, when set, enables tls_client_auth (RFC 8705 §2.1): a
	// client of that method authenticates with a TLS client certificate
	// that chains to one of these CAs and carries its registered subject
	// DN or SAN. The TLS server must request client certificates without
	// verifying them itself (tls.RequestClientCert): a self-signed one
	// would not chain, and each method checks its own rule.
	ClientCAs *x509.CertPool
	// SelfSignedClientCerts enables self_signed_tls_client_auth (RFC 8705
	// §2.2): a client of that method authenticates with a certificate
	// whose public key is one of its registered keys (jwks or jwks_uri).
	SelfSignedClientCerts bool

	// DPoPTokenNonce requires a server nonce (RFC 9449 §8) in DPoP proofs
	// at the token endpoint, and DPoPResourceNonce (§9) in proofs checked
	// with an access token (CheckDPoPProof: authhttp's GET /verify,
	// Middleware): a proof without a current nonce is refused with a
	// *DPoPNonceError naming one. Nonces are stateless, valid for one to
	// two DPoPWindows, and keyed by a key derived from the signing keys,
	// so every instance on the store accepts every other's without a
	// store round trip. Off by default.
	DPoPTokenNonce    bool
	DPoPResourceNonce bool

	// DPoPSharedReplay records the jti of every DPoP proof checked with an
	// access token (CheckDPoPProof at a resource: GET /verify, Middleware)
	// in the store, as the token endpoint's always are, so that a proof
	// replayed to another instance within DPoPWindow is refused there too.
	// Off by default: those jtis are remembered in this process only (RFC
	// 9449 §11.1 lets a server keep its own window), since the store write
	// is most of a DPoP request's cost (docs/performance.md).
	DPoPSharedReplay bool

	// Logger receives the library's few log lines (legacy hash upgrades,
	// store errors). Nil means no logging. Secrets and tokens are never logged.
	Logger *slog.Logger

	// Now is the clock of token times (iat, exp), and of the cache of
	// fetched keys (jwks_uri, trusted issuers). Nil means time.Now; tests
	// set it. Staleness of the in-memory state is measured on the real clock.
	Now func() time.Time

	// PollInterval is how often the in-memory state catches up with the
	// store's change log. PostgreSQL also notifies every instance at once;
	// the poll is the safety net for a lost notification, and the only
	// channel on SQLite (for changes made by another process, such as the
	// authd CLI). Zero means one second.
	PollInterval time.Duration

	// MaxStaleness bounds how long the Authenticator answers from memory
	// after its last successful catch-up with the store, whatever keeps it
	// from the store (an outage, a partition that drops packets, a hung
	// server): past it Verify fails with ErrUnavailable. Until then a
	// revocation made on another instance is not seen. Zero means 30
	// seconds. Authenticate is stricter: it fails closed as soon as a
	// catch-up fails, and never issues past MaxStaleness either.
	MaxStaleness time.Duration

	// MaxRevocationsPerClient bounds a client's live revocations (tokens
	// logged out that have not expired yet), so that no client can grow
	// the store and every instance's memory without bound by minting and
	// revoking. Past it, revoking one of its tokens logs the client out
	// everywhere instead (LogoutClient: every token it was issued so far
	// is refused; it can get new ones). Zero means 10,000; the count is
	// this instance's view, so instances revoking at once may overshoot it
	// by what they do within a catch-up.
	MaxRevocationsPerClient int

	// MaxChanges bounds the change log by count, as its age bound (a token
	// lifetime plus an hour) does by time: housekeeping deletes the changes
	// beyond the newest MaxChanges. An instance or a RemoteVerifier that
	// falls further behind than that reloads everything (takes a snapshot).
	// Zero means 1,000,000.
	MaxChanges int

	// StoreTimeout bounds each round trip to the store: a connection
	// attempt, and on PostgreSQL every read or write that makes no
	// progress, fails after it, and so does a catch-up with the change log
	// that takes longer. Zero means 5 seconds.
	StoreTimeout time.Duration

	// JWKSMaxAge is how long verifiers may cache the JWKS (authd sends it as
	// Cache-Control max-age). A rotated key is published at once but used
	// for signing only after this long, so no verifier meets an unknown
	// kid. Zero means 5 minutes.
	JWKSMaxAge time.Duration

	// MaxAssertionLifetime bounds how far ahead of now the exp of a
	// private_key_jwt client assertion may be (RFC 7523 §3 asks servers to
	// limit it): a longer-lived assertion is refused. Zero means 5 minutes.
	// A trusted issuer's tokens have their own bound (TrustedIssuer.MaxLifetime).
	MaxAssertionLifetime time.Duration

	// HTTPClient fetches the keys of private_key_jwt clients (jwks_uri)
	// and of trusted issuers (jwks_uri, OIDC discovery); each fetch is
	// bounded by 5 seconds and 256 KiB whatever its settings. Nil means a
	// client with a 5 s timeout. Give one with your CA pool to reach an
	// issuer behind a private CA.
	HTTPClient *http.Client
	// ClientCacheSize bounds how many client records are kept in memory
	// (default 100,000): the clients in use are read from the store once
	// and kept current by the change log; others are read on their next
	// use. While the store is unreachable, tokens of a client not in the
	// cache cannot be verified (ErrUnavailable).
	ClientCacheSize int

	// KeyRotationPeriod, when set, rotates the signing key automatically
	// once the newest key is older than this. Zero means never (rotate
	// with RotateKeys or `authd keys rotate`).
	KeyRotationPeriod time.Duration
}

// Authenticator issues, verifies and revokes tokens for the clients in its
// Store. It is safe for concurrent use. New starts three goroutines: two
// keep its in-memory state current with the store, one writes the
// addresses clients authenticated from (RememberAddress); Close stops them,
// after writing what is queued (close the Store separately, after).
type Authenticator struct {
	store    Store
	cfg      Config
	hasher   *secretHasher
	keys     atomic.Pointer[keySet]
	dpop     dpopState // DPoP headers read, and resource proofs' jtis (unless Config.DPoPSharedReplay)
	state    *state
	known    *knownAddrs // who authenticated from where (known.go)
	fetcher  *keyFetcher // keys of jwks_uris and trusted issuers (keyfetch.go)
	now      func() time.Time
	log      *slog.Logger
	audience []string

	stats counters

	scopes   atomic.Pointer[scopeSet] // the last ScopesSupported
	scopesMu sync.Mutex               // one read of the scopes at a time

	stop context.CancelFunc // stops the background sync
	done sync.WaitGroup     // the background goroutines
	kick chan struct{}      // a change notification: catch up now
}

// New checks cfg, loads (or, on a fresh store, generates) the signing keys,
// loads the live revocations and the last 24 hours' known addresses (see
// KnownAddress) into memory, and starts following the store's change log
// and filling the client cache (Config.ClientCacheSize) in the background.
// Close stops that. It fails early on a bad Config.
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
		fetcher:  newKeyFetcher(cfg.HTTPClient, cfg.Logger, cfg.Now),
	}
	if len(a.audience) == 0 && cfg.SigningAlg != AlgHS256 {
		a.audience = []string{cfg.Issuer}
	}
	store.setTimeout(cfg.StoreTimeout)
	keys, err := loadKeySet(ctx, store, cfg)
	if err != nil {
		return nil, err
	}
	a.keys.Store(keys)
	a.state = newState(cfg.ClientCacheSize)
	loadRevocations, err := a.state.loadInBackground(ctx, store, time.Now(), a.tokenLifetimeAgo(), a.reloadKeys)
	if err != nil {
		return nil, err
	}
	a.known = newKnownAddrs()
	if err := a.refreshKnown(ctx); err != nil {
		// Advisory: follow's next read takes the whole window again.
		a.log.Warn("authsvc: reading the addresses clients authenticated from failed; retrying in the background", "err", err)
	}
	bg, stop := context.WithCancel(context.Background())
	a.stop = stop
	a.kick = make(chan struct{}, 1)
	a.done.Add(5)
	loaded := make(chan struct{})
	go func() {
		defer a.done.Done()
		defer close(loaded)
		loadRevocations(bg, func(err error) {
			a.log.Warn("authsvc: reading the revocations into memory failed; retrying (until then tokens are checked against the store)", "err", err)
		})
	}()
	// Most stores load in milliseconds: New returns with them in memory.
	// Millions of revocations go on loading after it returns.
	select {
	case <-loaded:
	case <-time.After(loadWait):
	case <-ctx.Done():
	}
	go a.follow(bg)
	go a.watch(bg)
	go a.writeKnown(bg)
	go a.warmClients(bg)
	return a, nil
}

// loadWait is how long New waits for the revocations to be in memory
// before it returns and lets them load in the background.
const loadWait = 250 * time.Millisecond

// warmClients fills the client cache from the store after start, a page at
// a time, until it is full or every client is in: an instance with fewer
// clients than the cache holds serves them all from memory, as if it had
// loaded them at start, without making start wait for them.
func (a *Authenticator) warmClients(ctx context.Context) {
	defer a.done.Done()
	after := ""
	for room := a.state.maxClients; room > 0 && ctx.Err() == nil; {
		version := a.state.versionOfClients()
		rctx, cancel := context.WithTimeout(ctx, a.cfg.StoreTimeout)
		page, err := a.store.listClients(rctx, "", after, min(room, warmPage))
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				a.log.Debug("authsvc: warming the client cache stopped; clients are read on use", "err", err)
			}
			return
		}
		for i := range page {
			a.state.fillClient(page[i].ID, &page[i], version)
		}
		if len(page) < warmPage {
			return
		}
		room -= len(page)
		after = page[len(page)-1].ID
	}
}

// warmPage is how many clients warmClients reads at once.
const warmPage = 1000

// tokenLifetimeAgo is the earliest a token still alive can have been issued.
func (a *Authenticator) tokenLifetimeAgo() time.Time {
	return a.now().Add(-a.cfg.TokenTTL - a.cfg.Leeway)
}

// fresh reports whether the in-memory state may be trusted: ErrUnavailable
// once the last successful catch-up is older than MaxStaleness, and, when
// issuing (a deleted or rotated client cannot be told from a live one
// without the store), as soon as a catch-up has failed.
func (a *Authenticator) fresh(issuing bool) error {
	synced, healthy := a.state.freshness()
	if age := time.Since(synced); age > a.cfg.MaxStaleness {
		return fmt.Errorf("%w: no word from the store for %s", ErrUnavailable, age.Round(time.Second))
	}
	if issuing && !healthy {
		return fmt.Errorf("%w: the last catch-up with the store failed", ErrUnavailable)
	}
	return nil
}

// Ready reports whether the Authenticator can serve: its state is fresh
// and the store answers now. It returns within ctx's deadline only as far
// as the store's driver honours it; StoreTimeout bounds it in any case.
func (a *Authenticator) Ready(ctx context.Context) error {
	if err := a.fresh(true); err != nil {
		return err
	}
	return a.store.Ping(ctx)
}

// Close stops the background sync, after writing the known addresses
// still queued (see RememberAddress; each write is bounded by 5 seconds).
// It does not close the Store.
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
	if cfg.DPoPWindow == 0 {
		cfg.DPoPWindow = DefaultDPoPWindow
	}
	if cfg.DPoPWindow < time.Second || cfg.DPoPWindow > 10*time.Minute {
		return fmt.Errorf("authsvc: Config.DPoPWindow is %s; it must be between 1s and 10m", cfg.DPoPWindow)
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
	if cfg.MaxRevocationsPerClient <= 0 {
		cfg.MaxRevocationsPerClient = 10_000
	}
	if cfg.MaxChanges <= 0 {
		cfg.MaxChanges = 1_000_000
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = defaultStoreTimeout
	}
	if cfg.JWKSMaxAge <= 0 {
		cfg.JWKSMaxAge = 5 * time.Minute
	}
	if cfg.MaxAssertionLifetime <= 0 {
		cfg.MaxAssertionLifetime = 5 * time.Minute
	}
	for _, aud := range cfg.DefaultAudience {
		if err := checkAudience(aud); err != nil {
			return fmt.Errorf("authsvc: Config.DefaultAudience: %w", err)
		}
	}
	return nil
}

// Ping checks that the store can be reached.
func (a *Authenticator) Ping(ctx context.Context) error {
	return a.store.Ping(ctx)
}

// Now returns the time on the Authenticator's clock (Config.Now): the
// clock of token times, for programs that reason about them (authhttp's
// console renews and ends sessions by it).
func (a *Authenticator) Now() time.Time { return a.now() }

// Issuer returns the configured issuer.
func (a *Authenticator) Issuer() string { return a.cfg.Issuer }

// ScopesSupported returns the union of every client's scopes, sorted: what
// authhttp's discovery advertises as RFC 8414 scopes_supported. It is read
// from the store (every client's distinct scope list, through no cache of
// clients) and read again after a client change, by the first caller that
// asks; when a read takes longer than a few milliseconds (millions of
// clients) and the change was another instance's, at most so often that
// those reads take a tenth of the time: other callers meanwhile get the
// last union. A change this instance made shows at once. Nil when the store has not
// been read yet and cannot be.
// The slice is shared, so do not modify it.
func (a *Authenticator) ScopesSupported() []string {
	version, own := a.state.clientChanges()
	cur := a.scopes.Load()
	if cur != nil && (cur.version == version || cur.own == own && cur.took > cheapRead && time.Since(cur.readAt) < 10*cur.took) {
		return cur.scopes
	}
	if !a.scopesMu.TryLock() {
		if cur == nil {
			a.scopesMu.Lock() // the first read: wait for it
			defer a.scopesMu.Unlock()
			if cur = a.scopes.Load(); cur != nil {
				return cur.scopes
			}
			return nil
		}
		return cur.scopes
	}
	defer a.scopesMu.Unlock()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.StoreTimeout)
	defer cancel()
	lists, err := a.store.scopeLists(ctx)
	if err != nil {
		if cur != nil {
			return cur.scopes
		}
		return nil
	}
	seen := map[string]bool{}
	for _, l := range lists {
		for _, s := range ParseScope(l) {
			seen[s] = true
		}
	}
	scopes := slices.AppendSeq([]string{}, maps.Keys(seen))
	slices.Sort(scopes)
	a.scopes.Store(&scopeSet{version: version, own: own, scopes: scopes, readAt: time.Now(), took: time.Since(start)})
	return scopes
}

// cheapRead: a read of the scopes this quick is done after every change.
const cheapRead = 10 * time.Millisecond

// scopeSet is a ScopesSupported result: the union, the clients' version
// it was read at, when, and how long the read took.
type scopeSet struct {
	version uint64
	own     uint64 // the instance's own client changes it was read after
	scopes  []string
	readAt  time.Time
	took    time.Duration
}

// ForIssuer reports whether verified claims are of a token meant for this
// Authenticator itself, as the audience of its own routes (authhttp's admin
// routes and token introspection accept only such tokens): its aud
// includes the issuer, or it is exactly the default audience, the aud of a
// token requested without naming one (with HS256 and no
// Config.DefaultAudience, no aud at all). A token minted for another
// service, such as aud ["https://notes.internal"], is not.
func (a *Authenticator) ForIssuer(c *Claims) bool {
	return c.hasAudience(a.cfg.Issuer) || slices.Equal(c.Audience, a.audience)
}
