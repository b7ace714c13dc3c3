package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testpeer"
)

// stepTimeout bounds one foreground step of a walk-through.
const stepTimeout = time.Minute

// shellStep is one step of a walk-through a newcomer copies into a
// terminal: a README block, or a group of the lines `make run` prints.
type shellStep struct {
	file       string // README.md, or "make run output"
	line       int    // of the step's first line in file
	text       string
	background bool     // keeps running (a server): runs until the test ends
	wait       []string // with background: addresses it listens on
}

func (s shellStep) String() string { return fmt.Sprintf("%s:%d", s.file, s.line) }

// docPorts are the ports the walk-throughs use; a session runs them on
// free ports instead, so a busy machine cannot make them collide.
var docPorts = regexp.MustCompile(`:(8080|8081|8443|8444|9000|9090)\b`)

// wrapper runs one step: it restores the environment and working
// directory the previous step left ($1), runs the step ($2) under set -e,
// names the failing line, and saves the environment for the next.
const wrapper = `source "$1"
set -e
trap 'rc=$?; echo "shell-step: line $LINENO: exit $rc: $BASH_COMMAND" >&2' ERR
source "$2"
trap - ERR
{ export -p; printf 'cd %q\n' "$PWD"; } > "$1"
`

var failedLineRE = regexp.MustCompile(`shell-step: line (\d+): `)

// shellSession is one terminal of a newcomer: it starts in a fresh clone
// (a directory with bin/portcullis, nothing on PATH), runs steps in order
// and carries exports and cd from one step to the next.
type shellSession struct {
	t     *testing.T
	clone string            // where the first step starts
	work  string            // scripts and state, outside the clone
	ports map[string]string // documented port → free port
	n     int               // steps so far
}

// newShellSession requires bash and the peers the steps use (a failure
// under CI=true, a skip elsewhere), and makes the clone.
func newShellSession(t *testing.T, peers ...string) *shellSession {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the walk-throughs are bash")
	}
	for _, p := range append([]string{"bash"}, peers...) {
		testpeer.Require(t, p)
	}
	tmp := t.TempDir()
	s := &shellSession{t: t, clone: filepath.Join(tmp, "clone"), work: filepath.Join(tmp, "work"), ports: map[string]string{}}
	for _, d := range []string{filepath.Join(s.clone, "bin"), s.work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(bin, filepath.Join(s.clone, "bin", "portcullis")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, s.path("wrapper.sh"), wrapper)
	writeFile(t, s.path("state.sh"), fmt.Sprintf("cd %s\n", strconv.Quote(s.clone)))
	return s
}

func (s *shellSession) path(name string) string { return filepath.Join(s.work, name) }

// local rewrites the documented ports of text to free ones.
func (s *shellSession) local(text string) string {
	return docPorts.ReplaceAllStringFunc(text, func(m string) string {
		p, ok := s.ports[m]
		if !ok {
			_, port, _ := strings.Cut(freePort(s.t), ":")
			p = ":" + port
			s.ports[m] = p
		}
		return p
	})
}

// script writes a step's text for the wrapper.
func (s *shellSession) script(st shellStep) string {
	s.n++
	name := s.path(fmt.Sprintf("step%d.sh", s.n))
	writeFile(s.t, name, s.local(st.text))
	return name
}

// run runs the steps in order, failing at the first that does not work as
// written, and returns what the last foreground step printed.
func (s *shellSession) run(steps []shellStep) string {
	s.t.Helper()
	var out string
	for _, st := range steps {
		if st.background {
			s.start(st)
		} else {
			out = s.foreground(st)
		}
	}
	return out
}

func (s *shellSession) foreground(st shellStep) string {
	t := s.t
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), stepTimeout)
	defer cancel()
	cmd, stdout, stderr := command(ctx, "", nil, nil, "bash", s.path("wrapper.sh"), s.path("state.sh"), s.script(st))
	r, err := exitResult(ctx, cmd.Run(), stdout, stderr)
	if err != nil {
		t.Fatalf("%s: %v\n%s", st, err, st.text)
	}
	if r.code != 0 {
		where := st.String()
		if m := failedLineRE.FindStringSubmatch(r.stderr); m != nil {
			n, _ := strconv.Atoi(m[1])
			where = fmt.Sprintf("%s:%d (line %d of the step at %s)", st.file, st.line+n-1, n, st)
		}
		t.Fatalf("%s fails as written: %s\n--- step:\n%s", where, r, st.text)
	}
	if testing.Verbose() {
		t.Logf("%s ok:\n%s", st, r.stdout)
	}
	return r.stdout
}

// start runs a background step in its own process group, stopped (group
// and all) when the test ends, and waits until it listens on each of its
// addresses; it fails if the step exits before.
func (s *shellSession) start(st shellStep) {
	t := s.t
	t.Helper()
	cmd, stdout, stderr := command(context.Background(), "", nil, nil, "bash", s.path("wrapper.sh"), s.path("state.sh"), s.script(st))
	inGroup(cmd)
	cmd.WaitDelay = stopTimeout
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", st, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	backstop := time.AfterFunc(procLifetime, func() { signalGroup(cmd, syscall.SIGKILL) })
	t.Cleanup(func() {
		backstop.Stop()
		select {
		case <-exited:
			t.Errorf("%s (background) exited before the end of the walk-through: %v\n--- stdout:\n%s\n--- stderr:\n%s", st, cmd.ProcessState, stdout, stderr)
			return
		default:
		}
		signalGroup(cmd, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(stopTimeout):
			signalGroup(cmd, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("%s (background)\n--- stdout:\n%s\n--- stderr:\n%s", st, stdout, stderr)
		}
	})
	for _, addr := range st.wait {
		waitTCP(t, s.local(addr), exited)
	}
}
