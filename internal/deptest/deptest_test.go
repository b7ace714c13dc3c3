// Package deptest pins the import direction of ../shared/DESIGN.md: a
// package imports only those below it, the front ends never import each
// other, and internal/pki does no I/O. The idea is tailscale's
// tstest/deptest; the table is DESIGN.md's.
package deptest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/portcullis-dev/portcullis"

// allowed lists, per package, the module packages it may import (non-test
// code). Leaves any package may use: atomicfile, strictyaml. Sub-packages inherit their
// parent's row (store/sqlite is "store").
var allowed = map[string][]string{
	"cmd/portcullis":      {"*"},
	"internal/gateway":    {"policy", "revocation", "tlsconf", "obs"},
	"internal/server":     {"ca", "store", "attest", "web", "obs", "server"},
	"internal/agent":      {"pki", "keystore", "obs", "server/api"},
	"internal/tunnel":     {"policy", "revocation", "tlsconf", "obs"},
	"internal/ca":         {"pki", "keystore", "store"},
	"internal/policy":     {},
	"internal/revocation": {"pki"},
	"internal/tlsconf":    {"keystore", "pki"},
	"internal/store":      {"store"},
	"internal/keystore":   {"pki"},
	"internal/pki":        {},
	"internal/obs":        {},
	"internal/atomicfile": {},
	"internal/strictyaml": {},
	"internal/testpeer":   {},
	"internal/deptest":    {},
}

// leaves may be imported by anything.
var leaves = []string{"internal/atomicfile", "internal/strictyaml"}

// pureForbidden are the standard packages internal/pki must not import:
// it is pure so it can be fuzzed and tested without a filesystem or network.
var pureForbidden = []string{"os", "os/exec", "net/http", "io/ioutil", "database/sql"}

type pkg struct {
	ImportPath string
	Imports    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// row finds the table row of a package: its own, or its closest parent's.
func row(rel string) (string, []string, bool) {
	for p := rel; p != "." && p != ""; {
		if r, ok := allowed[p]; ok {
			return p, r, true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return "", nil, false
}

func TestImportDirection(t *testing.T) {
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if strings.HasPrefix(rel, "test/") {
			continue
		}
		name, ok2, ok := row(rel)
		if !ok {
			t.Errorf("%s: no row in the dependency table; add it to DESIGN.md and this test", rel)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			if !permitted(name, ok2, dep) {
				t.Errorf("%s imports %s, which DESIGN.md does not allow (allowed: %v)", rel, dep, ok2)
			}
		}
	}
}

func permitted(name string, row []string, dep string) bool {
	for _, l := range leaves {
		if dep == l {
			return true
		}
	}
	if strings.HasPrefix(dep, name+"/") || dep == name {
		return true // a package and its sub-packages
	}
	for _, a := range row {
		if a == "*" || dep == "internal/"+a || strings.HasPrefix(dep, "internal/"+a+"/") {
			return true
		}
	}
	return false
}

func TestPKIIsPure(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.ImportPath != module+"/internal/pki" {
			continue
		}
		for _, imp := range p.Imports {
			for _, bad := range pureForbidden {
				if imp == bad {
					t.Errorf("internal/pki imports %s; it must stay free of I/O", imp)
				}
			}
		}
		return
	}
	t.Fatal("internal/pki not found by go list")
}
