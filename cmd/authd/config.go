package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/authsvc/authsvc/authhttp"
	"github.com/authsvc/authsvc/internal/dburl"
	"github.com/authsvc/authsvc/internal/dotenv"
)

// config is authd's configuration, read from the environment with envconfig (prefix AUTHSVC_).
type config struct {
	Addr                  string        `envconfig:"ADDR" default:"127.0.0.1:5000"`
	DatabaseURL           string        `envconfig:"DATABASE_URL"` // default "sqlite:authd.db" after seed fallbacks
	Issuer                string        `envconfig:"ISSUER"`       // default "http://" + Addr (or https:// when TLS files set)
	TokenTTL              time.Duration `envconfig:"TOKEN_TTL"`    // default 1h after seed fallback
	SigningAlg            string        `envconfig:"SIGNING_ALG"`  // EdDSA default; ES256, RS256, HS256
	HMACSecret            string        `envconfig:"HMAC_SECRET"`  // HS256 key; seed twin AUTHSECRET
	SecretPepper          string        `envconfig:"SECRET_PEPPER"`
	KeyEncryptionKey      string        `envconfig:"KEY_ENCRYPTION_KEY"`
	BootstrapClientID     string        `envconfig:"BOOTSTRAP_CLIENT_ID"`
	BootstrapClientSecret string        `envconfig:"BOOTSTRAP_CLIENT_SECRET"`
	TLSCertFile           string        `envconfig:"TLS_CERT_FILE"`
	TLSKeyFile            string        `envconfig:"TLS_KEY_FILE"`
	TLSClientCA           string        `envconfig:"TLS_CLIENT_CA"`                         // PEM file of the CAs of tls_client_auth (RFC 8705 §2.1)
	TLSSelfSignedClients  string        `envconfig:"TLS_SELF_SIGNED_CLIENTS" default:"off"` // on: self_signed_tls_client_auth (RFC 8705 §2.2)
	TLSClientCertHeader   string        `envconfig:"TLS_CLIENT_CERT_HEADER"`                // the header a trusted TLS-terminating proxy puts the client certificate in
	LogFormat             string        `envconfig:"LOG_FORMAT" default:"json"`             // json or text
	LogLevel              string        `envconfig:"LOG_LEVEL" default:"info"`
	ShutdownTimeout       time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"15s"`
	ShutdownDrain         time.Duration `envconfig:"SHUTDOWN_DRAIN" default:"0s"`                // on SIGTERM, serve this long with /readyz 503 before closing
	JWKSMaxAge            time.Duration `envconfig:"JWKS_MAX_AGE" default:"5m"`                  // JWKS cache lifetime; a rotated key signs only after it
	KeyRotationPeriod     time.Duration `envconfig:"KEY_ROTATION_PERIOD" default:"0s"`           // 0: rotate only on `authd keys rotate`
	PollInterval          time.Duration `envconfig:"POLL_INTERVAL" default:"1s"`                 // catch-up with the change log (besides NOTIFY)
	MaxStaleness          time.Duration `envconfig:"MAX_STALENESS" default:"30s"`                // Verify fails closed after this long without the store
	StoreTimeout          time.Duration `envconfig:"STORE_TIMEOUT" default:"5s"`                 // a store round trip (dial, read, write, catch-up) gives up after this
	MaxRevocations        int           `envconfig:"MAX_REVOCATIONS_PER_CLIENT" default:"10000"` // past it a client's revocation logs it out everywhere
	MaxChanges            int           `envconfig:"MAX_CHANGES" default:"1000000"`              // the change log's length bound (besides its age)
	ClientCache           int           `envconfig:"CLIENT_CACHE" default:"100000"`              // client records kept in memory
	AssertionMaxLifetime  time.Duration `envconfig:"ASSERTION_MAX_LIFETIME" default:"5m"`        // how far ahead a private_key_jwt assertion's exp may be
	MetricsAddr           string        `envconfig:"METRICS_ADDR"`                               // serve /metrics there instead of on Addr
	TrustedProxies        string        `envconfig:"TRUSTED_PROXIES"`                            // comma-separated CIDRs whose X-Forwarded-For is believed
	Throttle              string        `envconfig:"THROTTLE" default:"on"`                      // on or off: the limits on failed client authentications
	ThrottlePair          string        `envconfig:"THROTTLE_PAIR"`                              // BURST/INTERVAL or off; "" is authhttp's default, 10/30s
	ThrottleAddress       string        `envconfig:"THROTTLE_ADDRESS"`                           // BURST/INTERVAL or off; "" is 100/6s
	ThrottleClient        string        `envconfig:"THROTTLE_CLIENT"`                            // BURST/INTERVAL or off; "" is 50/1s
	AdminConsole          string        `envconfig:"ADMIN_CONSOLE" default:"on"`                 // on or off: the admin console under /admin
	DPoPNonce             string        `envconfig:"DPOP_NONCE" default:"off"`                   // off, token, resource or all: where DPoP proofs need a server nonce
	DPoPReplay            string        `envconfig:"DPOP_REPLAY" default:"process"`              // process or store: where GET /verify remembers DPoP proofs' jtis
}

const (
	envPrefix = "AUTHSVC"

	defaultDatabaseURL = "sqlite:authd.db"
	defaultTokenTTL    = time.Hour
	maxTokenTTL        = 365 * 24 * time.Hour
	maxExpiresSeconds  = int(maxTokenTTL / time.Second) // 31536000

	// minHMACSecretLen is the HS256 key size RFC 7518 §3.2 requires (the hash output size).
	minHMACSecretLen = 32

	// pgSocketDir is where libpq looks for the server's unix socket when no host is given.
	// lib/pq itself defaults to localhost, so the seed's "no host" is translated explicitly.
	pgSocketDir = "/var/run/postgresql"
)

// loadConfig loads dotenvPath (if the file exists; "" means skip) into the process environment without
// overriding variables already set, then reads config with envconfig, then applies the seed fallbacks, defaults
// and validation. Returns a clear error (prefixed "config: ") naming the variable for any invalid value.
func loadConfig(dotenvPath string) (config, error) {
	if err := dotenv.Load(dotenvPath); err != nil {
		return config{}, fmt.Errorf("config: %w", err)
	}
	c, err := readEnv()
	if err != nil {
		return config{}, err
	}
	if err := c.resolve(pgSocketDir); err != nil {
		return config{}, err
	}
	return c, nil
}

// readEnv reads the AUTHSVC_ variables with envconfig.
//
// envconfig.Process falls back to the bare tag name (ADDR, DATABASE_URL, LOG_LEVEL, ...) when the prefixed
// variable is unset, which would let variables meant for other programs configure authd. So envconfig is
// handed a mirror of config whose field names are the tag names and which carries no envconfig tag: it then
// looks up AUTHSVC_<name> and nothing else. Defaults still come from config's tags.
func readEnv() (config, error) {
	t := reflect.TypeFor[config]()
	fields := make([]reflect.StructField, t.NumField())
	for i := range fields {
		f := t.Field(i)
		fields[i] = reflect.StructField{
			Name: f.Tag.Get("envconfig"), // every field has one; StructOf panics on an empty name
			Type: f.Type,
			Tag:  reflect.StructTag(fmt.Sprintf("default:%q", f.Tag.Get("default"))),
		}
	}
	mirror := reflect.New(reflect.StructOf(fields)).Elem()
	if err := envconfig.Process(envPrefix, mirror.Addr().Interface()); err != nil {
		// Only the durations can fail to parse, so echoing the value leaks no secret.
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return config{}, fmt.Errorf("config: %s: invalid %s %q (want e.g. 90s or 1h)", pe.KeyName, pe.TypeName, pe.Value)
		}
		return config{}, fmt.Errorf("config: %w", err)
	}
	var c config
	v := reflect.ValueOf(&c).Elem()
	for i := range fields {
		v.Field(i).Set(mirror.Field(i))
	}
	return c, nil
}

// parseCIDRs parses a comma-separated list of CIDRs or single addresses.
func parseCIDRs(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or CIDR", f)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// throttle returns the throttle's settings: AUTHSVC_THROTTLE (on, the
// default, or off) and each limit's AUTHSVC_THROTTLE_PAIR, _ADDRESS,
// _CLIENT ("" for authhttp's default). Errors name the variable.
func (c config) throttle() (authhttp.Throttle, error) {
	var t authhttp.Throttle
	switch c.Throttle {
	case "", "on":
	case "off":
		t.Off = true
	default:
		return t, oneOf(envPrefix+"_THROTTLE", c.Throttle, "on", "off")
	}
	for _, l := range []struct {
		name  string
		value string
		dst   *authhttp.ThrottleLimit
	}{{"THROTTLE_PAIR", c.ThrottlePair, &t.Pair}, {"THROTTLE_ADDRESS", c.ThrottleAddress, &t.Address}, {"THROTTLE_CLIENT", c.ThrottleClient, &t.Client}} {
		lim, err := parseThrottleLimit(l.value)
		if err != nil {
			return t, fmt.Errorf("config: %s_%s: %w", envPrefix, l.name, err)
		}
		*l.dst = lim
	}
	return t, nil
}

// Bounds of a throttle limit's settings.
const (
	maxThrottleBurst = 1_000_000
	maxThrottleEvery = 24 * time.Hour
)

// parseThrottleLimit reads BURST/INTERVAL ("10/30s": 10 failures at once,
// then one more every 30 s), "off", or "" (the default). Its errors follow
// the variable's name and a colon.
func parseThrottleLimit(s string) (authhttp.ThrottleLimit, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return authhttp.ThrottleLimit{}, nil
	case "off":
		return authhttp.ThrottleLimit{Off: true}, nil
	}
	want := fmt.Errorf("want BURST/INTERVAL (failures allowed at once / time to allow one more, such as 10/30s) or off, got %q", s)
	b, e, ok := strings.Cut(s, "/")
	if !ok {
		return authhttp.ThrottleLimit{}, want
	}
	burst, err := strconv.Atoi(strings.TrimSpace(b))
	if err != nil {
		return authhttp.ThrottleLimit{}, want
	}
	every, err := time.ParseDuration(strings.TrimSpace(e))
	if err != nil {
		return authhttp.ThrottleLimit{}, want
	}
	if burst < 1 || burst > maxThrottleBurst {
		return authhttp.ThrottleLimit{}, fmt.Errorf("the burst must be from 1 to %d, got %q", maxThrottleBurst, s)
	}
	if every <= 0 || every > maxThrottleEvery {
		return authhttp.ThrottleLimit{}, fmt.Errorf("the interval must be positive and at most %s, got %q", maxThrottleEvery, s)
	}
	return authhttp.ThrottleLimit{Burst: burst, Every: every}, nil
}

// resolve applies the seed fallbacks and defaults that depend on other values, then validates. socketDir is
// libpq's default socket directory; it is a parameter so tests can point it at a directory of their own.
func (c *config) resolve(socketDir string) error {
	if c.DatabaseURL == "" {
		u, err := seedDatabaseURL(socketDir)
		if err != nil {
			return err
		}
		c.DatabaseURL = u
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = defaultDatabaseURL
	}

	secretVar := envPrefix + "_HMAC_SECRET"
	if c.HMACSecret == "" {
		c.HMACSecret = os.Getenv("AUTHSECRET")
		secretVar = "AUTHSECRET"
	}
	if c.SigningAlg == "" {
		// The seed signs HS256 with AUTHSECRET; keep doing so, so its tokens stay verifiable.
		c.SigningAlg = "EdDSA"
		if c.HMACSecret != "" {
			c.SigningAlg = "HS256"
		}
	}
	if err := oneOf(envPrefix+"_SIGNING_ALG", c.SigningAlg, "EdDSA", "ES256", "RS256", "HS256"); err != nil {
		return err
	}
	if c.SigningAlg == "HS256" {
		if c.HMACSecret == "" {
			return fmt.Errorf("config: HS256 needs a secret: set %s_HMAC_SECRET or AUTHSECRET (at least %d bytes)", envPrefix, minHMACSecretLen)
		}
		if n := len(c.HMACSecret); n < minHMACSecretLen {
			return fmt.Errorf("config: the HS256 secret in %s is too short: it is %d bytes, at least %d bytes are needed (set %s_HMAC_SECRET or AUTHSECRET to a longer random value)",
				secretVar, n, minHMACSecretLen, envPrefix)
		}
	}

	if err := c.resolveTokenTTL(); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"JWKS_MAX_AGE", c.JWKSMaxAge}, {"POLL_INTERVAL", c.PollInterval}, {"MAX_STALENESS", c.MaxStaleness}, {"STORE_TIMEOUT", c.StoreTimeout},
		{"ASSERTION_MAX_LIFETIME", c.AssertionMaxLifetime}} {
		if d.v <= 0 {
			return fmt.Errorf("config: %s_%s must be positive, got %s", envPrefix, d.name, d.v)
		}
	}
	if c.KeyRotationPeriod < 0 || (c.KeyRotationPeriod > 0 && c.KeyRotationPeriod < c.JWKSMaxAge) {
		return fmt.Errorf("config: %s_KEY_ROTATION_PERIOD must be 0 (off) or at least %s_JWKS_MAX_AGE", envPrefix, envPrefix)
	}
	if c.MaxRevocations <= 0 {
		return fmt.Errorf("config: %s_MAX_REVOCATIONS_PER_CLIENT must be positive, got %d", envPrefix, c.MaxRevocations)
	}
	if c.ClientCache <= 0 {
		return fmt.Errorf("config: %s_CLIENT_CACHE must be positive, got %d", envPrefix, c.ClientCache)
	}
	if c.MaxChanges <= 0 {
		return fmt.Errorf("config: %s_MAX_CHANGES must be positive, got %d", envPrefix, c.MaxChanges)
	}
	if c.ShutdownDrain < 0 {
		return fmt.Errorf("config: %s_SHUTDOWN_DRAIN must not be negative", envPrefix)
	}
	if c.ShutdownTimeout <= 0 {
		return fmt.Errorf("config: %s_SHUTDOWN_TIMEOUT must be positive, got %s", envPrefix, c.ShutdownTimeout)
	}

	if _, err := parseCIDRs(c.TrustedProxies); err != nil {
		return fmt.Errorf("config: %s_TRUSTED_PROXIES: %w", envPrefix, err)
	}
	if _, err := c.throttle(); err != nil {
		return err
	}
	if err := oneOf(envPrefix+"_DPOP_NONCE", c.DPoPNonce, "off", "token", "resource", "all"); err != nil {
		return err
	}
	if err := oneOf(envPrefix+"_DPOP_REPLAY", c.DPoPReplay, "process", "store"); err != nil {
		return err
	}
	if err := oneOf(envPrefix+"_ADMIN_CONSOLE", c.AdminConsole, "on", "off"); err != nil {
		return err
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("config: %s_METRICS_ADDR %q is not host:port", envPrefix, c.MetricsAddr)
		}
	}

	if (c.BootstrapClientID == "") != (c.BootstrapClientSecret == "") {
		return fmt.Errorf("config: %[1]s_BOOTSTRAP_CLIENT_ID and %[1]s_BOOTSTRAP_CLIENT_SECRET must be set together", envPrefix)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return fmt.Errorf("config: %[1]s_TLS_CERT_FILE and %[1]s_TLS_KEY_FILE must be set together", envPrefix)
	}
	if err := c.checkClientCerts(); err != nil {
		return err
	}
	if err := oneOf(envPrefix+"_LOG_FORMAT", c.LogFormat, "json", "text"); err != nil {
		return err
	}
	if err := oneOf(envPrefix+"_LOG_LEVEL", c.LogLevel, "debug", "info", "warn", "error"); err != nil {
		return err
	}
	return c.resolveIssuer()
}

// checkClientCerts checks the mTLS settings (RFC 8705): the client CA and
// self-signed mode need client certificates to reach authd, on its own
// TLS listener or through a proxy's header; the header is believed from
// the trusted proxies only, so it needs some.
func (c *config) checkClientCerts() error {
	if err := oneOf(envPrefix+"_TLS_SELF_SIGNED_CLIENTS", c.TLSSelfSignedClients, "on", "off"); err != nil {
		return err
	}
	if (c.TLSClientCA != "" || c.TLSSelfSignedClients == "on") && c.TLSCertFile == "" && c.TLSClientCertHeader == "" {
		return fmt.Errorf("config: %[1]s_TLS_CLIENT_CA and %[1]s_TLS_SELF_SIGNED_CLIENTS need client certificates: set %[1]s_TLS_CERT_FILE and %[1]s_TLS_KEY_FILE (authd terminates TLS) or %[1]s_TLS_CLIENT_CERT_HEADER (a proxy does)", envPrefix)
	}
	if h := c.TLSClientCertHeader; h != "" {
		if !validHeaderName(h) {
			return fmt.Errorf("config: %s_TLS_CLIENT_CERT_HEADER %q is not a header name", envPrefix, h)
		}
		if c.TrustedProxies == "" {
			return fmt.Errorf("config: %[1]s_TLS_CLIENT_CERT_HEADER is believed only from trusted proxies: set %[1]s_TRUSTED_PROXIES", envPrefix)
		}
	}
	return nil
}

// validHeaderName: an RFC 9110 token of at most 64 bytes.
func validHeaderName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// loadClientCAs reads the PEM file of tls_client_auth's CAs.
func loadClientCAs(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config: %s_TLS_CLIENT_CA: %w", envPrefix, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("config: %s_TLS_CLIENT_CA %s holds no PEM certificate", envPrefix, file)
	}
	return pool, nil
}

// oneOf returns an error naming variable unless value is one of allowed. Only for values that are not secret.
func oneOf(variable, value string, allowed ...string) error {
	if slices.Contains(allowed, value) {
		return nil
	}
	return fmt.Errorf("config: %s must be one of %s, got %q", variable, strings.Join(allowed, ", "), value)
}

// resolveTokenTTL takes the lifetime from AUTHSVC_TOKEN_TTL, else the seed's EXPIRESSECONDS, else 1h.
func (c *config) resolveTokenTTL() error {
	if os.Getenv(envPrefix+"_TOKEN_TTL") == "" {
		c.TokenTTL = defaultTokenTTL
		// The seed's sample .env has "EXPIRESSECONDS=3000 ", and a real environment may keep the space.
		if s := strings.TrimSpace(os.Getenv("EXPIRESSECONDS")); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > maxExpiresSeconds {
				return fmt.Errorf("config: EXPIRESSECONDS must be a whole number of seconds from 1 to %d, got %q", maxExpiresSeconds, s)
			}
			c.TokenTTL = time.Duration(n) * time.Second
		}
	}
	if c.TokenTTL <= 0 || c.TokenTTL > maxTokenTTL {
		return fmt.Errorf("config: %s_TOKEN_TTL must be positive and at most %s, got %s", envPrefix, maxTokenTTL, c.TokenTTL)
	}
	return nil
}

// resolveIssuer checks Addr and derives or checks Issuer, which ends up in every token's iss claim.
func (c *config) resolveIssuer() error {
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("config: %s_ADDR must be host:port, got %q", envPrefix, c.Addr)
	}
	if c.Issuer == "" {
		// A wildcard listen address is not a name clients can use.
		if host == "" || net.ParseIP(host).IsUnspecified() {
			host = "localhost"
		}
		scheme := "http"
		if c.TLSCertFile != "" {
			scheme = "https"
		}
		c.Issuer = scheme + "://" + net.JoinHostPort(host, port)
	}
	c.Issuer = strings.TrimSuffix(c.Issuer, "/")
	// The value is not echoed: a URL with user info may carry a password.
	u, err := url.Parse(c.Issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil ||
		strings.ContainsAny(c.Issuer, "?#") {
		return fmt.Errorf("config: %s_ISSUER must be an absolute http or https URL without user info, query or fragment", envPrefix)
	}
	return nil
}

// seedDatabaseURL builds a PostgreSQL URL for lib/pq from the seed's DBNAME, DBUSER, DBPASSWORD and the
// optional DBHOST, DBPORT, DBSSLMODE. It returns "" when DBNAME is unset. net/url does the escaping, so
// passwords such as "p@ss:w/rd" survive.
func seedDatabaseURL(socketDir string) (string, error) {
	name := os.Getenv("DBNAME")
	if name == "" {
		return "", nil
	}
	port := "5432"
	if s := strings.TrimSpace(os.Getenv("DBPORT")); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("config: DBPORT must be a port number from 1 to 65535, got %q", s)
		}
		port = strconv.Itoa(n)
	}
	sslmode := strings.TrimSpace(os.Getenv("DBSSLMODE"))
	if sslmode == "" {
		sslmode = "prefer"
	}
	if err := oneOf("DBSSLMODE", sslmode, "disable", "allow", "prefer", "require", "verify-ca", "verify-full"); err != nil {
		return "", err
	}
	host := strings.TrimSpace(os.Getenv("DBHOST"))
	if host == "" {
		host = "localhost"
		if fi, err := os.Stat(socketDir); err == nil && fi.IsDir() {
			host = socketDir
		}
	}

	u := &url.URL{Scheme: "postgres", Path: "/" + name}
	q := url.Values{"sslmode": {sslmode}}
	if strings.HasPrefix(host, "/") {
		// A socket directory cannot go in the authority; lib/pq and libpq take it as the host parameter.
		q.Set("host", host)
		if os.Getenv("DBPORT") != "" {
			q.Set("port", port)
		}
	} else {
		u.Host = net.JoinHostPort(host, port)
	}
	u.RawQuery = q.Encode()
	user, password := os.Getenv("DBUSER"), os.Getenv("DBPASSWORD")
	switch {
	case password != "":
		u.User = url.UserPassword(user, password)
	case user != "":
		u.User = url.User(user)
	}
	return u.String(), nil
}

// redacted returns a copy safe to log: secrets (HMACSecret, SecretPepper, KeyEncryptionKey, BootstrapClientSecret,
// and the password inside DatabaseURL) replaced by "redacted" when set.
func (c config) redacted() config {
	for _, s := range []*string{&c.HMACSecret, &c.SecretPepper, &c.KeyEncryptionKey, &c.BootstrapClientSecret} {
		if *s != "" {
			*s = dburl.Redacted
		}
	}
	c.DatabaseURL = dburl.Redact(c.DatabaseURL)
	return c
}
