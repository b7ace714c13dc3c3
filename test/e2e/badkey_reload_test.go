package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/keystore"
)

// TestTunnelSurvivesBadKeyReload: a server tunnel runs with an encrypted
// --key and --storepass-file; the key file is replaced, atomically, by the
// FuzzKeystoreParse crasher (a PBES2 key whose AES-CBC IV is 3 bytes), and
// the tunnel gets SIGHUP. youmark/pkcs8 used to panic in
// cipher.NewCBCDecrypter and the process was gone (the file watch's reload
// did the same). The reload must fail with a clear error, the process live
// on, and clients still reach the target through the old identity.
func TestTunnelSurvivesBadKeyReload(t *testing.T) {
	p := newTunnelPKI(t)
	p.ok(t, "ca", "issue", "client", "alice")
	dir := t.TempDir()
	key, err := keystore.LoadFile(p.key("tunnel"), nil)
	if err != nil {
		t.Fatal(err)
	}
	const pass = "tunnel-key-passphrase"
	keyFile, passFile := filepath.Join(dir, "tunnel.key"), filepath.Join(dir, "pass")
	if err := keystore.WriteFile(keyFile, key, []byte(pass)); err != nil {
		t.Fatal(err)
	}
	writeFile(t, passFile, pass+"\n")

	be := startBackend(t, echo)
	tun := startTunnel(t, "server", "--listen", "127.0.0.1:0", "--target", be.addr,
		"--cert", p.cert("tunnel"), "--key", keyFile, "--storepass-file", passFile,
		"--cacert", p.bundle(), "--allow-cn", "alice", "--status", "127.0.0.1:0", "--shutdown-timeout", "3s")
	want := p.leaf(t, "tunnel")
	client := p.tlsClient(t, p.cert("alice"), p.key("alice"))
	served := func(msg string) {
		t.Helper()
		var seen *x509.Certificate
		conf := client.Clone()
		conf.VerifyConnection = func(cs tls.ConnectionState) error {
			seen = cs.PeerCertificates[0]
			return nil
		}
		if got, _, err := exchange(tun.addr(t), conf, msg); err != nil || got != msg {
			t.Fatalf("exchange through the tunnel = %q, %v; want %q back", got, err, msg)
		}
		if seen == nil || !seen.Equal(want) {
			t.Errorf("tunnel presented %v, want its first certificate (serial %s)", seen, want.SerialNumber)
		}
	}
	served("before\n")

	// Replace the key as a deployment tool would: a new file renamed over
	// the old one.
	tmp := filepath.Join(dir, "tunnel.key.new")
	if err := os.WriteFile(tmp, readFile(t, "../../internal/keystore/testdata/pbes2-short-iv.pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, keyFile); err != nil {
		t.Fatal(err)
	}
	if err := tun.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	line := tun.waitOutput(t, regexp.MustCompile(`msg="reload failed; the previous configuration keeps running" .*`))[0]
	if e := parseLogLine(line)["error"]; !strings.Contains(e, keyFile) || !strings.Contains(e, "AES-256-CBC IV is 3 bytes, want 16") {
		t.Errorf("reload error %q, want it to name %s and the 3-byte IV", e, keyFile)
	}
	if tun.hasExited() {
		t.Fatalf("tunnel exited after the reload:\n%s", tun.stderr)
	}
	if strings.Contains(tun.stderr.String(), "panic") {
		t.Errorf("tunnel stderr mentions a panic:\n%s", tun.stderr)
	}
	served("after\n")
	if _, metrics := tun.get(t, "/metrics"); !slices.Contains(strings.Split(metrics, "\n"), "portcullis_tunnel_last_reload_successful 0") {
		t.Errorf("/metrics lacks portcullis_tunnel_last_reload_successful 0 after the failed reload")
	}
	tun.stopTunnel(t)
}
