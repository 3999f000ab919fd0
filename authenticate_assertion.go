package authsvc

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// ClientAssertion is a client's authentication by a signed JWT instead of
// a secret (RFC 7521 §4.2, jwt-bearer): either its own assertion,
// private_key_jwt (RFC 7523 §2.2, OIDC Core §9: iss and sub are its
// client_id, signed by one of its registered keys), or a token its
// platform gave it, of a trusted issuer, which names it by a federated
// credential (Kubernetes, SPIFFE, CI OIDC).
type ClientAssertion struct {
	// ClientID is the client_id the request named, if any: optional, but
	// when given the assertion must be that client's.
	ClientID string
	// Assertion is the JWT (the client_assertion parameter).
	Assertion string
	// TokenEndpoint is the URL of the token endpoint the client was told
	// (discovery's token_endpoint): a private_key_jwt assertion's aud must
	// contain it or the issuer. Empty means the issuer only.
	TokenEndpoint string
}

// AuthenticateAssertion checks a client assertion and issues an access
// token for its client, as Authenticate does for a secret. Refusals are
// ErrInvalidClient with a Message that says why (ErrorMessage); a store
// that cannot be reached is ErrUnavailable.
func (a *Authenticator) AuthenticateAssertion(ctx context.Context, ca ClientAssertion, req TokenRequest) (*Token, error) {
	if err := a.dpopNonceFirst(req); err != nil {
		return nil, err
	}
	c, err := a.AuthenticateClientAssertion(ctx, ca)
	if err != nil {
		return nil, err
	}
	return a.grant(ctx, c, req)
}

// AuthenticateClientAssertion checks a client assertion without issuing a
// token (for endpoints where the caller authenticates as a client, such as
// introspection and revocation). Errors as AuthenticateAssertion. Each
// assertion is accepted once (its client and jti are kept in the store
// until it expires, so a replay is refused on every instance), except a
// trusted issuer's tokens when it allows reuse.
func (a *Authenticator) AuthenticateClientAssertion(ctx context.Context, ca ClientAssertion) (*Client, error) {
	c, err := a.authenticateAssertion(ctx, ca)
	if errors.Is(err, ErrInvalidClient) {
		a.stats.authFailures.Add(1)
	} else if errors.Is(err, ErrUnavailable) {
		a.stats.storeErrors.Add(1)
	}
	return c, err
}

func (a *Authenticator) authenticateAssertion(ctx context.Context, ca ClientAssertion) (*Client, error) {
	if ca.ClientID != "" && !storableID(ca.ClientID) {
		return nil, ErrInvalidClient
	}
	as, err := parseAssertion(ca.Assertion)
	if err != nil {
		return nil, &Error{Kind: ErrInvalidClient, Message: err.Error()}
	}
	// Fail closed: with the store unreachable, a deleted client cannot be
	// told from a live one, nor a replay from a first use.
	if err := a.fresh(true); err != nil {
		return nil, err
	}
	cl := &as.claims
	if cl.Issuer != "" && cl.Issuer == cl.Subject {
		return a.privateKeyJWT(ctx, ca, as)
	}
	return a.federated(ctx, ca, as)
}

// privateKeyJWT checks a client's own assertion (RFC 7523 §3): iss and sub
// its client_id, signed by one of its keys, aud the issuer or the token
// endpoint, exp within MaxAssertionLifetime, a jti not used before.
func (a *Authenticator) privateKeyJWT(ctx context.Context, ca ClientAssertion, as *assertion) (*Client, error) {
	id := as.claims.Issuer
	if ca.ClientID != "" && ca.ClientID != id {
		return nil, refuse(ErrInvalidClient, "the client assertion's iss and sub must be the client_id %s", ca.ClientID)
	}
	if !storableID(id) {
		return nil, refuse(ErrInvalidClient, "the client assertion's iss and sub name no client")
	}
	rec, err := a.lookupClient(ctx, id)
	if errors.Is(err, ErrClientNotFound) {
		return nil, refuse(ErrInvalidClient, "the client assertion's iss and sub name no client")
	}
	if err != nil {
		return nil, err
	}
	if rec.AuthMethod != AuthPrivateKeyJWT || len(rec.JWKS) == 0 && rec.JWKSURI == "" {
		return nil, refuse(ErrInvalidClient, "client %s has no keys registered for private_key_jwt (jwks or jwks_uri)", id)
	}
	var set jwkSet
	if rec.JWKSURI != "" {
		if set, err = a.fetcher.keys(ctx, keySource{jwksURI: rec.JWKSURI}, as.kid); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, refuse(ErrInvalidClient, "the keys of client %s could not be fetched from its jwks_uri", id)
		}
	} else if set, err = parseJWKSet(rec.JWKS, false); err != nil {
		a.log.Error("authsvc: stored jwks unusable", "client_id", id, "err", err)
		return nil, refuse(ErrInvalidClient, "the keys of client %s are unusable", id)
	}
	if err := as.verify(set); err != nil {
		return nil, refuse(ErrInvalidClient, "bad signature: %s", err)
	}
	aud := as.claims.Audience
	if !slices.Contains(aud, a.cfg.Issuer) && (ca.TokenEndpoint == "" || !slices.Contains(aud, ca.TokenEndpoint)) {
		want := a.cfg.Issuer
		if ca.TokenEndpoint != "" {
			want += " or " + ca.TokenEndpoint
		}
		return nil, refuse(ErrInvalidClient, "wrong audience: the client assertion's aud must contain %s", want)
	}
	if err := a.checkAssertionTime(as, a.cfg.MaxAssertionLifetime, false); err != nil {
		return nil, err
	}
	if as.claims.ID == "" {
		return nil, refuse(ErrInvalidClient, "the client assertion has no jti (RFC 7523 §3: it is what makes a replay detectable)")
	}
	if err := a.useOnce(ctx, id, as.claims.ID, as); err != nil {
		return nil, err
	}
	c := rec.Client
	return &c, nil
}

// federated checks a trusted issuer's token: the issuer known (by iss, or
// by the SPIFFE trust domain of sub), signed by its keys, aud one of the
// issuer's audiences, a lifetime within its maximum, a client with the
// federated credential (issuer, sub), and, unless the issuer allows
// reuse, not used before.
func (a *Authenticator) federated(ctx context.Context, ca ClientAssertion, as *assertion) (*Client, error) {
	cl := &as.claims
	ti, err := a.findIssuer(ctx, cl.Issuer, cl.Subject)
	if err != nil {
		return nil, err
	}
	var set jwkSet
	switch ti.KeySource() {
	case "jwks":
		if set, err = parseJWKSet(ti.JWKS, false); err != nil {
			a.log.Error("authsvc: stored issuer jwks unusable", "issuer", ti.Issuer, "err", err)
			return nil, refuse(ErrInvalidClient, "the keys of issuer %s are unusable", ti.Issuer)
		}
	default:
		if set, err = a.fetcher.keys(ctx, keySource{jwksURI: ti.JWKSURI, issuer: ti.Issuer}, as.kid); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, refuse(ErrInvalidClient, "the keys of issuer %s could not be fetched", ti.Issuer)
		}
	}
	if err := as.verify(set); err != nil {
		return nil, refuse(ErrInvalidClient, "bad signature: %s (issuer %s)", err, ti.Issuer)
	}
	auds := ti.Audiences
	if len(auds) == 0 {
		auds = []string{a.cfg.Issuer}
	}
	if !slices.ContainsFunc(auds, func(s string) bool { return slices.Contains(cl.Audience, s) }) {
		return nil, refuse(ErrInvalidClient, "wrong audience: a token of issuer %s must have %s in its aud", ti.Issuer, strings.Join(auds, " or "))
	}
	if err := a.checkAssertionTime(as, ti.MaxLifetime, true); err != nil {
		return nil, err
	}
	if cl.Subject == "" || checkSubject(cl.Subject) != nil {
		return nil, refuse(ErrInvalidClient, "the token has no usable sub")
	}
	id, err := a.store.federatedClient(ctx, ti.Issuer, cl.Subject)
	if errors.Is(err, ErrClientNotFound) {
		return nil, refuse(ErrInvalidClient, "no client has a federated credential for subject %q of issuer %s", clipText(cl.Subject), ti.Issuer)
	}
	if err != nil {
		return nil, err
	}
	if ca.ClientID != "" && ca.ClientID != id {
		return nil, refuse(ErrInvalidClient, "subject %q of issuer %s is not a federated credential of client %s", clipText(cl.Subject), ti.Issuer, ca.ClientID)
	}
	rec, err := a.lookupClient(ctx, id)
	if errors.Is(err, ErrClientNotFound) {
		// Deleted between the two reads.
		return nil, refuse(ErrInvalidClient, "no client has a federated credential for subject %q of issuer %s", clipText(cl.Subject), ti.Issuer)
	}
	if err != nil {
		return nil, err
	}
	if !ti.AllowReuse {
		jti := cl.ID
		if jti == "" || len(jti) > maxJTILen || !storableText(jti) {
			// Without a usable jti the token itself is what must not recur.
			sum := sha256.Sum256([]byte(as.raw))
			jti = "sha256:" + base64.RawURLEncoding.EncodeToString(sum[:])
		}
		if err := a.useOnce(ctx, id, jti, as); err != nil {
			return nil, err
		}
	}
	c := rec.Client
	return &c, nil
}

// findIssuer returns the trusted issuer of a token: the one named iss, else
// the SPIFFE trust domain of sub (a JWT-SVID need not carry iss).
func (a *Authenticator) findIssuer(ctx context.Context, iss, sub string) (*TrustedIssuer, error) {
	if iss != "" && len(iss) <= maxIssuerLen && storableText(iss) {
		ti, err := a.store.issuer(ctx, iss)
		if err == nil || !errors.Is(err, ErrIssuerNotFound) {
			return ti, err
		}
	}
	if td := spiffeTrustDomain(sub); td != "" {
		ti, err := a.store.issuer(ctx, td)
		if err == nil || !errors.Is(err, ErrIssuerNotFound) {
			return ti, err
		}
	}
	if iss == "" {
		return nil, refuse(ErrInvalidClient, "unknown issuer: the token has no iss, and its sub is no SPIFFE ID of a trusted trust domain")
	}
	return nil, refuse(ErrInvalidClient, "unknown issuer %q: it is not trusted (authd issuer add)", clipText(iss))
}

// checkAssertionTime checks exp (required, not passed), nbf and iat (not in
// the future), with the leeway; and the lifetime: for a client's own
// assertion exp at most max ahead, for an issuer's token exp - iat (exp -
// now without iat) at most max.
func (a *Authenticator) checkAssertionTime(as *assertion, max time.Duration, issued bool) error {
	cl := &as.claims
	now, leeway := a.now(), a.cfg.Leeway
	exp := time.Unix(int64(cl.ExpiresAt), 0)
	switch {
	case cl.ExpiresAt == 0:
		return refuse(ErrInvalidClient, "the assertion has no exp")
	case !now.Before(exp.Add(leeway)):
		return refuse(ErrInvalidClient, "the assertion expired at %s", exp.UTC().Format(time.RFC3339))
	case cl.NotBefore != 0 && now.Add(leeway).Before(time.Unix(int64(cl.NotBefore), 0)):
		return refuse(ErrInvalidClient, "the assertion is not valid yet (nbf)")
	case cl.IssuedAt != 0 && now.Add(leeway).Before(time.Unix(int64(cl.IssuedAt), 0)):
		return refuse(ErrInvalidClient, "the assertion was issued in the future (iat)")
	}
	if !issued {
		if exp.Sub(now) > max+leeway {
			return refuse(ErrInvalidClient, "the assertion lives too long: its exp must be at most %s ahead", max)
		}
		return nil
	}
	from := now
	if cl.IssuedAt != 0 {
		from = time.Unix(int64(cl.IssuedAt), 0)
	}
	if exp.Sub(from) > max {
		return refuse(ErrInvalidClient, "the token lives too long: %s, and its issuer allows at most %s", exp.Sub(from).Round(time.Second), max)
	}
	return nil
}

// useOnce records the assertion's use by client and jti until it expires
// (with the leeway), refusing a replay.
func (a *Authenticator) useOnce(ctx context.Context, clientID, jti string, as *assertion) error {
	if len(jti) > maxJTILen || !storableText(jti) {
		return refuse(ErrInvalidClient, "the assertion's jti must be at most %d bytes of UTF-8", maxJTILen)
	}
	exp := time.Unix(int64(as.claims.ExpiresAt), 0).Add(a.cfg.Leeway)
	fresh, err := a.store.useJTI(ctx, clientID, jti, exp, a.now())
	if err != nil {
		return err
	}
	if !fresh {
		return refuse(ErrInvalidClient, "replay: this assertion (jti %q) was used before", clipText(jti))
	}
	return nil
}

// grant issues a token for an authenticated client: the scopes and
// audiences asked for, if the client may have them.
func (a *Authenticator) grant(ctx context.Context, c *Client, req TokenRequest) (*Token, error) {
	scopes, err := grantScopes(c.Scopes, req.Scopes)
	if err != nil {
		return nil, err
	}
	aud, err := a.grantAudiences(c, req.Audience)
	if err != nil {
		return nil, err
	}
	var jkt, x5t, nonce string
	if c.TLSClientCertificateBoundAccessTokens {
		switch {
		case req.ClientCertificate == nil:
			return nil, refuse(ErrInvalidArgument, "client %s must present its TLS client certificate (its tokens are certificate-bound: tls_client_certificate_bound_access_tokens)", c.ID)
		case req.DPoP != "":
			return nil, refuse(ErrInvalidArgument, "client %s's tokens are certificate-bound (tls_client_certificate_bound_access_tokens): send no DPoP proof", c.ID)
		}
	}
	if req.DPoP == "" && req.ClientCertificate != nil {
		// RFC 8705 §3: bound to the certificate the client presented. A
		// DPoP proof, when sent too, binds the token instead (cnf holds
		// one key: RFC 7800 §3.1).
		x5t = CertificateThumbprint(req.ClientCertificate.Raw)
	}
	if req.DPoP == "" && c.DPoPBoundAccessTokens {
		return nil, refuse(ErrInvalidDPoPProof, "client %s must send a DPoP proof (its tokens are DPoP-bound: dpop_bound_access_tokens)", c.ID)
	}
	if req.DPoP != "" {
		// Checked last, once the request is otherwise good, so that a
		// refused request does not use up the proof's jti.
		u, perr := url.Parse(req.TokenEndpoint)
		if perr != nil || req.TokenEndpoint == "" {
			u = nil // no htu matches: the proof is refused
		}
		p, err := a.CheckDPoPProof(ctx, req.DPoP, DPoPRequest{Method: http.MethodPost, URL: u})
		if err != nil {
			return nil, err
		}
		jkt, nonce = p.Thumbprint, p.Nonce
	}
	tok, err := a.issue(c, scopes, aud, binding{jkt: jkt, x5t: x5t})
	if err != nil {
		return nil, err
	}
	tok.DPoPNonce = nonce
	a.stats.tokensIssued.Add(1) // counted once issued: not a refused scope or audience
	return tok, nil
}
