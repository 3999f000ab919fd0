package authsvc

import (
	"context"
	"net/url"
	"strings"
	"time"
	"unicode"
)

// TrustedIssuer is an issuer whose tokens a workload may present as its
// client assertion (workload identity federation): a Kubernetes cluster's
// service account issuer, a CI system's OIDC issuer, or a SPIFFE trust
// domain. Trusted issuers live in the store, so every instance shares them.
// A token of one authenticates as the client that has a federated
// credential for (issuer, the token's sub).
type TrustedIssuer struct {
	// Issuer is the tokens' iss, such as
	// "https://kubernetes.default.svc.cluster.local", or a SPIFFE trust
	// domain as "spiffe://example.org", whose JWT-SVIDs are matched by the
	// trust domain of their sub (a SPIFFE ID) whatever their iss.
	Issuer string
	// The keys tokens are signed with, from one source: JWKS, an inline
	// JWK Set (a Kubernetes API server's, copied in, or a SPIFFE trust
	// bundle), or JWKSURI; with neither, OIDC discovery
	// (Issuer + "/.well-known/openid-configuration", whose issuer must be
	// Issuer) names the jwks_uri. Fetched keys are cached, and fetched
	// again on an unknown kid at most every few seconds.
	JWKS    []byte
	JWKSURI string
	// Audiences: a token's aud must contain one of them. Empty means the
	// Authenticator's issuer (Config.Issuer).
	Audiences []string
	// MaxLifetime bounds a token's lifetime (exp - iat; exp - now without
	// iat): longer-lived tokens are refused. Zero means one hour (the
	// default of a Kubernetes projected token); at most 24 hours.
	MaxLifetime time.Duration
	// AllowReuse accepts a token more than once until it expires. By
	// default each token is accepted once (by its jti, or its hash without
	// one), and a replay is refused; but Kubernetes hands a pod the same
	// token until it rotates it (at 80% of its lifetime), so a container
	// that restarts presents it again: allow reuse for such issuers.
	AllowReuse bool

	CreatedAt time.Time
	UpdatedAt time.Time
}

// Bounds of a trusted issuer.
const (
	DefaultIssuerMaxLifetime = time.Hour
	maxIssuerMaxLifetime     = 24 * time.Hour
	maxIssuerLen             = 512
)

// KeySource names where the issuer's keys come from: "jwks", "jwks_uri" or
// "discovery".
func (ti *TrustedIssuer) KeySource() string {
	switch {
	case len(ti.JWKS) > 0:
		return "jwks"
	case ti.JWKSURI != "":
		return "jwks_uri"
	}
	return "discovery"
}

// spiffe reports whether the issuer is a SPIFFE trust domain.
func (ti *TrustedIssuer) spiffe() bool { return strings.HasPrefix(ti.Issuer, spiffeScheme) }

const spiffeScheme = "spiffe://"

// spiffeTrustDomain returns "spiffe://td" for a SPIFFE ID
// "spiffe://td/path", or "" when id is not one.
func spiffeTrustDomain(id string) string {
	rest, ok := strings.CutPrefix(id, spiffeScheme)
	if !ok {
		return ""
	}
	td, path, _ := strings.Cut(rest, "/")
	if checkTrustDomain(td) != nil || path == "" {
		return ""
	}
	return spiffeScheme + td
}

// checkTrustDomain applies the SPIFFE ID spec's rule for a trust domain
// name: lowercase letters, digits, dots, dashes and underscores.
func checkTrustDomain(td string) error {
	if td == "" || len(td) > 255 {
		return refuse(ErrInvalidArgument, "a SPIFFE trust domain is 1 to 255 characters")
	}
	for i := 0; i < len(td); i++ {
		c := td[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return refuse(ErrInvalidArgument, "a SPIFFE trust domain has lowercase letters, digits, dots, dashes and underscores only (spiffe://example.org)")
		}
	}
	return nil
}

// normalizeIssuer checks ti and fills its defaults.
func normalizeIssuer(ti TrustedIssuer) (TrustedIssuer, error) {
	if ti.Issuer == "" || len(ti.Issuer) > maxIssuerLen {
		return ti, refuse(ErrInvalidArgument, "issuer must be 1 to %d bytes", maxIssuerLen)
	}
	for _, r := range ti.Issuer {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return ti, refuse(ErrInvalidArgument, "issuer must be printable, without spaces")
		}
	}
	if ti.spiffe() {
		if err := checkTrustDomain(strings.TrimPrefix(ti.Issuer, spiffeScheme)); err != nil {
			return ti, err
		}
	}
	if len(ti.JWKS) > 0 && ti.JWKSURI != "" {
		return ti, refuse(ErrInvalidArgument, "give the issuer's jwks or its jwks_uri, not both")
	}
	switch {
	case len(ti.JWKS) > 0:
		set, err := parseJWKSet(ti.JWKS, true)
		if err != nil {
			return ti, &Error{Kind: ErrInvalidArgument, Message: "jwks: " + err.Error(), Err: err}
		}
		ti.JWKS = set.encode()
	case ti.JWKSURI != "":
		if err := checkJWKSURI("jwks_uri", ti.JWKSURI); err != nil {
			return ti, err
		}
	case ti.spiffe():
		return ti, refuse(ErrInvalidArgument, "a SPIFFE trust domain needs its JWT bundle: jwks (inline) or jwks_uri (its bundle endpoint)")
	default:
		// Discovery: the issuer must be a URL we may fetch.
		if err := checkJWKSURI("issuer (for OIDC discovery)", ti.Issuer); err != nil {
			return ti, refuse(ErrInvalidArgument, "without jwks or jwks_uri the keys come from OIDC discovery, so the issuer must be an https URL: %s", ErrorMessage(err))
		}
		if u, _ := url.Parse(ti.Issuer); u.RawQuery != "" {
			return ti, refuse(ErrInvalidArgument, "an OIDC issuer has no query")
		}
	}
	auds, err := normalizeAudiences(ti.Audiences, MaxAudiences, "at most %d audiences an issuer")
	if err != nil {
		return ti, err
	}
	ti.Audiences = auds
	switch {
	case ti.MaxLifetime == 0:
		ti.MaxLifetime = DefaultIssuerMaxLifetime
	case ti.MaxLifetime < time.Second || ti.MaxLifetime > maxIssuerMaxLifetime:
		return ti, refuse(ErrInvalidArgument, "max_lifetime must be from 1s to %s", maxIssuerMaxLifetime)
	}
	ti.MaxLifetime = ti.MaxLifetime.Truncate(time.Second)
	return ti, nil
}

// AddTrustedIssuer trusts a new issuer (ErrIssuerExists if it is trusted
// already; see ReplaceTrustedIssuer). Clients name it in their federated
// credentials.
func (a *Authenticator) AddTrustedIssuer(ctx context.Context, ti TrustedIssuer) (*TrustedIssuer, error) {
	return a.putIssuer(ctx, ti, false)
}

// ReplaceTrustedIssuer trusts an issuer, replacing its settings if it is
// trusted already (such as a cluster's inline JWKS after a key rotation):
// every instance uses the new settings at its next login.
func (a *Authenticator) ReplaceTrustedIssuer(ctx context.Context, ti TrustedIssuer) (*TrustedIssuer, error) {
	return a.putIssuer(ctx, ti, true)
}

func (a *Authenticator) putIssuer(ctx context.Context, ti TrustedIssuer, replace bool) (*TrustedIssuer, error) {
	ti, err := normalizeIssuer(ti)
	if err != nil {
		return nil, err
	}
	if err := a.store.putIssuer(ctx, &ti, replace); err != nil {
		return nil, err
	}
	return &ti, nil
}

// TrustedIssuer returns a trusted issuer, or ErrIssuerNotFound.
func (a *Authenticator) TrustedIssuer(ctx context.Context, issuer string) (*TrustedIssuer, error) {
	if err := checkStoredText("issuer", issuer, maxIssuerLen); err != nil {
		return nil, err
	}
	return a.store.issuer(ctx, issuer)
}

// TrustedIssuers lists the trusted issuers, ordered by name.
func (a *Authenticator) TrustedIssuers(ctx context.Context) ([]TrustedIssuer, error) {
	return a.store.issuers(ctx)
}

// RemoveTrustedIssuer stops trusting an issuer: its tokens are refused at
// once, on every instance. Tokens already issued for them stay valid (log
// the clients out, LogoutClient, to refuse those too); the clients'
// federated credentials naming it are kept, and work again if the issuer
// is trusted again.
func (a *Authenticator) RemoveTrustedIssuer(ctx context.Context, issuer string) error {
	if err := checkStoredText("issuer", issuer, maxIssuerLen); err != nil {
		return err
	}
	return a.store.deleteIssuer(ctx, issuer)
}

// checkStoredText refuses, before the store sees it, text no store can
// hold or longer than most bytes.
func checkStoredText(name, s string, most int) error {
	if s == "" || len(s) > most || !storableText(s) {
		return refuse(ErrInvalidArgument, "%s must be 1 to %d bytes of UTF-8 without NUL", name, most)
	}
	return nil
}
