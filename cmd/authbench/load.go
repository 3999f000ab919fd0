package main

// The load generator: N keep-alive HTTP/1.1 connections, each sending one
// request at a time (closed loop, like wrk) for a fixed time. It writes
// prepared request bytes and reads responses with a minimal parser, so that
// it costs the 2 shared cores as little as it can: whatever it costs, it
// costs the same for every route and for the bare handler, and the ratio
// compares like with like.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"
)

// request is one prepared HTTP/1.1 request.
type request []byte

// newRequest prepares a request with the given headers and body.
func newRequest(method, host, path string, header map[string]string, body string) request {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: authbench\r\n", method, path, host)
	for k, v := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	if body != "" || method == "POST" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return b.Bytes()
}

// response is what the load generator reads of a reply.
type response struct {
	status int
	body   []byte // valid until the next read on the same connection
	close  bool   // the server asked to close the connection
}

// conn is one keep-alive connection.
type conn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
	body []byte
	// deadline is the one set on c.
	deadline time.Time
}

func (c *conn) dial() error {
	nc, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
	if err != nil {
		return err
	}
	c.c, c.deadline = nc, time.Time{}
	if c.r == nil {
		c.r = bufio.NewReaderSize(nc, 16<<10)
	} else {
		c.r.Reset(nc)
	}
	return nil
}

func (c *conn) closeConn() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// do sends req and reads the response, dialling first if need be. A
// failed exchange closes the connection; the next do dials again.
func (c *conn) do(req request, deadline time.Time) (response, error) {
	if c.c == nil {
		if err := c.dial(); err != nil {
			return response{}, err
		}
	}
	if !deadline.Equal(c.deadline) {
		// Once per connection, not per request: a deadline is a runtime
		// timer to reset, which would add to the load generator's cost.
		c.c.SetDeadline(deadline)
		c.deadline = deadline
	}
	if _, err := c.c.Write(req); err != nil {
		c.closeConn()
		return response{}, err
	}
	resp, err := readResponse(c.r, &c.body)
	if err != nil || resp.close {
		c.closeConn()
	}
	return resp, err
}

var errMalformed = errors.New("malformed HTTP response")

// readResponse reads one HTTP/1.1 response: the status line, the headers
// it needs (Content-Length, Transfer-Encoding, Connection) and the body,
// into *buf.
func readResponse(r *bufio.Reader, buf *[]byte) (response, error) {
	var resp response
	line, err := r.ReadSlice('\n')
	if err != nil {
		return resp, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return resp, errMalformed
	}
	resp.status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return resp, errMalformed
	}
	length, chunked := -1, false
	for {
		line, err = r.ReadSlice('\n')
		if err != nil {
			return resp, err
		}
		if len(line) <= 2 {
			break // the blank line
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return resp, errMalformed
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case asciiEqualFold(name, "content-length"):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return resp, errMalformed
			}
		case asciiEqualFold(name, "transfer-encoding"):
			chunked = asciiEqualFold(value, "chunked")
		case asciiEqualFold(name, "connection"):
			resp.close = asciiEqualFold(value, "close")
		}
	}
	b := (*buf)[:0]
	switch {
	case chunked:
		for {
			line, err = r.ReadSlice('\n')
			if err != nil {
				return resp, err
			}
			semi := bytes.IndexByte(line, ';')
			if semi < 0 {
				semi = len(line)
			}
			n, err := strconv.ParseInt(string(bytes.TrimSpace(line[:semi])), 16, 32)
			if err != nil || n < 0 {
				return resp, errMalformed
			}
			if n == 0 {
				// Trailers, then the blank line.
				for {
					line, err = r.ReadSlice('\n')
					if err != nil {
						return resp, err
					}
					if len(line) <= 2 {
						break
					}
				}
				break
			}
			b = slices.Grow(b, int(n))
			if _, err := io.ReadFull(r, b[len(b):len(b)+int(n)]); err != nil {
				return resp, err
			}
			b = b[:len(b)+int(n)]
			if _, err := r.Discard(2); err != nil { // CRLF after the chunk
				return resp, err
			}
		}
	case length >= 0:
		b = slices.Grow(b, length)[:length]
		if _, err := io.ReadFull(r, b); err != nil {
			return resp, err
		}
	default:
		// No length: the body runs to the end of the connection.
		all, err := io.ReadAll(r)
		if err != nil {
			return resp, err
		}
		b = append(b, all...)
		resp.close = true
	}
	*buf = b
	resp.body = b
	return resp, nil
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// worker is one connection's loop: next gives the request to send and
// checks each response (false: count it as an error).
type worker interface {
	next() request
	check(resp response) bool
}

// result is the outcome of one route's load.
type result struct {
	Route    string  `json:"route"`
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	Ratio    float64 `json:"ratio_to_bare,omitempty"`
	BareRPS  float64 `json:"bare_rps,omitempty"` // mean of the bare runs just before and after
	// RatioRange is the lowest and highest ratio over the rounds.
	RatioRange []float64 `json:"ratio_range,omitempty"`
	// Rounds are the results of every round, when there are several.
	Rounds   []result `json:"rounds,omitempty"`
	P50us    float64  `json:"p50_us"`
	P99us    float64  `json:"p99_us"`
	P999us   float64  `json:"p999_us"`
	RSSMB    float64  `json:"authd_rss_mb,omitempty"` // authd's largest RSS sampled during the route
	Target   string   `json:"target,omitempty"`       // e.g. ">= 0.35x bare"
	TargetOK *bool    `json:"target_met,omitempty"`
	// FirstError is the first error met, to say why errors were counted.
	FirstError string `json:"first_error,omitempty"`
}

// run drives addr with conns connections for warmup (not counted) then
// duration, each connection with its own worker from newWorker.
func run(addr string, conns int, warmup, duration time.Duration, newWorker func(i int) worker) result {
	type tally struct {
		lat      []time.Duration
		errors   int
		firstErr string
	}
	tallies := make([]tally, conns)
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(duration)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			t := &tallies[i]
			t.lat = make([]time.Duration, 0, 1<<14)
			w := newWorker(i)
			c := &conn{addr: addr}
			defer c.closeConn()
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				resp, err := c.do(w.next(), end.Add(5*time.Second))
				t1 := time.Now()
				if t0.Before(measureFrom) {
					continue
				}
				if t1.After(end) && err != nil {
					return // cut off by the end of the run
				}
				t.lat = append(t.lat, t1.Sub(t0))
				ok := err == nil && w.check(resp)
				if !ok {
					t.errors++
					if t.firstErr == "" {
						if err != nil {
							t.firstErr = err.Error()
						} else {
							t.firstErr = fmt.Sprintf("status %d: %.200s", resp.status, resp.body)
						}
					}
					if err != nil {
						time.Sleep(10 * time.Millisecond) // do not spin on a refused connection
					}
				}
			}
		}(i)
	}
	wg.Wait()
	var all []time.Duration
	var res result
	for _, t := range tallies {
		all = append(all, t.lat...)
		res.Errors += t.errors
		if res.FirstError == "" {
			res.FirstError = t.firstErr
		}
	}
	slices.Sort(all)
	res.Requests = len(all)
	res.Seconds = duration.Seconds()
	res.RPS = float64(len(all)) / duration.Seconds()
	q := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(p * float64(len(all)))
		if i >= len(all) {
			i = len(all) - 1
		}
		return float64(all[i]) / float64(time.Microsecond)
	}
	res.P50us, res.P99us, res.P999us = q(0.50), q(0.99), q(0.999)
	return res
}
