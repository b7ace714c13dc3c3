package revocation

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestCreateRequestFIPSOnly: under GODEBUG=fips140=only, crypto/sha1
// panics, and the OCSP request's SHA-1 CertID hits it; the test runs
// itself in that mode and wants an error instead of a dead process.
func TestCreateRequestFIPSOnly(t *testing.T) {
	if os.Getenv("REVOCATION_FIPS_CHILD") != "" {
		ca := newCA(t, "FIPS CA", 1, 2, 3) // pki.SubjectKeyID hashes with SHA-1 too
		_, err := createRequest(ca.leaf(t, "leaf"), ca.cert)
		if err == nil || !strings.Contains(err.Error(), "SHA-1") {
			t.Fatalf("createRequest in fips140=only mode = %v, want the SHA-1 panic as an error", err)
		}
		t.Logf("contained: %v", err)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCreateRequestFIPSOnly$", "-test.v")
	cmd.Env = append(os.Environ(), "REVOCATION_FIPS_CHILD=1", "GODEBUG=fips140=only")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "contained:") {
		t.Fatalf("child in fips140=only mode: %v\n%s", err, out)
	}
}
