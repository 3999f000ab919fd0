package authhttp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/authhttp"
	_ "github.com/authsvc/authsvc/sqlite" // OpenStore's sqlite: URLs
)

// A service that serves its own API and authd's routes on one mux: its
// clients get tokens at /auth/oauth/token, and its own routes check them
// in-process.
func ExampleNewHandler() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	store, err := authsvc.OpenStore(ctx, "sqlite:"+filepath.Join(dir, "auth.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	mux := http.NewServeMux()
	srv := httptest.NewServer(mux) // in production: your http.Server
	defer srv.Close()
	// The issuer names the mount, so issuer + "/.well-known/…" is the
	// discovery document.
	a, err := authsvc.New(ctx, store, authsvc.Config{Issuer: srv.URL + "/auth"})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	mux.Handle("GET /hello", authsvc.Middleware(a)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s", authsvc.ClaimsFromContext(r.Context()).Subject)
	})))
	mux.Handle("/auth/", http.StripPrefix("/auth", authhttp.NewHandler(a, authhttp.Options{})))

	_, secret, err := a.CreateClient(ctx, authsvc.NewClient{ID: "caller"})
	if err != nil {
		log.Fatal(err)
	}
	// A client gets a token from the mounted token endpoint…
	resp, err := http.PostForm(srv.URL+"/auth/oauth/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {"caller"}, "client_secret": {secret}})
	if err != nil {
		log.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, tok.TokenType)

	// …and calls the service's own route with it.
	req, _ := http.NewRequest("GET", srv.URL+"/hello", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	// Output:
	// 200 Bearer
	// 200 hello, caller
}
