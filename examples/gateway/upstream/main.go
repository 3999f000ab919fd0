// Command upstream is the gateway example's service: it knows nothing of
// tokens or authd, and answers every request with what it received, so you
// can see what nginx passes on once authd has checked the caller (the
// X-Auth-* headers).
//
//	go run ./examples/gateway/upstream -addr 127.0.0.1:8081
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"time"
)

// maxBody bounds how much of a request body is read and echoed.
const maxBody = 64 << 10

// echo is the reply: the request as the upstream saw it.
type echo struct {
	Method  string            `json:"method"`
	URI     string            `json:"uri"`
	Headers map[string]string `json:"headers"` // values of a repeated header joined with ", "
	Body    string            `json:"body,omitempty"`
}

// newHandler answers every request with its echo. The Authorization header
// is shown as present, never echoed: a token does not belong in a reply.
func newHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		if err != nil {
			http.Error(w, "cannot read the body", http.StatusBadRequest)
			return
		}
		e := echo{Method: r.Method, URI: r.RequestURI, Headers: make(map[string]string, len(r.Header)), Body: string(body)}
		for k, v := range r.Header {
			e.Headers[k] = strings.Join(v, ", ")
		}
		if v, ok := e.Headers["Authorization"]; ok {
			scheme, _, _ := strings.Cut(v, " ")
			e.Headers["Authorization"] = fmt.Sprintf("%s (%d bytes, not shown)", scheme, len(v))
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(e)
	})
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	flag.Parse()
	srv := &http.Server{
		Addr:              *addr,
		Handler:           newHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
	}
	log.Printf("upstream: echoing requests on http://%s", *addr)
	log.Fatal(srv.ListenAndServe())
}
