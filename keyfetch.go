package authsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The keys of private_key_jwt clients with a jwks_uri and of trusted
// issuers without inline keys: fetched with a timeout and a size cap,
// cached, and fetched again when a token names a kid the cache lacks, at
// most once per refetchAtMost and source, so that tokens with made-up
// kids cannot make us hammer someone's server. A failed fetch keeps the
// keys already known; without any, the logins of that client (or issuer)
// fail, and nothing else does.

// keySource is where a set of keys is fetched from: a jwks_uri, or the
// OIDC discovery document of an issuer, which names its jwks_uri.
type keySource struct {
	jwksURI string
	issuer  string // OIDC discovery, when jwksURI is ""
}

func (s keySource) String() string {
	if s.jwksURI != "" {
		return s.jwksURI
	}
	return "OIDC discovery of " + s.issuer
}

const (
	keysMaxAge   = 5 * time.Minute // fetched keys are fetched again after this
	fetchTimeout = 5 * time.Second // one fetch (discovery and JWKS)
	maxKeySets   = 10_000          // sources cached; beyond, idle ones are forgotten
)

// keyFetcher caches fetched key sets by source.
type keyFetcher struct {
	client *http.Client
	log    *slog.Logger
	now    func() time.Time // of the cache's ages (Config.Now: tests advance it)

	mu   sync.Mutex // guards sets and each fetchedSet's fields
	sets map[keySource]*fetchedSet
}

type fetchedSet struct {
	keys     jwkSet        // nil until a fetch succeeds
	fetched  time.Time     // the last successful fetch
	tried    time.Time     // the last fetch started
	err      error         // the last fetch's failure, nil after a success
	inflight chan struct{} // closed when the fetch in flight ends; nil when none
	used     time.Time
}

func newKeyFetcher(client *http.Client, log *slog.Logger, now func() time.Time) *keyFetcher {
	if client == nil {
		client = &http.Client{Timeout: fetchTimeout}
	}
	// Follow redirects only where a jwks_uri may point: keys fetched over
	// plain HTTP from anywhere could be anyone's.
	c := *client
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		return checkJWKSURI("a redirect", req.URL.String())
	}
	return &keyFetcher{client: &c, log: log, now: now, sets: map[keySource]*fetchedSet{}}
}

// errKeysUnavailable: no keys could be had from a source.
var errKeysUnavailable = errors.New("authsvc: keys unavailable")

// keys returns the keys of src for a JWS with kid ("" for none): the
// cached ones while they are younger than keysMaxAge and, when kid is
// given, have it; else those of a new fetch, if one may start (at most one
// per refetchAtMost, shared by every caller), or the cached ones.
func (f *keyFetcher) keys(ctx context.Context, src keySource, kid string) (jwkSet, error) {
	f.mu.Lock()
	e := f.sets[src]
	if e == nil {
		if len(f.sets) >= maxKeySets {
			f.evictLocked()
		}
		e = &fetchedSet{}
		f.sets[src] = e
	}
	now := f.now()
	e.used = now
	stale := e.keys == nil || now.Sub(e.fetched) >= keysMaxAge || kid != "" && !e.keys.hasKid(kid)
	fetch := stale && e.inflight == nil && now.Sub(e.tried) >= refetchAtMost
	if fetch {
		e.tried, e.inflight = now, make(chan struct{})
	}
	wait := e.inflight
	f.mu.Unlock()

	switch {
	case fetch:
		// This caller fetches for all, on a context of its own: giving up
		// its wait must not fail the fetch the others wait for.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		keys, err := f.fetch(fctx, src)
		cancel()
		f.mu.Lock()
		if err == nil {
			e.keys, e.fetched, e.err = keys, f.now(), nil
		} else {
			e.err = err
		}
		close(e.inflight)
		e.inflight = nil
		f.mu.Unlock()
		if err != nil {
			f.log.Warn("authsvc: fetching signing keys failed; logins that need them fail", "source", src.String(), "err", err)
		}
	case stale && wait != nil:
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wait:
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if e.keys == nil {
		if e.err != nil {
			return nil, fmt.Errorf("%w: %w", errKeysUnavailable, e.err)
		}
		return nil, errKeysUnavailable // a fetch failed moments ago; not retried yet
	}
	return e.keys, nil
}

// evictLocked forgets the sources not used for the longest; f.mu is held.
func (f *keyFetcher) evictLocked() {
	cutoff := f.now().Add(-keysMaxAge)
	for src, e := range f.sets {
		if e.inflight == nil && e.used.Before(cutoff) {
			delete(f.sets, src)
		}
	}
	for src, e := range f.sets { // still full: any idle ones (map order is random)
		if len(f.sets) < maxKeySets*9/10 {
			break
		}
		if e.inflight == nil {
			delete(f.sets, src)
		}
	}
}

// fetch reads the key set of src: through OIDC discovery (whose issuer
// must be the one asked for, OpenID Connect Discovery §4.3) when it has
// no jwks_uri.
func (f *keyFetcher) fetch(ctx context.Context, src keySource) (jwkSet, error) {
	uri := src.jwksURI
	if uri == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		u := strings.TrimSuffix(src.issuer, "/") + "/.well-known/openid-configuration"
		if err := getJSON(ctx, f.client, u, nil, &doc, MaxJWKSBytes); err != nil {
			return nil, err
		}
		if doc.Issuer != src.issuer {
			return nil, fmt.Errorf("authsvc: discovery at %s names issuer %q, not %q", u, clipText(doc.Issuer), src.issuer)
		}
		if err := checkJWKSURI("jwks_uri", doc.JWKSURI); err != nil {
			return nil, fmt.Errorf("authsvc: discovery at %s: %s", u, ErrorMessage(err))
		}
		uri = doc.JWKSURI
	}
	var raw json.RawMessage
	if err := getJSON(ctx, f.client, uri, nil, &raw, MaxJWKSBytes); err != nil {
		return nil, err
	}
	set, err := parseJWKSet(raw, false)
	if err != nil {
		return nil, fmt.Errorf("authsvc: %s: %w", uri, err)
	}
	return set, nil
}
