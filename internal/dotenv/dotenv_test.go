package dotenv

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const seedSecret = "0123456789abcdefghijklmnopqrstuvwxyzABCD"

// seedDotenv is the seed service's sample .env, byte for byte (note the trailing space after 3000).
const seedDotenv = "DBNAME=authdb\nDBUSER=authuser\nDBPASSWORD=p@ss:w/rd\nAUTHSECRET=" + seedSecret + "\nEXPIRESSECONDS=3000 \n"

func TestParse(t *testing.T) {
	tests := []struct {
		name, in string
		want     map[string]string
	}{
		{"empty", "", map[string]string{}},
		{"blank lines and comments", "\n  \n# comment\n   # indented comment\nA=1\n\n", map[string]string{"A": "1"}},
		{"trailing space", "EXPIRESSECONDS=3000 \n", map[string]string{"EXPIRESSECONDS": "3000"}},
		{"spaces around key and value", "  KEY \t=  some value \t\n", map[string]string{"KEY": "some value"}},
		{"no final newline", "A=1", map[string]string{"A": "1"}},
		{"export", "export A=1\nexport\tB=2\nexport=3\n", map[string]string{"A": "1", "B": "2", "export": "3"}},
		{"empty values", "A=\nB=''\nC=\"\"\nD= # comment\n", map[string]string{"A": "", "B": "", "C": "", "D": ""}},
		{"equals in value", "URL=postgres://u@h/db?sslmode=require\n", map[string]string{"URL": "postgres://u@h/db?sslmode=require"}},
		{"inline comment", "A=1 # one\nB=2\t# two\nC=x#y\nD=#d\n", map[string]string{"A": "1", "B": "2", "C": "x#y", "D": "#d"}},
		{"single quotes are literal", `A='a\nb "c" # d $E'`, map[string]string{"A": `a\nb "c" # d $E`}},
		{"single quotes keep spaces", "A='  x  '  # c\n", map[string]string{"A": "  x  "}},
		{"double quote escapes", `A="l1\nl2 \"q\" back\\slash \t \$"`, map[string]string{"A": "l1\nl2 \"q\" back\\slash \\t \\$"}},
		{"double quotes keep hash and spaces", `A=" a # b " # c`, map[string]string{"A": " a # b "}},
		{"quote after closing quote comment", `A="x"#c`, map[string]string{"A": "x"}},
		{"quote inside unquoted", `A=it's "fine"`, map[string]string{"A": `it's "fine"`}},
		{"CRLF", "A=1\r\nB='x'\r\nC=\"y\"\r\n\r\n# c\r\nD=3000 \r\n", map[string]string{"A": "1", "B": "x", "C": "y", "D": "3000"}},
		{"byte order mark", "\ufeffA=1\n", map[string]string{"A": "1"}},
		{"later line wins", "A=1\nA=2\n", map[string]string{"A": "2"}},
		{"key characters", "_a9_Z=1\n", map[string]string{"_a9_Z": "1"}},
		{"seed sample", seedDotenv, map[string]string{
			"DBNAME": "authdb", "DBUSER": "authuser", "DBPASSWORD": "p@ss:w/rd", "AUTHSECRET": seedSecret, "EXPIRESSECONDS": "3000",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const secret = "hunter2secret"
	tests := []struct {
		name, in, want string
	}{
		{"no equals sign", "A=1\n" + secret + "\n", "line 2"},
		{"no equals sign with export", "export " + secret + "\n", "line 1"},
		{"key starts with digit", "A=1\n\n1" + secret + "=x\n", "line 3"},
		{"dash in key", "A-" + secret + "=x", "line 1"},
		{"space in key", "A " + secret + "=x", "line 1"},
		{"empty key", "# c\n=" + secret, "line 2"},
		{"unterminated single quote", "A='" + secret, "line 1"},
		{"unterminated double quote", "A=1\r\nB=\"" + secret + "\r\n", "line 2"},
		{"escaped closing quote", `A="` + secret + `\"`, "line 1"},
		{"text after closing quote", `A="` + secret + `"x`, "line 1"},
		{"text after closing single quote", `A='` + secret + `' x`, "line 1"},
		{"NUL byte", "A=" + secret + "\x00", "line 1"},
		{"over 1 MiB", "A=" + strings.Repeat("x", 1<<20), "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("no error, got %q", m)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "xxxx") {
				t.Errorf("error %q echoes the value", err)
			}
		})
	}

	t.Run("exactly 1 MiB is fine", func(t *testing.T) {
		in := "A=" + strings.Repeat("x", 1<<20-2)
		if m, err := Parse([]byte(in)); err != nil || len(m["A"]) != 1<<20-2 {
			t.Errorf("err %v, len %d", err, len(m["A"]))
		}
	})
}

// FuzzParse checks that Parse never panics, only returns valid keys and values the environment
// can hold, and that what it returns survives being written back as KEY="escaped value" lines.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		seedDotenv,
		"export A='x # y'\r\nB=\"1\\n2\\\"3\\\\\" # c\r\n",
		"\ufeffA= #c\nB=#b\nC=it's\n",
		"A=\"\\",
		"1A=x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vars, err := Parse(data)
		if err != nil {
			return
		}
		var b strings.Builder
		esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
		for k, v := range vars {
			if !validKey(k) {
				t.Fatalf("invalid key %q", k)
			}
			if strings.ContainsRune(v, 0) {
				t.Fatalf("value of %s holds a NUL byte", k)
			}
			fmt.Fprintf(&b, "%s=\"%s\"\n", k, esc.Replace(v))
		}
		again, err := Parse([]byte(b.String()))
		if err != nil {
			t.Fatalf("re-parsing %q: %v", b.String(), err)
		}
		if !reflect.DeepEqual(vars, again) {
			t.Fatalf("round trip changed %q into %q", vars, again)
		}
	})
}
