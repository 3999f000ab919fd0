package authsvc

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// The revocation feed: how a RemoteVerifier learns of logouts, per-client
// cut-offs and deleted clients without calling authd per request. Both ends
// of the protocol live in this package (FeedHandler serves it,
// RemoteVerifier reads it) so they cannot drift apart.
//
//	GET /revocations?after=CURSOR&wait=SECONDS
//
// answers a feedPage. Without a cursor (or after=0) the page is a snapshot
// of everything live (Reset is true); with one, the changes since. When
// there are none it waits up to wait seconds (long-poll, at most 25) for one.

// feedPage is one answer of the revocation feed.
type feedPage struct {
	Cursor  int64          `json:"cursor"`
	Reset   bool           `json:"reset"` // a full snapshot: replace what you had
	Revoked []feedRevoked  `json:"revoked"`
	Cutoffs []feedCutoff   `json:"cutoffs"`
	Deleted []feedDeletion `json:"deleted"`
	// KeysChanged: the signing key set changed; refetch the JWKS now.
	KeysChanged bool `json:"keys_changed,omitempty"`
}

// feedRevoked is a revoked token, refused until it expires anyway.
type feedRevoked struct {
	JTI       string `json:"jti"`
	ExpiresAt int64  `json:"exp"`
}

// feedCutoff is a client's "logged out everywhere": its tokens issued
// before NotBefore (unix seconds) are refused.
type feedCutoff struct {
	ClientID  string `json:"client_id"`
	NotBefore int64  `json:"not_before"`
}

// feedDeletion is a deleted client: every token carrying its row id is
// refused (a client re-created under the same client_id has another).
type feedDeletion struct {
	ClientID string `json:"client_id"`
	RowID    int64  `json:"id"`
}

// feed returns the revocation feed's page after cursor (0: a snapshot).
//
// It never goes past the changes this instance has applied: a follower
// told "keys changed" fetches this instance's JWKS next, which must then
// have the new key (it is served from memory, as tokens are checked).
func (a *Authenticator) feed(ctx context.Context, after int64) (*feedPage, error) {
	if after <= 0 {
		return a.feedSnapshot(ctx)
	}
	applied := a.state.applied()
	last, err := a.store.lastChange(ctx)
	if err != nil {
		return nil, err
	}
	if after > last {
		// A cursor from the future: the store was restored or replaced.
		// Only a snapshot tells the follower the truth.
		return a.feedSnapshot(ctx)
	}
	page := &feedPage{Cursor: after, Revoked: []feedRevoked{}, Cutoffs: []feedCutoff{}, Deleted: []feedDeletion{}}
	if after >= applied {
		// Nothing this instance has applied yet (the follower may have
		// come from an instance further ahead): wait for the catch-up.
		return page, nil
	}
	changes, err := a.store.changes(ctx, after, 1000)
	if err != nil {
		return nil, err
	}
	for _, c := range changes {
		if c.ID > applied {
			break
		}
		switch c.Kind {
		case changeRevoke:
			page.Revoked = append(page.Revoked, feedRevoked{JTI: c.JTI, ExpiresAt: c.ExpiresAt})
		case changeClient:
			rec, err := a.store.client(ctx, c.ClientID)
			if err == nil && !rec.TokensValidAfter.IsZero() {
				page.Cutoffs = append(page.Cutoffs, feedCutoff{ClientID: rec.ID, NotBefore: rec.TokensValidAfter.Unix()})
			} else if err != nil && err != ErrClientNotFound {
				return nil, err
			}
		case changeClientDeleted:
			page.Deleted = append(page.Deleted, feedDeletion{ClientID: c.ClientID, RowID: c.RowID})
		case changeKey:
			page.KeysChanged = true
		}
		page.Cursor = c.ID
	}
	return page, nil
}

func (a *Authenticator) feedSnapshot(ctx context.Context) (*feedPage, error) {
	// The cursor first: whatever happens while the rest is read comes again
	// in the next page, and applying an entry twice is harmless. It is no
	// further than what this instance has applied (see feed).
	cursor, err := a.store.lastChange(ctx)
	if err != nil {
		return nil, err
	}
	cursor = min(cursor, a.state.applied())
	now := a.now()
	revs, err := a.store.revocations(ctx, now)
	if err != nil {
		return nil, err
	}
	clients, err := a.store.clients(ctx)
	if err != nil {
		return nil, err
	}
	deletions, err := a.store.deletions(ctx, a.tokenLifetimeAgo())
	if err != nil {
		return nil, err
	}
	page := &feedPage{Cursor: cursor, Reset: true, Revoked: make([]feedRevoked, 0, len(revs)), Cutoffs: []feedCutoff{}, Deleted: []feedDeletion{}}
	for _, r := range revs {
		page.Revoked = append(page.Revoked, feedRevoked{JTI: r.JTI, ExpiresAt: r.ExpiresAt.Unix()})
	}
	for _, c := range clients {
		if !c.TokensValidAfter.IsZero() {
			page.Cutoffs = append(page.Cutoffs, feedCutoff{ClientID: c.ID, NotBefore: c.TokensValidAfter.Unix()})
		}
	}
	for _, d := range deletions {
		page.Deleted = append(page.Deleted, feedDeletion{ClientID: d.ClientID, RowID: d.RowID})
	}
	return page, nil
}

// maxFeedWait bounds a long-poll, below common proxies' idle timeouts and
// authd's write timeout (30 s).
const maxFeedWait = 25 * time.Second

// FeedHandler serves the revocation feed (GET only). It does not
// authenticate the caller: put it behind whatever the deployment requires
// (authd requires client credentials).
func (a *Authenticator) FeedHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		after, err := strconv.ParseInt(q.Get("after"), 10, 64)
		if q.Get("after") == "" {
			after, err = 0, nil
		}
		wait, werr := strconv.Atoi(q.Get("wait"))
		if q.Get("wait") == "" {
			wait, werr = 0, nil
		}
		if err != nil || after < 0 || werr != nil || wait < 0 {
			writeFeedError(w, http.StatusBadRequest, "after must be a cursor and wait a number of seconds")
			return
		}
		waitFor := min(time.Duration(wait)*time.Second, maxFeedWait)
		// Subscribe before reading, so a change landing in between wakes us.
		changed := a.state.waitChange()
		page, err := a.feed(r.Context(), after)
		if err == nil && after > 0 && page.Cursor == after && waitFor > 0 {
			timer := time.NewTimer(waitFor)
			select {
			case <-changed:
				page, err = a.feed(r.Context(), after)
			case <-timer.C:
			case <-r.Context().Done():
				timer.Stop()
				return
			}
			timer.Stop()
		}
		if err != nil {
			writeFeedError(w, http.StatusServiceUnavailable, "the store cannot be reached")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(page)
	})
}

func writeFeedError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"success": false, "error": msg})
}
