package main

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jmoiron/sqlx"

	"github.com/authsvc/authsvc/internal/testdb"
)

// flaskHash is how the Flask service stores a secret:
// hashlib.sha1(secret.encode()).hexdigest().
func flaskHash(secret string) string {
	sum := sha1.Sum([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// flaskClient is a row the test puts in the Flask service's clients table.
type flaskClient struct {
	clientID, secret string
	isAdmin          bool
	stored           string // ClientSecret as stored; "" means flaskHash(secret)
}

// flaskClients: an admin, a client whose secret is shorter than authd
// would accept today, an ordinary one, and a row someone filled by hand
// with a plaintext secret.
var flaskClients = []flaskClient{
	{clientID: "flask-admin", secret: "admin-secret-from-flask", isAdmin: true},
	{clientID: "billing", secret: "b1ll"},
	{clientID: "reports", secret: "reports-secret-2019"},
	{clientID: "handmade", secret: "plain-text-password", stored: "plain-text-password"},
}

// seedFlaskDB makes the Flask service's tables in the PostgreSQL database
// at dbURL and fills them as that service would. A row created and deleted
// first makes the ids start at 2, so that a kept id is told from a new one.
// It returns the "Id" of each client.
func seedFlaskDB(t *testing.T, dbURL string, schema string, clients []flaskClient) map[string]int64 {
	t.Helper()
	db, err := sqlx.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(schema); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO clients ("ClientId", "ClientSecret", "IsAdmin") VALUES ('gone', 'x', false)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM clients WHERE "ClientId" = 'gone'`); err != nil {
		t.Fatal(err)
	}
	ids := map[string]int64{}
	for _, c := range clients {
		stored := c.stored
		if stored == "" {
			stored = flaskHash(c.secret)
		}
		var id int64
		if err := db.Get(&id, `INSERT INTO clients ("ClientId", "ClientSecret", "IsAdmin") VALUES ($1, $2, $3) RETURNING "Id"`,
			c.clientID, stored, c.isAdmin); err != nil {
			t.Fatal(err)
		}
		ids[c.clientID] = id
	}
	for _, tok := range []string{"eyJhbGciOiJIUzI1NiJ9.eyJpZCI6Mn0.a", "eyJhbGciOiJIUzI1NiJ9.eyJpZCI6M30.b"} {
		if _, err := db.Exec(`INSERT INTO blacklist (token) VALUES ($1)`, tok); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// flaskTables counts the rows of the Flask service's tables.
func flaskTables(t *testing.T, dbURL string) (clients, blacklist int) {
	t.Helper()
	db, err := sqlx.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Get(&clients, `SELECT COUNT(*) FROM clients`); err != nil {
		t.Fatal(err)
	}
	if err := db.Get(&blacklist, `SELECT COUNT(*) FROM blacklist`); err != nil {
		t.Fatal(err)
	}
	return clients, blacklist
}

// authdTables counts authd's tables in a PostgreSQL database.
func authdTables(t *testing.T, dbURL string) int {
	t.Helper()
	db, err := sqlx.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.Get(&n, `SELECT COUNT(*) FROM pg_tables WHERE tablename LIKE 'authsvc\_%'`); err != nil {
		t.Fatal(err)
	}
	return n
}

// importSeed runs import-seed --json with args and decodes its report.
func importSeed(t *testing.T, args ...string) importReport {
	t.Helper()
	var rep importReport
	okJSON(t, &rep, append([]string{"import-seed", "--json"}, args...)...)
	return rep
}

func checkCounts(t *testing.T, what string, r importReport, imported, existing, invalid, taken int) {
	t.Helper()
	if r.Imported != imported || r.SkippedExisting != existing || r.SkippedInvalid != invalid || r.SkippedRowIDTaken != taken ||
		r.SeedClients != len(r.Clients) || r.BlacklistRows == nil || *r.BlacklistRows != 2 {
		t.Fatalf("%s: imported %d, existing %d, invalid %d, row id taken %d, of %d (%d listed), blacklist %v; want %d, %d, %d, %d\n%+v",
			what, r.Imported, r.SkippedExisting, r.SkippedInvalid, r.SkippedRowIDTaken, r.SeedClients, len(r.Clients), r.BlacklistRows,
			imported, existing, invalid, taken, r.Clients)
	}
}

// payload decodes a JWT's claims without verifying it (the server did).
func payload(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestImportSeed is the migration an operator makes: the Flask service's
// database, one import-seed, and its clients get tokens from /auth and
// /oauth/token with their old secrets; their hashes are then modern. Its
// steps run in order on one store, each from where the one before left it.
func TestImportSeed(t *testing.T) {
	for _, target := range []string{"sqlite", "same postgres"} {
		t.Run(target, func(t *testing.T) {
			flaskURL := testdb.Postgres(t)
			ids := seedFlaskDB(t, flaskURL, testdb.FlaskSchema, flaskClients)
			storeURL := flaskURL // authd's tables beside the Flask service's
			if target == "sqlite" {
				storeURL = testdb.SQLite(t)
			}
			cliEnv(t, storeURL)
			ctx := context.Background()

			// A dry run reports and writes nothing, not even authd's schema.
			step(t, "dry run --json", func(t *testing.T) {
				dry := importSeed(t, "--from", flaskURL, "--dry-run")
				checkCounts(t, "dry run", dry, 3, 0, 1, 0)
				if !dry.DryRun || dry.StoreInitialised {
					t.Fatalf("dry run report: %+v", dry)
				}
				if target == "sqlite" {
					if _, err := os.Stat(strings.TrimPrefix(storeURL, "sqlite:")); !os.IsNotExist(err) {
						t.Fatalf("dry run created the SQLite store: %v", err)
					}
				} else if n := authdTables(t, storeURL); n != 0 {
					t.Fatalf("dry run created %d authd tables", n)
				}
			})
			step(t, "dry run", func(t *testing.T) {
				text := ok(t, "import-seed", "--dry-run", "--from", flaskURL)
				for _, want := range []string{"Dry run: nothing is written", "would import", "would import 3 of 4 clients", "2 blacklist rows need no import", "no tables yet"} {
					if !strings.Contains(text, want) {
						t.Errorf("dry run report lacks %q:\n%s", want, text)
					}
				}
			})

			step(t, "import --json", func(t *testing.T) {
				rep := importSeed(t, "--from", flaskURL)
				checkCounts(t, "import", rep, 3, 0, 1, 0)
				for _, row := range rep.Clients {
					if row.ID != ids[row.ClientID] || row.NewID != 0 {
						t.Errorf("%s: id %d (new %d), want the seed's %d", row.ClientID, row.ID, row.NewID, ids[row.ClientID])
					}
					want := resultImported
					if row.ClientID == "handmade" {
						want = resultInvalid
						if !strings.Contains(row.Reason, "40 hex digits") {
							t.Errorf("invalid row's reason: %q", row.Reason)
						}
					}
					if row.Result != want {
						t.Errorf("%s: %s (%s), want %s", row.ClientID, row.Result, row.Reason, want)
					}
				}
				if raw, _ := json.Marshal(rep); strings.Contains(string(raw), "plain-text-password") || strings.Contains(string(raw), flaskHash("b1ll")) {
					t.Fatal("the report shows a stored secret or hash")
				}
				if c, b := flaskTables(t, flaskURL); c != 4 || b != 2 {
					t.Fatalf("the Flask tables changed: %d clients, %d blacklist rows", c, b)
				}
			})

			ts := newTestServer(t, storeURL)
			step(t, "legacy hashes kept", func(t *testing.T) {
				for _, c := range flaskClients[:2] {
					if hash := testdb.SecretHash(t, storeURL, c.clientID); hash != "$sha1$"+flaskHash(c.secret) {
						t.Fatalf("%s stored as %.10q…; want the legacy $sha1$ hash", c.clientID, hash)
					}
				}
			})
			// /auth, the Flask route, with the old admin secret.
			step(t, "auth endpoint with the Flask secret", func(t *testing.T) {
				ts := ts.withT(t)
				expect(t, "/auth wrong secret", ts.form("/auth", url.Values{"client_id": {"flask-admin"}, "client_secret": {"nope"}}, ""), 401)
				r := ts.form("/auth", url.Values{"client_id": {"flask-admin"}, "client_secret": {"admin-secret-from-flask"}}, "")
				expect(t, "/auth", r, 200)
				claims := payload(t, r.body["token"].(string))
				if claims["id"] != float64(ids["flask-admin"]) || claims["isAdmin"] != true || claims["clientId"] != "flask-admin" || r.body["isAdmin"] != true {
					t.Fatalf("/auth token claims %v, body %s", claims, r.raw)
				}
				expect(t, "/verify", ts.form("/verify", nil, r.body["token"].(string)), 200)
				// The imported admin manages clients over HTTP.
				expect(t, "GET /clients as the imported admin", ts.do("GET", "/clients", "", "", map[string]string{"Authorization": "Bearer " + r.body["token"].(string)}), 200)
			})
			// /oauth/token with HTTP Basic, with a secret shorter than today's minimum.
			step(t, "oauth token endpoint with a short Flask secret", func(t *testing.T) {
				ts := ts.withT(t)
				o := ts.do("POST", "/oauth/token", form, "grant_type=client_credentials", map[string]string{"Authorization": basicAuth("billing", "b1ll")})
				if o.status != 200 {
					t.Fatalf("/oauth/token: %d %s", o.status, o.raw)
				}
				claims := payload(t, o.body["access_token"].(string))
				if claims["id"] != float64(ids["billing"]) || claims["isAdmin"] != false || claims["sub"] != "billing" {
					t.Fatalf("/oauth/token claims %v", claims)
				}
			})
			// After a login the hash is modern, and the old secret still works.
			step(t, "hashes upgraded on login", func(t *testing.T) {
				ts := ts.withT(t)
				for _, c := range flaskClients[:2] {
					if hash := testdb.SecretHash(t, storeURL, c.clientID); !strings.HasPrefix(hash, "$argon2id$") {
						t.Fatalf("%s after login: %.12q…; want argon2id", c.clientID, hash)
					}
				}
				ts.token("flask-admin", "admin-secret-from-flask")
				// A client that has not logged in yet keeps its legacy hash.
				if hash := testdb.SecretHash(t, storeURL, "reports"); !strings.HasPrefix(hash, "$sha1$") {
					t.Fatalf("reports: %.12q…", hash)
				}
				ts.token("reports", "reports-secret-2019")
			})

			// Again: nothing imported, everything reported, exit 0.
			step(t, "import again --json", func(t *testing.T) {
				again := importSeed(t, "--from", flaskURL)
				checkCounts(t, "second import", again, 0, 3, 1, 0)
				if c, _ := ts.auth.Clients(ctx); len(c) != 4 { // 3 imported + the test server's admin
					t.Fatalf("%d clients after a second import", len(c))
				}
			})
			// The dry run now sees them too, and writes nothing.
			step(t, "dry run after import", func(t *testing.T) {
				last := testdb.LastChange(t, storeURL)
				dry := importSeed(t, "--from", flaskURL, "--dry-run")
				if now := testdb.LastChange(t, storeURL); now != last {
					t.Fatalf("a dry run wrote to authd's store: change %d → %d", last, now)
				}
				checkCounts(t, "dry run after import", dry, 0, 3, 1, 0)
				if !dry.StoreInitialised {
					t.Fatal("dry run does not see the store")
				}
			})
			step(t, "imported clients untouched", func(t *testing.T) {
				if hash := testdb.SecretHash(t, storeURL, "billing"); !strings.HasPrefix(hash, "$argon2id$") {
					t.Fatal("a second import touched an imported client")
				}
			})
			step(t, "import again", func(t *testing.T) {
				text := ok(t, "import-seed", "--from", flaskURL)
				for _, want := range []string{"imported 0 of 4 clients; skipped 3 existing, 1 invalid", "exists", "handmade", "2 blacklist rows need no import"} {
					if !strings.Contains(text, want) {
						t.Errorf("report lacks %q:\n%s", want, text)
					}
				}
			})
			// New clients get ids past the imported ones.
			step(t, "new client after import", func(t *testing.T) {
				ts := ts.withT(t)
				id, _ := ts.createClient(url.Values{"client_id": {"new-after-import"}})
				c, _ := ts.auth.Client(ctx, id)
				if c.RowID <= ids["handmade"] {
					t.Fatalf("new client id %d collides with the imported range", c.RowID)
				}
			})
		})
	}
}

// TestImportSeedFlaskDotenv: the operator keeps the Flask service's .env
// and runs `authd import-seed` with no flag: the Flask database is both the
// source and authd's store, and the server started from the same .env
// signs HS256 tokens with AUTHSECRET that the old clients get with their
// old secrets.
func TestImportSeedFlaskDotenv(t *testing.T) {
	flaskURL := testdb.Postgres(t)
	ids := seedFlaskDB(t, flaskURL, testdb.FlaskSchema, flaskClients)
	u, err := url.Parse(flaskURL)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	cliEnv(t, "")
	os.Unsetenv("AUTHSVC_DATABASE_URL")
	dotenv := "DBNAME=" + strings.TrimPrefix(u.Path, "/") + "\nDBUSER=" + u.User.Username() + "\nDBPASSWORD=" + pw +
		"\nDBHOST=" + u.Hostname() + "\nDBPORT=" + u.Port() + "\nDBSSLMODE=disable\nAUTHSECRET=" + seedSecret + "\nEXPIRESSECONDS=3000 \n"
	if err := os.WriteFile(".env", []byte(dotenv), 0o600); err != nil {
		t.Fatal(err)
	}
	rep := importSeed(t)
	checkCounts(t, "import", rep, 3, 0, 1, 0)
	if !strings.Contains(rep.From, "/"+strings.TrimPrefix(u.Path, "/")) || rep.From != rep.Into {
		t.Fatalf("from %s into %s: want the .env's database for both", rep.From, rep.Into)
	}
	if n := authdTables(t, flaskURL); n == 0 {
		t.Fatal("no authd tables in the Flask database")
	}

	cfg, err := loadConfig(".env")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = "127.0.0.1:0"
	ap, _ := serveForTest(t, cfg, io.Discard)
	resp, err := http.PostForm("http://"+ap.ln.Addr().String()+"/auth", url.Values{"client_id": {"flask-admin"}, "client_secret": {"admin-secret-from-flask"}})
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 200 || body["expiresin"] != "3000" || body["isAdmin"] != true {
		t.Fatalf("/auth: %d %v", resp.StatusCode, body)
	}
	// Signed HS256 with the .env's AUTHSECRET, carrying the Flask "Id".
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(body["token"].(string), claims, func(*jwt.Token) (any, error) { return []byte(seedSecret), nil },
		jwt.WithValidMethods([]string{"HS256"})); err != nil {
		t.Fatalf("token does not verify with AUTHSECRET: %v", err)
	}
	if claims["id"] != float64(ids["flask-admin"]) {
		t.Fatalf("id claim %v, want %d", claims["id"], ids["flask-admin"])
	}
}

// TestImportSeedRowIDTaken: authd already has a client on one of the
// Flask ids (the operator made an admin before importing). That client is
// reported and skipped; --renumber imports it with a new id.
func TestImportSeedRowIDTaken(t *testing.T) {
	flaskURL := testdb.Postgres(t)
	ids := seedFlaskDB(t, flaskURL, testdb.FlaskSchema, flaskClients[:2])
	storeURL := testdb.SQLite(t)
	cliEnv(t, storeURL)
	// Ids 1 and 2 in authd: 2 is the Flask admin's.
	ok(t, "client", "create", "--id", "first")
	ok(t, "client", "create", "--id", "second")

	dry := importSeed(t, "--from", flaskURL, "--dry-run")
	if dry.Imported != 1 || dry.SkippedRowIDTaken != 1 || dry.Clients[0].ClientID != "flask-admin" || dry.Clients[0].Result != resultRowIDTaken ||
		!strings.Contains(dry.Clients[0].Reason, `"second"`) {
		t.Fatalf("dry run: %+v", dry)
	}
	rep := importSeed(t, "--from", flaskURL)
	if rep.Imported != 1 || rep.SkippedRowIDTaken != 1 || rep.Clients[0].Result != resultRowIDTaken || !strings.Contains(rep.Clients[0].Reason, "--renumber") {
		t.Fatalf("import: %+v", rep)
	}
	text := ok(t, "import-seed", "--from", flaskURL)
	if !strings.Contains(text, "row id taken") || !strings.Contains(text, "1 with an id authd already uses") {
		t.Fatalf("report:\n%s", text)
	}

	rep = importSeed(t, "--from", flaskURL, "--renumber")
	if rep.Imported != 1 || rep.SkippedExisting != 1 || rep.Clients[0].ClientID != "flask-admin" || rep.Clients[0].NewID <= ids["billing"] {
		t.Fatalf("--renumber: %+v", rep)
	}
	ts := newTestServer(t, storeURL)
	tok := ts.token("flask-admin", "admin-secret-from-flask")
	if claims := payload(t, tok); claims["id"] != float64(rep.Clients[0].NewID) || claims["isAdmin"] != true {
		t.Fatalf("renumbered client's claims %v", claims)
	}
}

// TestImportSeedShippedSchema: the Flask service's shipped SQL has no
// unique constraint on "ClientId": a duplicated client is reported, and
// the first (lowest "Id") imported.
func TestImportSeedShippedSchema(t *testing.T) {
	flaskURL := testdb.Postgres(t)
	shipped := strings.Replace(testdb.FlaskSchema, `NOT NULL UNIQUE`, `NOT NULL`, 1)
	ids := seedFlaskDB(t, flaskURL, shipped, []flaskClient{
		{clientID: "dup", secret: "first-secret"},
		{clientID: "dup", secret: "second-secret"},
		// Upper-case hex, as a hand-made row might have it.
		{clientID: "upper", secret: "upper-secret", stored: strings.ToUpper(flaskHash("upper-secret"))},
	})
	storeURL := testdb.SQLite(t)
	cliEnv(t, storeURL)
	rep := importSeed(t, "--from", flaskURL)
	checkCounts(t, "import", rep, 2, 0, 1, 0)
	for _, row := range rep.Clients {
		if row.Result == resultInvalid && (row.ClientID != "dup" || !strings.Contains(row.Reason, "duplicate")) {
			t.Fatalf("invalid row: %+v", row)
		}
	}
	ts := newTestServer(t, storeURL)
	ts.token("dup", "first-secret")
	ts.token("upper", "upper-secret")
	expect(t, "the duplicate's secret", ts.form("/auth", url.Values{"client_id": {"dup"}, "client_secret": {"second-secret"}}, ""), 401)
	c, err := ts.auth.Client(context.Background(), "dup")
	if err != nil || c.RowID != 2 || ids["upper"] != 4 {
		t.Fatalf("dup imported as %+v, %v (ids %v)", c, err, ids)
	}
}

func TestImportSeedErrors(t *testing.T) {
	cliEnv(t, testdb.SQLite(t))
	empty := testdb.Postgres(t)
	fails(t, 1, "has no clients table: --from must name the Flask service's database", "import-seed", "--from", empty)
	db, err := sqlx.Open("postgres", empty)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE clients (id integer, name text)`); err != nil {
		t.Fatal(err)
	}
	fails(t, 1, `lacks the Flask service's columns "Id", "ClientId", "ClientSecret", "IsAdmin"`, "import-seed", "--from", empty)

	// Without a blacklist table the clients still import.
	noBlacklist := testdb.Postgres(t)
	seedFlaskDB(t, noBlacklist, testdb.FlaskSchema, flaskClients[:1])
	nb := sqlx.MustOpen("postgres", noBlacklist)
	defer nb.Close()
	if _, err := nb.Exec(`DROP TABLE blacklist`); err != nil {
		t.Fatal(err)
	}
	var rep importReport
	okJSON(t, &rep, "import-seed", "--from", noBlacklist, "--json")
	if rep.Imported != 1 || rep.BlacklistRows != nil {
		t.Fatalf("without blacklist: %+v", rep)
	}
	if out := ok(t, "import-seed", "--from", noBlacklist); strings.Contains(out, "blacklist") {
		t.Fatalf("reports a blacklist that is not there:\n%s", out)
	}

	r := fails(t, 1, "import-seed: connect to the Flask database", "import-seed", "--from", "postgres://flask:hunter2pw@127.0.0.1:1/authdb?sslmode=disable&connect_timeout=2")
	if strings.Contains(r.stderr, "hunter2pw") {
		t.Fatalf("the password leaks: %s", r.stderr)
	}
	// authd's own store unreachable: the seed is read, nothing imported.
	t.Setenv("AUTHSVC_DATABASE_URL", "sqlite:"+filepath.Join(t.TempDir(), "no", "such", "dir", "authd.db"))
	r = authd(t, "", "import-seed", "--from", noBlacklist)
	if r.code != 1 || !strings.Contains(r.stderr, "import-seed: open authd's store") {
		t.Fatalf("store unreachable: %+v", r)
	}
}
