package main

// authd import-seed: the Flask tutorial service's clients into authd.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/dburl"
)

// seedRow is a row of the Flask service's clients table. Its columns are
// NOT NULL as the article creates them; the Null types let a hand-edited
// table be reported row by row instead of failing the whole import.
type seedRow struct {
	ID       int64          `db:"Id"`
	ClientID sql.NullString `db:"ClientId"`
	Secret   sql.NullString `db:"ClientSecret"`
	IsAdmin  sql.NullBool   `db:"IsAdmin"`
}

// seedData is what import-seed reads from the Flask service's database.
type seedData struct {
	clients   []seedRow
	blacklist *int // rows in blacklist; nil when there is no such table
}

// Import results, per client.
const (
	resultImported   = "imported"
	resultExists     = "exists"
	resultRowIDTaken = "row_id_taken"
	resultInvalid    = "invalid"
)

// importedRow is one seed client in the report. It never carries the hash.
type importedRow struct {
	ClientID string `json:"client_id"`
	ID       int64  `json:"id"`               // the seed's "Id"
	NewID    int64  `json:"new_id,omitempty"` // the id authd gave it instead (--renumber)
	IsAdmin  bool   `json:"is_admin"`
	Result   string `json:"result"`
	Reason   string `json:"reason,omitempty"`
}

// importReport is import-seed's output (--json prints it as it is).
type importReport struct {
	DryRun            bool          `json:"dry_run"`
	From              string        `json:"from"` // password redacted
	Into              string        `json:"into"`
	StoreInitialised  bool          `json:"store_initialised"`
	SeedClients       int           `json:"seed_clients"`
	Imported          int           `json:"imported"`
	SkippedExisting   int           `json:"skipped_existing"`
	SkippedRowIDTaken int           `json:"skipped_row_id_taken"`
	SkippedInvalid    int           `json:"skipped_invalid"`
	BlacklistRows     *int          `json:"blacklist_rows"`
	Clients           []importedRow `json:"clients"`
}

func (r *importReport) count(row importedRow) {
	switch row.Result {
	case resultImported:
		r.Imported++
	case resultExists:
		r.SkippedExisting++
	case resultRowIDTaken:
		r.SkippedRowIDTaken++
	case resultInvalid:
		r.SkippedInvalid++
	}
	r.Clients = append(r.Clients, row)
}

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
	seed, err := readSeed(ctx, *from)
	if err != nil {
		return err
	}
	rep := &importReport{
		DryRun: *dryRun, From: dburl.Redact(*from), Into: dburl.Redact(cfg.DatabaseURL),
		SeedClients: len(seed.clients), BlacklistRows: seed.blacklist, Clients: []importedRow{},
	}
	valid, invalid := checkSeedRows(seed.clients)
	var runErr error
	if *dryRun {
		runErr = planImport(ctx, cfg, rep, valid, *renumber)
	} else {
		runErr = doImport(ctx, cfg, rep, valid, *renumber)
	}
	for _, row := range invalid {
		rep.count(row)
	}
	if *asJSON {
		if err := printJSON(c.stdout, rep); err != nil {
			return err
		}
	} else if err := printImportReport(c.stdout, rep); err != nil {
		return err
	}
	return runErr
}

// readSeed reads the Flask service's clients and counts its blacklist, in
// one read-only snapshot: import-seed never writes to that database's
// tables. The SQL is constant.
func readSeed(ctx context.Context, url string) (*seedData, error) {
	where := dburl.Redact(url)
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		return nil, fmt.Errorf("import-seed: open the Flask database %s: %w", where, err)
	}
	defer db.Close()
	tx, err := db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return nil, fmt.Errorf("import-seed: connect to the Flask database %s: %w", where, err)
	}
	defer tx.Rollback()
	d := &seedData{}
	err = tx.SelectContext(ctx, &d.clients, `SELECT "Id", "ClientId", "ClientSecret", "IsAdmin" FROM clients ORDER BY "Id"`)
	switch pqCode(err) {
	case "":
	case "42P01": // undefined_table
		return nil, fmt.Errorf("import-seed: the database %s has no clients table: --from must name the Flask service's database", where)
	case "42703": // undefined_column
		return nil, fmt.Errorf(`import-seed: the clients table of %s lacks the Flask service's columns "Id", "ClientId", "ClientSecret", "IsAdmin"`, where)
	default:
		return nil, fmt.Errorf("import-seed: read the Flask service's clients from %s: %w", where, err)
	}
	var n int
	err = tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM blacklist`)
	switch pqCode(err) {
	case "":
		d.blacklist = &n
	case "42P01": // no blacklist: nothing to report
	default:
		return nil, fmt.Errorf("import-seed: read the Flask service's blacklist from %s: %w", where, err)
	}
	return d, nil
}

// pqCode is the SQLSTATE of a PostgreSQL error, "" for nil and "?" for an
// error of another kind.
func pqCode(err error) string {
	if err == nil {
		return ""
	}
	var pe *pq.Error
	if errors.As(err, &pe) {
		return string(pe.Code)
	}
	return "?"
}

// checkSeedRows splits the seed's rows into importable clients and invalid
// rows (with the reason), keeping the first of duplicated ClientIds (the
// shipped SQL has no unique constraint).
func checkSeedRows(rows []seedRow) ([]authsvc.ImportedClient, []importedRow) {
	var valid []authsvc.ImportedClient
	var invalid []importedRow
	seen := map[string]int64{}
	for _, r := range rows {
		bad := func(reason string) {
			invalid = append(invalid, importedRow{ClientID: r.ClientID.String, ID: r.ID, IsAdmin: r.IsAdmin.Bool, Result: resultInvalid, Reason: reason})
		}
		ic := authsvc.ImportedClient{ID: r.ClientID.String, RowID: r.ID, LegacyHash: r.Secret.String, IsAdmin: r.IsAdmin.Bool}
		switch {
		case !r.ClientID.Valid || !r.Secret.Valid || !r.IsAdmin.Valid:
			bad("a NULL column")
		case r.ID <= 0:
			bad(`"Id" must be positive`)
		case seen[ic.ID] != 0:
			bad(fmt.Sprintf(`duplicate "ClientId": the row with "Id" %d is imported instead`, seen[ic.ID]))
		default:
			if err := ic.Validate(); err != nil {
				reason := strings.TrimPrefix(err.Error(), authsvc.ErrInvalidArgument.Error()+": ")
				if errors.Is(err, authsvc.ErrInvalidArgument) && strings.Contains(reason, "hash") {
					reason += " (a plaintext secret?)"
				}
				bad(reason)
				continue
			}
			seen[ic.ID] = ic.RowID
			valid = append(valid, ic)
		}
	}
	return valid, invalid
}

// planImport fills the report of a dry run: it compares the seed's clients
// with authd's store without writing anything to it.
func planImport(ctx context.Context, cfg config, rep *importReport, clients []authsvc.ImportedClient, renumber bool) error {
	ids, initialised, err := authsvc.StoredClientIDs(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("import-seed: read authd's store: %w", err)
	}
	rep.StoreInitialised = initialised
	byRowID := make(map[int64]string, len(ids))
	for id, row := range ids {
		byRowID[row] = id
	}
	for _, ic := range clients {
		row := importedRow{ClientID: ic.ID, ID: ic.RowID, IsAdmin: ic.IsAdmin, Result: resultImported}
		if _, ok := ids[ic.ID]; ok {
			row.Result, row.Reason = resultExists, "authd already has this client_id"
		} else if other, ok := byRowID[ic.RowID]; ok {
			if renumber {
				row.Reason = "gets a new id: authd's client " + fmt.Sprintf("%q", other) + " has this one"
			} else {
				row.Result, row.Reason = resultRowIDTaken, rowIDTakenReason(other)
			}
		}
		rep.count(row)
	}
	return nil
}

func rowIDTakenReason(other string) string {
	if other != "" {
		other = fmt.Sprintf(" (%q)", other)
	}
	return "authd already has another client" + other + " with this id; --renumber imports it with a new id (its tokens' id claim changes)"
}

// doImport imports the clients into authd's store. It stops at the first
// store failure: what was imported stays, and running again finishes the
// job (imported clients are then skipped as existing).
func doImport(ctx context.Context, cfg config, rep *importReport, clients []authsvc.ImportedClient, renumber bool) error {
	store, a, err := openAuthenticator(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("import-seed: open authd's store: %w", err)
	}
	defer store.Close()
	defer a.Close()
	rep.StoreInitialised = true
	for _, ic := range clients {
		row := importedRow{ClientID: ic.ID, ID: ic.RowID, IsAdmin: ic.IsAdmin, Result: resultImported}
		_, err := a.ImportClient(ctx, ic)
		if errors.Is(err, authsvc.ErrRowIDTaken) && renumber {
			keep := ic.RowID
			ic.RowID = 0
			var cl *authsvc.Client
			if cl, err = a.ImportClient(ctx, ic); err == nil {
				row.NewID, row.Reason = cl.RowID, fmt.Sprintf("new id: authd already has another client with id %d", keep)
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, authsvc.ErrRowIDTaken):
			row.Result, row.Reason = resultRowIDTaken, rowIDTakenReason("")
		case errors.Is(err, authsvc.ErrClientExists):
			row.Result, row.Reason = resultExists, "authd already has this client_id"
		case errors.Is(err, authsvc.ErrInvalidArgument), errors.Is(err, authsvc.ErrInvalidScope):
			row.Result, row.Reason = resultInvalid, err.Error()
		default:
			return fmt.Errorf("import-seed: stopped at client %q after importing %d: %w (run it again to finish: imported clients are skipped)", ic.ID, rep.Imported, err)
		}
		rep.count(row)
	}
	return nil
}

// printImportReport prints the report for people.
func printImportReport(w io.Writer, r *importReport) error {
	fmt.Fprintf(w, "Flask service database: %s\nauthd store:            %s\n", r.From, r.Into)
	if r.DryRun {
		fmt.Fprintln(w, "Dry run: nothing is written.")
		if !r.StoreInitialised {
			fmt.Fprintln(w, "authd's store has no tables yet: the import will apply its migrations and generate a signing key first.")
		}
	}
	fmt.Fprintln(w)
	if len(r.Clients) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RESULT\tCLIENT_ID\tID\tADMIN\tNOTE")
		for _, row := range r.Clients {
			result := strings.ReplaceAll(row.Result, "_", " ")
			if r.DryRun && row.Result == resultImported {
				result = "would import"
			}
			id := fmt.Sprint(row.ID)
			if row.NewID != 0 {
				id = fmt.Sprintf("%d→%d", row.ID, row.NewID)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\n", result, row.ClientID, id, row.IsAdmin, orDash(row.Reason))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	verb, skip := "imported", "skipped"
	if r.DryRun {
		verb, skip = "would import", "would skip"
	}
	fmt.Fprintf(w, "%s %d of %d clients; %s %d existing, %d invalid, %d with an id authd already uses.\n",
		verb, r.Imported, r.SeedClients, skip, r.SkippedExisting, r.SkippedInvalid, r.SkippedRowIDTaken)
	if r.BlacklistRows != nil {
		fmt.Fprintf(w, "%d blacklist rows need no import: authd does not accept tokens issued by the Flask service\n(they have no jti and no typ), so its clients simply get new tokens.\n", *r.BlacklistRows)
	}
	if r.Imported > 0 {
		fmt.Fprintln(w, "Imported clients log in with their old secrets; each SHA-1 hash is replaced with argon2id at the client's first login.")
	}
	return nil
}
