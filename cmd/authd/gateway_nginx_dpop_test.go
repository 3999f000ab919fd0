package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/clientauth"
	"github.com/authsvc/authsvc/internal/testdb"
)

// startAuthdOn runs authd as main does on a free loopback port, its
// issuer that address (so that a DPoP proof's htu for the token endpoint
// is the URL the client calls), with change applied to its configuration.
// It returns the app and its URL.
func startAuthdOn(t *testing.T, change func(*config)) (*app, string) {
	t.Helper()
	addr := testdb.FreeAddr(t)
	cfg := config{
		Addr: addr, DatabaseURL: "sqlite:" + filepath.Join(t.TempDir(), "authd.db"), Issuer: "http://" + addr,
		TokenTTL: time.Hour, SigningAlg: "EdDSA", BootstrapClientID: "root", BootstrapClientSecret: adminSecret,
		LogFormat: "json", LogLevel: "info", ShutdownTimeout: 5 * time.Second, DPoPNonce: "off", DPoPReplay: "process",
	}
	if change != nil {
		change(&cfg)
	}
	ap, _ := serveForTest(t, cfg, &testdb.LogBuffer{})
	return ap, "http://" + addr
}

// TestNginxGatewayDPoP: behind the example's nginx and GET /verify, a
// DPoP-bound token reaches the upstream with a valid proof for the
// request (sent by clientauth.DPoP, the Go client); it is refused, and the
// upstream not reached, without a proof, with a proof for another URL or
// method, with a replayed proof, and as Bearer. With
// AUTHSVC_DPOP_NONCE=resource, nginx passes authd's use_dpop_nonce
// challenge and its DPoP-Nonce header on, and the client gets through on
// its retry.
func TestNginxGatewayDPoP(t *testing.T) {
	bin := findNginx(t)
	for _, nonce := range []string{"off", "resource"} {
		t.Run("nonce="+nonce, func(t *testing.T) {
			ap, authdURL := startAuthdOn(t, func(c *config) { c.DPoPNonce = nonce })
			upstream := startEchoUpstream(t)
			gw := startNginx(t, bin, strings.TrimPrefix(authdURL, "http://"), strings.TrimPrefix(upstream.url, "http://"))
			ctx := context.Background()
			_, secret, err := ap.auth.CreateClient(ctx, authsvc.NewClient{ID: "bound", Scopes: []string{"notes:read", "notes:write"}, DPoPBoundAccessTokens: true})
			if err != nil {
				t.Fatal(err)
			}

			// The Go client: a bound token, a proof per request, through nginx.
			wire := &statusLog{}
			ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: wire, Timeout: 10 * time.Second})
			_, key, _ := ed25519.GenerateKey(rand.Reader)
			dp := &clientauth.DPoP{Key: key}
			tctx := dp.TokenContext(ctx)
			ts := (&clientcredentials.Config{ClientID: "bound", ClientSecret: secret, TokenURL: authdURL + "/oauth/token"}).TokenSource(tctx)
			client := dp.Client(tctx, ts)
			for i, path := range []string{"/notes/1?page=2", "/write/notes", "/notes/1?page=2"} {
				before := upstream.hits.Load()
				resp, err := client.Post(gw+path, "text/plain", strings.NewReader("a note"))
				if err != nil {
					t.Fatal(err)
				}
				var e echoReply
				json.NewDecoder(resp.Body).Decode(&e)
				resp.Body.Close()
				if resp.StatusCode != 200 || upstream.hits.Load() != before+1 || e.Header.Get("X-Auth-Subject") != "bound" || e.Body != "a note" {
					t.Fatalf("request %d, %s: %d, upstream saw %+v", i, path, resp.StatusCode, e)
				}
			}
			want := "[200 200 200 200]" // token, then three requests
			if nonce != "off" {
				want = "[200 401 200 200 200]" // the first request learns the nonce
			}
			if got := wire.String(); got != want {
				t.Errorf("statuses on the wire %s, want %s", got, want)
			}
			if nonce != "off" && !wire.sawChallenge {
				t.Error("nginx did not pass on authd's use_dpop_nonce challenge with a DPoP-Nonce")
			}

			// Refusals: the token with bad proofs, or none, or as Bearer.
			tok, err := ts.Token()
			if err != nil {
				t.Fatal(err)
			}
			proof := func(method, u string) string {
				p, err := dp.Proof(method, mustParseURL(t, u), tok.AccessToken)
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			send := func(name, method, path, auth, proof string, status int) {
				t.Helper()
				req, _ := http.NewRequest(method, gw+path, nil)
				req.Header.Set("Authorization", auth)
				if proof != "" {
					req.Header.Set("DPoP", proof)
				}
				before := upstream.hits.Load()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != status {
					t.Errorf("%s: %d, want %d (%s)", name, resp.StatusCode, status, resp.Header.Get("WWW-Authenticate"))
				}
				if reached := upstream.hits.Load() > before; reached != (status == 200) {
					t.Errorf("%s: upstream reached: %v", name, reached)
				}
			}
			good := proof("GET", gw+"/notes/1")
			send("a fresh proof", "GET", "/notes/1?x=1", "DPoP "+tok.AccessToken, good, 200)
			send("the same proof again", "GET", "/notes/1", "DPoP "+tok.AccessToken, good, 401)
			send("no proof", "GET", "/notes/1", "DPoP "+tok.AccessToken, "", 401)
			send("a proof for another path", "GET", "/notes/2", "DPoP "+tok.AccessToken, proof("GET", gw+"/notes/1"), 401)
			send("a proof for another host", "GET", "/notes/1", "DPoP "+tok.AccessToken, proof("GET", "http://app.test/notes/1"), 401)
			send("a proof for another method", "DELETE", "/notes/1", "DPoP "+tok.AccessToken, proof("GET", gw+"/notes/1"), 401)
			send("as Bearer", "GET", "/notes/1", "Bearer "+tok.AccessToken, "", 401)
			send("as Bearer, with a proof", "GET", "/notes/1", "Bearer "+tok.AccessToken, proof("GET", gw+"/notes/1"), 401)
		})
	}
}

// statusLog records the statuses of the responses sent through it, and
// whether one was a use_dpop_nonce challenge with a DPoP-Nonce.
type statusLog struct {
	statuses     []int
	sawChallenge bool
}

func (l *statusLog) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		l.statuses = append(l.statuses, resp.StatusCode)
		if resp.StatusCode == 401 && strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) && resp.Header.Get("DPoP-Nonce") != "" {
			l.sawChallenge = true
		}
	}
	return resp, err
}

func (l *statusLog) String() string {
	b, _ := json.Marshal(l.statuses)
	return strings.ReplaceAll(strings.ReplaceAll(string(b), ",", " "), "null", "[]")
}

func mustParseURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
