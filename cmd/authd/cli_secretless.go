package main

// The command line of secretless clients: their flags, and the trusted
// issuers of workload identity federation.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/authhttp"
)

// clientAuthFlags are the flags of client create and update that say how
// a client authenticates.
type clientAuthFlags struct {
	method, jwksFile, jwksURI *string
	federated                 *federatedFlag
	// RFC 8705: a tls_client_auth client's certificate name, and whether
	// its tokens must be bound to its certificate.
	tlsDN, tlsDNS, tlsURI, tlsIP, tlsEmail *string
	certBound                              *bool
}

// tlsName is the certificate name the flags give.
func (f clientAuthFlags) tlsName() authsvc.TLSClientAuth {
	return authsvc.TLSClientAuth{SubjectDN: *f.tlsDN, SANDNS: *f.tlsDNS, SANURI: *f.tlsURI, SANIP: *f.tlsIP, SANEmail: *f.tlsEmail}
}

// isTLSNameFlag reports whether a flag is one of the certificate name's.
func isTLSNameFlag(name string) bool {
	switch name {
	case "tls-subject-dn", "tls-san-dns", "tls-san-uri", "tls-san-ip", "tls-san-email":
		return true
	}
	return false
}

func authFlags(fs *flag.FlagSet) clientAuthFlags {
	f := clientAuthFlags{
		method:    fs.String("auth-method", "", "client_secret_basic (the default), client_secret_post, or private_key_jwt (no secret:\nJWT assertions signed by its keys, or a trusted issuer's tokens), tls_client_auth or\nself_signed_tls_client_auth (no secret: its TLS client certificate, RFC 8705)"),
		tlsDN:     fs.String("tls-subject-dn", "", "tls_client_auth: the subject DN its certificate carries, such as \"CN=payments,O=Example\"; implies tls_client_auth"),
		tlsDNS:    fs.String("tls-san-dns", "", "tls_client_auth: a DNS name among its certificate's SANs; implies tls_client_auth"),
		tlsURI:    fs.String("tls-san-uri", "", "tls_client_auth: a URI among its certificate's SANs (a SPIFFE ID); implies tls_client_auth"),
		tlsIP:     fs.String("tls-san-ip", "", "tls_client_auth: an IP address among its certificate's SANs; implies tls_client_auth"),
		tlsEmail:  fs.String("tls-san-email", "", "tls_client_auth: an email address among its certificate's SANs; implies tls_client_auth"),
		certBound: fs.Bool("cert-bound", false, "its token requests must come with its TLS client certificate, and its tokens are bound to it\n(tls_client_certificate_bound_access_tokens, RFC 8705)"),
		jwksFile:  fs.String("jwks-file", "", "a file with the client's public keys, a JWK Set (- : standard input); implies private_key_jwt"),
		jwksURI:   fs.String("jwks-uri", "", "an https URL serving the client's JWK Set; implies private_key_jwt (\"\" on update removes it)"),
		federated: &federatedFlag{},
	}
	fs.Var(f.federated, "federated", "a federated credential ISSUER=SUBJECT of a trusted issuer (repeat for more; \"\" on update removes them all)")
	return f
}

// federatedFlag collects --federated ISSUER=SUBJECT flags. An issuer has
// no "=" (an OIDC issuer has no query), so the first one splits.
type federatedFlag struct {
	list []authsvc.FederatedCredential
}

func (f *federatedFlag) String() string { return "" }

func (f *federatedFlag) Set(s string) error {
	if s == "" {
		return nil
	}
	iss, sub, ok := strings.Cut(s, "=")
	if !ok || iss == "" || sub == "" {
		return errors.New("want ISSUER=SUBJECT, such as https://kubernetes.default.svc.cluster.local=system:serviceaccount:payments:api")
	}
	f.list = append(f.list, authsvc.FederatedCredential{Issuer: iss, Subject: sub})
	return nil
}

// readJWKSFile reads a JWK Set from a file ("-": stdin), bounded.
func readJWKSFile(name string, stdin io.Reader) ([]byte, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("read JWK Set: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, authsvc.MaxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read JWK Set: %w", err)
	}
	if len(b) > authsvc.MaxJWKSBytes {
		return nil, fmt.Errorf("read JWK Set: %s is larger than %d bytes", name, authsvc.MaxJWKSBytes)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, fmt.Errorf("read JWK Set: %s is empty", name)
	}
	return b, nil
}

func cmdIssuerAdd(ctx context.Context, c *command, args []string) error {
	jwksFile := c.fs.String("jwks-file", "", "a file with the issuer's JWK Set or SPIFFE bundle (- : standard input)")
	jwksURI := c.fs.String("jwks-uri", "", "an https URL serving the issuer's JWK Set (default: OIDC discovery at the issuer)")
	audience := c.fs.String("audience", "", "audiences a token must have one of in its aud, space-separated (default: authd's issuer)")
	maxLifetime := c.fs.Duration("max-lifetime", 0, "the longest token lifetime accepted (exp - iat), at most 24h (default 1h)")
	allowReuse := c.fs.Bool("allow-reuse", false, "accept a token more than once until it expires (Kubernetes hands a pod the same token\nuntil it rotates it); by default each token is accepted once")
	replace := c.fs.Bool("replace", false, "replace the settings of an issuer already trusted")
	asJSON := c.fs.Bool("json", false, "print JSON")
	pos, err := c.parse(args, 1, 1, "one issuer")
	if err != nil {
		return err
	}
	ti := authsvc.TrustedIssuer{Issuer: pos[0], JWKSURI: *jwksURI, Audiences: strings.Fields(*audience),
		MaxLifetime: *maxLifetime, AllowReuse: *allowReuse}
	if *jwksFile != "" {
		if ti.JWKS, err = readJWKSFile(*jwksFile, c.stdin); err != nil {
			return fmt.Errorf("issuer add: %w", err)
		}
	}
	a, done, err := openCLI(ctx)
	if err != nil {
		return err
	}
	defer done()
	put := a.AddTrustedIssuer
	if *replace {
		put = a.ReplaceTrustedIssuer
	}
	got, err := put(ctx, ti)
	if err != nil {
		return fmt.Errorf("issuer add %q: %w", pos[0], err)
	}
	if *asJSON {
		return printJSON(c.stdout, authhttp.IssuerToJSON(*got))
	}
	fmt.Fprintf(c.stdout, "trusted %s\n\n", got.Issuer)
	return printIssuer(c.stdout, a, *got)
}

func printIssuer(w io.Writer, a *authsvc.Authenticator, ti authsvc.TrustedIssuer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "issuer:\t%s\n", ti.Issuer)
	switch ti.KeySource() {
	case "jwks":
		fmt.Fprintf(tw, "keys:\tinline %s\n", ti.JWKS)
	case "jwks_uri":
		fmt.Fprintf(tw, "keys:\tfrom %s\n", ti.JWKSURI)
	default:
		fmt.Fprintf(tw, "keys:\tfrom OIDC discovery (%s/.well-known/openid-configuration)\n", strings.TrimSuffix(ti.Issuer, "/"))
	}
	aud := strings.Join(ti.Audiences, " ")
	if aud == "" {
		aud = a.Issuer() + " (authd's issuer)"
	}
	fmt.Fprintf(tw, "audience:\t%s\n", aud)
	fmt.Fprintf(tw, "max lifetime:\t%s\n", ti.MaxLifetime)
	reuse := "no: each token is accepted once"
	if ti.AllowReuse {
		reuse = "yes: a token is accepted until it expires"
	}
	fmt.Fprintf(tw, "reuse:\t%s\n", reuse)
	fmt.Fprintf(tw, "created:\t%s\n", stamp(ti.CreatedAt))
	fmt.Fprintf(tw, "updated:\t%s\n", stamp(ti.UpdatedAt))
	return tw.Flush()
}

func cmdIssuerList(ctx context.Context, c *command, args []string) error {
	asJSON := c.fs.Bool("json", false, "print JSON")
	if _, err := c.parse(args, 0, 0, ""); err != nil {
		return err
	}
	a, done, err := openCLI(ctx)
	if err != nil {
		return err
	}
	defer done()
	tis, err := a.TrustedIssuers(ctx)
	if err != nil {
		return fmt.Errorf("issuer list: %w", err)
	}
	if *asJSON {
		out := make([]authhttp.IssuerJSON, len(tis))
		for i, ti := range tis {
			out[i] = authhttp.IssuerToJSON(ti)
		}
		return printJSON(c.stdout, out)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ISSUER\tKEYS\tAUDIENCE\tMAX_LIFETIME\tREUSE")
	for _, ti := range tis {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\n", ti.Issuer, ti.KeySource(), orDash(strings.Join(ti.Audiences, " ")), ti.MaxLifetime, ti.AllowReuse)
	}
	return tw.Flush()
}

func cmdIssuerRemove(ctx context.Context, c *command, args []string) error {
	asJSON := c.fs.Bool("json", false, "print JSON")
	pos, err := c.parse(args, 1, 1, "one issuer")
	if err != nil {
		return err
	}
	a, done, err := openCLI(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := a.RemoveTrustedIssuer(ctx, pos[0]); err != nil {
		return fmt.Errorf("issuer remove %q: %w", pos[0], err)
	}
	if *asJSON {
		return printJSON(c.stdout, map[string]any{"success": true, "issuer": pos[0]})
	}
	fmt.Fprintf(c.stdout, "removed %s: its tokens are refused from now on\n", pos[0])
	return nil
}
