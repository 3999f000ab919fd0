package authhttp

import (
	"crypto/x509"
	"encoding/base64"
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

func (h *handler) oauthRoutes(mux *http.ServeMux) {
	mux.Handle("/oauth/token", methods{http.MethodPost: h.token})
	mux.Handle("/oauth/introspect", methods{http.MethodPost: h.introspect})
	mux.Handle("/oauth/revoke", methods{http.MethodPost: h.revoke})
	h.discoveryRoutes(mux)
	mux.Handle("/revocations", methods{http.MethodGet: h.revocations})
}

// revocations: GET /revocations?after=CURSOR&wait=SECONDS, the revocation
// feed that RemoteVerifiers follow (see authsvc.FeedHandler). Any client may
// read it, authenticated with HTTP Basic: it names revoked jtis and client
// ids, which anonymous callers have no business enumerating.
func (h *handler) revocations(w http.ResponseWriter, r *http.Request) {
	cc, ok := readClientCredentials(w, r, url.Values{})
	if !ok {
		return
	}
	if _, ok := h.authenticateClient(w, r, cc); !ok {
		return
	}
	h.feed.ServeHTTP(w, r)
}

// clientCredentials are a request's client authentication: a secret
// (RFC 6749 §2.3.1), or a JWT assertion (RFC 7521 §4.2: private_key_jwt,
// or a trusted issuer's token).
type clientCredentials struct {
	id, secret string
	basic      bool // sent as HTTP Basic
	// raw, for HTTP Basic, is the id and secret as sent, when they differ
	// from their form-decoding (id and secret): many clients do not
	// form-encode (authlib 1.2, python-requests, curl -u), so a chosen
	// secret with a "+" or a "%" would never match. try checks it when the
	// decoded pair fails.
	raw *clientCredentials
	// assertion is a client_assertion of type jwt-bearer; id is then the
	// client_id sent with it, if any (it is optional).
	assertion string
	// certificate: a client_id alone, no secret nor assertion: the client
	// authenticates with its TLS client certificate (RFC 8705 §2).
	certificate bool
}

// clientAssertionType is RFC 7523 §2.2's client_assertion_type.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// throttleKey is what the throttle counts an attempt under: the client_id,
// or for an assertion sent without one, who it claims to be (unverified):
// its iss for a client's own assertion (iss = sub = client_id), else its
// sub, marked with a NUL byte, which no client_id has, so that a
// subject's failures are never a client's.
func (cc clientCredentials) throttleKey() string {
	if cc.id != "" || cc.assertion == "" {
		return cc.id
	}
	iss, sub := authsvc.AssertionIdentity(cc.assertion)
	if iss != "" && iss == sub {
		return iss
	}
	return "\x00" + sub
}

// clientCheck is how a route checks each kind of credentials: a secret
// (with the raw-credentials retry of try), or an assertion, returning the
// client it authenticated.
type clientCheck struct {
	secret    func(id, secret string) error
	assertion func(ca authsvc.ClientAssertion) (clientID string, err error)
	tls       func(id string, chain []*x509.Certificate) error
}

// try runs check with the form-decoded credentials and, when they are
// refused as invalid and the raw ones differ, with the raw ones: one
// attempt as far as the throttle goes (the caller brackets try with one
// allowAttempt and one noteAttempt). It returns the client_id that passed.
func (cc clientCredentials) try(check func(id, secret string) error) (string, error) {
	err := check(cc.id, cc.secret)
	if errors.Is(err, authsvc.ErrInvalidClient) && cc.raw != nil {
		if err = check(cc.raw.id, cc.raw.secret); err == nil {
			return cc.raw.id, nil
		}
	}
	return cc.id, err
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
// (client_secret_basic, with the §2.3.1 form-encoding of id and secret, or
// without it: see clientCredentials.raw) or from the body
// (client_secret_post), and refuses a request that uses both.
func readClientCredentials(w http.ResponseWriter, r *http.Request, v url.Values) (clientCredentials, bool) {
	var cc clientCredentials
	h := r.Header.Values("Authorization")
	if len(h) > 1 {
		oauthError(w, http.StatusBadRequest, "invalid_request", "more than one Authorization header")
		return cc, false
	}
	if v.Has("client_assertion") || v.Has("client_assertion_type") {
		return readClientAssertion(w, v, len(h) == 1)
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
		// RFC 6749 §2.3.1 form-encodes both; a client that does not sends
		// them as they are. Both readings are kept when they differ, and
		// the raw one alone when the form-decoding fails ("50%off").
		cc.id, err = url.QueryUnescape(id)
		if err == nil {
			cc.secret, err = url.QueryUnescape(secret)
		}
		switch {
		case err != nil:
			cc.id, cc.secret = id, secret
		case cc.id != id || cc.secret != secret:
			cc.raw = &clientCredentials{id: id, secret: secret, basic: true}
		}
		cc.basic = true
		if v.Get("client_secret") != "" {
			oauthError(w, http.StatusBadRequest, "invalid_request", "use one client authentication method, not both HTTP Basic and client_secret")
			return cc, false
		}
		if bodyID := v.Get("client_id"); bodyID != "" && bodyID != cc.id && (cc.raw == nil || bodyID != cc.raw.id) {
			oauthError(w, http.StatusBadRequest, "invalid_request", "client_id in the body differs from HTTP Basic")
			return cc, false
		}
		return cc, true
	}
	cc.id, cc.secret = v.Get("client_id"), v.Get("client_secret")
	if cc.id != "" && !v.Has("client_secret") {
		// RFC 8705 §2: tls_client_auth and self_signed_tls_client_auth
		// send the client_id alone; the certificate is checked in attempt.
		cc.certificate = true
		return cc, true
	}
	if cc.id == "" || cc.secret == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="authd"`)
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication required (HTTP Basic, client_id and client_secret, a client_assertion, or client_id with a TLS client certificate)")
		return cc, false
	}
	return cc, true
}

// readClientAssertion reads RFC 7521 §4.2's parameters: client_assertion
// of client_assertion_type jwt-bearer, and client_id (optional), with no
// other client authentication beside them.
func readClientAssertion(w http.ResponseWriter, v url.Values, basic bool) (clientCredentials, bool) {
	cc := clientCredentials{id: v.Get("client_id"), assertion: v.Get("client_assertion")}
	switch {
	case basic || v.Get("client_secret") != "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "use one client authentication method, not both a client_assertion and a secret")
	case v.Get("client_assertion_type") != clientAssertionType:
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_assertion_type must be "+clientAssertionType)
	case cc.assertion == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_assertion is required with client_assertion_type")
	default:
		return cc, true
	}
	return cc, false
}

// oauthCaller reads an RFC 6749 form body and authenticates the client
// that sent it; ok is false when an error has been answered.
func (h *handler) oauthCaller(w http.ResponseWriter, r *http.Request) (url.Values, *authsvc.Client, bool) {
	v, ok := readOAuthForm(w, r)
	if !ok {
		return nil, nil, false
	}
	cc, ok := readClientCredentials(w, r, v)
	if !ok {
		return nil, nil, false
	}
	c, ok := h.authenticateClient(w, r, cc)
	return v, c, ok
}

// authenticateClient checks the caller's credentials, answering the error
// itself; ok is false when it has.
func (h *handler) authenticateClient(w http.ResponseWriter, r *http.Request, cc clientCredentials) (*authsvc.Client, bool) {
	var c *authsvc.Client
	ok := h.attempt(w, r, cc, clientCheck{
		secret: func(id, secret string) (err error) {
			c, err = h.auth.AuthenticateClient(r.Context(), id, secret)
			return err
		},
		assertion: func(ca authsvc.ClientAssertion) (string, error) {
			var err error
			if c, err = h.auth.AuthenticateClientAssertion(r.Context(), ca); err != nil {
				return "", err
			}
			return c.ID, nil
		},
		tls: func(id string, chain []*x509.Certificate) (err error) {
			c, err = h.auth.AuthenticateTLSClient(r.Context(), id, chain)
			return err
		},
	})
	return c, ok
}

// attempt is one client authentication at an OAuth route: through the
// throttle, with the raw-credentials retry (clientCredentials.try) or the
// assertion check, ended in the throttle and the audit log, and answered
// itself when it fails (ok false).
func (h *handler) attempt(w http.ResponseWriter, r *http.Request, cc clientCredentials, check clientCheck) bool {
	var chain []*x509.Certificate
	if cc.certificate {
		var ok bool
		if chain, ok = h.clientCerts(w, r); !ok {
			return false
		}
		if len(chain) == 0 {
			w.Header().Set("WWW-Authenticate", `Basic realm="authd"`)
			oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication required: a client_id alone needs a TLS client certificate (tls_client_auth, self_signed_tls_client_auth)")
			return false
		}
	}
	key := cc.throttleKey()
	att, ok := h.allowAttempt(w, r, key, true)
	if !ok {
		return false
	}
	var id string
	var err error
	var audit []any
	if cc.assertion != "" {
		ca := authsvc.ClientAssertion{ClientID: cc.id, Assertion: cc.assertion, TokenEndpoint: h.base(r) + "/oauth/token"}
		id, err = check.assertion(ca)
		iss, sub := authsvc.AssertionIdentity(cc.assertion)
		audit = []any{"method", "client_assertion", "assertion_iss", clip(iss), "assertion_sub", clip(sub)}
		if id == "" {
			id = key
		}
	} else if cc.certificate {
		id, err = cc.id, check.tls(cc.id, chain)
		audit = []any{"method", "tls_client_certificate"}
	} else {
		id, err = cc.try(check.secret)
	}
	h.noteTried(r, att, key, id, err, audit...)
	if err != nil {
		h.oauthFail(w, r, err)
		return false
	}
	return true
}

// errOtherID ends an attempt that passed with the raw client_id of HTTP
// Basic when the attempt was keyed by its form-decoding, another id: for
// noteAttempt it is neither a failure nor a success of the keyed id.
var errOtherID = errors.New("authhttp: authenticated under the raw client_id")

// noteTried ends an attempt keyed by key, as noteAttempt does, except
// when the client that passed (id) is another: the raw client_id of HTTP
// Basic that differs from its form-decoding, or the client an assertion
// sent without client_id authenticated. Then the attempt is released
// without crediting key, which never logged in (a success would make its
// address known, exempt from the address and client limits), and the
// address is remembered for the id that did. audit is added to the audit
// line of a failure.
func (h *handler) noteTried(r *http.Request, att attempt, key, id string, err error, audit ...any) {
	if err != nil || id == key {
		h.noteAttempt(r, att, key, err, audit...)
		return
	}
	h.noteAttempt(r, att, key, errOtherID)
	if h.throttle != nil && h.throttle.remember != nil {
		h.throttle.remember(id, att.addr)
	}
	setClient(r, id)
}

// token: POST /oauth/token, grant_type=client_credentials (RFC 6749 §4.4).
func (h *handler) token(w http.ResponseWriter, r *http.Request) {
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
	// RFC 9449 §4.3: at most one DPoP proof; with one, the token is bound
	// to its key.
	switch proofs := r.Header.Values("DPoP"); len(proofs) {
	case 0:
	case 1:
		if proofs[0] == "" {
			oauthError(w, http.StatusBadRequest, "invalid_dpop_proof", "the DPoP header is empty")
			return
		}
		req.DPoP, req.TokenEndpoint = proofs[0], h.base(r)+"/oauth/token"
	default:
		oauthError(w, http.StatusBadRequest, "invalid_dpop_proof", "more than one DPoP header")
		return
	}
	// RFC 8705 §3: a token requested with a TLS client certificate is
	// bound to it, whatever the client authenticated with.
	chain, ok := h.clientCerts(w, r)
	if !ok {
		return
	}
	if len(chain) > 0 {
		req.ClientCertificate = chain[0]
	}
	var tok *authsvc.Token
	if !h.attempt(w, r, cc, clientCheck{
		secret: func(id, secret string) (err error) {
			tok, err = h.auth.Authenticate(r.Context(), id, secret, req)
			return err
		},
		assertion: func(ca authsvc.ClientAssertion) (string, error) {
			var err error
			if tok, err = h.auth.AuthenticateAssertion(r.Context(), ca, req); err != nil {
				return "", err
			}
			return tok.ClientID, nil
		},
		tls: func(id string, chain []*x509.Certificate) (err error) {
			tok, err = h.auth.AuthenticateTLS(r.Context(), id, chain, req)
			return err
		},
	}) {
		return
	}
	noStore(w)
	if tok.DPoPNonce != "" {
		w.Header().Set("DPoP-Nonce", tok.DPoPNonce)
	}
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
	Active       bool                  `json:"active"`
	Audience     authsvc.Audience      `json:"aud"`
	ClientID     string                `json:"client_id"`
	Confirmation *authsvc.Confirmation `json:"cnf,omitempty"` // RFC 9449 §6.2
	ExpiresAt    int64                 `json:"exp"`
	IssuedAt     int64                 `json:"iat"`
	Issuer       string                `json:"iss"`
	ID           string                `json:"jti"`
	NotBefore    int64                 `json:"nbf"`
	Scope        string                `json:"scope"`
	Subject      string                `json:"sub"`
	TokenType    string                `json:"token_type"`
}

// inactive is RFC 7662's body for any token that does not verify.
var inactive = []byte("{\"active\":false}\n")

// introspect: POST /oauth/introspect (RFC 7662). Any authenticated client
// may introspect, and so may the bearer of a valid access token meant for
// authd (RFC 7662 §2.1 allows either); every token that does not verify is
// {"active": false}.
func (h *handler) introspect(w http.ResponseWriter, r *http.Request) {
	v, ok := readOAuthForm(w, r)
	if !ok {
		return
	}
	if hasBearerScheme(r) {
		if !h.bearerCaller(w, r, v) {
			return
		}
	} else {
		cc, ok := readClientCredentials(w, r, v)
		if !ok {
			return
		}
		if _, ok := h.authenticateClient(w, r, cc); !ok {
			return
		}
	}
	tok := v.Get("token")
	if tok == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	noStore(w)
	claims, err := h.auth.Verify(r.Context(), tok)
	if errors.Is(err, authsvc.ErrUnavailable) {
		h.oauthFail(w, r, err)
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
		Audience: claims.Audience, ID: claims.ID, TokenType: tokenType(claims), Confirmation: claims.Confirmation,
	})
}

// clientCerts returns the request's TLS client certificate chain (leaf
// first; none is nil): its connection's, or from a trusted proxy the
// configured header's (Options.ClientCertHeader). A header that cannot be
// read is answered 400 (ok false).
func (h *handler) clientCerts(w http.ResponseWriter, r *http.Request) ([]*x509.Certificate, bool) {
	chain, err := authsvc.ClientCertificates(r, h.certHeader)
	if err != nil {
		h.log.Warn("malformed client certificate header from a trusted proxy; check its configuration", "header", h.certHeader.Name, "remote", clip(r.RemoteAddr))
		oauthError(w, http.StatusBadRequest, "invalid_request", "the client certificate header cannot be read")
		return nil, false
	}
	return chain, true
}

// tokenType is the token_type of a token with claims: DPoP for a token
// bound to a DPoP key (RFC 9449 §6.2), else Bearer.
func tokenType(claims *authsvc.Claims) string {
	if claims.DPoPThumbprint() != "" {
		return "DPoP"
	}
	return "Bearer"
}

// hasBearerScheme reports whether the request's one Authorization header
// is of the Bearer scheme (any letter case), blank or not.
func hasBearerScheme(r *http.Request) bool {
	h := r.Header.Values("Authorization")
	if len(h) != 1 {
		return false
	}
	const scheme = "bearer"
	v := h[0]
	return len(v) >= len(scheme) && strings.EqualFold(v[:len(scheme)], scheme) && (len(v) == len(scheme) || v[len(scheme)] == ' ')
}

// bearerCaller authorizes an introspection by the bearer of an access
// token (RFC 7662 §2.1): one that verifies and is meant for authd
// (authsvc.Authenticator.ForIssuer), so that a token minted for another
// service does not open authd's endpoint. A bad token is 401 invalid_token,
// a blank one 401 with a bare challenge; ok is false when it has answered.
func (h *handler) bearerCaller(w http.ResponseWriter, r *http.Request, v url.Values) bool {
	if v.Get("client_secret") != "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "use one authorization, not both a Bearer token and client_secret")
		return false
	}
	tok, err := authsvc.BearerToken(r)
	if errors.Is(err, authsvc.ErrNoToken) {
		w.Header().Set("WWW-Authenticate", bearerChallenge)
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication or a Bearer access token is required")
		return false
	}
	var claims *authsvc.Claims
	if err == nil {
		claims, err = h.verifyBearer(r, tok)
	}
	if err == nil && !h.auth.ForIssuer(claims) {
		err = &authsvc.Error{Kind: authsvc.ErrInvalidToken, Message: "the token is not meant for this server (its aud lacks the issuer)"}
	}
	if err != nil {
		h.oauthFail(w, r, err) // 401 invalid_token, or 503 when the store is down
		return false
	}
	setClient(r, claims.Subject)
	return true
}

// revoke: POST /oauth/revoke (RFC 7009). A client may revoke its own
// tokens, an admin any; every other case is 200 with nothing revoked, as
// the RFC asks, and the refused attempt is logged.
func (h *handler) revoke(w http.ResponseWriter, r *http.Request) {
	v, caller, ok := h.oauthCaller(w, r)
	if !ok {
		return
	}
	tok := v.Get("token")
	if tok == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	err := h.auth.Revoke(r.Context(), caller, tok)
	switch {
	case err == nil:
		h.log.Info("audit: token revoked", "by", caller.ID)
	case errors.Is(err, authsvc.ErrForbidden):
		h.log.Warn("audit: revocation refused: not the token's client", "by", caller.ID)
	case errors.Is(err, authsvc.ErrInvalidToken):
		// Unknown or invalid: nothing to revoke (RFC 7009 §2.2).
	default:
		h.oauthFail(w, r, err)
		return
	}
	noStore(w)
	w.WriteHeader(http.StatusOK)
}
