package authhttp

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/authsvc/authsvc"
)

// TestResponseStructsAsMaps: the hot responses are structs for speed; their
// bytes must be exactly those of the maps they replaced (keys sorted,
// HTML-escaped strings, null for a nil audience).
func TestResponseStructsAsMaps(t *testing.T) {
	odd := `a<b>&"c"` + "\u2028"
	for _, aud := range []authsvc.Audience{nil, {"https://x.test", odd}} {
		pairs := []struct {
			name      string
			got, want any
		}{
			{"token", tokenResponse{AccessToken: odd, TokenType: "Bearer", ExpiresIn: 3600, Scope: "a b"},
				map[string]any{"access_token": odd, "token_type": "Bearer", "expires_in": int64(3600), "scope": "a b"}},
			{"auth", authResponse{Token: odd, ExpiresIn: 60, ExpiresInString: "60", IsAdmin: true},
				map[string]any{"token": odd, "expiresIn": int64(60), "expiresin": "60", "isAdmin": true}},
			{"introspect", introspection{Active: true, Scope: odd, ClientID: "c", Subject: "s", ExpiresAt: 3,
				IssuedAt: 1, NotBefore: 2, Issuer: "i", Audience: aud, ID: "j", TokenType: "Bearer"},
				map[string]any{"active": true, "scope": odd, "client_id": "c", "sub": "s", "exp": int64(3),
					"iat": int64(1), "nbf": int64(2), "iss": "i", "aud": aud, "jti": "j", "token_type": "Bearer"}},
		}
		for _, p := range pairs {
			got, _ := json.Marshal(p.got)
			want, _ := json.Marshal(p.want)
			if !bytes.Equal(got, want) {
				t.Errorf("%s:\n got %s\nwant %s", p.name, got, want)
			}
		}
	}
	want, _ := json.Marshal(map[string]bool{"active": false})
	if string(inactive) != string(want)+"\n" {
		t.Errorf("inactive: %q, want %q", inactive, want)
	}
}
