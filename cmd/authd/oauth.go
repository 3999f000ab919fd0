package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/authsvc/authsvc"
)

// The standard OAuth 2.0 surface: RFC 6749 §4.4 token, RFC 7662
// introspection, RFC 7009 revocation, RFC 7517 JWKS, RFC 8414 discovery.

func (s *server) oauthRoutes(mux *http.ServeMux) {
	mux.Handle("/oauth/token", methods{http.MethodPost: s.token})
	mux.Handle("/oauth/introspect", methods{http.MethodPost: s.introspect})
	mux.Handle("/oauth/revoke", methods{http.MethodPost: s.revoke})
	mux.Handle("/.well-known/jwks.json", methods{http.MethodGet: s.jwks})
	mux.Handle("/.well-known/oauth-authorization-server", methods{http.MethodGet: s.discovery})
	mux.Handle("/.well-known/openid-configuration", methods{http.MethodGet: s.discovery})
	mux.Handle("/revocations", methods{http.MethodGet: s.revocations})
}

// revocations: GET /revocations?after=CURSOR&wait=SECONDS, the revocation
// feed that RemoteVerifiers follow (see authsvc.FeedHandler). Any client may
// read it, authenticated with HTTP Basic: it names revoked jtis and client
// ids, which anonymous callers have no business enumerating.
func (s *server) revocations(w http.ResponseWriter, r *http.Request) {
	cc, ok := readClientCredentials(w, r, url.Values{})
	if !ok {
		return
	}
	if _, ok := s.authenticateClient(w, r, cc); !ok {
		return
	}
	s.feed.ServeHTTP(w, r)
}

// oauthError is an RFC 6749 §5.2 error response.
func oauthError(w http.ResponseWriter, status int, code, description string) {
	noStore(w)
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

// clientCredentials are a request's client authentication (RFC 6749 §2.3.1).
type clientCredentials struct {
	id, secret string
	basic      bool // sent as HTTP Basic
}

// readOAuthForm reads an RFC 6749 request body: form-urlencoded only, no
// parameter repeated (other than those in multi). ok is false when an error
// reply has been written.
func readOAuthForm(w http.ResponseWriter, r *http.Request, multi ...string) (url.Values, bool) {
	if mt, _ := mediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return nil, false
	}
	v, err := readParams(w, r)
	if err != nil {
		var eb *errBody
		if errors.As(err, &eb) && eb.status == http.StatusRequestEntityTooLarge {
			oauthError(w, eb.status, "invalid_request", eb.msg)
		} else {
			oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
		}
		return nil, false
	}
outer:
	for k, vals := range v {
		for _, m := range multi {
			if k == m {
				continue outer
			}
		}
		if len(vals) > 1 {
			oauthError(w, http.StatusBadRequest, "invalid_request", "parameter "+strconv.Quote(k)+" given more than once")
			return nil, false
		}
	}
	return v, true
}

// readClientCredentials takes the client's credentials from HTTP Basic
// (client_secret_basic, with the §2.3.1 form-encoding of id and secret) or
// from the body (client_secret_post), and refuses a request that uses both.
func readClientCredentials(w http.ResponseWriter, r *http.Request, v url.Values) (clientCredentials, bool) {
	var cc clientCredentials
	h := r.Header.Values("Authorization")
	if len(h) > 1 {
		oauthError(w, http.StatusBadRequest, "invalid_request", "more than one Authorization header")
		return cc, false
	}
	if len(h) == 1 {
		const prefix = "basic "
		if len(h[0]) < len(prefix) || !strings.EqualFold(h[0][:len(prefix)], prefix) {
			oauthError(w, http.StatusBadRequest, "invalid_request", "client authentication must use HTTP Basic or the request body")
			return cc, false
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[0][len(prefix):]))
		id, secret, found := strings.Cut(string(raw), ":")
		if err != nil || !found {
			oauthError(w, http.StatusBadRequest, "invalid_request", "malformed HTTP Basic credentials")
			return cc, false
		}
		if cc.id, err = url.QueryUnescape(id); err == nil {
			cc.secret, err = url.QueryUnescape(secret)
		}
		if err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form-encoding in HTTP Basic credentials")
			return cc, false
		}
		cc.basic = true
		if v.Get("client_secret") != "" {
			oauthError(w, http.StatusBadRequest, "invalid_request", "use one client authentication method, not both HTTP Basic and client_secret")
			return cc, false
		}
		if bodyID := v.Get("client_id"); bodyID != "" && bodyID != cc.id {
			oauthError(w, http.StatusBadRequest, "invalid_request", "client_id in the body differs from HTTP Basic")
			return cc, false
		}
		return cc, true
	}
	cc.id, cc.secret = v.Get("client_id"), v.Get("client_secret")
	if cc.id == "" || cc.secret == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="authd"`)
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication required (HTTP Basic or client_id and client_secret)")
		return cc, false
	}
	return cc, true
}

// oauthCaller reads an RFC 6749 form body and authenticates the client
// that sent it; ok is false when an error has been answered.
func (s *server) oauthCaller(w http.ResponseWriter, r *http.Request) (url.Values, clientCredentials, *authsvc.Client, bool) {
	v, ok := readOAuthForm(w, r)
	if !ok {
		return nil, clientCredentials{}, nil, false
	}
	cc, ok := readClientCredentials(w, r, v)
	if !ok {
		return nil, cc, nil, false
	}
	c, ok := s.authenticateClient(w, r, cc)
	return v, cc, c, ok
}

// authenticateClient checks the caller's credentials, answering the error
// itself; ok is false when it has.
func (s *server) authenticateClient(w http.ResponseWriter, r *http.Request, cc clientCredentials) (*authsvc.Client, bool) {
	if !s.allowAttempt(w, r, cc.id, true) {
		return nil, false
	}
	c, err := s.auth.AuthenticateClient(r.Context(), cc.id, cc.secret)
	s.noteAttempt(r, cc.id, err)
	if err != nil {
		s.oauthFail(w, r, cc, err)
		return nil, false
	}
	return c, true
}

// oauthFail maps a library error to an RFC 6749 §5.2 error.
func (s *server) oauthFail(w http.ResponseWriter, r *http.Request, cc clientCredentials, err error) {
	switch {
	case errors.Is(err, authsvc.ErrInvalidClient):
		if cc.basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="authd"`)
		}
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
	case errors.Is(err, authsvc.ErrInvalidScope):
		oauthError(w, http.StatusBadRequest, "invalid_scope", strings.TrimPrefix(err.Error(), "authsvc: "))
	case errors.Is(err, authsvc.ErrInvalidArgument):
		oauthError(w, http.StatusBadRequest, "invalid_request", strings.TrimPrefix(err.Error(), "authsvc: "))
	case errors.Is(err, authsvc.ErrUnavailable):
		s.log.Error("store unavailable", "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the store cannot be reached")
	default:
		s.log.Error("internal error", "path", r.URL.Path, "err", err)
		oauthError(w, http.StatusInternalServerError, "server_error", "internal error")
	}
}

// token: POST /oauth/token, grant_type=client_credentials (RFC 6749 §4.4).
func (s *server) token(w http.ResponseWriter, r *http.Request) {
	v, ok := readOAuthForm(w, r, "resource")
	if !ok {
		return
	}
	switch gt := v.Get("grant_type"); gt {
	case "client_credentials":
	case "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
		return
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "only grant_type=client_credentials is supported")
		return
	}
	cc, ok := readClientCredentials(w, r, v)
	if !ok {
		return
	}
	// RFC 6749 §3.1: a parameter sent without a value is treated as omitted,
	// so an empty scope asks for all of the client's scopes.
	req := authsvc.TokenRequest{Scopes: authsvc.ParseScope(v.Get("scope"))}
	// RFC 8707 resource indicators: absolute URIs without a fragment.
	for _, res := range v["resource"] {
		u, err := url.Parse(res)
		if err != nil || !u.IsAbs() || u.Fragment != "" {
			oauthError(w, http.StatusBadRequest, "invalid_target", "resource must be an absolute URI without a fragment")
			return
		}
		req.Audience = append(req.Audience, res)
	}
	req.Audience = append(req.Audience, strings.Fields(v.Get("audience"))...)
	if !s.allowAttempt(w, r, cc.id, true) {
		return
	}
	tok, err := s.auth.Authenticate(r.Context(), cc.id, cc.secret, req)
	s.noteAttempt(r, cc.id, err)
	if err != nil {
		s.oauthFail(w, r, cc, err)
		return
	}
	noStore(w)
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: tok.AccessToken,
		TokenType:   tok.TokenType,
		ExpiresIn:   int64(tok.ExpiresIn / time.Second),
		Scope:       strings.Join(tok.Scopes, " "),
	})
}

// tokenResponse is RFC 6749 §5.1's body; like the other hot responses a
// struct whose fields are in the sorted order a map's keys would be.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	TokenType   string `json:"token_type"`
}

// introspection is RFC 7662's body for an active token.
type introspection struct {
	Active    bool             `json:"active"`
	Audience  authsvc.Audience `json:"aud"`
	ClientID  string           `json:"client_id"`
	ExpiresAt int64            `json:"exp"`
	IssuedAt  int64            `json:"iat"`
	Issuer    string           `json:"iss"`
	ID        string           `json:"jti"`
	NotBefore int64            `json:"nbf"`
	Scope     string           `json:"scope"`
	Subject   string           `json:"sub"`
	TokenType string           `json:"token_type"`
}

// inactive is RFC 7662's body for any token that does not verify.
var inactive = []byte("{\"active\":false}\n")

// introspect: POST /oauth/introspect (RFC 7662). Any authenticated client
// may introspect; every token that does not verify is {"active": false}.
func (s *server) introspect(w http.ResponseWriter, r *http.Request) {
	v, cc, _, ok := s.oauthCaller(w, r)
	if !ok {
		return
	}
	tok := v.Get("token")
	if tok == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	noStore(w)
	claims, err := s.auth.Verify(r.Context(), tok)
	if errors.Is(err, authsvc.ErrUnavailable) {
		s.oauthFail(w, r, cc, err)
		return
	}
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.Write(inactive)
		return
	}
	writeJSON(w, http.StatusOK, introspection{
		Active: true, Scope: claims.Scope, ClientID: claims.ClientID, Subject: claims.Subject,
		ExpiresAt: claims.ExpiresAt, IssuedAt: claims.IssuedAt, NotBefore: claims.NotBefore, Issuer: claims.Issuer,
		Audience: claims.Audience, ID: claims.ID, TokenType: "Bearer",
	})
}

// revoke: POST /oauth/revoke (RFC 7009). A client may revoke its own
// tokens, an admin any; every other case is 200 with nothing revoked, as
// the RFC asks, and the refused attempt is logged.
func (s *server) revoke(w http.ResponseWriter, r *http.Request) {
	v, cc, caller, ok := s.oauthCaller(w, r)
	if !ok {
		return
	}
	tok := v.Get("token")
	if tok == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	err := s.auth.Revoke(r.Context(), caller, tok)
	switch {
	case err == nil:
		s.log.Info("audit: token revoked", "by", caller.ID)
	case errors.Is(err, authsvc.ErrForbidden):
		s.log.Warn("audit: revocation refused: not the token's client", "by", caller.ID)
	case errors.Is(err, authsvc.ErrInvalidToken):
		// Unknown or invalid: nothing to revoke (RFC 7009 §2.2).
	default:
		s.oauthFail(w, r, cc, err)
		return
	}
	noStore(w)
	w.WriteHeader(http.StatusOK)
}

// jwks: GET /.well-known/jwks.json; the bytes are computed once per key change.
func (s *server) jwks(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// Key rotation waits this long between publishing a key and signing
	// with it, so no verifier that honours max-age meets an unknown kid.
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(s.auth.JWKSMaxAge()/time.Second)))
	w.Write(s.auth.JWKS())
}

// discovery: RFC 8414 metadata, also served as OpenID configuration.
func (s *server) discovery(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=3600")
	w.Write(s.discoveryDoc)
}

// buildDiscovery makes the RFC 8414 document once, at start.
func buildDiscovery(a *authsvc.Authenticator) []byte {
	iss := a.Issuer()
	auth := []string{"client_secret_basic", "client_secret_post"}
	algs := a.SigningAlgorithms()
	doc := map[string]any{
		"issuer":                 iss,
		"token_endpoint":         iss + "/oauth/token",
		"jwks_uri":               iss + "/.well-known/jwks.json",
		"introspection_endpoint": iss + "/oauth/introspect",
		"revocation_endpoint":    iss + "/oauth/revoke",
		// authsvc's own: the feed RemoteVerifiers follow (not an RFC field).
		"revocation_feed_endpoint":                      iss + "/revocations",
		"grant_types_supported":                         []string{"client_credentials"},
		"response_types_supported":                      []string{},
		"token_endpoint_auth_methods_supported":         auth,
		"introspection_endpoint_auth_methods_supported": auth,
		"revocation_endpoint_auth_methods_supported":    auth,
		// No ID tokens are issued; OpenID parsers require these two fields,
		// and the algorithms are those of the access tokens.
		"id_token_signing_alg_values_supported":     algs,
		"subject_types_supported":                   []string{"public"},
		"access_token_signing_alg_values_supported": algs,
	}
	b, _ := json.Marshal(doc)
	return b
}
