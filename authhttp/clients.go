package authhttp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/authsvc/authsvc"
)

// The admin routes: clients created, listed, changed and deleted by a
// client that is an admin now.

func (h *handler) clientRoutes(mux *http.ServeMux) {
	mux.Handle("/client", methods{http.MethodPost: h.createClient, http.MethodDelete: h.deleteClient})
	mux.Handle("/client/{id}", methods{http.MethodDelete: h.deleteClient, http.MethodPatch: h.updateClient})
	mux.Handle("/client/{id}/logout", methods{http.MethodPost: h.logoutClient})
	mux.Handle("/client/{id}/rotate-secret", methods{http.MethodPost: h.rotateSecret})
	mux.Handle("/clients", methods{http.MethodGet: h.listClients})
	mux.Handle("/issuer", methods{http.MethodPost: h.addIssuer, http.MethodDelete: h.removeIssuer})
	mux.Handle("/issuers", methods{http.MethodGet: h.listIssuers})
}

// requireAdmin lets the request through only for a valid token meant for
// authd itself (its aud includes the issuer, or is the default audience:
// authsvc.Authenticator.ForIssuer) whose client exists now and is an admin
// now: not on the strength of the token's isAdmin claim, which outlives a
// deletion or a demotion, nor with a token minted for another service. The
// request it returns carries the admin as the actor of the changes made
// with its context (authsvc.WithActor).
func (h *handler) requireAdmin(w http.ResponseWriter, r *http.Request) (*http.Request, *authsvc.Claims, bool) {
	var claims *authsvc.Claims
	dpop := false
	// invalid refuses the token after its check (RFC 6750 §3.1, RFC 9449
	// §7.1: in the scheme it came in).
	invalid := func(msg string) {
		if !dpop {
			h.fail(w, r, &authsvc.Error{Kind: authsvc.ErrInvalidToken, Message: msg})
			return
		}
		w.Header().Set("WWW-Authenticate", authsvc.DPoPChallenge("authd", "invalid_token"))
		writeError(w, http.StatusUnauthorized, msg)
	}
	challenge := `Bearer realm="authd", error="insufficient_scope"`
	if tok, err := authsvc.DPoPToken(r); err == nil || errors.Is(err, authsvc.ErrInvalidToken) {
		// A DPoP-bound token (RFC 9449 §7.1) with its proof of this
		// request, the URL as the issuer names authd (as the token
		// endpoint's). Its jti is refused again by every instance: a
		// replayed admin request changes things, or answers with a
		// rotated secret.
		u, perr := url.Parse(h.base(r) + r.URL.EscapedPath())
		var ok bool
		if claims, ok = h.dpopCaller(w, r, tok, err, dpopTarget{method: r.Method, url: u, named: perr == nil, shared: true,
			unnamed: "the request's URL could not be told"}); !ok {
			return r, nil, false
		}
		dpop, challenge = true, authsvc.DPoPChallenge("authd", "insufficient_scope")
	} else {
		tok, ok := bearer(w, r, http.StatusBadRequest)
		if !ok {
			return r, nil, false
		}
		if claims, err = h.verifyBearer(r, tok); err != nil {
			h.fail(w, r, err)
			return r, nil, false
		}
		setClient(r, claims.Subject)
	}
	if !h.auth.ForIssuer(claims) {
		// RFC 9068 §4: a token whose aud is not this server is invalid here.
		h.log.Warn("audit: admin route refused a token for another audience", "client_id", claims.Subject, "path", r.URL.Path)
		invalid("the token is not meant for this server (its aud lacks the issuer)")
		return r, nil, false
	}
	if err := h.adminNow(r.Context(), claims.Subject); err != nil {
		switch {
		case errors.Is(err, authsvc.ErrForbidden):
			w.Header().Set("WWW-Authenticate", challenge)
			writeError(w, http.StatusForbidden, "admin rights required")
		case errors.Is(err, authsvc.ErrInvalidToken):
			invalid("invalid token") // its client is gone
		default:
			h.fail(w, r, err)
		}
		return r, nil, false
	}
	return r.WithContext(authsvc.WithActor(r.Context(), claims.Subject)), claims, true
}

// adminNow checks that clientID is an admin now (the console checks its
// sessions with it too): ErrInvalidToken when the client is gone,
// ErrForbidden when it is no admin, or the store's error.
func (h *handler) adminNow(ctx context.Context, clientID string) error {
	c, err := h.auth.Client(ctx, clientID)
	if errors.Is(err, authsvc.ErrClientNotFound) {
		return authsvc.ErrInvalidToken
	}
	if err != nil {
		return err
	}
	if !c.IsAdmin {
		return authsvc.ErrForbidden
	}
	return nil
}

// createClient: POST /client (admin). Fields client_id, client_secret
// (optional: generated when absent), is_admin, scope, audience (the
// audiences the client may request, space-separated or a JSON array), and
// RFC 7591's token_endpoint_auth_method, jwks (a JWK Set: a JSON object,
// or its text in a form) and jwks_uri, with federated_credentials (a JSON
// array of {"issuer","subject"}), and RFC 9449's dpop_bound_access_tokens
// (a boolean: the client's token requests must carry a DPoP proof), and
// RFC 8705's tls_client_auth_subject_dn, tls_client_auth_san_dns, _uri,
// _ip, _email (one of them: the certificate name of a tls_client_auth
// client) and tls_client_certificate_bound_access_tokens (a boolean: its
// token requests must come with its TLS client certificate).
func (h *handler) createClient(w http.ResponseWriter, r *http.Request) {
	r, caller, ok := h.requireAdmin(w, r)
	if !ok {
		return
	}
	p, ok := params(w, r, "client_id", "client_secret", "is_admin", "scope", "audience",
		"token_endpoint_auth_method", "jwks", "jwks_uri", "federated_credentials", "dpop_bound_access_tokens",
		tlsSubjectDN, tlsSANDNS, tlsSANURI, tlsSANIP, tlsSANEmail, tlsBound)
	if !ok {
		return
	}
	if p["client_id"] == "" {
		writeError(w, http.StatusBadRequest, "client_id is required")
		return
	}
	isAdmin, err := parseBool(p["is_admin"])
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	dpopBound, err := parseBool(p["dpop_bound_access_tokens"])
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	certBound, err := parseBool(p[tlsBound])
	if err != nil {
		writeError(w, http.StatusBadRequest, tlsBound+" must be true or false")
		return
	}
	fcs, err := parseFederated(p["federated_credentials"])
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	nc := authsvc.NewClient{
		TLSClientAuth: authsvc.TLSClientAuth{SubjectDN: p[tlsSubjectDN], SANDNS: p[tlsSANDNS], SANURI: p[tlsSANURI],
			SANIP: p[tlsSANIP], SANEmail: p[tlsSANEmail]},
		TLSClientCertificateBoundAccessTokens: certBound,
		ID:                                    p["client_id"], Secret: p["client_secret"], IsAdmin: isAdmin, Scopes: authsvc.ParseScope(p["scope"]),
		Audiences: strings.Fields(p["audience"]), AuthMethod: p["token_endpoint_auth_method"],
		JWKSURI: p["jwks_uri"], FederatedCredentials: fcs, DPoPBoundAccessTokens: dpopBound,
	}
	if p["jwks"] != "" {
		nc.JWKS = []byte(p["jwks"])
	}
	c, secret, err := h.auth.CreateClient(r.Context(), nc)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("audit: client created", "client_id", c.ID, "is_admin", c.IsAdmin, "auth_method", c.AuthMethod,
		"federated_credentials", len(c.FederatedCredentials), "by", caller.Subject)
	noStore(w)
	out := map[string]any{
		"success": true, "client_id": c.ID,
		"id": c.RowID, "is_admin": c.IsAdmin, "scope": strings.Join(c.Scopes, " "),
		"audience":                   strings.Join(c.Audiences, " "),
		"token_endpoint_auth_method": c.AuthMethod,
		"dpop_bound_access_tokens":   c.DPoPBoundAccessTokens,
		tlsBound:                     c.TLSClientCertificateBoundAccessTokens,
	}
	addTLSClientAuth(out, c.TLSClientAuth)
	if secret != "" {
		out["client_secret"] = secret
	}
	if len(c.JWKS) > 0 {
		out["jwks"] = json.RawMessage(c.JWKS)
	}
	if c.JWKSURI != "" {
		out["jwks_uri"] = c.JWKSURI
	}
	if len(c.FederatedCredentials) > 0 {
		out["federated_credentials"] = c.FederatedCredentials
	}
	writeJSON(w, http.StatusCreated, out)
}

// RFC 8705's client metadata names.
const (
	tlsSubjectDN = "tls_client_auth_subject_dn"
	tlsSANDNS    = "tls_client_auth_san_dns"
	tlsSANURI    = "tls_client_auth_san_uri"
	tlsSANIP     = "tls_client_auth_san_ip"
	tlsSANEmail  = "tls_client_auth_san_email"
	tlsBound     = "tls_client_certificate_bound_access_tokens"
)

// addTLSClientAuth puts t's one name in out under its metadata name.
func addTLSClientAuth(out map[string]any, t authsvc.TLSClientAuth) {
	for k, v := range map[string]string{tlsSubjectDN: t.SubjectDN, tlsSANDNS: t.SANDNS, tlsSANURI: t.SANURI, tlsSANIP: t.SANIP, tlsSANEmail: t.SANEmail} {
		if v != "" {
			out[k] = v
		}
	}
}

// parseFederated reads federated_credentials: a JSON array of objects
// with exactly an issuer and a subject ("" : none).
func parseFederated(s string) ([]authsvc.FederatedCredential, error) {
	if s == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	var fcs []authsvc.FederatedCredential
	if err := dec.Decode(&fcs); err != nil || dec.More() {
		return nil, errors.New(`federated_credentials must be a JSON array of {"issuer": …, "subject": …}`)
	}
	return fcs, nil
}

// updateClient: PATCH /client/{id} (admin) changes a client's scopes,
// admin flag, audiences or way to authenticate, with the fields POST
// /client takes: scope, is_admin, audience, token_endpoint_auth_method,
// jwks, jwks_uri, federated_credentials, dpop_bound_access_tokens, the
// tls_client_auth_* names and tls_client_certificate_bound_access_tokens
// (JSON or form). A field that is absent (or JSON null) is left as it is;
// an empty scope, audience, jwks, jwks_uri or federated_credentials
// removes them all; any tls_client_auth_* name replaces the one
// registered (an empty one clears it). Any other field is
// refused, so that a misspelt one does not pass for a change.
func (h *handler) updateClient(w http.ResponseWriter, r *http.Request) {
	r, caller, ok := h.requireAdmin(w, r)
	if !ok {
		return
	}
	v, err := readParams(w, r)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	var u authsvc.ClientUpdate
	var tlsName authsvc.TLSClientAuth
	for k := range v {
		val, err := param(v, k)
		if err != nil {
			writeBodyError(w, err)
			return
		}
		switch k {
		case "scope":
			scopes := authsvc.ParseScope(val)
			u.Scopes = &scopes
		case "audience":
			auds := strings.Fields(val)
			u.Audiences = &auds
		case "is_admin":
			b, err := parseBool(val)
			if err != nil || strings.TrimSpace(val) == "" {
				writeError(w, http.StatusBadRequest, "is_admin must be true or false")
				return
			}
			u.IsAdmin = &b
		case "token_endpoint_auth_method":
			u.AuthMethod = &val
		case "jwks":
			b := []byte(val)
			u.JWKS = &b
		case "jwks_uri":
			u.JWKSURI = &val
		case "federated_credentials":
			fcs, err := parseFederated(val)
			if err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			if fcs == nil {
				fcs = []authsvc.FederatedCredential{}
			}
			u.FederatedCredentials = &fcs
		case "dpop_bound_access_tokens", tlsBound:
			b, err := parseBool(val)
			if err != nil || strings.TrimSpace(val) == "" {
				writeError(w, http.StatusBadRequest, k+" must be true or false")
				return
			}
			if k == tlsBound {
				u.TLSClientCertificateBoundAccessTokens = &b
			} else {
				u.DPoPBoundAccessTokens = &b
			}
		case tlsSubjectDN, tlsSANDNS, tlsSANURI, tlsSANIP, tlsSANEmail:
			switch k {
			case tlsSubjectDN:
				tlsName.SubjectDN = val
			case tlsSANDNS:
				tlsName.SANDNS = val
			case tlsSANURI:
				tlsName.SANURI = val
			case tlsSANIP:
				tlsName.SANIP = val
			case tlsSANEmail:
				tlsName.SANEmail = val
			}
			u.TLSClientAuth = &tlsName
		case "client_id":
			writeError(w, http.StatusBadRequest, "a client_id cannot be changed: create a client and delete this one")
			return
		case "client_secret":
			writeError(w, http.StatusBadRequest, "a secret is changed with POST /client/{id}/rotate-secret")
			return
		default:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown parameter %s: PATCH /client/{id} takes %s", quoteName(k), patchFields))
			return
		}
	}
	if u == (authsvc.ClientUpdate{}) {
		writeError(w, http.StatusBadRequest, "nothing to change: give "+patchFields)
		return
	}
	c, err := h.auth.UpdateClient(r.Context(), r.PathValue("id"), u)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.auditUpdate(c, u, caller.Subject)
	writeJSON(w, http.StatusOK, struct {
		Success bool `json:"success"`
		ClientJSON
	}{true, ClientToJSON(*c)})
}

// patchFields are the fields PATCH /client/{id} takes, for its messages.
const patchFields = "scope, is_admin, audience, token_endpoint_auth_method, jwks, jwks_uri, federated_credentials, dpop_bound_access_tokens, " +
	"tls_client_auth_subject_dn, tls_client_auth_san_dns, tls_client_auth_san_uri, tls_client_auth_san_ip, tls_client_auth_san_email " +
	"or tls_client_certificate_bound_access_tokens"

// auditUpdate logs a client update: what it set, and by whom (and more
// attributes, such as via=console).
func (h *handler) auditUpdate(c *authsvc.Client, u authsvc.ClientUpdate, by string, more ...any) {
	attrs := append([]any{"client_id", c.ID, "by", by}, more...)
	if u.IsAdmin != nil {
		attrs = append(attrs, "is_admin", c.IsAdmin)
	}
	if u.Scopes != nil {
		attrs = append(attrs, "scope", strings.Join(c.Scopes, " "))
	}
	if u.Audiences != nil {
		attrs = append(attrs, "audience", strings.Join(c.Audiences, " "))
	}
	if u.AuthMethod != nil || u.JWKS != nil || u.JWKSURI != nil || u.TLSClientAuth != nil {
		attrs = append(attrs, "auth_method", c.AuthMethod)
	}
	if u.FederatedCredentials != nil {
		attrs = append(attrs, "federated_credentials", len(c.FederatedCredentials))
	}
	h.log.Info("audit: client updated", attrs...)
}

// deleteClient: DELETE /client (client_id in the body or query) or
// DELETE /client/{id} (admin).
func (h *handler) deleteClient(w http.ResponseWriter, r *http.Request) {
	r, caller, ok := h.requireAdmin(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if id == "" {
		p, ok := params(w, r, "client_id")
		if !ok {
			return
		}
		id = p["client_id"]
		if id == "" {
			q, err := param(r.URL.Query(), "client_id")
			if err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			id = q
		}
	}
	if id == "" {
		writeError(w, http.StatusBadRequest, "client_id is required")
		return
	}
	if err := h.auth.DeleteClient(r.Context(), id); err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("audit: client deleted", "client_id", clip(id), "by", caller.Subject)
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

// logoutClient: POST /client/{id}/logout (admin) logs a client out
// everywhere: every token it was issued so far is refused, on every instance.
func (h *handler) logoutClient(w http.ResponseWriter, r *http.Request) {
	r, caller, ok := h.requireAdmin(w, r)
	if !ok {
		return
	}
	c, err := h.auth.LogoutClient(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("audit: client logged out everywhere", "client_id", c.ID, "by", caller.Subject)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "client_id": c.ID, "tokens_valid_after": c.TokensValidAfter.Unix()})
}

// rotateSecret: POST /client/{id}/rotate-secret (admin). Optional fields:
// client_secret (else generated), grace (a duration such as 24h during which
// the old secret still works), logout_everywhere (also refuse every token
// issued so far).
func (h *handler) rotateSecret(w http.ResponseWriter, r *http.Request) {
	r, caller, ok := h.requireAdmin(w, r)
	if !ok {
		return
	}
	p, ok := params(w, r, "client_secret", "grace", "logout_everywhere")
	if !ok {
		return
	}
	var opt authsvc.RotateSecret
	opt.Secret = p["client_secret"]
	var err error
	if opt.Grace, err = parseGrace(p["grace"]); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if opt.LogoutEverywhere, err = parseBool(p["logout_everywhere"]); err != nil {
		writeError(w, http.StatusBadRequest, "logout_everywhere must be true or false")
		return
	}
	c, secret, err := h.auth.RotateSecret(r.Context(), r.PathValue("id"), opt)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("audit: client secret rotated", "client_id", c.ID, "grace", opt.Grace.String(), "logout_everywhere", opt.LogoutEverywhere, "by", caller.Subject)
	noStore(w)
	out := map[string]any{"success": true, "client_id": c.ID, "client_secret": secret}
	if opt.Grace > 0 {
		out["old_secret_valid_until"] = time.Now().Add(opt.Grace).Unix()
	}
	writeJSON(w, http.StatusOK, out)
}

// maxGrace bounds a secret rotation's grace period.
const maxGrace = 30 * 24 * time.Hour

// parseGrace reads a rotation's grace period: a duration such as 24h, at
// most maxGrace; "" is none.
func parseGrace(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > maxGrace {
		return 0, errors.New("grace must be a duration such as 24h, at most 720h")
	}
	return d, nil
}

// ClientJSON is a client as the API shows it (GET /clients, and the CLI's
// --json): never a secret or a hash.
type ClientJSON struct {
	ClientID string `json:"client_id"`
	ID       int64  `json:"id"` // the seed service's numeric id
	IsAdmin  bool   `json:"is_admin"`
	Scope    string `json:"scope"` // space-separated
	// Audience is what the client may request besides the default
	// audience, space-separated ("" : the default audience only).
	Audience  string    `json:"audience"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// TokensValidAfter is the log-out-everywhere cut-off, or null.
	TokensValidAfter *time.Time `json:"tokens_valid_after"`
	// TokenEndpointAuthMethod is RFC 7591's: client_secret_basic,
	// client_secret_post, private_key_jwt, tls_client_auth or
	// self_signed_tls_client_auth.
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method"`
	// JWKS (public keys only) or JWKSURI of a private_key_jwt client.
	JWKS    json.RawMessage `json:"jwks,omitempty"`
	JWKSURI string          `json:"jwks_uri,omitempty"`
	// FederatedCredentials are the (issuer, subject) pairs that log in as
	// the client.
	FederatedCredentials []authsvc.FederatedCredential `json:"federated_credentials,omitempty"`
	// DPoPBoundAccessTokens: the client's tokens must be DPoP-bound (RFC
	// 9449 §5.2).
	DPoPBoundAccessTokens bool `json:"dpop_bound_access_tokens,omitempty"`
	// The certificate name of a tls_client_auth client (RFC 8705 §2.1.2):
	// one of these.
	authsvc.TLSClientAuth
	// TLSClientCertificateBoundAccessTokens: the client's tokens must be
	// bound to its TLS client certificate (RFC 8705 §3.4).
	TLSClientCertificateBoundAccessTokens bool `json:"tls_client_certificate_bound_access_tokens,omitempty"`
}

// ClientToJSON returns c's JSON form.
func ClientToJSON(c authsvc.Client) ClientJSON {
	out := ClientJSON{ClientID: c.ID, ID: c.RowID, IsAdmin: c.IsAdmin, Scope: strings.Join(c.Scopes, " "),
		Audience: strings.Join(c.Audiences, " "), CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		TokenEndpointAuthMethod: c.AuthMethod, JWKSURI: c.JWKSURI, FederatedCredentials: c.FederatedCredentials,
		DPoPBoundAccessTokens: c.DPoPBoundAccessTokens, TLSClientAuth: c.TLSClientAuth,
		TLSClientCertificateBoundAccessTokens: c.TLSClientCertificateBoundAccessTokens}
	if len(c.JWKS) > 0 {
		out.JWKS = json.RawMessage(c.JWKS)
	}
	if !c.TokensValidAfter.IsZero() {
		t := c.TokensValidAfter.UTC()
		out.TokensValidAfter = &t
	}
	return out
}

// listClients: GET /clients (admin).
//
// A page at a time: ?limit= (default 100, at most 1000), ?prefix= (the
// client_ids that start with it) and ?cursor= (the next_cursor of the page
// before; opaque). next_cursor is "" on the last page.
func (h *handler) listClients(w http.ResponseWriter, r *http.Request) {
	r, _, ok := h.requireAdmin(w, r)
	if !ok {
		return
	}
	q, err := clientQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	page, err := h.auth.ListClients(r.Context(), q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]ClientJSON, len(page.Clients))
	for i, c := range page.Clients {
		out[i] = ClientToJSON(c)
	}
	next := ""
	if page.Next != "" {
		next = base64.RawURLEncoding.EncodeToString([]byte(page.Next))
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "clients": out, "next_cursor": next})
}

// clientQuery reads GET /clients' query; a parameter given twice, an
// unknown one, or a malformed value is an error for the caller.
func clientQuery(raw string) (authsvc.ClientQuery, error) {
	var q authsvc.ClientQuery
	v, err := url.ParseQuery(raw)
	if err != nil {
		return q, errors.New("malformed query")
	}
	for k, vals := range v {
		if len(vals) > 1 {
			return q, fmt.Errorf("parameter %q given more than once", k)
		}
		switch k {
		case "limit":
			n, err := strconv.Atoi(vals[0])
			if err != nil || n < 1 || n > authsvc.MaxClientPage {
				return q, fmt.Errorf("limit must be a number from 1 to %d", authsvc.MaxClientPage)
			}
			q.Limit = n
		case "prefix":
			q.Prefix = vals[0]
		case "cursor":
			after, err := base64.RawURLEncoding.DecodeString(vals[0])
			if err != nil || len(after) == 0 {
				return q, errors.New("malformed cursor: pass next_cursor as it came")
			}
			q.After = string(after)
		default:
			return q, fmt.Errorf("unknown query parameter %q: GET /clients takes limit, prefix and cursor", k)
		}
	}
	return q, nil
}
