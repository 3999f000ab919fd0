package authsvc

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Mutual TLS (RFC 8705): a client authenticates with its TLS client
// certificate (tls_client_auth: issued by a CA the server trusts and naming
// the client's registered subject DN or SAN; self_signed_tls_client_auth:
// its public key registered in the client's jwks), and tokens may be bound
// to the certificate (cnf.x5t#S256), so that only the holder of its
// private key can use them.

// Client authentication methods of RFC 8705 §2.
const (
	AuthTLSClient           = "tls_client_auth"
	AuthSelfSignedTLSClient = "self_signed_tls_client_auth"
)

// Limits on what mTLS reads.
const (
	// MaxClientCertChain bounds the certificates of a chain a client
	// presents (leaf first).
	MaxClientCertChain = 10
	// MaxCertNames bounds the SAN values of a certificate matched against
	// a tls_client_auth client: a certificate with more is refused.
	MaxCertNames = 100
	// maxTLSName bounds a registered subject DN or SAN value.
	maxTLSName = 1024
)

// TLSClientAuth is a tls_client_auth client's certificate name (RFC 8705
// §2.1.2): exactly one of its fields is set, and a certificate that chains
// to Config.ClientCAs authenticates the client when its subject DN is
// SubjectDN (RFC 4514 form, such as "CN=payments,O=Example"), or one of its
// SANs of that type is the value given.
type TLSClientAuth struct {
	SubjectDN string `json:"tls_client_auth_subject_dn,omitempty"`
	SANDNS    string `json:"tls_client_auth_san_dns,omitempty"`
	SANURI    string `json:"tls_client_auth_san_uri,omitempty"`
	SANIP     string `json:"tls_client_auth_san_ip,omitempty"`
	SANEmail  string `json:"tls_client_auth_san_email,omitempty"`
}

// IsZero reports whether no name is set.
func (t TLSClientAuth) IsZero() bool { return t == TLSClientAuth{} }

// normalizeTLSClientAuth checks that at most one name is set and returns
// it in canonical form: the DN re-written from its parse, the DNS name in
// lower case, the IP address in its canonical text.
func normalizeTLSClientAuth(t TLSClientAuth) (TLSClientAuth, error) {
	var out TLSClientAuth
	n := 0
	for _, s := range []string{t.SubjectDN, t.SANDNS, t.SANURI, t.SANIP, t.SANEmail} {
		if s != "" {
			n++
		}
		if len(s) > maxTLSName || !utf8.ValidString(s) {
			return out, refuse(ErrInvalidArgument, "a tls_client_auth name must be at most %d bytes of UTF-8", maxTLSName)
		}
	}
	if n > 1 {
		return out, refuse(ErrInvalidArgument, "give one of tls_client_auth_subject_dn, tls_client_auth_san_dns, tls_client_auth_san_uri, tls_client_auth_san_ip, tls_client_auth_san_email (RFC 8705 §2.1.2), not %d", n)
	}
	switch {
	case t.SubjectDN != "":
		dn, err := parseDN(t.SubjectDN)
		if err != nil {
			return out, refuse(ErrInvalidArgument, "tls_client_auth_subject_dn: %s", err)
		}
		out.SubjectDN = dn.String()
	case t.SANDNS != "":
		name := strings.ToLower(strings.TrimSuffix(t.SANDNS, "."))
		if !validDNSName(name) {
			return out, refuse(ErrInvalidArgument, "tls_client_auth_san_dns must be a DNS name such as payments.example.com")
		}
		out.SANDNS = name
	case t.SANURI != "":
		u, err := url.Parse(t.SANURI)
		if err != nil || !u.IsAbs() || !printable(t.SANURI) {
			return out, refuse(ErrInvalidArgument, "tls_client_auth_san_uri must be an absolute URI such as spiffe://example.org/payments")
		}
		out.SANURI = canonicalURI(u)
	case t.SANIP != "":
		ip, err := netip.ParseAddr(t.SANIP)
		if err != nil || ip.Zone() != "" {
			return out, refuse(ErrInvalidArgument, "tls_client_auth_san_ip must be an IPv4 or IPv6 address such as 10.0.0.7")
		}
		out.SANIP = ip.Unmap().String()
	case t.SANEmail != "":
		local, domain, ok := strings.Cut(t.SANEmail, "@")
		if !ok || local == "" || !validDNSName(strings.ToLower(domain)) || !printable(t.SANEmail) || strings.ContainsAny(t.SANEmail, " <>") {
			return out, refuse(ErrInvalidArgument, "tls_client_auth_san_email must be an email address such as payments@example.com")
		}
		out.SANEmail = t.SANEmail
	}
	return out, nil
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == ' ' {
			return false
		}
	}
	return s != ""
}

// validDNSName: dot-separated labels of letters, digits and hyphens
// (a leading "*." is not accepted: RFC 8705 matches names exactly).
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// matches reports whether cert carries the registered name t.
func (t TLSClientAuth) matches(cert *x509.Certificate) bool {
	if len(cert.DNSNames)+len(cert.URIs)+len(cert.IPAddresses)+len(cert.EmailAddresses) > MaxCertNames {
		return false
	}
	switch {
	case t.SubjectDN != "":
		want, err := parseDN(t.SubjectDN)
		return err == nil && want.matchesRaw(cert.RawSubject)
	case t.SANDNS != "":
		for _, n := range cert.DNSNames {
			if strings.EqualFold(strings.TrimSuffix(n, "."), t.SANDNS) {
				return true
			}
		}
	case t.SANURI != "":
		want := t.SANURI
		if u, err := url.Parse(want); err == nil {
			want = canonicalURI(u) // a client registered before registration did this
		}
		for _, u := range cert.URIs {
			if canonicalURI(u) == want {
				return true
			}
		}
	case t.SANIP != "":
		want, err := netip.ParseAddr(t.SANIP)
		if err != nil {
			return false
		}
		for _, ip := range cert.IPAddresses {
			if a, ok := netip.AddrFromSlice(ip); ok && a.Unmap() == want {
				return true
			}
		}
	case t.SANEmail != "":
		for _, e := range cert.EmailAddresses {
			// The local part is case-sensitive (RFC 5321), the domain not.
			l1, d1, _ := strings.Cut(e, "@")
			l2, d2, _ := strings.Cut(t.SANEmail, "@")
			if l1 == l2 && strings.EqualFold(d1, d2) {
				return true
			}
		}
	}
	return false
}

// CertificateThumbprint is RFC 8705 §3.1's x5t#S256 of a certificate:
// the base64url SHA-256 of its DER encoding.
func CertificateThumbprint(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// CertificateThumbprint is the x5t#S256 of the TLS client certificate the
// token is bound to, or "" when it is bound to none.
func (c *Claims) CertificateThumbprint() string {
	if c.Confirmation == nil {
		return ""
	}
	return c.Confirmation.X5TS256
}

// CertificateBindingMatches reports whether the token's certificate
// binding is satisfied by a request that presented the client certificate
// der (nil: none): a token bound to no certificate always is; a bound one
// only with that very certificate (compared in constant time).
func (c *Claims) CertificateBindingMatches(der []byte) bool {
	want := c.CertificateThumbprint()
	if want == "" {
		return true
	}
	if der == nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(CertificateThumbprint(der)), []byte(want)) == 1
}

// TLSClientAuthMethods are the RFC 8705 client authentication methods this
// Authenticator accepts: tls_client_auth when Config.ClientCAs is set,
// self_signed_tls_client_auth when Config.SelfSignedClientCerts is.
func (a *Authenticator) TLSClientAuthMethods() []string {
	var out []string
	if a.cfg.ClientCAs != nil {
		out = append(out, AuthTLSClient)
	}
	if a.cfg.SelfSignedClientCerts {
		out = append(out, AuthSelfSignedTLSClient)
	}
	return out
}

// AuthenticateTLS authenticates a client by its TLS client certificate
// (chain: the leaf first, then any intermediates it sent) and issues a
// token bound to that certificate (RFC 8705 §3), unless req carries a
// DPoP proof. Errors as Authenticate.
func (a *Authenticator) AuthenticateTLS(ctx context.Context, clientID string, chain []*x509.Certificate, req TokenRequest) (*Token, error) {
	c, err := a.AuthenticateTLSClient(ctx, clientID, chain)
	if err != nil {
		return nil, err
	}
	req.ClientCertificate = chain[0]
	return a.grant(ctx, c, req)
}

// AuthenticateTLSClient checks that the TLS client certificate chain
// (leaf first) authenticates client clientID by its registered method:
// tls_client_auth (the chain verifies to Config.ClientCAs for client
// authentication, at the Authenticator's clock, and the leaf carries the
// client's registered name) or self_signed_tls_client_auth (the leaf's
// public key is one of the client's jwks; neither chain nor validity
// period is checked, as RFC 8705 §2.2 asks nothing of them). Refusals are
// ErrInvalidClient with a Message that says why.
func (a *Authenticator) AuthenticateTLSClient(ctx context.Context, clientID string, chain []*x509.Certificate) (*Client, error) {
	c, err := a.authenticateTLS(ctx, clientID, chain)
	if errors.Is(err, ErrInvalidClient) {
		a.stats.authFailures.Add(1)
	} else if errors.Is(err, ErrUnavailable) {
		a.stats.storeErrors.Add(1)
	}
	return c, err
}

func (a *Authenticator) authenticateTLS(ctx context.Context, clientID string, chain []*x509.Certificate) (*Client, error) {
	if !storableID(clientID) {
		return nil, ErrInvalidClient
	}
	if len(chain) == 0 || chain[0] == nil {
		return nil, refuse(ErrInvalidClient, "no TLS client certificate was presented")
	}
	if len(chain) > MaxClientCertChain {
		return nil, refuse(ErrInvalidClient, "the TLS client certificate chain has more than %d certificates", MaxClientCertChain)
	}
	if err := a.fresh(true); err != nil {
		return nil, err
	}
	rec, err := a.lookupClient(ctx, clientID)
	if errors.Is(err, ErrClientNotFound) {
		return nil, ErrInvalidClient
	}
	if err != nil {
		return nil, err
	}
	leaf := chain[0]
	switch rec.AuthMethod {
	case AuthTLSClient:
		if a.cfg.ClientCAs == nil {
			return nil, refuse(ErrInvalidClient, "tls_client_auth is not enabled on this server (no client CA is configured)")
		}
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		_, err := leaf.Verify(x509.VerifyOptions{Roots: a.cfg.ClientCAs, Intermediates: inter,
			CurrentTime: a.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err != nil {
			return nil, refuse(ErrInvalidClient, "the TLS client certificate is not issued by a trusted client CA, or not valid now for client authentication")
		}
		if !rec.TLSClientAuth.matches(leaf) {
			return nil, refuse(ErrInvalidClient, "the TLS client certificate does not carry client %s's registered %s", clientID, rec.TLSClientAuth.kind())
		}
	case AuthSelfSignedTLSClient:
		if !a.cfg.SelfSignedClientCerts {
			return nil, refuse(ErrInvalidClient, "self_signed_tls_client_auth is not enabled on this server")
		}
		set, err := a.clientKeys(ctx, rec)
		if err != nil {
			return nil, err
		}
		if !set.hasPublicKey(leaf.PublicKey) {
			return nil, refuse(ErrInvalidClient, "the TLS client certificate's key is not among client %s's registered keys (jwks)", clientID)
		}
	default:
		return nil, refuse(ErrInvalidClient, "client %s authenticates with %s, not a TLS client certificate", clientID, rec.AuthMethod)
	}
	c := rec.Client
	return &c, nil
}

// kind names the registered name's metadata parameter.
func (t TLSClientAuth) kind() string {
	switch {
	case t.SubjectDN != "":
		return "tls_client_auth_subject_dn"
	case t.SANDNS != "":
		return "tls_client_auth_san_dns"
	case t.SANURI != "":
		return "tls_client_auth_san_uri"
	case t.SANIP != "":
		return "tls_client_auth_san_ip"
	case t.SANEmail != "":
		return "tls_client_auth_san_email"
	}
	return "name (none is registered)"
}

// clientKeys returns a client's registered public keys: its jwks, or those
// fetched from its jwks_uri.
func (a *Authenticator) clientKeys(ctx context.Context, rec *clientRecord) (jwkSet, error) {
	id := rec.ID
	switch {
	case rec.JWKSURI != "":
		set, err := a.fetcher.keys(ctx, keySource{jwksURI: rec.JWKSURI}, "")
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, refuse(ErrInvalidClient, "the keys of client %s could not be fetched from its jwks_uri", id)
		}
		return set, nil
	case len(rec.JWKS) > 0:
		set, err := parseJWKSet(rec.JWKS, false)
		if err != nil {
			a.log.Error("authsvc: stored jwks unusable", "client_id", id, "err", err)
			return nil, refuse(ErrInvalidClient, "the keys of client %s are unusable", id)
		}
		return set, nil
	}
	return nil, refuse(ErrInvalidClient, "client %s has no keys registered (jwks or jwks_uri)", id)
}

// hasPublicKey reports whether pub is one of the set's keys.
func (s jwkSet) hasPublicKey(pub crypto.PublicKey) bool {
	type equaler interface{ Equal(x crypto.PublicKey) bool }
	for _, k := range s {
		if e, ok := k.key.(equaler); ok && e.Equal(pub) {
			return true
		}
	}
	return false
}

// A distinguished name (RFC 4514): RDNs in string order (most specific
// first), each one or more attributes joined by "+".
type distinguishedName [][]dnAttr

type dnAttr struct {
	oid   asn1.ObjectIdentifier
	value string
}

// dnTypes are the attribute type names of RFC 4514 §3 and the few more
// certificates commonly carry; others are given as dotted OIDs.
var dnTypes = []struct {
	name string
	oid  asn1.ObjectIdentifier
}{
	{"CN", asn1.ObjectIdentifier{2, 5, 4, 3}},
	{"SERIALNUMBER", asn1.ObjectIdentifier{2, 5, 4, 5}},
	{"C", asn1.ObjectIdentifier{2, 5, 4, 6}},
	{"L", asn1.ObjectIdentifier{2, 5, 4, 7}},
	{"ST", asn1.ObjectIdentifier{2, 5, 4, 8}},
	{"STREET", asn1.ObjectIdentifier{2, 5, 4, 9}},
	{"O", asn1.ObjectIdentifier{2, 5, 4, 10}},
	{"OU", asn1.ObjectIdentifier{2, 5, 4, 11}},
	{"POSTALCODE", asn1.ObjectIdentifier{2, 5, 4, 17}},
	{"DC", asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}},
	{"UID", asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}},
	{"EMAILADDRESS", asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}},
}

// maxDNAttrs bounds the attributes of a DN, parsed or matched.
const maxDNAttrs = 64

// parseDN reads an RFC 4514 string: attributes type=value, RDNs separated
// by "," (or ";"), multi-valued RDNs by "+"; values with "\" escapes
// (a special character, or two hex digits) or "#" and hex (a BER value,
// refused); types by name (CN, O, OU, C, L, ST, STREET, DC, UID,
// SERIALNUMBER, POSTALCODE, emailAddress) or dotted OID.
func parseDN(s string) (distinguishedName, error) {
	if s == "" || len(s) > maxTLSName || !utf8.ValidString(s) {
		return nil, errors.New("a DN must be 1 to 1024 bytes of UTF-8")
	}
	var dn distinguishedName
	var rdn []dnAttr
	n := 0
	i := 0
	for {
		// type
		j := strings.IndexByte(s[i:], '=')
		if j < 0 {
			return nil, errors.New("each attribute must be type=value, such as CN=payments")
		}
		typ := strings.TrimSpace(s[i : i+j])
		oid, err := dnType(typ)
		if err != nil {
			return nil, err
		}
		i += j + 1
		// value, up to an unescaped , ; + or the end
		var val strings.Builder
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i < len(s) && s[i] == '#' {
			return nil, errors.New("hex-encoded (#) values are not supported: write the value as text")
		}
		trailing := 0 // unescaped trailing spaces, dropped
		for i < len(s) && s[i] != ',' && s[i] != ';' && s[i] != '+' {
			c := s[i]
			switch {
			case c == '\\':
				if i+1 >= len(s) {
					return nil, errors.New("a DN ends with an unfinished escape")
				}
				if h, ok := unhex2(s[i+1:]); ok {
					val.WriteByte(h)
					i += 3
				} else if strings.IndexByte(`,+"\<>;=# `, s[i+1]) >= 0 {
					val.WriteByte(s[i+1])
					i += 2
				} else {
					return nil, errors.New("a DN has a bad escape: \\ must be followed by one of ,+\"\\<>;=# space, or two hex digits")
				}
				trailing = 0
			case c == '"' || c == '<' || c == '>' || c == '=' || c < 0x20 || c == 0x7f:
				return nil, errors.New("a DN value has an unescaped special or control character")
			default:
				val.WriteByte(c)
				if c == ' ' {
					trailing++
				} else {
					trailing = 0
				}
				i++
			}
		}
		v := val.String()
		v = v[:len(v)-trailing]
		if v == "" || !utf8.ValidString(v) {
			return nil, errors.New("a DN attribute's value must be non-empty UTF-8")
		}
		if n++; n > maxDNAttrs {
			return nil, errors.New("a DN has too many attributes")
		}
		rdn = append(rdn, dnAttr{oid, v})
		if i >= len(s) {
			dn = append(dn, rdn)
			return dn, nil
		}
		if s[i] != '+' {
			dn = append(dn, rdn)
			rdn = nil
		}
		i++
	}
}

func unhex2(s string) (byte, bool) {
	if len(s) < 2 {
		return 0, false
	}
	hi, ok1 := unhex(s[0])
	lo, ok2 := unhex(s[1])
	return hi<<4 | lo, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func dnType(t string) (asn1.ObjectIdentifier, error) {
	for _, d := range dnTypes {
		if strings.EqualFold(t, d.name) {
			return d.oid, nil
		}
	}
	if strings.HasPrefix(strings.ToLower(t), "oid.") {
		t = t[4:]
	}
	parts := strings.Split(t, ".")
	if len(parts) >= 2 && len(parts) <= 20 {
		oid := make(asn1.ObjectIdentifier, len(parts))
		for k, p := range parts {
			v := 0
			if p == "" || len(p) > 9 || (len(p) > 1 && p[0] == '0') {
				goto bad
			}
			for _, c := range []byte(p) {
				if c < '0' || c > '9' {
					goto bad
				}
				v = v*10 + int(c-'0')
			}
			oid[k] = v
		}
		return oid, nil
	}
bad:
	return nil, errors.New("unknown DN attribute type " + clipText(strings.ToValidUTF8(t, "?")) + " (use CN, O, OU, C, L, ST, STREET, DC, UID, SERIALNUMBER, POSTALCODE, emailAddress or a dotted OID)")
}

// String writes the DN back in RFC 4514 form: types by name (or dotted
// OID), values escaped as §2.4 asks.
func (dn distinguishedName) String() string {
	var b strings.Builder
	for i, rdn := range dn {
		if i > 0 {
			b.WriteByte(',')
		}
		for j, at := range rdn {
			if j > 0 {
				b.WriteByte('+')
			}
			b.WriteString(dnTypeName(at.oid))
			b.WriteByte('=')
			writeDNValue(&b, at.value)
		}
	}
	return b.String()
}

func dnTypeName(oid asn1.ObjectIdentifier) string {
	for _, d := range dnTypes {
		if d.oid.Equal(oid) {
			if d.name == "EMAILADDRESS" {
				return "emailAddress"
			}
			return d.name
		}
	}
	return oid.String()
}

func writeDNValue(b *strings.Builder, v string) {
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case strings.IndexByte(`,+"\<>;=`, c) >= 0,
			c == '#' && i == 0,
			c == ' ' && (i == 0 || i == len(v)-1):
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			const hexDigits = "0123456789ABCDEF"
			b.WriteByte('\\')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		default:
			b.WriteByte(c)
		}
	}
}

// matchesRaw reports whether a certificate's DER subject is this DN: the
// same RDNs in the same order, each with the same attributes (in any
// order within the RDN), values compared as X.520 caseIgnoreMatch does
// (case folded, inner white space collapsed, outer trimmed).
func (dn distinguishedName) matchesRaw(raw []byte) bool {
	var rdns [][]dnAttr
	var parsed pkix.RDNSequence
	if rest, err := asn1.Unmarshal(raw, &parsed); err != nil || len(rest) != 0 {
		return false
	}
	count := 0
	for _, set := range parsed {
		var rdn []dnAttr
		for _, atv := range set {
			s, ok := atv.Value.(string)
			if !ok {
				return false
			}
			if count++; count > maxDNAttrs {
				return false
			}
			rdn = append(rdn, dnAttr{atv.Type, s})
		}
		rdns = append(rdns, rdn)
	}
	// The string form lists RDNs from the last of the sequence to the first.
	if len(rdns) != len(dn) {
		return false
	}
	for i, want := range dn {
		have := rdns[len(rdns)-1-i]
		if len(have) != len(want) {
			return false
		}
		used := make([]bool, len(have))
	next:
		for _, w := range want {
			for k, h := range have {
				if !used[k] && h.oid.Equal(w.oid) && foldDNValue(h.value) == foldDNValue(w.value) {
					used[k] = true
					continue next
				}
			}
			return false
		}
	}
	return true
}

func foldDNValue(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

// canonicalURI is the form a SAN URI is registered and compared in: as
// url.Parse reads it (the scheme in lower case) with the host in lower
// case too (RFC 3986 §6.2.2.1: both are case-insensitive), so that
// SPIFFE://Example.org/a is spiffe://example.org/a; the path keeps its
// case.
func canonicalURI(u *url.URL) string {
	c := *u
	c.Host = strings.ToLower(c.Host)
	return c.String()
}
