package main

// authd import-seed: the Flask tutorial service's clients into authd
// (the work is internal/seedimport's).

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/dburl"
	"github.com/authsvc/authsvc/internal/seedimport"
)

// The report and its results, as the tests name them.
type importReport = seedimport.Report

const (
	resultImported   = seedimport.Imported
	resultRowIDTaken = seedimport.RowIDTaken
	resultInvalid    = seedimport.Invalid
)

func cmdImportSeed(ctx context.Context, c *command, args []string) error {
	from := c.fs.String("from", "", "the Flask service's PostgreSQL database, postgres://USER:PASSWORD@HOST:5432/DBNAME?sslmode=…\n(default: the database the Flask .env's DBNAME, DBUSER, DBPASSWORD, DBHOST, DBPORT name)")
	dryRun := c.fs.Bool("dry-run", false, "read both databases and report what would happen; write nothing (not even authd's migrations)")
	renumber := c.fs.Bool("renumber", false, "import a client whose id authd already uses under a new id (its tokens' id claim changes)\ninstead of skipping it")
	asJSON := c.fs.Bool("json", false, "print JSON")
	if _, err := c.parse(args, 0, 0, ""); err != nil {
		return err
	}
	cfg, err := loadConfig(".env")
	if err != nil {
		return err
	}
	if *from == "" {
		if os.Getenv("DBNAME") == "" {
			return c.usageError("--from is required (or a Flask .env with DBNAME in the working directory)")
		}
		if *from, err = seedDatabaseURL(pgSocketDir); err != nil {
			return err
		}
	}
	if !strings.HasPrefix(*from, "postgres://") && !strings.HasPrefix(*from, "postgresql://") {
		return c.usageError("--from must be a postgres:// URL (the Flask service's database)")
	}
	seed, err := seedimport.Read(ctx, *from)
	if err != nil {
		return err
	}
	rep := seedimport.NewReport(*dryRun, dburl.Redact(*from), dburl.Redact(cfg.DatabaseURL), seed)
	valid, invalid := seedimport.Check(seed.Clients)
	var runErr error
	if *dryRun {
		runErr = seedimport.Plan(ctx, cfg.DatabaseURL, rep, valid, *renumber)
	} else {
		runErr = importInto(ctx, cfg, rep, valid, *renumber)
	}
	rep.Add(invalid...)
	if *asJSON {
		if err := printJSON(c.stdout, rep); err != nil {
			return err
		}
	} else if err := rep.WriteText(c.stdout); err != nil {
		return err
	}
	return runErr
}

// importInto opens authd's store and imports the clients into it.
func importInto(ctx context.Context, cfg config, rep *importReport, clients []authsvc.ImportedClient, renumber bool) error {
	store, a, err := openAuthenticator(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("import-seed: open authd's store: %w", err)
	}
	defer store.Close()
	defer a.Close()
	return seedimport.Import(ctx, a, rep, clients, renumber)
}
