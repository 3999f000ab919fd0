package authhttp

import "net/http"

// healthz: alive, whatever the store says.
func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
}

// readyz: ready when the store answers (the keys are loaded before the
// handler exists at all), and not shutting down.
func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	if h.draining != nil && h.draining() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "draining"})
		return
	}
	if err := h.auth.Ping(r.Context()); err != nil {
		h.log.Warn("not ready", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
}
