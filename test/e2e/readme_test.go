package e2e

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/ca"
	"github.com/portcullis-dev/portcullis/internal/tunnel"
)

// TestReadmeConfigsParse keeps the README true: its ca.yaml and
// tunnels.yaml examples must parse with the strict decoders.
func TestReadmeConfigsParse(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	for _, tc := range []struct {
		heading string
		parse   func([]byte) error
	}{
		{"### `ca.yaml`", func(b []byte) error { _, err := ca.ParseConfig(b); return err }},
		{"### `tunnels.yaml`", func(b []byte) error { _, err := tunnel.ParseConfig(b); return err }},
	} {
		i := strings.Index(readme, tc.heading)
		if i < 0 {
			t.Errorf("README has no %s section", tc.heading)
			continue
		}
		start := strings.Index(readme[i:], "```yaml\n")
		end := strings.Index(readme[i+start+8:], "```")
		if start < 0 || end < 0 {
			t.Errorf("README %s: no yaml block", tc.heading)
			continue
		}
		block := readme[i+start+8 : i+start+8+end]
		if err := tc.parse([]byte(block)); err != nil {
			t.Errorf("README %s example does not parse: %v", tc.heading, err)
		}
	}
}

// readmeSkipped are the README blocks TestReadmeCommands does not run, by
// their first command, each with a `readme-test: skip` comment saying why.
// Keep it short: a skipped block is a block nobody checks.
var readmeSkipped = []string{
	"make run", // with make test: make test runs this test; TestRunScript covers make run
}

// TestReadmeCommands runs the README's sh blocks in order, as a newcomer
// does in a fresh clone: the first put bin/ on PATH, the walk-throughs
// then run as written. A block after <!-- readme-test: background ADDR… -->
// keeps running (a server) until the test ends; the test waits until it
// listens on each ADDR. Documented ports become free ones.
func TestReadmeCommands(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	steps, skipped, err := readmeSteps(string(data))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	if !slices.Equal(skipped, readmeSkipped) {
		t.Errorf("README blocks marked skip start with %q, want %q (readmeSkipped)", skipped, readmeSkipped)
	}
	newShellSession(t, "openssl", "curl", "perl").run(steps)
}

var markerRE = regexp.MustCompile(`^<!-- readme-test: (\S+)(.*) -->$`)

// readmeSteps returns the sh blocks of a README to run, and the first
// command of each block marked skip.
func readmeSteps(readme string) (steps []shellStep, skipped []string, err error) {
	lines := strings.Split(readme, "\n")
	marker := -1 // line index of a marker not yet used
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if m := markerRE.FindStringSubmatch(l); m != nil || strings.HasPrefix(l, "<!-- readme-test") {
			if m == nil || marker >= 0 {
				return nil, nil, fmt.Errorf("line %d: %q: want <!-- readme-test: skip (why) --> or background ADDR…, once, before a sh block", i+1, l)
			}
			marker = i
			continue
		}
		if !strings.HasPrefix(l, "```") {
			continue
		}
		start := i + 1
		for i++; i < len(lines) && lines[i] != "```"; i++ {
		}
		if l != "```sh" {
			if marker >= 0 {
				return nil, nil, fmt.Errorf("line %d: a readme-test comment before a %s block", marker+1, l)
			}
			continue
		}
		st := shellStep{file: "README.md", line: start + 1, text: strings.Join(lines[start:i], "\n") + "\n"}
		if marker >= 0 {
			m := markerRE.FindStringSubmatch(lines[marker])
			switch arg := strings.TrimSpace(m[2]); {
			case m[1] == "skip" && strings.HasPrefix(arg, "(") && strings.HasSuffix(arg, ")"):
				skipped = append(skipped, firstCommand(st.text))
				marker = -1
				continue
			case m[1] == "background" && arg != "":
				st.background, st.wait = true, strings.Fields(arg)
			default:
				return nil, nil, fmt.Errorf("line %d: %q: want skip (why) or background ADDR…", marker+1, lines[marker])
			}
			marker = -1
		}
		steps = append(steps, st)
	}
	if marker >= 0 {
		return nil, nil, fmt.Errorf("line %d: a readme-test comment with no sh block after it", marker+1)
	}
	return steps, skipped, nil
}

// firstCommand is the first line of a script that is not a comment, up to
// its comment.
func firstCommand(script string) string {
	for _, l := range strings.Split(script, "\n") {
		l, _, _ = strings.Cut(l, "#")
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}
