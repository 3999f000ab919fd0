package clientauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/url"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// MTLS gets tokens for a tls_client_auth or self_signed_tls_client_auth
// client (RFC 8705 §2): the TLS client certificate is its credential, and
// the token it gets is bound to that certificate (cnf x5t#S256), so the
// requests that use the token must present it too. Client does both.
type MTLS struct {
	ClientID string
	TokenURL string // such as https://auth.example/oauth/token
	// Certificate is the client's certificate and private key, as
	// tls.LoadX509KeyPair gives them.
	Certificate tls.Certificate
	// RootCAs verify the servers (authd's and the resource servers');
	// nil means the system's.
	RootCAs *x509.CertPool
	// Scopes asked for; empty means all of the client's.
	Scopes []string
	// EndpointParams are more parameters of the token request, such as
	// "audience" or "resource".
	EndpointParams url.Values
}

// HTTPClient returns an HTTP client that presents the certificate on
// every TLS connection (and adds no token).
func (c *MTLS) HTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{Certificates: []tls.Certificate{c.Certificate}, RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}
}

// TokenSource returns a token source that fetches tokens with the
// certificate (client_id in the body, no secret) and reuses a token until
// it nears its expiry. It uses HTTPClient, whatever ctx's
// oauth2.HTTPClient is.
func (c *MTLS) TokenSource(ctx context.Context) oauth2.TokenSource {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.HTTPClient())
	// With no secret and AuthStyleInParams clientcredentials sends
	// client_id alone, as RFC 8705 §2 asks.
	cc := clientcredentials.Config{ClientID: c.ClientID, TokenURL: c.TokenURL, Scopes: c.Scopes,
		EndpointParams: c.EndpointParams, AuthStyle: oauth2.AuthStyleInParams}
	return cc.TokenSource(ctx)
}

// Client returns an HTTP client that adds a token to every request and
// presents the certificate on every connection, as a certificate-bound
// token needs.
func (c *MTLS) Client(ctx context.Context) *http.Client {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.HTTPClient())
	return oauth2.NewClient(ctx, c.TokenSource(ctx))
}
