package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/authsvc/authsvc/authhttp"
)

// seedSecret is a 40-byte AUTHSECRET like the seed's sample .env.
const seedSecret = "0123456789abcdefghijklmnopqrstuvwxyzABCD"

// seedDotenv is the seed service's sample .env, byte for byte (note the trailing space after 3000).
const seedDotenv = "DBNAME=authdb\nDBUSER=authuser\nDBPASSWORD=p@ss:w/rd\nAUTHSECRET=" + seedSecret + "\nEXPIRESSECONDS=3000 \n"

// clearEnv unsets every variable loadConfig reads, plus the bare names envconfig would fall back to, so a
// test sees neither the developer's environment nor what an earlier test's .env put into the process.
// t.Setenv registers the restore; the Unsetenv matters because envconfig treats set-but-empty as a value
// (no default applied, and a parse error for durations).
func clearEnv(t *testing.T) {
	t.Helper()
	names := []string{"DBNAME", "DBUSER", "DBPASSWORD", "DBHOST", "DBPORT", "DBSSLMODE", "AUTHSECRET", "EXPIRESSECONDS"}
	ct := reflect.TypeFor[config]()
	for i := range ct.NumField() {
		tag := ct.Field(i).Tag.Get("envconfig")
		names = append(names, "AUTHSVC_"+tag, tag)
	}
	for _, k := range names {
		t.Setenv(k, "")
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
}

func setEnv(t *testing.T, vars map[string]string) {
	t.Helper()
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

// writeDotenv writes content to a .env file in a fresh directory and returns its path.
func writeDotenv(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), ".env")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoad(t *testing.T, dotenvPath string) config {
	t.Helper()
	c, err := loadConfig(dotenvPath)
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	return c
}

func TestLoadConfigDefaults(t *testing.T) {
	want := config{
		Addr:                 "127.0.0.1:5000",
		DatabaseURL:          "sqlite:authd.db",
		Issuer:               "http://127.0.0.1:5000",
		TokenTTL:             time.Hour,
		SigningAlg:           "EdDSA",
		LogFormat:            "json",
		LogLevel:             "info",
		ShutdownTimeout:      15 * time.Second,
		JWKSMaxAge:           5 * time.Minute,
		PollInterval:         time.Second,
		MaxStaleness:         30 * time.Second,
		StoreTimeout:         5 * time.Second,
		MaxRevocations:       10000,
		MaxChanges:           1000000,
		ClientCache:          100000,
		AssertionMaxLifetime: 5 * time.Minute,
		Throttle:             "on",
		AdminConsole:         "on",
		TLSSelfSignedClients: "off",
		DPoPNonce:            "off",
		DPoPReplay:           "process",
	}
	tests := []struct {
		name   string
		dotenv func(t *testing.T) string
	}{
		{"no dotenv", func(*testing.T) string { return "" }},
		{"missing dotenv", func(t *testing.T) string { return filepath.Join(t.TempDir(), ".env") }},
		{"empty dotenv", func(t *testing.T) string { return writeDotenv(t, "") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			if got := mustLoad(t, tt.dotenv(t)); got != want {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestLoadConfigSeedDotenv(t *testing.T) {
	clearEnv(t)
	c := mustLoad(t, writeDotenv(t, seedDotenv))

	if c.SigningAlg != "HS256" || c.HMACSecret != seedSecret {
		t.Errorf("SigningAlg, HMACSecret = %q, %q; want HS256 and AUTHSECRET", c.SigningAlg, c.HMACSecret)
	}
	if c.TokenTTL != 3000*time.Second {
		t.Errorf("TokenTTL = %v, want 50m0s", c.TokenTTL)
	}
	u, err := url.Parse(c.DatabaseURL)
	if err != nil {
		t.Fatalf("DatabaseURL does not parse: %v", err)
	}
	pw, _ := u.User.Password()
	if u.Scheme != "postgres" || u.User.Username() != "authuser" || pw != "p@ss:w/rd" || u.Path != "/authdb" {
		t.Errorf("DatabaseURL %q: scheme %q user %q password %q path %q", c.DatabaseURL, u.Scheme, u.User.Username(), pw, u.Path)
	}
	if got := u.Query().Get("sslmode"); got != "prefer" {
		t.Errorf("sslmode = %q, want prefer", got)
	}
	// No DBHOST: libpq's default, the socket directory when this machine has one, else localhost.
	if fi, err := os.Stat(pgSocketDir); err == nil && fi.IsDir() {
		if u.Host != "" || u.Query().Get("host") != pgSocketDir {
			t.Errorf("DatabaseURL %q: want socket host %s", c.DatabaseURL, pgSocketDir)
		}
	} else if u.Host != "localhost:5432" {
		t.Errorf("DatabaseURL %q: host %q, want localhost:5432", c.DatabaseURL, u.Host)
	}

	// lib/pq is what will read the URL.
	pc, err := pq.NewConfig(c.DatabaseURL)
	if err != nil {
		t.Fatalf("lib/pq rejects %q: %v", c.DatabaseURL, err)
	}
	if pc.User != "authuser" || pc.Password != "p@ss:w/rd" || pc.Database != "authdb" {
		t.Errorf("lib/pq reads user %q password %q dbname %q", pc.User, pc.Password, pc.Database)
	}
}

func TestSeedDatabaseURL(t *testing.T) {
	socketDir := t.TempDir()
	noSocketDir := filepath.Join(socketDir, "missing")
	tests := []struct {
		name      string
		env       map[string]string
		socketDir string
		// what lib/pq makes of the URL
		host, dbname, user, password, sslmode string
		port                                  uint16
	}{
		{
			name:      "libpq default socket directory",
			env:       map[string]string{"DBNAME": "authdb", "DBUSER": "u", "DBPASSWORD": "p w@/:?#%"},
			socketDir: socketDir,
			host:      socketDir, port: 5432, dbname: "authdb", user: "u", password: "p w@/:?#%", sslmode: "disable", // lib/pq: no TLS on sockets
		},
		{
			name:      "no socket directory falls back to localhost",
			env:       map[string]string{"DBNAME": "authdb", "DBUSER": "u"},
			socketDir: noSocketDir,
			host:      "localhost", port: 5432, dbname: "authdb", user: "u", sslmode: "prefer",
		},
		{
			name:      "explicit host, port and sslmode",
			env:       map[string]string{"DBNAME": "authdb", "DBUSER": "u", "DBPASSWORD": "pw", "DBHOST": "db.example.com", "DBPORT": " 6543 ", "DBSSLMODE": "verify-full"},
			socketDir: socketDir,
			host:      "db.example.com", port: 6543, dbname: "authdb", user: "u", password: "pw", sslmode: "verify-full",
		},
		{
			name:      "IPv6 host",
			env:       map[string]string{"DBNAME": "authdb", "DBUSER": "u", "DBHOST": "::1"},
			socketDir: socketDir,
			host:      "::1", port: 5432, dbname: "authdb", user: "u", sslmode: "prefer",
		},
		{
			name:      "socket DBHOST with port",
			env:       map[string]string{"DBNAME": "authdb", "DBUSER": "u", "DBHOST": "/run/pg", "DBPORT": "5433"},
			socketDir: noSocketDir,
			host:      "/run/pg", port: 5433, dbname: "authdb", user: "u", sslmode: "disable",
		},
		{
			name:      "awkward database name",
			env:       map[string]string{"DBNAME": "my db/x?y#z%", "DBUSER": "u", "DBHOST": "h"},
			socketDir: socketDir,
			host:      "h", port: 5432, dbname: "my db/x?y#z%", user: "u", sslmode: "prefer",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			setEnv(t, tt.env)
			s, err := seedDatabaseURL(tt.socketDir)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(s)
			if err != nil {
				t.Fatalf("%q does not parse: %v", s, err)
			}
			if pw, _ := u.User.Password(); u.User.Username() != tt.user || pw != tt.password {
				t.Errorf("%q: url.Parse gives user %q password %q", s, u.User.Username(), pw)
			}
			pc, err := pq.NewConfig(s)
			if err != nil {
				t.Fatalf("lib/pq rejects %q: %v", s, err)
			}
			const format = "host %q port %d dbname %q user %q password %q sslmode %q"
			got := fmt.Sprintf(format, pc.Host, pc.Port, pc.Database, pc.User, pc.Password, pc.SSLMode)
			want := fmt.Sprintf(format, tt.host, tt.port, tt.dbname, tt.user, tt.password, tt.sslmode)
			if got != want {
				t.Errorf("%q: lib/pq reads %q, want %q", s, got, want)
			}
		})
	}

	t.Run("no DBNAME", func(t *testing.T) {
		clearEnv(t)
		setEnv(t, map[string]string{"DBUSER": "u", "DBPASSWORD": "pw"})
		if s, err := seedDatabaseURL(socketDir); s != "" || err != nil {
			t.Errorf("got %q, %v; want no URL", s, err)
		}
	})
}

// The seed's sample .env writes "EXPIRESSECONDS=3000 ", and a shell or container may pass the space on.
func TestExpiresSecondsFromEnvironment(t *testing.T) {
	for in, want := range map[string]time.Duration{" 3000 ": 3000 * time.Second, "1": time.Second, "31536000": 365 * 24 * time.Hour} {
		t.Run(in, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("EXPIRESSECONDS", in)
			if got := mustLoad(t, "").TokenTTL; got != want {
				t.Errorf("TokenTTL = %v, want %v", got, want)
			}
		})
	}
}

func TestAuthsvcWinsOverSeed(t *testing.T) {
	authsvc := map[string]string{
		"AUTHSVC_DATABASE_URL": "postgres://svc@db.internal/authsvc",
		"AUTHSVC_HMAC_SECRET":  strings.Repeat("s", 48),
		"AUTHSVC_TOKEN_TTL":    "10m",
		"AUTHSVC_SIGNING_ALG":  "ES256",
	}
	// A broken seed value does not matter once its AUTHSVC_ twin is set.
	seed := seedDotenv + "DBPORT=not-a-port\nEXPIRESSECONDS=never\n"
	check := func(t *testing.T, c config) {
		t.Helper()
		if c.DatabaseURL != authsvc["AUTHSVC_DATABASE_URL"] || c.HMACSecret != authsvc["AUTHSVC_HMAC_SECRET"] ||
			c.TokenTTL != 10*time.Minute || c.SigningAlg != "ES256" {
			t.Errorf("seed won: %+v", c)
		}
	}
	t.Run("AUTHSVC_ in environment", func(t *testing.T) {
		clearEnv(t)
		setEnv(t, authsvc)
		check(t, mustLoad(t, writeDotenv(t, seed)))
	})
	t.Run("both in one dotenv", func(t *testing.T) {
		clearEnv(t)
		var b strings.Builder
		for k, v := range authsvc {
			fmt.Fprintf(&b, "%s=%s\n", k, v)
		}
		// AUTHSVC_ lines first and last, so line order cannot be what decides.
		check(t, mustLoad(t, writeDotenv(t, b.String()+seed+b.String())))
	})
	t.Run("seed secret with explicit algorithm", func(t *testing.T) {
		clearEnv(t)
		t.Setenv("AUTHSVC_SIGNING_ALG", "EdDSA")
		c := mustLoad(t, writeDotenv(t, seedDotenv))
		if c.SigningAlg != "EdDSA" {
			t.Errorf("SigningAlg = %q, want the explicit EdDSA", c.SigningAlg)
		}
	})
}

func TestDotenvDoesNotOverrideEnvironment(t *testing.T) {
	clearEnv(t)
	t.Setenv("AUTHSVC_LOG_LEVEL", "debug")
	t.Setenv("DBNAME", "") // set but empty still counts as set
	c := mustLoad(t, writeDotenv(t, "AUTHSVC_LOG_LEVEL=warn\nDBNAME=fromfile\nAUTHSVC_LOG_FORMAT=text\n"))
	if c.LogLevel != "debug" {
		t.Errorf("LogLevel = %q, want debug from the environment", c.LogLevel)
	}
	if c.DatabaseURL != "sqlite:authd.db" || os.Getenv("DBNAME") != "" {
		t.Errorf("DBNAME from .env replaced the empty one: DatabaseURL %q", c.DatabaseURL)
	}
	if c.LogFormat != "text" || os.Getenv("AUTHSVC_LOG_FORMAT") != "text" {
		t.Errorf("variables only in .env were not loaded: LogFormat %q", c.LogFormat)
	}
}

// envconfig on its own would read ADDR, DATABASE_URL, LOG_LEVEL... when the AUTHSVC_ variable is unset.
func TestBareNamesIgnored(t *testing.T) {
	clearEnv(t)
	setEnv(t, map[string]string{
		"ADDR":         "bad",
		"DATABASE_URL": "postgres://someone-else/db",
		"TOKEN_TTL":    "garbage",
		"HMAC_SECRET":  "short",
		"LOG_LEVEL":    "trace",
		"LOG_FORMAT":   "xml",
	})
	c := mustLoad(t, "")
	if c.Addr != "127.0.0.1:5000" || c.DatabaseURL != "sqlite:authd.db" || c.HMACSecret != "" || c.LogLevel != "info" || c.LogFormat != "json" {
		t.Errorf("bare variables leaked in: %+v", c)
	}
}

func TestHMACSecretTooShort(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		dotenv string
		secret string // must not appear in the error
		want   []string
	}{
		{
			name:   "seed AUTHSECRET from dotenv",
			dotenv: "DBNAME=authdb\nAUTHSECRET=tutorial-secret\n",
			secret: "tutorial-secret",
			want:   []string{"AUTHSECRET", "too short", "15 bytes", "at least 32 bytes"},
		},
		{
			name:   "AUTHSVC_HMAC_SECRET",
			env:    map[string]string{"AUTHSVC_HMAC_SECRET": "tutorial-secret", "AUTHSVC_SIGNING_ALG": "HS256"},
			secret: "tutorial-secret",
			want:   []string{"AUTHSVC_HMAC_SECRET", "too short", "15 bytes", "at least 32 bytes"},
		},
		{
			name:   "one byte short",
			env:    map[string]string{"AUTHSECRET": "abcdefghijklmnopqrstuvwxyz01234"},
			secret: "abcdefghijklmnopqrstuvwxyz01234",
			want:   []string{"AUTHSECRET", "too short", "31 bytes", "at least 32 bytes"},
		},
		{
			name: "HS256 without any secret",
			env:  map[string]string{"AUTHSVC_SIGNING_ALG": "HS256"},
			want: []string{"AUTHSVC_HMAC_SECRET", "AUTHSECRET", "32 bytes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			setEnv(t, tt.env)
			path := ""
			if tt.dotenv != "" {
				path = writeDotenv(t, tt.dotenv)
			}
			_, err := loadConfig(path)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
				t.Errorf("error %q echoes the secret", err)
			}
		})
	}

	t.Run("exactly 32 bytes is enough", func(t *testing.T) {
		clearEnv(t)
		t.Setenv("AUTHSECRET", strings.Repeat("x", 32))
		if c := mustLoad(t, ""); c.SigningAlg != "HS256" {
			t.Errorf("SigningAlg = %q", c.SigningAlg)
		}
	})
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string // the variable the error must name
	}{
		{map[string]string{"EXPIRESSECONDS": "abc"}, "EXPIRESSECONDS"},
		{map[string]string{"EXPIRESSECONDS": "0"}, "EXPIRESSECONDS"},
		{map[string]string{"EXPIRESSECONDS": "-5"}, "EXPIRESSECONDS"},
		{map[string]string{"EXPIRESSECONDS": "31536001"}, "EXPIRESSECONDS"},
		{map[string]string{"EXPIRESSECONDS": "3000s"}, "EXPIRESSECONDS"},
		{map[string]string{"EXPIRESSECONDS": "1.5"}, "EXPIRESSECONDS"},
		{map[string]string{"DBNAME": "d", "DBPORT": "0"}, "DBPORT"},
		{map[string]string{"DBNAME": "d", "DBPORT": "65536"}, "DBPORT"},
		{map[string]string{"DBNAME": "d", "DBPORT": "-1"}, "DBPORT"},
		{map[string]string{"DBNAME": "d", "DBPORT": "postgres"}, "DBPORT"},
		{map[string]string{"DBNAME": "d", "DBSSLMODE": "on"}, "DBSSLMODE"},
		{map[string]string{"AUTHSVC_TOKEN_TTL": "0s"}, "AUTHSVC_TOKEN_TTL"},
		{map[string]string{"AUTHSVC_TOKEN_TTL": "-1m"}, "AUTHSVC_TOKEN_TTL"},
		{map[string]string{"AUTHSVC_TOKEN_TTL": "8761h"}, "AUTHSVC_TOKEN_TTL"},
		{map[string]string{"AUTHSVC_TOKEN_TTL": "3000"}, "AUTHSVC_TOKEN_TTL"},
		{map[string]string{"AUTHSVC_TOKEN_TTL": ""}, "AUTHSVC_TOKEN_TTL"}, // envconfig: set-empty is a value
		{map[string]string{"AUTHSVC_SHUTDOWN_TIMEOUT": "0s"}, "AUTHSVC_SHUTDOWN_TIMEOUT"},
		{map[string]string{"AUTHSVC_STORE_TIMEOUT": "0s"}, "AUTHSVC_STORE_TIMEOUT"},
		{map[string]string{"AUTHSVC_MAX_REVOCATIONS_PER_CLIENT": "0"}, "AUTHSVC_MAX_REVOCATIONS_PER_CLIENT"},
		{map[string]string{"AUTHSVC_MAX_CHANGES": "-1"}, "AUTHSVC_MAX_CHANGES"},
		{map[string]string{"AUTHSVC_CLIENT_CACHE": "0"}, "AUTHSVC_CLIENT_CACHE"},
		{map[string]string{"AUTHSVC_MAX_REVOCATIONS_PER_CLIENT": "many"}, "AUTHSVC_MAX_REVOCATIONS_PER_CLIENT"},
		{map[string]string{"AUTHSVC_SIGNING_ALG": "none"}, "AUTHSVC_SIGNING_ALG"},
		{map[string]string{"AUTHSVC_SIGNING_ALG": "hs256"}, "AUTHSVC_SIGNING_ALG"},
		{map[string]string{"AUTHSVC_BOOTSTRAP_CLIENT_ID": "admin"}, "AUTHSVC_BOOTSTRAP_CLIENT_SECRET"},
		{map[string]string{"AUTHSVC_BOOTSTRAP_CLIENT_SECRET": "boot-secret-value"}, "AUTHSVC_BOOTSTRAP_CLIENT_ID"},
		{map[string]string{"AUTHSVC_TLS_CERT_FILE": "cert.pem"}, "AUTHSVC_TLS_KEY_FILE"},
		{map[string]string{"AUTHSVC_TLS_KEY_FILE": "key.pem"}, "AUTHSVC_TLS_CERT_FILE"},
		{map[string]string{"AUTHSVC_TLS_CLIENT_CA": "ca.pem"}, "AUTHSVC_TLS_CERT_FILE"},
		{map[string]string{"AUTHSVC_TLS_SELF_SIGNED_CLIENTS": "on"}, "AUTHSVC_TLS_CLIENT_CERT_HEADER"},
		{map[string]string{"AUTHSVC_TLS_SELF_SIGNED_CLIENTS": "yes"}, "AUTHSVC_TLS_SELF_SIGNED_CLIENTS"},
		{map[string]string{"AUTHSVC_TLS_CLIENT_CERT_HEADER": "X-SSL-Client-Cert"}, "AUTHSVC_TRUSTED_PROXIES"},
		{map[string]string{"AUTHSVC_TLS_CLIENT_CERT_HEADER": "X SSL", "AUTHSVC_TRUSTED_PROXIES": "10.0.0.0/8"}, "AUTHSVC_TLS_CLIENT_CERT_HEADER"},
		{map[string]string{"AUTHSVC_LOG_FORMAT": "xml"}, "AUTHSVC_LOG_FORMAT"},
		{map[string]string{"AUTHSVC_LOG_LEVEL": "trace"}, "AUTHSVC_LOG_LEVEL"},
		{map[string]string{"AUTHSVC_LOG_LEVEL": ""}, "AUTHSVC_LOG_LEVEL"},
		{map[string]string{"AUTHSVC_ADDR": "localhost"}, "AUTHSVC_ADDR"},
		{map[string]string{"AUTHSVC_ADDR": ""}, "AUTHSVC_ADDR"},
		{map[string]string{"AUTHSVC_ISSUER": "ftp://auth.example.com"}, "AUTHSVC_ISSUER"},
		{map[string]string{"AUTHSVC_ISSUER": "/relative"}, "AUTHSVC_ISSUER"},
		{map[string]string{"AUTHSVC_ISSUER": "auth.example.com"}, "AUTHSVC_ISSUER"},
		{map[string]string{"AUTHSVC_ISSUER": "https://"}, "AUTHSVC_ISSUER"},
		{map[string]string{"AUTHSVC_ISSUER": "https://:8443"}, "AUTHSVC_ISSUER"},
		{map[string]string{"AUTHSVC_ISSUER": "https://auth.example.com?tenant=1"}, "AUTHSVC_ISSUER"},
		{map[string]string{"AUTHSVC_ISSUER": "https://auth.example.com/#"}, "AUTHSVC_ISSUER"},
		{map[string]string{"AUTHSVC_ISSUER": "https://admin:issuer-pw@auth.example.com"}, "AUTHSVC_ISSUER"},
		{map[string]string{"AUTHSVC_THROTTLE": "no"}, "AUTHSVC_THROTTLE"},
		{map[string]string{"AUTHSVC_THROTTLE": "OFF"}, "AUTHSVC_THROTTLE"},
		{map[string]string{"AUTHSVC_THROTTLE_PAIR": "10"}, "AUTHSVC_THROTTLE_PAIR"},
		{map[string]string{"AUTHSVC_THROTTLE_PAIR": "10/30"}, "AUTHSVC_THROTTLE_PAIR"},
		{map[string]string{"AUTHSVC_THROTTLE_PAIR": "ten/30s"}, "AUTHSVC_THROTTLE_PAIR"},
		{map[string]string{"AUTHSVC_THROTTLE_PAIR": "0/30s"}, "AUTHSVC_THROTTLE_PAIR"},
		{map[string]string{"AUTHSVC_THROTTLE_ADDRESS": "100/0s"}, "AUTHSVC_THROTTLE_ADDRESS"},
		{map[string]string{"AUTHSVC_THROTTLE_ADDRESS": "100/-6s"}, "AUTHSVC_THROTTLE_ADDRESS"},
		{map[string]string{"AUTHSVC_THROTTLE_CLIENT": "50/1s/2"}, "AUTHSVC_THROTTLE_CLIENT"},
		{map[string]string{"AUTHSVC_THROTTLE_CLIENT": "-1/1s"}, "AUTHSVC_THROTTLE_CLIENT"},
		{map[string]string{"AUTHSVC_THROTTLE_CLIENT": "50/48h"}, "AUTHSVC_THROTTLE_CLIENT"},
		{map[string]string{"AUTHSVC_THROTTLE_CLIENT": "on"}, "AUTHSVC_THROTTLE_CLIENT"},
		{map[string]string{"AUTHSVC_ADMIN_CONSOLE": "no"}, "AUTHSVC_ADMIN_CONSOLE"},
		{map[string]string{"AUTHSVC_ADMIN_CONSOLE": ""}, "AUTHSVC_ADMIN_CONSOLE"},
		{map[string]string{"AUTHSVC_DPOP_NONCE": "on"}, "AUTHSVC_DPOP_NONCE"},
		{map[string]string{"AUTHSVC_DPOP_NONCE": ""}, "AUTHSVC_DPOP_NONCE"},
		{map[string]string{"AUTHSVC_DPOP_REPLAY": "shared"}, "AUTHSVC_DPOP_REPLAY"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.env), func(t *testing.T) {
			clearEnv(t)
			setEnv(t, tt.env)
			_, err := loadConfig("")
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "config: ") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q: want prefix %q and a mention of %s", msg, "config: ", tt.want)
			}
			for _, secret := range []string{"boot-secret-value", "issuer-pw"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q echoes a secret", msg)
				}
			}
		})
	}
}

// TestThrottleConfig: AUTHSVC_THROTTLE and the three limits reach
// authhttp.Options.Throttle; unset limits are authhttp's defaults.
func TestThrottleConfig(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want authhttp.Throttle
	}{
		{nil, authhttp.Throttle{}},
		{map[string]string{"AUTHSVC_THROTTLE": "on"}, authhttp.Throttle{}},
		{map[string]string{"AUTHSVC_THROTTLE": "off"}, authhttp.Throttle{Off: true}},
		{map[string]string{"AUTHSVC_THROTTLE_PAIR": "5/1m", "AUTHSVC_THROTTLE_ADDRESS": "off", "AUTHSVC_THROTTLE_CLIENT": " 200 / 500ms "},
			authhttp.Throttle{Pair: authhttp.ThrottleLimit{Burst: 5, Every: time.Minute}, Address: authhttp.ThrottleLimit{Off: true},
				Client: authhttp.ThrottleLimit{Burst: 200, Every: 500 * time.Millisecond}}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.env), func(t *testing.T) {
			clearEnv(t)
			setEnv(t, tt.env)
			th, err := mustLoad(t, "").throttle()
			if err != nil || th != tt.want {
				t.Fatalf("throttle %+v, %v; want %+v", th, err, tt.want)
			}
		})
	}
	clearEnv(t)
	setEnv(t, map[string]string{"AUTHSVC_THROTTLE_PAIR": "0/30s"})
	_, err := loadConfig("")
	if want := `config: AUTHSVC_THROTTLE_PAIR: the burst must be from 1 to 1000000, got "0/30s"`; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
}

func TestIssuer(t *testing.T) {
	tls := map[string]string{"AUTHSVC_TLS_CERT_FILE": "cert.pem", "AUTHSVC_TLS_KEY_FILE": "key.pem"}
	tests := []struct {
		addr, issuer string
		tls          bool
		want         string
	}{
		{want: "http://127.0.0.1:5000"},
		{tls: true, want: "https://127.0.0.1:5000"},
		{addr: ":5000", want: "http://localhost:5000"},
		{addr: "0.0.0.0:8080", want: "http://localhost:8080"},
		{addr: "[::]:8080", tls: true, want: "https://localhost:8080"},
		{addr: "[::1]:8443", want: "http://[::1]:8443"},
		{addr: "auth.example.com:443", tls: true, want: "https://auth.example.com:443"},
		{issuer: "https://auth.example.com/", want: "https://auth.example.com"},
		{issuer: "https://example.com/auth/", tls: true, want: "https://example.com/auth"},
		{addr: ":5000", issuer: "http://proxy.example.com", want: "http://proxy.example.com"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s|%s|%v", tt.addr, tt.issuer, tt.tls), func(t *testing.T) {
			clearEnv(t)
			if tt.addr != "" {
				t.Setenv("AUTHSVC_ADDR", tt.addr)
			}
			if tt.issuer != "" {
				t.Setenv("AUTHSVC_ISSUER", tt.issuer)
			}
			if tt.tls {
				setEnv(t, tls)
			}
			if got := mustLoad(t, "").Issuer; got != tt.want {
				t.Errorf("Issuer = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadConfigDotenvErrors(t *testing.T) {
	t.Run("malformed line", func(t *testing.T) {
		clearEnv(t)
		path := writeDotenv(t, "DBNAME=authdb\nAUTHSECRET "+seedSecret+"\n")
		_, err := loadConfig(path)
		if err == nil || !strings.HasPrefix(err.Error(), "config: ") || !strings.Contains(err.Error(), path) ||
			!strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), seedSecret) {
			t.Errorf("error %v: want config: prefix, the path, line 2 and no secret", err)
		}
		if _, set := os.LookupEnv("DBNAME"); set {
			t.Error("a broken .env was partly loaded")
		}
	})
	t.Run("directory", func(t *testing.T) {
		clearEnv(t)
		if _, err := loadConfig(t.TempDir()); err == nil || !strings.HasPrefix(err.Error(), "config: ") {
			t.Errorf("error %v, want a config: error", err)
		}
	})
}

func TestRedacted(t *testing.T) {
	secrets := map[string]bool{"HMACSecret": true, "SecretPepper": true, "KeyEncryptionKey": true, "BootstrapClientSecret": true}

	// Give every string field a distinct value, so a secret that redacted misses shows up by name.
	var c config
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String {
			f.SetString("value-of-" + v.Type().Field(i).Name)
		}
	}
	c.DatabaseURL = "postgres://authuser:p%40ss%3Aw%2Frd@localhost:5432/authdb?sslmode=prefer"
	orig := c

	r := c.redacted()
	if c != orig {
		t.Error("redacted modified its receiver")
	}
	rv := reflect.ValueOf(r)
	for i := range rv.NumField() {
		name, got := rv.Type().Field(i).Name, rv.Field(i)
		want := reflect.ValueOf(orig).Field(i)
		switch {
		case secrets[name]:
			if got.String() != "redacted" {
				t.Errorf("%s = %q, want redacted", name, got)
			}
		case name == "DatabaseURL":
			if got.String() != "postgres://authuser:redacted@localhost:5432/authdb?sslmode=prefer" {
				t.Errorf("DatabaseURL = %q", got)
			}
		case !got.Equal(want):
			t.Errorf("%s = %v, want it unchanged (%v)", name, got, want)
		}
	}

	t.Run("unset secrets stay empty", func(t *testing.T) {
		if got := (config{Addr: "a"}).redacted(); got != (config{Addr: "a"}) {
			t.Errorf("got %+v", got)
		}
	})

	t.Run("seed dotenv", func(t *testing.T) {
		clearEnv(t)
		c := mustLoad(t, writeDotenv(t, seedDotenv))
		s := fmt.Sprintf("%+v", c.redacted())
		for _, leak := range []string{seedSecret, "p@ss", "p%40ss", "w/rd", "w%2Frd"} {
			if strings.Contains(s, leak) {
				t.Errorf("redacted config %s contains %q", s, leak)
			}
		}
		if !strings.Contains(s, "authuser:redacted@") {
			t.Errorf("redacted config %s lost the user or the marker", s)
		}
	})
}

// TestDPoPConfig: AUTHSVC_DPOP_NONCE and AUTHSVC_DPOP_REPLAY reach the
// library's Config.
func TestDPoPConfig(t *testing.T) {
	for _, tt := range []struct {
		nonce, replay          string
		token, resource, store bool
	}{
		{"", "", false, false, false},
		{"off", "process", false, false, false},
		{"token", "", true, false, false},
		{"resource", "store", false, true, true},
		{"all", "", true, true, false},
	} {
		clearEnv(t)
		env := map[string]string{}
		if tt.nonce != "" {
			env["AUTHSVC_DPOP_NONCE"] = tt.nonce
		}
		if tt.replay != "" {
			env["AUTHSVC_DPOP_REPLAY"] = tt.replay
		}
		setEnv(t, env)
		cfg, err := loadConfig("")
		if err != nil {
			t.Fatal(err)
		}
		c := libraryConfig(cfg, nil)
		if c.DPoPTokenNonce != tt.token || c.DPoPResourceNonce != tt.resource || c.DPoPSharedReplay != tt.store {
			t.Errorf("%q %q: token %v, resource %v, store %v", tt.nonce, tt.replay, c.DPoPTokenNonce, c.DPoPResourceNonce, c.DPoPSharedReplay)
		}
	}
}
