package e2e

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testpeer"
)

// controlServer is a `portcullis server` on free loopback ports.
type controlServer struct {
	*proc
	data, api, public string
}

var serverUpRE = regexp.MustCompile(`msg="control server listening"`)

func startServer(t *testing.T, data string, extra ...string) *controlServer {
	t.Helper()
	s := &controlServer{data: data, api: freeAddr(t), public: freeAddr(t)}
	args := append([]string{"server", "--data", data, "--listen", s.api, "--public-listen", s.public}, extra...)
	s.proc = startProc(t, bin, args...)
	s.waitOutput(t, serverUpRE)
	return s
}

func (s *controlServer) url() string { return "https://" + s.api }

// cli runs a client command of portcullis against the server.
func (s *controlServer) cli(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, bin, append(args[:1:1], append([]string{"--server", s.url(), "--cacert", filepath.Join(s.data, "ca.crt")}, args[1:]...)...)...)
}

// admin runs `portcullis admin` with the first admin's bundle.
func (s *controlServer) admin(t *testing.T, args ...string) result {
	t.Helper()
	return s.cli(t, append([]string{"admin", "--bundle", filepath.Join(s.data, "private", "admin.p12"),
		"--password-file", filepath.Join(s.data, "private", "admin.p12.pass")}, args...)...)
}

// TestServerDeviceLifecycle is the control server's whole path with the
// built binary and real peers: a device enrolls (pending), an admin
// approves it with the CLI, the device collects its certificate, renews
// it over mTLS, reaches a backend through a tunnel that checks the
// server's CRL; the admin revokes the device; then the CRL (openssl crl)
// lists it, renewal is refused, and the tunnel refuses the device's next
// connection within one refresh.
func TestServerDeviceLifecycle(t *testing.T) {
	testpeer.Require(t, "openssl")
	testpeer.Require(t, "curl")
	dir := t.TempDir()
	srv := startServer(t, filepath.Join(dir, "data"))
	dev := filepath.Join(dir, "laptop-1")

	r := srv.cli(t, "enroll", "--name", "laptop-1", "--out", dev, "--wait", "0", "--serial", "C02TEST1", "--owner", "ada@example.com")
	if r.code != 0 || !strings.Contains(r.stdout, "waits for approval") {
		t.Fatalf("enroll: %s", r)
	}
	for path, want := range map[string]string{"/readyz": "ready", "/healthz": "ok",
		"/metrics": "portcullis_enrollment_requests_pending 1"} {
		res, err := http.Get("http://" + srv.public + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d, want 200 containing %q:\n%.300s", path, res.StatusCode, want, body)
		}
	}
	if r := srv.admin(t, "requests", "list"); r.code != 0 || !strings.Contains(r.stdout, "laptop-1") || !strings.Contains(r.stdout, "C02TEST1") {
		t.Fatalf("requests list: %s", r)
	}
	if r := srv.admin(t, "requests", "approve", "--hostname", "laptop-1", "--comment", "known"); r.code != 0 || !strings.Contains(r.stdout, "issued") {
		t.Fatalf("approve: %s", r)
	}
	if r := srv.cli(t, "enroll", "--name", "laptop-1", "--out", dev); r.code != 0 || !strings.Contains(r.stdout, "enrolled as device") {
		t.Fatalf("collect: %s", r)
	}
	cert, key := filepath.Join(dev, "cert.pem"), filepath.Join(dev, "key.pem")
	// openssl verifies the chain and the device EKU.
	mustRun(t, "openssl", "verify", "-CAfile", filepath.Join(srv.data, "ca.crt"), "-untrusted", cert, "-purpose", "sslclient", cert)
	if r := srv.cli(t, "renew", "--dir", dev); r.code != 0 || !strings.Contains(r.stdout, "renewed: serial") {
		t.Fatalf("renew: %s", r)
	}
	if r := srv.cli(t, "renew", "--dir", dev, "--rekey"); r.code != 0 {
		t.Fatalf("renew --rekey: %s", r)
	}

	// A tunnel in front of a backend, checking the server's CRL every 2 s.
	backend := startBackend(t, func(c net.Conn) string {
		buf := make([]byte, 4096)
		n, _ := c.Read(buf)
		c.Write([]byte("HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n"))
		return string(buf[:n])
	})
	tun := startTunnel(t, "server", "--listen", "127.0.0.1:0", "--target", backend.addr,
		"--cert", filepath.Join(srv.data, "issued", "portcullis-server.chain.crt"), "--key", filepath.Join(srv.data, "private", "portcullis-server.key"),
		"--cacert", filepath.Join(srv.data, "ca-bundle.crt"), "--allow-ou", "devices",
		"--crl", "http://"+srv.public+"/crl/issuing.crl", "--revocation-refresh", "2s")
	// A second tunnel asks the server's OCSP responder (the URL in the
	// device certificate) instead of the CRL.
	tunOCSP := startTunnel(t, "server", "--listen", "127.0.0.1:0", "--target", backend.addr,
		"--cert", filepath.Join(srv.data, "issued", "portcullis-server.chain.crt"), "--key", filepath.Join(srv.data, "private", "portcullis-server.key"),
		"--cacert", filepath.Join(srv.data, "ca-bundle.crt"), "--allow-ou", "devices", "--ocsp", "--revocation-refresh", "2s")
	curlVia := func(tp *tunnelProc) result {
		return run(t, "curl", "-sS", "--max-time", "10", "--cacert", filepath.Join(srv.data, "ca.crt"), "--cert", cert, "--key", key,
			"https://"+tp.addr(t)+"/")
	}
	for _, tp := range []*tunnelProc{tun, tunOCSP} {
		if r := curlVia(tp); r.code != 0 || r.stdout != "hello\n" {
			t.Fatalf("device through the tunnel before revocation: %s", r)
		}
	}
	ocspStatus := func() string {
		r := run(t, "openssl", "ocsp", "-issuer", filepath.Join(srv.data, "intermediate.crt"), "-cert", cert,
			"-url", "http://"+srv.public+"/ocsp", "-CAfile", filepath.Join(srv.data, "ca-bundle.crt"))
		if !strings.Contains(r.stderr+r.stdout, "Response verify OK") {
			t.Errorf("openssl ocsp does not verify the response: %s", r)
		}
		return r.stdout
	}
	if out := ocspStatus(); !strings.Contains(out, ": good") {
		t.Errorf("openssl ocsp before revocation: %q, want good", out)
	}

	// Revoke the device.
	show := srv.admin(t, "--json", "devices", "list", "--name", "laptop-1")
	devID := regexp.MustCompile(`"id": "(dev_[0-9a-f]+)"`).FindStringSubmatch(show.stdout)
	if devID == nil {
		t.Fatalf("devices list: %s", show)
	}
	if r := srv.admin(t, "devices", "revoke", devID[1], "--reason", "keyCompromise"); r.code != 0 || !strings.Contains(r.stdout, "revoked") {
		t.Fatalf("revoke: %s", r)
	}
	crlFile := filepath.Join(dir, "issuing.crl")
	resp, err := http.Get("http://" + srv.public + "/crl/issuing.crl")
	if err != nil {
		t.Fatal(err)
	}
	writeResp(t, resp, crlFile)
	serial := strings.ToUpper(strings.TrimPrefix(strings.TrimSpace(mustRun(t, "openssl", "x509", "-in", cert, "-noout", "-serial").stdout), "serial="))
	crlText := mustRun(t, "openssl", "crl", "-inform", "DER", "-in", crlFile, "-CAfile", filepath.Join(srv.data, "ca-bundle.crt"), "-noout", "-text")
	if !strings.Contains(crlText.stderr+crlText.stdout, "verify OK") || !strings.Contains(strings.ToUpper(crlText.stdout), serial) ||
		!strings.Contains(crlText.stdout, "Key Compromise") {
		t.Errorf("openssl crl does not verify or list %s as key compromise:\n%s", serial, crlText)
	}
	if out := ocspStatus(); !strings.Contains(out, ": revoked") || !strings.Contains(out, "Reason: keyCompromise") {
		t.Errorf("openssl ocsp after revocation: %q, want revoked, keyCompromise", out)
	}
	if r := srv.cli(t, "renew", "--dir", dev); r.code == 0 || !strings.Contains(r.stderr, "device is revoked") {
		t.Errorf("renew after revocation: %s; want refused, device is revoked", r)
	}
	// Within one refresh (2 s) both tunnels refuse the device.
	for name, tp := range map[string]*tunnelProc{"CRL": tun, "OCSP": tunOCSP} {
		deadline := time.Now().Add(15 * time.Second)
		for {
			r := curlVia(tp)
			if r.code != 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the %s tunnel still lets the revoked device through after 15 s: %s", name, r)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}

func writeResp(t *testing.T, resp *http.Response, path string) {
	t.Helper()
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d %v", resp.StatusCode, err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
