// Command resource is the smallest service protected by a remote authd: it
// verifies tokens offline (JWKS and the revocation feed, through
// authsvc.NewRemoteVerifier) and links no database driver, so it stays as
// light as net/http and a JWT library (docs/performance.md measures it).
//
//	resource -authd http://127.0.0.1:5000 -client-id resource   (secret in RESOURCE_CLIENT_SECRET)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/authsvc/authsvc"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	authd := flag.String("authd", "http://127.0.0.1:5000", "URL (issuer) of authd")
	clientID := flag.String("client-id", "", "this service's client_id at authd (to read the revocation feed)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rv, err := authsvc.NewRemoteVerifier(ctx, *authd,
		authsvc.WithClientCredentials(*clientID, os.Getenv("RESOURCE_CLIENT_SECRET")))
	if err != nil {
		log.Fatal(err)
	}
	defer rv.Close()
	srv := &http.Server{Addr: *addr, Handler: newHandler(rv), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	log.Printf("resource: listening on http://%s, verifying tokens of %s", *addr, *authd)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// newHandler greets the client that sent a valid token with scope hello.
func newHandler(v authsvc.Verifier) http.Handler {
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s\n", authsvc.ClaimsFromContext(r.Context()).Subject)
	})
	return authsvc.Middleware(v)(authsvc.RequireScope("hello")(hello))
}
