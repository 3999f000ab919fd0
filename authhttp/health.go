package authhttp

import (
	"context"
	"net/http"
	"time"
)

// readyTimeout bounds /readyz: a probe that waits for a silent store is
// worse than one that says "not ready".
const readyTimeout = time.Second

// healthz: alive, whatever the store says.
func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
}

// readyz: ready when the in-memory state is fresh and the store answers
// within readyTimeout, and not shutting down. It answers within
// readyTimeout whatever the store does: the check runs aside, and a silent
// store is "unavailable" (the check itself ends within StoreTimeout).
func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	if h.draining != nil && h.draining() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "draining"})
		return
	}
	if err := h.ready(r.Context()); err != nil {
		h.log.Warn("not ready", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
}

// ready is Authenticator.Ready answered within readyTimeout.
func (h *handler) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.auth.Ready(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
