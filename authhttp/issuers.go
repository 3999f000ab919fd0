package authhttp

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/authsvc/authsvc"
)

// The admin routes of workload identity federation: the issuers whose
// tokens clients may present instead of a secret (authsvc.TrustedIssuer).

// IssuerJSON is a trusted issuer as the API shows it (GET /issuers, and the
// CLI's --json).
type IssuerJSON struct {
	Issuer string `json:"issuer"`
	// KeySource is where its keys come from: jwks, jwks_uri or discovery.
	KeySource string          `json:"key_source"`
	JWKS      json.RawMessage `json:"jwks,omitempty"`
	JWKSURI   string          `json:"jwks_uri,omitempty"`
	// Audience lists what a token's aud must contain one of,
	// space-separated ("" : authd's issuer).
	Audience    string    `json:"audience"`
	MaxLifetime string    `json:"max_lifetime"` // a Go duration, such as 1h0m0s
	AllowReuse  bool      `json:"allow_reuse"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// IssuerToJSON returns ti's JSON form.
func IssuerToJSON(ti authsvc.TrustedIssuer) IssuerJSON {
	out := IssuerJSON{Issuer: ti.Issuer, KeySource: ti.KeySource(), JWKSURI: ti.JWKSURI,
		Audience: strings.Join(ti.Audiences, " "), MaxLifetime: ti.MaxLifetime.String(), AllowReuse: ti.AllowReuse,
		CreatedAt: ti.CreatedAt, UpdatedAt: ti.UpdatedAt}
	if len(ti.JWKS) > 0 {
		out.JWKS = json.RawMessage(ti.JWKS)
	}
	return out
}

// addIssuer: POST /issuer (admin). Fields issuer, jwks (a JWK Set or SPIFFE
// bundle: a JSON object, or its text in a form) or jwks_uri (neither: OIDC
// discovery), audience (space-separated or a JSON array), max_lifetime (a
// duration such as 1h), allow_reuse, and replace (true: overwrite the
// issuer's settings if it is trusted already, else 409).
func (h *handler) addIssuer(w http.ResponseWriter, r *http.Request) {
	r, caller, ok := h.requireAdmin(w, r)
	if !ok {
		return
	}
	p, ok := params(w, r, "issuer", "jwks", "jwks_uri", "audience", "max_lifetime", "allow_reuse", "replace")
	if !ok {
		return
	}
	if p["issuer"] == "" {
		writeError(w, http.StatusBadRequest, "issuer is required")
		return
	}
	ti := authsvc.TrustedIssuer{Issuer: p["issuer"], JWKSURI: p["jwks_uri"], Audiences: strings.Fields(p["audience"])}
	if p["jwks"] != "" {
		ti.JWKS = []byte(p["jwks"])
	}
	if s := p["max_lifetime"]; s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "max_lifetime must be a duration such as 1h")
			return
		}
		ti.MaxLifetime = d
	}
	var err error
	if ti.AllowReuse, err = parseBool(p["allow_reuse"]); err != nil {
		writeError(w, http.StatusBadRequest, "allow_reuse must be true or false")
		return
	}
	replace, err := parseBool(p["replace"])
	if err != nil {
		writeError(w, http.StatusBadRequest, "replace must be true or false")
		return
	}
	put, status := h.auth.AddTrustedIssuer, http.StatusCreated
	if replace {
		put, status = h.auth.ReplaceTrustedIssuer, http.StatusOK
	}
	got, err := put(r.Context(), ti)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("audit: trusted issuer added", "issuer", got.Issuer, "key_source", got.KeySource(), "replace", replace, "by", caller.Subject)
	writeJSON(w, status, map[string]any{"success": true, "issuer": IssuerToJSON(*got)})
}

// listIssuers: GET /issuers (admin).
func (h *handler) listIssuers(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := h.requireAdmin(w, r); !ok {
		return
	}
	tis, err := h.auth.TrustedIssuers(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]IssuerJSON, len(tis))
	for i, ti := range tis {
		out[i] = IssuerToJSON(ti)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "issuers": out})
}

// removeIssuer: DELETE /issuer (admin), issuer in the body or the query.
// Its tokens are refused at once; tokens already issued for them are not.
func (h *handler) removeIssuer(w http.ResponseWriter, r *http.Request) {
	r, caller, ok := h.requireAdmin(w, r)
	if !ok {
		return
	}
	p, ok := params(w, r, "issuer")
	if !ok {
		return
	}
	iss := p["issuer"]
	if iss == "" {
		q, err := param(r.URL.Query(), "issuer")
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		iss = q
	}
	if iss == "" {
		writeError(w, http.StatusBadRequest, "issuer is required")
		return
	}
	if err := h.auth.RemoveTrustedIssuer(r.Context(), iss); err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("audit: trusted issuer removed", "issuer", clip(iss), "by", caller.Subject)
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}
