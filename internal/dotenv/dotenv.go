// Package dotenv reads .env files, the way the Flask tutorial service's
// users write them (python-dotenv's syntax, minus interpolation), into the
// process environment without overriding what is set already.
package dotenv

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"unicode"
)

// maxSize bounds what Parse accepts; a real .env is a few hundred bytes.
const maxSize = 1 << 20

// Load copies the variables of the .env file at path into the process environment. Variables that are
// already set, even to "", are left alone so the real environment always wins over the file.
func Load(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	// Read one byte past the limit so Parse reports an oversized file instead of seeing a truncated one.
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	vars, err := Parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for k, v := range vars {
		if _, set := os.LookupEnv(k); set {
			continue
		}
		if err := os.Setenv(k, v); err != nil {
			return fmt.Errorf("%s: set %s: %w", path, k, err)
		}
	}
	return nil
}

// Parse parses .env content: KEY=VALUE lines; blank lines and lines starting with # ignored; optional
// leading "export "; whitespace around key and around an unquoted value trimmed (so "3000 " is "3000");
// an unquoted value ends at " #" (inline comment); single-quoted values literal; double-quoted values support \n \" \\ escapes;
// keys must match [A-Za-z_][A-Za-z0-9_]*; a malformed line is an error naming its line number (but never echoing the value,
// which may be a secret). Limit: input over 1 MiB is an error.
//
// Also: CRLF line endings and a leading UTF-8 byte order mark are accepted (Windows editors write both);
// other backslash sequences in double quotes are kept as written; a value may not contain a NUL byte
// (the environment cannot hold one); a later line for the same key wins, as in a shell.
func Parse(data []byte) (map[string]string, error) {
	if len(data) > maxSize {
		return nil, fmt.Errorf("input is over the %d-byte limit", maxSize)
	}
	text := strings.TrimPrefix(string(data), "\ufeff")
	vars := make(map[string]string)
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line) // also drops the \r of a CRLF ending
		if line == "" || line[0] == '#' {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "export"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			line = strings.TrimLeft(rest, " \t")
		}
		key, raw, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: want KEY=VALUE", i+1)
		}
		key = strings.TrimSpace(key)
		if !validKey(key) {
			return nil, fmt.Errorf("line %d: invalid variable name (want letters, digits and _, not starting with a digit)", i+1)
		}
		value, err := parseValue(raw)
		if err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", i+1, key, err)
		}
		vars[key] = value
	}
	return vars, nil
}

// parseValue parses what follows the '=' of a line. Its errors never include the value.
func parseValue(raw string) (string, error) {
	v := strings.TrimLeftFunc(raw, unicode.IsSpace)
	var value, rest string
	switch {
	case strings.HasPrefix(v, "'"):
		end := strings.IndexByte(v[1:], '\'')
		if end < 0 {
			return "", errors.New("missing closing single quote")
		}
		value, rest = v[1:1+end], v[2+end:]
	case strings.HasPrefix(v, `"`):
		var b strings.Builder
		i := 1
		for ; i < len(v) && v[i] != '"'; i++ {
			if v[i] == '\\' && i+1 < len(v) {
				switch v[i+1] {
				case 'n':
					b.WriteByte('\n')
					i++
					continue
				case '"', '\\':
					b.WriteByte(v[i+1])
					i++
					continue
				}
			}
			b.WriteByte(v[i])
		}
		if i >= len(v) {
			return "", errors.New("missing closing double quote")
		}
		value, rest = b.String(), v[i+1:]
	default:
		// Search raw, not v: "KEY= #x" is an empty value with a comment, "KEY=#x" is the value "#x".
		for i := 1; i < len(raw); i++ {
			if raw[i] == '#' && (raw[i-1] == ' ' || raw[i-1] == '\t') {
				raw = raw[:i]
				break
			}
		}
		value = strings.TrimSpace(raw)
	}
	if rest = strings.TrimSpace(rest); rest != "" && rest[0] != '#' {
		return "", errors.New("unexpected text after the closing quote")
	}
	if strings.IndexByte(value, 0) >= 0 {
		return "", errors.New("value contains a NUL byte")
	}
	return value, nil
}

// validKey reports whether k matches [A-Za-z_][A-Za-z0-9_]*.
func validKey(k string) bool {
	if k == "" || ('0' <= k[0] && k[0] <= '9') {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
