// Command notes is a small notes service protected by authsvc's middleware.
// Reading notes needs a valid token; writing needs the notes:write scope.
//
// Two modes:
//
//	notes                                   in-process: embeds an Authenticator on SQLite
//	                                        (notes-auth.db) and mounts authd's routes
//	                                        (package authhttp) under /auth/
//	notes -authd http://127.0.0.1:5000 \    remote: verifies tokens of that authd offline
//	      -client-id notes -client-secret S  (JWKS + revocation feed, read as this client)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/authhttp"
	_ "github.com/authsvc/authsvc/sqlite" // in-process mode keeps its clients in SQLite
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	authd := flag.String("authd", "", "URL (issuer) of a remote authd; empty: in-process authentication")
	clientID := flag.String("client-id", "", "remote mode: this service's client_id at authd (to read the revocation feed)")
	secret := flag.String("client-secret", os.Getenv("NOTES_CLIENT_SECRET"), "remote mode: its secret (or NOTES_CLIENT_SECRET)")
	db := flag.String("db", "notes-auth.db", "in-process mode: SQLite file of the embedded Authenticator")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var handler http.Handler
	if *authd != "" {
		rv, err := authsvc.NewRemoteVerifier(ctx, *authd, authsvc.WithClientCredentials(*clientID, *secret))
		if err != nil {
			log.Fatal(err)
		}
		defer rv.Close()
		handler = newHandler(rv)
		log.Printf("notes: remote mode, verifying tokens of %s", *authd)
	} else {
		// The issuer names where authd's routes are mounted, so that
		// issuer + "/.well-known/…" is its discovery document, as
		// RemoteVerifiers and OAuth libraries look for it.
		a, closeAuth, err := inProcessAuth(ctx, *db, "http://"+*addr+"/auth")
		if err != nil {
			log.Fatal(err)
		}
		defer closeAuth()
		handler = inProcessHandler(a)
		log.Printf("notes: in-process mode, token endpoint http://%s/auth/oauth/token", *addr)
	}
	srv := &http.Server{Addr: *addr, Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	log.Printf("notes: listening on http://%s", *addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// inProcessAuth opens an Authenticator on a SQLite file and, on first
// start, creates a demo client whose credentials it prints.
func inProcessAuth(ctx context.Context, db, issuer string) (*authsvc.Authenticator, func(), error) {
	store, err := authsvc.OpenStore(ctx, "sqlite:"+db)
	if err != nil {
		return nil, nil, err
	}
	a, err := authsvc.New(ctx, store, authsvc.Config{Issuer: issuer})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	_, secret, err := a.CreateClient(ctx, authsvc.NewClient{ID: "demo", Scopes: []string{"notes:read", "notes:write"}})
	switch {
	case err == nil:
		log.Printf("notes: created client demo with secret %s (shown once)", secret)
	case !errors.Is(err, authsvc.ErrClientExists):
		a.Close()
		store.Close()
		return nil, nil, err
	}
	return a, func() { a.Close(); store.Close() }, nil
}

// inProcessHandler serves the notes and, under /auth/, authd's own routes
// (package authhttp, throttle and error answers included): the token
// endpoint is /auth/oauth/token, discovery
// /auth/.well-known/oauth-authorization-server.
func inProcessHandler(a *authsvc.Authenticator) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/notes", newHandler(a))
	// The logger gets authd's access and audit lines (failed logins,
	// clients created or deleted); never a secret or a token.
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	mux.Handle("/auth/", http.StripPrefix("/auth", authhttp.NewHandler(a, authhttp.Options{Logger: log})))
	return mux
}

// note is one note.
type note struct {
	ID     int       `json:"id"`
	Text   string    `json:"text"`
	Author string    `json:"author"` // the client_id that wrote it
	At     time.Time `json:"at"`
}

// notes keeps notes in memory.
type notes struct {
	mu    sync.Mutex // guards items
	items []note
}

// newHandler serves GET /notes (any valid token) and POST /notes (scope
// notes:write) behind authsvc's middleware; v is an Authenticator or a
// RemoteVerifier.
func newHandler(v authsvc.Verifier) http.Handler {
	n := &notes{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /notes", n.list)
	mux.Handle("POST /notes", authsvc.RequireScope("notes:write")(http.HandlerFunc(n.add)))
	return authsvc.Middleware(v, authsvc.WithRealm("notes"))(mux)
}

func (n *notes) list(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	items := append([]note{}, n.items...)
	n.mu.Unlock()
	writeJSON(w, http.StatusOK, items)
}

func (n *notes) add(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Text string `json:"text"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&in); err != nil || strings.TrimSpace(in.Text) == "" || len(in.Text) > 1000 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want {"text": "…"} of 1 to 1000 bytes`})
		return
	}
	n.mu.Lock()
	item := note{ID: len(n.items) + 1, Text: in.Text, Author: authsvc.ClaimsFromContext(r.Context()).Subject, At: time.Now().UTC()}
	n.items = append(n.items, item)
	n.mu.Unlock()
	writeJSON(w, http.StatusCreated, item)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
