package main

// The operator's command line: parsing, help and printing only; what the
// commands do is the library's.

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/authsvc/authsvc/authhttp"

	"github.com/authsvc/authsvc"
)

var keyDecoders = []func(string) ([]byte, error){
	base64.StdEncoding.DecodeString,
	base64.RawStdEncoding.DecodeString,
	base64.URLEncoding.DecodeString,
	base64.RawURLEncoding.DecodeString,
	hex.DecodeString,
}

// Errors that tell run which exit code to return; the message has been
// printed already.
var (
	errUsage = errors.New("usage")      // exit 2: bad command line, usage on stderr
	errHelp  = errors.New("help shown") // exit 0: --help, usage on stdout
)

// cmdIO is a command's standard streams.
type cmdIO struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// commandSpec describes one command for its usage message.
type commandSpec struct {
	name  string // "client show"
	args  string // what follows the name in the synopsis
	about string
}

// commands is every command, in the order usage lists them.
var commands = []commandSpec{
	{"serve", "", "Run the server (the default command). Configured by the environment only."},
	{"client create", `--id ID [--admin] [--scope "a b"] [--audience "a b"] [--secret-stdin] [--auth-method M] [--jwks-file F | --jwks-uri URL] [--federated ISSUER=SUBJECT]... [--tls-subject-dn DN | --tls-san-dns|uri|ip|email V] [--dpop-bound | --cert-bound] [--json]`,
		"Register a client. Its secret is generated (or read from standard input) and shown once; a private_key_jwt\nclient has none: it logs in with assertions signed by its keys (--jwks-file, --jwks-uri) or with a\ntrusted issuer's token (--federated)."},
	{"client list", "[--prefix P] [--json]", "List the clients (never their secrets), a page at a time from the store."},
	{"client show", "ID [--json]", "Show one client, with its log-out-everywhere cut-off if any."},
	{"client update", `ID [--admin=true|false] [--scope "a b"] [--audience "a b"] [--auth-method M] [--jwks-file F | --jwks-uri URL] [--federated ISSUER=SUBJECT]... [--tls-subject-dn DN | --tls-san-dns|uri|ip|email V] [--dpop-bound=true|false] [--cert-bound=true|false] [--json]`,
		"Change a client's admin flag, scopes, audiences, authentication method, keys or federated credentials;\nonly the flags given change. Tokens already issued keep their claims. --auth-method private_key_jwt\ndrops the client's secret."},
	{"client delete", "ID [--json]", "Delete a client. Its tokens are refused at once, even those not yet expired."},
	{"client rotate-secret", "ID [--grace 24h] [--logout-everywhere] [--secret-stdin] [--json]",
		"Give a client a new secret, shown once. With --grace the previous secret keeps working that long,\nso its callers can switch without an outage."},
	{"client logout", "ID [--json]",
		"Log a client out everywhere: every token it was issued until now is refused from now on.\nIts secret stays valid, so it can get new tokens."},
	{"issuer add", "ISSUER [--jwks-file F | --jwks-uri URL] [--audience \"a b\"] [--max-lifetime 1h] [--allow-reuse] [--replace] [--json]",
		"Trust an issuer's tokens as client assertions: a Kubernetes cluster's service account issuer, a CI\nsystem's OIDC issuer, or a SPIFFE trust domain (spiffe://example.org, with its JWT bundle as --jwks-file).\nWithout --jwks-file or --jwks-uri its keys come from OIDC discovery. Clients name it in --federated."},
	{"issuer list", "[--json]", "List the trusted issuers."},
	{"issuer remove", "ISSUER [--json]", "Stop trusting an issuer: its tokens are refused at once (tokens already issued for them are not)."},
	{"keys list", "[--json]", "List the signing keys published in the JWKS, and which one signs now."},
	{"keys rotate", "[--json]",
		"Start a staged key rotation: the new key is published in the JWKS now and signs new tokens only\nafter the JWKS cache lifetime, so no verifier meets an unknown kid. The old key stays published\nuntil the tokens it signed have expired."},
	{"import-seed", "[--from postgres://…] [--dry-run] [--renumber] [--json]",
		"Import the clients of the Flask tutorial service's PostgreSQL database into authd's store, with\ntheir SHA-1 secret hashes: they log in with their old secrets, and each hash is upgraded to\nargon2id at the client's first login. Clients authd already has are skipped, so running it\ntwice is safe."},
	{"migrate", "", "Apply the database migrations and exit."},
	{"version", "[--json]", "Print the version."},
}

func specOf(name string) commandSpec {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	panic("authd: no command spec for " + name)
}

// usageText lists the commands whose name starts with prefix ("" for all).
func usageText(prefix string) string {
	var b strings.Builder
	b.WriteString("usage:\n")
	if prefix == "" {
		b.WriteString("  authd                 run the server (= authd serve)\n")
	}
	for _, c := range commands {
		if strings.HasPrefix(c.name, prefix) {
			fmt.Fprintf(&b, "  %s\n", strings.TrimSpace("authd "+c.name+" "+c.args))
		}
	}
	if prefix == "" {
		b.WriteString("  authd help COMMAND    help on a command (or: authd COMMAND --help)\n")
	}
	b.WriteString(`
Configuration: AUTHSVC_* environment variables and a .env file in the working
directory, as for the server; the Flask service's DBNAME, DBUSER, DBPASSWORD,
AUTHSECRET and EXPIRESSECONDS work too (see README.md).
`)
	return b.String()
}

// command is a parsed command line of one command.
type command struct {
	commandSpec
	fs *flag.FlagSet
	cmdIO
}

func newCommand(name string, x cmdIO) *command {
	fs := flag.NewFlagSet("authd "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse errors are printed by parse, help by usage
	fs.Usage = func() {}
	return &command{commandSpec: specOf(name), fs: fs, cmdIO: x}
}

func (c *command) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", strings.TrimSpace("authd "+c.name+" "+c.args), c.about)
	hasFlags := false
	c.fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintln(w, "\nflags:")
		c.fs.SetOutput(w)
		c.fs.PrintDefaults()
		c.fs.SetOutput(io.Discard)
	}
}

// usageError prints msg and the usage on stderr and returns errUsage.
func (c *command) usageError(format string, a ...any) error {
	fmt.Fprintf(c.stderr, "authd %s: %s\n\n", c.name, fmt.Sprintf(format, a...))
	c.usage(c.stderr)
	return errUsage
}

// parse parses args, whose flags may come before or after the positional
// arguments ("client delete ID --json"), and checks that there are from
// min to max positional ones, described by what ("a client_id").
func (c *command) parse(args []string, min, max int, what string) ([]string, error) {
	pos, err := parseInterleaved(c.fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.usage(c.stdout)
		return nil, errHelp
	}
	if err != nil {
		return nil, c.usageError("%v", err)
	}
	switch {
	case len(pos) < min:
		return nil, c.usageError("missing %s", what)
	case len(pos) > max && max == 0:
		return nil, c.usageError("unexpected argument %q", pos[0])
	case len(pos) > max:
		return nil, c.usageError("want %s, got %d arguments", what, len(pos))
	}
	return pos, nil
}

// parseInterleaved is fs.Parse letting flags follow positional arguments;
// everything after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // Parse reports it
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	if err := fs.Parse(flags); err != nil {
		return nil, err
	}
	return pos, nil
}

// runners run each command; run dispatches to them.
var runners = map[string]func(ctx context.Context, c *command, args []string) error{
	"serve":                cmdServe,
	"migrate":              cmdMigrate,
	"version":              cmdVersion,
	"client create":        cmdClientCreate,
	"client list":          cmdClientList,
	"client show":          cmdClientShow,
	"client update":        cmdClientUpdate,
	"client delete":        cmdClientDelete,
	"client rotate-secret": cmdClientRotateSecret,
	"client logout":        cmdClientLogout,
	"issuer add":           cmdIssuerAdd,
	"issuer list":          cmdIssuerList,
	"issuer remove":        cmdIssuerRemove,
	"keys list":            cmdKeysList,
	"keys rotate":          cmdKeysRotate,
	"import-seed":          cmdImportSeed,
}

// groups are the commands that take a subcommand.
var groups = map[string]bool{"client": true, "keys": true, "issuer": true}

func isHelp(s string) bool {
	return s == "-h" || s == "--help" || s == "-help" || s == "help"
}

// dispatch finds the command args name and runs it.
func dispatch(ctx context.Context, args []string, x cmdIO) error {
	if len(args) == 0 {
		args = []string{"serve"}
	}
	switch {
	case isHelp(args[0]) && len(args) == 1:
		fmt.Fprint(x.stdout, usageText(""))
		return errHelp
	case isHelp(args[0]):
		return dispatch(ctx, append(args[1:len(args):len(args)], "--help"), x)
	case args[0] == "--version" || args[0] == "-version":
		args = append([]string{"version"}, args[1:]...)
	}
	name, rest := args[0], args[1:]
	if groups[name] {
		switch {
		case len(rest) == 0:
			fmt.Fprintf(x.stderr, "authd %s: missing subcommand\n\n%s", name, usageText(name+" "))
			return errUsage
		case isHelp(rest[0]):
			fmt.Fprint(x.stdout, usageText(name+" "))
			return errHelp
		}
		name, rest = name+" "+rest[0], rest[1:]
	}
	r, ok := runners[name]
	if !ok {
		prefix := ""
		if g, _, _ := strings.Cut(name, " "); groups[g] {
			prefix = g + " "
		}
		fmt.Fprintf(x.stderr, "authd: unknown command %q\n\n%s", name, usageText(prefix))
		return errUsage
	}
	return r(ctx, newCommand(name, x), rest)
}

// openCLI loads the configuration and opens the Authenticator on the
// configured store, as the server would. close releases both.
func openCLI(ctx context.Context) (a *authsvc.Authenticator, close func(), err error) {
	cfg, err := loadConfig(".env")
	if err != nil {
		return nil, nil, err
	}
	store, a, err := openAuthenticator(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, nil, err
	}
	return a, func() { a.Close(); store.Close() }, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printClient prints a client for people, one field a line.
func printClient(w io.Writer, c authsvc.Client) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "client_id:\t%s\n", c.ID)
	fmt.Fprintf(tw, "id:\t%d\n", c.RowID)
	fmt.Fprintf(tw, "admin:\t%t\n", c.IsAdmin)
	fmt.Fprintf(tw, "scope:\t%s\n", orDash(strings.Join(c.Scopes, " ")))
	fmt.Fprintf(tw, "audience:\t%s\n", audienceText(c))
	cut := "none"
	if !c.TokensValidAfter.IsZero() {
		cut = "tokens issued before " + stamp(c.TokensValidAfter) + " are refused"
	}
	fmt.Fprintf(tw, "logged out:\t%s\n", cut)
	fmt.Fprintf(tw, "auth:\t%s\n", c.AuthMethod)
	if len(c.JWKS) > 0 {
		fmt.Fprintf(tw, "jwks:\t%s\n", c.JWKS)
	}
	if c.JWKSURI != "" {
		fmt.Fprintf(tw, "jwks_uri:\t%s\n", c.JWKSURI)
	}
	for _, fc := range c.FederatedCredentials {
		fmt.Fprintf(tw, "federated:\t%s %s\n", fc.Issuer, fc.Subject)
	}
	if c.DPoPBoundAccessTokens {
		fmt.Fprintf(tw, "dpop:\ttokens must be DPoP-bound (a proof at each token request)\n")
	}
	for _, n := range []struct{ k, v string }{{"tls subject dn", c.TLSClientAuth.SubjectDN}, {"tls san dns", c.TLSClientAuth.SANDNS},
		{"tls san uri", c.TLSClientAuth.SANURI}, {"tls san ip", c.TLSClientAuth.SANIP}, {"tls san email", c.TLSClientAuth.SANEmail}} {
		if n.v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", n.k, n.v)
		}
	}
	if c.TLSClientCertificateBoundAccessTokens {
		fmt.Fprintf(tw, "cert-bound:\ttokens must be bound to its TLS client certificate (presented at each token request)\n")
	}
	fmt.Fprintf(tw, "created:\t%s\n", stamp(c.CreatedAt))
	fmt.Fprintf(tw, "updated:\t%s\n", stamp(c.UpdatedAt))
	return tw.Flush()
}

// audienceText describes what audiences a client may request.
func audienceText(c authsvc.Client) string {
	if len(c.Audiences) == 0 {
		return "- (the default audience only)"
	}
	return strings.Join(c.Audiences, " ") + " (and the default audience)"
}

// readSecret reads a chosen secret, the first line of stdin.
func readSecret(stdin io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(stdin, authsvc.MaxSecretLen+2)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read secret: %w", err)
	}
	secret := strings.TrimRight(line, "\r\n")
	if secret == "" {
		return "", errors.New("--secret-stdin given but standard input is empty")
	}
	return secret, nil
}

func cmdClientCreate(ctx context.Context, c *command, args []string) error {
	id := c.fs.String("id", "", "client_id (required)")
	scope := c.fs.String("scope", "", "space-separated scopes the client may request")
	audience := c.fs.String("audience", "", "space-separated audiences (aud values, resource URIs) the client may request besides the default one")
	admin := c.fs.Bool("admin", false, "make it an admin (may manage clients over HTTP)")
	dpopBound := c.fs.Bool("dpop-bound", false, "its token requests must carry a DPoP proof (dpop_bound_access_tokens, RFC 9449)")
	secretStdin := c.fs.Bool("secret-stdin", false, "read a chosen secret from the first line of standard input instead of generating one\n(16+ characters, 5+ different ones, not blank, not a shorter string repeated)")
	am := authFlags(c.fs)
	asJSON := c.fs.Bool("json", false, "print JSON")
	if _, err := c.parse(args, 0, 0, ""); err != nil {
		return err
	}
	if *id == "" {
		return c.usageError("--id is required")
	}
	var secret string
	if *secretStdin {
		var err error
		if secret, err = readSecret(c.stdin); err != nil {
			return fmt.Errorf("client create: %w", err)
		}
	}
	nc := authsvc.NewClient{ID: *id, Secret: secret, IsAdmin: *admin, Scopes: authsvc.ParseScope(*scope),
		Audiences: strings.Fields(*audience), AuthMethod: *am.method, JWKSURI: *am.jwksURI, FederatedCredentials: am.federated.list,
		DPoPBoundAccessTokens: *dpopBound, TLSClientAuth: am.tlsName(), TLSClientCertificateBoundAccessTokens: *am.certBound}
	if *am.jwksFile != "" {
		var err error
		if nc.JWKS, err = readJWKSFile(*am.jwksFile, c.stdin); err != nil {
			return fmt.Errorf("client create: %w", err)
		}
	}
	if nc.AuthMethod == "" && (nc.JWKS != nil || nc.JWKSURI != "") {
		nc.AuthMethod = authsvc.AuthPrivateKeyJWT // keys say it
	}
	if nc.AuthMethod == "" && !nc.TLSClientAuth.IsZero() {
		nc.AuthMethod = authsvc.AuthTLSClient // a certificate name says it
	}
	a, done, err := openCLI(ctx)
	if err != nil {
		return err
	}
	defer done()
	cl, secret, err := a.CreateClient(ctx, nc)
	if err != nil {
		return fmt.Errorf("client create %q: %w", *id, err)
	}
	if *asJSON {
		return printJSON(c.stdout, struct {
			authhttp.ClientJSON
			ClientSecret string `json:"client_secret"`
		}{authhttp.ClientToJSON(*cl), secret})
	}
	if secret == "" {
		fmt.Fprintf(c.stdout, "created %s, which has no secret\n\n", cl.ID)
		return printClient(c.stdout, *cl)
	}
	fmt.Fprintf(c.stdout, "client_id:     %s\nclient_secret: %s\nid:            %d\nadmin:         %t\nscope:         %s\naudience:      %s\n",
		cl.ID, secret, cl.RowID, cl.IsAdmin, orDash(strings.Join(cl.Scopes, " ")), audienceText(*cl))
	if !*secretStdin {
		fmt.Fprintln(c.stdout, "\nThe secret is shown only now: store it safely.")
	}
	return nil
}

func cmdClientList(ctx context.Context, c *command, args []string) error {
	prefix := c.fs.String("prefix", "", "only the clients whose client_id starts with this")
	asJSON := c.fs.Bool("json", false, "print JSON")
	if _, err := c.parse(args, 0, 0, ""); err != nil {
		return err
	}
	a, done, err := openCLI(ctx)
	if err != nil {
		return err
	}
	defer done()
	// Page by page, printed as it comes: millions of clients never sit in
	// memory at once. The JSON form is one array all the same.
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	if *asJSON {
		fmt.Fprint(c.stdout, "[")
	} else {
		fmt.Fprintln(tw, "CLIENT_ID\tID\tADMIN\tSCOPE\tAUDIENCE\tCREATED\tLOGGED_OUT_BEFORE")
	}
	q := authsvc.ClientQuery{Prefix: *prefix, Limit: authsvc.MaxClientPage}
	for first := true; ; {
		page, err := a.ListClients(ctx, q)
		if err != nil {
			return fmt.Errorf("client list: %w", err)
		}
		for _, cl := range page.Clients {
			if *asJSON {
				b, err := json.MarshalIndent(authhttp.ClientToJSON(cl), "  ", "  ")
				if err != nil {
					return err
				}
				sep := ","
				if first {
					sep = ""
				}
				fmt.Fprintf(c.stdout, "%s\n  %s", sep, b)
				first = false
				continue
			}
			fmt.Fprintf(tw, "%s\t%d\t%t\t%s\t%s\t%s\t%s\n", cl.ID, cl.RowID, cl.IsAdmin, orDash(strings.Join(cl.Scopes, " ")),
				orDash(strings.Join(cl.Audiences, " ")), stamp(cl.CreatedAt), stamp(cl.TokensValidAfter))
		}
		if err := tw.Flush(); err != nil { // a page's columns line up
			return err
		}
		if page.Next == "" {
			break
		}
		q.After = page.Next
	}
	if *asJSON {
		_, err := fmt.Fprint(c.stdout, "\n]\n")
		return err
	}
	return tw.Flush()
}

// onClient opens the store, applies do to the client id and prints the
// client do returns: as JSON, or with text for people.
func (c *command) onClient(ctx context.Context, id string, asJSON bool,
	do func(a *authsvc.Authenticator) (*authsvc.Client, error), text func(w io.Writer, cl authsvc.Client) error) error {
	a, done, err := openCLI(ctx)
	if err != nil {
		return err
	}
	defer done()
	cl, err := do(a)
	if err != nil {
		return fmt.Errorf("%s %q: %w", c.name, id, err)
	}
	if asJSON {
		return printJSON(c.stdout, authhttp.ClientToJSON(*cl))
	}
	return text(c.stdout, *cl)
}

func cmdClientShow(ctx context.Context, c *command, args []string) error {
	asJSON := c.fs.Bool("json", false, "print JSON")
	pos, err := c.parse(args, 1, 1, "one client_id")
	if err != nil {
		return err
	}
	return c.onClient(ctx, pos[0], *asJSON, func(a *authsvc.Authenticator) (*authsvc.Client, error) {
		return a.Client(ctx, pos[0])
	}, printClient)
}

func cmdClientUpdate(ctx context.Context, c *command, args []string) error {
	admin := c.fs.Bool("admin", false, "make the client an admin (--admin or --admin=true) or not (--admin=false)")
	dpopBound := c.fs.Bool("dpop-bound", false, "require a DPoP proof at each token request (--dpop-bound=true) or not (--dpop-bound=false)")
	scope := c.fs.String("scope", "", `replace the client's scopes (space-separated; "" removes them all)`)
	audience := c.fs.String("audience", "", `replace the audiences the client may request besides the default one (space-separated; "" removes them all)`)
	am := authFlags(c.fs)
	asJSON := c.fs.Bool("json", false, "print JSON")
	pos, err := c.parse(args, 1, 1, "one client_id")
	if err != nil {
		return err
	}
	var u authsvc.ClientUpdate
	var ferr error
	c.fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "admin":
			u.IsAdmin = admin
		case "scope":
			scopes := authsvc.ParseScope(*scope)
			u.Scopes = &scopes
		case "audience":
			audiences := strings.Fields(*audience)
			u.Audiences = &audiences
		case "auth-method":
			u.AuthMethod = am.method
		case "jwks-uri":
			u.JWKSURI = am.jwksURI
		case "jwks-file":
			var jwks []byte
			if *am.jwksFile != "" {
				jwks, ferr = readJWKSFile(*am.jwksFile, c.stdin)
			}
			u.JWKS = &jwks
		case "federated":
			u.FederatedCredentials = &am.federated.list
		case "dpop-bound":
			u.DPoPBoundAccessTokens = dpopBound
		case "cert-bound":
			u.TLSClientCertificateBoundAccessTokens = am.certBound
		}
		if isTLSNameFlag(f.Name) {
			name := am.tlsName()
			u.TLSClientAuth = &name
		}
	})
	if ferr != nil {
		return fmt.Errorf("client update: %w", ferr)
	}
	if u.IsAdmin == nil && u.Scopes == nil && u.Audiences == nil && u.AuthMethod == nil && u.JWKS == nil && u.JWKSURI == nil && u.FederatedCredentials == nil && u.DPoPBoundAccessTokens == nil &&
		u.TLSClientAuth == nil && u.TLSClientCertificateBoundAccessTokens == nil {
		return c.usageError("nothing to change: give --admin=true|false, --scope, --audience, --auth-method, --jwks-file, --jwks-uri, --federated, --tls-subject-dn, --tls-san-*, --dpop-bound=true|false or --cert-bound=true|false")
	}
	return c.onClient(ctx, pos[0], *asJSON, func(a *authsvc.Authenticator) (*authsvc.Client, error) {
		return a.UpdateClient(ctx, pos[0], u)
	}, func(w io.Writer, cl authsvc.Client) error {
		fmt.Fprintf(w, "updated %s\n\n", cl.ID)
		return printClient(w, cl)
	})
}

func cmdClientDelete(ctx context.Context, c *command, args []string) error {
	asJSON := c.fs.Bool("json", false, "print JSON")
	pos, err := c.parse(args, 1, 1, "one client_id")
	if err != nil {
		return err
	}
	a, done, err := openCLI(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := a.DeleteClient(ctx, pos[0]); err != nil {
		return fmt.Errorf("client delete %q: %w", pos[0], err)
	}
	if *asJSON {
		return printJSON(c.stdout, map[string]any{"success": true, "client_id": pos[0]})
	}
	fmt.Fprintf(c.stdout, "deleted %s: its tokens are refused from now on\n", pos[0])
	return nil
}

func cmdClientRotateSecret(ctx context.Context, c *command, args []string) error {
	grace := c.fs.Duration("grace", 0, "keep the previous secret valid this long (e.g. 24h); 0 ends it at once")
	logout := c.fs.Bool("logout-everywhere", false, "also refuse every token issued to the client so far")
	secretStdin := c.fs.Bool("secret-stdin", false, "read the new secret from the first line of standard input instead of generating one\n(16+ characters, 5+ different ones, not blank, not a shorter string repeated)")
	asJSON := c.fs.Bool("json", false, "print JSON")
	pos, err := c.parse(args, 1, 1, "one client_id")
	if err != nil {
		return err
	}
	var secret string
	if *secretStdin {
		if secret, err = readSecret(c.stdin); err != nil {
			return fmt.Errorf("client rotate-secret: %w", err)
		}
	}
	a, done, err := openCLI(ctx)
	if err != nil {
		return err
	}
	defer done()
	start := time.Now()
	cl, secret, err := a.RotateSecret(ctx, pos[0], authsvc.RotateSecret{Secret: secret, Grace: *grace, LogoutEverywhere: *logout})
	if err != nil {
		return fmt.Errorf("client rotate-secret %q: %w", pos[0], err)
	}
	var oldUntil *time.Time
	if *grace > 0 {
		t := start.Add(*grace).UTC().Truncate(time.Second)
		oldUntil = &t
	}
	if *asJSON {
		return printJSON(c.stdout, struct {
			authhttp.ClientJSON
			ClientSecret             string     `json:"client_secret"`
			PreviousSecretValidUntil *time.Time `json:"previous_secret_valid_until"`
		}{authhttp.ClientToJSON(*cl), secret, oldUntil})
	}
	fmt.Fprintf(c.stdout, "client_id:     %s\nclient_secret: %s\n\n", cl.ID, secret)
	if oldUntil != nil {
		fmt.Fprintf(c.stdout, "The previous secret stays valid for %s (until about %s).\n", *grace, stamp(*oldUntil))
	} else {
		fmt.Fprintln(c.stdout, "The previous secret no longer works.")
	}
	if *logout {
		fmt.Fprintf(c.stdout, "Tokens issued before %s are refused.\n", stamp(cl.TokensValidAfter))
	} else {
		fmt.Fprintln(c.stdout, "Tokens issued so far stay valid until they expire (use --logout-everywhere or `authd client logout` to refuse them).")
	}
	if !*secretStdin {
		fmt.Fprintln(c.stdout, "The new secret is shown only now: store it safely.")
	}
	return nil
}

func cmdClientLogout(ctx context.Context, c *command, args []string) error {
	asJSON := c.fs.Bool("json", false, "print JSON")
	pos, err := c.parse(args, 1, 1, "one client_id")
	if err != nil {
		return err
	}
	return c.onClient(ctx, pos[0], *asJSON, func(a *authsvc.Authenticator) (*authsvc.Client, error) {
		return a.LogoutClient(ctx, pos[0])
	}, func(w io.Writer, cl authsvc.Client) error {
		_, err := fmt.Fprintf(w, "logged out %s everywhere: its tokens issued before %s are refused from now on.\nIts secret still works: new tokens are accepted.\n",
			cl.ID, stamp(cl.TokensValidAfter))
		return err
	})
}

// keyJSON is a signing key as the CLI prints it (never its private part).
type keyJSON struct {
	KID        string    `json:"kid"`
	Alg        string    `json:"alg"`
	CreatedAt  time.Time `json:"created_at"`
	ActivateAt time.Time `json:"activate_at"`
	Signing    bool      `json:"signing"`
}

func toKeyJSON(k authsvc.KeyInfo) keyJSON {
	return keyJSON{KID: k.ID, Alg: k.Alg, CreatedAt: k.CreatedAt.UTC(), ActivateAt: k.ActivateAt.UTC(), Signing: k.Signing}
}

func cmdKeysList(ctx context.Context, c *command, args []string) error {
	asJSON := c.fs.Bool("json", false, "print JSON")
	if _, err := c.parse(args, 0, 0, ""); err != nil {
		return err
	}
	a, done, err := openCLI(ctx)
	if err != nil {
		return err
	}
	defer done()
	keys := a.Keys()
	slices.SortStableFunc(keys, func(x, y authsvc.KeyInfo) int {
		if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
			return c
		}
		return x.ActivateAt.Compare(y.ActivateAt)
	})
	if *asJSON {
		out := make([]keyJSON, len(keys))
		for i, k := range keys {
			out[i] = toKeyJSON(k)
		}
		return printJSON(c.stdout, out)
	}
	if len(keys) == 0 {
		fmt.Fprintln(c.stdout, "No stored signing keys: tokens are signed HS256 with the shared secret (AUTHSVC_HMAC_SECRET or AUTHSECRET), which is never published.")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tCREATED\tACTIVATES\tSIGNING")
	now := time.Now()
	for _, k := range keys {
		signing := "-"
		switch {
		case k.Signing:
			signing = "yes"
		case k.ActivateAt.After(now):
			signing = "pending"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Alg, stamp(k.CreatedAt), stamp(k.ActivateAt), signing)
	}
	return tw.Flush()
}

func cmdKeysRotate(ctx context.Context, c *command, args []string) error {
	asJSON := c.fs.Bool("json", false, "print JSON")
	if _, err := c.parse(args, 0, 0, ""); err != nil {
		return err
	}
	a, done, err := openCLI(ctx)
	if err != nil {
		return err
	}
	defer done()
	k, err := a.RotateKeys(ctx)
	if err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	if *asJSON {
		return printJSON(c.stdout, toKeyJSON(*k))
	}
	fmt.Fprintf(c.stdout, "new %s key %s\n", k.Alg, k.ID)
	fmt.Fprintf(c.stdout, "published in the JWKS now; signs new tokens from %s\n", stamp(k.ActivateAt))
	fmt.Fprintf(c.stdout, "(after the JWKS cache lifetime, %s, so every verifier has it by then).\n", a.JWKSMaxAge())
	fmt.Fprintln(c.stdout, "The current key signs until then and stays published until the tokens it signed have expired.")
	return nil
}

func cmdVersion(_ context.Context, c *command, args []string) error {
	asJSON := c.fs.Bool("json", false, "print JSON")
	if _, err := c.parse(args, 0, 0, ""); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(c.stdout, map[string]string{"version": version, "go": runtime.Version()})
	}
	fmt.Fprintf(c.stdout, "authd %s (%s)\n", version, runtime.Version())
	return nil
}
