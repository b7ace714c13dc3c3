package ca

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/testpeer"
)

// openssl runs the openssl command line and returns its combined output,
// failing the test when it exits non-zero.
func openssl(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestOCSPOpenSSL: openssl makes the requests (SHA-1 and SHA-256 CertIDs,
// with and without a nonce) and verifies the answers against the CA
// bundle: the delegated responder's chain, its signature, the status.
func TestOCSPOpenSSL(t *testing.T) {
	bin := testpeer.Require(t, "openssl")
	for _, rootOnly := range []bool{false, true} {
		f := newCA(t, func(o *InitOptions) { o.RootOnly = rootOnly })
		ctx := context.Background()
		f.issueLeaf(t, "good")
		f.issueLeaf(t, "revoked")
		if _, err := f.a.Revoke(ctx, "revoked", 1); err != nil {
			t.Fatal(err)
		}
		r := f.responder(t, ResponderOptions{})
		l := f.a.Layout()
		issuer := l.IntermediateCert()
		if rootOnly {
			issuer = l.RootCert()
		}
		tmp := t.TempDir()
		for _, name := range []string{"good", "revoked"} {
			for _, digest := range []string{"-sha1", "-sha256"} {
				for _, nonce := range []string{"-no_nonce", "-nonce"} {
					req, resp := filepath.Join(tmp, "req.der"), filepath.Join(tmp, "resp.der")
					openssl(t, bin, "ocsp", digest, "-issuer", issuer, "-cert", l.Cert(name), nonce, "-reqout", req)
					der, err := os.ReadFile(req)
					if err != nil {
						t.Fatal(err)
					}
					answer, err := r.Respond(ctx, der)
					if err != nil {
						t.Fatalf("Respond(openssl %s %s request for %s): %v", digest, nonce, name, err)
					}
					if err := os.WriteFile(resp, answer, 0o600); err != nil {
						t.Fatal(err)
					}
					out := openssl(t, bin, "ocsp", "-reqin", req, "-respin", resp, "-issuer", issuer,
						"-CAfile", l.Bundle(), digest, "-cert", l.Cert(name))
					if !strings.Contains(out, "Response verify OK") || !strings.Contains(out, ": "+name) {
						t.Errorf("rootOnly=%v %s %s %s: openssl says\n%s", rootOnly, name, digest, nonce, out)
					}
				}
			}
		}
		// The CRL cache's DER verifies against the bundle and lists the
		// revoked certificate.
		crl, err := f.a.CRLCache(CRLCacheOptions{}).Current(ctx)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(tmp, "crl.der")
		if err := os.WriteFile(path, crl.DER, 0o600); err != nil {
			t.Fatal(err)
		}
		out := openssl(t, bin, "crl", "-inform", "DER", "-in", path, "-CAfile", l.Bundle(), "-noout", "-text")
		if !strings.Contains(out, "verify OK") || !strings.Contains(out, "Key Compromise") {
			t.Errorf("rootOnly=%v: openssl crl says\n%s", rootOnly, out)
		}
	}
}
