package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authsvc/authsvc/authhttp"
	"github.com/authsvc/authsvc/internal/testdb"
	"github.com/authsvc/authsvc/internal/testissuer"
)

// TestCLISecretless walks the issuer commands and the secretless client
// flags through one store.
func TestCLISecretless(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		cliEnv(t, dbURL)
		k8s := testissuer.NewKey(t, "RS256", "cluster-1")
		clusterJWKS := filepath.Join(t.TempDir(), "cluster-jwks.json")
		os.WriteFile(clusterJWKS, testissuer.JWKS(t, k8s), 0o600)
		const cluster = "https://kubernetes.default.svc.cluster.local"

		step(t, "issuer add", func(t *testing.T) {
			var got authhttp.IssuerJSON
			okJSON(t, &got, "issuer", "add", cluster, "--jwks-file", clusterJWKS, "--allow-reuse", "--max-lifetime", "2h", "--json")
			if got.Issuer != cluster || got.KeySource != "jwks" || !got.AllowReuse || got.MaxLifetime != "2h0m0s" || got.Audience != "" {
				t.Fatalf("issuer add: %+v", got)
			}
			out := ok(t, "issuer", "add", "https://token.actions.githubusercontent.com", "--audience", "https://authd.example")
			if !strings.Contains(out, "OIDC discovery") || !strings.Contains(out, "each token is accepted once") {
				t.Fatalf("issuer add:\n%s", out)
			}
			fails(t, 1, "issuer already trusted", "issuer", "add", cluster, "--jwks-file", clusterJWKS)
			ok(t, "issuer", "add", cluster, "--jwks-file", clusterJWKS, "--replace")
			fails(t, 1, "trust domain", "issuer", "add", "spiffe://Bad", "--jwks-file", clusterJWKS)
			fails(t, 1, "https URL", "issuer", "add", "cluster.local")
			fails(t, 2, "missing one issuer", "issuer", "add")
		})
		step(t, "issuer list", func(t *testing.T) {
			var list []authhttp.IssuerJSON
			okJSON(t, &list, "issuer", "list", "--json")
			if len(list) != 2 || list[0].Issuer != cluster || list[0].MaxLifetime != "1h0m0s" || list[0].AllowReuse {
				t.Fatalf("issuer list (replaced without the flags: the defaults): %+v", list)
			}
			if out := ok(t, "issuer", "list"); !strings.Contains(out, "discovery") {
				t.Fatalf("issuer list:\n%s", out)
			}
		})

		key := testissuer.NewKey(t, "ES256", "c1")
		jwksFile := filepath.Join(t.TempDir(), "client-jwks.json")
		os.WriteFile(jwksFile, testissuer.JWKS(t, key), 0o600)
		step(t, "client create private_key_jwt", func(t *testing.T) {
			var c cliClientOut
			okJSON(t, &c, "client", "create", "--id", "api", "--jwks-file", jwksFile,
				"--federated", cluster+"=system:serviceaccount:payments:api", "--json")
			if c.TokenEndpointAuthMethod != "private_key_jwt" || c.ClientSecret != "" || len(c.JWKS) == 0 ||
				len(c.FederatedCredentials) != 1 || c.FederatedCredentials[0].Subject != "system:serviceaccount:payments:api" {
				t.Fatalf("create: %+v", c)
			}
			out := ok(t, "client", "create", "--id", "fed-only", "--auth-method", "private_key_jwt", "--federated", cluster+"=system:serviceaccount:ci:deploy")
			if !strings.Contains(out, "has no secret") || strings.Contains(out, "client_secret:") {
				t.Fatalf("create fed-only:\n%s", out)
			}
			fails(t, 1, "not trusted", "client", "create", "--id", "x", "--federated", "https://nope.example=sub")
			fails(t, 2, "ISSUER=SUBJECT", "client", "create", "--id", "x", "--federated", "no-equals-sign")
			fails(t, 1, "needs jwks", "client", "create", "--id", "x", "--auth-method", "private_key_jwt")
			fails(t, 1, "https", "client", "create", "--id", "x", "--jwks-uri", "http://keys.example/jwks")
		})
		step(t, "client update", func(t *testing.T) {
			// A secret client switches to private_key_jwt: its secret is dropped.
			ok(t, "client", "create", "--id", "legacy")
			var c cliClientOut
			okJSON(t, &c, "client", "update", "legacy", "--auth-method", "private_key_jwt", "--jwks-uri", "https://keys.example/jwks", "--json")
			if c.TokenEndpointAuthMethod != "private_key_jwt" || c.JWKSURI != "https://keys.example/jwks" {
				t.Fatalf("update: %+v", c)
			}
			fails(t, 1, "rotating its secret gives it one", "client", "update", "legacy", "--auth-method", "client_secret_basic")
			okJSON(t, &c, "client", "update", "api", "--federated", "", "--json")
			if len(c.FederatedCredentials) != 0 || len(c.JWKS) == 0 {
				t.Fatalf("update --federated \"\": %+v", c)
			}
			fails(t, 1, "needs jwks", "client", "update", "fed-only", "--federated", "")
			// rotate-secret gives a private_key_jwt client a secret back.
			var r cliClientOut
			okJSON(t, &r, "client", "rotate-secret", "legacy", "--json")
			if r.TokenEndpointAuthMethod != "client_secret_basic" || len(r.ClientSecret) != 43 || r.JWKSURI != "" {
				t.Fatalf("rotate-secret: %+v", r)
			}
			if out := ok(t, "client", "show", "api"); !strings.Contains(out, "auth:       private_key_jwt") || !strings.Contains(out, `"kid":"c1"`) {
				t.Fatalf("show:\n%s", out)
			}
		})
		step(t, "issuer remove", func(t *testing.T) {
			ok(t, "issuer", "remove", cluster)
			fails(t, 1, "issuer not found", "issuer", "remove", cluster)
			var list []authhttp.IssuerJSON
			okJSON(t, &list, "issuer", "list", "--json")
			if len(list) != 1 {
				t.Fatalf("after remove: %+v", list)
			}
		})
	})
}
