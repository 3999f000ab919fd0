package authhttp

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/authsvc/authsvc"
)

// Forward authentication for gateways: nginx auth_request, Traefik
// forwardAuth, Caddy forward_auth and Envoy ext_authz (HTTP service) send a
// sub-request with the client's headers to authd and let the client's
// request through when it answers 2xx. See docs/gateways.md.
//
//	GET|HEAD /verify[?scope=…][&audience=…]   the gateway form
//	POST /verify                              the seed's form: the token's claims as JSON
//	ANY /verify/{original path}               Envoy's path_prefix form (query ignored)
//
// A pass is 200 with no body and the X-Auth-* headers below; a refusal is
// 401 (no, invalid, expired or revoked token) or 403 (a required scope or
// audience missing), each with WWW-Authenticate; a malformed query is 400 and
// a store outage 503: the gateway refuses the request on both (fail closed).

// The headers a pass carries, for the gateway to copy to the upstream request.
const (
	headerSubject = "X-Auth-Subject" // the token's sub: the client_id
	headerScope   = "X-Auth-Scope"   // its scopes, space-separated (may be empty)
	headerAdmin   = "X-Auth-Admin"   // "true" or "false": whether the client is an admin now
	headerExpires = "X-Auth-Expires" // its exp, in unix seconds
)

// maxGatewayQuery bounds the query of GET /verify: 100 scopes of 128
// bytes fit with room to spare, and nothing legitimate comes near it.
const maxGatewayQuery = 16 << 10

// gatewayRoutes registers /verify: GET and HEAD for gateways, POST for the
// seed's clients, and the /verify/ subtree for Envoy's path_prefix.
func (h *handler) gatewayRoutes(mux *http.ServeMux) {
	mux.Handle("/verify", methods{http.MethodGet: h.forwardAuth, http.MethodPost: h.verifyPost})
	// Envoy's ext_authz HTTP service appends the client's path (and query)
	// to path_prefix and keeps the client's method, so with path_prefix
	// "/verify" a request for DELETE /notes/1?x=y is checked as
	// DELETE /verify/notes/1?x=y. Every method is the gateway form here, and
	// the query, being the client's, is ignored: requirements cannot be
	// given (nor weakened) through it.
	mux.HandleFunc("/verify/", h.forwardAuthSubtree)
}

// requirement is what a gateway asks of a token besides being valid.
type requirement struct {
	scopes    []string // each must be among the token's scopes
	audiences []string // each must be among the token's aud values
}

// errQuery is a query the gateway form cannot use: a gateway configuration
// error, answered 400 so that it shows at once instead of letting requests
// through on a weaker check.
type errQuery struct{ msg string }

func (e *errQuery) Error() string { return e.msg }

// parseRequirement reads the query of GET /verify: scope and audience, each
// repeatable and space-separated, all of them required. Any other parameter
// is refused, so that a misspelt "scopes=" cannot silently require nothing.
func parseRequirement(rawQuery string) (requirement, error) {
	var req requirement
	if rawQuery == "" {
		return req, nil
	}
	if len(rawQuery) > maxGatewayQuery {
		return req, &errQuery{fmt.Sprintf("query longer than %d bytes", maxGatewayQuery)}
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return req, &errQuery{"malformed query"}
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range q[k] {
			fields := strings.Fields(v)
			switch k {
			case "scope":
				if len(fields) == 0 {
					return req, &errQuery{"scope is empty: name at least one scope, or leave the parameter out"}
				}
				req.scopes = append(req.scopes, fields...)
			case "audience":
				if len(fields) == 0 {
					return req, &errQuery{"audience is empty: name at least one audience, or leave the parameter out"}
				}
				req.audiences = append(req.audiences, fields...)
			default:
				return req, &errQuery{fmt.Sprintf("unknown query parameter %q: GET /verify takes only scope and audience", k)}
			}
		}
	}
	if req.scopes, err = authsvc.NormalizeScopes(req.scopes); err != nil {
		return req, &errQuery{authsvc.ErrorMessage(err)}
	}
	if req.audiences, err = authsvc.NormalizeAudiences(req.audiences); err != nil {
		return req, &errQuery{authsvc.ErrorMessage(err)}
	}
	return req, nil
}

// unmet returns the required scopes and audiences the token lacks.
func (req requirement) unmet(c *authsvc.Claims) (scopes, audiences []string) {
	have := c.Scopes()
	for _, sc := range req.scopes {
		if !slices.Contains(have, sc) {
			scopes = append(scopes, sc)
		}
	}
	for _, aud := range req.audiences {
		if !slices.Contains(c.Audience, aud) {
			audiences = append(audiences, aud)
		}
	}
	return scopes, audiences
}

// forwardAuth: GET (and HEAD) /verify, the gateway form.
func (h *handler) forwardAuth(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	req, ok := h.requirement(w, r)
	if !ok {
		return
	}
	if _, ok := h.gate(w, r, req); ok {
		w.WriteHeader(http.StatusOK)
	}
}

// forwardAuthSubtree: any method on /verify/…, Envoy's path_prefix form.
// The path and query after /verify are the client's, not requirements.
func (h *handler) forwardAuthSubtree(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if _, ok := h.gate(w, r, requirement{}); ok {
		w.WriteHeader(http.StatusOK)
	}
}

// verifyPost: POST /verify. Without a query it is the seed's route as it
// always was (the token's claims as JSON). With one it also holds the token
// to the scope and audience parameters and sets the X-Auth-* headers, so a
// gateway that sends its sub-request as POST is not let through on a weaker
// check than GET would make.
//
// A token of the DPoP scheme takes the gateway's way with or without a
// query: its proof is checked against the request the caller names in the
// X-Forwarded-* headers, as for GET.
func (h *handler) verifyPost(w http.ResponseWriter, r *http.Request) {
	if _, err := authsvc.DPoPToken(r); r.URL.RawQuery == "" && err != nil && !errors.Is(err, authsvc.ErrInvalidToken) {
		h.verify(w, r)
		return
	}
	noStore(w)
	req, ok := h.requirement(w, r)
	if !ok {
		return
	}
	if claims, ok := h.gate(w, r, req); ok {
		writeJSON(w, http.StatusOK, claims)
	}
}

// requirement reads the request's query, answering 400 itself (ok false)
// when it is malformed. That is the gateway's configuration at fault, not
// the client, so it is logged for the operator too.
func (h *handler) requirement(w http.ResponseWriter, r *http.Request) (requirement, bool) {
	req, err := parseRequirement(r.URL.RawQuery)
	if err != nil {
		h.log.Warn("forward auth: malformed query, check the gateway's configuration", "path", clip(r.URL.Path), "err", clip(err.Error()))
		writeError(w, http.StatusBadRequest, err.Error())
		return req, false
	}
	return req, true
}

// gate checks the request's bearer token against req. On a pass it sets the
// X-Auth-* headers and returns the claims; on a refusal it has written the
// reply (401, 403, 503) and ok is false.
func (h *handler) gate(w http.ResponseWriter, r *http.Request, req requirement) (*authsvc.Claims, bool) {
	var claims *authsvc.Claims
	if tok, err := authsvc.DPoPToken(r); err == nil || errors.Is(err, authsvc.ErrInvalidToken) {
		var ok bool
		if claims, ok = h.gateDPoP(w, r, tok, err); !ok {
			return nil, false
		}
	} else {
		tok, ok := bearer(w, r, http.StatusUnauthorized)
		if !ok {
			return nil, false
		}
		claims, err = h.verifyBearer(r, tok)
		if err != nil {
			h.fail(w, r, err) // 401 invalid_token, or 503 when the store is down
			return nil, false
		}
	}
	if scopes, audiences := req.unmet(claims); len(scopes) > 0 || len(audiences) > 0 {
		// RFC 6750 §3: the scope attribute names the scope necessary for
		// the resource, which is every required one.
		challenge := `Bearer realm="authd", error="insufficient_scope"`
		if len(req.scopes) > 0 {
			challenge += `, scope="` + strings.Join(req.scopes, " ") + `"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		var missing []string
		if len(scopes) > 0 {
			missing = append(missing, "scope "+strings.Join(scopes, " "))
		}
		if len(audiences) > 0 {
			missing = append(missing, "audience "+strings.Join(audiences, " "))
		}
		h.log.Info("forward auth refused: requirement not met", "client_id", clip(claims.Subject),
			"missing_scopes", clipList(scopes), "missing_audiences", clipList(audiences), "path", clip(r.URL.Path))
		writeError(w, http.StatusForbidden, "the token lacks "+strings.Join(missing, " and "))
		return nil, false
	}
	// Admin rights are the client's now, not the claim's (which outlives a
	// demotion); the record comes from memory, like Verify's checks.
	c, err := h.auth.Client(r.Context(), claims.Subject)
	if err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	hd := w.Header()
	hd.Set(headerSubject, claims.Subject)
	hd.Set(headerScope, claims.Scope)
	hd.Set(headerAdmin, strconv.FormatBool(c.IsAdmin))
	hd.Set(headerExpires, strconv.FormatInt(claims.ExpiresAt, 10))
	return claims, true
}

// gateDPoP checks a token of the DPoP scheme (parsed with err) and its
// proof against the client's request, which the gateway names: its method
// and URL in X-Forwarded-Method, X-Forwarded-Proto, X-Forwarded-Host and
// X-Forwarded-Uri (Traefik and Caddy send them; nginx and Envoy are told
// to: docs/gateways.md). On Envoy's /verify/… form the method and path are
// the request's own. Without them the token is refused: a proof cannot be
// checked against a request nobody named. On a refusal it has answered.
func (h *handler) gateDPoP(w http.ResponseWriter, r *http.Request, tok string, err error) (*authsvc.Claims, bool) {
	method, u, named := forwardedRequest(r)
	if !named && err == nil {
		h.log.Warn("forward auth: a DPoP token without the original method and URL; check the gateway's configuration (X-Forwarded-Method, -Proto, -Host, -Uri)", "path", clip(r.URL.Path))
	}
	return h.dpopCaller(w, r, tok, err, dpopTarget{method: method, url: u, named: named,
		unnamed: "the gateway did not name the original request (X-Forwarded-Method, X-Forwarded-Proto, X-Forwarded-Host, X-Forwarded-Uri)"})
}

// dpopTarget is the request a DPoP proof must be of.
type dpopTarget struct {
	method  string
	url     *url.URL
	named   bool // else the proof is refused with unnamed
	shared  bool // record the proof's jti in the store (authsvc.DPoPRequest.SharedReplay)
	unnamed string
}

// dpopCaller checks a token of the DPoP scheme (parsed with err) and its
// proof against the request target names. On a refusal it has answered.
func (h *handler) dpopCaller(w http.ResponseWriter, r *http.Request, tok string, err error, target dpopTarget) (*authsvc.Claims, bool) {
	refuse := func(code, msg string) (*authsvc.Claims, bool) {
		w.Header().Set("WWW-Authenticate", authsvc.DPoPChallenge("authd", code))
		writeError(w, http.StatusUnauthorized, msg)
		return nil, false
	}
	if err != nil {
		return refuse("invalid_token", "invalid token")
	}
	claims, err := h.auth.Verify(r.Context(), tok)
	if errors.Is(err, authsvc.ErrUnavailable) {
		h.fail(w, r, err)
		return nil, false
	}
	if err != nil {
		return refuse("invalid_token", "invalid token")
	}
	if claims.DPoPThumbprint() == "" {
		return refuse("invalid_token", "a bearer token is not accepted with the DPoP scheme")
	}
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return refuse("invalid_dpop_proof", "one DPoP proof header is required")
	}
	if !target.named {
		return refuse("invalid_dpop_proof", target.unnamed)
	}
	p, err := h.auth.CheckDPoPProof(r.Context(), proofs[0], authsvc.DPoPRequest{Method: target.method, URL: target.url,
		AccessToken: tok, SharedReplay: target.shared})
	if errors.Is(err, authsvc.ErrUnavailable) {
		h.fail(w, r, err)
		return nil, false
	}
	var ne *authsvc.DPoPNonceError
	if errors.As(err, &ne) {
		w.Header().Set("DPoP-Nonce", ne.Nonce) // RFC 9449 §9
		return refuse("use_dpop_nonce", "the DPoP proof must carry the server nonce of the DPoP-Nonce header")
	}
	if err != nil {
		return refuse("invalid_dpop_proof", authsvc.ErrorMessage(err))
	}
	if !claims.DPoPBindingMatches(p) {
		return refuse("invalid_dpop_proof", "the DPoP proof is signed by another key than the token's")
	}
	if p.Nonce != "" {
		w.Header().Set("DPoP-Nonce", p.Nonce) // the one it carried expires soon
	}
	setClient(r, claims.Subject)
	return claims, true
}

// forwardedRequest is the client's request as the gateway names it: each
// of X-Forwarded-Method, -Proto, -Host and -Uri exactly once (the method
// and path are the request's own on the /verify/… form).
func forwardedRequest(r *http.Request) (string, *url.URL, bool) {
	one := func(name string) string {
		if v := r.Header.Values(name); len(v) == 1 && len(v[0]) <= 2048 {
			return v[0]
		}
		return ""
	}
	method, uri := one("X-Forwarded-Method"), one("X-Forwarded-Uri")
	if strings.HasPrefix(r.URL.Path, "/verify/") {
		method, uri = r.Method, strings.TrimPrefix(r.URL.EscapedPath(), "/verify")
	}
	proto, host := one("X-Forwarded-Proto"), one("X-Forwarded-Host")
	if method == "" || uri == "" || host == "" || (proto != "http" && proto != "https") {
		return "", nil, false
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil || u.Host != "" {
		return "", nil, false
	}
	return method, &url.URL{Scheme: proto, Host: host, Path: u.Path, RawPath: u.RawPath}, true
}
