package main

import (
	"context"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/authsvc/authsvc"
	"github.com/authsvc/authsvc/authhttp"
	"github.com/authsvc/authsvc/internal/testdb"
)

// TestPyJWTDecodesHS256Tokens: a Flask user keeps AUTHSECRET, and their
// services keep decoding tokens with PyJWT exactly as before. This runs
// PyJWT itself (Debian's python3-jwt; .ci/run installs it) on a token from
// authd's /auth in HS256 mode.
func TestPyJWTDecodesHS256Tokens(t *testing.T) {
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import jwt").Run(); err != nil {
		if os.Getenv("AUTHSVC_TEST_REQUIRE_PYJWT") == "1" {
			t.Fatalf("PyJWT is required but %s cannot import jwt: %v", python, err)
		}
		t.Skip("PyJWT (python3-jwt) not installed")
	}
	secret := "0123456789abcdef0123456789abcdef-flask-secret"
	store, err := authsvc.OpenStore(context.Background(), testdb.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	a, err := authsvc.New(context.Background(), store, authsvc.Config{Issuer: "http://127.0.0.1:5000", SigningAlg: authsvc.AlgHS256, HMACSecret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, _, err := a.CreateClient(context.Background(), authsvc.NewClient{ID: "svc", Secret: "svc-secret-long-enough", IsAdmin: true}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(authhttp.NewHandler(a, authhttp.Options{}))
	defer srv.Close()
	st, body := postForm(t, srv.URL+"/auth", url.Values{"client_id": {"svc"}, "client_secret": {"svc-secret-long-enough"}}, "")
	if st != 200 {
		t.Fatalf("/auth: %d %v", st, body)
	}
	// The Flask service's own decode call, unchanged.
	script := `import jwt, sys
p = jwt.decode(sys.argv[1], sys.argv[2], algorithms=["HS256"])
print(p["clientId"], p["id"], p["isAdmin"])`
	out, err := exec.Command(python, "-c", script, body["token"].(string), secret).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "svc 1 True" {
		t.Fatalf("PyJWT: %v\n%s", err, out)
	}
	// And with another secret it refuses, as it should.
	if out, err := exec.Command(python, "-c", script, body["token"].(string), secret+"x").CombinedOutput(); err == nil {
		t.Fatalf("PyJWT accepted a token under another secret: %s", out)
	}
}
