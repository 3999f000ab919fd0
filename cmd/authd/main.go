// Command authd is the authsvc server: OAuth 2.0 client-credentials tokens
// over HTTP, on an embedded SQLite file by default or on PostgreSQL.
//
//	authd [serve]                      run the server
//	authd client create|list|show|update|delete|rotate-secret|logout
//	authd keys list|rotate             signing keys
//	authd import-seed                  import the Flask service's clients
//	authd migrate                      apply database migrations and exit
//	authd version                      print the version
//
// Every command takes --help.
//
// Configuration comes from the environment (AUTHSVC_*) and a .env file in the
// working directory; the Flask tutorial service's names work too.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/authsvc/authsvc/authhttp"
	// The store drivers: OpenStore links none of its own (database/sql style).
	_ "github.com/authsvc/authsvc/postgres"
	_ "github.com/authsvc/authsvc/sqlite"

	"github.com/authsvc/authsvc"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is main without the process: tests call it with their own streams.
// It returns the exit code: 0, 1 for a failure (its message on stderr), 2
// for a bad command line (with the usage on stderr).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, cmdIO{stdin: stdin, stdout: stdout, stderr: stderr})
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintln(stderr, "authd:", err)
	return 1
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel)) // validated by loadConfig
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// libraryConfig turns authd's configuration into the library's.
func libraryConfig(cfg config, log *slog.Logger) authsvc.Config {
	c := authsvc.Config{
		Issuer:     cfg.Issuer,
		TokenTTL:   cfg.TokenTTL,
		SigningAlg: cfg.SigningAlg,
		Logger:     log,

		JWKSMaxAge:        cfg.JWKSMaxAge,
		KeyRotationPeriod: cfg.KeyRotationPeriod,
		PollInterval:      cfg.PollInterval,
		MaxStaleness:      cfg.MaxStaleness,
		StoreTimeout:      cfg.StoreTimeout,

		MaxRevocationsPerClient: cfg.MaxRevocations,
		MaxChanges:              cfg.MaxChanges,
		ClientCacheSize:         cfg.ClientCache,
		MaxAssertionLifetime:    cfg.AssertionMaxLifetime,

		DPoPTokenNonce:    cfg.DPoPNonce == "token" || cfg.DPoPNonce == "all",
		DPoPResourceNonce: cfg.DPoPNonce == "resource" || cfg.DPoPNonce == "all",
		DPoPSharedReplay:  cfg.DPoPReplay == "store",

		SelfSignedClientCerts: cfg.TLSSelfSignedClients == "on",
	}
	if cfg.SigningAlg == authsvc.AlgHS256 {
		c.HMACSecret = []byte(cfg.HMACSecret)
	}
	if cfg.SecretPepper != "" {
		c.SecretPepper = []byte(cfg.SecretPepper)
	}
	if cfg.KeyEncryptionKey != "" {
		c.KeyEncryptionKey = decodeKey(cfg.KeyEncryptionKey)
	}
	return c
}

// openAuthenticator opens the configured store and the Authenticator on it.
func openAuthenticator(ctx context.Context, cfg config, log *slog.Logger) (authsvc.Store, *authsvc.Authenticator, error) {
	lc := libraryConfig(cfg, log)
	if cfg.TLSClientCA != "" {
		pool, err := loadClientCAs(cfg.TLSClientCA)
		if err != nil {
			return nil, nil, err
		}
		lc.ClientCAs = pool
	}
	store, err := authsvc.OpenStore(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	a, err := authsvc.New(ctx, store, lc)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return store, a, nil
}

// app is a running authd: tests start one on 127.0.0.1:0.
type app struct {
	cfg   config
	log   *slog.Logger
	store authsvc.Store
	auth  *authsvc.Authenticator
	srv   *http.Server
	ln    net.Listener
	certs *certReloader // nil without TLS

	draining atomic.Bool // SIGTERM received: /readyz says so

	metricsSrv *http.Server // nil unless AUTHSVC_METRICS_ADDR is set
	metricsLn  net.Listener
}

// start opens the store, creates the bootstrap admin and starts listening.
func start(ctx context.Context, cfg config, log *slog.Logger) (*app, error) {
	store, a, err := openAuthenticator(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	ap := &app{cfg: cfg, log: log, store: store, auth: a}
	if err := ap.bootstrap(ctx); err != nil {
		ap.close()
		return nil, err
	}
	trusted, err := parseCIDRs(cfg.TrustedProxies)
	if err != nil {
		ap.close()
		return nil, err
	}
	throttle, err := cfg.throttle()
	if err != nil {
		ap.close()
		return nil, err
	}
	if throttle.Off {
		log.Warn("the throttle on failed client authentications is off (AUTHSVC_THROTTLE=off): secrets can be guessed at the speed of the network unless a proxy limits them")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	opts := authhttp.Options{Logger: log, TrustedProxies: trusted, Metrics: reg, Draining: ap.draining.Load, Throttle: throttle,
		Console: authhttp.ConsoleOptions{Off: cfg.AdminConsole == "off", Version: version}, ClientCertHeader: cfg.TLSClientCertHeader}
	if cfg.MetricsAddr == "" {
		opts.MetricsHandler = metrics
	}
	ap.srv = &http.Server{
		Handler:           authhttp.NewHandler(a, opts),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		ap.close()
		return nil, err
	}
	if cfg.TLSCertFile != "" {
		ap.certs = &certReloader{certFile: cfg.TLSCertFile, keyFile: cfg.TLSKeyFile}
		if err := ap.certs.load(); err != nil {
			ln.Close()
			ap.close()
			return nil, err
		}
		ap.srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: ap.certs.get}
		if cfg.TLSClientCA != "" || cfg.TLSSelfSignedClients == "on" {
			// RFC 8705: ask for a certificate, require none and verify none
			// here: a self-signed one would not chain to any CA, and each
			// auth method checks its own rule (the library does).
			ap.srv.TLSConfig.ClientAuth = tls.RequestClientCert
		}
		ln = tls.NewListener(ln, ap.srv.TLSConfig)
	}
	ap.ln = ln
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			ap.close()
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics)
		ap.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
		ap.metricsLn = mln
		log.Info("metrics listening", "addr", mln.Addr().String())
	}
	log.Info("authd listening", "addr", ln.Addr().String(), "tls", cfg.TLSCertFile != "",
		"tls_client_auth_methods", a.TLSClientAuthMethods(),
		"store", redactedStore(cfg.DatabaseURL), "alg", cfg.SigningAlg, "issuer", cfg.Issuer, "version", version)
	if cfg.TLSCertFile == "" {
		if host, _, _ := net.SplitHostPort(cfg.Addr); !isLoopback(host) {
			log.Warn("serving plain HTTP on a non-loopback address: secrets and tokens cross the network unencrypted; set AUTHSVC_TLS_CERT_FILE and AUTHSVC_TLS_KEY_FILE or put a TLS proxy in front")
		} else {
			log.Info("serving plain HTTP on loopback")
		}
	}
	return ap, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func redactedStore(u string) string {
	return config{DatabaseURL: u}.redacted().DatabaseURL
}

// bootstrap creates the configured admin client if it does not exist yet.
// An existing client of that id is left alone (its secret is not reset),
// and is looked up first: it may have been created under older rules for
// ids and secrets than CreateClient's, and must not stop authd starting.
func (ap *app) bootstrap(ctx context.Context) error {
	id := ap.cfg.BootstrapClientID
	if id == "" {
		return nil
	}
	if _, err := ap.auth.Client(ctx, id); err == nil {
		ap.log.Info("bootstrap admin client exists", "client_id", id)
		return nil
	}
	_, _, err := ap.auth.CreateClient(ctx, authsvc.NewClient{ID: id, Secret: ap.cfg.BootstrapClientSecret, IsAdmin: true})
	switch {
	case err == nil:
		ap.log.Info("bootstrap admin client created", "client_id", id)
	case errors.Is(err, authsvc.ErrClientExists):
		ap.log.Info("bootstrap admin client exists", "client_id", id)
	default:
		return fmt.Errorf("bootstrap client %q: %w", id, err)
	}
	return nil
}

// reloadTLS reads the certificate files again (on SIGHUP); on failure the
// current certificate stays in use.
func (ap *app) reloadTLS() {
	if ap.certs == nil {
		ap.log.Info("SIGHUP ignored: no TLS certificate configured")
		return
	}
	if err := ap.certs.load(); err != nil {
		ap.log.Error("TLS certificate reload failed; keeping the current one", "err", err)
		return
	}
	ap.log.Info("TLS certificate reloaded")
}

// certReloader serves the current certificate, replaced on reload.
type certReloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

func (c *certReloader) load() error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("TLS: %w", err)
	}
	c.cert.Store(&cert)
	return nil
}

func (c *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cert.Load(), nil
}

// close stops the Authenticator's background work and closes the store.
func (ap *app) close() {
	ap.auth.Close()
	ap.store.Close()
}

// serve runs until ctx is done, then drains requests within the shutdown
// timeout and closes the store.
func (ap *app) serve(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- ap.srv.Serve(ap.ln) }()
	if ap.metricsSrv != nil {
		go func() { errc <- ap.metricsSrv.Serve(ap.metricsLn) }()
	}
	// SIGHUP reloads the TLS certificate without dropping a connection.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for done := false; !done; {
		select {
		case err := <-errc:
			ap.close()
			return err
		case <-hup:
			ap.reloadTLS()
		case <-ctx.Done():
			done = true
		}
	}
	if d := ap.cfg.ShutdownDrain; d > 0 {
		// /readyz answers 503 while requests are still served, so a load
		// balancer stops sending new ones before the listener closes
		// (connections still queued at that moment would be reset).
		ap.log.Info("draining", "for", d.String())
		ap.draining.Store(true)
		time.Sleep(d)
	}
	ap.log.Info("shutting down", "timeout", ap.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), ap.cfg.ShutdownTimeout)
	defer cancel()
	if ap.metricsSrv != nil {
		ap.metricsSrv.Shutdown(sctx)
	}
	// Answers from now on close their connection, so clients stop reusing
	// them; Shutdown then waits for the requests in flight.
	ap.srv.SetKeepAlivesEnabled(false)
	err := ap.srv.Shutdown(sctx)
	ap.close()
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	ap.log.Info("stopped")
	return nil
}

func cmdServe(ctx context.Context, c *command, args []string) error {
	if _, err := c.parse(args, 0, 0, ""); err != nil {
		return err
	}
	cfg, err := loadConfig(".env")
	if err != nil {
		return err
	}
	log := newLogger(cfg, c.stderr)
	ap, err := start(ctx, cfg, log)
	if err != nil {
		return err
	}
	return ap.serve(ctx)
}

func cmdMigrate(ctx context.Context, c *command, args []string) error {
	if _, err := c.parse(args, 0, 0, ""); err != nil {
		return err
	}
	cfg, err := loadConfig(".env")
	if err != nil {
		return err
	}
	store, err := authsvc.OpenStore(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "migrations applied to", redactedStore(cfg.DatabaseURL))
	return store.Close()
}

// decodeKey reads a 32-byte key given as base64 (std or url, padded or
// not) or hex; anything else is returned as bytes so that New reports its
// length.
func decodeKey(s string) []byte {
	s = strings.TrimSpace(s)
	for _, dec := range keyDecoders {
		if b, err := dec(s); err == nil && len(b) == 32 {
			return b
		}
	}
	return []byte(s)
}
