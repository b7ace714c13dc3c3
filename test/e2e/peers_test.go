package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-dev/portcullis/internal/testpeer"
)

// TestOpenSSLPeer checks with openssl 3 what `ca init`, `ca issue`, `ca crl`,
// `ca revoke` and `ca export` write: chains, purposes, CRL signatures and
// numbers, PKCS#12 and encrypted keys, for ECDSA and RSA CAs, two-tier and
// root-only.
func TestOpenSSLPeer(t *testing.T) {
	t.Parallel()
	openssl := testpeer.Require(t, "openssl")
	for _, tc := range []struct {
		name     string
		init     []string
		wantRSA  bool
		rootOnly bool
	}{
		{name: "p256", init: nil},
		{name: "p256-root-only", init: []string{"--root-only"}, rootOnly: true},
		{name: "rsa2048", init: []string{"--key-type", "rsa2048"}, wantRSA: true},
		{name: "rsa2048-root-only", init: []string{"--key-type", "rsa2048", "--root-only"}, wantRSA: true, rootOnly: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ca := newCA(t, tc.init...)
			p := &opensslPKI{t: t, openssl: openssl, ca: ca, rootOnly: tc.rootOnly}
			p.checkLayout(tc.wantRSA)
			ca.ok(t, "ca", "issue", "server", "web", "--dns", "web.example.com", "--ip", "127.0.0.1")
			ca.ok(t, "ca", "issue", "client", "alice", "--email", "alice@example.com")
			ca.ok(t, "ca", "issue", "device", "dev1")
			p.checkPurposes()
			p.checkCRLs()
			p.checkPKCS12()
			p.checkCAKeys()
			p.checkPEMExport()
		})
	}
}

// opensslPKI groups the openssl checks of one CA.
type opensslPKI struct {
	t        *testing.T
	openssl  string
	ca       *testCA
	rootOnly bool
}

func (p *opensslPKI) run(args ...string) result {
	p.t.Helper()
	return run(p.t, p.openssl, args...)
}

func (p *opensslPKI) mustRun(args ...string) result {
	p.t.Helper()
	return mustRun(p.t, p.openssl, args...)
}

// verifyArgs is `openssl verify` of a leaf against the root, with the
// intermediate as untrusted when there is one.
func (p *opensslPKI) verifyArgs(flags ...string) []string {
	args := append([]string{"verify"}, flags...)
	args = append(args, "-CAfile", p.ca.path("ca.crt"))
	if !p.rootOnly {
		args = append(args, "-untrusted", p.ca.path("intermediate.crt"))
	}
	return args
}

func (p *opensslPKI) checkLayout(wantRSA bool) {
	t := p.t
	t.Helper()
	_, err := os.Stat(p.ca.path("intermediate.crt"))
	if gotInter := err == nil; gotInter == p.rootOnly {
		t.Errorf("intermediate.crt exists = %v, want %v", gotInter, !p.rootOnly)
	}
	root := readCerts(t, p.ca.path("ca.crt"))[0]
	if _, isRSA := root.PublicKey.(*rsa.PublicKey); isRSA != wantRSA {
		t.Errorf("root key is %T, want RSA = %v", root.PublicKey, wantRSA)
	}
	bundle := readCerts(t, p.ca.path("ca-bundle.crt"))
	if want := map[bool]int{true: 1, false: 2}[p.rootOnly]; len(bundle) != want {
		t.Errorf("ca-bundle.crt holds %d certificates, want %d", len(bundle), want)
	}
	// The CA certificates themselves pass openssl's strict checks.
	p.mustRun("verify", "-x509_strict", "-CAfile", p.ca.path("ca.crt"), p.ca.path("ca.crt"))
	if !p.rootOnly {
		p.mustRun("verify", "-x509_strict", "-CAfile", p.ca.path("ca.crt"), p.ca.path("intermediate.crt"))
	}
	for _, key := range []string{"ca.key", "intermediate.key"} {
		if key == "intermediate.key" && p.rootOnly {
			continue
		}
		checkMode(t, p.ca.path("private", key), 0o600)
	}
	checkMode(t, p.ca.path("private"), 0o700)
}

// checkMode checks the permission bits of a file holding a key.
func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Error(err)
		return
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

// checkPurposes verifies each leaf for its purpose, and refuses it for the
// other one.
func (p *opensslPKI) checkPurposes() {
	t := p.t
	for _, c := range []struct {
		name, purpose, wrong string
	}{
		{"web", "sslserver", "sslclient"},
		{"alice", "sslclient", "sslserver"},
		{"dev1", "sslclient", "sslserver"},
	} {
		leaf := p.ca.path("issued", c.name+".crt")
		checkMode(t, p.ca.path("private", c.name+".key"), 0o600)
		r := p.mustRun(append(p.verifyArgs("-x509_strict", "-purpose", c.purpose), leaf)...)
		if !strings.Contains(r.stdout, leaf+": OK") {
			t.Errorf("openssl verify -purpose %s %s: stdout %q, want OK", c.purpose, c.name, r.stdout)
		}
		if r := p.run(append(p.verifyArgs("-x509_strict", "-purpose", c.wrong), leaf)...); r.code == 0 {
			t.Errorf("openssl verify -purpose %s %s succeeded, want unsupported purpose:\n%s", c.wrong, c.name, r)
		}
		// The chain file holds what a TLS peer sends: leaf, then the
		// intermediate if any.
		chain := readCerts(t, p.ca.path("issued", c.name+".chain.crt"))
		if want := map[bool]int{true: 1, false: 2}[p.rootOnly]; len(chain) != want {
			t.Errorf("%s.chain.crt holds %d certificates, want %d", c.name, len(chain), want)
		}
	}
	dev := readCerts(t, p.ca.path("issued", "dev1.crt"))[0]
	if len(dev.URIs) != 1 || dev.URIs[0].String() != "spiffe://portcullis.internal/device/dev1" {
		t.Errorf("dev1 URIs = %v, want [spiffe://portcullis.internal/device/dev1]", dev.URIs)
	}
}

// crlNumber reads the CRL number with openssl.
func (p *opensslPKI) crlNumber() *big.Int {
	t := p.t
	t.Helper()
	r := p.mustRun("crl", "-in", p.ca.path("crl.pem"), "-noout", "-crlnumber")
	hex, ok := strings.CutPrefix(strings.TrimSpace(r.stdout), "crlNumber=0x")
	n, ok2 := new(big.Int).SetString(hex, 16)
	if !ok || !ok2 {
		t.Fatalf("openssl crl -crlnumber: %q, want crlNumber=0x…", r.stdout)
	}
	return n
}

func (p *opensslPKI) verifyCRL() {
	p.t.Helper()
	r := p.mustRun("crl", "-in", p.ca.path("crl.pem"), "-CAfile", p.ca.path("ca-bundle.crt"), "-verify", "-noout")
	if !strings.Contains(r.stdout+r.stderr, "verify OK") {
		p.t.Errorf("openssl crl -verify: %s, want verify OK", r)
	}
}

// checkCRLs follows the CRL through `ca crl`, `ca revoke` and `ca crl`:
// each one verifies and has a larger number, and the revoked leaf fails
// `openssl verify -crl_check` with error 23 while the others pass.
func (p *opensslPKI) checkCRLs() {
	t := p.t
	p.verifyCRL()
	last := p.crlNumber()
	steps := [][]string{
		{"ca", "crl"},
		{"ca", "revoke", "alice", "--reason", "keyCompromise"},
		{"ca", "crl"},
	}
	for _, step := range steps {
		p.ca.ok(t, step...)
		p.verifyCRL()
		n := p.crlNumber()
		if n.Cmp(last) <= 0 {
			t.Errorf("after %q the CRL number is %v, want more than %v", step, n, last)
		}
		last = n
	}
	alice := readCerts(t, p.ca.path("issued", "alice.crt"))[0]
	crl := readCRL(t, p.ca.path("crl.pem"))
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(alice.SerialNumber) != 0 ||
		crl.RevokedCertificateEntries[0].ReasonCode != 1 {
		t.Errorf("CRL entries = %+v, want alice (%s) with reason 1 (keyCompromise)", crl.RevokedCertificateEntries, serialHex(alice))
	}
	crlCheck := p.verifyArgs("-x509_strict", "-crl_check", "-CRLfile", p.ca.path("crl.pem"))
	r := p.run(append(crlCheck, p.ca.path("issued", "alice.crt"))...)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "error 23") {
		t.Errorf("openssl verify -crl_check alice: %s\nwant error 23 (certificate revoked)", r)
	}
	p.mustRun(append(crlCheck, p.ca.path("issued", "web.crt"), p.ca.path("issued", "dev1.crt"))...)
}

// checkPKCS12 exports web as PKCS#12 and reads it back with openssl.
func (p *opensslPKI) checkPKCS12() {
	t := p.t
	tmp := t.TempDir()
	pw, p12 := filepath.Join(tmp, "p12pass"), filepath.Join(tmp, "web.p12")
	writeFile(t, pw, "e2e-p12-password\n")
	p.ca.ok(t, "ca", "export", "web", "--p12", "--password-file", pw, "--out", p12)
	p.mustRun("pkcs12", "-info", "-in", p12, "-passin", "file:"+pw, "-noout")
	if r := p.run("pkcs12", "-info", "-in", p12, "-passin", "pass:wrong-password", "-noout"); r.code == 0 {
		t.Errorf("openssl pkcs12 with a wrong password succeeded:\n%s", r)
	}
	web := readCerts(t, p.ca.path("issued", "web.crt"))[0]
	leaf := parseCerts(t, []byte(p.mustRun("pkcs12", "-in", p12, "-passin", "file:"+pw, "-nokeys", "-clcerts").stdout))
	if len(leaf) != 1 || !leaf[0].Equal(web) {
		t.Errorf("PKCS#12 leaf: got %d certificates, first serial %s; want web (%s)", len(leaf), serialHex(leaf[0]), serialHex(web))
	}
	// The CA certificates ride along so importers can build the path.
	cas := parseCerts(t, []byte(p.mustRun("pkcs12", "-in", p12, "-passin", "file:"+pw, "-nokeys", "-cacerts").stdout))
	root := readCerts(t, p.ca.path("ca.crt"))[0]
	if !slices.ContainsFunc(cas, root.Equal) {
		t.Errorf("PKCS#12 CA certificates do not include the root")
	}
	keyPEM := p.mustRun("pkcs12", "-in", p12, "-passin", "file:"+pw, "-nocerts", "-nodes").stdout
	p.samePublicKey(keyPEM, web)
}

// samePublicKey checks that a PEM private key (openssl output) is the key
// of cert, by comparing what `openssl pkey -pubout` prints.
func (p *opensslPKI) samePublicKey(keyPEM string, cert *x509.Certificate) {
	t := p.t
	t.Helper()
	f := filepath.Join(t.TempDir(), "key.pem")
	writeFile(t, f, keyPEM)
	pub := p.mustRun("pkey", "-in", f, "-pubout").stdout
	b, _ := pem.Decode([]byte(pub))
	if b == nil {
		t.Fatalf("openssl pkey -pubout: no PEM in %q", pub)
	}
	if !bytes.Equal(b.Bytes, cert.RawSubjectPublicKeyInfo) {
		t.Errorf("the key does not belong to certificate %s", serialHex(cert))
	}
}

// checkCAKeys reads the encrypted CA keys with openssl: the right
// passphrase opens them, a wrong one does not.
func (p *opensslPKI) checkCAKeys() {
	t := p.t
	keys := map[string]string{"ca.key": "ca.crt"}
	if !p.rootOnly {
		keys["intermediate.key"] = "intermediate.crt"
	}
	wrong := filepath.Join(t.TempDir(), "wrong")
	writeFile(t, wrong, "not-the-passphrase\n")
	for key, crt := range keys {
		path := p.ca.path("private", key)
		if data := readFile(t, path); !bytes.HasPrefix(data, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----")) {
			t.Errorf("private/%s is not an encrypted PKCS#8 key", key)
		}
		p.mustRun("pkey", "-in", path, "-passin", "file:"+p.ca.passFile, "-noout")
		if r := p.run("pkey", "-in", path, "-passin", "file:"+wrong, "-noout"); r.code == 0 {
			t.Errorf("openssl pkey -in private/%s with a wrong passphrase succeeded", key)
		}
		pub := p.mustRun("pkey", "-in", path, "-passin", "file:"+p.ca.passFile, "-pubout").stdout
		b, _ := pem.Decode([]byte(pub))
		if cert := readCerts(t, p.ca.path(crt))[0]; b == nil || !bytes.Equal(b.Bytes, cert.RawSubjectPublicKeyInfo) {
			t.Errorf("private/%s is not the key of %s", key, crt)
		}
	}
}

// checkPEMExport reads `ca export --with-key` (and --with-root) with openssl.
func (p *opensslPKI) checkPEMExport() {
	t := p.t
	out := filepath.Join(t.TempDir(), "web-full.pem")
	p.ca.ok(t, "ca", "export", "web", "--with-key", "--with-root", "--out", out)
	checkMode(t, out, 0o600)
	p.mustRun("pkey", "-in", out, "-noout")
	web := readCerts(t, p.ca.path("issued", "web.crt"))[0]
	p.samePublicKey(string(readFile(t, out)), web)
	chain := readCerts(t, out)
	want := []string{serialHex(web)}
	if !p.rootOnly {
		want = append(want, serialHex(readCerts(t, p.ca.path("intermediate.crt"))[0]), serialHex(readCerts(t, p.ca.path("ca.crt"))[0]))
	}
	var got []string
	for _, c := range chain {
		got = append(got, serialHex(c))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("--with-key --with-root export chain (-want +got):\n%s", diff)
	}
	// openssl builds the path from the exported file alone.
	mustRun(t, p.openssl, "verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", p.ca.path("ca.crt"), "-untrusted", out, out)
}

// TestOpenSSLSignsCSR is the reverse direction: openssl makes the key and
// the CSR, `ca sign` certifies it, openssl verifies the result, and the CA
// builds its own extensions whatever the CSR asked for.
func TestOpenSSLSignsCSR(t *testing.T) {
	t.Parallel()
	openssl := testpeer.Require(t, "openssl")
	ca := newCA(t)
	tmp := t.TempDir()
	req := func(name string, args ...string) string {
		t.Helper()
		csr := filepath.Join(tmp, name+".csr")
		mustRun(t, openssl, append([]string{"req", "-new", "-nodes", "-keyout", filepath.Join(tmp, name+".key"), "-out", csr}, args...)...)
		return csr
	}
	verify := func(purpose, name string) *x509.Certificate {
		t.Helper()
		leaf := ca.path("issued", name+".crt")
		mustRun(t, openssl, "verify", "-x509_strict", "-purpose", purpose, "-CAfile", ca.path("ca.crt"), "-untrusted", ca.path("intermediate.crt"), leaf)
		return readCerts(t, leaf)[0]
	}
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"}

	t.Run("ecdsa-with-san", func(t *testing.T) {
		csr := req("host", append(ec, "-subj", "/CN=host.example.com", "-addext", "subjectAltName=DNS:host.example.com")...)
		ca.ok(t, "ca", "sign", "--csr", csr, "--profile", "server")
		c := verify("sslserver", "host.example.com")
		if diff := cmp.Diff([]string{"host.example.com"}, c.DNSNames); diff != "" {
			t.Errorf("DNS names (-want +got):\n%s", diff)
		}
		if _, ok := c.PublicKey.(*ecdsa.PublicKey); !ok {
			t.Errorf("public key %T, want the CSR's ECDSA key", c.PublicKey)
		}
		checkKeyOf(t, openssl, filepath.Join(tmp, "host.key"), c)
		if _, err := os.Stat(ca.path("private", "host.example.com.key")); err == nil {
			t.Errorf("ca sign wrote a private key; the requester holds it")
		}
	})

	t.Run("rsa-cn-only", func(t *testing.T) {
		csr := req("cnonly", "-newkey", "rsa:2048", "-subj", "/CN=cnonly.example.com")
		ca.ok(t, "ca", "sign", "--csr", csr, "--profile", "server")
		c := verify("sslserver", "cnonly.example.com")
		if diff := cmp.Diff([]string{"cnonly.example.com"}, c.DNSNames); diff != "" {
			t.Errorf("a CN-only CSR for a server: DNS names (-want +got):\n%s", diff)
		}
		checkKeyOf(t, openssl, filepath.Join(tmp, "cnonly.key"), c)
	})

	t.Run("extensions-not-copied", func(t *testing.T) {
		csr := req("greedy", append(ec, "-subj", "/CN=greedy.example.com",
			"-addext", "subjectAltName=DNS:greedy.example.com",
			"-addext", "extendedKeyUsage=codeSigning,serverAuth,clientAuth",
			"-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
			"-addext", "basicConstraints=critical,CA:FALSE",
			"-addext", "nsComment=smuggled",
			"-addext", "1.3.6.1.4.1.55555.1=ASN1:UTF8String:smuggled")...)
		ca.ok(t, "ca", "sign", "--csr", csr, "--profile", "server")
		c := verify("sslserver", "greedy.example.com")
		checkProfileExtensions(t, c, x509.ExtKeyUsageServerAuth)
		text := mustRun(t, openssl, "x509", "-in", ca.path("issued", "greedy.example.com.crt"), "-noout", "-text").stdout
		for _, bad := range []string{"Code Signing", "Certificate Sign", "CRL Sign", "smuggled", "TLS Web Client Authentication"} {
			if strings.Contains(text, bad) {
				t.Errorf("openssl x509 -text shows %q, which the CSR asked for and the server profile does not allow", bad)
			}
		}
	})

	t.Run("client-profile-with-name", func(t *testing.T) {
		csr := req("bob", append(ec, "-subj", "/CN=Bob Example", "-addext", "extendedKeyUsage=serverAuth")...)
		ca.ok(t, "ca", "sign", "--csr", csr, "--profile", "client", "--name", "bob")
		c := verify("sslclient", "bob")
		if c.Subject.CommonName != "bob" {
			t.Errorf("CN = %q, want the --name bob", c.Subject.CommonName)
		}
		checkProfileExtensions(t, c, x509.ExtKeyUsageClientAuth)
	})

	t.Run("device-der-on-stdin", func(t *testing.T) {
		csr := req("sensor", append(ec, "-subj", "/CN=sensor-7")...)
		der := mustRun(t, openssl, "req", "-in", csr, "-outform", "DER").stdout
		r := execIn(t, "", nil, []byte(der), bin, ca.args("ca", "sign", "--csr", "-", "--profile", "device")...)
		if r.code != 0 {
			t.Fatalf("ca sign --csr - (DER on stdin): %s", r)
		}
		c := verify("sslclient", "sensor-7")
		if len(c.URIs) != 1 || c.URIs[0].String() != "spiffe://portcullis.internal/device/sensor-7" {
			t.Errorf("device URIs = %v, want spiffe://portcullis.internal/device/sensor-7", c.URIs)
		}
		checkProfileExtensions(t, c, x509.ExtKeyUsageClientAuth)
	})
}

// checkKeyOf checks with openssl that the requester's key file is the key
// of the issued certificate.
func checkKeyOf(t *testing.T, openssl, keyFile string, c *x509.Certificate) {
	t.Helper()
	pub := mustRun(t, openssl, "pkey", "-in", keyFile, "-pubout").stdout
	b, _ := pem.Decode([]byte(pub))
	if b == nil || !bytes.Equal(b.Bytes, c.RawSubjectPublicKeyInfo) {
		t.Errorf("certificate %s does not certify the CSR's key %s", serialHex(c), keyFile)
	}
}

// Extension OIDs a leaf may carry: the ones the profiles set.
var leafExtensions = map[string]bool{
	"2.5.29.15":         true, // keyUsage
	"2.5.29.37":         true, // extKeyUsage
	"2.5.29.19":         true, // basicConstraints
	"2.5.29.14":         true, // subjectKeyIdentifier
	"2.5.29.35":         true, // authorityKeyIdentifier
	"2.5.29.17":         true, // subjectAltName
	"2.5.29.31":         true, // cRLDistributionPoints
	"1.3.6.1.5.5.7.1.1": true, // authorityInfoAccess
}

// checkProfileExtensions checks that a leaf carries only the extensions of
// its profile: digitalSignature, the one EKU, not a CA.
func checkProfileExtensions(t *testing.T, c *x509.Certificate, eku x509.ExtKeyUsage) {
	t.Helper()
	if c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage = %b, want digitalSignature only", c.KeyUsage)
	}
	if diff := cmp.Diff([]x509.ExtKeyUsage{eku}, c.ExtKeyUsage); diff != "" || len(c.UnknownExtKeyUsage) > 0 {
		t.Errorf("extended key usage (-want +got):\n%s unknown: %v", diff, c.UnknownExtKeyUsage)
	}
	if c.IsCA || !c.BasicConstraintsValid {
		t.Errorf("basicConstraints: IsCA %v, valid %v; want CA:FALSE present", c.IsCA, c.BasicConstraintsValid)
	}
	for _, ext := range c.Extensions {
		if !leafExtensions[ext.Id.String()] {
			t.Errorf("extension %s (critical %v) is not one the profile sets", ext.Id, ext.Critical)
		}
	}
}
