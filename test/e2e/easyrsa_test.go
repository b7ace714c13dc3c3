package e2e

import (
	"bytes"
	"crypto/tls"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-dev/portcullis/internal/testpeer"
)

// TestEasyRSAImport builds a PKI with Debian's easy-rsa, adopts it with
// `ca import-easyrsa`, and checks with openssl that the adopted CA carries
// on: revocations (old and new) on a CRL that verifies, new certificates
// that chain to easy-rsa's ca.crt, and an untouched source directory.
func TestEasyRSAImport(t *testing.T) {
	t.Parallel()
	openssl := testpeer.Require(t, "openssl")
	easyrsa := testpeer.Require(t, testpeer.EasyRSA)

	src := t.TempDir()
	const erPass = "easyrsa-Pass-4d1e"
	env := []string{"EASYRSA_BATCH=1", "EASYRSA_PKI=" + filepath.Join(src, "pki")}
	for _, step := range [][]string{
		{"init-pki"},
		{"--passout=pass:" + erPass, "--passin=pass:" + erPass, "build-ca"},
		{"--passin=pass:" + erPass, "build-server-full", "srv1", "nopass"},
		{"--passin=pass:" + erPass, "build-client-full", "cli1", "nopass"},
		{"--passin=pass:" + erPass, "build-client-full", "cli2", "nopass"},
		{"--passin=pass:" + erPass, "revoke", "cli2", "keyCompromise"},
		{"--passin=pass:" + erPass, "gen-crl"},
	} {
		if r := execIn(t, src, env, nil, easyrsa, step...); r.code != 0 {
			t.Fatalf("easyrsa %s: %s", strings.Join(step, " "), r)
		}
	}
	erPKI := filepath.Join(src, "pki")
	erCA := filepath.Join(erPKI, "ca.crt")
	serials := map[string]string{}
	for _, n := range []string{"srv1", "cli1"} {
		serials[n] = serialHex(readCerts(t, filepath.Join(erPKI, "issued", n+".crt"))[0])
	}
	revokedFiles, _ := filepath.Glob(filepath.Join(erPKI, "revoked", "certs_by_serial", "*.crt"))
	if len(revokedFiles) != 1 {
		t.Fatalf("easy-rsa revoked/certs_by_serial: %v, want cli2's certificate", revokedFiles)
	}
	cli2File := revokedFiles[0]
	serials["cli2"] = serialHex(readCerts(t, cli2File)[0])
	srcBefore := hashTree(t, src, nil)

	passFile := filepath.Join(t.TempDir(), "easyrsa-pass")
	writeFile(t, passFile, erPass+"\n")
	ca := emptyCA(t)
	ca.ok(t, "ca", "import-easyrsa", src, "--easyrsa-passphrase-file", passFile)

	if got := readFile(t, ca.path("ca.crt")); !bytes.Equal(parseCerts(t, got)[0].Raw, readCerts(t, erCA)[0].Raw) {
		t.Errorf("the adopted ca.crt is not easy-rsa's")
	}
	// The adopted key is re-encrypted with our passphrase.
	mustRun(t, openssl, "pkey", "-in", ca.path("private", "ca.key"), "-passin", "file:"+ca.passFile, "-noout")

	type leaf struct{ Serial, Profile, Status, Reason string }
	got := map[string]leaf{}
	for _, v := range ca.list(t) {
		if v.Profile != "root" {
			got[v.Name] = leaf{v.Serial, v.Profile, v.Status, v.Reason}
		}
	}
	want := map[string]leaf{
		"srv1": {serials["srv1"], "server", "active", ""},
		"cli1": {serials["cli1"], "client", "active", ""},
		"cli2": {serials["cli2"], "client", "revoked", "keyCompromise"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ca list --json after import (-want +got):\n%s", diff)
	}
	// The leaf keys came along with their certificates.
	for _, n := range []string{"srv1", "cli1"} {
		if _, err := tls.LoadX509KeyPair(ca.path("issued", n+".crt"), ca.path("private", n+".key")); err != nil {
			t.Errorf("adopted %s: %v", n, err)
		}
	}

	ca.ok(t, "ca", "revoke", "cli1")
	crl := readCRL(t, ca.path("crl.pem"))
	var listed []string
	for _, e := range crl.RevokedCertificateEntries {
		listed = append(listed, e.SerialNumber.Text(16))
	}
	slices.Sort(listed)
	wantListed := []string{serials["cli1"], serials["cli2"]}
	slices.Sort(wantListed)
	if diff := cmp.Diff(wantListed, listed); diff != "" {
		t.Errorf("CRL serials (-want +got):\n%s", diff)
	}
	if err := crl.CheckSignatureFrom(readCerts(t, erCA)[0]); err != nil {
		t.Errorf("the new CRL is not signed by easy-rsa's CA: %v", err)
	}
	if r := mustRun(t, openssl, "crl", "-in", ca.path("crl.pem"), "-CAfile", erCA, "-verify", "-noout"); !strings.Contains(r.stdout+r.stderr, "verify OK") {
		t.Errorf("openssl crl -verify: %s", r)
	}
	crlCheck := []string{"verify", "-crl_check", "-CAfile", erCA, "-CRLfile", ca.path("crl.pem")}
	mustRun(t, openssl, append(crlCheck, ca.path("issued", "srv1.crt"))...)
	for _, c := range []string{ca.path("issued", "cli1.crt"), cli2File} {
		if r := run(t, openssl, append(crlCheck, c)...); r.code == 0 || !strings.Contains(r.stdout+r.stderr, "error 23") {
			t.Errorf("openssl verify -crl_check %s: %s\nwant error 23 (certificate revoked)", filepath.Base(c), r)
		}
	}

	// The adopted CA issues on. easy-rsa's ca.crt has a non-critical
	// basicConstraints, which -x509_strict refuses, so no -x509_strict.
	ca.ok(t, "ca", "issue", "server", "srv2", "--dns", "srv2.example.com")
	mustRun(t, openssl, "verify", "-purpose", "sslserver", "-CAfile", erCA, ca.path("issued", "srv2.crt"))
	mustRun(t, openssl, append(crlCheck, ca.path("issued", "srv2.crt"))...)

	if diff := cmp.Diff(srcBefore, hashTree(t, src, nil)); diff != "" {
		t.Errorf("the easy-rsa directory changed (-before +after):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(src, "pki", "portcullis.db")); err == nil {
		t.Errorf("import wrote into the easy-rsa directory")
	}
}
