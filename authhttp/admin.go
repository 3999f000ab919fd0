package authhttp

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/authsvc/authsvc"
)

// The admin routes for signing keys and the activity: what the console's
// keys and activity pages show, for scripts.

func (h *handler) adminRoutes(mux *http.ServeMux) {
	mux.Handle("/keys", methods{http.MethodGet: h.listKeys})
	mux.Handle("/keys/rotate", methods{http.MethodPost: h.rotateKeys})
	mux.Handle("/activity", methods{http.MethodGet: h.activity})
}

// keyJSON is a signing key as GET /keys shows it: never its private part.
type keyJSON struct {
	Kid        string    `json:"kid"`
	Alg        string    `json:"alg"`
	State      string    `json:"state"` // signing, next, retired or other-algorithm
	Signing    bool      `json:"signing"`
	CreatedAt  time.Time `json:"created_at"`
	ActivateAt time.Time `json:"activate_at"`
}

// keyState says where k stands among keys (Authenticator.Keys, in the
// order they sign) at now: "signing" (new tokens are signed with it),
// "next" (published, signs from its activation), "retired" (verifies the
// tokens it signed until they expire) or "other-algorithm" (of an
// algorithm no longer configured: verifies only).
func keyState(k authsvc.KeyInfo, keys []authsvc.KeyInfo, now time.Time) string {
	var cur *authsvc.KeyInfo
	for i := range keys {
		if keys[i].Signing {
			cur = &keys[i]
		}
	}
	switch {
	case k.Signing:
		return "signing"
	case cur != nil && k.Alg != cur.Alg:
		return "other-algorithm"
	case k.ActivateAt.After(now) || cur != nil && k.ActivateAt.After(cur.ActivateAt):
		return "next"
	}
	return "retired"
}

// listKeys: GET /keys (admin). With HS256 the list is empty.
func (h *handler) listKeys(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := h.requireAdmin(w, r); !ok {
		return
	}
	keys := h.auth.Keys()
	now := h.auth.Now()
	out := make([]keyJSON, len(keys))
	for i, k := range keys {
		out[i] = keyJSON{Kid: k.ID, Alg: k.Alg, State: keyState(k, keys, now), Signing: k.Signing,
			CreatedAt: k.CreatedAt.UTC(), ActivateAt: k.ActivateAt.UTC()}
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "keys": out})
}

// rotateKeys: POST /keys/rotate (admin) starts a staged rotation
// (Authenticator.RotateKeys): the new key is published now and signs from
// activate_at.
func (h *handler) rotateKeys(w http.ResponseWriter, r *http.Request) {
	r, caller, ok := h.requireAdmin(w, r)
	if !ok {
		return
	}
	k, err := h.auth.RotateKeys(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("audit: signing key rotation started", "kid", k.ID, "activate_at", k.ActivateAt, "by", caller.Subject)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "kid": k.ID, "alg": k.Alg,
		"created_at": k.CreatedAt.UTC(), "activate_at": k.ActivateAt.UTC()})
}

// changeJSON is a change of the log as GET /activity shows it.
type changeJSON struct {
	ID       int64     `json:"id"`
	At       time.Time `json:"at"`
	Action   string    `json:"action"`
	Actor    string    `json:"actor"` // "" : the CLI or authd itself
	ClientID string    `json:"client_id"`
}

// activity: GET /activity (admin), the recent changes newest first
// (Authenticator.Activity): ?client= (one client's), ?limit= (default 50,
// at most 500), ?before= (the next_before of the page before). next_before
// is 0 on the last page.
func (h *handler) activity(w http.ResponseWriter, r *http.Request) {
	r, _, ok := h.requireAdmin(w, r)
	if !ok {
		return
	}
	q, err := activityQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	page, err := h.auth.Activity(r.Context(), q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]changeJSON, len(page.Changes))
	for i, c := range page.Changes {
		out[i] = changeJSON{ID: c.ID, At: c.At, Action: c.Action, Actor: c.Actor, ClientID: c.ClientID}
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "changes": out, "next_before": page.Next})
}

// activityQuery reads GET /activity's query; a parameter given twice, an
// unknown one or a malformed value is an error for the caller.
func activityQuery(raw string) (authsvc.ActivityQuery, error) {
	var q authsvc.ActivityQuery
	v, err := url.ParseQuery(raw)
	if err != nil {
		return q, errors.New("malformed query")
	}
	for k, vals := range v {
		if len(vals) > 1 {
			return q, errors.New("parameter " + strconv.Quote(k) + " given more than once")
		}
		switch k {
		case "client":
			q.ClientID = vals[0]
		case "limit":
			n, err := strconv.Atoi(vals[0])
			if err != nil || n < 1 || n > authsvc.MaxActivityPage {
				return q, errors.New("limit must be a number from 1 to " + strconv.Itoa(authsvc.MaxActivityPage))
			}
			q.Limit = n
		case "before":
			n, err := strconv.ParseInt(vals[0], 10, 64)
			if err != nil || n < 1 {
				return q, errors.New("before must be the next_before of the page before")
			}
			q.Before = n
		default:
			return q, errors.New("unknown query parameter " + quoteName(k) + ": GET /activity takes client, limit and before")
		}
	}
	return q, nil
}
