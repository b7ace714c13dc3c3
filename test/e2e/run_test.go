package e2e

import (
	"bufio"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestRunScript runs what `make run` runs (scripts/run.sh) in a fresh
// clone: the control server, on free ports. Then, as a newcomer copies
// them into a second terminal, every numbered step it prints: enroll a
// device (submitted, pending), approve it as the admin, collect the
// certificate, fetch the CRL. Each must work.
func TestRunScript(t *testing.T) {
	s := newShellSession(t, "openssl", "curl")
	script, err := filepath.Abs("../../scripts/run.sh")
	if err != nil {
		t.Fatal(err)
	}
	listen, public := freeAddr(t), freeAddr(t)
	cmd := exec.Command("bash", script)
	cmd.Dir = s.clone
	cmd.Env = childEnv("BIN=bin/portcullis", "DATA=./portcullis-data", "LISTEN="+listen, "PUBLIC="+public)
	inGroup(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuf
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		signalGroup(cmd, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(stopTimeout):
			signalGroup(cmd, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("make run stderr:\n%s", stderr.String())
		}
	})
	banner := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "-----") {
				banner <- b.String()
				return
			}
		}
		banner <- b.String()
	}()
	var out string
	select {
	case out = <-banner:
	case <-time.After(60 * time.Second):
		t.Fatalf("make run printed no banner within 60 s; stderr:\n%s", stderr.String())
	}
	steps := runSteps(out)
	if len(steps) != 4 {
		t.Fatalf("want 4 numbered next steps, got %d in:\n%s", len(steps), out)
	}
	waitTCP(t, listen, nil)
	for i, want := range []string{"waits for approval", "issued", "enrolled as device", "Certificate Revocation List"} {
		if got := s.run(steps[i : i+1]); !strings.Contains(got, want) {
			t.Errorf("step %d (%s) printed %q, want %q", i+1, strings.TrimSpace(steps[i].text), got, want)
		}
	}
}

// stepRE is a numbered next step: "  1. command".
var stepRE = regexp.MustCompile(`(?m)^  (\d+)\. (.+)$`)

// runSteps reads the numbered steps after "Next steps".
func runSteps(out string) []shellStep {
	_, after, ok := strings.Cut(out, "Next steps")
	if !ok {
		return nil
	}
	var steps []shellStep
	for _, m := range stepRE.FindAllStringSubmatch(after, -1) {
		steps = append(steps, shellStep{file: "make run output", line: len(steps) + 1, text: m[2] + "\n"})
	}
	return steps
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
