package authhttp

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/authsvc/authsvc"
)

// The Flask tutorial service's routes, with its field names and success
// bodies but real status codes.

func (h *handler) seedRoutes(mux *http.ServeMux) {
	mux.Handle("/auth", methods{http.MethodPost: h.authenticate})
	mux.Handle("/logout", methods{http.MethodPost: h.logout})
	// /verify: POST is the seed's, GET the gateways' (gateway.go).
}

// authenticate: POST /auth, the seed service's token route. Fields
// client_id and client_secret; the token carries all the client's scopes.
func (h *handler) authenticate(w http.ResponseWriter, r *http.Request) {
	p, ok := params(w, r, "client_id", "client_secret")
	if !ok {
		return
	}
	if p["client_id"] == "" || p["client_secret"] == "" {
		writeError(w, http.StatusBadRequest, "client_id and client_secret are required")
		return
	}
	att, ok := h.allowAttempt(w, r, p["client_id"], false)
	if !ok {
		return
	}
	tok, err := h.auth.Authenticate(r.Context(), p["client_id"], p["client_secret"], authsvc.TokenRequest{})
	h.noteAttempt(r, att, p["client_id"], err)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	secs := int64(tok.ExpiresIn / time.Second)
	noStore(w)
	// expiresIn as the seed's article documents it; expiresin (a string) as
	// its published code returns it, so clients of either keep working.
	writeJSON(w, http.StatusOK, authResponse{
		Token: tok.AccessToken, ExpiresIn: secs, ExpiresInString: strconv.FormatInt(secs, 10), IsAdmin: tok.IsAdmin,
	})
}

// authResponse is /auth's body. Hot responses are structs, not maps: the
// same bytes (fields in the sorted order a map's keys are written in)
// without a map and a sort per request.
type authResponse struct {
	ExpiresIn       int64  `json:"expiresIn"`
	ExpiresInString string `json:"expiresin"`
	IsAdmin         bool   `json:"isAdmin"`
	Token           string `json:"token"`
}

// verify: POST /verify with a bearer token; answers the token's claims.
func (h *handler) verify(w http.ResponseWriter, r *http.Request) {
	tok, ok := bearer(w, r, http.StatusBadRequest)
	if !ok {
		return
	}
	claims, err := h.verifyBearer(r, tok)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	setClient(r, claims.Subject)
	writeJSON(w, http.StatusOK, claims)
}

// logout: POST /logout with the token in the form field "token" (the
// seed's way) or as a bearer token.
func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	p, ok := params(w, r, "token")
	if !ok {
		return
	}
	tok := p["token"]
	if len(r.Header.Values("Authorization")) > 0 {
		b, ok := bearer(w, r, http.StatusBadRequest)
		if !ok {
			return
		}
		if tok != "" && tok != b {
			writeError(w, http.StatusBadRequest, "the token field and the Authorization header name different tokens")
			return
		}
		tok = b
	}
	if tok == "" {
		writeError(w, http.StatusBadRequest, "token is required (form field token or Authorization: Bearer)")
		return
	}
	if err := h.auth.Logout(r.Context(), tok); err != nil {
		if errors.Is(err, authsvc.ErrInvalidToken) {
			writeError(w, http.StatusBadRequest, "invalid token")
			return
		}
		h.fail(w, r, err)
		return
	}
	h.log.Info("audit: token logged out", "remote", clip(info(r).addr))
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}
