package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authsvc/authsvc/internal/testdb"
)

// selfSigned writes a certificate and key for 127.0.0.1 into dir.
func selfSigned(t *testing.T, dir string, serial int64) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "authd test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

func TestTLSAndReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir, 1)
	cfg := config{
		Addr: "127.0.0.1:0", DatabaseURL: testdb.SQLite(t), Issuer: "https://authd.test", TokenTTL: time.Hour,
		SigningAlg: "EdDSA", LogFormat: "json", LogLevel: "info", ShutdownTimeout: 5 * time.Second,
		TLSCertFile: certFile, TLSKeyFile: keyFile, JWKSMaxAge: time.Minute, PollInterval: time.Second, MaxStaleness: 30 * time.Second,
	}
	logs := &testdb.LogBuffer{}
	ap, _ := serveForTest(t, cfg, logs)
	addr := ap.ln.Addr().String()
	serial := func(maxVersion uint16) (int64, error) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: maxVersion})
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
	}
	if s, err := serial(0); err != nil || s != 1 {
		t.Fatalf("serial %d, %v", s, err)
	}
	if _, err := serial(tls.VersionTLS11); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
	selfSigned(t, dir, 2) // new files in place
	ap.reloadTLS()        // what SIGHUP does
	if s, err := serial(0); err != nil || s != 2 {
		t.Fatalf("after reload: serial %d, %v", s, err)
	}
	os.WriteFile(certFile, []byte("broken"), 0o600)
	ap.reloadTLS()
	if s, err := serial(0); err != nil || s != 2 {
		t.Fatalf("a broken file must keep the current certificate: %d, %v", s, err)
	}
	if !strings.Contains(logs.String(), "TLS certificate reload failed") {
		t.Fatal("failed reload not logged")
	}
}

// TestPlainHTTPWarning: plain HTTP off loopback warns.
func TestPlainHTTPWarning(t *testing.T) {
	cfg := config{
		Addr: "0.0.0.0:0", DatabaseURL: testdb.SQLite(t), Issuer: "http://authd.test", TokenTTL: time.Hour,
		SigningAlg: "EdDSA", LogFormat: "json", LogLevel: "info", ShutdownTimeout: time.Second,
		JWKSMaxAge: time.Minute, PollInterval: time.Second, MaxStaleness: 30 * time.Second,
	}
	logs := &testdb.LogBuffer{}
	ap, err := start(context.Background(), cfg, newLogger(cfg, logs))
	if err != nil {
		t.Fatal(err)
	}
	ap.ln.Close()
	ap.close()
	if !strings.Contains(logs.String(), "plain HTTP on a non-loopback address") {
		t.Fatalf("no warning:\n%s", logs.String())
	}
}

func TestCorruptSQLiteStart(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	bad := filepath.Join(dir, "authd.db")
	os.WriteFile(bad, bytes.Repeat([]byte("not a database "), 1000), 0o600)
	t.Setenv("AUTHSVC_DATABASE_URL", "sqlite:"+bad)
	t.Setenv("AUTHSVC_ADDR", "127.0.0.1:0")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"serve"}, strings.NewReader(""), &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "not a database") || strings.Contains(stderr.String(), "goroutine") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestSeparateMetricsAddr(t *testing.T) {
	cfg := config{
		Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", DatabaseURL: testdb.SQLite(t), Issuer: "http://authd.test",
		TokenTTL: time.Hour, SigningAlg: "EdDSA", LogFormat: "json", LogLevel: "info", ShutdownTimeout: 5 * time.Second,
		JWKSMaxAge: time.Minute, PollInterval: time.Second, MaxStaleness: 30 * time.Second,
	}
	ap, _ := serveForTest(t, cfg, &testdb.LogBuffer{})
	get := func(u string) int {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := get("http://" + ap.metricsLn.Addr().String() + "/metrics"); st != 200 {
		t.Fatalf("metrics address: %d", st)
	}
	if st := get("http://" + ap.ln.Addr().String() + "/metrics"); st != 404 {
		t.Fatalf("/metrics on the main address with a metrics address set: %d", st)
	}
}
