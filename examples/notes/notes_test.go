package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testdb"
)

// TestInProcess drives the notes handler with an embedded Authenticator
// and authd's routes mounted under /auth/, through golang.org/x/oauth2,
// which finds the token endpoint through the mounted discovery document.
func TestInProcess(t *testing.T) {
	ctx := context.Background()
	var handler http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	defer srv.Close()
	a, closeAuth, err := inProcessAuth(ctx, filepath.Join(t.TempDir(), "notes-auth.db"), srv.URL+"/auth")
	if err != nil {
		t.Fatal(err)
	}
	defer closeAuth()
	handler = inProcessHandler(a)
	resp, err := http.Get(srv.URL + "/auth/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		TokenEndpoint string `json:"token_endpoint"`
		JWKSURI       string `json:"jwks_uri"`
	}
	json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if meta.TokenEndpoint != srv.URL+"/auth/oauth/token" || meta.JWKSURI != srv.URL+"/auth/.well-known/jwks.json" {
		t.Fatalf("mounted discovery advertises %+v", meta)
	}
	// A wrong secret is refused as authd refuses it (RFC 6749 §5.2).
	bad := (&clientcredentials.Config{ClientID: "demo", ClientSecret: "wrong-secret-wrong", TokenURL: meta.TokenEndpoint})
	if _, err := bad.Token(ctx); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("wrong secret: %v", err)
	}
	_, readerSecret, err := a.CreateClient(ctx, authsvc.NewClient{ID: "reader", Scopes: []string{"notes:read"}})
	if err != nil {
		t.Fatal(err)
	}
	_, writerSecret, err := a.CreateClient(ctx, authsvc.NewClient{ID: "writer", Scopes: []string{"notes:read", "notes:write"}})
	if err != nil {
		t.Fatal(err)
	}
	writer := (&clientcredentials.Config{ClientID: "writer", ClientSecret: writerSecret, TokenURL: meta.TokenEndpoint}).Client(ctx)
	reader := (&clientcredentials.Config{ClientID: "reader", ClientSecret: readerSecret, TokenURL: meta.TokenEndpoint}).Client(ctx)

	resp, err = writer.Post(srv.URL+"/notes", "application/json", strings.NewReader(`{"text":"first"}`))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("writer POST: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = reader.Post(srv.URL+"/notes", "application/json", strings.NewReader(`{"text":"nope"}`))
	if err != nil || resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Fatalf("reader POST: %v %v", resp, err)
	}
	resp.Body.Close()
	var got []note
	resp, err = reader.Get(srv.URL + "/notes")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("reader GET: %v %v", resp, err)
	}
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if len(got) != 1 || got[0].Text != "first" || got[0].Author != "writer" {
		t.Fatalf("notes = %+v", got)
	}
	// No token, bad body.
	resp, _ = http.Get(srv.URL + "/notes")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous GET: %d", resp.StatusCode)
	}
	resp.Body.Close()
	resp, _ = writer.Post(srv.URL+"/notes", "application/json", strings.NewReader(`{"text":""}`))
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("empty note: %d", resp.StatusCode)
	}
	resp.Body.Close()
	// Another service verifies this one's tokens offline, finding the
	// mounted routes from the issuer alone.
	rv, err := authsvc.NewRemoteVerifier(ctx, srv.URL+"/auth", authsvc.WithClientCredentials("reader", readerSecret))
	if err != nil {
		t.Fatalf("RemoteVerifier on the mounted routes: %v", err)
	}
	defer rv.Close()
	tok, err := a.Authenticate(ctx, "writer", writerSecret, authsvc.TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := rv.Verify(ctx, tok.AccessToken); err != nil || c.Subject != "writer" {
		t.Fatalf("RemoteVerifier: %v, %v", c, err)
	}
}

// buildBinary builds a command of this module into dir.
func buildBinary(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = "../.."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// authdProcess runs the real authd binary on a store with a bootstrap admin.
type authdProcess struct {
	url, dbURL string
	admin      string // admin token
}

func startAuthd(t *testing.T, bin, dir, dbURL string) *authdProcess {
	t.Helper()
	addr := testdb.FreeAddr(t)
	p := &authdProcess{url: "http://" + addr, dbURL: dbURL}
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"AUTHSVC_ADDR="+addr, "AUTHSVC_DATABASE_URL="+p.dbURL, "AUTHSVC_JWKS_MAX_AGE=1s",
		"AUTHSVC_BOOTSTRAP_CLIENT_ID=admin", "AUTHSVC_BOOTSTRAP_CLIENT_SECRET=admin-secret-for-the-test")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("authd log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(p.url + "/readyz")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("authd did not become ready: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	body := p.post(t, "/auth", url.Values{"client_id": {"admin"}, "client_secret": {"admin-secret-for-the-test"}}, "")
	p.admin = body["token"].(string)
	return p
}

func (p *authdProcess) post(t *testing.T, path string, v url.Values, bearer string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("POST", p.url+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode >= 300 {
		t.Fatalf("POST %s: %d %v", path, resp.StatusCode, out)
	}
	return out
}

func (p *authdProcess) createClient(t *testing.T, id, scope string) string {
	t.Helper()
	return p.post(t, "/client", url.Values{"client_id": {id}, "scope": {scope}}, p.admin)["client_secret"].(string)
}

// TestRemoteEndToEnd: the real authd, the notes service in remote mode and
// the real client binary, as the README runs them. A logout, a deletion
// and a key rotation at authd reach the notes service.
func TestRemoteEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	dir := t.TempDir()
	authdBin := buildBinary(t, dir, "./cmd/authd")
	clientBin := buildBinary(t, dir, "./examples/client")
	testdb.Each(t, func(t *testing.T, dbURL string) {
		remoteEndToEnd(t, authdBin, clientBin, dbURL)
	})
}

func remoteEndToEnd(t *testing.T, authdBin, clientBin, dbURL string) {
	ctx := context.Background()
	dir := t.TempDir()
	authd := startAuthd(t, authdBin, dir, dbURL)
	notesSecret := authd.createClient(t, "notes", "")
	clientSecret := authd.createClient(t, "notes-client", "notes:read notes:write")

	rv, err := authsvc.NewRemoteVerifier(ctx, authd.url, authsvc.WithClientCredentials("notes", notesSecret))
	if err != nil {
		t.Fatal(err)
	}
	defer rv.Close()
	notes := httptest.NewServer(newHandler(rv))
	defer notes.Close()

	// The client binary writes and reads a note.
	out, err := exec.Command(clientBin, "-token-url", authd.url+"/oauth/token", "-client-id", "notes-client",
		"-client-secret", clientSecret, "-notes", notes.URL, "-text", "hello through authd").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "wrote:") || !strings.Contains(string(out), "hello through authd") {
		t.Fatalf("client: %v\n%s", err, out)
	}

	get := func(tok string) int {
		req, _ := http.NewRequest("GET", notes.URL+"/notes", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	token := func() string {
		tok, err := (&clientcredentials.Config{ClientID: "notes-client", ClientSecret: clientSecret, TokenURL: authd.url + "/oauth/token"}).Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	refusedWithin := func(what string, tok string, start time.Time) {
		t.Helper()
		for get(tok) != http.StatusUnauthorized {
			if time.Since(start) > time.Second {
				t.Fatalf("%s: the notes service still accepts the token after 1 s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("%s at authd → refused by the notes service after %v", what, time.Since(start).Round(time.Millisecond))
	}

	// Logout at authd.
	tok := token()
	if st := get(tok); st != 200 {
		t.Fatalf("fresh token: %d", st)
	}
	start := time.Now()
	authd.post(t, "/logout", url.Values{"token": {tok}}, "")
	refusedWithin("logout", tok, start)

	// Key rotation at authd (as `authd keys rotate` does, on the same
	// database): once the new key signs, the verifier accepts its tokens.
	store, err := authsvc.OpenStore(ctx, authd.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	op, err := authsvc.New(ctx, store, authsvc.Config{Issuer: authd.url, JWKSMaxAge: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	k, err := op.RotateKeys(ctx)
	op.Close()
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(k.ActivateAt) + 1500*time.Millisecond) // activation, plus authd's 1 s poll
	tok = token()
	if kid := jwtKid(t, tok); kid != k.ID {
		t.Fatalf("authd signs with %s after the rotation, want %s", kid, k.ID)
	}
	if st := get(tok); st != 200 {
		t.Fatalf("token signed by the new key: %d", st)
	}

	// Delete the client at authd.
	start = time.Now()
	req, _ := http.NewRequest("DELETE", authd.url+"/client/notes-client", nil)
	req.Header.Set("Authorization", "Bearer "+authd.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("delete: %v %v", resp, err)
	}
	resp.Body.Close()
	refusedWithin("client deletion", tok, start)
}

func jwtKid(t *testing.T, tok string) string {
	t.Helper()
	var h struct{ Kid string }
	b, err := base64URLDecode(strings.Split(tok, ".")[0])
	if err != nil || json.Unmarshal(b, &h) != nil {
		t.Fatalf("bad token header: %v", err)
	}
	return h.Kid
}

func base64URLDecode(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(s)
}
