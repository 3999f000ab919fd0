package authsvc

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// RemoteVerifier verifies tokens of a remote authd without calling it per
// request: it checks signatures locally against the authd's JWKS, and
// follows its revocation feed so that a logout, a per-client "log out
// everywhere" or a deleted client is refused within about a second.
//
// When the feed has been unreachable for longer than the staleness bound
// (WithMaxStaleness, default 30 s) Verify fails closed with ErrUnavailable,
// unless WithInsecureFailOpen was given. Close stops its goroutine.
type RemoteVerifier struct {
	issuer   string
	jwksURL  string
	feedURL  string
	client   *http.Client
	feed     *http.Client // client without its overall Timeout: a long-poll outlasts it
	feedWait time.Duration
	clientID string
	secret   string
	leeway   time.Duration
	maxStale time.Duration
	failOpen bool
	log      *slog.Logger
	now      func() time.Time // the clock of token checks, the JWKS age and staleness

	keysMu      sync.RWMutex // guards keys, methods, parser, keysFetched
	keys        map[string]remoteKey
	parser      *jwt.Parser
	keysFetched time.Time  // by v.now
	fetchMu     sync.Mutex // one JWKS fetch in flight; waiters share its result

	mu       sync.RWMutex // guards everything below
	revoked  *revocationSet
	cutoffs  map[string]int64
	deleted  map[int64]bool
	cursor   int64
	fedAt    time.Time // the feed last answered (by v.now)
	purgedAt time.Time // expired revocations were last purged (by v.now)
	verified map[[32]byte]*Claims

	dpop dpopState // the DPoP proofs checked by this process

	stop context.CancelFunc
	done chan struct{}
}

type remoteKey struct {
	alg string
	pub crypto.PublicKey
}

// RemoteOption configures NewRemoteVerifier.
type RemoteOption func(*RemoteVerifier)

// WithClientCredentials sets the client the verifier authenticates as to
// read the revocation feed (authd requires one; any client will do).
func WithClientCredentials(clientID, secret string) RemoteOption {
	return func(v *RemoteVerifier) { v.clientID, v.secret = clientID, secret }
}

// WithHTTPClient sets the HTTP client. Nil means one with a 10 s timeout
// for discovery and JWKS (the feed's long-poll has its own deadline).
func WithHTTPClient(c *http.Client) RemoteOption {
	return func(v *RemoteVerifier) { v.client = c }
}

// WithMaxStaleness sets how long Verify keeps trusting what it knows while
// the feed is unreachable (default 30 s). Past it Verify fails closed.
func WithMaxStaleness(d time.Duration) RemoteOption {
	return func(v *RemoteVerifier) { v.maxStale = d }
}

// WithInsecureFailOpen is insecure: it MUST NOT be used where accepting a
// revoked token is worse than refusing a valid one. It makes Verify keep
// accepting validly signed tokens while the revocation feed is unreachable,
// however long: a token logged out during the outage, or one of a client
// deleted or logged out everywhere meanwhile, is accepted until it expires.
// Without it Verify fails closed, with ErrUnavailable, once the feed has
// been silent for longer than WithMaxStaleness.
func WithInsecureFailOpen() RemoteOption {
	return func(v *RemoteVerifier) { v.failOpen = true }
}

// WithRemoteLogger sets where the verifier logs feed outages.
func WithRemoteLogger(l *slog.Logger) RemoteOption {
	return func(v *RemoteVerifier) { v.log = l }
}

// WithClock sets the clock of token checks and cache lifetimes: a token's
// exp and nbf, the age of the fetched JWKS (how soon an unknown kid may
// refetch it) and the staleness of the revocation feed. Nil means time.Now.
// The primary use is testing. Network timeouts, the feed's long-poll and
// its retry back-off always run on the real clock.
func WithClock(now func() time.Time) RemoteOption {
	return func(v *RemoteVerifier) { v.now = now }
}

var _ Verifier = (*RemoteVerifier)(nil)
var _ Verifier = (*Authenticator)(nil)

// NewRemoteVerifier discovers the authd at issuerURL (RFC 8414), fetches
// its JWKS and a snapshot of its revocations, and starts following the
// revocation feed. It fails if any of that fails.
func NewRemoteVerifier(ctx context.Context, issuerURL string, opts ...RemoteOption) (*RemoteVerifier, error) {
	v := &RemoteVerifier{
		issuer:   strings.TrimSuffix(issuerURL, "/"),
		leeway:   30 * time.Second,
		maxStale: 30 * time.Second,
		log:      slog.New(slog.DiscardHandler),
		revoked:  newRevocationSet(0, false),
		cutoffs:  map[string]int64{},
		deleted:  map[int64]bool{},
		verified: map[[32]byte]*Claims{},
		done:     make(chan struct{}),
	}
	for _, o := range opts {
		o(v)
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: 10 * time.Second}
	}
	// The long-poll has its own deadline (feedWait plus a margin, per poll);
	// an overall client Timeout shorter than it would fail every quiet poll
	// and, after the staleness bound, every Verify.
	feed := *v.client
	feed.Timeout = 0
	v.feed = &feed
	if v.feedWait == 0 {
		v.feedWait = feedWait
	}
	if v.clientID == "" || v.secret == "" {
		return nil, errors.New("authsvc: NewRemoteVerifier needs WithClientCredentials to read the revocation feed")
	}
	if err := v.discover(ctx); err != nil {
		return nil, err
	}
	if err := v.fetchKeys(ctx); err != nil {
		return nil, err
	}
	// An authd that is starting (reading millions of revocations) or has
	// just lost its store answers the snapshot 503 for a while: ask again,
	// for up to startRetry.
	for wait, until := 100*time.Millisecond, time.Now().Add(startRetry); ; wait = min(2*wait, 2*time.Second) {
		err := v.poll(ctx, 0)
		if err == nil {
			break
		}
		if !errors.Is(err, errFeedBusy) || time.Now().Add(wait).After(until) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
	bg, stop := context.WithCancel(context.Background())
	v.stop = stop
	go v.follow(bg)
	return v, nil
}

// startRetry bounds how long NewRemoteVerifier asks again for a snapshot
// an authd answers 503.
const startRetry = 30 * time.Second

// errFeedBusy: authd answered 503 (starting, or its store unreachable).
var errFeedBusy = errors.New("503 Service Unavailable")

// Close stops following the feed.
func (v *RemoteVerifier) Close() error {
	v.stop()
	<-v.done
	return nil
}

// maxDocument bounds the discovery and JWKS documents (a few kilobytes in
// practice). The feed has no such bound: its snapshot grows with the live
// revocations, and a verifier that cannot read it cannot start.
const maxDocument = 1 << 20

func (v *RemoteVerifier) getJSON(ctx context.Context, u string, auth bool, into any) error {
	return v.get(ctx, v.client, u, auth, into, maxDocument)
}

// get fetches u and decodes its JSON into into, reading at most limit
// bytes (0: no limit).
func (v *RemoteVerifier) get(ctx context.Context, client *http.Client, u string, auth bool, into any, limit int64) error {
	var setAuth func(*http.Request)
	if auth {
		setAuth = func(req *http.Request) { req.SetBasicAuth(url.QueryEscape(v.clientID), url.QueryEscape(v.secret)) }
	}
	return getJSON(ctx, client, u, setAuth, into, limit)
}

// getJSON fetches u with client (setAuth, when set, authenticates the
// request) and decodes its JSON into into, reading at most limit bytes
// (0: no limit). The one HTTP GET of the library: the RemoteVerifier's
// documents and feed, and the keys of clients and trusted issuers.
func getJSON(ctx context.Context, client *http.Client, u string, setAuth func(*http.Request), into any, limit int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if setAuth != nil {
		setAuth(req)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		return fmt.Errorf("authsvc: GET %s: %w", u, errFeedBusy)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("authsvc: GET %s: %s", u, resp.Status)
	}
	var body io.Reader = resp.Body
	if limit > 0 {
		// One byte more than allowed tells a document too large from one
		// cut short.
		b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return err
		}
		if int64(len(b)) > limit {
			return fmt.Errorf("authsvc: GET %s: the answer is larger than %d bytes", u, limit)
		}
		body = bytes.NewReader(b)
	}
	if err := json.NewDecoder(body).Decode(into); err != nil {
		return fmt.Errorf("authsvc: GET %s: %w", u, err)
	}
	return nil
}

func (v *RemoteVerifier) discover(ctx context.Context) error {
	var doc struct {
		Issuer       string `json:"issuer"`
		JWKSURI      string `json:"jwks_uri"`
		FeedEndpoint string `json:"revocation_feed_endpoint"`
	}
	if err := v.getJSON(ctx, v.issuer+"/.well-known/oauth-authorization-server", false, &doc); err != nil {
		return fmt.Errorf("authsvc: discovery: %w", err)
	}
	// RFC 8414 §3.3: the document must name the issuer it was fetched for.
	if doc.Issuer != v.issuer || doc.JWKSURI == "" {
		return fmt.Errorf("authsvc: discovery: issuer %q does not match %q, or no jwks_uri", doc.Issuer, v.issuer)
	}
	v.jwksURL, v.feedURL = doc.JWKSURI, doc.FeedEndpoint
	if v.feedURL == "" {
		v.feedURL = v.issuer + "/revocations"
	}
	return nil
}

// fetchKeys fetches the JWKS. Concurrent callers share one fetch; a failed
// fetch keeps the keys already known.
func (v *RemoteVerifier) fetchKeys(ctx context.Context) error {
	var raw json.RawMessage
	if err := v.getJSON(ctx, v.jwksURL, false, &raw); err != nil {
		return fmt.Errorf("authsvc: JWKS: %w", err)
	}
	set, err := parseJWKSet(raw, false) // a key we cannot use is skipped, not fatal
	if err != nil {
		return fmt.Errorf("authsvc: JWKS: %w", err)
	}
	keys := make(map[string]remoteKey, len(set))
	var methods []string
	for _, k := range set {
		if k.alg == "" {
			continue // authd names each key's alg, which keyFor holds tokens to
		}
		keys[k.kid] = remoteKey{alg: k.alg, pub: k.key}
		methods = append(methods, k.alg)
	}
	if len(keys) == 0 {
		return errors.New("authsvc: JWKS has no usable key")
	}
	parser := jwt.NewParser(jwt.WithValidMethods(methods), jwt.WithIssuer(v.issuer),
		jwt.WithExpirationRequired(), jwt.WithLeeway(v.leeway), jwt.WithTimeFunc(v.now))
	v.keysMu.Lock()
	v.keys, v.parser, v.keysFetched = keys, parser, v.now()
	v.keysMu.Unlock()
	return nil
}

// refetchAtMost is how often an unknown kid may trigger a JWKS fetch.
const refetchAtMost = 5 * time.Second

// keyFor finds the key of a token; an unknown kid refetches the JWKS once
// (rotation published a key this verifier has not seen), at most every
// refetchAtMost.
func (v *RemoteVerifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	v.keysMu.RLock()
	k, ok := v.keys[kid]
	fetched := v.keysFetched
	v.keysMu.RUnlock()
	if !ok && v.now().Sub(fetched) >= refetchAtMost {
		v.fetchMu.Lock()
		v.keysMu.RLock()
		k, ok = v.keys[kid]
		fetched = v.keysFetched
		v.keysMu.RUnlock()
		if !ok && v.now().Sub(fetched) >= refetchAtMost {
			if err := v.fetchKeys(ctx); err != nil {
				v.log.Warn("authsvc: JWKS refetch failed; keeping the known keys", "err", err)
			}
			v.keysMu.RLock()
			k, ok = v.keys[kid]
			v.keysMu.RUnlock()
		}
		v.fetchMu.Unlock()
	}
	if !ok {
		return nil, errors.New("unknown kid")
	}
	if t.Method.Alg() != k.alg {
		return nil, errors.New("alg does not match the key")
	}
	return k.pub, nil
}

// Verify checks a token's signature and claims locally, then what the
// revocation feed says of it. It makes no call to authd (except a JWKS
// refetch when it meets a new kid).
func (v *RemoteVerifier) Verify(ctx context.Context, token string) (*Claims, error) {
	v.mu.RLock()
	fedAt := v.fedAt
	v.mu.RUnlock()
	if !v.failOpen {
		if stale := v.now().Sub(fedAt); stale > v.maxStale {
			return nil, fmt.Errorf("%w: no word from the revocation feed for %s", ErrUnavailable, stale.Round(time.Second))
		}
	}
	if token == "" || len(token) > MaxTokenLen {
		return nil, fmt.Errorf("%w: empty or longer than %d bytes", ErrInvalidToken, MaxTokenLen)
	}
	key := tokenKey(token)
	v.mu.RLock()
	claims := v.verified[key]
	v.mu.RUnlock()
	seen := claims != nil
	if seen {
		if v.now().After(time.Unix(claims.ExpiresAt, 0).Add(v.leeway)) {
			return nil, ErrTokenExpired
		}
	} else {
		v.keysMu.RLock()
		parser := v.parser
		v.keysMu.RUnlock()
		var err error
		claims, err = parseAccessToken(parser, token, func(t *jwt.Token) (any, error) { return v.keyFor(ctx, t) })
		if err != nil {
			return nil, err
		}
	}
	if err := v.check(claims); err != nil {
		return nil, err
	}
	if !seen {
		// Cached on the first verification only: every hit re-checks the
		// revocations, so no cached token outlives one, and hits share a
		// read lock.
		v.mu.Lock()
		if len(v.verified) >= maxVerifiedTokens {
			clear(v.verified) // rare; the next requests re-verify
		}
		v.verified[key] = claims
		v.mu.Unlock()
	}
	// A copy: the caller may change what it gets, the cache must not change.
	c := *claims
	c.Audience = slices.Clone(claims.Audience)
	return &c, nil
}

// check refuses a token revoked, of a deleted client, or issued before its
// client's cut-off, as the feed has told so far.
func (v *RemoteVerifier) check(claims *Claims) error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.revoked.has(revocationKeyOf(claims.ID)) {
		return ErrTokenRevoked
	}
	if v.deleted[claims.ClientRowID] {
		return errClientDeleted
	}
	if cut, ok := v.cutoffs[claims.Subject]; ok && claims.IssuedAt < cut {
		return errClientCutOff
	}
	return nil
}

// feedWait is the long-poll the verifier asks authd for.
const feedWait = 20 * time.Second

// follow reads the revocation feed until Close, backing off on errors.
func (v *RemoteVerifier) follow(ctx context.Context) {
	defer close(v.done)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		v.mu.RLock()
		cursor, fedAt := v.cursor, v.fedAt
		v.mu.RUnlock()
		// After an outage longer than the staleness bound, start again from
		// a snapshot: the changes missed may since have been purged.
		if v.now().Sub(fedAt) > v.maxStale {
			cursor = 0
		}
		err := v.poll(ctx, cursor)
		if err == nil {
			backoff = 100 * time.Millisecond
			continue
		}
		if ctx.Err() != nil {
			return
		}
		v.log.Warn("authsvc: revocation feed unreachable", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// poll reads one page of the feed after cursor and applies it; after
// cursor 0, or when the feed answers a snapshot, every part of the
// snapshot.
func (v *RemoteVerifier) poll(ctx context.Context, cursor int64) error {
	u := v.feedURL + "?v=2&after=" + strconv.FormatInt(cursor, 10)
	if cursor > 0 {
		u += "&wait=" + strconv.Itoa(max(1, int(v.feedWait/time.Second)))
	}
	var page feedPage
	if err := v.getFeed(ctx, u, v.feedWait+10*time.Second, &page); err != nil {
		return fmt.Errorf("authsvc: revocation feed: %w", err)
	}
	var snap *revocationSet
	if page.Reset {
		// Built aside, part by part, and swapped in whole: until then
		// Verify goes on with what it had.
		var err error
		if snap, err = v.readSnapshot(ctx, &page); err != nil {
			return err
		}
	}
	if page.KeysChanged {
		// A rotation was published: fetch it now, long before it signs.
		v.fetchMu.Lock()
		if err := v.fetchKeys(ctx); err != nil {
			v.log.Warn("authsvc: JWKS refetch after a key change failed", "err", err)
		}
		v.fetchMu.Unlock()
	}
	now := v.now()
	v.apply(&page, snap, now)
	v.purgeExpired(now)
	return nil
}

// readSnapshot reads a snapshot whose first part is first, into a new
// set, and leaves in first the last part with the first's cut-offs and
// deletions. The next part is fetched while one is added: the sender
// serves from memory, so the two overlap. The set is sized by what comes,
// not by the snapshot's Total: a wrong or hostile hint cannot make the
// verifier allocate before a single key arrived.
func (v *RemoteVerifier) readSnapshot(ctx context.Context, first *feedPage) (*revocationSet, error) {
	snap := newRevocationSet(0, false)
	type part struct {
		page feedPage
		err  error
	}
	parts := make(chan part, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		for range parts { // the fetcher stops at cancel; wait for it
		}
	}()
	go func() {
		defer close(parts)
		for next, cursor := first.NextPart, first.Cursor; next != 0; {
			var p part
			u := fmt.Sprintf("%s?v=2&snapshot=%d&part=%d", v.feedURL, cursor, next)
			if p.err = v.getFeed(ctx, u, feedPartTimeout, &p.page); p.err != nil {
				p.err = fmt.Errorf("authsvc: revocation feed snapshot: %w", p.err)
			}
			select {
			case parts <- p:
			case <-ctx.Done():
				return
			}
			if p.err != nil {
				return
			}
			if p.page.NextPart != 0 && p.page.NextPart <= next {
				// Parts are numbered by the shards they start at: a feed
				// going back must not keep the verifier reading forever.
				select {
				case parts <- part{err: fmt.Errorf("authsvc: revocation feed snapshot: part %d named %d next", next, p.page.NextPart)}:
				case <-ctx.Done():
				}
				return
			}
			next = p.page.NextPart
		}
	}()
	addSnapshotKeys(snap, first.RevokedKeys)
	cut, deleted := first.Cutoffs, first.Deleted
	for p := range parts {
		if p.err != nil {
			return nil, p.err
		}
		addSnapshotKeys(snap, p.page.RevokedKeys)
		*first = p.page
	}
	first.Cutoffs, first.Deleted = cut, deleted
	return snap, nil
}

// addSnapshotKeys adds a snapshot part's revocations to set, making room
// in each shard for its share first.
func addSnapshotKeys(set *revocationSet, groups []feedKeys) {
	const n = len(revocationKey{})
	var more [revShards]int
	for _, g := range groups {
		for i := 0; i+n <= len(g.Keys); i += n {
			more[shardOf((*revocationKey)(g.Keys[i:i+n]))]++
		}
	}
	set.reserve(&more)
	for _, g := range groups {
		for i := 0; i+n <= len(g.Keys); i += n {
			set.put(revocationKey(g.Keys[i:i+n]), g.ExpiresAt, 0)
		}
	}
}

// feedPartTimeout bounds the reading of one part of a snapshot.
const feedPartTimeout = 30 * time.Second

// getFeed reads one answer of the feed, within timeout.
func (v *RemoteVerifier) getFeed(ctx context.Context, u string, timeout time.Duration, page *feedPage) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return v.get(ctx, v.feed, u, true, page, 0)
}

// apply applies a feed page, or a whole snapshot (snap, and the cut-offs
// and deletions of page).
func (v *RemoteVerifier) apply(page *feedPage, snap *revocationSet, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if snap != nil {
		v.revoked, v.cutoffs, v.deleted = snap, map[string]int64{}, map[int64]bool{}
	}
	for _, r := range page.Revoked {
		v.revoked.put(revocationKeyOf(r.JTI), r.ExpiresAt, 0)
	}
	for _, c := range page.Cutoffs {
		if c.NotBefore > v.cutoffs[c.ClientID] {
			v.cutoffs[c.ClientID] = c.NotBefore
		}
	}
	for _, d := range page.Deleted {
		v.deleted[d.RowID] = true
	}
	v.cursor, v.fedAt = page.Cursor, now
}

// purgeExpired forgets the revocations of tokens expired before now, a
// shard of the set per hold of the lock, at most once a minute (a
// revocation past its exp refuses nothing a token's own exp does not).
func (v *RemoteVerifier) purgeExpired(now time.Time) {
	v.mu.Lock()
	due := now.Sub(v.purgedAt) >= expiryBucketSecs*time.Second
	if due {
		v.purgedAt = now
	}
	v.mu.Unlock()
	if !due {
		return
	}
	for i := range revShards {
		v.mu.Lock()
		v.revoked.sweepShard(i, now.Unix(), nil)
		v.mu.Unlock()
	}
}

// CheckDPoPProof checks a DPoP proof as Authenticator.CheckDPoPProof does,
// within DefaultDPoPWindow, except that a jti is remembered by this
// process only: a proof replayed to another instance of the service
// within the window passes there (RFC 9449 §11.1 leaves the scope of the
// check to the server). Middleware uses it for a RemoteVerifier.
func (v *RemoteVerifier) CheckDPoPProof(ctx context.Context, proof string, req DPoPRequest) (*DPoPProof, error) {
	return checkDPoPProof(ctx, proof, req, v.now(), DefaultDPoPWindow, &v.dpop.headers, v.dpop.seen.use)
}
