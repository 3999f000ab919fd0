// Command client gets a token and uses it to write and read notes at the
// notes service. It authenticates one of four ways:
//
//	# a secret, with golang.org/x/oauth2/clientcredentials
//	client -client-id notes-client -client-secret S -text "hello"
//	# private_key_jwt: an assertion signed by its key (PKCS#8 PEM), no secret
//	client -client-id notes-client -key-file key.pem -key-id k1 -text "hello"
//	# workload identity federation: the platform's token (Kubernetes rotates it)
//	client -token-file /var/run/secrets/tokens/authd-token -text "hello"
//	# mutual TLS (RFC 8705): its certificate, no secret; the token is bound to it
//	client -client-id notes-client -cert-file c.pem -cert-key-file k.pem -ca-file ca.pem \
//	       -token-url https://auth:5000/oauth/token -notes https://notes:8443 -text "hello"
//
// With -dpop (or CLIENT_DPOP=1) its tokens are DPoP-bound (RFC 9449) to a
// key it makes at start, and every request carries a fresh proof; server
// nonces are handled (clientauth.DPoP).
package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/authsvc/authsvc/clientauth"
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
	keyFile := fs.String("key-file", "", "private_key_jwt: the client's private key, PKCS#8 PEM (Ed25519, P-256 or RSA)")
	keyID := fs.String("key-id", "", "private_key_jwt: the key's kid in the client's registered JWK Set")
	tokenFile := fs.String("token-file", "", "federation: the platform's token (a Kubernetes projected token), read at every refresh")
	certFile := fs.String("cert-file", "", "mTLS: the client's certificate, PEM (tls_client_auth, self_signed_tls_client_auth)")
	certKeyFile := fs.String("cert-key-file", "", "mTLS: the certificate's private key, PEM")
	caFile := fs.String("ca-file", "", "mTLS: the CAs of authd's and the notes service's server certificates, PEM (default: the system's)")
	useDPoP := fs.Bool("dpop", os.Getenv("CLIENT_DPOP") == "1", "DPoP-bound tokens, with a key made at start (or CLIENT_DPOP=1)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *useDPoP && *certFile != "" {
		fmt.Fprintln(stderr, "client: -dpop and -cert-file bind tokens two ways: give one")
		return 2
	}
	// With DPoP, token requests carry a proof (the tokens are bound to the
	// key), and so does every request that uses a token.
	var dp *clientauth.DPoP
	if *useDPoP {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			fmt.Fprintln(stderr, "client:", err)
			return 1
		}
		dp = &clientauth.DPoP{Key: key}
		ctx = dp.TokenContext(ctx)
	}
	// Each token source fetches a token and renews it before it expires.
	var ts oauth2.TokenSource
	switch {
	case *certFile != "":
		m, err := mtlsConfig(*id, *tokenURL, *certFile, *certKeyFile, *caFile)
		if err != nil {
			fmt.Fprintln(stderr, "client:", err)
			return 1
		}
		m.Scopes = strings.Fields(*scope)
		// Token requests and the requests that use the (bound) token
		// present the certificate.
		ctx = context.WithValue(ctx, oauth2.HTTPClient, m.HTTPClient())
		ts = m.TokenSource(ctx)
	case *tokenFile != "":
		ts = (&clientauth.TokenFile{TokenURL: *tokenURL, Path: *tokenFile, ClientID: *id, Scopes: strings.Fields(*scope)}).TokenSource(ctx)
	case *keyFile != "":
		key, err := readKey(*keyFile)
		if err != nil {
			fmt.Fprintln(stderr, "client:", err)
			return 1
		}
		ts = (&clientauth.PrivateKeyJWT{ClientID: *id, TokenURL: *tokenURL, Key: key, KeyID: *keyID, Scopes: strings.Fields(*scope)}).TokenSource(ctx)
	default:
		cfg := clientcredentials.Config{ClientID: *id, ClientSecret: *secret, TokenURL: *tokenURL, Scopes: strings.Fields(*scope)}
		ts = cfg.TokenSource(ctx)
	}
	// The client adds the token to every request (Authorization: Bearer,
	// or DPoP with a proof).
	hc := oauth2.NewClient(ctx, ts)
	if dp != nil {
		hc = dp.Client(ctx, ts)
	}
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

// mtlsConfig reads the certificate, its key and the server CAs.
func mtlsConfig(id, tokenURL, certFile, keyFile, caFile string) (*clientauth.MTLS, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	m := &clientauth.MTLS{ClientID: id, TokenURL: tokenURL, Certificate: cert}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		m.RootCAs = x509.NewCertPool()
		if !m.RootCAs.AppendCertsFromPEM(b) {
			return nil, errors.New(caFile + ": no PEM certificate")
		}
	}
	return m, nil
}

// readKey reads a PKCS#8 PEM private key.
func readKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New(path + ": no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a signing key", path)
	}
	return s, nil
}
