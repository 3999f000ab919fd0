// Package seedimport carries the Flask tutorial service's clients into
// authd's store, with their SHA-1 secret hashes (authsvc.ImportClient): it
// reads that service's database read-only, reports every row, and imports
// or, in a dry run, plans. `authd import-seed` is its command line.
package seedimport

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/jmoiron/sqlx"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/internal/dburl"
)

// Row is a row of the Flask service's clients table. Its columns are
// NOT NULL as the article creates them; the Null types let a hand-edited
// table be reported row by row instead of failing the whole import.
type Row struct {
	ID       int64          `db:"Id"`
	ClientID sql.NullString `db:"ClientId"`
	Secret   sql.NullString `db:"ClientSecret"`
	IsAdmin  sql.NullBool   `db:"IsAdmin"`
}

// Seed is what import-seed reads from the Flask service's database.
type Seed struct {
	Clients   []Row
	Blacklist *int // rows in blacklist; nil when there is no such table
}

// Import results, per client.
const (
	Imported   = "imported"
	Exists     = "exists"
	RowIDTaken = "row_id_taken"
	Invalid    = "invalid"
)

// Client is one seed client in the report. It never carries the hash.
type Client struct {
	ClientID string `json:"client_id"`
	ID       int64  `json:"id"`               // the seed's "Id"
	NewID    int64  `json:"new_id,omitempty"` // the id authd gave it instead (--renumber)
	IsAdmin  bool   `json:"is_admin"`
	Result   string `json:"result"`
	Reason   string `json:"reason,omitempty"`
}

// Report is import-seed's output (--json prints it as it is).
type Report struct {
	DryRun            bool     `json:"dry_run"`
	From              string   `json:"from"` // password redacted
	Into              string   `json:"into"`
	StoreInitialised  bool     `json:"store_initialised"`
	SeedClients       int      `json:"seed_clients"`
	Imported          int      `json:"imported"`
	SkippedExisting   int      `json:"skipped_existing"`
	SkippedRowIDTaken int      `json:"skipped_row_id_taken"`
	SkippedInvalid    int      `json:"skipped_invalid"`
	BlacklistRows     *int     `json:"blacklist_rows"`
	Clients           []Client `json:"clients"`
}

// NewReport starts the report of an import of seed from (a redacted URL)
// into into.
func NewReport(dryRun bool, from, into string, seed *Seed) *Report {
	return &Report{DryRun: dryRun, From: from, Into: into, SeedClients: len(seed.Clients),
		BlacklistRows: seed.Blacklist, Clients: []Client{}}
}

// Add counts rows in the report.
func (r *Report) Add(rows ...Client) {
	for _, row := range rows {
		r.count(row)
	}
}

func (r *Report) count(row Client) {
	switch row.Result {
	case Imported:
		r.Imported++
	case Exists:
		r.SkippedExisting++
	case RowIDTaken:
		r.SkippedRowIDTaken++
	case Invalid:
		r.SkippedInvalid++
	}
	r.Clients = append(r.Clients, row)
}

// Read reads the Flask service's clients and counts its blacklist, in
// one read-only snapshot: import-seed never writes to that database's
// tables. The SQL is constant.
func Read(ctx context.Context, url string) (*Seed, error) {
	where := dburl.Redact(url)
	// The driver's text may quote the URL, password and all.
	scrub := func(err error) error { return errors.New(dburl.Scrub(err.Error(), url)) }
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		return nil, fmt.Errorf("import-seed: open the Flask database %s: %w", where, scrub(err))
	}
	defer db.Close()
	tx, err := db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return nil, fmt.Errorf("import-seed: connect to the Flask database %s: %w", where, scrub(err))
	}
	defer tx.Rollback()
	d := &Seed{}
	err = tx.SelectContext(ctx, &d.Clients, `SELECT "Id", "ClientId", "ClientSecret", "IsAdmin" FROM clients ORDER BY "Id"`)
	switch sqlState(err) {
	case "":
	case "42P01": // undefined_table
		return nil, fmt.Errorf("import-seed: the database %s has no clients table: --from must name the Flask service's database", where)
	case "42703": // undefined_column
		return nil, fmt.Errorf(`import-seed: the clients table of %s lacks the Flask service's columns "Id", "ClientId", "ClientSecret", "IsAdmin"`, where)
	default:
		return nil, fmt.Errorf("import-seed: read the Flask service's clients from %s: %w", where, scrub(err))
	}
	var n int
	err = tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM blacklist`)
	switch sqlState(err) {
	case "":
		d.Blacklist = &n
	case "42P01": // no blacklist: nothing to report
	default:
		return nil, fmt.Errorf("import-seed: read the Flask service's blacklist from %s: %w", where, scrub(err))
	}
	return d, nil
}

// sqlState is the SQLSTATE of a PostgreSQL error, "" for nil and "?" for an
// error of another kind.
func sqlState(err error) string {
	if err == nil {
		return ""
	}
	var pe interface{ SQLState() string } // lib/pq's *pq.Error
	if errors.As(err, &pe) {
		return pe.SQLState()
	}
	return "?"
}

// Check splits the seed's rows into importable clients and invalid
// rows (with the reason), keeping the first of duplicated ClientIds (the
// shipped SQL has no unique constraint).
func Check(rows []Row) ([]authsvc.ImportedClient, []Client) {
	var valid []authsvc.ImportedClient
	var invalid []Client
	seen := map[string]int64{}
	for _, r := range rows {
		bad := func(reason string) {
			invalid = append(invalid, Client{ClientID: r.ClientID.String, ID: r.ID, IsAdmin: r.IsAdmin.Bool, Result: Invalid, Reason: reason})
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
				reason := authsvc.ErrorMessage(err)
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

// Plan fills the report of a dry run: it compares the seed's clients
// with authd's store without writing anything to it.
func Plan(ctx context.Context, storeURL string, rep *Report, clients []authsvc.ImportedClient, renumber bool) error {
	ids, initialised, err := authsvc.StoredClientIDs(ctx, storeURL)
	if err != nil {
		return fmt.Errorf("import-seed: read authd's store: %w", err)
	}
	rep.StoreInitialised = initialised
	byRowID := make(map[int64]string, len(ids))
	for id, row := range ids {
		byRowID[row] = id
	}
	for _, ic := range clients {
		row := Client{ClientID: ic.ID, ID: ic.RowID, IsAdmin: ic.IsAdmin, Result: Imported}
		if _, ok := ids[ic.ID]; ok {
			row.Result, row.Reason = Exists, "authd already has this client_id"
		} else if other, ok := byRowID[ic.RowID]; ok {
			if renumber {
				row.Reason = "gets a new id: authd's client " + fmt.Sprintf("%q", other) + " has this one"
			} else {
				row.Result, row.Reason = RowIDTaken, rowIDTakenReason(other)
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

// Import imports the clients into authd's store. It stops at the first
// store failure: what was imported stays, and running again finishes the
// job (imported clients are then skipped as existing).
func Import(ctx context.Context, a *authsvc.Authenticator, rep *Report, clients []authsvc.ImportedClient, renumber bool) error {
	rep.StoreInitialised = true
	for _, ic := range clients {
		row := Client{ClientID: ic.ID, ID: ic.RowID, IsAdmin: ic.IsAdmin, Result: Imported}
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
			row.Result, row.Reason = RowIDTaken, rowIDTakenReason("")
		case errors.Is(err, authsvc.ErrClientExists):
			row.Result, row.Reason = Exists, "authd already has this client_id"
		case errors.Is(err, authsvc.ErrInvalidArgument), errors.Is(err, authsvc.ErrInvalidScope):
			row.Result, row.Reason = Invalid, authsvc.ErrorMessage(err)
		default:
			return fmt.Errorf("import-seed: stopped at client %q after importing %d: %w (run it again to finish: imported clients are skipped)", ic.ID, rep.Imported, err)
		}
		rep.count(row)
	}
	return nil
}

// WriteText prints the report for people.
func (r *Report) WriteText(w io.Writer) error {
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
			if r.DryRun && row.Result == Imported {
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

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
