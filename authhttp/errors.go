package authhttp

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/authsvc/authsvc"
)

// errorKinds maps the library's error kinds to HTTP, in one place: the
// status, the error code of the OAuth routes (RFC 6749 §5.2, RFC 7009,
// RFC 7662) and the message callers get when the error carries none of its
// own. The first kind the error is (errors.Is) decides; anything else is a
// 500 that tells nothing. invalid_target is RFC 8707's.
var errorKinds = []struct {
	kind   error
	status int
	code   string
	msg    string
}{
	{authsvc.ErrUnavailable, http.StatusServiceUnavailable, "temporarily_unavailable", "service unavailable: the store cannot be reached"},
	{authsvc.ErrInvalidClient, http.StatusUnauthorized, "invalid_client", "invalid client credentials"},
	{authsvc.ErrInvalidToken, http.StatusUnauthorized, "invalid_token", "invalid token"},
	{authsvc.ErrInvalidDPoPProof, http.StatusBadRequest, "invalid_dpop_proof", "invalid DPoP proof"},
	{authsvc.ErrUseDPoPNonce, http.StatusBadRequest, "use_dpop_nonce", "the DPoP proof must carry the server nonce of the DPoP-Nonce header"},
	{authsvc.ErrInvalidScope, http.StatusBadRequest, "invalid_scope", "invalid scope"},
	{authsvc.ErrInvalidTarget, http.StatusBadRequest, "invalid_target", "invalid target"},
	{authsvc.ErrInvalidArgument, http.StatusBadRequest, "invalid_request", "invalid request"},
	{authsvc.ErrClientExists, http.StatusConflict, "invalid_request", "client already exists"},
	{authsvc.ErrClientNotFound, http.StatusNotFound, "invalid_request", "client not found"},
	{authsvc.ErrIssuerExists, http.StatusConflict, "invalid_request", "issuer already trusted"},
	{authsvc.ErrIssuerNotFound, http.StatusNotFound, "invalid_request", "issuer not found"},
	{authsvc.ErrForbidden, http.StatusForbidden, "insufficient_scope", "not permitted"},
}

// failure is what an error becomes on the wire.
type failure struct {
	status int
	code   string // OAuth error code
	msg    string // safe to show the caller
}

// classify looks err up in errorKinds. The message is the error's own
// public message (authsvc.ErrorMessage) when it has one, else the kind's.
func classify(err error) failure {
	for _, k := range errorKinds {
		if errors.Is(err, k.kind) {
			f := failure{k.status, k.code, k.msg}
			if m := authsvc.ErrorMessage(err); m != "" {
				f.msg = m
			}
			return f
		}
	}
	return failure{http.StatusInternalServerError, "server_error", "internal error"}
}

// fail answers a library error in the seed service's form
// ({"success":false,"error":…}) with the status errorKinds gives; an
// outage or an unknown error is logged for the operator, never shown.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	f := h.failure(w, r, err, bearerChallenge)
	writeError(w, f.status, f.msg)
}

// oauthFail answers a library error in RFC 6749 §5.2's form.
func (h *handler) oauthFail(w http.ResponseWriter, r *http.Request, err error) {
	f := h.failure(w, r, err, basicChallenge)
	oauthError(w, f.status, f.code, f.msg)
}

// The WWW-Authenticate challenges of a 401 (RFC 9110 §11.6.1: every 401
// carries one): Basic at the OAuth routes where a client authenticates
// (RFC 6749 §5.2, whichever way it sent its credentials), Bearer at the
// rest (RFC 6750), the seed's /auth included: it takes its credentials in
// the body, which no challenge scheme names, and answers as its sibling
// routes do.
const (
	bearerChallenge = `Bearer realm="authd"`
	basicChallenge  = `Basic realm="authd"`
)

// failure classifies err, logs what the operator must see and sets the
// headers its status needs.
func (h *handler) failure(w http.ResponseWriter, r *http.Request, err error, challenge string) failure {
	f := classify(err)
	var ne *authsvc.DPoPNonceError
	if errors.As(err, &ne) {
		w.Header().Set("DPoP-Nonce", ne.Nonce) // RFC 9449 §8.1
	}
	switch f.status {
	case http.StatusServiceUnavailable:
		h.log.Error("store unavailable", "path", clip(r.URL.Path), "err", err)
		w.Header().Set("Retry-After", "1")
	case http.StatusInternalServerError:
		h.log.Error("internal error", "path", clip(r.URL.Path), "err", err)
	case http.StatusUnauthorized:
		if f.code == "invalid_token" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="authd", error="invalid_token"`)
		} else {
			w.Header().Set("WWW-Authenticate", challenge)
		}
	}
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError writes the seed service's failure body, with a real status.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"success": false, "error": msg})
}

// oauthError is an RFC 6749 §5.2 error response.
func oauthError(w http.ResponseWriter, status int, code, description string) {
	noStore(w)
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

// noStore marks a response that carries a credential (RFC 6749 §5.1).
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// bearer reads the request's bearer token, answering itself when there is
// none to use: 401 when there is none or it cannot be a token, and for a
// malformed Authorization header the status malformed (400 for the API,
// 401 for gateways: nginx turns any sub-request status other than 2xx, 401
// and 403 into a 500 of its own).
func bearer(w http.ResponseWriter, r *http.Request, malformed int) (string, bool) {
	tok, err := authsvc.BearerToken(r)
	switch {
	case err == nil:
		return tok, true
	case errors.Is(err, authsvc.ErrNoToken):
		w.Header().Set("WWW-Authenticate", bearerChallenge)
		writeError(w, http.StatusUnauthorized, "an Authorization: Bearer token is required")
	case errors.Is(err, authsvc.ErrInvalidToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="authd", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "invalid token")
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="authd", error="invalid_request"`)
		writeError(w, malformed, "malformed Authorization header")
	}
	return "", false
}

// verifyBearer verifies a token presented as a Bearer token: a token bound
// to a DPoP key is refused, since a Bearer presentation proves nothing of
// the key (RFC 9449 §7.2, no downgrade). authd's own routes and /verify
// take no DPoP proofs yet, so such a token is used at resource servers
// behind authsvc.Middleware only.
func (h *handler) verifyBearer(r *http.Request, tok string) (*authsvc.Claims, error) {
	claims, err := h.auth.Verify(r.Context(), tok)
	if err == nil && claims.DPoPThumbprint() != "" {
		return nil, &authsvc.Error{Kind: authsvc.ErrInvalidToken, Message: "the token is bound to a DPoP key: it is not accepted as a Bearer token"}
	}
	if err == nil && claims.CertificateThumbprint() != "" {
		// RFC 8705 §3: only with the certificate it is bound to: the
		// request's own, or behind a trusted proxy the one it names.
		var der []byte
		if chain, cerr := authsvc.ClientCertificates(r, h.certHeader); cerr == nil && len(chain) > 0 {
			der = chain[0].Raw
		}
		if !claims.CertificateBindingMatches(der) {
			return nil, &authsvc.Error{Kind: authsvc.ErrInvalidToken, Message: "the token is bound to a TLS client certificate: present it with that certificate"}
		}
	}
	return claims, err
}
