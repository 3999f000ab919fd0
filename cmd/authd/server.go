package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/authsvc/authsvc"
)

// maxBodyBytes bounds every request body: our largest legitimate body (a
// client with 100 scopes) is a few kilobytes.
const maxBodyBytes = 64 << 10

// server holds what the routes need.
type server struct {
	auth         *authsvc.Authenticator
	log          *slog.Logger
	throttle     *throttle      // failed-authentication limits; nil: none
	trusted      []netip.Prefix // proxies whose X-Forwarded-For is believed
	metrics      *metrics       // nil: no metrics
	metricsRoute bool           // serve /metrics on this handler (no separate metrics address)
	draining     *atomic.Bool   // set on SIGTERM: /readyz answers 503; nil: never
	discoveryDoc []byte         // RFC 8414 metadata, built once by routes
	feed         http.Handler   // the revocation feed, built once by routes
}

// routes returns authd's HTTP handler.
func (s *server) routes() http.Handler {
	s.discoveryDoc = buildDiscovery(s.auth)
	s.feed = s.auth.FeedHandler()
	mux := http.NewServeMux()
	s.oauthRoutes(mux)
	mux.Handle("/client", methods{http.MethodPost: s.createClient, http.MethodDelete: s.deleteClient})
	mux.Handle("/client/{id}", methods{http.MethodDelete: s.deleteClient})
	mux.Handle("/client/{id}/logout", methods{http.MethodPost: s.logoutClient})
	mux.Handle("/client/{id}/rotate-secret", methods{http.MethodPost: s.rotateSecret})
	mux.Handle("/clients", methods{http.MethodGet: s.listClients})
	mux.Handle("/auth", methods{http.MethodPost: s.authenticate})
	s.gatewayRoutes(mux) // /verify: GET for gateways, POST for the seed's clients (gateway.go)
	mux.Handle("/logout", methods{http.MethodPost: s.logout})
	mux.Handle("/healthz", methods{http.MethodGet: s.healthz})
	mux.Handle("/readyz", methods{http.MethodGet: s.readyz})
	if s.metrics != nil && s.metricsRoute {
		mux.Handle("/metrics", methods{http.MethodGet: s.metrics.handler().ServeHTTP})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such route")
	})
	return s.common(mux)
}

// methods routes by HTTP method, answering any other with 405 and Allow.
type methods map[string]http.HandlerFunc

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, ok := m[r.Method]
	if !ok && r.Method == http.MethodHead {
		h, ok = m[http.MethodGet]
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
	h(w, r)
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
func (s *server) common(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		sw.Header().Set("X-Content-Type-Options", "nosniff")
		ri := &reqInfo{addr: clientAddr(r, s.trusted)}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, ri))
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic serving request", "path", r.URL.Path, "panic", fmt.Sprint(p))
				if sw.status == 0 {
					writeError(sw, http.StatusInternalServerError, "internal error")
				}
			}
			d := time.Since(start)
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			if s.metrics != nil {
				s.metrics.observe(route, r.Method, sw.status, d)
			}
			// Checked first: building the line's arguments costs allocations
			// even when the level drops it.
			if s.log.Enabled(r.Context(), slog.LevelInfo) {
				attrs := []any{"method", r.Method, "route", route, "path", r.URL.Path, "status", sw.status,
					"duration_ms", float64(d.Microseconds()) / 1000, "remote", ri.addr}
				if ri.clientID != "" {
					attrs = append(attrs, "client_id", ri.clientID)
				}
				s.log.Info("request", attrs...)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// allowAttempt applies the throttle before a client's secret is checked;
// false means a 429 has been written.
func (s *server) allowAttempt(w http.ResponseWriter, r *http.Request, clientID string, oauth bool) bool {
	if s.throttle == nil {
		return true
	}
	ok, retry := s.throttle.allow(clientID, info(r).addr)
	if ok {
		return true
	}
	secs := int(retry/time.Second) + 1
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	s.log.Warn("authentication throttled", "client_id", clientID, "remote", info(r).addr, "retry_after_s", secs)
	if s.metrics != nil {
		s.metrics.throttled.Inc()
	}
	msg := "too many failed authentications: retry later"
	if oauth {
		oauthError(w, http.StatusTooManyRequests, "too_many_requests", msg)
	} else {
		writeError(w, http.StatusTooManyRequests, msg)
	}
	return false
}

// noteAttempt ends an attempt allowAttempt let through: it feeds the
// outcome to the throttle and the audit log.
func (s *server) noteAttempt(r *http.Request, clientID string, err error) {
	ri := info(r)
	failed := errors.Is(err, authsvc.ErrInvalidClient)
	if err == nil {
		ri.clientID = clientID
	}
	if failed {
		s.log.Warn("audit: authentication failed", "client_id", clientID, "remote", ri.addr, "route", r.URL.Path)
	}
	if s.throttle != nil {
		s.throttle.finish(clientID, ri.addr, failed)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeError writes the seed service's failure body, with a real status.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"success": false, "error": msg})
}

// noStore marks a response that carries a credential (RFC 6749 §5.1).
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// fail maps a library error to a status and a message that says what went
// wrong without leaking why in detail (no SQL, no secret, no token).
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, authsvc.ErrUnavailable):
		s.log.Error("store unavailable", "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "service unavailable: the store cannot be reached")
	case errors.Is(err, authsvc.ErrClientExists):
		writeError(w, http.StatusConflict, "client already exists")
	case errors.Is(err, authsvc.ErrClientNotFound):
		writeError(w, http.StatusNotFound, "client not found")
	case errors.Is(err, authsvc.ErrInvalidArgument), errors.Is(err, authsvc.ErrInvalidScope):
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "authsvc: "))
	case errors.Is(err, authsvc.ErrInvalidClient):
		writeError(w, http.StatusUnauthorized, "invalid client credentials")
	case errors.Is(err, authsvc.ErrInvalidToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="authd", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "invalid token")
	default:
		s.log.Error("internal error", "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

// errBody is a request body we cannot use; status says why.
type errBody struct {
	status int
	msg    string
}

func (e *errBody) Error() string { return e.msg }

// readParams reads a form (urlencoded or multipart) or JSON object body into
// url.Values, bounded by maxBodyBytes. A JSON array of strings becomes one
// space-separated value (for "scope"); booleans and numbers become text.
func readParams(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		// No body at all is an empty form; a body without a type is refused.
		n, err := io.Copy(io.Discard, io.LimitReader(r.Body, 1))
		if err != nil {
			return nil, bodyError(err)
		}
		if n == 0 {
			return url.Values{}, nil
		}
		return nil, &errBody{http.StatusUnsupportedMediaType, "Content-Type must be application/x-www-form-urlencoded, multipart/form-data or application/json"}
	}
	mt, err := mediaType(ct)
	if err != nil {
		return nil, &errBody{http.StatusUnsupportedMediaType, "malformed Content-Type"}
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		b, err := readBody(r)
		if err != nil {
			return nil, bodyError(err)
		}
		v, err := parseForm(b)
		if err != nil {
			return nil, &errBody{http.StatusBadRequest, "malformed form body"}
		}
		return v, nil
	case "multipart/form-data":
		if err := r.ParseMultipartForm(maxBodyBytes); err != nil {
			return nil, bodyError(err)
		}
		if len(r.MultipartForm.File) > 0 {
			return nil, &errBody{http.StatusBadRequest, "file uploads are not accepted"}
		}
		return url.Values(r.MultipartForm.Value), nil
	case "application/json":
		return readJSONParams(r.Body)
	default:
		return nil, &errBody{http.StatusUnsupportedMediaType, "Content-Type must be application/x-www-form-urlencoded, multipart/form-data or application/json"}
	}
}

// readBody reads a whole (already bounded) body: in one buffer of the
// announced length when there is one, as every client we know sends it.
func readBody(r *http.Request) (string, error) {
	if r.ContentLength <= 0 || r.ContentLength > maxBodyBytes {
		b, err := io.ReadAll(r.Body)
		return string(b), err
	}
	// Not io.Copy: into a strings.Builder it would allocate 32 KiB a call.
	b := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(r.Body, b); err != nil {
		return "", err
	}
	return string(b), nil
}

// maxFormParams is url.ParseQuery's own limit.
const maxFormParams = 10000

// parseForm is url.ParseQuery (the same values, and an error where it
// errs) without its cost on values that need no unescaping (tokens,
// generated secrets, ids): url.QueryUnescape inspects them a byte at a time.
func parseForm(s string) (url.Values, error) {
	if strings.Count(s, "&") >= maxFormParams {
		return nil, errors.New("too many form parameters")
	}
	v := make(url.Values, 4)
	var firstErr error
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		if strings.Contains(pair, ";") {
			if firstErr == nil {
				firstErr = errors.New("invalid semicolon separator in query")
			}
			continue
		}
		if pair == "" {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		key, err := unescapeForm(key)
		if err == nil {
			value, err = unescapeForm(value)
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		v[key] = append(v[key], value)
	}
	return v, firstErr
}

func unescapeForm(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	return url.QueryUnescape(s)
}

// mediaType is mime.ParseMediaType's media type, without its cost (a map
// per call) for the plain types clients send.
func mediaType(ct string) (string, error) {
	switch ct {
	case "application/x-www-form-urlencoded", "application/json":
		return ct, nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	return mt, err
}

func readJSONParams(body io.Reader) (url.Values, error) {
	dec := json.NewDecoder(body)
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, bodyError(err)
	}
	if dec.More() {
		return nil, &errBody{http.StatusBadRequest, "malformed JSON body: trailing data"}
	}
	if obj == nil {
		return nil, &errBody{http.StatusBadRequest, "malformed JSON body: want an object"}
	}
	v := url.Values{}
	for k, val := range obj {
		switch x := val.(type) {
		case nil:
		case string:
			v.Set(k, x)
		case bool:
			v.Set(k, strconv.FormatBool(x))
		case json.Number:
			v.Set(k, x.String())
		case []any:
			parts := make([]string, 0, len(x))
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, &errBody{http.StatusBadRequest, fmt.Sprintf("malformed JSON body: %q must be a string or an array of strings", k)}
				}
				parts = append(parts, s)
			}
			v.Set(k, strings.Join(parts, " "))
		default:
			return nil, &errBody{http.StatusBadRequest, fmt.Sprintf("malformed JSON body: %q has an unsupported type", k)}
		}
	}
	return v, nil
}

func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &errBody{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", maxBodyBytes)}
	}
	if errors.Is(err, http.ErrNotMultipart) || errors.Is(err, http.ErrMissingBoundary) {
		return &errBody{http.StatusBadRequest, "malformed multipart body"}
	}
	return &errBody{http.StatusBadRequest, "malformed request body"}
}

// param returns the single value of key; a parameter given twice is an
// error (RFC 6749 §3.2: parameters must not be repeated).
func param(v url.Values, key string) (string, error) {
	vals := v[key]
	switch len(vals) {
	case 0:
		return "", nil
	case 1:
		return vals[0], nil
	default:
		return "", &errBody{http.StatusBadRequest, fmt.Sprintf("parameter %q given more than once", key)}
	}
}

// params reads the named parameters of the body; ok is false when a reply
// has been written.
func params(w http.ResponseWriter, r *http.Request, keys ...string) (map[string]string, bool) {
	v, err := readParams(w, r)
	if err == nil {
		out := make(map[string]string, len(keys))
		for _, k := range keys {
			if out[k], err = param(v, k); err != nil {
				break
			}
		}
		if err == nil {
			return out, true
		}
	}
	var eb *errBody
	if errors.As(err, &eb) {
		writeError(w, eb.status, eb.msg)
	} else {
		writeError(w, http.StatusBadRequest, "malformed request body")
	}
	return nil, false
}

// parseBool accepts what PostgreSQL accepts for a boolean, as the seed
// service passed is_admin straight to it.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "false", "f", "0", "no", "n", "off":
		return false, nil
	case "true", "t", "1", "yes", "y", "on":
		return true, nil
	}
	return false, errors.New("is_admin must be true or false")
}

// bearer reads the request's bearer token, answering 401 (none) or 400
// (malformed) itself when there is none to use.
func bearer(w http.ResponseWriter, r *http.Request) (string, bool) {
	tok, err := authsvc.BearerToken(r)
	switch {
	case err == nil:
		return tok, true
	case errors.Is(err, authsvc.ErrNoToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="authd"`)
		writeError(w, http.StatusUnauthorized, "an Authorization: Bearer token is required")
	case errors.Is(err, authsvc.ErrInvalidToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="authd", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "invalid token")
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="authd", error="invalid_request"`)
		writeError(w, http.StatusBadRequest, "malformed Authorization header")
	}
	return "", false
}

// requireAdmin lets the request through only for a valid token whose client
// exists now and is an admin now: not on the strength of the token's
// isAdmin claim, which outlives a deletion or a demotion.
func (s *server) requireAdmin(w http.ResponseWriter, r *http.Request) (*authsvc.Claims, bool) {
	tok, ok := bearer(w, r)
	if !ok {
		return nil, false
	}
	claims, err := s.auth.Verify(r.Context(), tok)
	if err != nil {
		s.fail(w, r, err)
		return nil, false
	}
	setClient(r, claims.Subject)
	c, err := s.auth.Client(r.Context(), claims.Subject)
	if errors.Is(err, authsvc.ErrClientNotFound) {
		s.fail(w, r, authsvc.ErrInvalidToken)
		return nil, false
	}
	if err != nil {
		s.fail(w, r, err)
		return nil, false
	}
	if !c.IsAdmin {
		w.Header().Set("WWW-Authenticate", `Bearer realm="authd", error="insufficient_scope"`)
		writeError(w, http.StatusForbidden, "admin rights required")
		return nil, false
	}
	return claims, true
}

// createClient: POST /client (admin). Fields client_id, client_secret
// (optional: generated when absent), is_admin, scope.
func (s *server) createClient(w http.ResponseWriter, r *http.Request) {
	caller, ok := s.requireAdmin(w, r)
	if !ok {
		return
	}
	p, ok := params(w, r, "client_id", "client_secret", "is_admin", "scope")
	if !ok {
		return
	}
	if p["client_id"] == "" {
		writeError(w, http.StatusBadRequest, "client_id is required")
		return
	}
	isAdmin, err := parseBool(p["is_admin"])
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	c, secret, err := s.auth.CreateClient(r.Context(), authsvc.NewClient{
		ID: p["client_id"], Secret: p["client_secret"], IsAdmin: isAdmin, Scopes: authsvc.ParseScope(p["scope"]),
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("audit: client created", "client_id", c.ID, "is_admin", c.IsAdmin, "by", caller.Subject)
	noStore(w)
	writeJSON(w, http.StatusCreated, map[string]any{
		"success": true, "client_id": c.ID, "client_secret": secret,
		"id": c.RowID, "is_admin": c.IsAdmin, "scope": strings.Join(c.Scopes, " "),
	})
}

// deleteClient: DELETE /client (client_id in the body or query) or
// DELETE /client/{id} (admin).
func (s *server) deleteClient(w http.ResponseWriter, r *http.Request) {
	caller, ok := s.requireAdmin(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if id == "" {
		p, ok := params(w, r, "client_id")
		if !ok {
			return
		}
		id = p["client_id"]
		if id == "" {
			q, err := param(r.URL.Query(), "client_id")
			if err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
			id = q
		}
	}
	if id == "" {
		writeError(w, http.StatusBadRequest, "client_id is required")
		return
	}
	if err := s.auth.DeleteClient(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("audit: client deleted", "client_id", id, "by", caller.Subject)
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

// logoutClient: POST /client/{id}/logout (admin) logs a client out
// everywhere: every token it was issued so far is refused, on every instance.
func (s *server) logoutClient(w http.ResponseWriter, r *http.Request) {
	caller, ok := s.requireAdmin(w, r)
	if !ok {
		return
	}
	c, err := s.auth.LogoutClient(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("audit: client logged out everywhere", "client_id", c.ID, "by", caller.Subject)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "client_id": c.ID, "tokens_valid_after": c.TokensValidAfter.Unix()})
}

// rotateSecret: POST /client/{id}/rotate-secret (admin). Optional fields:
// client_secret (else generated), grace (a duration such as 24h during which
// the old secret still works), logout_everywhere (also refuse every token
// issued so far).
func (s *server) rotateSecret(w http.ResponseWriter, r *http.Request) {
	caller, ok := s.requireAdmin(w, r)
	if !ok {
		return
	}
	p, ok := params(w, r, "client_secret", "grace", "logout_everywhere")
	if !ok {
		return
	}
	var opt authsvc.RotateSecret
	opt.Secret = p["client_secret"]
	if g := p["grace"]; g != "" {
		d, err := time.ParseDuration(g)
		if err != nil || d < 0 || d > 30*24*time.Hour {
			writeError(w, http.StatusBadRequest, "grace must be a duration such as 24h, at most 720h")
			return
		}
		opt.Grace = d
	}
	var err error
	if opt.LogoutEverywhere, err = parseBool(p["logout_everywhere"]); err != nil {
		writeError(w, http.StatusBadRequest, "logout_everywhere must be true or false")
		return
	}
	c, secret, err := s.auth.RotateSecret(r.Context(), r.PathValue("id"), opt)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("audit: client secret rotated", "client_id", c.ID, "grace", opt.Grace.String(), "logout_everywhere", opt.LogoutEverywhere, "by", caller.Subject)
	noStore(w)
	out := map[string]any{"success": true, "client_id": c.ID, "client_secret": secret}
	if opt.Grace > 0 {
		out["old_secret_valid_until"] = time.Now().Add(opt.Grace).Unix()
	}
	writeJSON(w, http.StatusOK, out)
}

// clientJSON is a client as GET /clients shows it: never a secret or hash.
type clientJSON struct {
	ClientID  string    `json:"client_id"`
	ID        int64     `json:"id"`
	IsAdmin   bool      `json:"is_admin"`
	Scope     string    `json:"scope"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func toClientJSON(c authsvc.Client) clientJSON {
	return clientJSON{ClientID: c.ID, ID: c.RowID, IsAdmin: c.IsAdmin, Scope: strings.Join(c.Scopes, " "),
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

// listClients: GET /clients (admin).
func (s *server) listClients(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireAdmin(w, r); !ok {
		return
	}
	clients, err := s.auth.Clients(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]clientJSON, len(clients))
	for i, c := range clients {
		out[i] = toClientJSON(c)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "clients": out})
}

// authenticate: POST /auth, the seed service's token route. Fields
// client_id and client_secret; the token carries all the client's scopes.
func (s *server) authenticate(w http.ResponseWriter, r *http.Request) {
	p, ok := params(w, r, "client_id", "client_secret")
	if !ok {
		return
	}
	if p["client_id"] == "" || p["client_secret"] == "" {
		writeError(w, http.StatusBadRequest, "client_id and client_secret are required")
		return
	}
	if !s.allowAttempt(w, r, p["client_id"], false) {
		return
	}
	tok, err := s.auth.Authenticate(r.Context(), p["client_id"], p["client_secret"], authsvc.TokenRequest{})
	s.noteAttempt(r, p["client_id"], err)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	secs := int64(tok.ExpiresIn / time.Second)
	noStore(w)
	// expiresIn as the seed's article documents it; expiresin (a string) as
	// its published code returns it, so clients of either keep working.
	writeJSON(w, http.StatusOK, authResponse{
		Token: tok.AccessToken, ExpiresIn: secs, ExpiresInString: strconv.FormatInt(secs, 10), IsAdmin: tok.IsAdmin,
	})
}

// authResponse is /auth's body. Hot responses are structs, not maps: the
// same bytes (fields in the sorted order a map's keys are written in)
// without a map and a sort per request.
type authResponse struct {
	ExpiresIn       int64  `json:"expiresIn"`
	ExpiresInString string `json:"expiresin"`
	IsAdmin         bool   `json:"isAdmin"`
	Token           string `json:"token"`
}

// verify: POST /verify with a bearer token; answers the token's claims.
func (s *server) verify(w http.ResponseWriter, r *http.Request) {
	tok, ok := bearer(w, r)
	if !ok {
		return
	}
	claims, err := s.auth.Verify(r.Context(), tok)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	setClient(r, claims.Subject)
	writeJSON(w, http.StatusOK, claims)
}

// logout: POST /logout with the token in the form field "token" (the
// seed's way) or as a bearer token.
func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	p, ok := params(w, r, "token")
	if !ok {
		return
	}
	tok := p["token"]
	if len(r.Header.Values("Authorization")) > 0 {
		h, ok := bearer(w, r)
		if !ok {
			return
		}
		if tok != "" && tok != h {
			writeError(w, http.StatusBadRequest, "the token field and the Authorization header name different tokens")
			return
		}
		tok = h
	}
	if tok == "" {
		writeError(w, http.StatusBadRequest, "token is required (form field token or Authorization: Bearer)")
		return
	}
	if err := s.auth.Logout(r.Context(), tok); err != nil {
		if errors.Is(err, authsvc.ErrInvalidToken) {
			writeError(w, http.StatusBadRequest, "invalid token")
			return
		}
		s.fail(w, r, err)
		return
	}
	s.log.Info("audit: token logged out", "remote", info(r).addr)
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
}

// readyz: ready when the store answers (the keys are loaded before authd
// listens at all), and not shutting down.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining != nil && s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "draining"})
		return
	}
	if err := s.auth.Ping(r.Context()); err != nil {
		s.log.Warn("not ready", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
}
