package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bin is the portcullis binary TestMain builds.
var bin string

// cmdTimeout bounds every process a test starts; a hung peer or CLI fails
// the test instead of the whole run.
const cmdTimeout = 30 * time.Second

// passphrase protects every test CA. It is distinctive so a leak into a
// log, a file or an output is easy to spot.
const passphrase = "e2e-Passphrase-7f3a9c-Do-Not-Log"

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "portcullis-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "portcullis")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/portcullis-dev/portcullis/cmd/portcullis")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building portcullis: %v\n", err)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", bin, time.Since(start).Round(time.Millisecond))
	}
	return m.Run()
}

// result is how a process ended.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// childEnv is the environment of every process: the caller's, without the
// variables that would feed portcullis a secret behind the test's back.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PORTCULLIS_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// command prepares name args with a timeout, in dir if not empty. Stdin is
// empty (not a terminal), so nothing can wait for a prompt.
func command(ctx context.Context, dir string, env []string, stdin []byte, name string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = childEnv(env...)
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

// exitResult turns what Wait returned into a result, or an error if the
// process did not run to an exit status (not found, timed out, killed).
func exitResult(ctx context.Context, err error, stdout, stderr *bytes.Buffer) (result, error) {
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil && ee.Exited():
		r.code = ee.ExitCode()
	default:
		return r, fmt.Errorf("%w (context: %v)\n%s", err, ctx.Err(), r)
	}
	return r, nil
}

// execIn runs one process to completion in dir.
func execIn(t testing.TB, dir string, env []string, stdin []byte, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cmdTimeout)
	defer cancel()
	cmd, stdout, stderr := command(ctx, dir, env, stdin, name, args...)
	r, err := exitResult(ctx, cmd.Run(), stdout, stderr)
	if err != nil {
		t.Fatalf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), err)
	}
	return r
}

// run runs a peer program and returns how it ended.
func run(t testing.TB, name string, args ...string) result {
	t.Helper()
	return execIn(t, "", nil, nil, name, args...)
}

// mustRun runs a peer program and fails the test unless it exits 0.
func mustRun(t testing.TB, name string, args ...string) result {
	t.Helper()
	r := run(t, name, args...)
	if r.code != 0 {
		t.Fatalf("%s %s: %s", filepath.Base(name), strings.Join(args, " "), r)
	}
	return r
}

// testCA is a CA directory of one test, with its passphrase file.
type testCA struct {
	dir      string
	passFile string
}

// newCA runs `ca init` with extra flags in a fresh temporary directory.
func newCA(t testing.TB, initFlags ...string) *testCA {
	t.Helper()
	ca := emptyCA(t)
	ca.ok(t, append([]string{"ca", "init"}, initFlags...)...)
	return ca
}

// emptyCA names a CA directory that does not exist yet.
func emptyCA(t testing.TB) *testCA {
	t.Helper()
	tmp := t.TempDir()
	ca := &testCA{dir: filepath.Join(tmp, "pki"), passFile: filepath.Join(tmp, "passphrase")}
	writeFile(t, ca.passFile, passphrase+"\n")
	return ca
}

// cloneCA copies the directory of a CA no process has open into a fresh
// temporary directory, so a test can damage its copy.
func cloneCA(t testing.TB, from *testCA) *testCA {
	t.Helper()
	ca := emptyCA(t)
	copyDir(t, from.dir, ca.dir)
	return ca
}

func (c *testCA) path(elem ...string) string {
	return filepath.Join(append([]string{c.dir}, elem...)...)
}

// args appends the flags every CA command takes.
func (c *testCA) args(args ...string) []string {
	return append(append([]string{}, args...), "--dir", c.dir, "--passphrase-file", c.passFile)
}

// run runs portcullis with args plus --dir and --passphrase-file.
func (c *testCA) run(t testing.TB, args ...string) result {
	t.Helper()
	return execIn(t, "", nil, nil, bin, c.args(args...)...)
}

// ok runs portcullis and fails the test unless it exits 0.
func (c *testCA) ok(t testing.TB, args ...string) result {
	t.Helper()
	r := c.run(t, args...)
	if r.code != 0 {
		t.Fatalf("portcullis %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// certView mirrors one record of `ca list --json`.
type certView struct {
	Serial    string    `json:"serial"`
	Name      string    `json:"name"`
	Profile   string    `json:"profile"`
	Status    string    `json:"status"`
	Subject   string    `json:"subject"`
	DNS       []string  `json:"dns"`
	IPs       []string  `json:"ips"`
	Emails    []string  `json:"emails"`
	URIs      []string  `json:"uris"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	RevokedAt time.Time `json:"revoked_at"`
	Reason    string    `json:"revocation_reason"`
}

func (c *testCA) list(t testing.TB, flags ...string) []certView {
	t.Helper()
	r := c.ok(t, append([]string{"ca", "list", "--json"}, flags...)...)
	var views []certView
	if err := json.Unmarshal([]byte(r.stdout), &views); err != nil {
		t.Fatalf("ca list --json: %v\n%s", err, r.stdout)
	}
	return views
}

// byName returns the records of a list with that name.
func byName(views []certView, name string) []certView {
	var out []certView
	for _, v := range views {
		if v.Name == name {
			out = append(out, v)
		}
	}
	return out
}

// active returns the one active record of name, failing otherwise.
func active(t testing.TB, views []certView, name string) certView {
	t.Helper()
	var found []certView
	for _, v := range byName(views, name) {
		if v.Status == "active" {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d active records named %q, want 1: %+v", len(found), name, byName(views, name))
	}
	return found[0]
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// readCerts parses every CERTIFICATE block of a PEM file, skipping other
// blocks (a --with-key export starts with the key).
func readCerts(t testing.TB, path string) []*x509.Certificate {
	t.Helper()
	return parseCerts(t, readFile(t, path))
}

func parseCerts(t testing.TB, data []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("parsing certificate: %v", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		t.Fatalf("no CERTIFICATE block in:\n%s", data)
	}
	return certs
}

func readCRL(t testing.TB, path string) *x509.RevocationList {
	t.Helper()
	b, _ := pem.Decode(readFile(t, path))
	if b == nil || b.Type != "X509 CRL" {
		t.Fatalf("%s: no X509 CRL block", path)
	}
	crl, err := x509.ParseRevocationList(b.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return crl
}

// serialHex formats a serial the way the CLI and its JSON do.
func serialHex(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// copyDir copies a tree of regular files and directories, keeping modes.
func copyDir(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(dst, info.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copying %s: %v", from, err)
	}
}

// hashTree lists every file and directory under root with its mode and,
// for files, the SHA-256 of its content, one per line, sorted; skip says
// which relative paths to leave out.
func hashTree(t testing.TB, root string, skip func(rel string) bool) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if skip != nil && skip(rel) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			fmt.Fprintf(&b, "%s/ %v\n", rel, info.Mode())
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %x\n", rel, info.Mode(), h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatalf("hashing %s: %v", root, err)
	}
	return b.String()
}

// oneErrorLine checks the CLI's failure contract: exactly one line on
// stderr, starting with "portcullis: ", and returns it.
func oneErrorLine(t testing.TB, r result) string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "portcullis: ") || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("stderr = %q, want exactly one line starting with %q", r.stderr, "portcullis: ")
	}
	return lines[0]
}
