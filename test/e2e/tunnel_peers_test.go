package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portcullis-dev/portcullis/internal/keystore"
	"github.com/portcullis-dev/portcullis/internal/testpeer"
	"github.com/portcullis-dev/portcullis/internal/tunnel"
)

// The tunnel interop suite: `portcullis tunnel` against real TLS peers on
// loopback, in both directions. Server mode is reached by curl, openssl
// s_client, stunnel and Go clients; client mode dials nginx, openssl
// s_server, stunnel and a second tunnel.

const deviceURI = "spiffe://portcullis.internal/device/dev1"

// TestTunnelServerCurl: curl is the mTLS client of a server-mode tunnel in
// front of an HTTP backend. The allowed device reaches the backend; a
// client the policy refuses and a client without a certificate do not.
func TestTunnelServerCurl(t *testing.T) {
	t.Parallel()
	curl := testpeer.Require(t, "curl")
	p := newTunnelPKI(t)
	p.ok(t, "ca", "issue", "device", "dev1")
	p.ok(t, "ca", "issue", "client", "alice")
	var hits atomic.Int32
	web := startHTTPBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprintf(w, "backend says hello to %s\n", r.URL.Path)
	}))
	tun := startTunnel(t, p.serverArgs(web, "--allow-uri", deviceURI)...)
	url := "https://" + tun.addr(t) + "/curl"
	curlAs := func(certArgs ...string) result {
		t.Helper()
		args := append([]string{"-sS", "--max-time", "10", "--cacert", p.path("ca.crt")}, certArgs...)
		return run(t, curl, append(args, url)...)
	}

	r := curlAs("--cert", p.cert("dev1"), "--key", p.key("dev1"))
	if r.code != 0 || r.stdout != "backend says hello to /curl\n" {
		t.Errorf("curl as the allowed device: %s\nwant the backend's answer", r)
	}
	if r := curlAs("--cert", p.cert("alice"), "--key", p.key("alice")); r.code == 0 {
		t.Errorf("curl as alice, whom --allow-uri does not name: %s\nwant a failure", r)
	}
	if r := curlAs(); r.code == 0 {
		t.Errorf("curl without a client certificate: %s\nwant a failure", r)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("backend served %d requests, want 1 (only the allowed device's)", n)
	}
	lines := tun.waitConns(t, 3)
	outcomes := map[string]int{}
	for _, l := range lines {
		outcomes[l["outcome"]]++
		if l["outcome"] == "ok" && l["identity"] != deviceURI {
			t.Errorf("connection line identity = %q, want %q", l["identity"], deviceURI)
		}
	}
	if want := map[string]int{"ok": 1, "denied": 1, "handshake_error": 1}; !maps.Equal(outcomes, want) {
		t.Errorf("connection outcomes = %v, want %v", outcomes, want)
	}
}

// TestTunnelServerOpenSSL: openssl s_client, TLS 1.3 and 1.2, sends a line
// through a server-mode tunnel; the backend receives it and its answer
// comes back.
func TestTunnelServerOpenSSL(t *testing.T) {
	t.Parallel()
	openssl := testpeer.Require(t, "openssl")
	p := newTunnelPKI(t)
	p.ok(t, "ca", "issue", "device", "dev1")
	be := startBackend(t, pong)
	tun := startTunnel(t, p.serverArgs(be.addr, "--allow-ou", "devices")...)
	for _, version := range []string{"-tls1_3", "-tls1_2"} {
		t.Run(version, func(t *testing.T) {
			msg := "ping over " + version + "\n"
			r := execIn(t, "", nil, []byte(msg), openssl, "s_client", version, "-brief", "-quiet",
				"-connect", tun.addr(t), "-CAfile", p.path("ca.crt"), "-verify_return_error", "-verify_ip", "127.0.0.1",
				"-cert", p.cert("dev1"), "-key", p.key("dev1"))
			if r.code != 0 || r.stdout != "pong: "+msg {
				t.Errorf("openssl s_client %s: %s\nwant stdout %q", version, r, "pong: "+msg)
			}
			want := map[string]string{"-tls1_3": "TLSv1.3", "-tls1_2": "TLSv1.2"}[version]
			if !strings.Contains(r.stderr, "Protocol version: "+want) {
				t.Errorf("openssl s_client %s stderr does not report %s:\n%s", version, want, r.stderr)
			}
			if !slices.Contains(be.received(), msg) {
				t.Errorf("backend received %q, want %q among them", be.received(), msg)
			}
		})
	}
}

// TestTunnelClientNginx: a client-mode tunnel carries plain HTTP from curl
// to nginx, which requires a client certificate from our CA
// (ssl_verify_client on) and answers with the DN it verified: our device's.
func TestTunnelClientNginx(t *testing.T) {
	t.Parallel()
	nginx := testpeer.Require(t, "nginx")
	curl := testpeer.Require(t, "curl")
	p := newTunnelPKI(t)
	p.ok(t, "ca", "issue", "device", "dev1")
	addr := startNginx(t, nginx, p)

	tun := startTunnel(t, p.clientArgs("dev1", addr)...)
	for _, path := range []string{"/first", "/second"} {
		r := run(t, curl, "-sS", "--max-time", "10", "http://"+tun.addr(t)+path)
		want := "verify=SUCCESS dn=CN=dev1,OU=devices,O=Portcullis,C=US uri=" + path + "\n"
		if r.code != 0 || r.stdout != want {
			t.Errorf("curl through the tunnel to nginx: %s\nwant stdout %q", r, want)
		}
	}
	lines := tun.waitConns(t, 2)
	for _, l := range lines {
		// Client mode logs the server it reached: nginx's certificate.
		if l["outcome"] != "ok" || l["identity"] != "CN=localhost" || l["target"] != addr {
			t.Errorf("connection line %v, want outcome=ok identity=CN=localhost target=%s", l, addr)
		}
	}

	// Without a client certificate nginx answers HTTP 400, not a TLS alert.
	// (--disable-authentication still needs --cert/--key to start: see
	// TestTunnelDisableAuthenticationNeedsNoIdentity.)
	anon := startTunnel(t, p.clientArgs("dev1", addr, "--disable-authentication")...)
	r := run(t, curl, "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "http://"+anon.addr(t)+"/")
	if r.code != 0 || r.stdout != "400" {
		t.Errorf("curl through a tunnel with --disable-authentication: %s\nwant HTTP 400 from nginx", r)
	}
}

// startNginx runs nginx in the foreground from a temporary prefix (its own
// pid, logs and temp paths, nothing under /etc or /var) with an HTTPS
// server that requires a client certificate from p, and returns its
// address.
func startNginx(t *testing.T, nginx string, p *tunnelPKI) string {
	t.Helper()
	dir := t.TempDir()
	addr := freePort(t)
	conf := writeConf(t, dir, "nginx.conf", fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    server {
        listen %[2]s ssl;
        ssl_certificate %[3]s;
        ssl_certificate_key %[4]s;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_client_certificate %[5]s;
        ssl_verify_client on;
        ssl_verify_depth 2;
        location / {
            default_type text/plain;
            return 200 "verify=$ssl_client_verify dn=$ssl_client_s_dn uri=$uri\n";
        }
    }
}
`, dir, addr, p.cert("tunnel"), p.key("tunnel"), p.bundle()))
	// -e: the error log before the configuration is read (the default
	// is under /var/log).
	ng := startProc(t, nginx, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	waitTCP(t, addr, ng.exited)
	return addr
}

// TestTunnelDisableAuthenticationNeedsNoIdentity: ghostunnel's
// --disable-authentication makes client mode present no certificate, so
// it needs none: only --cacert (tlsconf's anonymous Source).
func TestTunnelDisableAuthenticationNeedsNoIdentity(t *testing.T) {
	t.Parallel()
	openssl := testpeer.Require(t, "openssl")
	p := newTunnelPKI(t)
	srv := startProc(t, openssl, "s_server", "-accept", "127.0.0.1:0", "-rev", "-cert", p.cert("tunnel"), "-key", p.key("tunnel"))
	addr := srv.waitOutput(t, regexp.MustCompile(`ACCEPT (127\.0\.0\.1:\d+)`))[1]
	tun := startTunnel(t, "client", "--listen", "127.0.0.1:0", "--target", addr, "--cacert", p.bundle(),
		"--disable-authentication", "--shutdown-timeout", "3s")
	c, err := net.DialTimeout("tcp", tun.addr(t), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	fmt.Fprintf(c, "anonymous\n")
	if got, err := bufio.NewReader(c).ReadString('\n'); err != nil || got != "suomynona\n" {
		t.Errorf("s_server -rev through an anonymous tunnel: %q, %v; want %q", got, err, "suomynona\n")
	}
}

// TestTunnelClientOpenSSLServer: a client-mode tunnel dials openssl
// s_server, which demands a client certificate (-Verify 2
// -verify_return_error) and echoes each line reversed (-rev).
func TestTunnelClientOpenSSLServer(t *testing.T) {
	t.Parallel()
	openssl := testpeer.Require(t, "openssl")
	p := newTunnelPKI(t)
	p.ok(t, "ca", "issue", "device", "dev1")
	srv := startProc(t, openssl, "s_server", "-accept", "127.0.0.1:0", "-rev",
		"-cert", p.cert("tunnel"), "-key", p.key("tunnel"), "-CAfile", p.bundle(),
		"-Verify", "2", "-verify_return_error")
	addr := srv.waitOutput(t, regexp.MustCompile(`ACCEPT (127\.0\.0\.1:\d+)`))[1]

	tun := startTunnel(t, p.clientArgs("dev1", addr)...)
	c, err := net.DialTimeout("tcp", tun.addr(t), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	br := bufio.NewReader(c)
	for _, line := range []string{"hello portcullis", "second line"} {
		fmt.Fprintf(c, "%s\n", line)
		got, err := br.ReadString('\n')
		if want := reverse(line) + "\n"; err != nil || got != want {
			t.Errorf("s_server -rev answered %q, %v; want %q", got, err, want)
		}
	}
	c.Close()
	l := tun.waitConns(t, 1)[0]
	if l["outcome"] != "ok" || l["identity"] != "CN=localhost" {
		t.Errorf("connection line %v, want outcome=ok identity=CN=localhost", l)
	}
	// s_server logged the certificate it verified: ours.
	srv.waitOutput(t, regexp.MustCompile(`(?m)^depth=0 C = US, O = Portcullis, OU = devices, CN = dev1`))

	// A server whose certificate comes from another CA: the tunnel
	// refuses it, drops the plaintext client, and says denied.
	other := &tunnelPKI{newCA(t)}
	other.ok(t, "ca", "issue", "server", "tunnel", "--dns", "localhost", "--ip", "127.0.0.1")
	imp := startProc(t, openssl, "s_server", "-accept", "127.0.0.1:0", "-rev", "-cert", other.cert("tunnel"), "-key", other.key("tunnel"))
	impAddr := imp.waitOutput(t, regexp.MustCompile(`ACCEPT (127\.0\.0\.1:\d+)`))[1]
	tun2 := startTunnel(t, p.clientArgs("dev1", impAddr)...)
	if got, _, err := lineExchange(tun2.addr(t), "secret\n"); err == nil {
		t.Errorf("through a tunnel to a server of another CA: %q, want a failure", got)
	}
	if l := tun2.waitConns(t, 1)[0]; l["outcome"] != "denied" || !strings.Contains(l["error"], "unknown authority") {
		t.Errorf("connection line %v, want outcome=denied and an unknown authority error", l)
	}
}

func reverse(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}

// TestTunnelStunnel: stunnel 4 on either side of the tunnel.
func TestTunnelStunnel(t *testing.T) {
	t.Parallel()
	stunnel := testpeer.Require(t, "stunnel4")
	p := newTunnelPKI(t)
	p.ok(t, "ca", "issue", "device", "dev1")

	// stunnel (client = yes) presents the device certificate to a
	// server-mode tunnel and checks the tunnel's chain and IP.
	t.Run("stunnel-client", func(t *testing.T) {
		t.Parallel()
		be := startBackend(t, pong)
		tun := startTunnel(t, p.serverArgs(be.addr, "--allow-uri", deviceURI)...)
		accept := freePort(t)
		startStunnel(t, stunnel, fmt.Sprintf(`[to-tunnel]
client = yes
accept = %s
connect = %s
cert = %s
key = %s
CAfile = %s
verifyChain = yes
checkIP = 127.0.0.1
`, accept, tun.addr(t), p.cert("dev1"), p.key("dev1"), p.bundle()))
		got, _, err := lineExchange(accept, "via stunnel\n")
		if err != nil || got != "pong: via stunnel\n" {
			t.Errorf("through stunnel and the tunnel: %q, %v; want %q", got, err, "pong: via stunnel\n")
		}
		l := tun.waitConns(t, 1)[0]
		if l["outcome"] != "ok" || l["identity"] != deviceURI {
			t.Errorf("tunnel connection line %v, want outcome=ok identity=%s", l, deviceURI)
		}
	})

	// A client-mode tunnel dials stunnel, which requires a client
	// certificate from our CA (requireCert, verifyChain) before it
	// connects to the backend.
	t.Run("stunnel-server", func(t *testing.T) {
		t.Parallel()
		be := startBackend(t, pong)
		accept := freePort(t)
		st := startStunnel(t, stunnel, fmt.Sprintf(`[from-tunnel]
accept = %s
connect = %s
cert = %s
key = %s
CAfile = %s
verifyChain = yes
requireCert = yes
`, accept, be.addr, p.cert("tunnel"), p.key("tunnel"), p.bundle()))
		tun := startTunnel(t, p.clientArgs("dev1", accept)...)
		got, _, err := lineExchange(tun.addr(t), "to stunnel\n")
		if err != nil || got != "pong: to stunnel\n" {
			t.Errorf("through the tunnel and stunnel: %q, %v; want %q", got, err, "pong: to stunnel\n")
		}
		l := tun.waitConns(t, 1)[0]
		if l["outcome"] != "ok" || l["identity"] != "CN=localhost" {
			t.Errorf("tunnel connection line %v, want outcome=ok identity=CN=localhost", l)
		}

		// A device of another CA: stunnel refuses it and the backend
		// never sees the bytes.
		other := &tunnelPKI{newCA(t)}
		other.ok(t, "ca", "issue", "device", "dev1")
		stranger := startTunnel(t, "client", "--listen", "127.0.0.1:0", "--target", accept,
			"--cert", other.cert("dev1"), "--key", other.key("dev1"), "--cacert", p.bundle(), "--shutdown-timeout", "3s")
		// In TLS 1.3 stunnel refuses the certificate after the tunnel's
		// handshake returned, so the refusal is an alert on the tunnel's
		// first read from stunnel. The client here waits for the server
		// to speak first (as with SMTP), so that read is the only thing
		// going on: the tunnel must then close the plaintext client, not
		// leave it waiting for bytes that cannot come.
		c, err := net.DialTimeout("tcp", stranger.addr(t), ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(ioTimeout))
		data, err := io.ReadAll(c)
		if len(data) > 0 || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("a device of another CA through stunnel: read %q, %v; want the tunnel to close the connection", data, err)
		}
		if l := stranger.connLine(t, c.LocalAddr().String()); l["outcome"] != "denied" || !strings.Contains(l["error"], "unknown certificate authority") {
			t.Errorf("connection line %v, want outcome=denied with stunnel's unknown certificate authority alert", l)
		}
		st.waitOutput(t, regexp.MustCompile(`Rejected by CERT at depth=1`))
		if n := len(be.received()); n != 1 {
			t.Errorf("backend saw %d connections, want 1 (dev1's, not the stranger's)", n)
		}
	})
}

// startStunnel runs stunnel in the foreground with the global settings
// (pid file in a temporary directory, info logging to stderr) followed by
// services, and waits until it accepts: stunnel logs that, so nothing
// needs to connect to it (a connection to a client-mode stunnel would
// reach the tunnel behind it).
func startStunnel(t *testing.T, stunnel, services string) *proc {
	t.Helper()
	dir := t.TempDir()
	conf := writeConf(t, dir, "stunnel.conf", fmt.Sprintf(`foreground = yes
pid = %s
debug = info
`, filepath.Join(dir, "stunnel.pid"))+services)
	st := startProc(t, stunnel, conf)
	st.waitOutput(t, regexp.MustCompile(`Accepting new connections`))
	return st
}

// lineExchange sends msg over plain TCP and reads the answer to EOF without
// half-closing first: the peer ends the exchange, as a request/response
// protocol does. (stunnel turns a FIN into a TLS close_notify and may then
// drop the answer.)
func lineExchange(addr, msg string) (string, string, error) {
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", c.LocalAddr().String(), err
	}
	got, err := io.ReadAll(c)
	if err == nil && len(got) == 0 {
		err = fmt.Errorf("connection closed with no answer")
	}
	return string(got), c.LocalAddr().String(), err
}

// TestTunnelChainResumes: a client-mode tunnel in front of a server-mode
// tunnel in front of an echo backend. Bytes make the round trip both ways,
// the server sees the client tunnel's device identity, and the second
// connection resumes the first one's TLS session on both tunnels.
func TestTunnelChainResumes(t *testing.T) {
	t.Parallel()
	p := newTunnelPKI(t)
	p.ok(t, "ca", "issue", "device", "dev1")
	be := startBackend(t, echo)
	srv := startTunnel(t, p.serverArgs(be.addr, "--allow-uri", "spiffe://portcullis.internal/device/*")...)
	cli := startTunnel(t, p.clientArgs("dev1", srv.addr(t))...)

	for i, msg := range []string{"first connection\n", strings.Repeat("second connection, 64 KiB ", 2521)} {
		got, local, err := exchange(cli.addr(t), nil, msg)
		if err != nil || got != msg {
			t.Fatalf("connection %d through both tunnels: %d bytes back, %v; want the %d bytes sent", i+1, len(got), err, len(msg))
		}
		wantResumed := fmt.Sprint(i > 0)
		cl := cli.connLine(t, local)
		if cl["outcome"] != "ok" || cl["resumed"] != wantResumed || cl["bytes_up"] != fmt.Sprint(len(msg)) || cl["bytes_down"] != fmt.Sprint(len(msg)) {
			t.Errorf("client tunnel, connection %d: %v\nwant outcome=ok resumed=%s bytes_up=bytes_down=%d", i+1, cl, wantResumed, len(msg))
		}
		sl := srv.waitConns(t, i+1)[i]
		if sl["outcome"] != "ok" || sl["resumed"] != wantResumed || sl["identity"] != deviceURI {
			t.Errorf("server tunnel, connection %d: %v\nwant outcome=ok resumed=%s identity=%s", i+1, sl, wantResumed, deviceURI)
		}
	}
	if got := be.received(); len(got) != 2 {
		t.Errorf("backend saw %d connections, want 2", len(got))
	}
	cli.stopTunnel(t)
	srv.stopTunnel(t)
}

// TestTunnelSNIRouting: two server-mode services share one listener in
// tunnels.yaml; the server name picks the certificate and the target.
func TestTunnelSNIRouting(t *testing.T) {
	t.Parallel()
	openssl := testpeer.Require(t, "openssl")
	p := newTunnelPKI(t)
	p.ok(t, "ca", "issue", "server", "a", "--dns", "a.example.com")
	p.ok(t, "ca", "issue", "server", "b", "--dns", "b.example.com")
	p.ok(t, "ca", "issue", "device", "dev1")
	answer := func(name string) func(net.Conn) string {
		return func(c net.Conn) string {
			line := pong(c)
			fmt.Fprintf(c, "served by %s\n", name)
			return line
		}
	}
	beA, beB := startBackend(t, answer("A")), startBackend(t, answer("B"))
	svc := func(name, target string) string {
		return fmt.Sprintf(`  - name: svc-%[1]s
    mode: server
    listen: 127.0.0.1:0
    sni: [%[1]s.example.com]
    targets: [%[2]s]
    identity: {cert: %[3]s, key: %[4]s, cacert: %[5]s}
    allow: {ou: [devices]}
`, name, target, p.cert(name), p.key(name), p.bundle())
	}
	cfg := writeConf(t, t.TempDir(), "tunnels.yaml", "version: 1\nshutdown_timeout: 3s\nservices:\n"+svc("a", beA.addr)+svc("b", beB.addr))
	check := run(t, bin, "tunnel", "--config", cfg, "--check")
	if check.code != 0 || !strings.Contains(check.stdout, "2 services OK") {
		t.Fatalf("tunnel --config --check: %s", check)
	}
	tun := startTunnel(t, "--config", cfg, "--status", "127.0.0.1:0")
	addr := tun.addr(t)

	for _, name := range []string{"a", "b"} {
		host := name + ".example.com"
		msg := "hello " + host + "\n"
		r := execIn(t, "", nil, []byte(msg), openssl, "s_client", "-connect", addr, "-servername", host,
			"-CAfile", p.path("ca.crt"), "-verify_return_error", "-verify_hostname", host, "-ign_eof",
			"-cert", p.cert("dev1"), "-key", p.key("dev1"))
		want := fmt.Sprintf("pong: %sserved by %s\n", msg, strings.ToUpper(name))
		if r.code != 0 || !strings.Contains(r.stdout, "subject=C = US, O = Portcullis, CN = "+host) || !strings.Contains(r.stdout, want) {
			t.Errorf("openssl s_client -servername %s: %s\nwant certificate CN = %s and %q", host, r, host, want)
		}
	}
	if !slices.Equal(beA.received(), []string{"hello a.example.com\n"}) || !slices.Equal(beB.received(), []string{"hello b.example.com\n"}) {
		t.Errorf("backend A received %q, B received %q; want each its own host's line", beA.received(), beB.received())
	}
	// A name no service claims, with no default service: no handshake.
	r := execIn(t, "", nil, nil, openssl, "s_client", "-connect", addr, "-servername", "c.example.com",
		"-CAfile", p.path("ca.crt"), "-cert", p.cert("dev1"), "-key", p.key("dev1"))
	if r.code == 0 {
		t.Errorf("openssl s_client -servername c.example.com: %s\nwant a failed handshake", r)
	}
	_, body := tun.get(t, "/status")
	var st tunnel.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status: %v\n%s", err, body)
	}
	var names []string
	for _, s := range st.Services {
		names = append(names, fmt.Sprintf("%s %v %s", s.Name, s.SNI, s.Subject))
	}
	want := []string{"svc-a [a.example.com] CN=a.example.com,O=Portcullis,C=US", "svc-b [b.example.com] CN=b.example.com,O=Portcullis,C=US"}
	if !slices.Equal(names, want) {
		t.Errorf("/status services = %q, want %q", names, want)
	}
}

// TestTunnelProxyProtocol: with --proxy-protocol the backend learns the
// client's address and verified identity from a PROXY v2 header, parsed
// here with tunnel.ParseProxyHeader.
func TestTunnelProxyProtocol(t *testing.T) {
	t.Parallel()
	p := newTunnelPKI(t)
	p.ok(t, "ca", "issue", "device", "dev1")
	headers := make(chan *tunnel.ProxyHeader, 1)
	be := startBackend(t, func(c net.Conn) string {
		h, rest, err := readProxyHeader(c)
		if err != nil {
			fmt.Fprintf(c, "bad header: %v\n", err)
			return "error: " + err.Error()
		}
		headers <- h
		// Echo what follows the header: the client's bytes, untouched.
		c.Write(rest)
		return string(rest) + echo(c)
	})
	tun := startTunnel(t, p.serverArgs(be.addr, "--allow-uri", deviceURI, "--proxy-protocol")...)
	msg := "after the header\n"
	got, local, err := exchange(tun.addr(t), p.tlsClient(t, p.cert("dev1"), p.key("dev1")), msg)
	if err != nil || got != msg {
		t.Fatalf("exchange through the tunnel: %q, %v; want %q", got, err, msg)
	}
	h := <-headers
	dev := p.leaf(t, "dev1")
	if h.Src.String() != local || h.Dst.String() != tun.addr(t) {
		t.Errorf("header addresses %v -> %v, want %s -> %s", h.Src, h.Dst, local, tun.addr(t))
	}
	if h.CN != "dev1" || !slices.Equal(h.URIs, []string{deviceURI}) || h.Serial != serialHex(dev) {
		t.Errorf("header identity CN=%q URIs=%q serial=%q, want dev1 [%s] %s", h.CN, h.URIs, h.Serial, deviceURI, serialHex(dev))
	}
	if h.TLSVersion != "TLS 1.3" || h.Cipher == "" || h.Resumed {
		t.Errorf("header TLS facts: version %q cipher %q resumed %v, want TLS 1.3, a cipher, not resumed", h.TLSVersion, h.Cipher, h.Resumed)
	}
}

// readProxyHeader reads a PROXY v2 header (16 fixed bytes, then the length
// they announce) and returns it with any bytes read past it.
func readProxyHeader(c net.Conn) (*tunnel.ProxyHeader, []byte, error) {
	buf := make([]byte, 16)
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, nil, err
	}
	n := int(buf[14])<<8 | int(buf[15])
	buf = append(buf, make([]byte, n)...)
	if _, err := io.ReadFull(c, buf[16:]); err != nil {
		return nil, nil, err
	}
	h, used, err := tunnel.ParseProxyHeader(buf)
	if err != nil {
		return nil, nil, err
	}
	return h, buf[used:], nil
}

// identity is a client certificate and key on disk.
type identity struct{ cert, key string }

// TestTunnelAccessRules drives the access rules of a server-mode tunnel
// with Go clients: each --allow-* flag admits the identities it names and
// refuses the others; a certificate from another CA, an expired one and a
// revoked one (--crl) are refused whatever the rules say. A refused client
// never reaches the backend, and the tunnel logs outcome=denied.
func TestTunnelAccessRules(t *testing.T) {
	t.Parallel()
	p := newTunnelPKI(t)
	for _, args := range [][]string{
		{"client", "alice"},
		{"client", "bob"},
		{"client", "carol"},
		{"device", "dev1"},
		{"client", "api", "--dns", "api.svc.example.com"},
		{"client", "deep", "--dns", "x.api.svc.example.com"},
		{"client", "nested", "--uri", "spiffe://portcullis.internal/device/a/b"},
	} {
		p.ok(t, append([]string{"ca", "issue"}, args...)...)
	}
	ids := map[string]identity{}
	for _, n := range []string{"alice", "bob", "carol", "dev1", "api", "deep", "nested"} {
		ids[n] = identity{p.cert(n), p.key(n)}
	}
	// alice of another CA with the same names (root and intermediate CNs
	// included): only the keys differ.
	other := &tunnelPKI{newCA(t)}
	other.ok(t, "ca", "issue", "client", "alice")
	ids["alice-other-ca"] = identity{other.cert("alice"), other.key("alice")}
	ids["alice-expired"] = expiredClient(t, p, "alice")
	p.ok(t, "ca", "issue", "client", "carol-revoked")
	ids["carol-revoked"] = identity{p.cert("carol-revoked"), p.key("carol-revoked")}
	p.ok(t, "ca", "revoke", "carol-revoked", "--reason", "keyCompromise")

	for _, tc := range []struct {
		name           string
		flags          []string
		allow, deny    []string
		deniedByPolicy []string // subset of deny refused by the rules (audited)
	}{
		{name: "cn", flags: []string{"--allow-cn", "alice"},
			allow: []string{"alice"}, deny: []string{"bob", "dev1", "alice-other-ca", "alice-expired"}, deniedByPolicy: []string{"bob", "dev1"}},
		{name: "ou", flags: []string{"--allow-ou", "devices"},
			allow: []string{"dev1"}, deny: []string{"alice", "nested"}, deniedByPolicy: []string{"alice", "nested"}},
		{name: "dns", flags: []string{"--allow-dns", "*.svc.example.com"},
			allow: []string{"api"}, deny: []string{"deep", "alice"}, deniedByPolicy: []string{"deep", "alice"}},
		{name: "uri", flags: []string{"--allow-uri", "spiffe://portcullis.internal/device/*"},
			allow: []string{"dev1"}, deny: []string{"nested", "alice"}, deniedByPolicy: []string{"nested", "alice"}},
		{name: "crl", flags: []string{"--allow-cn", "carol", "--allow-cn", "carol-revoked", "--crl", p.path("crl.pem")},
			allow: []string{"carol"}, deny: []string{"carol-revoked", "alice"}, deniedByPolicy: []string{"alice"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			be := startBackend(t, echo)
			tun := startTunnel(t, p.serverArgs(be.addr, tc.flags...)...)
			try := func(name string) (string, logLine, error) {
				t.Helper()
				id := ids[name]
				msg := "from " + name + "\n"
				got, local, err := exchange(tun.addr(t), p.tlsClient(t, id.cert, id.key), msg)
				if err == nil && got != msg {
					err = fmt.Errorf("echo %q, want %q", got, msg)
				}
				return msg, tun.connLine(t, local), err
			}
			for _, name := range tc.allow {
				if _, l, err := try(name); err != nil || l["outcome"] != "ok" {
					t.Errorf("%s %v: %v, connection line %v; want the echo and outcome=ok", name, tc.flags, err, l)
				}
			}
			for _, name := range tc.deny {
				msg, l, err := try(name)
				if err == nil || l["outcome"] != "denied" {
					t.Errorf("%s %v: err %v, connection line %v; want a failure and outcome=denied", name, tc.flags, err, l)
				}
				if slices.Contains(be.received(), msg) {
					t.Errorf("%s %v: the backend received its bytes", name, tc.flags)
				}
			}
			audited := deniedSubjects(tun.stderr.String())
			for _, name := range tc.deniedByPolicy {
				if audited["CN="+name] != "policy" {
					t.Errorf("%s %v: audit stage %q, want a connection.denied event with stage policy", name, tc.flags, audited["CN="+name])
				}
			}
			if tc.name == "crl" && audited["CN=carol-revoked"] != "revocation" {
				t.Errorf("carol-revoked: audit stage %q, want a connection.denied event with stage revocation", audited["CN=carol-revoked"])
			}
		})
	}
}

// deniedSubjects maps the subject CN of each connection.denied audit event
// (JSON lines on stderr) to its stage.
func deniedSubjects(stderr string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(stderr, "\n") {
		var ev struct{ Type, Event, Stage, Subject string }
		if json.Unmarshal([]byte(line), &ev) != nil || ev.Type != "audit" || ev.Event != "connection.denied" {
			continue
		}
		cn, _, _ := strings.Cut(ev.Subject, ",")
		out[cn] = ev.Stage
	}
	return out
}

// expiredClient makes a client certificate for cn that expired yesterday,
// signed by p's intermediate (the CLI will not issue one in the past), and
// returns its chain and key files.
func expiredClient(t *testing.T, p *tunnelPKI, cn string) identity {
	t.Helper()
	inter := readCerts(t, p.path("intermediate.crt"))[0]
	signer, err := keystore.LoadFile(p.path("private", "intermediate.key"), func() ([]byte, error) { return []byte(passphrase), nil })
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	now := time.Now()
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Portcullis"}, Country: []string{"US"}},
		NotBefore:    now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, inter, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	id := identity{cert: filepath.Join(dir, cn+"-expired.chain.crt"), key: filepath.Join(dir, cn+"-expired.key")}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter.Raw})...)
	writeFile(t, id.cert, string(chain))
	writeFile(t, id.key, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	return id
}

// TestTunnelStatus reads the status listener of a server-mode tunnel
// through a live target, a denied client and a dead target: /healthz,
// /readyz (ready, then 503 once the target failed), /metrics (connections by
// outcome) and /status (the service, its target's health). Then SIGTERM
// drains and the process exits 0.
func TestTunnelStatus(t *testing.T) {
	t.Parallel()
	p := newTunnelPKI(t)
	p.ok(t, "ca", "issue", "device", "dev1")
	p.ok(t, "ca", "issue", "client", "alice")
	be := startBackend(t, echo)
	tun := startTunnel(t, p.serverArgs(be.addr, "--allow-ou", "devices", "--status", "127.0.0.1:0")...)
	want := func(path string, code int, body string) {
		t.Helper()
		if gotCode, got := tun.get(t, path); gotCode != code || !strings.Contains(got, body) {
			t.Errorf("GET %s = %d %q, want %d with %q", path, gotCode, got, code, body)
		}
	}
	want("/healthz", 200, "ok")
	want("/readyz", 200, "ready")

	dev := p.tlsClient(t, p.cert("dev1"), p.key("dev1"))
	if _, local, err := exchange(tun.addr(t), dev, "live\n"); err != nil {
		t.Fatalf("device through the tunnel: %v", err)
	} else {
		tun.connLine(t, local)
	}
	if _, local, err := exchange(tun.addr(t), p.tlsClient(t, p.cert("alice"), p.key("alice")), "denied\n"); err == nil {
		t.Errorf("alice got through --allow-ou devices")
	} else {
		tun.connLine(t, local)
	}
	// The target goes away. Health is passive: the next client's failed
	// dial marks it down, and the process stops being ready.
	be.close()
	if got, local, err := exchange(tun.addr(t), dev, "dead\n"); err == nil {
		t.Errorf("device through the tunnel to a dead target: %q, want a failure", got)
	} else if l := tun.connLine(t, local); l["outcome"] != "target_unreachable" {
		t.Errorf("connection line %v, want outcome=target_unreachable", l)
	}
	want("/healthz", 200, "ok")
	want("/readyz", 503, "server: no target reachable")

	notAfter := parseCerts(t, readFile(t, p.cert("tunnel")))[0].NotAfter.Unix()
	metrics := fmt.Sprintf(`# HELP portcullis_tunnel_connections_total Connections accepted, by how they ended.
# TYPE portcullis_tunnel_connections_total counter
portcullis_tunnel_connections_total{outcome="denied",service="server"} 1
portcullis_tunnel_connections_total{outcome="ok",service="server"} 1
portcullis_tunnel_connections_total{outcome="target_unreachable",service="server"} 1
# HELP portcullis_tunnel_handshake_errors_total Failed TLS handshakes by reason.
# TYPE portcullis_tunnel_handshake_errors_total counter
portcullis_tunnel_handshake_errors_total{reason="denied",service="server"} 1
# HELP portcullis_tunnel_bytes_total Bytes proxied, counted when a connection closes; direction up is client to target.
# TYPE portcullis_tunnel_bytes_total counter
portcullis_tunnel_bytes_total{direction="down",service="server"} 5
portcullis_tunnel_bytes_total{direction="up",service="server"} 5
# HELP portcullis_tunnel_connections_open Connections being proxied now.
# TYPE portcullis_tunnel_connections_open gauge
portcullis_tunnel_connections_open{service="server"} 0
# HELP portcullis_tunnel_last_reload_successful 1 if the last reload succeeded.
# TYPE portcullis_tunnel_last_reload_successful gauge
portcullis_tunnel_last_reload_successful 1
# HELP portcullis_tunnel_cert_not_after_timestamp_seconds Expiry of the service's own certificate.
# TYPE portcullis_tunnel_cert_not_after_timestamp_seconds gauge
portcullis_tunnel_cert_not_after_timestamp_seconds{service="server"} %d
`, notAfter)
	if err := testutil.ScrapeAndCompare("http://"+tun.status+"/metrics", strings.NewReader(metrics),
		"portcullis_tunnel_connections_total", "portcullis_tunnel_handshake_errors_total", "portcullis_tunnel_bytes_total",
		"portcullis_tunnel_connections_open", "portcullis_tunnel_last_reload_successful", "portcullis_tunnel_cert_not_after_timestamp_seconds"); err != nil {
		t.Errorf("/metrics: %v", err)
	}

	code, body := tun.get(t, "/status")
	var st tunnel.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != 200 {
		t.Fatalf("/status = %d, %v\n%s", code, err, body)
	}
	if st.Ready || len(st.Services) != 1 {
		t.Fatalf("/status ready=%v with %d services, want not ready with 1:\n%s", st.Ready, len(st.Services), body)
	}
	svc := st.Services[0]
	if svc.Name != "server" || svc.Mode != "server" || svc.Listen != "127.0.0.1:0" || svc.Subject != "CN=localhost,O=Portcullis,C=US" ||
		svc.Open != 0 || svc.Policy == "" || !slices.Equal(svc.Problems, []string{"no target reachable"}) {
		t.Errorf("/status service = %+v\nwant server/server on 127.0.0.1:0, CN=localhost, a policy, problem \"no target reachable\"", svc)
	}
	if len(svc.Targets) != 1 || svc.Targets[0].Address != be.addr || svc.Targets[0].Healthy || svc.Targets[0].Failures < 1 || svc.Targets[0].LastError == "" {
		t.Errorf("/status targets = %+v, want %s unhealthy after the client's failure and /readyz's probe, with its error", svc.Targets, be.addr)
	}
	tun.stopTunnel(t)
}

// startHTTPBackend serves h on 127.0.0.1:0 until the test ends.
func startHTTPBackend(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
