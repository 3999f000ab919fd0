package authsvc

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/authsvc/authsvc/internal/testcert"
)

// TestParseDN: RFC 4514 strings are read, written back canonically, and
// matched against certificates' subjects RDN by RDN.
func TestParseDN(t *testing.T) {
	for _, tc := range []struct{ in, canon string }{
		{"CN=payments,O=Example", "CN=payments,O=Example"},
		{"cn = payments , ou=svc, o=Example Corp ", "CN=payments,OU=svc,O=Example Corp"},
		{`CN=a\,b\+c\"d\\e\<f\>g\;h\=i,O=x`, `CN=a\,b\+c\"d\\e\<f\>g\;h\=i,O=x`},
		{`CN=\20lead and trail\20,O=x`, `CN=\ lead and trail\ ,O=x`},
		{`CN=caf\C3\A9`, `CN=café`},
		{"CN=x+UID=42,DC=example,DC=org", "CN=x+UID=42,DC=example,DC=org"},
		{"2.5.4.3=x;OID.2.5.4.10=y", "CN=x,O=y"},
		{"1.2.3.4=z", "1.2.3.4=z"},
		{"emailAddress=a@b.example,CN=x", "emailAddress=a@b.example,CN=x"},
	} {
		dn, err := parseDN(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := dn.String(); got != tc.canon {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.canon)
		}
		again, err := parseDN(dn.String())
		if err != nil || again.String() != tc.canon {
			t.Errorf("%q: the canonical form does not read back: %v", tc.in, err)
		}
	}
	for _, bad := range []string{"", "CN", "=x", "CN=", "CN=a,", "XX=1", "CN=#0403", `CN=a\`, `CN=a\q`, `CN=a"b`, "CN=a\x00", "1..2=x", "01.2=x",
		strings.Repeat("CN=a+", 65) + "CN=a", strings.Repeat("a", 1025)} {
		if dn, err := parseDN(bad); err == nil {
			t.Errorf("%q: accepted as %q", bad, dn.String())
		}
	}

	ca := testcert.NewCA(t, "ca")
	cert := ca.Issue(t, testcert.Names{Subject: pkix.Name{CommonName: "Payments  Service", OrganizationalUnit: []string{"svc"}, Organization: []string{"Example"}, Country: []string{"DE"}}})
	for dn, want := range map[string]bool{
		"CN=Payments Service,OU=svc,O=Example,C=DE":     true,
		"cn=payments service, ou=SVC, o=example, c=de":  true,
		"CN=Payments Service,OU=svc,O=Example":          false, // an RDN missing
		"OU=svc,CN=Payments Service,O=Example,C=DE":     false, // order
		"CN=Payments Service+OU=svc,O=Example,C=DE":     false, // RDN structure
		"CN=Payments Service,OU=svc,O=Example,C=DE,C=X": false,
		"CN=Payments,OU=svc,O=Example,C=DE":             false,
	} {
		if got := (TLSClientAuth{SubjectDN: dn}).matches(cert.Leaf); got != want {
			t.Errorf("%q matches: %v, want %v", dn, got, want)
		}
	}
	// A URI matches with its scheme and host in any case (stored so before
	// registration wrote URIs canonically), its path as written; so does
	// a certificate's.
	spiffe := ca.Issue(t, testcert.Names{URIs: []string{"spiffe://example.org/payments"}})
	if !(TLSClientAuth{SANURI: "spiffe://example.org/payments"}).matches(ca.Issue(t, testcert.Names{URIs: []string{"SPIFFE://EXAMPLE.org/payments"}}).Leaf) {
		t.Error("a certificate's URI with its scheme and host in capitals")
	}
	for uri, want := range map[string]bool{
		"spiffe://example.org/payments": true,
		"SPIFFE://example.org/payments": true,
		"spiffe://Example.ORG/payments": true,
		"spiffe://example.org/Payments": false,
		"spiffe://example.org/pay":      false,
	} {
		if got := (TLSClientAuth{SANURI: uri}).matches(spiffe.Leaf); got != want {
			t.Errorf("%q matches: %v, want %v", uri, got, want)
		}
	}
	// A multi-valued RDN matches in any order.
	multi := ca.Issue(t, testcert.Names{Subject: pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
		{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "Example"}}}})
	if !(TLSClientAuth{SubjectDN: "O=Example"}).matches(multi.Leaf) {
		t.Error("ExtraNames subject")
	}
}

// TestNormalizeTLSClientAuth: the SAN names are checked and written
// canonically.
func TestNormalizeTLSClientAuth(t *testing.T) {
	for in, want := range map[TLSClientAuth]TLSClientAuth{
		{SANDNS: "Payments.Example.COM."}:  {SANDNS: "payments.example.com"},
		{SANIP: "::ffff:10.0.0.7"}:         {SANIP: "10.0.0.7"},
		{SANIP: "2001:DB8::1"}:             {SANIP: "2001:db8::1"},
		{SANURI: "spiffe://example.org/a"}: {SANURI: "spiffe://example.org/a"},
		{SANURI: "SPIFFE://Example.ORG/A"}: {SANURI: "spiffe://example.org/A"},
		{SANEmail: "a.b@Example.com"}:      {SANEmail: "a.b@Example.com"},
		{SubjectDN: "cn=x"}:                {SubjectDN: "CN=x"},
		{}:                                 {},
	} {
		got, err := normalizeTLSClientAuth(in)
		if err != nil || got != want {
			t.Errorf("%+v: %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, bad := range []TLSClientAuth{
		{SANDNS: "*.example.com"}, {SANDNS: "-a.example"}, {SANDNS: "a b"}, {SANIP: "fe80::1%eth0"}, {SANURI: "/relative"},
		{SANURI: "spiffe://x/a b"}, {SANEmail: "@example.com"}, {SANEmail: "a@"}, {SubjectDN: "CN=a", SANDNS: "a.example"},
	} {
		if got, err := normalizeTLSClientAuth(bad); err == nil {
			t.Errorf("%+v accepted as %+v", bad, got)
		}
	}
}

// TestClientCertificates: where a request's certificate comes from: a
// trusted proxy's header (and then only from it), else the connection.
func TestClientCertificates(t *testing.T) {
	ca := testcert.NewCA(t, "ca")
	a, b := ca.Issue(t, testcert.Names{DNS: []string{"a.example"}}), ca.Issue(t, testcert.Names{DNS: []string{"b.example"}})
	h := &ClientCertHeader{Name: "X-SSL-Client-Cert", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	req := func(remote string, conn *tls.Certificate, header string) *http.Request {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		if conn != nil {
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{conn.Leaf}}
		}
		if header != "" {
			r.Header.Set(h.Name, header)
		}
		return r
	}
	esc := url.PathEscape(string(testcert.PEM(a)))
	for _, tc := range []struct {
		name string
		r    *http.Request
		want *tls.Certificate
		err  bool
	}{
		{"connection", req("192.0.2.1:5000", &b, ""), &b, false},
		{"untrusted header ignored", req("192.0.2.1:5000", &b, esc), &b, false},
		{"untrusted header, no connection certificate", req("192.0.2.1:5000", nil, esc), nil, false},
		{"trusted header", req("10.1.2.3:5000", &b, esc), &a, false},
		{"trusted proxy without the header: none (the connection is the proxy's)", req("10.1.2.3:5000", &b, ""), nil, false},
		{"trusted header, IPv4-mapped address", req("[::ffff:10.1.2.3]:5000", nil, esc), &a, false},
		{"trusted header, garbage", req("10.1.2.3:5000", nil, "garbage"), nil, true},
		{"trusted header, too long", req("10.1.2.3:5000", nil, strings.Repeat("A", MaxClientCertHeaderLen+1)), nil, true},
	} {
		chain, err := ClientCertificates(tc.r, h)
		switch {
		case tc.err:
			if err == nil {
				t.Errorf("%s: no error", tc.name)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want == nil && chain != nil:
			t.Errorf("%s: a certificate", tc.name)
		case tc.want != nil && (len(chain) != 1 || !chain[0].Equal(tc.want.Leaf)):
			t.Errorf("%s: another certificate", tc.name)
		}
	}
	// Two headers: refused.
	r := req("10.1.2.3:5000", nil, esc)
	r.Header.Add(h.Name, esc)
	if _, err := ClientCertificates(r, h); err == nil {
		t.Error("two headers accepted")
	}
}

// TestParseCertHeader: the header formats.
func TestParseCertHeader(t *testing.T) {
	ca := testcert.NewCA(t, "ca")
	leaf := ca.Issue(t, testcert.Names{DNS: []string{"a.example"}})
	pemText := string(testcert.PEM(leaf))
	chainPEM := pemText + string(ca.PEM())
	der := leaf.Certificate[0]
	for _, tc := range []struct {
		name, header, value string
		n                   int // certificates; 0: none; -1: an error
	}{
		{"nginx escaped PEM", "X-SSL-Client-Cert", url.PathEscape(pemText), 1},
		{"nginx escaped PEM, query-escaped", "X-SSL-Client-Cert", url.QueryEscape(pemText), 1},
		{"plain PEM chain", "X-SSL-Client-Cert", url.PathEscape(chainPEM), 2},
		{"base64 DER", "X-Client-Cert", base64.StdEncoding.EncodeToString(der), 1},
		{"base64 DER list", "X-Forwarded-Tls-Client-Cert", base64.StdEncoding.EncodeToString(der) + "," + base64.StdEncoding.EncodeToString(ca.Cert.Raw), 2},
		{"XFCC cert", "X-Forwarded-Client-Cert", `Hash=ab;Cert="` + url.PathEscape(pemText) + `";Subject="CN=a,O=b";URI=spiffe://x/a`, 1},
		{"XFCC chain wins", "X-Forwarded-Client-Cert", `Cert="` + url.PathEscape(pemText) + `";Chain="` + url.PathEscape(chainPEM) + `"`, 2},
		{"XFCC last element", "X-Forwarded-Client-Cert", `By=a;Cert="` + url.PathEscape(string(ca.PEM())) + `",By=b;Cert="` + url.PathEscape(pemText) + `"`, 1},
		{"XFCC without cert", "x-forwarded-client-cert", `By=a;Hash=ab`, 0},
		{"empty", "X-SSL-Client-Cert", "", 0},
		{"XFCC unterminated", "X-Forwarded-Client-Cert", `Cert="abc`, -1},
		{"XFCC no key", "X-Forwarded-Client-Cert", `=x`, -1},
		{"XFCC text after quote", "X-Forwarded-Client-Cert", `Cert="a"b`, -1},
		{"XFCC bare quote", "X-Forwarded-Client-Cert", `Cert=a"b`, -1},
		{"not a certificate block", "X-SSL-Client-Cert", url.PathEscape("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), -1},
		{"text after the PEM", "X-SSL-Client-Cert", url.PathEscape(pemText + "junk"), -1},
		{"bad escape", "X-SSL-Client-Cert", "%zz", -1},
		{"bad base64", "X-SSL-Client-Cert", "!!!", -1},
		{"too many", "X-SSL-Client-Cert", url.PathEscape(strings.Repeat(pemText, MaxClientCertChain+1)), -1},
	} {
		ders, err := parseCertHeader(tc.header, tc.value)
		switch {
		case tc.n < 0 && err == nil:
			t.Errorf("%s: accepted", tc.name)
		case tc.n >= 0 && (err != nil || len(ders) != tc.n):
			t.Errorf("%s: %d certificates, %v; want %d", tc.name, len(ders), err, tc.n)
		case tc.n > 0 && string(ders[0]) != string(der) && tc.name != "XFCC last element":
			t.Errorf("%s: the leaf is another certificate", tc.name)
		}
	}
}
