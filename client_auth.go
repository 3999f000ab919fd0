package authsvc

import (
	"context"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// How a client authenticates: the rules for the metadata of NewClient and
// ClientUpdate (auth method, keys, federated credentials).

// MaxFederatedCredentials bounds a client's federated credentials.
const MaxFederatedCredentials = 50

// maxSubjectLen bounds a federated credential's subject (and so the sub
// of an assertion that can match one).
const maxSubjectLen = 512

// clientAuth is a client's authentication metadata, normalized.
type clientAuth struct {
	method    string
	jwks      []byte
	jwksURI   string
	federated []FederatedCredential
	tls       TLSClientAuth
}

// normalizeClientAuth checks what NewClient gives.
func (a *Authenticator) normalizeClientAuth(ctx context.Context, in clientAuth) (clientAuth, error) {
	var out clientAuth
	var err error
	if out.method, err = normalizeAuthMethod(in.method); err != nil {
		return out, err
	}
	if len(in.jwks) > 0 {
		if out.jwks, err = normalizeClientJWKS(in.jwks); err != nil {
			return out, err
		}
	}
	if in.jwksURI != "" {
		if err := checkJWKSURI("jwks_uri", in.jwksURI); err != nil {
			return out, err
		}
		out.jwksURI = in.jwksURI
	}
	if out.federated, err = a.normalizeFederated(ctx, in.federated); err != nil {
		return out, err
	}
	if out.tls, err = normalizeTLSClientAuth(in.tls); err != nil {
		return out, err
	}
	return out, nil
}

func (ca clientAuth) apply(rec *clientRecord) {
	rec.AuthMethod, rec.JWKS, rec.JWKSURI, rec.FederatedCredentials, rec.TLSClientAuth = ca.method, ca.jwks, ca.jwksURI, ca.federated, ca.tls
}

// normalizeAuthMethod accepts an RFC 7591 name; "" is client_secret_basic.
func normalizeAuthMethod(m string) (string, error) {
	switch m {
	case "":
		return AuthSecretBasic, nil
	case AuthSecretBasic, AuthSecretPost, AuthPrivateKeyJWT, AuthTLSClient, AuthSelfSignedTLSClient:
		return m, nil
	}
	return "", refuse(ErrInvalidArgument, "token_endpoint_auth_method must be client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth or self_signed_tls_client_auth")
}

// normalizeClientJWKS checks a registered JWK Set strictly (every key
// usable, no private key, kids distinct) and returns it with public
// members only.
func normalizeClientJWKS(b []byte) ([]byte, error) {
	set, err := parseJWKSet(b, true)
	if err != nil {
		return nil, &Error{Kind: ErrInvalidArgument, Message: "jwks: " + err.Error(), Err: err}
	}
	return set.encode(), nil
}

// checkJWKSURI accepts an absolute https URL of at most 2048 bytes, or an
// http one whose host is a loopback address (a test or a sidecar): keys
// fetched over plain HTTP elsewhere could be anyone's.
func checkJWKSURI(name, raw string) error {
	u, err := url.Parse(raw)
	switch {
	case len(raw) > 2048 || !utf8.ValidString(raw) || err != nil || u.Host == "" || u.Fragment != "" || u.User != nil:
		return refuse(ErrInvalidArgument, "%s must be an absolute https URL without user info or fragment, at most 2048 bytes", name)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	}
	return refuse(ErrInvalidArgument, "%s must be an https URL (http only to a loopback address)", name)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// normalizeFederated checks federated credentials: each issuer trusted
// now, each subject 1 to 512 bytes of printable UTF-8 (a SPIFFE trust
// domain's: a SPIFFE ID in it), without duplicates.
func (a *Authenticator) normalizeFederated(ctx context.Context, creds []FederatedCredential) ([]FederatedCredential, error) {
	if len(creds) > MaxFederatedCredentials {
		return nil, refuse(ErrInvalidArgument, "at most %d federated credentials a client", MaxFederatedCredentials)
	}
	var out []FederatedCredential
	for _, fc := range creds {
		if fc.Issuer == "" || fc.Subject == "" {
			return nil, refuse(ErrInvalidArgument, "a federated credential needs an issuer and a subject")
		}
		if err := checkSubject(fc.Subject); err != nil {
			return nil, err
		}
		if err := checkStoredText("issuer", fc.Issuer, maxIssuerLen); err != nil {
			return nil, err
		}
		ti, err := a.store.issuer(ctx, fc.Issuer)
		if errors.Is(err, ErrIssuerNotFound) {
			return nil, refuse(ErrInvalidArgument, "issuer %q is not trusted: add it first (authd issuer add)", clipText(fc.Issuer))
		}
		if err != nil {
			return nil, err
		}
		if ti.spiffe() && !strings.HasPrefix(fc.Subject, ti.Issuer+"/") {
			return nil, refuse(ErrInvalidArgument, "the subject of a credential of SPIFFE trust domain %s must be a SPIFFE ID in it (%s/…)", ti.Issuer, ti.Issuer)
		}
		if !slices.Contains(out, fc) {
			out = append(out, fc)
		}
	}
	return out, nil
}

func checkSubject(sub string) error {
	if sub == "" || len(sub) > maxSubjectLen || !utf8.ValidString(sub) {
		return refuse(ErrInvalidArgument, "a federated credential's subject must be 1 to %d bytes of UTF-8", maxSubjectLen)
	}
	for _, r := range sub {
		if !unicode.IsPrint(r) {
			return refuse(ErrInvalidArgument, "a federated credential's subject must not contain control characters")
		}
	}
	return nil
}

// checkClientAuth is the rule for a client's record as a whole, after a
// create or an update: a private_key_jwt client has no secret and has
// keys (one source) or a federated credential to log in with; a
// self_signed_tls_client_auth client has keys; a tls_client_auth client
// has one certificate name (and only it has one); a secret client has no
// keys; no client's tokens are both DPoP- and certificate-bound.
func checkClientAuth(rec *clientRecord) error {
	if rec.DPoPBoundAccessTokens && rec.TLSClientCertificateBoundAccessTokens {
		return refuse(ErrInvalidArgument, "a token is bound to one key: set dpop_bound_access_tokens or tls_client_certificate_bound_access_tokens, not both")
	}
	if rec.AuthMethod == AuthTLSClient {
		if rec.TLSClientAuth.IsZero() {
			return refuse(ErrInvalidArgument, "a tls_client_auth client needs the name its certificate carries: one of tls_client_auth_subject_dn, _san_dns, _san_uri, _san_ip, _san_email")
		}
	} else if !rec.TLSClientAuth.IsZero() {
		return refuse(ErrInvalidArgument, "tls_client_auth_subject_dn and the tls_client_auth_san_* names are for tls_client_auth clients (token_endpoint_auth_method)")
	}
	if rec.AuthMethod != AuthPrivateKeyJWT && rec.AuthMethod != AuthSelfSignedTLSClient {
		if len(rec.JWKS) > 0 || rec.JWKSURI != "" {
			return refuse(ErrInvalidArgument, "jwks and jwks_uri are for private_key_jwt and self_signed_tls_client_auth clients (token_endpoint_auth_method)")
		}
		return nil
	}
	switch {
	case len(rec.JWKS) > 0 && rec.JWKSURI != "":
		return refuse(ErrInvalidArgument, "give jwks or jwks_uri, not both")
	case rec.AuthMethod == AuthSelfSignedTLSClient && len(rec.JWKS) == 0 && rec.JWKSURI == "":
		return refuse(ErrInvalidArgument, "a self_signed_tls_client_auth client needs jwks or jwks_uri: the public key of its certificate")
	case len(rec.JWKS) == 0 && rec.JWKSURI == "" && len(rec.FederatedCredentials) == 0:
		return refuse(ErrInvalidArgument, "a private_key_jwt client needs jwks, jwks_uri or a federated credential to log in with")
	}
	return nil
}
