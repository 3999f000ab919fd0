package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/authhttp"
	"github.com/authsvc/authsvc/internal/testdb"
	"github.com/authsvc/authsvc/internal/testissuer"
)

// openidClientScript gets a token with Node's openid-client v6 as a
// private_key_jwt client: discovery at the issuer, then the client
// credentials grant with an Ed25519 assertion (which v6 signs with alg
// "Ed25519", RFC 9864's name).
const openidClientScript = `
import * as client from 'openid-client';
import { webcrypto } from 'node:crypto';
const [issuer, clientId, pkcs8, kid] = process.argv.slice(2);
const key = await webcrypto.subtle.importKey('pkcs8', Buffer.from(pkcs8, 'base64'), { name: 'Ed25519' }, false, ['sign']);
const config = await client.discovery(new URL(issuer), clientId, {}, client.PrivateKeyJwt({ key, kid }),
  { execute: [client.allowInsecureRequests] });
const tok = await client.clientCredentialsGrant(config, { scope: 'notes:read' });
console.log(JSON.stringify({ access_token: tok.access_token, token_type: tok.token_type, scope: tok.scope }));
`

// TestOpenIDClientPrivateKeyJWT: a client registered with a JWK Set gets
// tokens from Node's openid-client, never with a secret. It needs node and
// openid-client installed in AUTHSVC_TEST_NODE_DIR (.ci/run installs
// them); without them it is skipped, unless AUTHSVC_TEST_REQUIRE_NODE=1.
func TestOpenIDClientPrivateKeyJWT(t *testing.T) {
	node, dir := findOpenIDClient(t)
	ctx := context.Background()
	store, err := authsvc.OpenStore(ctx, testdb.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv := httptest.NewUnstartedServer(nil)
	srv.Start()
	defer srv.Close()
	a, err := authsvc.New(ctx, store, authsvc.Config{Issuer: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srv.Config.Handler = authhttp.NewHandler(a, authhttp.Options{})

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key := &testissuer.Key{Signer: priv, Alg: "EdDSA", Kid: "node-1"}
	if _, _, err := a.CreateClient(ctx, authsvc.NewClient{ID: "node-svc", Scopes: []string{"notes:read"},
		AuthMethod: authsvc.AuthPrivateKeyJWT, JWKS: testissuer.JWKS(t, key)}); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	run := func() map[string]string {
		t.Helper()
		out := runNode(t, node, dir, openidClientScript, srv.URL, "node-svc", base64.StdEncoding.EncodeToString(der), "node-1")
		var tok map[string]string
		if err := json.Unmarshal(out, &tok); err != nil {
			t.Fatalf("openid-client printed %s", out)
		}
		return tok
	}
	for range 2 { // a new assertion (jti) each time: no replay
		tok := run()
		claims, err := a.Verify(ctx, tok["access_token"])
		if err != nil || claims.Subject != "node-svc" || claims.Scope != "notes:read" || !strings.EqualFold(tok["token_type"], "bearer") {
			t.Fatalf("openid-client's token: %+v %v %v", claims, err, tok)
		}
	}
}

// openidClientDPoPScript gets a DPoP-bound token with Node's openid-client
// v6 (client_secret_post, a DPoP key from randomDPoPKeyPair, its
// getDPoPHandle), then calls each resource URL with
// fetchProtectedResource, which signs a proof per request and retries once
// on use_dpop_nonce. It prints the token and each status.
const openidClientDPoPScript = `
import * as client from 'openid-client';
const [issuer, clientId, secret, alg, ...urls] = process.argv.slice(2);
const config = await client.discovery(new URL(issuer), clientId, secret, undefined,
  { execute: [client.allowInsecureRequests] });
const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair(alg));
const tok = await client.clientCredentialsGrant(config, { scope: 'notes:read' }, { DPoP });
const results = [];
for (const u of urls) {
  for (let i = 0; i < 2; i++) { // a fresh proof each time
    const r = await client.fetchProtectedResource(config, tok.access_token, new URL(u), 'GET', undefined, undefined, { DPoP });
    results.push({ url: u, status: r.status, body: await r.text() });
  }
}
console.log(JSON.stringify({ access_token: tok.access_token, token_type: tok.token_type, results }));
`

// TestOpenIDClientDPoP is issue 17's "done when": a client using Node's
// openid-client with a DPoP key gets a DPoP-bound token from authd and
// reaches a service protected by authsvc.Middleware and one behind nginx
// and GET /verify; the same token without a valid proof, or as Bearer, is
// refused at both. With server nonces required at the token endpoint and
// the resources, openid-client learns them from the refusals and retries.
func TestOpenIDClientDPoP(t *testing.T) {
	node, dir := findOpenIDClient(t)
	nginx := findNginx(t)
	for _, c := range []struct {
		name   string
		alg    string
		nonces bool
	}{{"ES256", "ES256", false}, {"Ed25519, nonces", "Ed25519", true}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			store, err := authsvc.OpenStore(ctx, testdb.SQLite(t))
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			srv := httptest.NewUnstartedServer(nil)
			srv.Start()
			defer srv.Close()
			a, err := authsvc.New(ctx, store, authsvc.Config{Issuer: srv.URL, DPoPTokenNonce: c.nonces, DPoPResourceNonce: c.nonces})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			challenges := &nonceChallenges{}
			srv.Config.Handler = challenges.count(authhttp.NewHandler(a, authhttp.Options{}))
			_, secret, err := a.CreateClient(ctx, authsvc.NewClient{ID: "node-dpop", Scopes: []string{"notes:read"}, DPoPBoundAccessTokens: true})
			if err != nil {
				t.Fatal(err)
			}
			api := httptest.NewServer(challenges.count(authsvc.Middleware(a)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "hello "+authsvc.ClaimsFromContext(r.Context()).Subject)
			}))))
			defer api.Close()
			upstream := startEchoUpstream(t)
			gw := startNginx(t, nginx, strings.TrimPrefix(srv.URL, "http://"), strings.TrimPrefix(upstream.url, "http://"))

			out := runNode(t, node, dir, openidClientDPoPScript, srv.URL, "node-dpop", secret, c.alg, api.URL+"/notes", gw+"/notes/1")
			var got struct {
				AccessToken string `json:"access_token"`
				TokenType   string `json:"token_type"`
				Results     []struct {
					URL    string `json:"url"`
					Status int    `json:"status"`
					Body   string `json:"body"`
				} `json:"results"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("openid-client printed %s", out)
			}
			claims, err := a.Verify(ctx, got.AccessToken)
			if err != nil || claims.DPoPThumbprint() == "" || !strings.EqualFold(got.TokenType, "DPoP") {
				t.Fatalf("openid-client's token: %+v %v, type %q", claims, err, got.TokenType)
			}
			if len(got.Results) != 4 {
				t.Fatalf("results: %+v", got.Results)
			}
			for _, r := range got.Results {
				if r.Status != 200 || (strings.HasPrefix(r.URL, api.URL) && r.Body != "hello node-dpop") {
					t.Errorf("openid-client at %s: %d %q", r.URL, r.Status, r.Body)
				}
			}
			// With nonces: one refusal at the token endpoint, one at the
			// service, one at /verify (through nginx); then openid-client
			// has the nonce of each origin.
			if n, want := challenges.n.Load(), map[bool]int64{false: 0, true: 3}[c.nonces]; n != want {
				t.Errorf("%d use_dpop_nonce refusals, want %d", n, want)
			}

			// The same token, without a valid proof, or as Bearer: refused at
			// both, and nginx does not reach its upstream.
			other := newProofKey(t)
			for _, u := range []string{api.URL + "/notes", gw + "/notes/1"} {
				for name, h := range map[string]http.Header{
					"no proof":            {"Authorization": {"DPoP " + got.AccessToken}},
					"as Bearer":           {"Authorization": {"Bearer " + got.AccessToken}},
					"another key's proof": {"Authorization": {"DPoP " + got.AccessToken}, "Dpop": {other.proof(t, "GET", u, got.AccessToken)}},
					"junk proof":          {"Authorization": {"DPoP " + got.AccessToken}, "Dpop": {"a.b.c"}},
				} {
					before := upstream.hits.Load()
					req, _ := http.NewRequest("GET", u, nil)
					req.Header = h
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != 401 || upstream.hits.Load() != before {
						t.Errorf("%s, %s: %d", u, name, resp.StatusCode)
					}
				}
			}
		})
	}
}

// findOpenIDClient returns node and the folder where openid-client is
// installed (AUTHSVC_TEST_NODE_DIR), or skips the test; with
// AUTHSVC_TEST_REQUIRE_NODE=1 it fails instead.
func findOpenIDClient(t *testing.T) (node, dir string) {
	t.Helper()
	dir = os.Getenv("AUTHSVC_TEST_NODE_DIR")
	node, err := exec.LookPath("node")
	if err == nil && dir != "" {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "openid-client", "package.json"))
	}
	if err != nil || dir == "" {
		if os.Getenv("AUTHSVC_TEST_REQUIRE_NODE") == "1" {
			t.Fatalf("node and openid-client in AUTHSVC_TEST_NODE_DIR (%q) are required: %v", dir, err)
		}
		t.Skip("node or openid-client not installed (set AUTHSVC_TEST_NODE_DIR; .ci/run does)")
	}
	return node, dir
}

// runNode runs script with node in dir (where openid-client is installed)
// and returns the last line it printed.
func runNode(t *testing.T, node, dir, script string, args ...string) []byte {
	t.Helper()
	path := filepath.Join(dir, "authsvc-openid-client-"+rand.Text()[:8]+".mjs")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(path)
	cmd := exec.Command(node, append([]string{path}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	s := strings.TrimSpace(string(out))
	return []byte(s[strings.LastIndexByte(s, '\n')+1:])
}

// proofKey signs DPoP proofs with go-jose (an independent JOSE library).
type proofKey struct{ priv *ecdsa.PrivateKey }

func newProofKey(t *testing.T) proofKey {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return proofKey{priv}
}

func (k proofKey) proof(t *testing.T, method, htu, token string) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.priv}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"jti": rand.Text(), "htm": method, "htu": htu, "iat": time.Now().Unix(), "ath": authsvc.AccessTokenHash(token)})
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// nonceChallenges counts the use_dpop_nonce refusals (400 or 401 with a
// DPoP-Nonce header) of the handlers it wraps.
type nonceChallenges struct{ n atomic.Int64 }

func (c *nonceChallenges) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&nonceWatch{ResponseWriter: w, c: c}, r)
	})
}

type nonceWatch struct {
	http.ResponseWriter
	c *nonceChallenges
}

func (w *nonceWatch) WriteHeader(status int) {
	if (status == 400 || status == 401) && w.Header().Get("DPoP-Nonce") != "" {
		w.c.n.Add(1)
	}
	w.ResponseWriter.WriteHeader(status)
}
