package tlsconf_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/portcullis-dev/portcullis/internal/keystore"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/pki/pkitest"
	"github.com/portcullis-dev/portcullis/internal/tlsconf"
)

const storepass = "correct horse battery staple"

// encryptedKey is one key encrypted with keystore's production KDF cost,
// made once: every parse of it costs a few hundred milliseconds.
var encryptedKey = sync.OnceValues(func() (*ecdsa.PrivateKey, []byte) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	pemKey, err := keystore.Marshal(k, []byte(storepass))
	if err != nil {
		panic(err)
	}
	return k, pemKey
})

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		src  tlsconf.Source
		want string // error substring, "" for none
	}{
		{"cert+key", tlsconf.Source{CertFile: "c", KeyFile: "k"}, ""},
		{"cert+key+CA", tlsconf.Source{CertFile: "c", KeyFile: "k", CAFile: "ca"}, ""},
		{"keystore", tlsconf.Source{Keystore: "ks.p12", Storepass: "x"}, ""},
		{"empty", tlsconf.Source{}, "no identity"},
		{"CA only", tlsconf.Source{CAFile: "ca"}, "no identity"},
		{"cert only", tlsconf.Source{CertFile: "c"}, "without a key"},
		{"key only", tlsconf.Source{KeyFile: "k"}, "without a cert"},
		{"keystore and cert", tlsconf.Source{Keystore: "ks", CertFile: "c"}, "not both"},
		{"keystore and key", tlsconf.Source{Keystore: "ks", KeyFile: "k"}, "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.src.Validate()
			if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%+v.Validate() = %v, want %q", tt.src, err, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	root := newCA(t, "Fleet Root")
	inter := root.intermediate(t, "Fleet Issuing")
	cert, key := inter.issue(t, leaf{cn: "device-1"})
	encKey, encPEM := encryptedKey()
	encCert, _ := inter.issue(t, leaf{cn: "device-enc", key: encKey})
	secKeyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ecparam := []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n")
	sec1 := append(ecparam, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: secKeyDER})...)
	p12, err := pkcs12.Modern.Encode(key, cert, []*x509.Certificate{inter.cert}, storepass)
	if err != nil {
		t.Fatal(err)
	}
	p12Empty, err := pkcs12.Modern.Encode(key, cert, []*x509.Certificate{inter.cert}, "")
	if err != nil {
		t.Fatal(err)
	}
	// A bundle in an awkward order: intermediate, key, leaf.
	bundle := append(append(certPEM(inter.cert), keyPEM(t, key)...), certPEM(cert)...)

	tests := []struct {
		name   string
		files  map[string][]byte
		src    tlsconf.Source // paths relative to the test's directory
		wantCN string
		chain  int
	}{
		{"cert+key", map[string][]byte{"c.pem": certPEM(cert, inter.cert), "k.pem": keyPEM(t, key)},
			tlsconf.Source{CertFile: "c.pem", KeyFile: "k.pem"}, "device-1", 2},
		{"SEC 1 key after EC PARAMETERS", map[string][]byte{"c.pem": certPEM(cert), "k.pem": sec1},
			tlsconf.Source{CertFile: "c.pem", KeyFile: "k.pem"}, "device-1", 1},
		{"encrypted PKCS#8 key", map[string][]byte{"c.pem": certPEM(encCert, inter.cert), "k.pem": encPEM},
			tlsconf.Source{CertFile: "c.pem", KeyFile: "k.pem", Storepass: storepass}, "device-enc", 2},
		{"PEM bundle keystore", map[string][]byte{"id.pem": bundle},
			tlsconf.Source{Keystore: "id.pem"}, "device-1", 2},
		{"PKCS#12 keystore", map[string][]byte{"id.p12": p12},
			tlsconf.Source{Keystore: "id.p12", Storepass: storepass}, "device-1", 2},
		{"PKCS#12 detected by content", map[string][]byte{"identity": p12},
			tlsconf.Source{Keystore: "identity", Storepass: storepass}, "device-1", 2},
		{"PKCS#12 empty password", map[string][]byte{"id.pfx": p12Empty},
			tlsconf.Source{Keystore: "id.pfx"}, "device-1", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				writeFile(t, dir, name, data)
			}
			src := tt.src
			src.CertFile, src.KeyFile, src.Keystore = join(dir, src.CertFile), join(dir, src.KeyFile), join(dir, src.Keystore)
			src.CAFile = writeFile(t, dir, "ca.pem", certPEM(root.cert))
			s := mustLoad(t, src, nil)

			c := s.Certificate()
			if c.Leaf == nil || c.Leaf.Subject.CommonName != tt.wantCN {
				t.Fatalf("Certificate().Leaf = %v, want CN %q", c.Leaf, tt.wantCN)
			}
			if len(c.Certificate) != tt.chain {
				t.Errorf("chain has %d certificates, want %d", len(c.Certificate), tt.chain)
			}
			if !c.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(c.PrivateKey.(*ecdsa.PrivateKey).Public()) {
				t.Error("private key does not match leaf")
			}
			if !s.NotAfter().Equal(c.Leaf.NotAfter) {
				t.Errorf("NotAfter() = %v, want %v", s.NotAfter(), c.Leaf.NotAfter)
			}
			if got := s.RootCertificates(); len(got) != 1 || !got[0].Equal(root.cert) {
				t.Errorf("RootCertificates() = %v, want the root", got)
			}
			if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: s.Roots(), Intermediates: pool(inter.cert), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("leaf does not verify against Roots(): %v", err)
			}
			if when, err := s.LastReload(); when.IsZero() || err != nil {
				t.Errorf("LastReload() = %v, %v; want a time, nil", when, err)
			}
		})
	}
}

func TestLoadSystemRoots(t *testing.T) {
	ca := newCA(t, "CA")
	cert, key := ca.issue(t, leaf{cn: "x"})
	dir := t.TempDir()
	s := mustLoad(t, tlsconf.Source{CertFile: writeFile(t, dir, "c", certPEM(cert)), KeyFile: writeFile(t, dir, "k", keyPEM(t, key))}, nil)
	if s.Roots() == nil || s.RootCertificates() != nil {
		t.Errorf("Roots() = %v, RootCertificates() = %v; want the system pool, nil", s.Roots(), s.RootCertificates())
	}
}

func TestLoadExpiredWarns(t *testing.T) {
	ca := newCA(t, "CA")
	cert, key := ca.issue(t, leaf{cn: "old", notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-24 * time.Hour)})
	log, buf := newLog()
	s := mustLoad(t, pairSource(t, t.TempDir(), []*x509.Certificate{cert}, key, ca.cert), log)
	if s.Certificate().Leaf.Subject.CommonName != "old" {
		t.Fatalf("expired certificate not loaded")
	}
	if out := buf.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "expired") {
		t.Errorf("log = %q, want a WARN about expiry", out)
	}
}

// TestReloadFailureKeepsState breaks one file at a time: Reload must fail
// saying why, and the store must keep serving the previous state.
func TestReloadFailureKeepsState(t *testing.T) {
	ca := newCA(t, "CA")
	other := newCA(t, "Other CA")
	cert, key := ca.issue(t, leaf{cn: "device-1"})
	encKey, encPEM := encryptedKey()
	encCert, _ := ca.issue(t, leaf{cn: "device-enc", key: encKey})
	p12, err := pkcs12.Modern.Encode(key, cert, nil, storepass)
	if err != nil {
		t.Fatal(err)
	}
	badDER := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})

	tests := []struct {
		name     string
		keystore bool                                   // use a PKCS#12 keystore instead of cert+key
		breakIt  func(t *testing.T, src tlsconf.Source) // damage a working source
		want     string
		is       error
	}{
		{"key does not match certificate", false, func(t *testing.T, src tlsconf.Source) {
			replace(t, src.KeyFile, keyPEM(t, newKey(t)))
		}, "does not match", tlsconf.ErrKeyMismatch},
		{"unparsable certificate", false, func(t *testing.T, src tlsconf.Source) {
			replace(t, src.CertFile, badDER)
		}, "PEM block 1", nil},
		{"certificate file not PEM", false, func(t *testing.T, src tlsconf.Source) {
			replace(t, src.CertFile, []byte("hello"))
		}, "no PEM CERTIFICATE block", tlsconf.ErrNoCertificate},
		{"unparsable key", false, func(t *testing.T, src tlsconf.Source) {
			replace(t, src.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}}))
		}, "malformed private key", keystore.ErrMalformedKey},
		{"encrypted key without storepass", false, func(t *testing.T, src tlsconf.Source) {
			replace(t, src.CertFile, certPEM(encCert))
			replace(t, src.KeyFile, encPEM)
		}, "no passphrase", keystore.ErrNoPassphrase},
		{"missing key file", false, func(t *testing.T, src tlsconf.Source) {
			if err := os.Remove(src.KeyFile); err != nil {
				t.Fatal(err)
			}
		}, "no such file", os.ErrNotExist},
		{"empty CA bundle", false, func(t *testing.T, src tlsconf.Source) {
			replace(t, src.CAFile, nil)
		}, "CA bundle", tlsconf.ErrNoCertificate},
		{"CA bundle holding only a key", false, func(t *testing.T, src tlsconf.Source) {
			replace(t, src.CAFile, keyPEM(t, newKey(t)))
		}, "no PEM CERTIFICATE block", tlsconf.ErrNoCertificate},
		{"damaged CA bundle", false, func(t *testing.T, src tlsconf.Source) {
			replace(t, src.CAFile, append(certPEM(other.cert), badDER...))
		}, "PEM block 2", nil},
		{"PKCS#12 wrong password", true, func(t *testing.T, src tlsconf.Source) {
			p12, err := pkcs12.Modern.Encode(key, cert, nil, "other")
			if err != nil {
				t.Fatal(err)
			}
			replace(t, src.Keystore, p12)
		}, "password incorrect", pkcs12.ErrIncorrectPassword},
		{"PKCS#12 truncated", true, func(t *testing.T, src tlsconf.Source) {
			replace(t, src.Keystore, p12[:len(p12)/2])
		}, "PKCS#12", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			src := pairSource(t, dir, []*x509.Certificate{cert}, key, ca.cert)
			if tt.keystore {
				src = tlsconf.Source{Keystore: writeFile(t, dir, "id.p12", p12), Storepass: storepass, CAFile: src.CAFile}
			}
			s := mustLoad(t, src, nil)
			before, roots := s.Certificate(), s.Roots()
			okAt, _ := s.LastReload()

			tt.breakIt(t, src)
			err := s.Reload()
			if err == nil || !strings.Contains(err.Error(), tt.want) || tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("Reload() = %v, want an error containing %q (is %v)", err, tt.want, tt.is)
			}
			if s.Certificate() != before || s.Roots() != roots {
				t.Error("failed Reload changed the certificate or roots")
			}
			if at, lastErr := s.LastReload(); !at.Equal(okAt) || lastErr != err {
				t.Errorf("LastReload() = %v, %v; want %v, %v", at, lastErr, okAt, err)
			}
			// The files fixed, the next reload succeeds.
			if tt.keystore {
				replace(t, src.Keystore, p12)
			} else {
				replace(t, src.CertFile, certPEM(cert))
				replace(t, src.KeyFile, keyPEM(t, key))
			}
			replace(t, src.CAFile, certPEM(ca.cert))
			if err := s.Reload(); err != nil {
				t.Fatalf("Reload() after repair = %v", err)
			}
			if _, err := s.LastReload(); err != nil {
				t.Errorf("LastReload() error after repair = %v", err)
			}
		})
	}
}

func TestLoadEncryptedWrongStorepass(t *testing.T) {
	ca := newCA(t, "CA")
	k, encPEM := encryptedKey()
	cert, _ := ca.issue(t, leaf{cn: "x", key: k})
	dir := t.TempDir()
	src := tlsconf.Source{CertFile: writeFile(t, dir, "c", certPEM(cert)), KeyFile: writeFile(t, dir, "k", encPEM), Storepass: "wrong"}
	if _, err := tlsconf.Load(src, nil); !errors.Is(err, keystore.ErrBadPassphrase) {
		t.Errorf("Load(wrong storepass) = %v, want %v", err, keystore.ErrBadPassphrase)
	}
}

func TestReloadUnchangedKeepsCertificate(t *testing.T) {
	w := newWorld(t)
	before := w.server.Certificate()
	at, _ := w.server.LastReload()
	if err := w.server.Reload(); err != nil {
		t.Fatal(err)
	}
	if w.server.Certificate() != before {
		t.Error("Reload of unchanged files replaced the certificate")
	}
	if now, _ := w.server.LastReload(); !now.After(at) && !now.Equal(at) {
		t.Errorf("LastReload() = %v, want not before %v", now, at)
	}
}

func join(dir, name string) string {
	if name == "" {
		return ""
	}
	return filepath.Join(dir, name)
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func TestAnonymousSource(t *testing.T) {
	dir := t.TempDir()
	ca := writeFile(t, dir, "ca.pem", certPEM(newCA(t, "Anon Root").cert))
	s, err := tlsconf.Load(tlsconf.Source{CAFile: ca, Anonymous: true}, nil)
	if err != nil {
		t.Fatalf("Load(anonymous) = %v", err)
	}
	if c, _ := s.GetClientCertificate(nil); c == nil || len(c.Certificate) != 0 {
		t.Errorf("anonymous client certificate = %v, want an empty one", c)
	}
	if !s.NotAfter().IsZero() {
		t.Errorf("NotAfter() = %v, want zero", s.NotAfter())
	}
	if _, err := tlsconf.Load(tlsconf.Source{Anonymous: true}, nil); err == nil {
		t.Error("Load(anonymous without a CA bundle) succeeded")
	}
	if _, err := tlsconf.Load(tlsconf.Source{CAFile: ca, CertFile: ca, Anonymous: true}, nil); err == nil {
		t.Error("Load(anonymous with a cert) succeeded")
	}
}

// TestLoadDamagedPEM: a block that does not decode, in the middle of a
// file or at its end, fails the load naming that block, whichever file
// holds it. pem.Decode alone passes over such a block, so a CA bundle of
// [damaged root, good root] used to load as the good root alone.
func TestLoadDamagedPEM(t *testing.T) {
	ca, other := newCA(t, "CA"), newCA(t, "Other CA")
	cert, key := ca.issue(t, leaf{cn: "device-1"})
	leafPEM, keyB := certPEM(cert), keyPEM(t, key)
	caPEM, otherPEM := certPEM(ca.cert), certPEM(other.cert)
	ecParams := []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n")
	bad, cat := pkitest.DamagePEM, pkitest.Cat
	tests := []struct {
		name  string
		file  string // the file given data: "cert", "key", "ca" or "keystore"
		data  []byte
		block int // the block the error names
	}{
		{"CA bundle, damaged first", "ca", cat(bad(otherPEM), caPEM), 1},
		{"CA bundle, damaged in the middle", "ca", cat(caPEM, bad(otherPEM), otherPEM), 2},
		{"CA bundle, damaged at the end", "ca", cat(caPEM, otherPEM, bad(otherPEM)), 3},
		{"chain, damaged in the middle", "cert", cat(leafPEM, bad(caPEM), otherPEM), 2},
		{"chain, damaged at the end", "cert", cat(leafPEM, caPEM, bad(otherPEM)), 3},
		{"key file, damaged in the middle", "key", cat(ecParams, bad(keyB), keyB), 2},
		{"key file, damaged at the end", "key", cat(keyB, bad(keyB)), 2},
		{"keystore bundle, damaged in the middle", "keystore", cat(leafPEM, bad(caPEM), keyB), 2},
		{"keystore bundle, damaged at the end", "keystore", cat(leafPEM, keyB, bad(caPEM)), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string][]byte{"cert": leafPEM, "key": keyB, "ca": caPEM, "keystore": cat(leafPEM, keyB)}
			files[tt.file] = tt.data
			path := func(name string) string { return writeFile(t, dir, name+".pem", files[name]) }
			src := tlsconf.Source{CertFile: path("cert"), KeyFile: path("key"), CAFile: path("ca")}
			if tt.file == "keystore" {
				src = tlsconf.Source{Keystore: path("keystore"), CAFile: src.CAFile}
			}
			_, err := tlsconf.Load(src, nil)
			var pe *pki.PEMError
			if !errors.As(err, &pe) || pe.Block != tt.block {
				t.Errorf("Load(%s) = %v, want a PEM error at block %d", tt.name, err, tt.block)
			}
		})
	}
}
