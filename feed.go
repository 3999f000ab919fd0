package authsvc

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// The revocation feed: how a RemoteVerifier learns of logouts, per-client
// cut-offs and deleted clients without calling authd per request. Both ends
// of the protocol live in this package (FeedHandler serves it,
// RemoteVerifier reads it) so they cannot drift apart.
//
//	GET /revocations?v=2&after=CURSOR&wait=SECONDS
//
// answers the changes after the cursor (a feedPage); when there are none it
// waits up to wait seconds (long-poll, at most 25) for one. Without a
// cursor (or after=0), or when the cursor has fallen off the change log's
// end, the answer is the first part of a snapshot of everything live
// (Reset is true); its other parts are read with
//
//	GET /revocations?v=2&snapshot=CURSOR&part=N
//
// until a part's NextPart is 0, and the follower then goes on after the
// snapshot's cursor. A snapshot names revocations by their 16-byte keys
// (revocationKeyOf), grouped by expiry minute, about 21 bytes each on the
// wire, and is served from memory in parts of at most snapshotPartKeys:
// ten million revocations are 150 parts of 1.4 MB, none of which makes
// either end hold more than one part.
//
// v=2 is the snapshot's form. A request without it (a verifier older than
// the form) gets 400 where a snapshot would be due, so that it fails closed
// instead of taking a snapshot it cannot read for an empty one.

// feedPage is one answer of the revocation feed.
type feedPage struct {
	Cursor  int64          `json:"cursor"`
	Reset   bool           `json:"reset"` // a full snapshot: replace what you had
	Revoked []feedRevoked  `json:"revoked"`
	Cutoffs []feedCutoff   `json:"cutoffs"`
	Deleted []feedDeletion `json:"deleted"`
	// KeysChanged: the signing key set changed; refetch the JWKS now.
	KeysChanged bool `json:"keys_changed,omitempty"`
	// A snapshot's revocations, and which part of it this is: the first
	// (0) carries the cut-offs and deletions too; NextPart is the part to
	// ask for next, 0 after the last.
	RevokedKeys []feedKeys `json:"revoked_keys,omitempty"`
	Part        int        `json:"part,omitempty"`
	NextPart    int        `json:"next_part,omitempty"`
	// Total is about how many revocations the whole snapshot has (in its
	// first part). Verifiers before the parts were read ahead sized their
	// set by it; today's size theirs by what comes.
	Total int `json:"total,omitempty"`
}

// feedRevoked is a revoked token, refused until it expires anyway.
type feedRevoked struct {
	JTI       string `json:"jti"`
	ExpiresAt int64  `json:"exp"`
}

// feedKeys are the keys of revocations that expire by ExpiresAt (the end
// of their minute): Keys is their 16-byte keys one after the other,
// base64 on the wire.
type feedKeys struct {
	ExpiresAt int64  `json:"exp"`
	Keys      []byte `json:"keys"`
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

// snapshotPartKeys is about how many revocations a snapshot part carries
// (whole shards of the set: a part may carry a shard more).
const snapshotPartKeys = 64 << 10

// errFeedVersion: a snapshot was due to a follower that cannot read one.
var errFeedVersion = errors.New("this authd serves snapshots of the revocation feed in its v=2 form only: upgrade the verifier")

// feed returns the revocation feed's page after cursor (0: a snapshot's
// first part).
//
// It never goes past the changes this instance has applied: a follower
// told "keys changed" fetches this instance's JWKS next, which must then
// have the new key (it is served from memory, as tokens are checked).
func (a *Authenticator) feed(ctx context.Context, after int64) (*feedPage, error) {
	if after <= 0 {
		return a.snapshotPart(ctx, 0, 0)
	}
	applied := a.state.applied()
	changes, err := a.store.changes(ctx, after, 1000)
	if err != nil {
		return nil, err
	}
	if changes.Gone {
		// The cursor names no change the log keeps: the follower fell off
		// its end (housekeeping purged past it), or the cursor is from
		// another store (restored or replaced). Only a snapshot tells the
		// follower the truth.
		return a.snapshotPart(ctx, 0, 0)
	}
	page := &feedPage{Cursor: after, Revoked: []feedRevoked{}, Cutoffs: []feedCutoff{}, Deleted: []feedDeletion{}}
	for _, c := range changes.Changes {
		if c.pos().after(applied) {
			// Not applied here yet (the follower may even have come from
			// an instance further ahead): the next page, after the catch-up.
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

// snapshotPart returns part of a snapshot taken at cursor (part 0: a new
// snapshot, at what this instance has applied).
//
// The revocations come from memory, which holds every live one this
// instance has applied, and more (a change held back behind a transaction
// in flight, applied at once but not yet under the cursor): a later part
// read from a later state misses nothing the first part's cursor covers,
// and what it has beyond the cursor comes again after it, harmlessly. A
// part asked of an instance that has not applied the snapshot's cursor yet
// (another instance behind the same address took the first) waits for it
// to catch up, briefly.
func (a *Authenticator) snapshotPart(ctx context.Context, cursor int64, part int) (*feedPage, error) {
	if a.state.loading.Load() {
		return nil, errStillLoading // memory does not hold every revocation yet
	}
	if part == 0 {
		cursor = a.state.applied().ID
	} else if err := a.awaitApplied(ctx, cursor); err != nil {
		return nil, err
	}
	page := &feedPage{Cursor: cursor, Reset: true, Part: part, Revoked: []feedRevoked{}, Cutoffs: []feedCutoff{}, Deleted: []feedDeletion{}}
	if part == 0 {
		page.Total = a.state.revocationCount()
		since := a.tokenLifetimeAgo()
		cutoffs, err := a.store.cutoffs(ctx, since)
		if err != nil {
			return nil, err
		}
		for _, c := range cutoffs {
			page.Cutoffs = append(page.Cutoffs, feedCutoff{ClientID: c.ClientID, NotBefore: c.At})
		}
		deletions, err := a.store.deletions(ctx, since)
		if err != nil {
			return nil, err
		}
		for _, d := range deletions {
			page.Deleted = append(page.Deleted, feedDeletion{ClientID: d.ClientID, RowID: d.RowID})
		}
	}
	byExp := map[int64][]byte{}
	n, shard := 0, part
	for ; shard < revShards && n < snapshotPartKeys; shard++ {
		n += a.state.eachRevocation(shard, func(k revocationKey, exp uint32) {
			end := (bucketOf(int64(exp)) + 1) * expiryBucketSecs
			byExp[end] = append(byExp[end], k[:]...)
		})
	}
	for exp, keys := range byExp {
		page.RevokedKeys = append(page.RevokedKeys, feedKeys{ExpiresAt: exp, Keys: keys})
	}
	slices.SortFunc(page.RevokedKeys, func(x, y feedKeys) int { return cmp.Compare(x.ExpiresAt, y.ExpiresAt) })
	if shard < revShards {
		page.NextPart = shard
	}
	return page, nil
}

// awaitApplied waits until this instance has applied the change at cursor,
// for at most a second.
func (a *Authenticator) awaitApplied(ctx context.Context, cursor int64) error {
	deadline := time.NewTimer(time.Second)
	defer deadline.Stop()
	for {
		changed := a.state.waitChange()
		if a.state.applied().ID >= cursor {
			return nil
		}
		a.catchUpNow()
		select {
		case <-changed:
		case <-deadline.C:
			return errBehindSnapshot
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// errStillLoading: a snapshot was asked of an instance still reading the
// revocations into memory.
var errStillLoading = wrapErr(ErrUnavailable, "this instance is still reading the revocations into memory")

// errBehindSnapshot: a snapshot part was asked of an instance that has not
// caught up with the snapshot's cursor.
var errBehindSnapshot = wrapErr(ErrUnavailable, "this instance has not caught up with the snapshot's cursor yet")

// maxFeedWait bounds a long-poll, below common proxies' idle timeouts and
// authd's write timeout (30 s).
const maxFeedWait = 25 * time.Second

// FeedHandler serves the revocation feed (GET only). It does not
// authenticate the caller: put it behind whatever the deployment requires
// (authd requires client credentials).
func (a *Authenticator) FeedHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		after, err := feedNumber(q.Get("after"))
		wait, werr := feedNumber(q.Get("wait"))
		snap, serr := feedNumber(q.Get("snapshot"))
		part, perr := feedNumber(q.Get("part"))
		switch {
		case err != nil || werr != nil:
			writeFeedError(w, http.StatusBadRequest, "after must be a cursor and wait a number of seconds")
			return
		case serr != nil || perr != nil || (q.Has("snapshot") != q.Has("part")) || q.Has("part") && (part < 1 || part >= revShards):
			writeFeedError(w, http.StatusBadRequest, "snapshot must be a snapshot's cursor and part one of its parts (a next_part)")
			return
		case q.Has("v") && q.Get("v") != "2":
			writeFeedError(w, http.StatusBadRequest, "v must be 2")
			return
		}
		v2 := q.Get("v") == "2"
		if q.Has("snapshot") {
			if !v2 {
				writeFeedError(w, http.StatusBadRequest, errFeedVersion.Error())
				return
			}
			page, err := a.snapshotPart(r.Context(), snap, int(part))
			writeFeedPage(w, r, page, err)
			return
		}
		waitFor := time.Duration(min(wait, int64(maxFeedWait/time.Second))) * time.Second
		// Subscribe before reading, so a change landing in between wakes us.
		changed := a.state.waitChange()
		page, err := a.feed(r.Context(), after)
		if err == nil && !page.Reset && page.Cursor == after && waitFor > 0 {
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
		if err == nil && page.Reset && !v2 {
			writeFeedError(w, http.StatusBadRequest, errFeedVersion.Error())
			return
		}
		writeFeedPage(w, r, page, err)
	})
}

// feedNumber parses a feed parameter: absent is 0; present, a number from
// 0 up.
func feedNumber(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err == nil && n < 0 {
		err = errors.New("negative")
	}
	return n, err
}

func writeFeedPage(w http.ResponseWriter, r *http.Request, page *feedPage, err error) {
	switch {
	case errors.Is(err, errBehindSnapshot), errors.Is(err, errStillLoading):
		writeFeedError(w, http.StatusServiceUnavailable, "this instance has not caught up with the snapshot yet, or is still starting: ask again")
		return
	case err != nil:
		if r.Context().Err() == nil {
			writeFeedError(w, http.StatusServiceUnavailable, "the store cannot be reached")
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(page)
}

func writeFeedError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"success": false, "error": msg})
}
