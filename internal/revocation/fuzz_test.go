package revocation

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the CRL seeds in testdata/")

// seeds are the fuzz seeds: good-* must parse, bad-* must not.
func seeds(t *testing.T) map[string][]byte {
	ca := newCA(t, "Seed CA")
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	leaf := ca.leaf(t, "seed")
	entries := []x509.RevocationListEntry{revokedEntry(leaf, now, 1), {SerialNumber: big.NewInt(0x7f), RevocationTime: now},
		{SerialNumber: big.NewInt(0x80), RevocationTime: now, ReasonCode: 6}}
	der := ca.crlDER(t, 42, now, now.Add(7*24*time.Hour), entries...)
	withExt := func(id []int, critical bool, v []byte) []byte {
		return ca.crlWith(t, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(time.Hour),
			ExtraExtensions: []pkix.Extension{{Id: id, Critical: critical, Value: v}}})
	}
	return map[string][]byte{
		"good-entries.der":  der,
		"good-entries.pem":  pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}),
		"good-empty.der":    ca.crlDER(t, 1, now, now.Add(time.Hour)),
		"good-idp.der":      withExt(oidIDP, true, idp(t, "http://crl.example/a.crl", map[uint8]bool{1: true})),
		"bad-delta.der":     withExt(oidDeltaCRL, true, []byte{2, 1, 1}),
		"bad-idp-ca.der":    withExt(oidIDP, true, idp(t, "", map[uint8]bool{2: true})),
		"bad-truncated.der": der[:len(der)/2],
	}
}

func TestSeeds(t *testing.T) {
	if *update {
		for name, data := range seeds(t) {
			writeFile(t, filepath.Join("testdata", name), data)
		}
	}
	files, err := filepath.Glob("testdata/*-*.*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no seeds in testdata (run go test -run TestSeeds -update): %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, err = parseCRL(data)
		if good := strings.HasPrefix(filepath.Base(f), "good-"); good != (err == nil) {
			t.Errorf("parseCRL(%s) = %v, want success %v", f, err, good)
		}
	}
}

// FuzzParseCRL feeds untrusted bytes to parseCRL, and what parses to the
// lookups Check makes. Nothing may panic; what parses must be coherent.
func FuzzParseCRL(f *testing.F) {
	files, _ := filepath.Glob("testdata/*-*.*")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{"", "-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n", "\x30\x00", "\x30\x80"} {
		f.Add([]byte(s))
	}
	ca := newCA(f, "Fuzz CA")
	leaf := ca.leaf(f, "fuzz")
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseCRL(data)
		if err != nil {
			if c != nil {
				t.Fatalf("parseCRL returned a CRL and an error %v", err)
			}
			return
		}
		if !c.nextUpdate.After(c.thisUpdate) || len(c.rawIssuer) == 0 {
			t.Fatalf("parseCRL accepted thisUpdate %v, nextUpdate %v, issuer %x", c.thisUpdate, c.nextUpdate, c.rawIssuer)
		}
		for k := range c.entries {
			if k == "" {
				t.Fatal("parseCRL accepted an empty serial")
			}
		}
		_ = c.covers(leaf)
		_ = c.matches(ca.cert)
		_ = c.verifiedBy(ca.cert)
		_ = c.entries[string(certSerial(leaf))]
	})
}
