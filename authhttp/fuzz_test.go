package authhttp

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// FuzzReadParams: any body under any content type gives parameters or a
// clean error with a 4xx status, never a panic. A JSON body that is
// accepted is an object that encoding/json reads to the same parameters,
// each with one value, and survives a round trip; a body that names a
// parameter twice is never accepted.
func FuzzReadParams(f *testing.F) {
	f.Add("application/x-www-form-urlencoded", "client_id=a&client_secret=b")
	f.Add("application/json", `{"client_id":"a","scope":["x","y"],"is_admin":true,"n":1}`)
	f.Add("application/json", `{"a":{"b":1}}`)
	f.Add("application/json", `{"client_id":"bob","client_id":"admin"}`)
	f.Add("application/json", `{"client_id":null,"client\u005fid":"admin"}`)
	f.Add("application/json", `{"a":[],"b":null,"c":-1.5e3} `)
	f.Add("application/json", `{"a":1} {}`)
	f.Add("multipart/form-data; boundary=X", "--X\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\na\r\n--X--\r\n")
	f.Add("text/plain", "x")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, ct, body string) {
		r := httptest.NewRequest("POST", "/auth", strings.NewReader(body))
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
		v, err := readParams(httptest.NewRecorder(), r)
		if err != nil {
			var eb *errBody
			if !errors.As(err, &eb) || eb.status < 400 || eb.status > 499 || eb.msg == "" {
				t.Fatalf("error %v is not a clean 4xx", err)
			}
			return
		}
		if v == nil {
			t.Fatal("nil values without error")
		}
		if mt, _ := mediaType(ct); mt != "application/json" {
			return
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(body), &obj); err != nil || obj == nil {
			t.Fatalf("accepted a body encoding/json refuses as an object: %v", err)
		}
		for k, vals := range v {
			if len(vals) != 1 {
				t.Fatalf("parameter %q has %d values", k, len(vals))
			}
			if _, ok := obj[k]; !ok {
				t.Fatalf("parameter %q is not in the object", k)
			}
		}
		for k, val := range obj {
			got, has := v[k]
			switch x := val.(type) {
			case nil:
				if has {
					t.Fatalf("null %q became %q", k, got)
				}
			case string:
				if !has || got[0] != x {
					t.Fatalf("%q = %q, encoding/json reads %q", k, got, x)
				}
			default:
				if !has {
					t.Fatalf("%q (%T) is missing", k, val)
				}
			}
		}
		// The same parameters, written once each, read back the same.
		flat := make(map[string]string, len(v))
		for k := range v {
			flat[k] = v.Get(k)
		}
		b, _ := json.Marshal(flat)
		again, err := readJSONParams(bytes.NewReader(b))
		if err != nil || !reflect.DeepEqual(again, v) {
			t.Fatalf("round trip of %s: %v, %v; want %v", b, again, err, v)
		}
		// Any accepted body, with one of its names repeated, is refused.
		for k := range v { // any one of them
			kb, _ := json.Marshal(k)
			trimmed := strings.TrimSpace(body)
			twice := trimmed[:len(trimmed)-1] + "," + string(kb) + ":null}"
			if _, err := readJSONParams(strings.NewReader(twice)); err == nil {
				t.Fatalf("%s accepted with %s repeated", twice, kb)
			}
			break
		}
	})
}

// FuzzClientCredentials: any Authorization header and body give either
// credentials or an RFC 6749 error answer, never a panic, and Basic
// credentials are the §2.3.1 form-decoding of what was sent, with what was
// sent as the raw alternative when it differs, or what was sent alone when
// it does not form-decode.
func FuzzClientCredentials(f *testing.F) {
	f.Add("Basic "+"c3ZjOnNlY3JldA==", "")
	f.Add("Basic !!!", "")
	f.Add("basic "+"YSUyMGI6YyUzQWQ=", "client_id=a b")
	f.Add("", "client_id=x&client_secret=y")
	f.Add("Bearer x", "")
	f.Add(rawBasic("svc", "50%off+more"), "")
	f.Add(rawBasic("a+b", "x%41y"), "client_id=a+b")
	f.Fuzz(func(t *testing.T, header, body string) {
		r := httptest.NewRequest("POST", "/oauth/token", strings.NewReader(body))
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		v, _ := url.ParseQuery(body)
		if v == nil {
			v = url.Values{}
		}
		w := httptest.NewRecorder()
		cc, ok := readClientCredentials(w, r, v)
		if !ok {
			if w.Code != http.StatusBadRequest && w.Code != http.StatusUnauthorized {
				t.Fatalf("refused with %d", w.Code)
			}
			if !bytes.Contains(w.Body.Bytes(), []byte(`"error"`)) {
				t.Fatalf("refusal without an error code: %s", w.Body)
			}
			return
		}
		if cc.id == "" && !cc.basic {
			t.Fatal("accepted without a client_id")
		}
		if !cc.basic {
			if cc.raw != nil {
				t.Fatal("a raw alternative without HTTP Basic")
			}
			return
		}
		sent, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(header[len("basic "):]))
		id, secret, _ := strings.Cut(string(sent), ":")
		did, err1 := url.QueryUnescape(id)
		dsecret, err2 := url.QueryUnescape(secret)
		switch {
		case err1 != nil || err2 != nil:
			if cc.id != id || cc.secret != secret || cc.raw != nil {
				t.Fatalf("undecodable %q:%q read as %q:%q (raw %v)", id, secret, cc.id, cc.secret, cc.raw)
			}
		case did == id && dsecret == secret:
			if cc.id != id || cc.secret != secret || cc.raw != nil {
				t.Fatalf("%q:%q read as %q:%q (raw %v)", id, secret, cc.id, cc.secret, cc.raw)
			}
		default:
			if cc.id != did || cc.secret != dsecret || cc.raw == nil || cc.raw.id != id || cc.raw.secret != secret {
				t.Fatalf("%q:%q read as %q:%q (raw %v), want %q:%q and the raw pair", id, secret, cc.id, cc.secret, cc.raw, did, dsecret)
			}
		}
	})
}

// FuzzParseForm: parseForm, the fast path of readParams, gives exactly
// url.ParseQuery's values, and an error exactly where it errs.
func FuzzParseForm(f *testing.F) {
	f.Add("grant_type=client_credentials&scope=a+b&client_id=x%2Fy")
	f.Add("token=eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln&token_type_hint=access_token")
	f.Add("a;b=c&d=%zz&&=&e")
	f.Add("%41=%42%&x")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseForm(s)
		want, wantErr := url.ParseQuery(s)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("parseForm(%q) error %v, url.ParseQuery %v", s, err, wantErr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("parseForm(%q) = %v, url.ParseQuery %v", s, got, want)
		}
	})
}
