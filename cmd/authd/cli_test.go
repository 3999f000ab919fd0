package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/testdb"
)

// cliResult is what one authd command line did.
type cliResult struct {
	code           int
	stdout, stderr string
}

// authd runs the command line args as main would, with stdin as standard
// input.
func authd(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return cliResult{code, stdout.String(), stderr.String()}
}

// ok runs args and fails the test unless they exit 0 with nothing on stderr.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	r := authd(t, "", args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("authd %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// okJSON runs args and decodes their JSON output into v.
func okJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := ok(t, args...)
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("authd %s: output is not the JSON expected (%v):\n%s", strings.Join(args, " "), err, out)
	}
}

// fails runs args and checks their exit code and that stderr holds want.
func fails(t *testing.T, code int, want string, args ...string) cliResult {
	t.Helper()
	r := authd(t, "", args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		t.Errorf("authd %s: exit %d, stderr %q; want exit %d and %q", strings.Join(args, " "), r.code, r.stderr, code, want)
	}
	if code == 2 && !strings.Contains(r.stderr, "usage:") {
		t.Errorf("authd %s: no usage on stderr: %q", strings.Join(args, " "), r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("authd %s: failed but printed on stdout: %q", strings.Join(args, " "), r.stdout)
	}
	return r
}

// cliEnv gives a test a clean environment, an empty working directory (no
// stray .env) and authd's store at dbURL.
func cliEnv(t *testing.T, dbURL string) {
	t.Helper()
	clearEnv(t)
	t.Chdir(t.TempDir())
	t.Setenv("AUTHSVC_DATABASE_URL", dbURL)
}

// openTestAuth opens an Authenticator on dbURL, as a server would.
func openTestAuth(t *testing.T, dbURL string, cfg authsvc.Config) (authsvc.Store, *authsvc.Authenticator) {
	t.Helper()
	store, err := authsvc.OpenStore(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "http://127.0.0.1:5000" // authd's default, as the CLI configures it
	}
	a, err := authsvc.New(context.Background(), store, cfg)
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); store.Close() })
	return store, a
}

// cliClientOut is cliClient with the secret a create or rotate prints.
type cliClientOut struct {
	ClientID                 string     `json:"client_id"`
	ID                       int64      `json:"id"`
	IsAdmin                  bool       `json:"is_admin"`
	Scope                    string     `json:"scope"`
	Audience                 string     `json:"audience"`
	CreatedAt                time.Time  `json:"created_at"`
	UpdatedAt                time.Time  `json:"updated_at"`
	TokensValidAfter         *time.Time `json:"tokens_valid_after"`
	ClientSecret             string     `json:"client_secret"`
	PreviousSecretValidUntil *time.Time `json:"previous_secret_valid_until"`
	TokenEndpointAuthMethod  string     `json:"token_endpoint_auth_method"`

	JWKS                 json.RawMessage               `json:"jwks"`
	JWKSURI              string                        `json:"jwks_uri"`
	FederatedCredentials []authsvc.FederatedCredential `json:"federated_credentials"`
	DPoPBound            bool                          `json:"dpop_bound_access_tokens"`
	authsvc.TLSClientAuth
	CertBound bool `json:"tls_client_certificate_bound_access_tokens"`
}

func TestCLIHelp(t *testing.T) {
	clearEnv(t)
	t.Chdir(t.TempDir())
	// Help needs no configuration: a broken one must not matter.
	t.Setenv("AUTHSVC_LOG_LEVEL", "nonsense")
	lines := [][]string{{"--help"}, {"-h"}, {"help"}, {"client", "--help"}, {"keys", "-h"}, {"help", "keys"}}
	for _, c := range commands {
		name := strings.Fields(c.name)
		lines = append(lines, append(name, "--help"), append(name, "-h"), append([]string{"help"}, name...))
	}
	// A help flag after other arguments still asks for help.
	lines = append(lines, []string{"client", "show", "x", "--help"}, []string{"import-seed", "--dry-run", "-h"})
	for _, args := range lines {
		r := authd(t, "", args...)
		if r.code != 0 || r.stderr != "" || !strings.HasPrefix(r.stdout, "usage:") {
			t.Errorf("authd %s: exit %d, stderr %q, stdout %.60q", strings.Join(args, " "), r.code, r.stderr, r.stdout)
		}
	}
	// Each command's help names its flags.
	for cmd, flags := range map[string][]string{
		"client create":        {"-id", "-admin", "-scope", "-secret-stdin", "-json"},
		"client update":        {"-admin", "-scope", "-json"},
		"client rotate-secret": {"-grace", "-logout-everywhere", "-secret-stdin", "-json"},
		"import-seed":          {"-from", "-dry-run", "-renumber", "-json"},
		"keys rotate":          {"-json"},
	} {
		out := ok(t, append(strings.Fields(cmd), "--help")...)
		for _, f := range flags {
			if !strings.Contains(out, "  "+f) {
				t.Errorf("authd %s --help lacks %s:\n%s", cmd, f, out)
			}
		}
	}
	top := ok(t, "--help")
	for _, c := range commands {
		if !strings.Contains(top, "authd "+c.name) {
			t.Errorf("authd --help lacks %s", c.name)
		}
	}
}

func TestCLIUsageErrors(t *testing.T) {
	cliEnv(t, testdb.SQLite(t))
	for _, c := range []struct {
		want string
		args []string
	}{
		{`unknown command "frobnicate"`, []string{"frobnicate"}},
		{`unknown command "client frobnicate"`, []string{"client", "frobnicate"}},
		{`unknown command "keys delete"`, []string{"keys", "delete"}},
		{"missing subcommand", []string{"client"}},
		{"missing subcommand", []string{"keys"}},
		{"flag provided but not defined: -bogus", []string{"client", "list", "--bogus"}},
		{"flag provided but not defined: -bogus", []string{"client", "delete", "x", "--bogus"}},
		{"missing one client_id", []string{"client", "show"}},
		{"missing one client_id", []string{"client", "delete", "--json"}},
		{"want one client_id, got 2 arguments", []string{"client", "delete", "a", "b"}},
		{`unexpected argument "x"`, []string{"client", "list", "x"}},
		{`unexpected argument "x"`, []string{"client", "create", "--id", "a", "x"}},
		{"--id is required", []string{"client", "create"}},
		{"nothing to change", []string{"client", "update", "x"}},
		{`invalid boolean value "maybe"`, []string{"client", "update", "x", "--admin=maybe"}},
		{`invalid value "soon" for flag -grace`, []string{"client", "rotate-secret", "x", "--grace", "soon"}},
		{"flag needs an argument: -scope", []string{"client", "create", "--id", "a", "--scope"}},
		{"--from is required", []string{"import-seed"}},
		{"--from must be a postgres:// URL", []string{"import-seed", "--from", "mysql://u@h/db"}},
		{`unexpected argument "now"`, []string{"migrate", "now"}},
		{`unexpected argument "x"`, []string{"serve", "x"}},
		{`unexpected argument "x"`, []string{"version", "x"}},
	} {
		fails(t, 2, c.want, c.args...)
	}
}

// step runs f as the sub-test name of t, one of a sequence that builds on
// the ones before it: when it fails, the test stops there, so the failure
// names the step and the later steps do not fail for its sake.
func step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, f) {
		t.FailNow()
	}
}

// TestCLIClients walks one store through the client commands, a step per
// command line (or per few lines that check one thing), each step starting
// from the clients the steps before it left.
func TestCLIClients(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		cliEnv(t, dbURL)
		ctx := context.Background()

		var admin cliClientOut // "ops", created first; its secret is used later
		step(t, "create --json", func(t *testing.T) {
			okJSON(t, &admin, "client", "create", "--id", "ops", "--admin", "--scope", "a b a", "--json")
			if admin.ClientID != "ops" || !admin.IsAdmin || admin.Scope != "a b" || len(admin.ClientSecret) != 43 || admin.ID == 0 || admin.TokensValidAfter != nil {
				t.Fatalf("create --json: %+v", admin)
			}
		})
		// A chosen secret from standard input; flags after the rest work too.
		step(t, "create --secret-stdin", func(t *testing.T) {
			r := authd(t, "chosen-secret-0123456789\n", "client", "create", "--secret-stdin", "--id", "notes", "--scope", "notes:read",
				"--audience", "https://notes.internal https://billing.internal")
			if r.code != 0 || !strings.Contains(r.stdout, "client_secret: chosen-secret-0123456789") || strings.Contains(r.stdout, "shown only now") ||
				!strings.Contains(r.stdout, "audience:      https://notes.internal https://billing.internal (and the default audience)") {
				t.Fatalf("create --secret-stdin: %+v", r)
			}
		})
		step(t, "create", func(t *testing.T) {
			out := ok(t, "client", "create", "--id", "plain")
			if !strings.Contains(out, "client_id:     plain") || !strings.Contains(out, "shown only now") {
				t.Fatalf("create: %s", out)
			}
		})
		step(t, "create refused", func(t *testing.T) {
			fails(t, 1, `client create "plain": authsvc: client already exists`, "client", "create", "--id", "plain")
			fails(t, 1, "standard input is empty", "client", "create", "--id", "weak", "--secret-stdin")
			if r := authd(t, "short\n", "client", "create", "--id", "weak", "--secret-stdin"); r.code != 1 || !strings.Contains(r.stderr, "at least 16 characters") {
				t.Errorf("short chosen secret: %+v", r)
			}
			fails(t, 1, "invalid argument", "client", "create", "--id", "has space")
			fails(t, 1, "client_id must be printable ASCII", "client", "create", "--id", "adm\u0456n")
			for secret, why := range map[string]string{
				strings.Repeat("a", 16): "at least 5 different characters",
				strings.Repeat(" ", 16): "only white space",
				"passwordpassword":      "a shorter string repeated",
			} {
				if r := authd(t, secret+"\n", "client", "create", "--id", "weak", "--secret-stdin"); r.code != 1 || !strings.Contains(r.stderr, why) {
					t.Errorf("chosen secret %q: %+v", secret, r)
				}
			}
			fails(t, 1, "audience must not contain spaces or control characters", "client", "create", "--id", "q", "--audience", "a\x01b")
			fails(t, 1, "invalid scope", "client", "create", "--id", "q", "--scope", `bad"scope`)
		})

		step(t, "list --json", func(t *testing.T) {
			var list []cliClientOut
			okJSON(t, &list, "client", "list", "--json")
			if len(list) != 3 || list[0].ClientID != "notes" || list[1].ClientID != "ops" || list[2].ClientID != "plain" {
				t.Fatalf("list --json: %+v", list)
			}
			for _, c := range list {
				if c.ClientSecret != "" {
					t.Fatalf("list shows a secret: %+v", c)
				}
			}
		})
		step(t, "list", func(t *testing.T) {
			table := ok(t, "client", "list")
			if !strings.HasPrefix(table, "CLIENT_ID") || !strings.Contains(table, "notes:read") || strings.Count(table, "\n") != 4 {
				t.Fatalf("list:\n%s", table)
			}
		})

		step(t, "show --json", func(t *testing.T) {
			var shown cliClientOut
			okJSON(t, &shown, "client", "show", "notes", "--json")
			if shown.ClientID != "notes" || shown.Scope != "notes:read" || shown.IsAdmin || shown.Audience != "https://notes.internal https://billing.internal" {
				t.Fatalf("show --json: %+v", shown)
			}
		})
		step(t, "show", func(t *testing.T) {
			if out := ok(t, "client", "show", "ops"); !strings.Contains(out, "admin:      true") || !strings.Contains(out, "logged out: none") ||
				!strings.Contains(out, "audience:   - (the default audience only)") {
				t.Fatalf("show:\n%s", out)
			}
			fails(t, 1, `client show "ghost": authsvc: client not found`, "client", "show", "ghost")
		})

		// update changes only the flags given.
		step(t, "update --admin", func(t *testing.T) {
			var upd cliClientOut
			okJSON(t, &upd, "client", "update", "notes", "--admin", "--json")
			if !upd.IsAdmin || upd.Scope != "notes:read" {
				t.Fatalf("update --admin: %+v", upd)
			}
		})
		step(t, "update --scope", func(t *testing.T) {
			var upd cliClientOut
			okJSON(t, &upd, "client", "update", "--scope", "notes:write x", "notes", "--json")
			if !upd.IsAdmin || upd.Scope != "notes:write x" || upd.Audience != "https://notes.internal https://billing.internal" {
				t.Fatalf("update --scope: %+v", upd)
			}
		})
		step(t, "update --audience", func(t *testing.T) {
			var upd cliClientOut
			okJSON(t, &upd, "client", "update", "notes", "--audience", "https://notes.internal", "--json")
			if upd.Audience != "https://notes.internal" || upd.Scope != "notes:write x" {
				t.Fatalf("update --audience: %+v", upd)
			}
			if out := ok(t, "client", "update", "notes", "--audience="); !strings.Contains(out, "audience:   - (the default audience only)") {
				t.Fatalf("update --audience=:\n%s", out)
			}
			okJSON(t, &upd, "client", "update", "notes", "--audience", "https://notes.internal", "--json")
		})
		step(t, "update --admin=false --scope=", func(t *testing.T) {
			if out := ok(t, "client", "update", "notes", "--admin=false", "--scope="); !strings.Contains(out, "updated notes") || !strings.Contains(out, "admin:      false") || !strings.Contains(out, "scope:      -") {
				t.Fatalf("update:\n%s", out)
			}
			fails(t, 1, `client update "ghost": authsvc: client not found`, "client", "update", "ghost", "--admin")
		})

		// A token issued now is refused after logout; the secret still works.
		var before string // an access token issued to ops before its logout
		step(t, "logout --json", func(t *testing.T) {
			_, a := openTestAuth(t, dbURL, authsvc.Config{})
			tok, err := a.Authenticate(ctx, "ops", admin.ClientSecret, authsvc.TokenRequest{})
			if err != nil {
				t.Fatal(err)
			}
			before = tok.AccessToken
			a.Close()
			var lo cliClientOut
			okJSON(t, &lo, "client", "logout", "ops", "--json")
			if lo.TokensValidAfter == nil || lo.TokensValidAfter.Before(time.Now().Add(-time.Minute)) {
				t.Fatalf("logout --json: %+v", lo)
			}
			if out := ok(t, "client", "show", "ops"); !strings.Contains(out, "logged out: tokens issued before "+lo.TokensValidAfter.Format(time.RFC3339)) {
				t.Fatalf("show after logout:\n%s", out)
			}
		})
		step(t, "logout", func(t *testing.T) {
			if out := ok(t, "client", "logout", "plain"); !strings.Contains(out, "logged out plain everywhere") {
				t.Fatalf("logout: %s", out)
			}
			fails(t, 1, "client not found", "client", "logout", "ghost")
		})
		step(t, "token refused and secret kept after logout", func(t *testing.T) {
			_, a := openTestAuth(t, dbURL, authsvc.Config{})
			if _, err := a.Verify(ctx, before); !errors.Is(err, authsvc.ErrTokenRevoked) {
				t.Fatalf("token issued before logout: %v", err)
			}
			if _, err := a.AuthenticateClient(ctx, "ops", admin.ClientSecret); err != nil {
				t.Fatalf("secret after logout: %v", err)
			}
			a.Close()
		})

		// rotate-secret: new secret shown once; the old one works during the grace.
		var rot cliClientOut
		step(t, "rotate-secret with grace", func(t *testing.T) {
			okJSON(t, &rot, "client", "rotate-secret", "ops", "--grace", "1h", "--json")
			if len(rot.ClientSecret) != 43 || rot.ClientSecret == admin.ClientSecret || rot.PreviousSecretValidUntil == nil ||
				time.Until(*rot.PreviousSecretValidUntil) < 59*time.Minute {
				t.Fatalf("rotate-secret --json: %+v", rot)
			}
			_, a := openTestAuth(t, dbURL, authsvc.Config{})
			for _, s := range []string{admin.ClientSecret, rot.ClientSecret} {
				if _, err := a.AuthenticateClient(ctx, "ops", s); err != nil {
					t.Fatalf("secret during grace: %v", err)
				}
			}
			a.Close()
		})
		step(t, "rotate-secret --secret-stdin --logout-everywhere", func(t *testing.T) {
			r := authd(t, "rotated-chosen-secret-0123\n", "client", "rotate-secret", "ops", "--secret-stdin", "--logout-everywhere")
			if r.code != 0 || !strings.Contains(r.stdout, "client_secret: rotated-chosen-secret-0123") ||
				!strings.Contains(r.stdout, "previous secret no longer works") || !strings.Contains(r.stdout, "Tokens issued before") {
				t.Fatalf("rotate-secret --secret-stdin: %+v", r)
			}
			_, a := openTestAuth(t, dbURL, authsvc.Config{})
			if _, err := a.AuthenticateClient(ctx, "ops", rot.ClientSecret); !errors.Is(err, authsvc.ErrInvalidClient) {
				t.Fatalf("old secret without grace: %v", err)
			}
			if _, err := a.AuthenticateClient(ctx, "ops", "rotated-chosen-secret-0123"); err != nil {
				t.Fatalf("rotated chosen secret: %v", err)
			}
			a.Close()
		})
		step(t, "rotate-secret refused", func(t *testing.T) {
			fails(t, 1, "negative grace period", "client", "rotate-secret", "ops", "--grace=-1h")
			fails(t, 1, `client rotate-secret "ghost": authsvc: client not found`, "client", "rotate-secret", "ghost")
		})

		step(t, "never a secret or hash", func(t *testing.T) {
			for _, args := range [][]string{{"client", "list"}, {"client", "list", "--json"}, {"client", "show", "ops", "--json"}, {"client", "show", "ops"}} {
				out := strings.ReplaceAll(ok(t, args...), "client_secret_basic", "") // a method's name, not a secret
				if strings.Contains(out, "$argon2id$") || strings.Contains(out, "$sha256$") || strings.Contains(out, "secret") {
					t.Fatalf("authd %s shows a secret or hash:\n%s", strings.Join(args, " "), out)
				}
			}
		})

		// delete, with the flag after the id.
		step(t, "delete --json", func(t *testing.T) {
			var del map[string]any
			okJSON(t, &del, "client", "delete", "plain", "--json")
			if del["success"] != true || del["client_id"] != "plain" {
				t.Fatalf("delete --json: %v", del)
			}
		})
		step(t, "delete", func(t *testing.T) {
			if out := ok(t, "client", "delete", "notes"); !strings.Contains(out, "deleted notes") {
				t.Fatalf("delete: %s", out)
			}
			fails(t, 1, `client delete "plain": authsvc: client not found`, "client", "delete", "plain")
		})
		step(t, "list after delete", func(t *testing.T) {
			var list []cliClientOut
			okJSON(t, &list, "client", "list", "--json")
			if len(list) != 1 || list[0].ClientID != "ops" {
				t.Fatalf("list after delete: %+v", list)
			}
		})
		// "--" ends the flags: a client_id may start with a dash.
		step(t, "dashed id after --", func(t *testing.T) {
			ok(t, "client", "create", "--id", "-dash")
			ok(t, "client", "delete", "--json", "--", "-dash")
		})
	})
}

func TestCLIKeys(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		cliEnv(t, dbURL)
		var keys []keyJSON
		okJSON(t, &keys, "keys", "list", "--json")
		if len(keys) != 1 || !keys[0].Signing || keys[0].Alg != "EdDSA" || keys[0].KID == "" {
			t.Fatalf("keys list --json: %+v", keys)
		}
		first := keys[0]
		var rotated keyJSON
		okJSON(t, &rotated, "keys", "rotate", "--json")
		if rotated.KID == first.KID || rotated.Alg != "EdDSA" || rotated.ActivateAt.Sub(rotated.CreatedAt) != 5*time.Minute {
			t.Fatalf("keys rotate --json: %+v", rotated)
		}
		okJSON(t, &keys, "keys", "list", "--json")
		if len(keys) != 2 || keys[0].KID != first.KID || !keys[0].Signing || keys[1].KID != rotated.KID || keys[1].Signing {
			t.Fatalf("keys list after rotate: %+v", keys)
		}
		table := ok(t, "keys", "list")
		if !strings.HasPrefix(table, "KID") || !strings.Contains(table, "SIGNING") || !strings.Contains(table, "pending") || !strings.Contains(table, "yes") {
			t.Fatalf("keys list:\n%s", table)
		}
		out := ok(t, "keys", "rotate")
		if !strings.Contains(out, "published in the JWKS now") || !strings.Contains(out, "signs new tokens from") {
			t.Fatalf("keys rotate:\n%s", out)
		}
		// The server publishes every key.
		_, a := openTestAuth(t, dbURL, authsvc.Config{})
		var jwks struct{ Keys []map[string]any }
		if err := json.Unmarshal(a.JWKS(), &jwks); err != nil || len(jwks.Keys) != 3 {
			t.Fatalf("JWKS after two rotations: %d keys, %v", len(jwks.Keys), err)
		}

		// With HS256 there is nothing to list or rotate.
		t.Setenv("AUTHSECRET", strings.Repeat("k", 40))
		if out := ok(t, "keys", "list"); !strings.Contains(out, "HS256") {
			t.Fatalf("keys list with HS256: %s", out)
		}
		okJSON(t, &keys, "keys", "list", "--json")
		if len(keys) != 0 {
			t.Fatalf("keys list --json with HS256: %+v", keys)
		}
		fails(t, 1, "HS256 uses one shared secret", "keys", "rotate")
	})
}

func TestCLIMigrateVersionConfig(t *testing.T) {
	dir := t.TempDir()
	cliEnv(t, "sqlite:"+filepath.Join(dir, "m.db"))
	if out := ok(t, "migrate"); !strings.Contains(out, "migrations applied to sqlite:") {
		t.Fatalf("migrate: %s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "m.db")); err != nil {
		t.Fatalf("migrate made no database: %v", err)
	}
	if out := ok(t, "version"); !strings.HasPrefix(out, "authd dev (go") {
		t.Fatalf("version: %s", out)
	}
	if out := ok(t, "--version"); !strings.HasPrefix(out, "authd dev") {
		t.Fatalf("--version: %s", out)
	}
	var v map[string]string
	okJSON(t, &v, "version", "--json")
	if v["version"] != "dev" || !strings.HasPrefix(v["go"], "go") {
		t.Fatalf("version --json: %v", v)
	}

	// The CLI reads the server's configuration: a .env in the working
	// directory (here naming another database), and its errors.
	os.Unsetenv("AUTHSVC_DATABASE_URL")
	if err := os.WriteFile(".env", []byte("AUTHSVC_DATABASE_URL=sqlite:from-dotenv.db\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok(t, "client", "create", "--id", "via-dotenv")
	if _, err := os.Stat("from-dotenv.db"); err != nil {
		t.Fatalf(".env not used: %v", err)
	}
	t.Setenv("AUTHSVC_LOG_LEVEL", "loud")
	fails(t, 1, "authd: config: AUTHSVC_LOG_LEVEL must be one of", "client", "list")
	t.Setenv("AUTHSVC_LOG_LEVEL", "info")
	t.Setenv("AUTHSVC_DATABASE_URL", "postgres://nobody:hunter2pw@127.0.0.1:1/x?sslmode=disable&connect_timeout=2")
	r := fails(t, 1, "store unavailable", "client", "list")
	if strings.Contains(r.stderr, "hunter2pw") {
		t.Fatalf("the database password leaks: %s", r.stderr)
	}
	fails(t, 1, "store unavailable", "migrate")
}

// TestBinary runs the real authd binary: exit codes, streams and a client
// round trip through main.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "authd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "AUTHSVC_DATABASE_URL=sqlite:" + filepath.Join(dir, "authd.db")}
	exe := func(stdin string, args ...string) cliResult {
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env, cmd.Stdin = dir, env, strings.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return cliResult{code, stdout.String(), stderr.String()}
	}
	for _, c := range []struct {
		args       []string
		stdin      string
		code       int
		out, errIn string
	}{
		{[]string{"--help"}, "", 0, "usage:", ""},
		{[]string{"client", "delete", "--help"}, "", 0, "usage: authd client delete ID", ""},
		{[]string{"client", "create", "--id", "bin", "--secret-stdin", "--json"}, "binary-chosen-secret-1\n", 0, `"client_secret": "binary-chosen-secret-1"`, ""},
		{[]string{"client", "show", "bin"}, "", 0, "client_id:  bin", ""},
		{[]string{"client", "delete", "bin", "--json"}, "", 0, `"success": true`, ""},
		{[]string{"client", "delete", "bin"}, "", 1, "", "authd: client delete \"bin\": authsvc: client not found"},
		{[]string{"client", "list", "--nope"}, "", 2, "", "flag provided but not defined: -nope"},
		{[]string{"nope"}, "", 2, "", `unknown command "nope"`},
		{[]string{"version"}, "", 0, "authd dev", ""},
	} {
		r := exe(c.stdin, c.args...)
		if r.code != c.code || !strings.Contains(r.stdout, c.out) || !strings.Contains(r.stderr, c.errIn) || (c.errIn == "" && r.stderr != "") {
			t.Errorf("authd %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(c.args, " "), r.code, r.stdout, r.stderr)
		}
	}
}
