package authsvc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Errors of BearerToken.
var (
	// ErrNoToken: the request has no Authorization header, one of another
	// scheme, or "Bearer" with nothing but spaces after it (RFC 6750 §3.1:
	// a request that lacks authentication information, answered with a
	// challenge and no error code).
	ErrNoToken = errors.New("authsvc: no bearer token")
	// ErrMalformedAuthorization: more than one Authorization header (RFC
	// 6750 invalid_request).
	ErrMalformedAuthorization = errors.New("authsvc: malformed Authorization header")
)

// BearerToken returns the token of the request's Authorization header
// (RFC 6750 §2.1): exactly one header, the scheme "Bearer" in any letter
// case, one or more spaces, then a b64token of at most MaxTokenLen bytes.
// No header, another scheme or a blank credential gives ErrNoToken; a
// token that is not a b64token, or is too long, ErrInvalidToken.
func BearerToken(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return "", ErrNoToken
	case 1:
	default:
		return "", ErrMalformedAuthorization
	}
	return parseBearer(values[0])
}

func parseBearer(h string) (string, error) {
	const scheme = "bearer"
	if len(h) < len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) || len(h) > len(scheme) && h[len(scheme)] != ' ' {
		return "", ErrNoToken
	}
	tok := strings.TrimLeft(h[len(scheme):], " ")
	if tok == "" {
		return "", ErrNoToken // a blank credential is no credential
	}
	if len(tok) > MaxTokenLen || !isB64Token(tok) {
		return "", ErrInvalidToken
	}
	return tok, nil
}

// isB64Token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// Verifier checks an access token and returns its claims. Authenticator and
// RemoteVerifier are Verifiers. Verify must be safe for concurrent use by
// multiple goroutines.
type Verifier interface {
	Verify(ctx context.Context, token string) (*Claims, error)
}

// ErrorWriter writes a refusal. status is 401, 403 or 503; code is the RFC
// 6750 error code ("invalid_token", "insufficient_scope", "invalid_request")
// or "" when no token was presented. It must not echo the token.
type ErrorWriter func(w http.ResponseWriter, r *http.Request, status int, code string)

// MiddlewareOption configures Middleware.
type MiddlewareOption func(*middleware)

// WithRealm sets the realm of WWW-Authenticate challenges (default "authsvc").
func WithRealm(realm string) MiddlewareOption {
	return func(m *middleware) { m.realm = realm }
}

// WithSkipPaths lets requests for these exact paths (such as /healthz)
// through without a token.
func WithSkipPaths(paths ...string) MiddlewareOption {
	return func(m *middleware) {
		for _, p := range paths {
			m.skip[p] = true
		}
	}
}

// WithErrorWriter replaces the default JSON refusal body. The status and
// the WWW-Authenticate header are set before it is called.
func WithErrorWriter(f ErrorWriter) MiddlewareOption {
	return func(m *middleware) { m.writeError = f }
}

// WithAudience refuses tokens whose aud does not contain aud: a token
// minted for another service is not accepted here.
func WithAudience(aud string) MiddlewareOption {
	return func(m *middleware) { m.audience = aud }
}

// WithDPoPURL sets how the middleware learns the URL a request was sent
// to, which a DPoP proof's htu must name (RFC 9449 §4.3): behind a proxy
// or a prefix-stripping router, the public URL. The default is RequestURL.
func WithDPoPURL(f func(r *http.Request) *url.URL) MiddlewareOption {
	return func(m *middleware) { m.dpopURL = f }
}

// WithDPoPReplayInProcess remembers DPoP proofs' jtis in this process only
// (DefaultDPoPWindow, on the real clock), even with an Authenticator whose
// Config.DPoPSharedReplay records them in the store so that every instance
// refuses a replay. (Without that setting an Authenticator keeps them in
// the process already.) A proof replayed to another instance within the
// window passes there.
func WithDPoPReplayInProcess() MiddlewareOption {
	return func(m *middleware) { m.dpop = &localDPoP{} }
}

// WithClientCertHeader reads the TLS client certificate of requests from
// the header name when they come from one of trustedProxies (a proxy
// that terminates TLS: see ClientCertHeader for the formats), for tokens
// bound to a certificate (RFC 8705 §3). Without it, or from any other
// address, the certificate is the request's own TLS connection's.
func WithClientCertHeader(name string, trustedProxies ...netip.Prefix) MiddlewareOption {
	return func(m *middleware) { m.certHeader = &ClientCertHeader{Name: name, TrustedProxies: trustedProxies} }
}

// WithDPoPNonces requires DPoP proofs to carry a server nonce of n (RFC
// 9449 §9): a proof without a current one is refused with 401,
// WWW-Authenticate: DPoP error="use_dpop_nonce" and the nonce to use in
// the DPoP-Nonce header, which a successful response also carries when the
// client's nonce is about to expire. Instances of one service that are
// given nonces made with the same secret accept each other's. With an
// Authenticator, Config.DPoPResourceNonce does the same without this option.
func WithDPoPNonces(n *DPoPNonces) MiddlewareOption {
	return func(m *middleware) { m.nonces = n }
}

// RequestURL is the URL a request reached this server at: https when it
// came over TLS, else http, its Host, and the path it was sent with
// (before any http.StripPrefix). The Host is the client's word: a server
// that answers under any name should give WithDPoPURL its public scheme
// and host, so that a proof made for another server does not pass here.
func RequestURL(r *http.Request) *url.URL {
	u := &url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath}
	if r.TLS != nil {
		u.Scheme = "https"
	}
	if sent, err := url.ParseRequestURI(r.RequestURI); err == nil && sent.Path != "" {
		u.Path, u.RawPath = sent.Path, sent.RawPath
	}
	return u
}

// DPoPChecker checks DPoP proofs (RFC 9449). Authenticator and
// RemoteVerifier are DPoPCheckers; Middleware uses its Verifier's when it
// has one, else a per-process replay window.
type DPoPChecker interface {
	CheckDPoPProof(ctx context.Context, proof string, req DPoPRequest) (*DPoPProof, error)
}

// localDPoP checks proofs on the real clock with a per-process replay
// window: for Verifiers that are not DPoPCheckers.
type localDPoP struct{ dpop dpopState }

func (l *localDPoP) CheckDPoPProof(ctx context.Context, proof string, req DPoPRequest) (*DPoPProof, error) {
	return checkDPoPProof(ctx, proof, req, time.Now(), DefaultDPoPWindow, &l.dpop.headers, l.dpop.seen.use)
}

type middleware struct {
	v          Verifier
	dpop       DPoPChecker
	nonces     *DPoPNonces // nil: as the DPoPChecker decides
	dpopURL    func(*http.Request) *url.URL
	certHeader *ClientCertHeader // nil: the TLS connection's certificate only
	realm      string
	skip       map[string]bool
	audience   string
	writeError ErrorWriter
}

type contextKey int

const (
	claimsKey contextKey = iota
	middlewareKey
)

// ClaimsFromContext returns the claims Middleware put in the request's
// context, or nil.
func ClaimsFromContext(ctx context.Context) *Claims {
	c, _ := ctx.Value(claimsKey).(*Claims)
	return c
}

// Middleware returns net/http middleware (usable with any router) that lets
// a request through only with a valid bearer token (RFC 6750), and puts the
// token's claims in its context. A missing token is 401 with a bare
// challenge; a bad, expired or revoked one 401 with error="invalid_token";
// an unreachable store 503 (it fails closed). Refusals never say why in
// detail and never echo the token.
func Middleware(v Verifier, opts ...MiddlewareOption) func(http.Handler) http.Handler {
	m := &middleware{v: v, realm: "authsvc", skip: map[string]bool{}, writeError: writeErrorJSON, dpopURL: RequestURL}
	if c, ok := v.(DPoPChecker); ok {
		m.dpop = c
	} else {
		m.dpop = &localDPoP{}
	}
	for _, o := range opts {
		o(m)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if m.skip[r.URL.Path] {
				next.ServeHTTP(w, r)
				return
			}
			tok, dpop, err := accessToken(r)
			switch {
			case errors.Is(err, ErrNoToken):
				m.refuse(w, r, http.StatusUnauthorized, "")
				return
			case errors.Is(err, ErrMalformedAuthorization):
				m.refuse(w, r, http.StatusBadRequest, "invalid_request")
				return
			case err != nil:
				m.refuse(w, r, http.StatusUnauthorized, "invalid_token")
				return
			}
			claims, err := m.v.Verify(r.Context(), tok)
			if errors.Is(err, ErrUnavailable) {
				w.Header().Set("Retry-After", "1")
				m.refuse(w, r, http.StatusServiceUnavailable, "")
				return
			}
			if err != nil || (m.audience != "" && !claims.hasAudience(m.audience)) {
				m.refuse(w, r, http.StatusUnauthorized, "invalid_token")
				return
			}
			if status, code := m.checkBinding(w, r, tok, dpop, claims); status != 0 {
				if status == http.StatusServiceUnavailable {
					w.Header().Set("Retry-After", "1")
				}
				m.refuse(w, r, status, code)
				return
			}
			ctx := context.WithValue(r.Context(), claimsKey, claims)
			ctx = context.WithValue(ctx, middlewareKey, m)
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// DPoPToken returns the token of the request's Authorization header of
// the DPoP scheme (RFC 9449 §7.1), with the rules of BearerToken: no
// header, another scheme or a blank credential gives ErrNoToken.
func DPoPToken(r *http.Request) (string, error) {
	tok, dpop, err := accessToken(r)
	if errors.Is(err, ErrMalformedAuthorization) {
		return "", err
	}
	if !dpop {
		return "", ErrNoToken
	}
	return tok, err
}

// accessToken reads the request's access token: of the Bearer scheme
// (RFC 6750) or the DPoP scheme (RFC 9449 §7.1, dpop true), with the
// rules of BearerToken.
func accessToken(r *http.Request) (tok string, dpop bool, err error) {
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return "", false, ErrNoToken
	case 1:
	default:
		return "", false, ErrMalformedAuthorization
	}
	h := values[0]
	const scheme = "dpop"
	if len(h) >= len(scheme) && strings.EqualFold(h[:len(scheme)], scheme) && (len(h) == len(scheme) || h[len(scheme)] == ' ') {
		tok, err = parseBearer("Bearer" + h[len(scheme):])
		return tok, true, err
	}
	tok, err = parseBearer(h)
	return tok, false, err
}

// checkBinding checks a verified token's key binding: a certificate-bound
// token must come over a connection with that TLS client certificate (or
// from a trusted proxy that names it: WithClientCertHeader); a DPoP-bound token
// must come with the DPoP scheme (no downgrade to Bearer) and a proof by
// its key, for this request and this token (with a server nonce when one
// is required); a bearer token must not come with the DPoP scheme. It
// returns the refusal's status and error code, or 0 when the request may
// pass; it sets the DPoP-Nonce header when there is a nonce to give.
func (m *middleware) checkBinding(w http.ResponseWriter, r *http.Request, tok string, dpop bool, claims *Claims) (int, string) {
	if claims.CertificateThumbprint() != "" {
		// RFC 8705 §3: only with the certificate it is bound to, else 401
		// invalid_token.
		ders, _, err := clientCertDER(r, m.certHeader)
		if err != nil || len(ders) == 0 || !claims.CertificateBindingMatches(ders[0]) {
			return http.StatusUnauthorized, "invalid_token"
		}
	}
	jkt := claims.DPoPThumbprint()
	if !dpop {
		if jkt != "" {
			return http.StatusUnauthorized, "invalid_token" // bound: a Bearer presentation is a downgrade
		}
		return 0, ""
	}
	if jkt == "" {
		return http.StatusUnauthorized, "invalid_token" // a bearer token is not a DPoP token
	}
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return http.StatusUnauthorized, "invalid_dpop_proof"
	}
	p, err := m.dpop.CheckDPoPProof(r.Context(), proofs[0], DPoPRequest{Method: r.Method, URL: m.dpopURL(r), AccessToken: tok, Nonces: m.nonces})
	var ne *DPoPNonceError
	switch {
	case errors.As(err, &ne):
		w.Header().Set("DPoP-Nonce", ne.Nonce) // RFC 9449 §9
		return http.StatusUnauthorized, "use_dpop_nonce"
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, ""
	case err != nil:
		return http.StatusUnauthorized, "invalid_dpop_proof"
	case !claims.DPoPBindingMatches(p):
		return http.StatusUnauthorized, "invalid_dpop_proof" // signed by another key than the token's
	}
	if p.Nonce != "" {
		w.Header().Set("DPoP-Nonce", p.Nonce) // the one it carried expires soon
	}
	return 0, ""
}

// refuse sets the status and challenge, then lets the error writer write.
func (m *middleware) refuse(w http.ResponseWriter, r *http.Request, status int, code string) {
	m.refuseScope(w, r, status, code, "")
}

func (m *middleware) refuseScope(w http.ResponseWriter, r *http.Request, status int, code, scope string) {
	if status != http.StatusServiceUnavailable {
		c := `Bearer realm="` + m.realm + `"`
		bearerCode := code
		if code == "invalid_dpop_proof" || code == "use_dpop_nonce" {
			bearerCode = "" // not an RFC 6750 code: the DPoP challenge carries it
		}
		if bearerCode != "" {
			c += `, error="` + bearerCode + `"`
		}
		if scope != "" {
			c += `, scope="` + scope + `"`
		}
		// Both schemes are accepted, so both are challenged (RFC 9449 §7.1).
		w.Header().Set("WWW-Authenticate", c)
		w.Header().Add("WWW-Authenticate", DPoPChallenge(m.realm, code))
	}
	m.writeError(w, r, status, code)
}

// writeErrorJSON is the default refusal: a small JSON body.
func writeErrorJSON(w http.ResponseWriter, _ *http.Request, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if code == "" {
		code = strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_"))
	}
	fmt.Fprintf(w, "{\"error\":%q}\n", code)
}

// RequireScope lets a request through only if its token (put in the context
// by Middleware) carries every one of scopes; otherwise 403 with
// error="insufficient_scope". Without Middleware in front it refuses (401).
func RequireScope(scopes ...string) func(http.Handler) http.Handler {
	return require(func(c *Claims) bool {
		for _, s := range scopes {
			if !c.HasScope(s) {
				return false
			}
		}
		return true
	}, strings.Join(scopes, " "))
}

// RequireAdmin lets a request through only if its token has isAdmin set.
//
// It trusts the token's isAdmin claim, and nothing else: the claim is as
// old as the token, so a client demoted (or deleted) after its token was
// issued still passes until the token expires, unless Verify refuses the
// token itself (a deletion or a log-out-everywhere does). Where a demotion
// must count at once, look the client up instead
// (Authenticator.Client(ctx, ClaimsFromContext(ctx).Subject).IsAdmin), as
// authhttp's admin routes and its gateway X-Auth-Admin header do.
func RequireAdmin() func(http.Handler) http.Handler {
	return require(func(c *Claims) bool { return c.IsAdmin }, "")
}

func require(ok func(*Claims) bool, scope string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c := ClaimsFromContext(r.Context())
			m, _ := r.Context().Value(middlewareKey).(*middleware)
			if m == nil {
				m = &middleware{realm: "authsvc", writeError: writeErrorJSON}
			}
			if c == nil {
				m.refuse(w, r, http.StatusUnauthorized, "")
				return
			}
			if !ok(c) {
				m.refuseScope(w, r, http.StatusForbidden, "insufficient_scope", scope)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
