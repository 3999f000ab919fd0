package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestEcho(t *testing.T) {
	srv := httptest.NewServer(newHandler())
	defer srv.Close()
	const token = "eyJhbGciOiJFZERTQSJ9.secret-part.sig"
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/notes/1?page=2", strings.NewReader("hello"))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Auth-Subject", "notes")
	req.Header.Add("X-Multi", "a")
	req.Header.Add("X-Multi", "b")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e echo
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || e.Method != "POST" || e.URI != "/notes/1?page=2" || e.Body != "hello" {
		t.Fatalf("echo %d %+v", resp.StatusCode, e)
	}
	if e.Headers["X-Auth-Subject"] != "notes" || e.Headers["X-Multi"] != "a, b" {
		t.Fatalf("headers %v", e.Headers)
	}
	if got := e.Headers["Authorization"]; strings.Contains(got, "secret-part") || !strings.HasPrefix(got, "Bearer (") {
		t.Fatalf("Authorization echoed as %q", got)
	}
}

func TestEchoBodyBounded(t *testing.T) {
	srv := httptest.NewServer(newHandler())
	defer srv.Close()
	resp, err := http.Post(srv.URL, "text/plain", strings.NewReader(strings.Repeat("x", maxBody+100)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e echo
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if len(e.Body) != maxBody {
		t.Fatalf("echoed %d bytes, want %d", len(e.Body), maxBody)
	}
}
