package authhttp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// maxBodyBytes bounds every request body: our largest legitimate body (a
// client with 100 scopes) is a few kilobytes.
const maxBodyBytes = 64 << 10

// errBody is a request body we cannot use; status says why.
type errBody struct {
	status int
	msg    string
}

func (e *errBody) Error() string { return e.msg }

// readParams reads a form (urlencoded or multipart) or JSON object body into
// url.Values, bounded by maxBodyBytes. A JSON array of strings becomes one
// space-separated value (for "scope"); booleans and numbers become text.
func readParams(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		// No body at all is an empty form; a body without a type is refused.
		n, err := io.Copy(io.Discard, io.LimitReader(r.Body, 1))
		if err != nil {
			return nil, bodyError(err)
		}
		if n == 0 {
			return url.Values{}, nil
		}
		return nil, &errBody{http.StatusUnsupportedMediaType, "Content-Type must be application/x-www-form-urlencoded, multipart/form-data or application/json"}
	}
	mt, err := mediaType(ct)
	if err != nil {
		return nil, &errBody{http.StatusUnsupportedMediaType, "malformed Content-Type"}
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		b, err := readBody(r)
		if err != nil {
			return nil, bodyError(err)
		}
		v, err := parseForm(b)
		if err != nil {
			return nil, &errBody{http.StatusBadRequest, "malformed form body"}
		}
		return v, nil
	case "multipart/form-data":
		if err := r.ParseMultipartForm(maxBodyBytes); err != nil {
			return nil, bodyError(err)
		}
		if len(r.MultipartForm.File) > 0 {
			return nil, &errBody{http.StatusBadRequest, "file uploads are not accepted"}
		}
		return url.Values(r.MultipartForm.Value), nil
	case "application/json":
		return readJSONParams(r.Body)
	default:
		return nil, &errBody{http.StatusUnsupportedMediaType, "Content-Type must be application/x-www-form-urlencoded, multipart/form-data or application/json"}
	}
}

// readBody reads a whole (already bounded) body: in one buffer of the
// announced length when there is one, as every client we know sends it.
func readBody(r *http.Request) (string, error) {
	if r.ContentLength <= 0 || r.ContentLength > maxBodyBytes {
		b, err := io.ReadAll(r.Body)
		return string(b), err
	}
	// Not io.Copy: into a strings.Builder it would allocate 32 KiB a call.
	b := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(r.Body, b); err != nil {
		return "", err
	}
	return string(b), nil
}

// maxFormParams is url.ParseQuery's own limit.
const maxFormParams = 10000

// parseForm is url.ParseQuery (the same values, and an error where it
// errs) without its cost on values that need no unescaping (tokens,
// generated secrets, ids): url.QueryUnescape inspects them a byte at a time.
func parseForm(s string) (url.Values, error) {
	if strings.Count(s, "&") >= maxFormParams {
		return nil, errors.New("too many form parameters")
	}
	v := make(url.Values, 4)
	var firstErr error
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		if strings.Contains(pair, ";") {
			if firstErr == nil {
				firstErr = errors.New("invalid semicolon separator in query")
			}
			continue
		}
		if pair == "" {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		key, err := unescapeForm(key)
		if err == nil {
			value, err = unescapeForm(value)
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		v[key] = append(v[key], value)
	}
	return v, firstErr
}

func unescapeForm(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	return url.QueryUnescape(s)
}

// mediaType is mime.ParseMediaType's media type, without its cost (a map
// per call) for the plain types clients send.
func mediaType(ct string) (string, error) {
	switch ct {
	case "application/x-www-form-urlencoded", "application/json":
		return ct, nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	return mt, err
}

// jsonValued are the parameters whose JSON value may be an object or an
// array of objects (RFC 7591 metadata); readJSONParams keeps their JSON
// text. In a form they are JSON text too.
var jsonValued = map[string]bool{"jwks": true, "federated_credentials": true}

// readJSONParams reads a JSON object of parameters: each value a string, a
// boolean, a number, null (the parameter is absent) or an array of strings
// (one space-separated value, for "scope"); those named in jsonValued may
// also be any JSON value, kept as its text. A name given twice is refused,
// as in a form (param): RFC 8259 §4 leaves the meaning of duplicate names
// to each parser, and taking the last one let a body say two things.
// It reads token by token, since decoding into a map would keep only the
// last value.
func readJSONParams(body io.Reader) (url.Values, error) {
	dec := json.NewDecoder(body)
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, bodyError(err)
	}
	if tok != json.Delim('{') {
		return nil, &errBody{http.StatusBadRequest, "malformed JSON body: want an object"}
	}
	v := url.Values{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, bodyError(err)
		}
		k, _ := tok.(string) // an object's names are strings, or Token fails
		if seen[k] {
			return nil, &errBody{http.StatusBadRequest, fmt.Sprintf("parameter %s given more than once", quoteName(k))}
		}
		seen[k] = true
		if jsonValued[k] {
			// Kept as its JSON text (a string's content), for the route to
			// decode: a JWK Set, a list of objects.
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, bodyError(err)
			}
			var str string
			switch {
			case string(raw) == "null":
			case json.Unmarshal(raw, &str) == nil:
				v.Set(k, str)
			default:
				v.Set(k, string(raw))
			}
			continue
		}
		if tok, err = dec.Token(); err != nil {
			return nil, bodyError(err)
		}
		switch x := tok.(type) {
		case nil:
		case string:
			v.Set(k, x)
		case bool:
			v.Set(k, strconv.FormatBool(x))
		case json.Number:
			v.Set(k, x.String())
		case json.Delim:
			if x != '[' {
				return nil, &errBody{http.StatusBadRequest, fmt.Sprintf("malformed JSON body: %s has an unsupported type", quoteName(k))}
			}
			parts := []string{}
			for dec.More() {
				e, err := dec.Token()
				if err != nil {
					return nil, bodyError(err)
				}
				s, ok := e.(string)
				if !ok {
					return nil, &errBody{http.StatusBadRequest, fmt.Sprintf("malformed JSON body: %s must be a string or an array of strings", quoteName(k))}
				}
				parts = append(parts, s)
			}
			if _, err := dec.Token(); err != nil { // the closing ]
				return nil, bodyError(err)
			}
			v.Set(k, strings.Join(parts, " "))
		}
	}
	if _, err := dec.Token(); err != nil { // the closing }
		return nil, bodyError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, bodyError(err)
		}
		return nil, &errBody{http.StatusBadRequest, "malformed JSON body: trailing data"}
	}
	return v, nil
}

// quoteName quotes a parameter name for an error message, cut short: the
// name is the caller's and may be as long as the body.
func quoteName(k string) string {
	const most = 64 // bytes
	if len(k) > most {
		return strconv.Quote(strings.ToValidUTF8(k[:most], "")) + "…"
	}
	return strconv.Quote(k)
}

func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &errBody{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", maxBodyBytes)}
	}
	if errors.Is(err, http.ErrNotMultipart) || errors.Is(err, http.ErrMissingBoundary) {
		return &errBody{http.StatusBadRequest, "malformed multipart body"}
	}
	return &errBody{http.StatusBadRequest, "malformed request body"}
}

// param returns the single value of key; a parameter given twice is an
// error (RFC 6749 §3.2: parameters must not be repeated).
func param(v url.Values, key string) (string, error) {
	vals := v[key]
	switch len(vals) {
	case 0:
		return "", nil
	case 1:
		return vals[0], nil
	default:
		return "", &errBody{http.StatusBadRequest, fmt.Sprintf("parameter %q given more than once", key)}
	}
}

// params reads the named parameters of the body; ok is false when a reply
// has been written.
func params(w http.ResponseWriter, r *http.Request, keys ...string) (map[string]string, bool) {
	v, err := readParams(w, r)
	if err == nil {
		out := make(map[string]string, len(keys))
		for _, k := range keys {
			if out[k], err = param(v, k); err != nil {
				break
			}
		}
		if err == nil {
			return out, true
		}
	}
	writeBodyError(w, err)
	return nil, false
}

// writeBodyError answers an error of readParams or param.
func writeBodyError(w http.ResponseWriter, err error) {
	var eb *errBody
	if errors.As(err, &eb) {
		writeError(w, eb.status, eb.msg)
	} else {
		writeError(w, http.StatusBadRequest, "malformed request body")
	}
}

// parseBool accepts what PostgreSQL accepts for a boolean, as the seed
// service passed is_admin straight to it.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "false", "f", "0", "no", "n", "off":
		return false, nil
	case "true", "t", "1", "yes", "y", "on":
		return true, nil
	}
	return false, errors.New("is_admin must be true or false")
}
