package main

// Starting authd as a real, separate process, and the store it runs on.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/lib/pq" // to create the benchmark's PostgreSQL database

	"github.com/authsvc/authsvc/internal/dburl"
)

// buildAuthd builds cmd/authd into dir and returns the binary's path.
func buildAuthd(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "authd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/authsvc/authsvc/cmd/authd")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/authd (run authbench from inside the module, or give -authd BINARY): %w", err)
	}
	return bin, nil
}

// freeAddr returns a free loopback address.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// pgDatabase is a fresh PostgreSQL database, dropped by drop.
type pgDatabase struct {
	admin string // URL of the server's maintenance database
	name  string
	url   string // URL of the new database
}

// createPostgres creates database authbench_<random> on the server of base.
func createPostgres(ctx context.Context, base string) (*pgDatabase, error) {
	db, err := sql.Open("postgres", base)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	name := "authbench_" + randomHex(6)
	// A database name cannot be a bound parameter; this one is made of hex
	// digits we generated.
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, fmt.Errorf("create database on %s: %w", dburl.Redact(base), err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	u.Path = "/" + name
	return &pgDatabase{admin: base, name: name, url: u.String()}, nil
}

// backends lists the server processes connected to the database.
func (p *pgDatabase) backends() []int {
	db, err := sql.Open("postgres", p.admin)
	if err != nil {
		return nil
	}
	defer db.Close()
	var pids []int
	rows, err := db.Query(`SELECT pid FROM pg_stat_activity WHERE datname = $1`, p.name)
	if err != nil {
		return nil
	}
	defer rows.Close()
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (p *pgDatabase) drop() error {
	db, err := sql.Open("postgres", p.admin)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+p.name+" WITH (FORCE)")
	return err
}

// authdProc is a running authd.
type authdProc struct {
	cmd    *exec.Cmd
	addr   string
	stderr *bytes.Buffer
	exited chan error
}

// readyWithin is how long startAuthd waits for /readyz (the scale mode
// raises it: ten million revocations take a while to load).
var readyWithin = 30 * time.Second

// startAuthd starts bin with env on a free port and waits until /readyz
// answers 200. It returns the process and the time from start to ready.
func startAuthd(ctx context.Context, bin, dir string, env []string) (*authdProc, time.Duration, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.Command(bin, "serve")
	cmd.Dir = dir // so that no .env of the caller's is read
	dieWithParent(cmd)
	cmd.Env = append(cleanEnv(), append(env, "AUTHSVC_ADDR="+addr)...)
	p := &authdProc{cmd: cmd, addr: addr, stderr: &bytes.Buffer{}, exited: make(chan error, 1)}
	cmd.Stderr = &limitedWriter{w: p.stderr, n: 64 << 10}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	go func() { p.exited <- cmd.Wait() }()
	client := &http.Client{Timeout: time.Second}
	readyURL := "http://" + addr + "/readyz"
	for deadline := start.Add(readyWithin); time.Now().Before(deadline); {
		select {
		case err := <-p.exited:
			return nil, 0, fmt.Errorf("authd exited before it was ready (%v): %s", err, p.stderr)
		case <-ctx.Done():
			p.stop()
			return nil, 0, ctx.Err()
		default:
		}
		resp, err := client.Get(readyURL)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, time.Since(start), nil
			}
		}
		time.Sleep(time.Millisecond)
	}
	p.stop()
	return nil, 0, fmt.Errorf("authd not ready after %s: %s", readyWithin, p.stderr)
}

// createAdmin makes an admin client with `authd client create` on the
// store of env, and returns its id and generated secret.
func createAdmin(ctx context.Context, bin, dir string, env []string) (id, secret string, err error) {
	id = "authbench-admin-" + randomHex(4)
	cmd := exec.CommandContext(ctx, bin, "client", "create", "--id", id, "--admin", "--json")
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("authd client create: %w: %s", err, stderr.String())
	}
	var c struct {
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal(out, &c); err != nil || c.Secret == "" {
		return "", "", fmt.Errorf("authd client create: unexpected output %q", out)
	}
	return id, c.Secret, nil
}

// stop ends authd with SIGTERM (SIGKILL after 10 s) and waits for it.
func (p *authdProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// memory reads the process's resident set (VmRSS) and its peak (VmHWM), in
// MB (10^6 bytes).
func (p *authdProc) memory() (rss, hwm float64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[0], 64)
		switch k {
		case "VmRSS":
			rss = kb * 1024 / 1e6
		case "VmHWM":
			hwm = kb * 1024 / 1e6
		}
	}
	return rss, hwm
}

// cleanEnv is our environment without the variables authd reads, so that
// the caller's configuration does not leak into the benchmark.
func cleanEnv() []string {
	seed := map[string]bool{"DBNAME": true, "DBUSER": true, "DBPASSWORD": true, "DBHOST": true, "DBPORT": true,
		"DBSSLMODE": true, "AUTHSECRET": true, "EXPIRESSECONDS": true}
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AUTHSVC_") || seed[k] {
			continue
		}
		out = append(out, kv)
	}
	return out
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(b []byte) (int, error) {
	if l.n <= 0 {
		return len(b), nil
	}
	if len(b) > l.n {
		l.w.Write(b[:l.n])
	} else {
		l.w.Write(b)
	}
	l.n -= len(b)
	return len(b), nil
}

// api is the setup client: it makes the clients and tokens the load uses,
// over authd's own routes. It is not on the measured path.
type api struct {
	base   string
	client *http.Client
}

func (a *api) post(path string, v url.Values, header map[string]string) (int, map[string]any, error) {
	req, err := http.NewRequest(http.MethodPost, a.base+path, strings.NewReader(v.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, val := range header {
		req.Header.Set(k, val)
	}
	return a.send(req)
}

func (a *api) send(req *http.Request) (int, map[string]any, error) {
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, err
	}
	var body map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			return resp.StatusCode, nil, fmt.Errorf("%s %s: %d %q", req.Method, req.URL.Path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, body, nil
}

// token gets a token from /auth.
func (a *api) token(id, secret string) (string, error) {
	status, body, err := a.post("/auth", url.Values{"client_id": {id}, "client_secret": {secret}}, nil)
	if err != nil {
		return "", err
	}
	tok, _ := body["token"].(string)
	if status != http.StatusOK || tok == "" {
		return "", fmt.Errorf("POST /auth as %s: %d %v", id, status, body)
	}
	return tok, nil
}

// createClient makes a client with a generated secret and returns it.
func (a *api) createClient(adminToken, id, scope string) (string, error) {
	status, body, err := a.post("/client", url.Values{"client_id": {id}, "scope": {scope}},
		map[string]string{"Authorization": "Bearer " + adminToken})
	if err != nil {
		return "", err
	}
	secret, _ := body["client_secret"].(string)
	if status != http.StatusCreated || secret == "" {
		return "", fmt.Errorf("POST /client %s: %d %v", id, status, body)
	}
	return secret, nil
}

func (a *api) deleteClient(adminToken, id string) error {
	req, err := http.NewRequest(http.MethodDelete, a.base+"/client/"+url.PathEscape(id), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	status, body, err := a.send(req)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("DELETE /client/%s: %d %v", id, status, body)
	}
	return nil
}

var errNoAdmin = errors.New("-url needs -admin-id and -admin-secret (an admin client of that authd)")
