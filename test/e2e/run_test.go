package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRunScript runs what `make run` runs (scripts/run.sh) in a fresh
// clone, then every step it prints, as a newcomer copies them: the CA
// steps, a stand-in app and the tunnel in front of it (in the background,
// on free ports), and a device's request through the tunnel, which must
// reach the app.
func TestRunScript(t *testing.T) {
	s := newShellSession(t, "openssl", "curl", "perl")
	script, err := filepath.Abs("../../scripts/run.sh")
	if err != nil {
		t.Fatal(err)
	}
	r := execIn(t, s.clone, []string{"BIN=bin/portcullis", "DATA=./portcullis-data"}, nil, script)
	if r.code != 0 {
		t.Fatalf("scripts/run.sh: %s", r)
	}
	steps, err := runSteps(r.stdout)
	if err != nil {
		t.Fatalf("scripts/run.sh output: %v\n%s", err, r.stdout)
	}
	if out := s.run(steps); !strings.Contains(out, "hello from the backend") {
		t.Errorf("the last step printed %q, want the app's answer through the tunnel", out)
	}
}

// listenRE finds what a step listens on: a tunnel's --listen and --status,
// the stand-in app's LocalAddr.
var listenRE = regexp.MustCompile(`(?:--listen |--status |LocalAddr => ")(127\.0\.0\.1:\d+)`)

// runSteps reads the steps run.sh prints after "Next steps": a line that is
// not indented heads a group, and the indented lines under it are one step,
// in the background if the heading says it keeps running.
func runSteps(out string) ([]shellStep, error) {
	lines := strings.Split(out, "\n")
	var groups []shellStep
	var cur *shellStep
	started := false
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "Next steps"):
			started = true
			fallthrough
		case started && l != "" && !strings.HasPrefix(l, "  "):
			groups = append(groups, shellStep{file: "make run output", line: i + 2, background: strings.Contains(l, "keeps running")})
			cur = &groups[len(groups)-1]
		case started && strings.HasPrefix(l, "  "):
			cur.text += l + "\n"
		}
	}
	var steps []shellStep
	for _, st := range groups {
		if st.text == "" {
			continue // a heading alone
		}
		for _, m := range listenRE.FindAllStringSubmatch(st.text, -1) {
			st.wait = append(st.wait, m[1])
		}
		if st.background && st.wait == nil {
			return nil, fmt.Errorf("%s keeps running but listens on no 127.0.0.1 address", st)
		}
		steps = append(steps, st)
	}
	if len(steps) == 0 {
		return nil, fmt.Errorf("no steps after \"Next steps\"")
	}
	return steps, nil
}
