package main

import (
	"strings"
	"testing"

	"github.com/authsvc/authsvc/internal/testdb"
)

// TestCLIDPoPBound: client create --dpop-bound and update --dpop-bound=false.
func TestCLIDPoPBound(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dbURL string) {
		cliEnv(t, dbURL)
		var c cliClientOut
		okJSON(t, &c, "client", "create", "--id", "bound", "--dpop-bound", "--json")
		if !c.DPoPBound {
			t.Fatalf("create --dpop-bound: %+v", c)
		}
		if out := ok(t, "client", "show", "bound"); !strings.Contains(out, "DPoP-bound") {
			t.Fatalf("show:\n%s", out)
		}
		c = cliClientOut{}
		okJSON(t, &c, "client", "update", "bound", "--dpop-bound=false", "--json")
		if c.DPoPBound || c.ClientID != "bound" {
			t.Fatalf("update --dpop-bound=false: %+v", c)
		}
		if out := ok(t, "client", "show", "bound"); strings.Contains(out, "DPoP-bound") {
			t.Fatalf("show after update:\n%s", out)
		}
	})
}
