package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/authsvc/authsvc"
)

var keyDecoders = []func(string) ([]byte, error){
	base64.StdEncoding.DecodeString,
	base64.RawStdEncoding.DecodeString,
	base64.URLEncoding.DecodeString,
	base64.RawURLEncoding.DecodeString,
	hex.DecodeString,
}

const clientUsage = `usage:
  authd client create --id ID [--secret-stdin] [--admin] [--scope "a b"] [--json]
  authd client list [--json]
  authd client delete ID
`

// cmdClient manages clients directly in the store, so that an operator can
// make the first admin without HTTP.
func cmdClient(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, clientUsage)
		return errUsage
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("authd client "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	var id, scope *string
	var admin, secretStdin *bool
	switch sub {
	case "create":
		id = fs.String("id", "", "client_id (required)")
		scope = fs.String("scope", "", "space-separated scopes the client may request")
		admin = fs.Bool("admin", false, "make it an admin (may manage clients over HTTP)")
		secretStdin = fs.Bool("secret-stdin", false, "read a chosen secret (16+ characters) from standard input instead of generating one")
	case "list", "delete":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, clientUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "authd client: unknown subcommand %q\n\n%s", sub, clientUsage)
		return errUsage
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return errUsage
	}
	cfg, err := loadConfig(".env")
	if err != nil {
		return err
	}
	log := slog.New(slog.DiscardHandler)
	store, a, err := openAuthenticator(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	defer a.Close()

	switch sub {
	case "create":
		if fs.NArg() > 0 {
			return fmt.Errorf("client create: unexpected argument %q (use --id)", fs.Arg(0))
		}
		if *id == "" {
			return fmt.Errorf("client create: --id is required")
		}
		var secret string
		if *secretStdin {
			line, err := bufio.NewReader(io.LimitReader(stdin, authsvc.MaxSecretLen+2)).ReadString('\n')
			if err != nil && err != io.EOF {
				return fmt.Errorf("client create: read secret: %w", err)
			}
			if secret = strings.TrimRight(line, "\r\n"); secret == "" {
				return fmt.Errorf("client create: --secret-stdin given but standard input is empty")
			}
		}
		c, secret, err := a.CreateClient(ctx, authsvc.NewClient{ID: *id, Secret: secret, IsAdmin: *admin, Scopes: authsvc.ParseScope(*scope)})
		if err != nil {
			return fmt.Errorf("client create: %w", err)
		}
		if *asJSON {
			out := struct {
				clientJSON
				ClientSecret string `json:"client_secret"`
			}{toClientJSON(*c), secret}
			return json.NewEncoder(stdout).Encode(out)
		}
		fmt.Fprintf(stdout, "client_id:     %s\nclient_secret: %s\nadmin:         %t\nscope:         %s\n",
			c.ID, secret, c.IsAdmin, strings.Join(c.Scopes, " "))
		if !*secretStdin {
			fmt.Fprintln(stdout, "\nThe secret is shown only now: store it safely.")
		}
		return nil
	case "list":
		if fs.NArg() > 0 {
			return fmt.Errorf("client list: unexpected argument %q", fs.Arg(0))
		}
		clients, err := a.Clients(ctx)
		if err != nil {
			return fmt.Errorf("client list: %w", err)
		}
		if *asJSON {
			out := make([]clientJSON, len(clients))
			for i, c := range clients {
				out[i] = toClientJSON(c)
			}
			return json.NewEncoder(stdout).Encode(out)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT_ID\tID\tADMIN\tSCOPE\tCREATED")
		for _, c := range clients {
			fmt.Fprintf(tw, "%s\t%d\t%t\t%s\t%s\n", c.ID, c.RowID, c.IsAdmin, strings.Join(c.Scopes, " "), c.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	case "delete":
		if fs.NArg() != 1 {
			return fmt.Errorf("client delete: give exactly one client_id")
		}
		if err := a.DeleteClient(ctx, fs.Arg(0)); err != nil {
			return fmt.Errorf("client delete %s: %w", fs.Arg(0), err)
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(map[string]any{"success": true, "client_id": fs.Arg(0)})
		}
		fmt.Fprintf(stdout, "deleted %s\n", fs.Arg(0))
	}
	return nil
}
