// Command authbench measures authd under load, side by side with a bare Go
// net/http handler on the same machine, and prints each route's throughput
// as a ratio of the bare handler's: the distance to the limit of HTTP on
// the box, which stays meaningful on a noisy or slower machine.
//
//	go run ./cmd/authbench                         # SQLite, 16 connections, 5 s a route
//	go run ./cmd/authbench -store postgres         # a fresh PostgreSQL database, dropped after
//	go run ./cmd/authbench -url http://127.0.0.1:5000 -admin-id admin -admin-secret …
//	go run ./cmd/authbench -scale -clients 1000000 -revocations 1000000 [-store postgres]
//
// It builds cmd/authd, starts it as a separate process on a free loopback
// port with a fresh store, makes the clients it needs over HTTP, then drives
// each route for -duration with -conns keep-alive connections, one request
// in flight on each (a closed loop, as wrk does). It reports requests/s,
// the ratio to the bare handler, p50/p99/p999 latency, errors, authd's RSS
// and its start-to-ready time, as a table and, with -json, as JSON.
//
// The load generator runs on the same cores as the server: see
// docs/performance.md for what that means for the figures.
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := mainErr(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "authbench:", err)
		os.Exit(1)
	}
}

// options are authbench's flags.
type options struct {
	store       string
	postgres    string
	target      string
	adminID     string
	adminSecret string
	authd       string
	alg         string
	duration    time.Duration
	warmup      time.Duration
	conns       int
	rounds      int
	jsonFile    string
	routes      []string
	serveBare   string
	scale       bool
	clients     int
	// baselineClients (with -scale): a second, smaller store to measure
	// token issue against in turns.
	baselineClients int
	revocations     int
	logouts         int
	instanceCPU     float64
}

// allRoutes are the workloads, in the order they run.
var allRoutes = []string{"token", "auth", "verify", "introspect", "jwks", "mixed"}

// routeInfo names a workload and its target ratio to the bare handler.
var routeInfo = map[string]struct {
	label  string
	target float64 // 0: none
}{
	"bare":       {"bare net/http handler", 0},
	"token":      {"POST /oauth/token", 0.35},
	"auth":       {"POST /auth", 0},
	"verify":     {"POST /verify", 0.6},
	"introspect": {"POST /oauth/introspect", 0.6},
	"jwks":       {"GET /.well-known/jwks.json", 0.8},
	"mixed":      {"mixed 1 token : 20 verify", 0},
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("authbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.store, "store", "sqlite", "store of the authd authbench starts: sqlite or postgres")
	fs.StringVar(&o.postgres, "postgres", "", "PostgreSQL server URL for -store postgres; authbench creates a fresh database there and drops it after (default $AUTHSVC_TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)")
	fs.StringVar(&o.target, "url", "", "drive an authd already running at this URL instead of starting one (needs -admin-id and -admin-secret; no RSS or start time then)")
	fs.StringVar(&o.adminID, "admin-id", "", "with -url: an admin client's id, to create the benchmark's clients (deleted after)")
	fs.StringVar(&o.adminSecret, "admin-secret", "", "with -url: that admin client's secret")
	fs.StringVar(&o.authd, "authd", "", "an authd binary to start instead of building ./cmd/authd")
	fs.StringVar(&o.alg, "alg", "EdDSA", "signing algorithm of the authd authbench starts (AUTHSVC_SIGNING_ALG)")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "how long each route is measured")
	fs.DurationVar(&o.warmup, "warmup", 0, "load before each measurement, not counted (default duration/5, at most 1s)")
	fs.IntVar(&o.conns, "conns", 16, "concurrent keep-alive connections")
	fs.StringVar(&o.jsonFile, "json", "", "also write the results as JSON to this file (- for stdout)")
	routes := fs.String("routes", strings.Join(allRoutes, ","), "comma-separated workloads: "+strings.Join(allRoutes, ", "))
	fs.IntVar(&o.rounds, "rounds", 1, "measure every route this many times and report each one's median ratio")
	fs.StringVar(&o.serveBare, "serve-bare", "", "internal: serve the bare handler on this address")
	fs.BoolVar(&o.scale, "scale", false, "measure how costs grow with the store instead: seed -clients and -revocations by bulk insert and report start, memory, listing, feed snapshot, RemoteVerifier, token, verify and logout figures (docs/performance.md)")
	fs.IntVar(&o.clients, "clients", 100_000, "with -scale: clients to seed")
	fs.IntVar(&o.baselineClients, "baseline-clients", 0, "with -scale: also seed a second store of this many clients (and revocations in proportion) and measure POST /oauth/token over random clients on both in turns, for a side-by-side ratio")
	fs.IntVar(&o.revocations, "revocations", 100_000, "with -scale: live revocations to seed")
	fs.IntVar(&o.logouts, "logouts", 8000, "with -scale: tokens logged out to measure logouts per second")
	fs.Float64Var(&o.instanceCPU, "instance-cpu", 0, "with -scale -store postgres: also measure logouts with one and two instances each held to this many cores (a cgroup CPU quota: Linux, root), as instances on machines of their own")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.serveBare != "" {
		return o, nil
	}
	if o.duration <= 0 || o.duration > time.Hour {
		return o, errors.New("-duration must be between 0 and 1h")
	}
	if o.rounds < 1 || o.rounds > 100 {
		return o, errors.New("-rounds must be between 1 and 100")
	}
	if o.conns < 1 || o.conns > 1024 {
		return o, errors.New("-conns must be between 1 and 1024")
	}
	if o.warmup == 0 {
		o.warmup = min(o.duration/5, time.Second)
	}
	if o.store != "sqlite" && o.store != "postgres" {
		return o, fmt.Errorf("-store must be sqlite or postgres, not %q", o.store)
	}
	if o.instanceCPU != 0 && (o.instanceCPU < 0.01 || o.instanceCPU > float64(runtime.NumCPU()) || !o.scale || o.store != "postgres") {
		return o, errors.New("-instance-cpu needs -scale -store postgres, and between 0.01 and the machine's cores")
	}
	if o.scale && (o.logouts < 1 || o.logouts > 1_000_000) {
		return o, errors.New("-logouts must be between 1 and 1,000,000")
	}
	if o.scale && (o.clients < 0 || o.revocations < 0 || o.clients > 100_000_000 || o.revocations > 100_000_000) {
		return o, errors.New("-clients and -revocations must be between 0 and 100,000,000")
	}
	if o.scale && (o.baselineClients < 0 || o.baselineClients > o.clients) {
		return o, errors.New("-baseline-clients must be between 0 and -clients")
	}
	if o.scale && o.target != "" {
		return o, errors.New("-scale seeds a store of its own: it cannot drive -url")
	}
	if o.target != "" && (o.adminID == "" || o.adminSecret == "") {
		return o, errNoAdmin
	}
	if o.postgres == "" {
		o.postgres = os.Getenv("AUTHSVC_TEST_DATABASE_URL")
	}
	if o.postgres == "" {
		o.postgres = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	for _, r := range strings.Split(*routes, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if _, ok := routeInfo[r]; !ok || r == "bare" {
			return o, fmt.Errorf("unknown route %q in -routes (known: %s)", r, strings.Join(allRoutes, ", "))
		}
		o.routes = append(o.routes, r)
	}
	return o, nil
}

// report is everything one run measured; -json writes it.
type report struct {
	Time       time.Time `json:"time"`
	GoVersion  string    `json:"go_version"`
	OS         string    `json:"os"`
	CPUs       int       `json:"cpus"`
	Target     string    `json:"target"` // "authd started by authbench" or the -url
	Store      string    `json:"store,omitempty"`
	Alg        string    `json:"alg,omitempty"`
	Conns      int       `json:"conns"`
	DurationS  float64   `json:"duration_s"`
	WarmupS    float64   `json:"warmup_s"`
	Rounds     int       `json:"rounds"`
	Bare       []result  `json:"bare"`     // one before each route and one after the last
	BareRPS    float64   `json:"bare_rps"` // their mean
	Routes     []result  `json:"routes"`
	Authd      *procInfo `json:"authd,omitempty"`
	TargetsMet *bool     `json:"targets_met,omitempty"`
}

// procInfo is what authbench measured of the authd process it started.
type procInfo struct {
	StartToReadyMs   float64 `json:"start_to_ready_ms"`   // fresh store: migrations and first key included
	RestartToReadyMs float64 `json:"restart_to_ready_ms"` // the same store again
	RSSIdleMB        float64 `json:"rss_idle_mb"`         // after the setup, before the load
	RSSMaxMB         float64 `json:"rss_max_mb"`          // largest VmRSS sampled under load
	RSSAfterMB       float64 `json:"rss_after_mb"`        // after the load
	HWMMB            float64 `json:"vmhwm_mb"`            // the kernel's peak RSS (VmHWM)
	RSSTargetMB      float64 `json:"rss_target_mb"`
	StartTargetMs    float64 `json:"start_target_ms,omitempty"`
}

const (
	rssTargetMB   = 40
	startTargetMs = 150
)

func mainErr(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if o.serveBare != "" {
		return serveBare(ctx, o.serveBare)
	}
	if o.scale {
		return runScale(ctx, o, stdout)
	}
	dir, err := os.MkdirTemp("", "authbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	rep := &report{
		Time: time.Now().UTC().Truncate(time.Second), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		CPUs: runtime.NumCPU(), Conns: o.conns, Rounds: o.rounds, DurationS: o.duration.Seconds(), WarmupS: o.warmup.Seconds(),
	}

	// The bare handler, in a process of its own like authd.
	bare, err := startBare(ctx)
	if err != nil {
		return err
	}
	defer bare.stop()

	// authd: the one at -url, or one started here on a fresh store.
	var proc *authdProc
	var restart func() (time.Duration, error)
	base := o.target
	adminID, adminSecret := o.adminID, o.adminSecret
	if base == "" {
		rep.Target, rep.Store, rep.Alg = "authd started by authbench", o.store, o.alg
		bin := o.authd
		if bin == "" {
			fmt.Fprintln(os.Stderr, "authbench: building cmd/authd")
			if bin, err = buildAuthd(ctx, dir); err != nil {
				return err
			}
		}
		dbURL := "sqlite:" + dir + "/authd.db"
		if o.store == "postgres" {
			pg, err := createPostgres(ctx, o.postgres)
			if err != nil {
				return err
			}
			defer func() {
				if err := pg.drop(); err != nil {
					fmt.Fprintf(os.Stderr, "authbench: drop database %s: %v\n", pg.name, err)
				}
			}()
			dbURL = pg.url
		}
		env := []string{
			"AUTHSVC_DATABASE_URL=" + dbURL,
			"AUTHSVC_SIGNING_ALG=" + o.alg,
			"AUTHSVC_LOG_LEVEL=error", // access lines would measure the logger
		}
		var ready time.Duration
		if proc, ready, err = startAuthd(ctx, bin, dir, env); err != nil {
			return err
		}
		defer func() {
			if proc != nil {
				proc.stop()
			}
		}()
		// The admin is made with the CLI, as the README's first step does,
		// with a generated secret: a chosen one (AUTHSVC_BOOTSTRAP_*) would
		// cost argon2id's 19 MiB in authd and count in its peak RSS.
		if adminID, adminSecret, err = createAdmin(ctx, bin, dir, env); err != nil {
			return err
		}
		rep.Authd = &procInfo{StartToReadyMs: ms(ready), RSSTargetMB: rssTargetMB}
		if o.store == "sqlite" {
			rep.Authd.StartTargetMs = startTargetMs
		}
		base = "http://" + proc.addr
		restart = func() (time.Duration, error) {
			proc.stop()
			proc = nil
			p, ready, err := startAuthd(ctx, bin, dir, env)
			if err != nil {
				return 0, err
			}
			proc = p
			return ready, nil
		}
	} else {
		rep.Target = o.target
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("-url must be http://HOST:PORT (plain HTTP on this machine), not %q", base)
	}
	if !isLoopbackHost(u.Hostname()) {
		return fmt.Errorf("-url %s: authbench loads only this machine (a loopback address)", base)
	}

	fx, err := setup(ctx, &api{base: base, client: &http.Client{Timeout: 30 * time.Second}}, adminID, adminSecret, u.Host, o.conns)
	if err != nil {
		return err
	}
	defer fx.cleanup()
	if proc != nil {
		rep.Authd.RSSIdleMB, _ = proc.memory()
	}

	fmt.Fprintf(os.Stderr, "authbench: %d connections, %s a route (after %s of warm-up), %d round(s)\n", o.conns, o.duration, o.warmup, o.rounds)
	measureBare := func() result {
		r := run(bare.addr, o.conns, o.warmup, o.duration, func(int) worker {
			return &staticWorker{req: bare.req, status: http.StatusOK}
		})
		r.Route = routeInfo["bare"].label
		rep.Bare = append(rep.Bare, r)
		fmt.Fprintf(os.Stderr, "authbench: %-28s %9.0f req/s\n", r.Route, r.RPS)
		return r
	}
	// The bare handler runs between every two routes, and each route's
	// ratio is to the mean of the bare runs just before and just after it:
	// a machine that slows down or speeds up during the run moves both.
	perRoute := make([][]result, len(o.routes))
	for range o.rounds {
		before := measureBare()
		for i, name := range o.routes {
			if err := ctx.Err(); err != nil {
				return err
			}
			var sampler *rssSampler
			if proc != nil {
				sampler = startSampler(proc)
			}
			r := run(u.Host, o.conns, o.warmup, o.duration, fx.workers(name))
			r.Route = routeInfo[name].label
			if sampler != nil {
				r.RSSMB = sampler.stop()
				rep.Authd.RSSMaxMB = max(rep.Authd.RSSMaxMB, r.RSSMB)
			}
			after := measureBare()
			r.BareRPS = round((before.RPS+after.RPS)/2, 0)
			if r.BareRPS > 0 {
				r.Ratio = round(r.RPS/r.BareRPS, 3)
			}
			perRoute[i] = append(perRoute[i], r)
			fmt.Fprintf(os.Stderr, "authbench: %-28s %9.0f req/s  %.2fx bare  %d errors\n", r.Route, r.RPS, r.Ratio, r.Errors)
			before = after
		}
	}
	if proc != nil {
		rep.Authd.RSSAfterMB, rep.Authd.HWMMB = proc.memory()
	}
	for _, b := range rep.Bare {
		rep.BareRPS += b.RPS / float64(len(rep.Bare))
	}
	rep.BareRPS = round(rep.BareRPS, 0)

	// Each route's figure is its round of median ratio; errors add up.
	met := true
	for i, name := range o.routes {
		rounds := slices.Clone(perRoute[i])
		slices.SortStableFunc(rounds, func(a, b result) int { return cmp.Compare(a.Ratio, b.Ratio) })
		r := rounds[(len(rounds)-1)/2]
		r.Errors = 0
		for _, x := range rounds {
			r.Errors += x.Errors
			if r.FirstError == "" {
				r.FirstError = x.FirstError
			}
		}
		if len(rounds) > 1 {
			r.Rounds = perRoute[i]
			for _, x := range rounds {
				r.RatioRange = append(r.RatioRange, x.Ratio)
			}
			r.RatioRange = []float64{r.RatioRange[0], r.RatioRange[len(rounds)-1]}
		}
		if t := routeInfo[name].target; t > 0 {
			ok := r.Ratio >= t && r.Errors == 0
			r.Target, r.TargetOK = fmt.Sprintf(">= %.2fx", t), &ok
			met = met && ok
		}
		rep.Routes = append(rep.Routes, r)
	}
	if restart != nil && ctx.Err() == nil {
		// Measured last: a restart on the store the run has filled.
		ready, err := restart()
		if err != nil {
			return err
		}
		rep.Authd.RestartToReadyMs = ms(ready)
	}
	if rep.Authd != nil {
		met = met && rep.Authd.HWMMB <= rssTargetMB
		if rep.Authd.StartTargetMs > 0 {
			met = met && rep.Authd.StartToReadyMs <= startTargetMs
		}
	}
	rep.TargetsMet = &met

	printTable(stdout, rep)
	if o.jsonFile != "" {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // ">= 0.35x" as it is
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
		if o.jsonFile == "-" {
			_, err = stdout.Write(buf.Bytes())
		} else {
			err = os.WriteFile(o.jsonFile, buf.Bytes(), 0o644)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func isLoopbackHost(h string) bool {
	return h == "localhost" || h == "::1" || strings.HasPrefix(h, "127.")
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 1) }

func round(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}

// printTable writes the report as a table.
func printTable(w io.Writer, rep *report) {
	fmt.Fprintf(w, "\nauthbench %s: %s", rep.Time.Format(time.RFC3339), rep.Target)
	if rep.Store != "" {
		fmt.Fprintf(w, ", %s store, %s", rep.Store, rep.Alg)
	}
	fmt.Fprintf(w, "; %d connections, %gs a route, %d round(s); %s, %d CPUs (load generator, bare handler and authd share them)\n",
		rep.Conns, rep.DurationS, rep.Rounds, rep.GoVersion, rep.CPUs)
	fmt.Fprintf(w, "× bare: a route's req/s over the bare handler's in the runs just before and after it")
	if rep.Rounds > 1 {
		fmt.Fprintf(w, "; the median round, (min-max) of all")
	}
	fmt.Fprintf(w, "\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "route\treq/s\t× bare\tp50 ms\tp99 ms\tp999 ms\terrors\ttarget\t")
	row := func(r result, ratio string) {
		target := ""
		if r.TargetOK != nil {
			mark := "met"
			if !*r.TargetOK {
				mark = "NOT met"
			}
			target = r.Target + " " + mark
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%.3f\t%.3f\t%.3f\t%d\t%s\t\n", r.Route, r.RPS, ratio,
			r.P50us/1000, r.P99us/1000, r.P999us/1000, r.Errors, target)
	}
	lo, hi := rep.Bare[0].RPS, rep.Bare[0].RPS
	for _, b := range rep.Bare {
		lo, hi = min(lo, b.RPS), max(hi, b.RPS)
	}
	fmt.Fprintf(tw, "%s (mean of %d runs, %.0f-%.0f)\t%.0f\t1.00\t\t\t\t\t\t\n", rep.Bare[0].Route, len(rep.Bare), lo, hi, rep.BareRPS)
	for _, r := range rep.Routes {
		ratio := fmt.Sprintf("%.2f", r.Ratio)
		if len(r.RatioRange) == 2 {
			ratio = fmt.Sprintf("%.2f (%.2f-%.2f)", r.Ratio, r.RatioRange[0], r.RatioRange[1])
		}
		row(r, ratio)
	}
	tw.Flush()
	for _, r := range rep.Routes {
		if r.FirstError != "" {
			fmt.Fprintf(w, "first error of %s: %s\n", r.Route, r.FirstError)
		}
	}
	if a := rep.Authd; a != nil {
		fmt.Fprintln(w)
		startNote := ""
		if a.StartTargetMs > 0 {
			startNote = fmt.Sprintf(" (target <= %.0f ms: %s)", a.StartTargetMs, metWord(a.StartToReadyMs <= a.StartTargetMs))
		}
		fmt.Fprintf(w, "authd start to ready: %.1f ms on a fresh store%s, %.1f ms on restart\n", a.StartToReadyMs, startNote, a.RestartToReadyMs)
		fmt.Fprintf(w, "authd RSS: %.1f MB idle, %.1f MB max sampled under load, %.1f MB after; peak VmHWM %.1f MB (target <= %.0f MB: %s)\n",
			a.RSSIdleMB, a.RSSMaxMB, a.RSSAfterMB, a.HWMMB, a.RSSTargetMB, metWord(a.HWMMB <= a.RSSTargetMB))
	}
	if rep.TargetsMet != nil {
		fmt.Fprintf(w, "targets: %s\n", map[bool]string{true: "all met", false: "NOT all met"}[*rep.TargetsMet])
	}
}

func metWord(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// rssSampler samples authd's RSS every 50 ms and keeps the largest.
type rssSampler struct {
	done chan struct{}
	wg   sync.WaitGroup
	max  float64
}

func startSampler(p *authdProc) *rssSampler {
	s := &rssSampler{done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			rss, _ := p.memory()
			s.max = max(s.max, rss)
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) stop() float64 {
	close(s.done)
	s.wg.Wait()
	return s.max
}

// fixture is what the workloads use: the clients authbench made, a pool of
// tokens, and the prepared requests.
type fixture struct {
	host       string
	tokenReq   request // POST /oauth/token, client_secret_basic
	authReq    request // POST /auth
	jwksReq    request
	tokens     []string
	cleanup    func()
	verifyReqs []request
	introReqs  []request
}

// setup creates a client that gets tokens and a resource-server client
// that introspects, and a pool of tokens (one per connection).
func setup(ctx context.Context, a *api, adminID, adminSecret, host string, conns int) (*fixture, error) {
	admin, err := a.token(adminID, adminSecret)
	if err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	suffix := randomHex(4)
	callerID, rsID := "authbench-caller-"+suffix, "authbench-rs-"+suffix
	callerSecret, err := a.createClient(admin, callerID, "bench:read bench:write")
	if err != nil {
		return nil, err
	}
	rsSecret, err := a.createClient(admin, rsID, "")
	if err != nil {
		a.deleteClient(admin, callerID)
		return nil, err
	}
	fx := &fixture{host: host, cleanup: func() {
		// The admin token may have expired on a long run: get a new one.
		if tok, err := a.token(adminID, adminSecret); err == nil {
			a.deleteClient(tok, callerID)
			a.deleteClient(tok, rsID)
		}
	}}
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	basic := func(id, secret string) map[string]string {
		cred := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
		return map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Basic " + cred}
	}
	fx.tokenReq = newRequest("POST", host, "/oauth/token", basic(callerID, callerSecret), "grant_type=client_credentials")
	fx.authReq = newRequest("POST", host, "/auth", form, url.Values{"client_id": {callerID}, "client_secret": {callerSecret}}.Encode())
	fx.jwksReq = newRequest("GET", host, "/.well-known/jwks.json", nil, "")
	rsHeader := basic(rsID, rsSecret)
	for range conns {
		if err := ctx.Err(); err != nil {
			fx.cleanup()
			return nil, err
		}
		tok, err := a.token(callerID, callerSecret)
		if err != nil {
			fx.cleanup()
			return nil, err
		}
		fx.tokens = append(fx.tokens, tok)
		fx.verifyReqs = append(fx.verifyReqs, verifyRequest(host, tok))
		fx.introReqs = append(fx.introReqs, newRequest("POST", host, "/oauth/introspect", rsHeader, "token="+tok))
	}
	// The resource server authenticates once before the load: until a
	// client has succeeded from an address, authd's throttle lets it have
	// only a pair burst (10) of attempts in flight from there, and the
	// introspect workload starts -conns of them at once. (The caller has
	// just fetched its tokens.)
	if status, body, err := a.post("/oauth/introspect", url.Values{"token": {fx.tokens[0]}}, rsHeader); err != nil || status != http.StatusOK {
		fx.cleanup()
		return nil, fmt.Errorf("introspect as %s: %d %v %v", rsID, status, body, err)
	}
	return fx, nil
}

func verifyRequest(host, tok string) request {
	return newRequest("POST", host, "/verify", map[string]string{"Authorization": "Bearer " + tok}, "")
}

// workers returns the worker maker of a workload.
func (fx *fixture) workers(name string) func(i int) worker {
	switch name {
	case "token":
		return func(int) worker {
			return &staticWorker{req: fx.tokenReq, status: http.StatusOK, contains: []byte(`"access_token":"`)}
		}
	case "auth":
		return func(int) worker {
			return &staticWorker{req: fx.authReq, status: http.StatusOK, contains: []byte(`"token":"`)}
		}
	case "verify":
		return func(i int) worker {
			return &staticWorker{req: fx.verifyReqs[i%len(fx.verifyReqs)], status: http.StatusOK, contains: []byte(`"jti":"`)}
		}
	case "introspect":
		return func(i int) worker {
			return &staticWorker{req: fx.introReqs[i%len(fx.introReqs)], status: http.StatusOK, contains: []byte(`"active":true`)}
		}
	case "jwks":
		return func(int) worker {
			return &staticWorker{req: fx.jwksReq, status: http.StatusOK, contains: []byte(`"keys":[`)}
		}
	case "mixed":
		return func(i int) worker {
			return &mixedWorker{fx: fx, verify: fx.verifyReqs[i%len(fx.verifyReqs)]}
		}
	}
	panic("unknown workload " + name)
}

// staticWorker sends the same request again and again.
type staticWorker struct {
	req      request
	status   int
	contains []byte
}

func (w *staticWorker) next() request { return w.req }

func (w *staticWorker) check(resp response) bool {
	return resp.status == w.status && (w.contains == nil || bytes.Contains(resp.body, w.contains))
}

// mixedWorker gets a token from /oauth/token, then verifies it 20 times
// (its first verification is of a token never seen), and again.
type mixedWorker struct {
	fx      *fixture
	n       int
	verify  request
	pending bool // the last request sent was a token request
}

const verifiesPerToken = 20

func (w *mixedWorker) next() request {
	w.pending = w.n%(verifiesPerToken+1) == 0
	w.n++
	if w.pending {
		return w.fx.tokenReq
	}
	return w.verify
}

func (w *mixedWorker) check(resp response) bool {
	if resp.status != http.StatusOK {
		return false
	}
	if !w.pending {
		return bytes.Contains(resp.body, []byte(`"jti":"`))
	}
	const key = `"access_token":"`
	i := bytes.Index(resp.body, []byte(key))
	if i < 0 {
		return false
	}
	rest := resp.body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return false
	}
	w.verify = verifyRequest(w.fx.host, string(rest[:j]))
	return true
}

// bareProc is the bare handler's process.
type bareProc struct {
	cmd  *exec.Cmd
	addr string
	req  request
}

// startBare runs this program again with -serve-bare, so that the bare
// handler is a process of its own, as authd is.
func startBare(ctx context.Context) (*bareProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-serve-bare", addr)
	cmd.Stderr = os.Stderr
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &bareProc{cmd: cmd, addr: addr, req: newRequest("GET", addr, "/", nil, "")}
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if err := ctx.Err(); err != nil {
			p.stop()
			return nil, err
		}
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return p, nil
		}
	}
	p.stop()
	return nil, errors.New("the bare handler did not start")
}

func (p *bareProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// bareHandler is the limit of HTTP on the machine: net/http answering a
// tiny body, with nothing else to do.
func bareHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "ok\n")
}

func serveBare(ctx context.Context, addr string) error {
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(bareHandler), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
