package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

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
func (s *server) gatewayRoutes(mux *http.ServeMux) {
	mux.Handle("/verify", methods{http.MethodGet: s.forwardAuth, http.MethodPost: s.verifyPost})
	// Envoy's ext_authz HTTP service appends the client's path (and query)
	// to path_prefix and keeps the client's method, so with path_prefix
	// "/verify" a request for DELETE /notes/1?x=y is checked as
	// DELETE /verify/notes/1?x=y. Every method is the gateway form here, and
	// the query, being the client's, is ignored: requirements cannot be
	// given (nor weakened) through it.
	mux.HandleFunc("/verify/", s.forwardAuthSubtree)
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
	req.scopes = dedupe(req.scopes)
	req.audiences = dedupe(req.audiences)
	if len(req.scopes) > authsvc.MaxScopes {
		return req, &errQuery{fmt.Sprintf("at most %d scopes", authsvc.MaxScopes)}
	}
	for _, sc := range req.scopes {
		if !validScope(sc) {
			return req, &errQuery{fmt.Sprintf("malformed scope %q", sc)}
		}
	}
	if len(req.audiences) > authsvc.MaxAudiences {
		return req, &errQuery{fmt.Sprintf("at most %d audiences", authsvc.MaxAudiences)}
	}
	for _, aud := range req.audiences {
		if !validAudience(aud) {
			return req, &errQuery{fmt.Sprintf("malformed audience %q", aud)}
		}
	}
	return req, nil
}

// dedupe removes repeated values, keeping the first of each in order.
func dedupe(xs []string) []string {
	seen := make(map[string]bool, len(xs))
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// validScope: an RFC 6749 §3.3 scope-token of at most MaxScopeLen bytes,
// the rule the library applies to the scopes it grants.
func validScope(s string) bool {
	if s == "" || len(s) > authsvc.MaxScopeLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c == '"' || c == '\\' || c > 0x7e {
			return false
		}
	}
	return true
}

// validAudience: printable UTF-8 without spaces, at most 512 bytes, the
// rule the library applies to the audiences it issues.
func validAudience(s string) bool {
	if s == "" || len(s) > 512 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
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
func (s *server) forwardAuth(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	req, ok := s.requirement(w, r)
	if !ok {
		return
	}
	if _, ok := s.gate(w, r, req); ok {
		w.WriteHeader(http.StatusOK)
	}
}

// forwardAuthSubtree: any method on /verify/…, Envoy's path_prefix form.
// The path and query after /verify are the client's, not requirements.
func (s *server) forwardAuthSubtree(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if _, ok := s.gate(w, r, requirement{}); ok {
		w.WriteHeader(http.StatusOK)
	}
}

// verifyPost: POST /verify. Without a query it is the seed's route as it
// always was (the token's claims as JSON). With one it also holds the token
// to the scope and audience parameters and sets the X-Auth-* headers, so a
// gateway that sends its sub-request as POST is not let through on a weaker
// check than GET would make.
func (s *server) verifyPost(w http.ResponseWriter, r *http.Request) {
	if r.URL.RawQuery == "" {
		s.verify(w, r)
		return
	}
	noStore(w)
	req, ok := s.requirement(w, r)
	if !ok {
		return
	}
	if claims, ok := s.gate(w, r, req); ok {
		writeJSON(w, http.StatusOK, claims)
	}
}

// requirement reads the request's query, answering 400 itself (ok false)
// when it is malformed. That is the gateway's configuration at fault, not
// the client, so it is logged for the operator too.
func (s *server) requirement(w http.ResponseWriter, r *http.Request) (requirement, bool) {
	req, err := parseRequirement(r.URL.RawQuery)
	if err != nil {
		s.log.Warn("forward auth: malformed query, check the gateway's configuration", "path", r.URL.Path, "err", err.Error())
		writeError(w, http.StatusBadRequest, err.Error())
		return req, false
	}
	return req, true
}

// gate checks the request's bearer token against req. On a pass it sets the
// X-Auth-* headers and returns the claims; on a refusal it has written the
// reply (401, 403, 503) and ok is false.
func (s *server) gate(w http.ResponseWriter, r *http.Request, req requirement) (*authsvc.Claims, bool) {
	tok, ok := gatewayBearer(w, r)
	if !ok {
		return nil, false
	}
	claims, err := s.auth.Verify(r.Context(), tok)
	if err != nil {
		s.fail(w, r, err) // 401 invalid_token, or 503 when the store is down
		return nil, false
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
		s.log.Info("forward auth refused: requirement not met", "client_id", claims.Subject,
			"missing_scopes", scopes, "missing_audiences", audiences, "path", r.URL.Path)
		writeError(w, http.StatusForbidden, "the token lacks "+strings.Join(missing, " and "))
		return nil, false
	}
	// Admin rights are the client's now, not the claim's (which outlives a
	// demotion); the record comes from memory, like Verify's checks.
	c, err := s.auth.Client(r.Context(), claims.Subject)
	if err != nil {
		s.fail(w, r, err)
		return nil, false
	}
	h := w.Header()
	h.Set(headerSubject, claims.Subject)
	h.Set(headerScope, claims.Scope)
	h.Set(headerAdmin, strconv.FormatBool(c.IsAdmin))
	h.Set(headerExpires, strconv.FormatInt(claims.ExpiresAt, 10))
	return claims, true
}

// gatewayBearer reads the bearer token as bearer does, but answers a
// malformed Authorization header with 401 rather than 400: nginx turns any
// sub-request status other than 2xx, 401 and 403 into a 500 of its own.
func gatewayBearer(w http.ResponseWriter, r *http.Request) (string, bool) {
	tok, err := authsvc.BearerToken(r)
	switch {
	case err == nil:
		return tok, true
	case errors.Is(err, authsvc.ErrNoToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="authd"`)
		writeError(w, http.StatusUnauthorized, "an Authorization: Bearer token is required")
	case errors.Is(err, authsvc.ErrInvalidToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="authd", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "invalid token")
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="authd", error="invalid_request"`)
		writeError(w, http.StatusUnauthorized, "malformed Authorization header")
	}
	return "", false
}
