package authsvc

import (
	"strings"
	"testing"
)

// FuzzParseDN: any string given as a subject DN is read or refused, never
// with a panic; what is read writes back to a string that reads the same
// (the canonical form is a fixed point).
func FuzzParseDN(f *testing.F) {
	for _, s := range []string{"CN=payments,OU=svc,O=Example", `CN=a\,b\+c\20,O=x`, "cn=x+uid=1;dc=example", "1.2.3=x",
		"CN=#0403", `CN=\C3\A9`, "CN=", "=", "OID.2.5.4.3=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		dn, err := parseDN(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an empty message")
			}
			return
		}
		canon := dn.String()
		again, err := parseDN(canon)
		if err != nil {
			t.Fatalf("%q: its canonical form %q does not read: %v", s, canon, err)
		}
		if again.String() != canon {
			t.Fatalf("%q: %q reads back as %q", s, canon, again.String())
		}
	})
}

// FuzzParseCertHeader: any client certificate header (XFCC or escaped
// PEM or base64 DER) is read or refused, never with a panic, and never
// gives more than MaxClientCertChain certificates or an empty one.
func FuzzParseCertHeader(f *testing.F) {
	for _, s := range []string{`By=a;Hash=ab;Cert="-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A";Subject="CN=a,O=b"`,
		`By=a,By=b;Cert=x`, `Cert="a\"b"`, `Cert="abc`, "-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----", "AAAA,BBBB", "%zz", ""} {
		f.Add("X-Forwarded-Client-Cert", s)
		f.Add("X-SSL-Client-Cert", s)
	}
	f.Fuzz(func(t *testing.T, name, v string) {
		ders, err := parseCertHeader(name, v)
		if err != nil {
			return
		}
		if len(ders) > MaxClientCertChain {
			t.Fatalf("%d certificates", len(ders))
		}
		for _, d := range ders {
			if len(d) == 0 {
				t.Fatal("an empty certificate")
			}
		}
		if strings.EqualFold(name, "X-Forwarded-Client-Cert") {
			parseXFCC(v)
		}
	})
}
