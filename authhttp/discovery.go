package authhttp

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/authsvc/authsvc"
)

// The documents verifiers and client libraries read: RFC 7517 JWKS and
// RFC 8414 metadata (also served as OpenID configuration).

func (h *handler) discoveryRoutes(mux *http.ServeMux) {
	mux.Handle("/.well-known/jwks.json", methods{http.MethodGet: h.jwks})
	mux.Handle("/.well-known/oauth-authorization-server", methods{http.MethodGet: h.metadata})
	mux.Handle("/.well-known/openid-configuration", methods{http.MethodGet: h.metadata})
}

// jwks: GET /.well-known/jwks.json; the bytes are computed once per key change.
func (h *handler) jwks(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Type", "application/jwk-set+json") // RFC 7517 §8.5.1
	// Key rotation waits this long between publishing a key and signing
	// with it, so no verifier that honours max-age meets an unknown kid.
	hd.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(h.auth.JWKSMaxAge()/time.Second)))
	w.Write(h.auth.JWKS())
}

// discoveryDoc is the metadata document for one base URL and one set of
// supported scopes.
type discoveryDoc struct {
	base   string
	scopes []string // as Authenticator.ScopesSupported returned it
	doc    []byte
}

// metadata: RFC 8414 metadata. The document depends only on the base URL
// the routes are reached at and on the clients' scopes, so the last one
// built is kept until either changes.
func (h *handler) metadata(w http.ResponseWriter, r *http.Request) {
	base := h.base(r)
	scopes := h.auth.ScopesSupported()
	d := h.discovery.Load()
	if d == nil || d.base != base || !slices.Equal(d.scopes, scopes) || (d.scopes == nil) != (scopes == nil) {
		d = &discoveryDoc{base: base, scopes: scopes, doc: buildDiscovery(h.auth, base, scopes, h.certHeader != nil)}
		h.discovery.Store(d)
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "public, max-age=3600")
	w.Write(d.doc)
}

// base is the URL the routes are reached at: Options.BaseURL, else the
// issuer followed by the prefix http.StripPrefix removed from this request
// (mountPrefix), unless the issuer's path already ends with it, segment
// for segment.
func (h *handler) base(r *http.Request) string {
	if h.baseURL != "" {
		return h.baseURL
	}
	iss := strings.TrimSuffix(h.auth.Issuer(), "/")
	prefix := mountPrefix(r)
	if prefix == "" {
		return iss
	}
	// The issuer's path, not its text: "http://auth" does not end in /auth.
	// prefix starts with "/", so a suffix match is a whole-segment match.
	if u, err := url.Parse(iss); err == nil && strings.HasSuffix(u.Path, prefix) {
		return iss
	}
	return iss + prefix
}

// mountPrefix is the prefix http.StripPrefix removed from this request:
// the part of the path the client sent that the handler did not see, such
// as "/auth"; "" when none was.
func mountPrefix(r *http.Request) string {
	sent, err := url.ParseRequestURI(r.RequestURI)
	if err != nil || r.URL.Path == "" || !strings.HasSuffix(sent.Path, r.URL.Path) {
		return ""
	}
	prefix := strings.TrimSuffix(strings.TrimSuffix(sent.Path, r.URL.Path), "/")
	if !strings.HasPrefix(prefix, "/") {
		return ""
	}
	return prefix
}

// buildDiscovery makes the RFC 8414 document for routes reached at base.
// scopes_supported is the union of the clients' scopes (RFC 8414 lets a
// server list fewer than it supports; a client's own are in its record).
// The mTLS methods are listed when the Authenticator accepts them, and
// tls_client_certificate_bound_access_tokens (RFC 8705 §3.3) is true when
// client certificates reach the handler: a method is enabled (the server
// then requests certificates) or a proxy names them (certHeader). The
// same endpoints serve mTLS, so there are no mtls_endpoint_aliases
// (RFC 8705 §5: they are for a server whose mTLS endpoints differ).
func buildDiscovery(a *authsvc.Authenticator, base string, scopes []string, certHeader bool) []byte {
	auth := append(slices.Clip(authsvc.AuthMethods), a.TLSClientAuthMethods()...)
	assertionAlgs := authsvc.AssertionAlgorithms // of private_key_jwt client assertions
	algs := a.SigningAlgorithms()
	doc := map[string]any{
		"issuer":                 a.Issuer(),
		"token_endpoint":         base + "/oauth/token",
		"jwks_uri":               base + "/.well-known/jwks.json",
		"introspection_endpoint": base + "/oauth/introspect",
		"revocation_endpoint":    base + "/oauth/revoke",
		// authsvc's own: the feed RemoteVerifiers follow (not an RFC field).
		"revocation_feed_endpoint":                                 base + "/revocations",
		"grant_types_supported":                                    []string{"client_credentials"},
		"response_types_supported":                                 []string{},
		"token_endpoint_auth_methods_supported":                    auth,
		"introspection_endpoint_auth_methods_supported":            auth,
		"revocation_endpoint_auth_methods_supported":               auth,
		"token_endpoint_auth_signing_alg_values_supported":         assertionAlgs,
		"dpop_signing_alg_values_supported":                        authsvc.DPoPAlgorithms,
		"introspection_endpoint_auth_signing_alg_values_supported": assertionAlgs,
		"revocation_endpoint_auth_signing_alg_values_supported":    assertionAlgs,
		// No ID tokens are issued; OpenID parsers require these two fields,
		// and the algorithms are those of the access tokens.
		"id_token_signing_alg_values_supported":     algs,
		"subject_types_supported":                   []string{"public"},
		"access_token_signing_alg_values_supported": algs,
	}
	if len(a.TLSClientAuthMethods()) > 0 || certHeader {
		doc["tls_client_certificate_bound_access_tokens"] = true
	}
	if scopes != nil { // nil: the store could not be read yet (RECOMMENDED, not required)
		doc["scopes_supported"] = scopes
	}
	b, _ := json.Marshal(doc)
	return b
}
