package authsvc

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// Where a request's TLS client certificate is: on its own TLS connection,
// or, behind a proxy that terminates TLS, in a header the proxy sets.

// MaxClientCertHeaderLen bounds a client certificate header: a chain of a
// few certificates, PEM and URL-escaped.
const MaxClientCertHeaderLen = 32 << 10

// ClientCertHeader names the header a TLS-terminating proxy puts the
// client's certificate in, and the proxies believed when they do. The
// header is read only on requests whose TCP peer is in TrustedProxies;
// from anyone else it is ignored (any client could send it), and the
// request's own TLS connection is used instead.
//
// Formats, by the header's name:
//   - X-Forwarded-Client-Cert: Envoy's XFCC, the last element (the nearest
//     proxy's), its Chain field when given, else its Cert field
//     (URL-escaped PEM). Envoy: forward_client_cert_details SANITIZE_SET
//     with set_current_client_cert_details cert: true.
//   - any other name: URL-escaped PEM, such as nginx's
//     $ssl_client_escaped_cert, or base64 DER (Caddy's
//     {http.request.tls.client.certificate_der_base64}, Traefik's
//     passTLSClientCert pem: true), several separated by commas.
type ClientCertHeader struct {
	Name           string
	TrustedProxies []netip.Prefix
}

// ErrBadClientCert: a client certificate header that cannot be read.
var ErrBadClientCert = errors.New("authsvc: malformed client certificate header")

// ClientCertificates returns the TLS client certificate chain of r (leaf
// first), parsed: from h's header when r comes from one of its trusted
// proxies, else from r's TLS connection. None is (nil, nil). A header
// that cannot be read is ErrBadClientCert.
func ClientCertificates(r *http.Request, h *ClientCertHeader) ([]*x509.Certificate, error) {
	ders, fromHeader, err := clientCertDER(r, h)
	if err != nil || ders == nil {
		return nil, err
	}
	if !fromHeader {
		return r.TLS.PeerCertificates, nil
	}
	out := make([]*x509.Certificate, 0, len(ders))
	for _, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, ErrBadClientCert
		}
		out = append(out, c)
	}
	return out, nil
}

// clientCertDER is the DER of r's client certificate chain, leaf first
// (see ClientCertificates); fromHeader says where it came from.
func clientCertDER(r *http.Request, h *ClientCertHeader) (ders [][]byte, fromHeader bool, err error) {
	if h != nil && h.Name != "" && fromTrusted(r, h.TrustedProxies) {
		// Behind the proxy the TLS connection, if any, is the proxy's own:
		// the client's certificate is the header's or none.
		values := r.Header.Values(h.Name)
		switch len(values) {
		case 0:
			return nil, true, nil
		case 1:
		default:
			return nil, true, ErrBadClientCert
		}
		ders, err := parseCertHeader(h.Name, values[0])
		return ders, true, err
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, false, nil
	}
	return [][]byte{r.TLS.PeerCertificates[0].Raw}, false, nil
}

// fromTrusted reports whether r's TCP peer is in trusted.
func fromTrusted(r *http.Request, trusted []netip.Prefix) bool {
	if len(trusted) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// parseCertHeader decodes a client certificate header's value (see
// ClientCertHeader) into DER certificates, leaf first. "" is none.
func parseCertHeader(name, v string) ([][]byte, error) {
	if len(v) > MaxClientCertHeaderLen {
		return nil, ErrBadClientCert
	}
	if v == "" {
		return nil, nil
	}
	if strings.EqualFold(name, "X-Forwarded-Client-Cert") {
		el, err := parseXFCC(v)
		if err != nil {
			return nil, err
		}
		pemText := el["chain"]
		if pemText == "" {
			pemText = el["cert"]
		}
		if pemText == "" {
			return nil, nil // Envoy saw no certificate, or was not told to send it
		}
		v = pemText
	}
	text, err := url.PathUnescape(v)
	if err != nil {
		return nil, ErrBadClientCert
	}
	// Query-style escaping writes the armour's spaces as "+".
	text = strings.ReplaceAll(strings.ReplaceAll(text, "-----BEGIN+CERTIFICATE-----", "-----BEGIN CERTIFICATE-----"),
		"-----END+CERTIFICATE-----", "-----END CERTIFICATE-----")
	var ders [][]byte
	if strings.Contains(text, "-----BEGIN") {
		rest := []byte(text)
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type != "CERTIFICATE" || len(b.Bytes) == 0 || len(ders) == MaxClientCertChain {
				return nil, ErrBadClientCert
			}
			ders = append(ders, b.Bytes)
		}
		if strings.TrimSpace(string(rest)) != "" {
			return nil, ErrBadClientCert
		}
	} else {
		for part := range strings.SplitSeq(text, ",") {
			der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(part))
			if err != nil || len(der) == 0 || len(ders) == MaxClientCertChain {
				return nil, ErrBadClientCert
			}
			ders = append(ders, der)
		}
	}
	if len(ders) == 0 {
		return nil, ErrBadClientCert
	}
	return ders, nil
}

// parseXFCC reads Envoy's X-Forwarded-Client-Cert: elements separated by
// commas, each key=value pairs separated by semicolons, a value quoted
// ("…", with \" inside) when it holds one of , ; =. It returns the last
// element's pairs, keys in lower case (a key given twice, such as URI or
// DNS, keeps its first value).
func parseXFCC(v string) (map[string]string, error) {
	var last map[string]string
	el := map[string]string{}
	i := 0
	for {
		// key
		j := i
		for j < len(v) && v[j] != '=' && v[j] != ';' && v[j] != ',' {
			j++
		}
		if j >= len(v) || v[j] != '=' {
			return nil, ErrBadClientCert
		}
		key := strings.ToLower(strings.TrimSpace(v[i:j]))
		if key == "" {
			return nil, ErrBadClientCert
		}
		i = j + 1
		// value
		var val string
		if i < len(v) && v[i] == '"' {
			var b strings.Builder
			i++
			for {
				if i >= len(v) {
					return nil, ErrBadClientCert // unterminated quote
				}
				c := v[i]
				if c == '\\' && i+1 < len(v) {
					b.WriteByte(v[i+1])
					i += 2
					continue
				}
				if c == '"' {
					i++
					break
				}
				b.WriteByte(c)
				i++
			}
			val = b.String()
		} else {
			j = i
			for j < len(v) && v[j] != ';' && v[j] != ',' {
				if v[j] == '"' || v[j] == '=' {
					return nil, ErrBadClientCert
				}
				j++
			}
			val, i = v[i:j], j
		}
		if len(el) >= 32 {
			return nil, ErrBadClientCert
		}
		if _, dup := el[key]; !dup {
			el[key] = val
		}
		if i >= len(v) {
			last = el
			break
		}
		switch v[i] {
		case ';':
		case ',':
			el = map[string]string{}
		default:
			return nil, ErrBadClientCert // text after a quoted value
		}
		i++
	}
	return last, nil
}
