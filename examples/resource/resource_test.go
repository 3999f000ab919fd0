package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/authhttp"
	"github.com/authsvc/authsvc/clientauth"
	"github.com/authsvc/authsvc/internal/testdb"
)

// TestLightProgram: a program that only verifies tokens (Middleware and
// RemoteVerifier) links no database driver, no metrics library and no
// server code, and stays within 10 MiB (docs/performance.md has the
// figures beside a net/http + golang-jwt program).
func TestLightProgram(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, heavy := range []string{"github.com/lib/pq", "modernc.org/", "github.com/prometheus/", "github.com/authsvc/authsvc/authhttp",
			"github.com/authsvc/authsvc/postgres", "github.com/authsvc/authsvc/sqlite"} {
			if strings.HasPrefix(pkg, heavy) {
				t.Errorf("the verify-only program links %s", pkg)
			}
		}
	}
	bin := filepath.Join(t.TempDir(), "resource")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("verify-only program: %.2f MiB", float64(fi.Size())/(1<<20))
	if fi.Size() > 10<<20 {
		t.Errorf("the verify-only program is %.2f MiB, more than 10 MiB", float64(fi.Size())/(1<<20))
	}
}

// TestOpenStoreNamesTheMissingImport: without a driver linked in,
// OpenStore says which import to add, and never prints the password.
func TestOpenStoreNamesTheMissingImport(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "nodriver")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/nodriver").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Dir = dir // where a wrongly opened SQLite file would appear
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nodriver: %v\n%s", err, out)
	}
	for _, want := range []string{`add import _ "github.com/authsvc/authsvc/sqlite"`, `add import _ "github.com/authsvc/authsvc/postgres"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("OpenStore's errors lack %s:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "S3cretPW") {
		t.Errorf("OpenStore's error prints the password:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "never-created.db")); err == nil {
		t.Error("OpenStore created a file without a driver")
	}
}

// startAuthd serves a real authd handler on a SQLite store until the test
// ends, with the resource service's own client ("resource"), whose secret
// it returns with the Authenticator and authd's URL.
func startAuthd(t *testing.T) (*authsvc.Authenticator, string, string) {
	t.Helper()
	ctx := context.Background()
	store, err := authsvc.OpenStore(ctx, testdb.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var h http.Handler
	authd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	a, err := authsvc.New(ctx, store, authsvc.Config{Issuer: authd.URL})
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: the server, then the Authenticator, then the store.
	t.Cleanup(func() { a.Close() })
	t.Cleanup(authd.Close)
	h = authhttp.NewHandler(a, authhttp.Options{})
	_, rsSecret, err := a.CreateClient(ctx, authsvc.NewClient{ID: "resource"})
	if err != nil {
		t.Fatal(err)
	}
	return a, authd.URL, rsSecret
}

// TestResource: the service lets through a token with scope hello from a
// real authd handler, verified offline by a RemoteVerifier.
func TestResource(t *testing.T) {
	ctx := context.Background()
	a, authdURL, rsSecret := startAuthd(t)
	_, secret, err := a.CreateClient(ctx, authsvc.NewClient{ID: "caller", Scopes: []string{"hello", "other"}})
	if err != nil {
		t.Fatal(err)
	}
	rv, err := authsvc.NewRemoteVerifier(ctx, authdURL, authsvc.WithClientCredentials("resource", rsSecret))
	if err != nil {
		t.Fatal(err)
	}
	defer rv.Close()
	srv := httptest.NewServer(newHandler(rv))
	defer srv.Close()
	get := func(scopes ...string) (int, string) {
		t.Helper()
		tok, err := a.Authenticate(ctx, "caller", secret, authsvc.TokenRequest{Scopes: scopes})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", srv.URL+"/", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := get("hello"); st != 200 || body != "hello, caller\n" {
		t.Fatalf("with scope hello: %d %q", st, body)
	}
	if st, _ := get("other"); st != http.StatusForbidden {
		t.Fatalf("without scope hello: %d", st)
	}
}

// TestResourceDPoP: the service takes DPoP-bound tokens (its Middleware
// checks their proofs with the RemoteVerifier's per-process window), from
// a Go client with clientauth.DPoP, and refuses such a token as Bearer.
func TestResourceDPoP(t *testing.T) {
	ctx := context.Background()
	a, authdURL, rsSecret := startAuthd(t)
	_, secret, err := a.CreateClient(ctx, authsvc.NewClient{ID: "caller", Scopes: []string{"hello"}, DPoPBoundAccessTokens: true})
	if err != nil {
		t.Fatal(err)
	}
	rv, err := authsvc.NewRemoteVerifier(ctx, authdURL, authsvc.WithClientCredentials("resource", rsSecret))
	if err != nil {
		t.Fatal(err)
	}
	defer rv.Close()
	srv := httptest.NewServer(newHandler(rv))
	defer srv.Close()

	_, key, _ := ed25519.GenerateKey(rand.Reader)
	dp := &clientauth.DPoP{Key: key}
	tctx := dp.TokenContext(ctx)
	ts := (&clientcredentials.Config{ClientID: "caller", ClientSecret: secret, TokenURL: authdURL + "/oauth/token"}).TokenSource(tctx)
	for range 2 {
		resp, err := dp.Client(tctx, ts).Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "hello, caller\n" {
			t.Fatalf("with DPoP: %d %q", resp.StatusCode, b)
		}
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := oauth2.NewClient(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok.AccessToken, TokenType: "Bearer"})).Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("the bound token as Bearer: %d", resp.StatusCode)
	}
}
