package authsvc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/authsvc/authsvc"
	_ "github.com/authsvc/authsvc/sqlite" // OpenStore opens SQLite files with it
)

// newExampleAuthenticator opens an Authenticator on a fresh SQLite file.
func newExampleAuthenticator(issuer string) (*authsvc.Authenticator, func()) {
	dir, err := os.MkdirTemp("", "authsvc-example")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	store, err := authsvc.OpenStore(ctx, "sqlite:"+filepath.Join(dir, "authd.db"))
	if err != nil {
		log.Fatal(err)
	}
	a, err := authsvc.New(ctx, store, authsvc.Config{Issuer: issuer, TokenTTL: time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	return a, func() { a.Close(); store.Close(); os.RemoveAll(dir) }
}

func ExampleNew() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "authsvc-example")
	defer os.RemoveAll(dir)
	store, err := authsvc.OpenStore(ctx, "sqlite:"+filepath.Join(dir, "authd.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	a, err := authsvc.New(ctx, store, authsvc.Config{Issuer: "https://auth.example", TokenTTL: time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	fmt.Println(a.Issuer(), a.SigningAlgorithms())
	// Output: https://auth.example [EdDSA]
}

func ExampleAuthenticator_Authenticate() {
	a, done := newExampleAuthenticator("https://auth.example")
	defer done()
	ctx := context.Background()
	_, secret, err := a.CreateClient(ctx, authsvc.NewClient{ID: "notes", Scopes: []string{"notes:read", "notes:write"}})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := a.Authenticate(ctx, "notes", secret, authsvc.TokenRequest{Scopes: []string{"notes:read"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.TokenType, tok.ExpiresIn, tok.Scopes)

	_, err = a.Authenticate(ctx, "notes", "wrong secret", authsvc.TokenRequest{})
	fmt.Println(errors.Is(err, authsvc.ErrInvalidClient))
	// Output:
	// Bearer 1h0m0s [notes:read]
	// true
}

func ExampleAuthenticator_Verify() {
	a, done := newExampleAuthenticator("https://auth.example")
	defer done()
	ctx := context.Background()
	_, secret, _ := a.CreateClient(ctx, authsvc.NewClient{ID: "notes", Scopes: []string{"notes:read"}})
	tok, _ := a.Authenticate(ctx, "notes", secret, authsvc.TokenRequest{})

	claims, err := a.Verify(ctx, tok.AccessToken)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(claims.Subject, claims.HasScope("notes:read"))

	// After a logout the token is refused.
	a.Logout(ctx, tok.AccessToken)
	_, err = a.Verify(ctx, tok.AccessToken)
	switch {
	case errors.Is(err, authsvc.ErrTokenRevoked):
		fmt.Println("revoked")
	case errors.Is(err, authsvc.ErrTokenExpired):
		fmt.Println("expired")
	case errors.Is(err, authsvc.ErrUnavailable):
		fmt.Println("store down: refuse")
	}
	// Output:
	// notes true
	// revoked
}

func ExampleMiddleware() {
	a, done := newExampleAuthenticator("https://auth.example")
	defer done()
	ctx := context.Background()
	_, secret, _ := a.CreateClient(ctx, authsvc.NewClient{ID: "reader", Scopes: []string{"notes:read"}})
	tok, _ := a.Authenticate(ctx, "reader", secret, authsvc.TokenRequest{})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /notes", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "notes for", authsvc.ClaimsFromContext(r.Context()).Subject)
	})
	mux.Handle("POST /notes", authsvc.RequireScope("notes:write")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	srv := httptest.NewServer(authsvc.Middleware(a)(mux))
	defer srv.Close()

	for _, method := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(method, srv.URL+"/notes", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, _ := http.DefaultClient.Do(req)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(method, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	// Output:
	// GET 200 notes for reader
	// POST 403 {"error":"insufficient_scope"}
}

// exampleAuthd serves what a RemoteVerifier reads, as authd does.
func exampleAuthd() (url string, a *authsvc.Authenticator, done func()) {
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	a, closeAuth := newExampleAuthenticator(srv.URL)
	mux.HandleFunc("/.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL, "jwks_uri": srv.URL + "/.well-known/jwks.json"})
	})
	mux.HandleFunc("/.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) { w.Write(a.JWKS()) })
	feed := a.FeedHandler()
	mux.HandleFunc("/revocations", func(w http.ResponseWriter, r *http.Request) {
		id, secret, _ := r.BasicAuth()
		if _, err := a.AuthenticateClient(r.Context(), id, secret); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		feed.ServeHTTP(w, r)
	})
	return srv.URL, a, func() { srv.Close(); closeAuth() }
}

func ExampleNewRemoteVerifier() {
	issuer, a, done := exampleAuthd() // an authd somewhere
	defer done()
	ctx := context.Background()
	_, rsSecret, _ := a.CreateClient(ctx, authsvc.NewClient{ID: "notes-service"})
	_, secret, _ := a.CreateClient(ctx, authsvc.NewClient{ID: "caller"})
	tok, _ := a.Authenticate(ctx, "caller", secret, authsvc.TokenRequest{})

	// The notes service verifies offline: JWKS plus the revocation feed.
	rv, err := authsvc.NewRemoteVerifier(ctx, issuer, authsvc.WithClientCredentials("notes-service", rsSecret))
	if err != nil {
		log.Fatal(err)
	}
	defer rv.Close()
	claims, err := rv.Verify(ctx, tok.AccessToken)
	fmt.Println(claims.Subject, err)

	a.Logout(ctx, tok.AccessToken) // at the authd
	for {
		if _, err := rv.Verify(ctx, tok.AccessToken); errors.Is(err, authsvc.ErrTokenRevoked) {
			break // typically within milliseconds
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Println("logout seen")
	// Output:
	// caller <nil>
	// logout seen
}
