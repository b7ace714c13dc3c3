package strictyaml

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type seconds int

func (s *seconds) UnmarshalYAML(n *yaml.Node) error {
	v, err := strconv.Atoi(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("seconds %q: want a whole number", n.Value)
	}
	*s = seconds(v)
	return nil
}

type common struct {
	Comment string `yaml:"comment"`
}

type identity struct {
	Cert   string `yaml:"cert"`
	CACert string `yaml:"cacert"`
}

type rules struct {
	AllowAll bool     `yaml:"allow_all"`
	CN       []string `yaml:"cn"`
}

type item struct {
	Name     string            `yaml:"name"`
	Targets  []string          `yaml:"targets"`
	Identity identity          `yaml:"identity"`
	Allow    rules             `yaml:"allow"`
	Timeout  seconds           `yaml:"connect_timeout"`
	MaxConns int               `yaml:"max_concurrent_conns"`
	Labels   map[string]string `yaml:"labels"`
	Secret   string            `yaml:"-"`
	common   `yaml:",inline"`
}

type doc struct {
	Version int      `yaml:"version"`
	Status  string   `yaml:"status"`
	Items   []item   `yaml:"services" strictyaml:"service"`
	Plain   []rules  `yaml:"plain"`
	Ptr     *rules   `yaml:"ptr"`
	Limits  []uint16 `yaml:"limits"`
}

func TestDecode(t *testing.T) {
	const head = "version: 1\nservices:\n  - name: web\n    targets: [127.0.0.1:8080]\n"
	tests := []struct {
		name, in, want string
	}{
		{"valid", head + "    identity: {cert: a, cacert: b}\n    labels: {a: b}\n    comment: inline\n", ""},
		{"empty", "", "empty config"},
		{"comment only", "# nothing\n", "empty config"},
		{"two documents", "version: 1\n---\nversion: 2\n", "more than one YAML document"},
		{"unknown top-level key", "version: 1\nbogus: 2\n", `line 2: unknown key "bogus"`},
		{"unknown key, did you mean", head + "    target: [x]\n",
			`line 5: unknown key "target" in service "web" (did you mean "targets"?)`},
		{"dashes for underscores", head + "    connect-timeout: 5\n",
			`line 5: unknown key "connect-timeout" in service "web" (did you mean "connect_timeout"?)`},
		{"case", "Version: 1\n", `line 1: unknown key "Version" (did you mean "version"?)`},
		{"transposition", "version: 1\nstauts: x\n", `line 2: unknown key "stauts" (did you mean "status"?)`},
		{"nested key path", head + "    identity: {cert: a, ca: b}\n",
			`line 5: unknown key "identity.ca" in service "web" (did you mean "identity.cacert"?)`},
		{"flag-style key one level down", head + "    allow_cn: [x]\n",
			`line 5: unknown key "allow_cn" in service "web" (did you mean "allow.cn"?)`},
		{"nothing close", head + "    colour: red\n", `line 5: unknown key "colour" in service "web"`},
		{"ignored field", head + "    secret: x\n", `line 5: unknown key "secret" in service "web"`},
		{"item without a name", "version: 1\nservices:\n  - targets: []\n    tagrets: []\n",
			`line 4: unknown key "tagrets" in service #1 (did you mean "targets"?)`},
		{"unlabeled list", "version: 1\nplain:\n  - cn: [a]\n  - cm: [b]\n", `line 4: unknown key "plain[1].cm" (did you mean "plain[1].cn"?)`},
		{"pointer", "version: 1\nptr: {allow_al: true}\n", `line 2: unknown key "ptr.allow_al" (did you mean "ptr.allow_all"?)`},
		{"repeated key", head + "    targets: [b]\n", `line 5: key "targets" in service "web" already defined at line 4`},
		{"wrong kind of scalar", head + "    max_concurrent_conns: many\n",
			`line 5: service "web": max_concurrent_conns: want an integer, got "many"`},
		{"list for a scalar", "version: [1]\n", `line 1: version: want an integer, got a list`},
		{"scalar for a list", head + "    identity: {cacert: [a]}\n", `line 5: service "web": identity.cacert: want a string, got a list`},
		{"scalar for a mapping", head + "    identity: a\n", `line 5: service "web": identity: want a mapping, got "a"`},
		{"item not a mapping", "version: 1\nservices: [3]\n", `line 2: service #1: want a mapping, got "3"`},
		{"out of range", "version: 1\nlimits: [1, 70000]\n", `line 2: limits[1]: want a non-negative integer, got "70000"`},
		{"own unmarshaler", head + "    connect_timeout: soon\n", `line 5: service "web": connect_timeout: seconds "soon": want a whole number`},
		{"every problem", "version: x\nbogus: 1\n" + head[len("version: 1\n"):] + "    target: []\n",
			"line 1: version: want an integer, got \"x\"\nline 2: unknown key \"bogus\"\nline 6: unknown key \"target\" in service \"web\" (did you mean \"targets\"?)"},
		{"mis-indented line in a list", head + "    identity: {cert: a}\n   allow: {allow_all: true}\n",
			`line 6: did not find expected '-' indicator (check this line's indentation)`},
		{"mis-indented line in a mapping", "version: 1\nptr:\n  cn: [a]\n allow_all: true\n",
			`line 4: did not find expected key (check this line's indentation)`},
		{"over-indented line", head + "      identity: {}\n", `line 5: did not find expected key (check this line's indentation)`},
		{"tab", head + "\tidentity: {}\n", `line 5: found character that cannot start any token`},
		{"syntax error on line 1", "version: [\n", `line 1: did not find expected node content`},
		{"unclosed flow list", "version: 1\nplain: [\n  a,\n  b\nstatus: x\n", `line 4: did not find expected ',' or ']'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d doc
			err := Decode([]byte(tt.in), &d)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Decode(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestDecodeValues(t *testing.T) {
	in := "version: 1\ndefaults: &d {cn: [a]}\nservices:\n  - name: web\n    allow:\n      <<: *d\n      allow_all: false\n    connect_timeout: 7\n"
	var d struct {
		Version  int    `yaml:"version"`
		Defaults rules  `yaml:"defaults"`
		Items    []item `yaml:"services" strictyaml:"service"`
	}
	if err := Decode([]byte(in), &d); err != nil {
		t.Fatalf("Decode(%q) = %v", in, err)
	}
	if len(d.Items) != 1 || d.Items[0].Timeout != 7 || len(d.Items[0].Allow.CN) != 1 {
		t.Errorf("Decode(%q) = %+v", in, d)
	}
	var bad struct {
		Items []item `yaml:"services" strictyaml:"service"`
	}
	err := Decode([]byte("services:\n  - name: a\n    allow:\n      <<: {cm: [a]}\n"), &bad)
	if err == nil || err.Error() != `line 4: unknown key "allow.cm" in service "a" (did you mean "allow.cn"?)` {
		t.Errorf("Decode(merge with unknown key) = %v", err)
	}
	if err := Decode([]byte("a: 1\n"), d); err == nil {
		t.Errorf("Decode(non-pointer) = %v, want an error", err)
	}
}

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"target", "targets", 1},
		{"tagrets", "targets", 1},
		{"kitten", "sitting", 3},
		{"", "abc", 3},
		{"ca", "cacert", 4},
	}
	for _, tt := range tests {
		if got := distance(tt.a, tt.b); got != tt.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("version: 1\nservices:\n  - name: web\n    targets: [a]\n   identity: {}\n"))
	f.Add([]byte("version: 1\nptr: {allow_al: true}\nservices: [{name: a, connect_timeout: x}]\n"))
	f.Add([]byte("a: &x {cn: [a]}\nplain: [*x, {<<: *x}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d doc
		if err := Decode(data, &d); err != nil && err.Error() == "" {
			t.Fatalf("Decode(%q): empty error", data)
		}
	})
}

// TestSyntaxErrorLongFile: the line search finds the last line of a long
// file (it takes a few parses, not one per line).
func TestSyntaxErrorLongFile(t *testing.T) {
	const lines = 2000
	b := []byte("list:\n")
	for i := range lines - 2 {
		b = fmt.Appendf(b, "  - k%d\n", i)
	}
	b = append(b, " bad\n"...)
	var m map[string][]string
	err := Decode(b, &m)
	if want := fmt.Sprintf("line %d: did not find expected key", lines); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Decode(long file) = %v, want %q…", err, want)
	}
}

func TestAliasBomb(t *testing.T) {
	in := "a: &a [[], [], [], [], [], [], [], [], [], []]\n"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		prev := string(rune(n[0] - 1))
		in += fmt.Sprintf("%s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", n, n, prev, prev, prev, prev, prev, prev, prev, prev, prev, prev)
	}
	var m map[string]nest
	if err := Decode([]byte(in), &m); err == nil || err.Error() != "aliases expand to too many values" {
		t.Errorf("Decode(alias bomb) = %v, want an error", err)
	}
}

// nest makes check follow every alias.
type nest []nest
