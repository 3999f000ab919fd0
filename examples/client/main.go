// Command client gets a token with golang.org/x/oauth2/clientcredentials
// and uses it to write and read notes at the notes service.
//
//	client -token-url http://127.0.0.1:5000/oauth/token -client-id notes-client \
//	       -client-secret S -notes http://127.0.0.1:8080 -text "hello"
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"golang.org/x/oauth2/clientcredentials"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process, for tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tokenURL := fs.String("token-url", "http://127.0.0.1:5000/oauth/token", "authd's token endpoint")
	id := fs.String("client-id", "", "client_id")
	secret := fs.String("client-secret", os.Getenv("CLIENT_SECRET"), "client secret (or CLIENT_SECRET)")
	notesURL := fs.String("notes", "http://127.0.0.1:8080", "the notes service")
	scope := fs.String("scope", "notes:read notes:write", "scopes to ask for")
	text := fs.String("text", "hello from the client", "the note to write (empty: only read)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := clientcredentials.Config{ClientID: *id, ClientSecret: *secret, TokenURL: *tokenURL, Scopes: strings.Fields(*scope)}
	// cfg.Client fetches a token, adds it to every request, and renews it
	// before it expires.
	hc := cfg.Client(ctx)
	if *text != "" {
		body, _ := json.Marshal(map[string]string{"text": *text})
		resp, err := hc.Post(*notesURL+"/notes", "application/json", bytes.NewReader(body))
		if err != nil {
			fmt.Fprintln(stderr, "client:", err)
			return 1
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			fmt.Fprintf(stderr, "client: POST /notes: %s %s", resp.Status, b)
			return 1
		}
		fmt.Fprintf(stdout, "wrote: %s", b)
	}
	resp, err := hc.Get(*notesURL + "/notes")
	if err != nil {
		fmt.Fprintln(stderr, "client:", err)
		return 1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "client: GET /notes: %s %s", resp.Status, b)
		return 1
	}
	fmt.Fprintf(stdout, "notes: %s", b)
	return 0
}
