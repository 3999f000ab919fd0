// Package testcert makes X.509 certificates for tests of mutual TLS (RFC
// 8705): a CA, client certificates it issues (with a subject and SANs of
// the test's choosing), self-signed client certificates and a server
// certificate for loopback. Tests only.
package testcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"
)

// CA is a certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA makes a CA named cn.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"authsvc tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: cert, Key: key}
}

// PEM is the CA's certificate in PEM.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Pool is a pool holding the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Names are what a certificate names: its subject and SANs.
type Names struct {
	Subject pkix.Name
	DNS     []string
	URIs    []string
	IPs     []string
	Emails  []string
	// Server makes a server certificate (ExtKeyUsageServerAuth) instead
	// of a client one.
	Server bool
}

// Issue makes a certificate for n signed by the CA.
func (ca *CA) Issue(t testing.TB, n Names) tls.Certificate {
	t.Helper()
	return issue(t, n, ca.Cert, ca.Key, newKey(t))
}

// SelfSigned makes a self-signed client certificate named cn.
func SelfSigned(t testing.TB, cn string) tls.Certificate {
	t.Helper()
	key := newKey(t)
	return issue(t, Names{Subject: pkix.Name{CommonName: cn}}, nil, key, key)
}

// Server makes a server certificate for 127.0.0.1, localhost and
// authd.test (the issuer of authd's tests).
func (ca *CA) Server(t testing.TB) tls.Certificate {
	t.Helper()
	return ca.Issue(t, Names{Subject: pkix.Name{CommonName: "localhost"}, DNS: []string{"localhost", "authd.test"}, IPs: []string{"127.0.0.1", "::1"}, Server: true})
}

func issue(t testing.TB, n Names, parent *x509.Certificate, parentKey crypto.Signer, key crypto.Signer) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:   serial(t),
		Subject:        n.Subject,
		NotBefore:      time.Now().Add(-time.Hour),
		NotAfter:       time.Now().Add(24 * time.Hour),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		DNSNames:       n.DNS,
		EmailAddresses: n.Emails,
	}
	if n.Server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	for _, s := range n.URIs {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	for _, s := range n.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(s))
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// PEM is a certificate's leaf in PEM.
func PEM(c tls.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
}

// KeyPEM is a certificate's private key in PEM (PKCS #8).
func KeyPEM(t testing.TB, c tls.Certificate) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// JWKS is a JWK Set holding the public key of c (a P-256 key).
func JWKS(t testing.TB, c tls.Certificate) []byte {
	t.Helper()
	pub := c.Leaf.PublicKey.(*ecdsa.PublicKey)
	raw, err := pub.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	b, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "x": enc(raw[1:33]), "y": enc(raw[33:]), "use": "sig",
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
