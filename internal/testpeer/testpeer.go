// Package testpeer finds the external programs tests use as peers (openssl,
// curl, easy-rsa, …). A missing peer skips the test on a developer's
// machine but fails it under CI=true: CI installs every peer (`make test`),
// so a missing one there is a broken setup, never a reason to pass.
package testpeer

import (
	"os"
	"os/exec"
	"testing"
)

// EasyRSA is where Debian's easy-rsa package puts its script.
const EasyRSA = "/usr/share/easy-rsa/easyrsa"

// Require returns the path of program (a name on PATH or an absolute path),
// or ends the test: Fatal under CI=true, Skip elsewhere.
func Require(t testing.TB, program string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("peer %s is missing under CI=true (make test installs it): %v", program, err)
	}
	t.Skipf("peer %s not installed (make test installs it): %v", program, err)
	return ""
}
