package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds of the long-running processes the tunnel tests start. Every wait
// below has a deadline; nothing sleeps a fixed time.
const (
	// procLifetime kills a process the test forgot, so a hung run ends.
	procLifetime = 2 * time.Minute
	// startTimeout bounds the wait for a process to listen.
	startTimeout = 15 * time.Second
	// stopTimeout is how long SIGTERM gets before SIGKILL.
	stopTimeout = 10 * time.Second
	// ioTimeout bounds one client exchange through a tunnel.
	ioTimeout = 10 * time.Second
)

// notifier wakes everyone waiting on a process's output at each write.
type notifier struct {
	mu sync.Mutex
	ch chan struct{} // closed and replaced at each write
}

func newNotifier() *notifier { return &notifier{ch: make(chan struct{})} }

// next returns a channel closed at the next write. Take it before looking
// at the output, so a write in between is not missed.
func (n *notifier) next() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	close(n.ch)
	n.ch = make(chan struct{})
}

// syncBuf is one output stream of a process, safe to read while written.
type syncBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
	n   *notifier
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf.Write(p)
	b.mu.Unlock()
	b.n.notify()
	return len(p), nil
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a long-running process a test started: a tunnel or a peer.
// t.Cleanup stops it; its output is logged when the test failed.
type proc struct {
	name           string
	cmd            *exec.Cmd
	out            *notifier
	stdout, stderr *syncBuf
	exited         chan struct{} // closed once Wait returned
	stopOnce       sync.Once
}

// startProc starts name args with stdin at /dev/null.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = childEnv()
	n := newNotifier()
	p := &proc{name: filepath.Base(name), cmd: cmd, out: n, stdout: &syncBuf{n: n}, stderr: &syncBuf{n: n}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	// A backstop: whatever happens to the test, the process ends.
	backstop := time.AfterFunc(procLifetime, func() { cmd.Process.Kill() })
	t.Cleanup(func() {
		backstop.Stop()
		p.stop()
		if t.Failed() {
			t.Logf("%s %s\n--- stdout:\n%s\n--- stderr:\n%s", p.name, strings.Join(args, " "), p.stdout, p.stderr)
		}
	})
	return p
}

// stop sends SIGTERM, waits up to stopTimeout for the exit (SIGKILL after
// that), and returns the exit code (-1 if killed by a signal).
func (p *proc) stop() int {
	p.stopOnce.Do(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(stopTimeout):
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p.cmd.ProcessState.ExitCode()
}

// waitFor waits until cond holds, re-checking at each write of output,
// until the process exits or timeout passes. It reports whether cond held.
func (p *proc) waitFor(t *testing.T, timeout time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	for {
		wake := p.out.next()
		if cond() {
			return true
		}
		select {
		case <-wake:
		case <-p.exited:
			return cond()
		case <-ctx.Done():
			return false
		}
	}
}

// waitOutput waits until re matches stdout or stderr and returns the
// submatches of the first match, failing the test at the deadline.
func (p *proc) waitOutput(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	var m []string
	if !p.waitFor(t, startTimeout, func() bool {
		m = re.FindStringSubmatch(p.stdout.String() + p.stderr.String())
		return m != nil
	}) {
		t.Fatalf("%s: no output matching %q (exited: %v)\n--- stdout:\n%s\n--- stderr:\n%s", p.name, re, p.hasExited(), p.stdout, p.stderr)
	}
	return m
}

func (p *proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// tunnelProc is a running `portcullis tunnel`.
type tunnelProc struct {
	*proc
	// addrs maps each configured listen address to the bound one.
	addrs map[string]string
	// status is the bound status listener, if --status was given.
	status string
}

var (
	listeningRE = regexp.MustCompile(`msg=listening listen=(\S+) addr=(\S+)`)
	statusRE    = regexp.MustCompile(`msg="status listener" addr=(\S+)`)
)

// startTunnel runs `portcullis tunnel args…` (text logs) and waits until it
// listens. It waits for the "listening" log line, which the tunnel writes
// after its sockets are bound (the kernel accepts from then on), rather
// than probing with a connection: a probe is a client to the tunnel, so in
// client mode it would dial the target and, in every mode, show up in the
// connection logs and metrics the tests check. With --status it also waits
// for the status line (logged after every listener) and polls /healthz.
func startTunnel(t *testing.T, args ...string) *tunnelProc {
	t.Helper()
	p := &tunnelProc{proc: startProc(t, bin, append([]string{"tunnel"}, args...)...), addrs: map[string]string{}}
	withStatus := slices.Contains(args, "--status")
	if withStatus {
		p.status = p.waitOutput(t, statusRE)[1]
	} else {
		p.waitOutput(t, listeningRE)
	}
	for _, m := range listeningRE.FindAllStringSubmatch(p.stderr.String(), -1) {
		p.addrs[m[1]] = m[2]
	}
	if withStatus {
		waitUntil(t, "GET /healthz answers 200", func() bool {
			code, _, err := p.tryGet("/healthz")
			return err == nil && code == http.StatusOK
		})
	}
	return p
}

// addr is the bound address of the only listener.
func (p *tunnelProc) addr(t *testing.T) string {
	t.Helper()
	if len(p.addrs) != 1 {
		t.Fatalf("tunnel has listeners %v, want exactly one", p.addrs)
	}
	for _, a := range p.addrs {
		return a
	}
	return ""
}

var statusClient = &http.Client{Timeout: 5 * time.Second}

func (p *tunnelProc) tryGet(path string) (int, string, error) {
	resp, err := statusClient.Get("http://" + p.status + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// get reads path from the status listener.
func (p *tunnelProc) get(t *testing.T, path string) (int, string) {
	t.Helper()
	code, body, err := p.tryGet(path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return code, body
}

// logLine is one slog text line, by key.
type logLine map[string]string

var kvRE = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S*)`)

func parseLogLine(s string) logLine {
	l := logLine{}
	for _, m := range kvRE.FindAllStringSubmatch(s, -1) {
		v := m[2]
		if u, err := strconv.Unquote(v); err == nil && strings.HasPrefix(v, `"`) {
			v = u
		}
		l[m[1]] = v
	}
	return l
}

// connLines returns the tunnel's "connection" lines so far, one per
// finished connection.
func (p *tunnelProc) connLines() []logLine {
	var out []logLine
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(line, " msg=connection ") {
			out = append(out, parseLogLine(line))
		}
	}
	return out
}

// connLine waits for the connection line of the client whose address (as
// the tunnel saw it) is peer.
func (p *tunnelProc) connLine(t *testing.T, peer string) logLine {
	t.Helper()
	var found logLine
	ok := p.waitFor(t, ioTimeout, func() bool {
		for _, l := range p.connLines() {
			if l["peer"] == peer {
				found = l
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("tunnel logged no connection line for peer %s:\n%s", peer, p.stderr)
	}
	return found
}

// waitConns waits until the tunnel logged n connection lines.
func (p *tunnelProc) waitConns(t *testing.T, n int) []logLine {
	t.Helper()
	if !p.waitFor(t, ioTimeout, func() bool { return len(p.connLines()) >= n }) {
		t.Fatalf("tunnel logged %d connection lines, want %d:\n%s", len(p.connLines()), n, p.stderr)
	}
	return p.connLines()
}

// stopTunnel stops the tunnel with SIGTERM, checks that it drained and
// exited 0, and returns its stderr.
func (p *tunnelProc) stopTunnel(t *testing.T) string {
	t.Helper()
	if code := p.stop(); code != 0 {
		t.Errorf("tunnel exited %d after SIGTERM, want 0:\n%s", code, p.stderr)
	}
	logs := p.stderr.String()
	if !strings.Contains(logs, "shutting down: draining connections") {
		t.Errorf("tunnel stderr has no drain line after SIGTERM:\n%s", logs)
	}
	return logs
}

// waitUntil polls cond every 10 ms until it holds, failing the test after
// startTimeout.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
		case <-tick.C:
		}
	}
}

// freePort returns a 127.0.0.1 address that was free a moment ago, for
// peers (nginx, stunnel) that cannot listen on port 0 and report it.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitTCP polls until addr accepts a TCP connection. Only for peers whose
// accept has no side effect worth avoiding.
func waitTCP(t *testing.T, addr string, exited <-chan struct{}) {
	t.Helper()
	waitUntil(t, addr+" accepts", func() bool {
		select {
		case <-exited:
			t.Fatalf("process exited before %s accepted", addr)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// backend is a plaintext TCP server standing for the application behind a
// tunnel. It records what each connection sent.
type backend struct {
	addr string
	ln   net.Listener

	mu  sync.Mutex
	got []string // per connection, in the order they ended
}

// startBackend serves handle on 127.0.0.1:0 until the test ends; handle
// returns what the connection sent, for got.
func startBackend(t *testing.T, handle func(net.Conn) string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: ln.Addr().String(), ln: ln}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(ioTimeout))
				s := handle(c)
				b.mu.Lock()
				b.got = append(b.got, s)
				b.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return b
}

func (b *backend) received() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.got)
}

// close stops accepting: the target is down.
func (b *backend) close() { b.ln.Close() }

// echo sends back everything it reads until EOF.
func echo(c net.Conn) string {
	var got bytes.Buffer
	io.Copy(io.MultiWriter(c, &got), c)
	return got.String()
}

// pong reads one line and answers "pong: LINE", then closes: a request and
// reply that ends by itself, for clients that never half-close (s_client).
func pong(c net.Conn) string {
	var line []byte
	buf := make([]byte, 1)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			line = append(line, buf[0])
			if buf[0] == '\n' {
				break
			}
		}
		if err != nil {
			break
		}
	}
	fmt.Fprintf(c, "pong: %s", line)
	return string(line)
}

// tunnelPKI is a CA with the certificates of the tunnel tests: "tunnel"
// (server, localhost and 127.0.0.1) and whatever clients a test issues.
type tunnelPKI struct{ *testCA }

func newTunnelPKI(t *testing.T) *tunnelPKI {
	t.Helper()
	ca := newCA(t)
	ca.ok(t, "ca", "issue", "server", "tunnel", "--dns", "localhost", "--ip", "127.0.0.1")
	return &tunnelPKI{ca}
}

func (p *tunnelPKI) cert(name string) string { return p.path("issued", name+".chain.crt") }
func (p *tunnelPKI) key(name string) string  { return p.path("private", name+".key") }
func (p *tunnelPKI) bundle() string          { return p.path("ca-bundle.crt") }
func (p *tunnelPKI) leaf(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	return readCerts(t, p.path("issued", name+".crt"))[0]
}

// serverArgs are the flags of a server-mode tunnel on 127.0.0.1:0 that
// presents "tunnel" and forwards to target.
func (p *tunnelPKI) serverArgs(target string, extra ...string) []string {
	return append([]string{"server", "--listen", "127.0.0.1:0", "--target", target,
		"--cert", p.cert("tunnel"), "--key", p.key("tunnel"), "--cacert", p.bundle(),
		"--shutdown-timeout", "3s"}, extra...)
}

// clientArgs are the flags of a client-mode tunnel on 127.0.0.1:0 that
// carries plaintext to target over mTLS as the client name.
func (p *tunnelPKI) clientArgs(name, target string, extra ...string) []string {
	return append([]string{"client", "--listen", "127.0.0.1:0", "--target", target,
		"--cert", p.cert(name), "--key", p.key(name), "--cacert", p.bundle(),
		"--shutdown-timeout", "3s"}, extra...)
}

// tlsClient is a Go mTLS client config presenting certFile/keyFile and
// trusting p's root, for a tunnel at 127.0.0.1.
func (p *tunnelPKI) tlsClient(t *testing.T, certFile, keyFile string) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(readFile(t, p.path("ca.crt"))) {
		t.Fatal("ca.crt: no certificate")
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "127.0.0.1"}
}

// exchange dials addr (over TLS when conf is not nil), sends msg, half-closes
// and reads the answer to EOF. It returns the answer and the local address,
// which the tunnel logs as the peer.
func exchange(addr string, conf *tls.Config, msg string) (string, string, error) {
	d := &net.Dialer{Timeout: ioTimeout}
	var c net.Conn
	var err error
	if conf != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, conf)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	local := c.LocalAddr().String()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", local, err
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil {
			return "", local, err
		}
	}
	got, err := io.ReadAll(c)
	if err == nil && len(got) == 0 {
		err = errors.New("connection closed with no answer")
	}
	return string(got), local, err
}

// writeConf writes a peer's configuration file into dir.
func writeConf(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
