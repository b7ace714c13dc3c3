package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"
)

// startAll starts one portcullis process per argv at once, then waits for
// all of them.
func startAll(t *testing.T, argvs [][]string) []result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*cmdTimeout)
	defer cancel()
	type proc struct {
		wait           func() error
		stdout, stderr *bytes.Buffer
	}
	procs := make([]proc, len(argvs))
	for i, args := range argvs {
		cmd, stdout, stderr := command(ctx, "", nil, nil, bin, args...)
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting portcullis %s: %v", strings.Join(args, " "), err)
		}
		procs[i] = proc{cmd.Wait, stdout, stderr}
	}
	results := make([]result, len(procs))
	var errs []error
	for i, p := range procs {
		r, err := exitResult(ctx, p.wait(), p.stdout, p.stderr)
		if err != nil {
			errs = append(errs, fmt.Errorf("portcullis %s: %w", strings.Join(argvs[i], " "), err))
		}
		results[i] = r
	}
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	return results
}

// TestConcurrentIssue runs several `ca issue` processes on one CA directory
// at once: different names all succeed with distinct serials; the same
// name succeeds exactly once, and the files on disk match the record.
func TestConcurrentIssue(t *testing.T) {
	t.Parallel()
	ca := newCA(t)

	var argvs [][]string
	for i := range 4 {
		argvs = append(argvs, ca.args("ca", "issue", "client", fmt.Sprintf("c%d", i)))
	}
	for i, r := range startAll(t, argvs) {
		if r.code != 0 {
			t.Errorf("concurrent ca issue client c%d: %s", i, r)
		}
	}
	views := ca.list(t)
	seen := map[string]string{}
	for _, v := range views {
		if prev, dup := seen[v.Serial]; dup {
			t.Errorf("serial %s given to both %s and %s", v.Serial, prev, v.Name)
		}
		seen[v.Serial] = v.Name
	}
	for i := range 4 {
		checkIssuedFiles(t, ca, active(t, views, fmt.Sprintf("c%d", i)))
	}

	// Two names, each asked for by two processes at once.
	argvs = nil
	for _, name := range []string{"twin-a", "twin-b"} {
		for range 2 {
			argvs = append(argvs, ca.args("ca", "issue", "client", name))
		}
	}
	results := startAll(t, argvs)
	views = ca.list(t)
	for i, name := range []string{"twin-a", "twin-b"} {
		pair := results[2*i : 2*i+2]
		var wins int
		for _, r := range pair {
			switch r.code {
			case 0:
				wins++
			case 1:
				if line := oneErrorLine(t, r); !strings.Contains(line, "active certificate") {
					t.Errorf("the losing ca issue client %s: %q, want it to say the name has an active certificate", name, line)
				}
			default:
				t.Errorf("ca issue client %s: %s", name, r)
			}
		}
		if wins != 1 {
			t.Errorf("ca issue client %s from 2 processes at once: %d succeeded, want exactly 1:\n%s\n%s", name, wins, pair[0], pair[1])
		}
		if n := len(byName(views, name)); n != 1 {
			t.Errorf("%d records named %s, want 1", n, name)
		}
		checkIssuedFiles(t, ca, active(t, views, name))
	}
	checkAudit(t, ca, map[string]int{"cert.issued": 6})
}

// checkIssuedFiles checks that issued/NAME.crt is the recorded certificate
// and private/NAME.key its key.
func checkIssuedFiles(t *testing.T, ca *testCA, v certView) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(ca.path("issued", v.Name+".chain.crt"), ca.path("private", v.Name+".key"))
	if err != nil {
		t.Errorf("%s: %v", v.Name, err)
		return
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := serialHex(leaf); got != v.Serial {
		t.Errorf("issued/%s.chain.crt has serial %s, the record says %s", v.Name, got, v.Serial)
	}
	if got := serialHex(readCerts(t, ca.path("issued", v.Name+".crt"))[0]); got != v.Serial {
		t.Errorf("issued/%s.crt has serial %s, the record says %s", v.Name, got, v.Serial)
	}
}
