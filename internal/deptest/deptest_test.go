// Package deptest pins the import direction of docs/design.md: it reads the
// package table there (the doc is the source of truth; there is no copy
// here) and checks every package of the module against it with `go list`:
// a package imports only the rows its own row allows, test-only helpers
// stay out of production code, every package has a row and every row's
// status is true, and internal/pki does no I/O. The idea is tailscale's
// tstest/deptest.
package deptest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const (
	module = "github.com/portcullis-dev/portcullis"
	// designDoc is docs/design.md, seen from this package's directory
	// (where go test runs).
	designDoc = "../../docs/design.md"
)

// pureForbidden are the standard packages internal/pki must not import:
// it is pure so it can be fuzzed and tested without a filesystem or network.
var pureForbidden = []string{"os", "os/exec", "net/http", "io/ioutil", "database/sql"}

// Statuses of a row in the design table.
const (
	built    = "built"     // exists, held to its row
	planned  = "planned"   // must not exist yet
	leaf     = "leaf"      // exists; any package may import it
	testOnly = "test-only" // exists; only test code may import it
)

// rule is one row of the design table.
type rule struct {
	pkg    string   // module-relative path: internal/ca, cmd/portcullis
	allow  []string // "ca", "store/*" or "*"
	status string
	line   int // in docs/design.md, for messages
}

// table is the design table in the order of the doc (top may import below).
type table struct {
	rules []rule
	index map[string]int // pkg → position in rules
}

var (
	headerRe = regexp.MustCompile(`^\|\s*package\s*\|\s*owns\s*\|\s*may import\s*\|\s*status\s*\|\s*$`)
	codeRe   = regexp.MustCompile("`([^`]+)`")
)

// parseTable reads the one markdown table of doc whose header is
// "| package | owns | may import | status |".
func parseTable(doc string) (*table, error) {
	lines := strings.Split(doc, "\n")
	start := slices.IndexFunc(lines, func(l string) bool { return headerRe.MatchString(l) })
	if start < 0 {
		return nil, fmt.Errorf("no table with header | package | owns | may import | status |")
	}
	t := &table{index: map[string]int{}}
	for i := start + 2; i < len(lines) && strings.HasPrefix(lines[i], "|"); i++ {
		r, err := parseRow(lines[i], i+1)
		if err != nil {
			return nil, err
		}
		if _, dup := t.index[r.pkg]; dup {
			return nil, fmt.Errorf("line %d: second row for %s", r.line, r.pkg)
		}
		t.index[r.pkg] = len(t.rules)
		t.rules = append(t.rules, r)
	}
	if len(t.rules) == 0 {
		return nil, fmt.Errorf("line %d: the package table has no rows", start+1)
	}
	return t, t.check()
}

// parseRow reads "| `pkg` | owns | `a`, `b` or — | status |". The owns
// column may hold anything but a "|".
func parseRow(l string, n int) (rule, error) {
	cells := strings.Split(strings.Trim(strings.TrimSpace(l), "|"), "|")
	if len(cells) != 4 {
		return rule{}, fmt.Errorf("line %d: %d cells, want 4 (package, owns, may import, status): %s", n, len(cells), l)
	}
	pkg := codeRe.FindStringSubmatch(cells[0])
	if pkg == nil {
		return rule{}, fmt.Errorf("line %d: package cell %q has no `path`", n, cells[0])
	}
	r := rule{pkg: pkg[1], status: strings.TrimSpace(cells[3]), line: n}
	for _, m := range codeRe.FindAllStringSubmatch(cells[2], -1) {
		r.allow = append(r.allow, m[1])
	}
	if imp := strings.TrimSpace(cells[2]); len(r.allow) == 0 && imp != "—" {
		return rule{}, fmt.Errorf("line %d: may import %q: want `names` or —", n, imp)
	}
	switch r.status {
	case built, planned, leaf, testOnly:
	default:
		return rule{}, fmt.Errorf("line %d: status %q: want built, planned, leaf or test-only", n, r.status)
	}
	return r, nil
}

// check makes every may-import name a row, further down the table unless
// the row is test-only (a helper sits next to what it helps, and only tests
// import it, so it cannot turn the layers into a cycle).
func (t *table) check() error {
	var errs []string
	for i, r := range t.rules {
		for _, a := range r.allow {
			if a == "*" {
				continue
			}
			j, ok := t.index["internal/"+strings.TrimSuffix(a, "/*")]
			switch {
			case !ok:
				errs = append(errs, fmt.Sprintf("line %d: %s may import %q, which has no row", r.line, r.pkg, a))
			case j <= i && r.status != testOnly:
				errs = append(errs, fmt.Sprintf("line %d: %s may import %q, a row above it (edges point down)", r.line, r.pkg, a))
			}
		}
	}
	if errs != nil {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// owner returns the row a package follows: its own, or its closest parent's.
func (t *table) owner(rel string) (rule, bool) {
	for p := rel; p != ""; {
		if i, ok := t.index[p]; ok {
			return t.rules[i], true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return rule{}, false
}

// permits reports whether production code of a package following row r may
// import dep, whose row is d.
func permits(r rule, dep string, d rule) bool {
	if d.status == testOnly {
		return r.status == testOnly
	}
	if d.pkg == r.pkg || d.status == leaf {
		return true // a package and its subpackages are one unit
	}
	for _, a := range r.allow {
		switch {
		case a == "*",
			dep == "internal/"+a,
			strings.HasSuffix(a, "/*") && strings.HasPrefix(dep, "internal/"+strings.TrimSuffix(a, "*")):
			return true
		}
	}
	return false
}

func loadTable(t *testing.T) *table {
	t.Helper()
	data, err := os.ReadFile(designDoc)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := parseTable(string(data))
	if err != nil {
		t.Fatalf("docs/design.md: %v", err)
	}
	return tab
}

type pkg struct {
	ImportPath string
	Imports    []string // of non-test files
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

// rel is a module package's path inside the module, or "" for others.
func rel(importPath string) string {
	if !strings.HasPrefix(importPath, module+"/") {
		return ""
	}
	return strings.TrimPrefix(importPath, module+"/")
}

func TestImportDirection(t *testing.T) {
	tab := loadTable(t)
	for _, p := range listPackages(t) {
		name := rel(p.ImportPath)
		if strings.HasPrefix(name, "test/") {
			continue // drives the built binary; outside the table
		}
		r, ok := tab.owner(name)
		if !ok {
			t.Errorf("%s: no row in the package table of docs/design.md; add one", name)
			continue
		}
		if r.status == planned {
			t.Errorf("%s exists, but docs/design.md:%d says %s is planned; mark it built", name, r.line, r.pkg)
		}
		for _, imp := range p.Imports {
			dep := rel(imp)
			if dep == "" {
				continue
			}
			d, ok := tab.owner(dep)
			switch {
			case !ok:
				t.Errorf("%s imports %s, which has no row in docs/design.md", name, dep)
			case d.status == testOnly && r.status != testOnly:
				t.Errorf("%s imports %s, a test-only package (docs/design.md:%d); only _test.go files may", name, dep, d.line)
			case !permits(r, dep, d):
				t.Errorf("%s imports %s, which docs/design.md:%d does not allow (%s may import: %s)",
					name, dep, r.line, r.pkg, strings.Join(r.allow, ", "))
			}
		}
	}
}

// TestRowsExist keeps the table true the other way: a row that is not
// planned names a package that exists.
func TestRowsExist(t *testing.T) {
	tab := loadTable(t)
	exists := map[string]bool{}
	for _, p := range listPackages(t) {
		exists[rel(p.ImportPath)] = true
	}
	for _, r := range tab.rules {
		if r.status != planned && !exists[r.pkg] {
			t.Errorf("docs/design.md:%d: %s is %s, but there is no such package; drop the row or mark it planned", r.line, r.pkg, r.status)
		}
	}
}

func TestPKIIsPure(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.ImportPath != module+"/internal/pki" {
			continue
		}
		for _, imp := range p.Imports {
			if slices.Contains(pureForbidden, imp) {
				t.Errorf("internal/pki imports %s; it must stay free of I/O", imp)
			}
		}
		return
	}
	t.Fatal("internal/pki not found by go list")
}

// TestRules pins how the table reads, on the real table: subpackages,
// test-only helpers, leaves and exact names.
func TestRules(t *testing.T) {
	tab := loadTable(t)
	for _, tc := range []struct {
		from, dep string
		want      bool
	}{
		{"internal/tunnel", "internal/tunnel/copyengine", true},  // a package and its subpackages
		{"internal/tunnel/copyengine", "internal/tlsconf", true}, // the parent's row
		{"internal/tunnel/copyengine", "internal/ca", false},
		{"internal/store/sqlite", "internal/store", true},
		{"internal/ca", "internal/store", true},
		{"internal/ca", "internal/store/sqlite", false}, // "store" is not "store/*": cmd wires
		{"internal/tlsconf", "internal/pki", true},
		{"internal/keystore", "internal/pki", true},
		{"internal/pki", "internal/keystore", false},
		{"internal/tunnel", "internal/atomicfile", true},   // leaf
		{"internal/tunnel", "internal/pki/pkitest", false}, // test-only
		{"cmd/portcullis", "internal/testpeer", false},     // not even with *
		{"cmd/portcullis", "internal/store/sqlite", true},
		{"internal/pki/pkitest", "internal/pki", true},
		{"internal/store/storetest", "internal/pki/pkitest", true},
		{"internal/store", "internal/store/storetest", false},
	} {
		t.Run(tc.from+"→"+tc.dep, func(t *testing.T) {
			r, ok1 := tab.owner(tc.from)
			d, ok2 := tab.owner(tc.dep)
			if !ok1 || !ok2 {
				t.Fatalf("owner(%q) = _, %v; owner(%q) = _, %v; want rows", tc.from, ok1, tc.dep, ok2)
			}
			if got := permits(r, tc.dep, d); got != tc.want {
				t.Errorf("permits(%s, %s) = %v, want %v", r.pkg, tc.dep, got, tc.want)
			}
		})
	}
}

func TestParseTableErrors(t *testing.T) {
	const head = "| package | owns | may import | status |\n|---|---|---|---|\n"
	for _, tc := range []struct{ name, doc, want string }{
		{"no table", "# nothing\n", "no table"},
		{"bad status", head + "| `internal/a` | a | — | done |\n", `status "done"`},
		{"bare name", head + "| `internal/a` | a | b | built |\n", `may import "b"`},
		{"unknown name", head + "| `internal/a` | a | `b` | built |\n", `"b", which has no row`},
		{"upward edge", head + "| `internal/b` | b | — | built |\n| `internal/a` | a | `b` | built |\n", "a row above"},
		{"duplicate", head + "| `internal/a` | a | — | built |\n| `internal/a` | a | — | built |\n", "second row"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseTable(tc.doc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseTable(%q) = %v, want an error containing %q", tc.doc, err, tc.want)
			}
		})
	}
}
