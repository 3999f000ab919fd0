package main

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestReadResponse checks the load generator's response parser on the
// framings net/http uses: Content-Length, chunked, and close-delimited.
func TestReadResponse(t *testing.T) {
	for _, tc := range []struct {
		name, raw, body string
		status          int
		close           bool
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n", "ok\n", 200, false},
		{"chunked", "HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: 1\r\n\r\n", "abcde", 401, false},
		{"close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", "", 200, true},
		{"eof", "HTTP/1.0 200 OK\r\n\r\nto the end", "to the end", 200, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf []byte
			resp, err := readResponse(bufio.NewReader(strings.NewReader(tc.raw)), &buf)
			if err != nil {
				t.Fatal(err)
			}
			if resp.status != tc.status || string(resp.body) != tc.body || resp.close != tc.close {
				t.Fatalf("got %d %q close=%v, want %d %q close=%v", resp.status, resp.body, resp.close, tc.status, tc.body, tc.close)
			}
		})
	}
	for _, raw := range []string{"", "HTTP/1.1 2\r\n\r\n", "SMTP 220 hi\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"} {
		var buf []byte
		if _, err := readResponse(bufio.NewReader(strings.NewReader(raw)), &buf); err == nil {
			t.Errorf("%q: no error", raw)
		}
	}
}

// TestRun drives a real net/http server for a moment: every request is
// counted, a flushed (chunked) body is read whole, and a refused request
// counts as an error.
func TestRun(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/no" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		io.WriteString(w, "hello ")
		w.(http.Flusher).Flush()
		io.WriteString(w, "world")
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ok := run(host, 2, 10*time.Millisecond, 100*time.Millisecond, func(int) worker {
		return &staticWorker{req: newRequest("GET", host, "/", nil, ""), status: 200, contains: []byte("hello world")}
	})
	if ok.Requests == 0 || ok.Errors != 0 || ok.RPS <= 0 || ok.P50us <= 0 || ok.P999us < ok.P50us {
		t.Fatalf("run: %+v", ok)
	}
	bad := run(host, 1, 0, 50*time.Millisecond, func(int) worker {
		return &staticWorker{req: newRequest("GET", host, "/no", nil, ""), status: 200}
	})
	if bad.Requests == 0 || bad.Errors != bad.Requests || !strings.Contains(bad.FirstError, "status 403") {
		t.Fatalf("refused run: %+v", bad)
	}
}
