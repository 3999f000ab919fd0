package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
	dir := os.Getenv("AUTHSVC_TEST_NODE_DIR")
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
	script := filepath.Join(dir, "authsvc-openid-client-"+rand.Text()[:8]+".mjs")
	if err := os.WriteFile(script, []byte(openidClientScript), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(script)
	run := func() map[string]string {
		t.Helper()
		cmd := exec.CommandContext(ctx, node, script, srv.URL, "node-svc", base64.StdEncoding.EncodeToString(der), "node-1")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("openid-client: %v\n%s", err, out)
		}
		var tok map[string]string
		if err := json.Unmarshal(out[strings.LastIndexByte(strings.TrimSpace(string(out)), '\n')+1:], &tok); err != nil {
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
