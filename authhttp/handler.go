// Package authhttp is authsvc's HTTP API: the routes authd serves, as a
// handler any Go program can mount on its own mux.
//
//	mux.Handle("/", authhttp.NewHandler(a, authhttp.Options{}))
//
// It serves the Flask tutorial service's routes (POST /client, /auth,
// /verify, /logout, with real status codes), the standard OAuth 2.0
// surface (RFC 6749 §4.4 token, RFC 7662 introspection, RFC 7009
// revocation, RFC 7517 JWKS, RFC 8414 discovery), forward authentication
// for gateways (GET /verify), the revocation feed that RemoteVerifiers
// follow, the admin routes, and health checks; with a throttle on failed
// authentications, body limits, an access and audit log that never carries
// a credential, and one mapping of the library's errors to HTTP.
package authhttp

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authsvc/authsvc"
)

// Options configures NewHandler. The zero value gives authd's behaviour:
// the throttle on, the admin console on (under /admin), no proxy trusted,
// no logging, no metrics.
type Options struct {
	// Logger receives one access line per request and the audit lines
	// (authentications refused, clients created or deleted, tokens
	// revoked). Secrets and tokens are never logged. Nil means none.
	Logger *slog.Logger

	// TrustedProxies are the addresses of proxies whose X-Forwarded-For is
	// believed when telling who a caller is (for the throttle and the log).
	// Nil means none: the TCP peer is the caller.
	TrustedProxies []netip.Prefix

	// Throttle sets the limits on failed client authentications (RFC 6749
	// §2.3.1 asks a token endpoint for them): per client_id and address,
	// per address, per client_id. The zero value is the defaults;
	// Throttle{Off: true} turns them off (see Throttle). Each handler
	// counts failures in its own buckets: mount one handler per
	// Authenticator, or the allowances add up (the addresses clients
	// succeeded from are the Authenticator's, shared).
	Throttle Throttle

	// Metrics, when set, receives the Prometheus metrics of the handler
	// (requests by route, method and status; latency; throttled attempts
	// by limit; the throttle's limits)
	// and of the Authenticator (tokens issued, verifications, store
	// errors). Handlers of one Authenticator may share a registerer (the
	// second reuses the first's collectors); a handler of another
	// Authenticator needs its own, or one wrapped with a distinguishing
	// label (prometheus.WrapRegistererWith), else it would report the
	// first Authenticator's counts. Any other registration error panics,
	// as MustRegister does.
	Metrics prometheus.Registerer

	// MetricsHandler, when set, is served at GET /metrics, such as
	// promhttp.HandlerFor(registry, …). Nil means no /metrics route.
	MetricsHandler http.Handler

	// Draining, when set and returning true, makes /readyz answer 503 so
	// that a load balancer stops sending requests before shutdown.
	Draining func() bool

	// Console configures the admin console served under /admin (the zero
	// value: on, with its defaults); Console{Off: true} removes it.
	Console ConsoleOptions

	// BaseURL is the URL the routes are reached at from outside, as
	// discovery advertises them (token_endpoint = BaseURL + "/oauth/token").
	// Empty means the Authenticator's issuer, followed by the prefix the
	// handler is mounted under when http.StripPrefix removed one, unless
	// the issuer's path already ends with that prefix. Give the issuer the
	// prefix (https://host/auth for a mount at /auth/): RemoteVerifiers
	// and OAuth libraries look for discovery at the issuer's URL.
	BaseURL string

	// ClientCertHeader, when set, is the header a TLS-terminating proxy in
	// TrustedProxies puts the client's certificate in (RFC 8705 behind a
	// proxy: see authsvc.ClientCertHeader for the formats): the token
	// endpoint authenticates tls_client_auth clients and binds tokens with
	// it, and the Bearer routes and GET /verify check certificate-bound
	// tokens against it. From other addresses the header is ignored.
	ClientCertHeader string
}

// handler holds what the routes need.
type handler struct {
	auth     *authsvc.Authenticator
	log      *slog.Logger
	throttle *throttle      // failed-authentication limits; nil: none
	trusted  []netip.Prefix // proxies whose X-Forwarded-For is believed
	metrics  *metrics       // nil: no metrics
	draining func() bool    // nil: never
	baseURL  string         // "" : the issuer and the mount prefix
	feed     http.Handler   // the revocation feed
	// certHeader is where the client certificate is behind a trusted
	// proxy; nil: the TLS connection's only.
	certHeader *authsvc.ClientCertHeader

	discovery atomic.Pointer[discoveryDoc] // the last built, by base URL
}

// NewHandler returns an http.Handler serving every authd route for a. It
// may be mounted under a prefix with http.StripPrefix; discovery then
// advertises the prefixed URLs.
func NewHandler(a *authsvc.Authenticator, opts Options) http.Handler {
	_, hd := newHandler(a, opts)
	return hd
}

// newHandler is NewHandler, also returning the handler (tests set its
// throttle's clock).
func newHandler(a *authsvc.Authenticator, opts Options) (*handler, http.Handler) {
	h := &handler{
		auth:     a,
		log:      opts.Logger,
		trusted:  opts.TrustedProxies,
		draining: opts.Draining,
		baseURL:  strings.TrimSuffix(opts.BaseURL, "/"),
		feed:     a.FeedHandler(),
	}
	if opts.ClientCertHeader != "" {
		h.certHeader = &authsvc.ClientCertHeader{Name: opts.ClientCertHeader, TrustedProxies: opts.TrustedProxies}
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if !opts.Throttle.Off {
		h.throttle = newThrottle(opts.Throttle)
		h.throttle.known, h.throttle.remember = a.KnownAddress, a.RememberAddress
	}
	if opts.Metrics != nil {
		h.metrics = newMetrics(a, opts.Metrics, h.throttle)
	}
	mux := http.NewServeMux()
	h.seedRoutes(mux)
	h.clientRoutes(mux)
	h.adminRoutes(mux)
	h.oauthRoutes(mux)
	h.gatewayRoutes(mux)
	h.consoleRoutes(mux, opts.Console)
	mux.Handle("/healthz", methods{http.MethodGet: h.healthz})
	mux.Handle("/readyz", methods{http.MethodGet: h.readyz})
	if opts.MetricsHandler != nil {
		mux.Handle("/metrics", methods{http.MethodGet: opts.MetricsHandler.ServeHTTP})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such route")
	})
	return h, h.common(mux)
}

// methods routes by HTTP method, answering any other with 405 and Allow.
type methods map[string]http.HandlerFunc

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := m[r.Method]
	if !ok && r.Method == http.MethodHead {
		f, ok = m[http.MethodGet]
	}
	if !ok {
		allow := make([]string, 0, len(m)+1)
		for k := range m {
			allow = append(allow, k)
			if k == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
		sort.Strings(allow)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	f(w, r)
}

// statusWriter remembers the status for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// reqInfo is what the access log and the throttle learn of a request.
type reqInfo struct {
	addr     string // the client's address (see clientAddr)
	clientID string // the client, once known
}

type reqInfoKey struct{}

func info(r *http.Request) *reqInfo {
	if ri, ok := r.Context().Value(reqInfoKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{addr: r.RemoteAddr}
}

// setClient names the request's client for the access log.
func setClient(r *http.Request, clientID string) { info(r).clientID = clientID }

// common adds the headers every response gets, turns a panic into a 500
// that leaks nothing, counts the request in the metrics, and writes one
// access line per request: never the query string (it may carry a token),
// nor any header.
func (h *handler) common(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		sw.Header().Set("X-Content-Type-Options", "nosniff")
		ri := &reqInfo{addr: clientAddr(r, h.trusted)}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, ri))
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				h.log.Error("panic serving request", "path", clip(r.URL.Path), "panic", clip(fmt.Sprint(p)))
				if sw.status == 0 {
					writeError(sw, http.StatusInternalServerError, "internal error")
				}
			}
			d := time.Since(start)
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			if h.metrics != nil {
				h.metrics.observe(route, r.Method, sw.status, d)
			}
			// Checked first: building the line's arguments costs allocations
			// even when the level drops it.
			if h.log.Enabled(r.Context(), slog.LevelInfo) {
				attrs := []any{"method", clip(r.Method), "route", route, "path", clip(r.URL.Path), "status", sw.status,
					"duration_ms", float64(d.Microseconds()) / 1000, "remote", clip(ri.addr)}
				if ri.clientID != "" {
					attrs = append(attrs, "client_id", clip(ri.clientID))
				}
				h.log.Info("request", attrs...)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// maxLogged bounds every caller-supplied value in a log line (a client_id,
// a path, a method, an address): logged whole, a 60 KB client_id would
// make each refused request a 60 KB line.
const maxLogged = 128

// clip returns s, or, when it is longer than maxLogged bytes, its first
// maxLogged bytes (cut at a UTF-8 boundary) followed by "…" and its length.
// Every caller-supplied value authhttp logs goes through it.
func clip(s string) string {
	if len(s) <= maxLogged {
		return s
	}
	n := maxLogged
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// clipList clips each of values, and keeps the first 16 of them.
func clipList(values []string) []string {
	out := make([]string, 0, min(len(values), 16))
	for _, v := range values[:min(len(values), 16)] {
		out = append(out, clip(v))
	}
	return out
}
