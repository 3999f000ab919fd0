package authsvc

import (
	"context"
	"time"
)

// What a change did (Change.Action). The change log's kind says what
// instances must apply; the action says what a person would call it.
const (
	ActionClientCreated   = "client_created"
	ActionClientUpdated   = "client_updated"    // scopes, admin flag or audiences
	ActionSecretRotated   = "secret_rotated"    // RotateSecret
	ActionSecretRehashed  = "secret_rehashed"   // a legacy or weaker hash upgraded at login
	ActionClientLoggedOut = "client_logged_out" // LogoutClient: every token so far refused
	ActionClientDeleted   = "client_deleted"
	ActionTokenRevoked    = "token_revoked"
	ActionKeyCreated      = "key_created"  // the first signing key of a store
	ActionKeyRotated      = "key_rotated"  // RotateKeys
	ActionKeysRetired     = "keys_retired" // housekeeping removed retired keys
	// Changes logged before the log recorded actions (migration 0007) say
	// only this much.
	ActionClientChanged = "client_changed"
	ActionKeysChanged   = "keys_changed"
)

type actorKey struct{}

// WithActor returns a context whose changes (clients created, updated,
// rotated, logged out or deleted, tokens revoked, keys rotated) the change
// log records as made by actor, the client_id of the admin (or client) on
// whose request they are made; Activity shows it. authhttp sets it for
// every authenticated request. Without it a change has no actor (the CLI,
// housekeeping); an actor no store can hold (see checkLookupID) is dropped.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// actorOf returns the actor WithActor set, if the store can hold it.
func actorOf(ctx context.Context) string {
	if a, _ := ctx.Value(actorKey{}).(string); storableID(a) {
		return a
	}
	return ""
}

// Change is one entry of the change log, as Activity shows it.
type Change struct {
	ID       int64 // the log's id: later changes mostly have higher ids
	At       time.Time
	Action   string // one of the Action constants
	Actor    string // the client_id that asked for it (WithActor); "" when none did
	ClientID string // the client it concerns; "" for key changes
}

// ActivityQuery asks Activity for a page of changes.
type ActivityQuery struct {
	// ClientID keeps the changes of that client only; "" keeps all.
	ClientID string
	// Before is where the page starts: the previous page's Next; 0 is the
	// newest change.
	Before int64
	// Limit is the page's size: zero means 50, and more than
	// MaxActivityPage is refused.
	Limit int
}

// ActivityPage is a page of changes, newest first.
type ActivityPage struct {
	Changes []Change
	// Next is the Before of the next (older) page; 0 when this page is the last.
	Next int64
}

// MaxActivityPage bounds ActivityQuery.Limit.
const MaxActivityPage = 500

// Activity returns recent changes, newest first: what the change log still
// keeps, which housekeeping bounds to a token lifetime plus an hour (and
// Config.MaxChanges).
func (a *Authenticator) Activity(ctx context.Context, q ActivityQuery) (*ActivityPage, error) {
	switch {
	case q.Limit == 0:
		q.Limit = 50
	case q.Limit < 0 || q.Limit > MaxActivityPage:
		return nil, refuse(ErrInvalidArgument, "a page holds 1 to %d changes", MaxActivityPage)
	}
	if q.Before < 0 {
		return nil, refuse(ErrInvalidArgument, "malformed position in the activity")
	}
	if q.ClientID != "" {
		if err := checkLookupID(q.ClientID); err != nil {
			return nil, err
		}
	}
	rows, err := a.store.activity(ctx, q.ClientID, q.Before, q.Limit+1)
	if err != nil {
		return nil, err
	}
	page := &ActivityPage{Changes: make([]Change, 0, min(len(rows), q.Limit))}
	for i, c := range rows {
		if i == q.Limit {
			page.Next = rows[i-1].ID
			break
		}
		page.Changes = append(page.Changes, Change{ID: c.ID, At: time.Unix(c.At, 0).UTC(), Action: c.action(),
			Actor: c.Actor, ClientID: c.ClientID})
	}
	return page, nil
}

// action is the change's Action, told from its kind for a change logged
// before actions were.
func (c change) action() string {
	if c.Action != "" {
		return c.Action
	}
	switch c.Kind {
	case changeRevoke:
		return ActionTokenRevoked
	case changeClientDeleted:
		return ActionClientDeleted
	case changeKey:
		return ActionKeysChanged
	}
	return ActionClientChanged
}
