package tlsconf_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"os/exec"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/testpeer"
	"github.com/portcullis-dev/portcullis/internal/tlsconf"
)

// TestOpenSSLClient connects `openssl s_client` to a ServerConfig listener:
// with a client certificate it gets in (TLS 1.3 and 1.2); without one the
// server refuses it.
func TestOpenSSLClient(t *testing.T) {
	openssl := testpeer.Require(t, "openssl")
	w := newWorld(t)
	addr, results := serve(t, tlsconf.ServerConfig(w.server, nil))

	tests := []struct {
		name      string
		flag      string
		withCert  bool
		version   uint16
		serverErr string
	}{
		{"TLS 1.3", "-tls1_3", true, tls.VersionTLS13, ""},
		{"TLS 1.2", "-tls1_2", true, tls.VersionTLS12, ""},
		{"TLS 1.3 without certificate", "-tls1_3", false, 0, "didn't provide a certificate"},
		{"TLS 1.2 without certificate", "-tls1_2", false, 0, "didn't provide a certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), ioTimeout)
			defer cancel()
			args := []string{"s_client", "-connect", addr, "-servername", "localhost",
				"-CAfile", w.clientSrc.CAFile, "-verify_return_error", tt.flag}
			if tt.withCert {
				args = append(args, "-cert", w.clientSrc.CertFile, "-key", w.clientSrc.KeyFile)
			}
			cmd := exec.CommandContext(ctx, openssl, args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			// Stdin stays open until the server has judged the handshake:
			// at EOF s_client hangs up, maybe before sending its
			// certificate.
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			r := next(t, results)
			stdin.Close()
			cmd.Wait() // its status varies: a TLS 1.3 refusal comes after its handshake
			if tt.serverErr != "" {
				if r.err == nil || !strings.Contains(r.err.Error(), tt.serverErr) {
					t.Fatalf("server handshake error = %v, want %q\nopenssl:\n%s", r.err, tt.serverErr, out.String())
				}
				return
			}
			if r.err != nil {
				t.Fatalf("server handshake error = %v\nopenssl:\n%s", r.err, out.String())
			}
			if r.state.Version != tt.version || r.state.PeerCertificates[0].Subject.CommonName != "device-1" {
				t.Errorf("server saw %s from %v, want %s from device-1", tls.VersionName(r.state.Version),
					r.state.PeerCertificates[0].Subject, tls.VersionName(tt.version))
			}
			if !strings.Contains(out.String(), "Verify return code: 0 (ok)") {
				t.Errorf("openssl did not verify the server:\n%s", out.String())
			}
		})
	}
}
