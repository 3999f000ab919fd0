package authsvc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authsvc/authsvc/internal/testdb"
)

// miniAuthd serves what a RemoteVerifier reads (discovery, JWKS, feed)
// from an Authenticator, as authd does, and counts JWKS fetches. down makes
// every route fail, to play an outage.
type miniAuthd struct {
	*httptest.Server
	a          *Authenticator
	jwksHits   atomic.Int64
	down       atomic.Bool
	feedCalled atomic.Int64
}

func newMiniAuthd(t *testing.T, cfg Config) *miniAuthd {
	t.Helper()
	m := &miniAuthd{}
	mux := http.NewServeMux()
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(m.Close)
	cfg.Issuer = m.URL
	m.a = newAuth(t, openStore(t, testdb.SQLite(t)), cfg)
	mux.HandleFunc("/.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": m.URL, "jwks_uri": m.URL + "/jwks", "revocation_feed_endpoint": m.URL + "/feed"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		m.jwksHits.Add(1)
		w.Write(m.a.JWKS())
	})
	feed := m.a.FeedHandler()
	mux.HandleFunc("/feed", func(w http.ResponseWriter, r *http.Request) {
		id, secret, _ := r.BasicAuth()
		if _, err := m.a.AuthenticateClient(r.Context(), id, secret); err != nil {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		m.feedCalled.Add(1)
		feed.ServeHTTP(w, r)
	})
	return m
}

var remoteClients atomic.Int64

func newRemote(t *testing.T, m *miniAuthd, opts ...RemoteOption) *RemoteVerifier {
	t.Helper()
	id := fmt.Sprintf("resource-server-%d", remoteClients.Add(1))
	_, secret := mustClient(t, m.a, NewClient{ID: id})
	opts = append([]RemoteOption{WithClientCredentials(id, secret)}, opts...)
	v, err := NewRemoteVerifier(context.Background(), m.URL, opts...)
	if err != nil {
		t.Fatalf("NewRemoteVerifier: %v", err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// TestRemoteVerifierFollowsFeed: logouts, cut-offs and deletions at the
// authd are refused by the remote verifier within a second, with no call
// per request; the delay is measured and logged. Token times run on a test
// clock; the delays are real.
func TestRemoteVerifierFollowsFeed(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Now()}
	m := newMiniAuthd(t, Config{Now: clock.Now})
	_, secret := mustClient(t, m.a, NewClient{ID: "svc", Scopes: []string{"notes:read"}})
	// A token revoked before the verifier starts is in its snapshot.
	early := mustToken(t, m.a, "svc", secret).AccessToken
	if err := m.a.Logout(ctx, early); err != nil {
		t.Fatal(err)
	}
	v := newRemote(t, m, WithClock(clock.Now))
	if _, err := v.Verify(ctx, early); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("revoked before start: %v", err)
	}
	var delays []time.Duration
	for i := 0; i < 20; i++ {
		tok := mustToken(t, m.a, "svc", secret).AccessToken
		c, err := v.Verify(ctx, tok)
		if err != nil || c.Subject != "svc" || !c.HasScope("notes:read") {
			t.Fatalf("Verify: %+v %v", c, err)
		}
		start := time.Now()
		if err := m.a.Logout(ctx, tok); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Second, "the remote verifier to refuse a logged-out token", func() bool {
			_, err := v.Verify(ctx, tok)
			return errors.Is(err, ErrTokenRevoked)
		})
		delays = append(delays, time.Since(start))
	}
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	t.Logf("logout → remote refusal over %d logouts: p50 %v, max %v (bound 1s)", len(delays), percentile(delays, 0.5), delays[len(delays)-1])

	// Per-client cut-off.
	tok := mustToken(t, m.a, "svc", secret).AccessToken
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := m.a.LogoutClient(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "a cut-off to reach the remote verifier", func() bool {
		_, err := v.Verify(ctx, tok)
		return errors.Is(err, ErrTokenRevoked)
	})
	// Deleted client. A token issued after the cut-off (which is a second
	// boundary) is accepted until then.
	clock.Add(1100 * time.Millisecond)
	tok = mustToken(t, m.a, "svc", secret).AccessToken
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("token after cut-off: %v", err)
	}
	if err := m.a.DeleteClient(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "a deletion to reach the remote verifier", func() bool {
		_, err := v.Verify(ctx, tok)
		return errors.Is(err, ErrTokenRevoked)
	})
}

// TestRemoteVerifierKeys: signatures are checked locally; a rotated key is
// picked up by one refetch on its unknown kid; junk never triggers a fetch
// storm. The authd and the verifier share a test clock: the refetch rate
// limit and the key's activation pass without waiting.
func TestRemoteVerifierKeys(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Now()}
	m := newMiniAuthd(t, Config{JWKSMaxAge: time.Second, Now: clock.Now})
	_, secret := mustClient(t, m.a, NewClient{ID: "svc"})
	v := newRemote(t, m, WithClock(clock.Now))
	tok := mustToken(t, m.a, "svc", secret).AccessToken
	parts := strings.Split(tok, ".")
	bad := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	cases := map[string]string{"bad signature": bad, "garbage": "x.y.z", "empty": "", "huge": strings.Repeat("a", MaxTokenLen+1)}
	for name, tk := range cases {
		if _, err := v.Verify(ctx, tk); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// An unknown kid, many times: at most one refetch per refetchAtMost.
	before := m.jwksHits.Load()
	forged := signWith(t, m.a, map[string]any{"kid": "no-such-kid", "typ": "at+jwt"}, map[string]any{"iss": m.URL, "sub": "svc", "exp": clock.Now().Add(time.Hour).Unix(), "jti": "j"})
	for i := 0; i < 50; i++ {
		if _, err := v.Verify(ctx, forged); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if hits := m.jwksHits.Load() - before; hits > 1 {
		t.Fatalf("%d JWKS fetches for one unknown kid, want at most 1", hits)
	}
	// Rotation: after activation the authd signs with a kid the verifier
	// has not fetched; it refetches once and accepts.
	clock.Add(refetchAtMost) // let the rate limit pass
	k, err := m.a.RotateKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(k.ActivateAt.Sub(clock.Now()) + 50*time.Millisecond)
	newTok := mustToken(t, m.a, "svc", secret).AccessToken
	if h, _ := decodeParts(t, newTok); h["kid"] != k.ID {
		t.Fatalf("not signed with the new key: %v", h["kid"])
	}
	if _, err := v.Verify(ctx, newTok); err != nil {
		t.Fatalf("new key's token: %v", err)
	}
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("old key's token after rotation: %v", err)
	}
	// A fetch failure keeps the known keys.
	m.down.Store(true)
	if _, err := v.Verify(ctx, newTok); err != nil {
		t.Fatalf("cached token while authd is down: %v", err)
	}
}

// TestRemoteVerifierFailsClosed: with the feed unreachable past the bound,
// Verify refuses; WithInsecureFailOpen keeps accepting; recovery resumes.
func TestRemoteVerifierFailsClosed(t *testing.T) {
	ctx := context.Background()
	m := newMiniAuthd(t, Config{})
	_, secret := mustClient(t, m.a, NewClient{ID: "svc"})
	closed := newRemote(t, m, WithMaxStaleness(500*time.Millisecond))
	open := newRemote(t, m, WithMaxStaleness(500*time.Millisecond), WithInsecureFailOpen())
	tok := mustToken(t, m.a, "svc", secret).AccessToken
	for _, v := range []*RemoteVerifier{closed, open} {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	m.down.Store(true)
	m.CloseClientConnections() // end the long-polls in flight
	waitFor(t, 25*time.Second, "fail-closed verifier to refuse", func() bool {
		_, err := closed.Verify(ctx, tok)
		return errors.Is(err, ErrUnavailable)
	})
	if _, err := open.Verify(ctx, tok); err != nil {
		t.Fatalf("fail-open verifier refused: %v", err)
	}
	m.down.Store(false)
	waitFor(t, 10*time.Second, "the verifier to recover", func() bool {
		_, err := closed.Verify(ctx, tok)
		return err == nil
	})
}

func TestNewRemoteVerifierErrors(t *testing.T) {
	ctx := context.Background()
	m := newMiniAuthd(t, Config{})
	if _, err := NewRemoteVerifier(ctx, m.URL); err == nil {
		t.Fatal("no credentials accepted")
	}
	if _, err := NewRemoteVerifier(ctx, m.URL, WithClientCredentials("ghost", "nope")); err == nil {
		t.Fatal("bad credentials accepted")
	}
	if _, err := NewRemoteVerifier(ctx, m.URL+"/other", WithClientCredentials("a", "b")); err == nil {
		t.Fatal("issuer mismatch accepted")
	}
}

// TestRemoteVerifierQuietFeed: with nothing revoked for a while, and an
// HTTP client whose overall timeout is shorter than the long-poll, the
// verifier stays fresh (found by review: it used to fail every quiet poll
// and then refuse every token).
func TestRemoteVerifierQuietFeed(t *testing.T) {
	ctx := context.Background()
	m := newMiniAuthd(t, Config{})
	_, secret := mustClient(t, m.a, NewClient{ID: "svc"})
	v := newRemote(t, m, WithHTTPClient(&http.Client{Timeout: 300 * time.Millisecond}), WithMaxStaleness(1500*time.Millisecond),
		func(v *RemoteVerifier) { v.feedWait = time.Second })
	tok := mustToken(t, m.a, "svc", secret).AccessToken
	deadline := time.Now().Add(3500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatalf("quiet feed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFeedCursorAhead: a cursor beyond the store's newest change (a store
// restored from a backup) gets a full snapshot, not empty pages forever.
func TestFeedCursorAhead(t *testing.T) {
	a := newAuth(t, openStore(t, testdb.SQLite(t)), Config{})
	_, secret := mustClient(t, a, NewClient{ID: "svc"})
	if err := a.Logout(context.Background(), mustToken(t, a, "svc", secret).AccessToken); err != nil {
		t.Fatal(err)
	}
	page, err := a.feed(context.Background(), 1_000_000)
	if err != nil || !page.Reset || snapshotKeys(page) != 1 || page.Cursor >= 1_000_000 {
		t.Fatalf("page = %+v, %v", page, err)
	}
}

// TestRemoteVerifierResultIsACopy: as TestVerifyResultIsACopy.
func TestRemoteVerifierResultIsACopy(t *testing.T) {
	m := newMiniAuthd(t, Config{})
	checkVerifyResultIsACopy(t, m.a, newRemote(t, m).Verify)
}

// snapshotKeys is how many revocations a snapshot part carries.
func snapshotKeys(p *feedPage) int {
	n := 0
	for _, g := range p.RevokedKeys {
		n += len(g.Keys) / len(revocationKey{})
	}
	return n
}

// TestRemoteVerifierLargeSnapshot: a snapshot of more revocations than a
// part carries comes in several parts, each a bounded answer, and the
// verifier holds every revocation of every part. (A snapshot of 16 MiB,
// some 335,000 revocations, used to stop NewRemoteVerifier with
// "unexpected end of JSON input".) The revocations are put in the store
// behind authd's back and loaded as a restart would.
func TestRemoteVerifierLargeSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a store with 150,000 revocations")
	}
	m := newMiniAuthd(t, Config{})
	const n = 150_000 // three parts
	s := m.a.store.(*sqlStore)
	tx, err := s.db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	ins, err := tx.Preparex(`INSERT INTO authsvc_revoked_tokens (jti, client_id, expires_at) VALUES (?, ?, ?)`)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	jtis := make([]string, n)
	for i := range n {
		// Half authd-shaped (16 bytes in base64url), half anything else.
		jtis[i] = fmt.Sprintf("imported-%06d", i)
		if i%2 == 0 {
			jtis[i] = base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "jti-%012d", i))
		}
		if _, err := ins.Exec(jtis[i], "bulk", exp); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.a.state.load(ctx, m.a.store, time.Now(), m.a.tokenLifetimeAgo(), m.a.reloadKeys); err != nil {
		t.Fatal(err)
	}
	first, err := m.a.feed(ctx, 0)
	if err != nil || first.NextPart == 0 || snapshotKeys(first) > snapshotPartKeys+n/revShards*2 || first.Total != n {
		t.Fatalf("first part: next %d, %d keys, total %d, %v; want a bounded part, more, and the total", first.NextPart, snapshotKeys(first), first.Total, err)
	}
	v := newRemote(t, m)
	v.mu.RLock()
	got := v.revoked.len()
	v.mu.RUnlock()
	if got != n {
		t.Fatalf("the verifier holds %d revocations, want %d", got, n)
	}
	for _, i := range []int{0, 1, n / 2, n - 2, n - 1} {
		if err := v.check(&Claims{ID: jtis[i]}); !errors.Is(err, ErrTokenRevoked) {
			t.Fatalf("revocation %d (%s) not refused: %v", i, jtis[i], err)
		}
	}
}

// TestFeedHandlerInputs: every malformed feed request gets 400 and a
// message, a verifier older than the snapshot's v=2 form is refused where a
// snapshot is due (it fails closed instead of reading an empty snapshot),
// a part asked of an instance behind the snapshot's cursor gets 503, and
// the feed goes on answering.
func TestFeedHandlerInputs(t *testing.T) {
	a := newAuth(t, openStore(t, testdb.SQLite(t)), Config{})
	_, secret := mustClient(t, a, NewClient{ID: "svc"})
	if err := a.Logout(context.Background(), mustToken(t, a, "svc", secret).AccessToken); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.FeedHandler())
	defer srv.Close()
	get := func(q string) (int, string) {
		resp, err := http.Get(srv.URL + "/?" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cursor := a.state.applied().ID
	for _, c := range []struct {
		query, want string
	}{
		{"after=abc", "after must be a cursor"},
		{"v=2&after=-1", "after must be a cursor"},
		{"v=2&after=1&wait=soon", "after must be a cursor"},
		{"v=2&after=99999999999999999999", "after must be a cursor"},
		{"v=3", "v must be 2"},
		{"after=0", "v=2 form only"},
		{"", "v=2 form only"},
		{"snapshot=1&part=1", "v=2 form only"},
		{"v=2&snapshot=1", "snapshot must be"},
		{"v=2&part=1", "snapshot must be"},
		{"v=2&snapshot=1&part=0", "snapshot must be"},
		{"v=2&snapshot=1&part=1024", "snapshot must be"},
		{"v=2&snapshot=-1&part=1", "snapshot must be"},
		{"v=2&snapshot=x&part=1", "snapshot must be"},
	} {
		if st, body := get(c.query); st != http.StatusBadRequest || !strings.Contains(body, c.want) {
			t.Errorf("?%s: %d %s, want 400 with %q", c.query, st, body, c.want)
		}
	}
	// An old verifier that follows incrementally is still served.
	if st, body := get(fmt.Sprintf("after=%d", cursor)); st != http.StatusOK || !strings.Contains(body, `"reset":false`) {
		t.Errorf("incremental page without v: %d %s", st, body)
	}
	// A part of a snapshot taken further ahead than this instance.
	if st, body := get(fmt.Sprintf("v=2&snapshot=%d&part=5", cursor+1000)); st != http.StatusServiceUnavailable || !strings.Contains(body, "caught up") {
		t.Errorf("part ahead of the instance: %d %s, want 503", st, body)
	}
	st, body := get("v=2&after=0")
	var page feedPage
	if err := json.Unmarshal([]byte(body), &page); st != http.StatusOK || err != nil || !page.Reset || snapshotKeys(&page) != 1 {
		t.Fatalf("snapshot after the bad requests: %d %s", st, body)
	}
}

// TestRemoteVerifierWaitsForLoadingAuthd: an authd still reading its
// revocations answers the snapshot 503; NewRemoteVerifier asks again and
// starts once the snapshot is served, with the revocations in it.
func TestRemoteVerifierWaitsForLoadingAuthd(t *testing.T) {
	m := newMiniAuthd(t, Config{})
	ctx := context.Background()
	_, secret := mustClient(t, m.a, NewClient{ID: "svc"})
	tok := mustToken(t, m.a, "svc", secret).AccessToken
	if err := m.a.Logout(ctx, tok); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the first load", func() bool { return !m.a.state.loading.Load() })
	finish, err := m.a.state.loadInBackground(ctx, m.a.store, time.Now(), m.a.tokenLifetimeAgo(), m.a.reloadKeys)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan *RemoteVerifier)
	go func() { started <- newRemote(t, m) }()
	// The verifier is asking meanwhile: its first snapshot requests get 503.
	waitFor(t, 5*time.Second, "the verifier to ask for a snapshot", func() bool { return m.feedCalled.Load() >= 2 })
	select {
	case <-started:
		t.Fatal("NewRemoteVerifier returned while authd was loading")
	default:
	}
	finish(ctx, func(err error) { t.Error(err) })
	v := <-started
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("the revoked token: %v", err)
	}
}

// TestRemoteSnapshotFeedFaults: a snapshot is read ahead, part by part, and
// a feed that misbehaves half-way leaves the verifier with what it had and
// an error that says why: a part that fails, a part naming an earlier part
// next (which would keep it reading forever), a size hint of a trillion
// (which must allocate nothing before keys come).
func TestRemoteSnapshotFeedFaults(t *testing.T) {
	key := func(i int) []byte {
		k := revocationKeyOf(fmt.Sprintf("fault-%d", i))
		return k[:]
	}
	exp := time.Now().Add(time.Hour).Unix()
	for _, c := range []struct {
		name string
		// next is the NextPart of part (0: the last); fail makes it 500.
		next func(part int) int
		fail int
		want string
	}{
		{"part fails", func(p int) int { return (p + 1) % 4 }, 2, "500"},
		{"part goes back", func(p int) int { return map[int]int{0: 5, 5: 3}[p] }, -1, "part 5 named 3 next"},
		{"part repeats", func(p int) int { return map[int]int{0: 7, 7: 7}[p] }, -1, "part 7 named 7 next"},
		{"hint of a trillion", func(p int) int { return (p + 1) % 3 }, -1, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var served atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				part := 0
				fmt.Sscan(r.URL.Query().Get("part"), &part)
				if served.Add(1) > 100 || part == c.fail {
					http.Error(w, "no", http.StatusInternalServerError)
					return
				}
				page := feedPage{Cursor: 9, Reset: true, Part: part, NextPart: c.next(part),
					RevokedKeys: []feedKeys{{ExpiresAt: exp, Keys: key(part)}}}
				if part == 0 {
					page.Total = 1 << 40
					page.Cutoffs = []feedCutoff{{ClientID: "cut", NotBefore: 5}}
				}
				json.NewEncoder(w).Encode(page)
			}))
			defer srv.Close()
			v := &RemoteVerifier{
				feedURL: srv.URL, feed: srv.Client(), clientID: "svc", secret: "s", feedWait: time.Second,
				log: slog.New(slog.DiscardHandler), now: time.Now,
				revoked: newRevocationSet(0, false), cutoffs: map[string]int64{}, deleted: map[int64]bool{}, verified: map[[32]byte]*Claims{},
			}
			had := revocationKeyOf("held before")
			v.revoked.put(had, exp, 0)
			before := heapAlloc()
			err := v.poll(context.Background(), 0)
			grew := int64(heapAlloc()) - int64(before)
			if grew > 16<<20 {
				t.Errorf("the snapshot's hint made the verifier allocate %d bytes", grew)
			}
			if served.Load() > 10 {
				t.Errorf("%d parts asked for", served.Load())
			}
			if c.want == "" {
				if err != nil || v.revoked.len() != 3 || v.revoked.has(had) || v.cutoffs["cut"] != 5 || v.cursor != 9 {
					t.Fatalf("snapshot: %v, %d held, cut-off %d, cursor %d", err, v.revoked.len(), v.cutoffs["cut"], v.cursor)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error with %q", err, c.want)
			}
			if v.revoked.len() != 1 || !v.revoked.has(had) || v.cursor != 0 {
				t.Fatalf("after a failed snapshot the verifier holds %d revocations at cursor %d, want what it had", v.revoked.len(), v.cursor)
			}
		})
	}
}
