package revocation

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/pki/pkitest"
)

func TestCheckCRLFile(t *testing.T) {
	f := newFixture(t, FailClosed)
	ctx := context.Background()
	if err := f.checker.Check(ctx, f.good, f.ca.cert); err != nil {
		t.Errorf("Check(good) = %v, want nil", err)
	}
	err := f.checker.Check(ctx, f.revoked, f.ca.cert)
	var re *RevokedError
	if !errors.Is(err, ErrRevoked) || !errors.As(err, &re) {
		t.Fatalf("Check(revoked) = %v, want a *RevokedError", err)
	}
	want := RevokedError{Serial: f.revoked.SerialNumber, Reason: 1, RevokedAt: f.revokedAt.UTC(), Source: f.path}
	if *re != want {
		t.Errorf("Check(revoked) = %+v, want %+v", *re, want)
	}
	if !strings.Contains(err.Error(), "keyCompromise") {
		t.Errorf("error %q does not name the reason", err)
	}
	if got := testutil.ToFloat64(f.checker.m.checks.WithLabelValues(resultGood)); got != 1 {
		t.Errorf("checks_total{good} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(f.checker.m.checks.WithLabelValues(resultRevoked)); got != 1 {
		t.Errorf("checks_total{revoked} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(oneSource(f.checker, f.checker.m.sources.entries)); got != 1 {
		t.Errorf("crl_entries = %v, want 1", got)
	}
	st := f.checker.Status().Sources[0]
	if st.CRLNumber != "1" || st.Entries != 1 || st.Stale || !st.Usable || st.Signature != "verified" || st.Issuer != "CN=Test CA" {
		t.Errorf("Status = %+v", st)
	}
	f.log.has(t, "CRL loaded", "crl_number=1", "entries=1")
}

func TestCheckDER(t *testing.T) {
	ca := newCA(t, "DER CA")
	leaf := ca.leaf(t, "x")
	now := time.Now()
	path := tempFile(t, "crl.der", ca.crlDER(t, 7, now, now.Add(time.Hour), revokedEntry(leaf, now, 4)))
	c, err := New(Config{CRLs: []string{path}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var re *RevokedError
	if err := c.Check(context.Background(), leaf, ca.cert); !errors.As(err, &re) || re.Reason != 4 {
		t.Errorf("Check = %v, want revoked (superseded)", err)
	}
}

// TestCRLFileDamagedPEM: a CRL file with a block that does not decode,
// before, after or between good ones, fails to load naming that block.
// pem.Decode alone passes over such a block, so [damaged, CRL] used to
// load as the CRL.
func TestCRLFileDamagedPEM(t *testing.T) {
	ca := newCA(t, "Damage CA")
	now := time.Now()
	good := ca.crlPEM(t, 1, now, now.Add(time.Hour))
	bad, cat := pkitest.DamagePEM, pkitest.Cat
	for _, tc := range []struct {
		name  string
		data  []byte
		block int
	}{
		{"damaged first", cat(bad(good), good), 1},
		{"damaged in the middle", cat(good, bad(good), good), 2},
		{"damaged at the end", cat(good, bad(good)), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{CRLs: []string{tempFile(t, "crl.pem", tc.data)}}, nil, nil, nil)
			var pe *pki.PEMError
			if !errors.As(err, &pe) || pe.Block != tc.block {
				t.Errorf("New(CRL file %s) = %v, want a PEM error at block %d", tc.name, err, tc.block)
			}
		})
	}
}

func TestCRLFromAnotherCA(t *testing.T) {
	ca := newCA(t, "Test CA")
	leaf := ca.leaf(t, "good")
	now := time.Now()
	other := newCA(t, "Other CA")
	// Same name and key identifier as ca, another key: only the signature
	// tells them apart.
	forger := newCA(t, "Test CA", ca.cert.SubjectKeyId...)
	for _, tc := range []struct {
		name, why string
		crl       []byte
		signature string
	}{
		{"other issuer", "no loaded CRL covers issuer", other.crlPEM(t, 1, now, now.Add(time.Hour)), "unchecked"},
		{"forged issuer", "is not signed by it", forger.crlPEM(t, 9, now, now.Add(time.Hour), revokedEntry(leaf, now, 1)), "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{CRLs: []string{tempFile(t, "crl.pem", tc.crl)}}, nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Check(context.Background(), leaf, ca.cert)
			if !errors.Is(err, ErrUnknown) || errors.Is(err, ErrRevoked) || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("Check = %v, want ErrUnknown saying %q", err, tc.why)
			}
			if got := c.Status().Sources[0].Signature; got != tc.signature {
				t.Errorf("Status signature = %q, want %q", got, tc.signature)
			}
		})
	}
}

func TestCheckWrongIssuer(t *testing.T) {
	f := newFixture(t, FailClosed)
	other := newCA(t, "Other CA")
	if err := f.checker.Check(context.Background(), f.good, other.cert); !errors.Is(err, ErrUnknown) {
		t.Errorf("Check(good, other CA) = %v, want ErrUnknown", err)
	}
	if err := f.checker.Check(context.Background(), nil, f.ca.cert); !errors.Is(err, ErrUnknown) {
		t.Errorf("Check(nil, CA) = %v, want ErrUnknown", err)
	}
}

func TestReload(t *testing.T) {
	f := newFixture(t, FailClosed)
	ctx := context.Background()
	now := time.Now()

	// A newer CRL that also revokes the good leaf is picked up.
	writeFile(t, f.path, f.ca.crlPEM(t, 2, now, now.Add(time.Hour),
		revokedEntry(f.revoked, now, 1), revokedEntry(f.good, now, 5)))
	if err := f.checker.Reload(); err != nil {
		t.Fatalf("Reload(newer) = %v", err)
	}
	if err := f.checker.Check(ctx, f.good, f.ca.cert); !errors.Is(err, ErrRevoked) {
		t.Errorf("after newer CRL: Check(good) = %v, want ErrRevoked", err)
	}

	// An older CRL number is refused; the loaded CRL stays.
	writeFile(t, f.path, f.ca.crlPEM(t, 1, now, now.Add(time.Hour)))
	err := f.checker.Reload()
	if !errors.Is(err, errRollback) || !strings.Contains(err.Error(), f.path) {
		t.Errorf("Reload(older) = %v, want a rollback error naming the source", err)
	}
	f.log.has(t, "ignoring a CRL older than the loaded one")
	if got := f.checker.Status().Sources[0].CRLNumber; got != "2" {
		t.Errorf("after older CRL: CRL number %s, want 2", got)
	}
	if err := f.checker.Check(ctx, f.good, f.ca.cert); !errors.Is(err, ErrRevoked) {
		t.Errorf("after older CRL: Check(good) = %v, want ErrRevoked", err)
	}

	// Garbage keeps the old state and says why.
	writeFile(t, f.path, []byte("not a CRL"))
	if err := f.checker.Reload(); err == nil || !strings.Contains(err.Error(), "parsing CRL") {
		t.Errorf("Reload(garbage) = %v, want a parse error", err)
	}
	st := f.checker.Status().Sources[0]
	if st.CRLNumber != "2" || st.LastError == "" || st.LastErrorAt.IsZero() {
		t.Errorf("after garbage: Status = %+v, want CRL 2 and the last error", st)
	}
	if err := f.checker.Check(ctx, f.good, f.ca.cert); !errors.Is(err, ErrRevoked) {
		t.Errorf("after garbage: Check(good) = %v, want ErrRevoked", err)
	}
	if got := testutil.ToFloat64(f.checker.m.refreshErrors.WithLabelValues(f.path)); got != 2 {
		t.Errorf("refresh_errors_total = %v, want 2", got)
	}
	f.log.has(t, "refreshing CRL failed; keeping the loaded one")

	// A file that disappears is an error too, and changes nothing.
	writeFile(t, f.path, f.ca.crlPEM(t, 3, now, now.Add(time.Hour)))
	if err := f.checker.Reload(); err != nil {
		t.Fatalf("Reload(3) = %v", err)
	}
	if err := f.checker.Check(ctx, f.good, f.ca.cert); err != nil {
		t.Errorf("after CRL 3: Check(good) = %v, want nil", err)
	}
}

func TestReloadEmptyCRLWarns(t *testing.T) {
	f := newFixture(t, FailClosed)
	now := time.Now()
	writeFile(t, f.path, f.ca.crlPEM(t, 2, now, now.Add(time.Hour)))
	if err := f.checker.Reload(); err != nil {
		t.Fatal(err)
	}
	f.log.has(t, "level=WARN", "no entries although the previous one had some", "previous_entries=1")
}

func TestNewErrors(t *testing.T) {
	garbage := tempFile(t, "garbage.pem", []byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"))
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing file", Config{CRLs: []string{"/nonexistent/crl.pem"}}, "no such file"},
		{"garbage file", Config{CRLs: []string{garbage}}, "parsing CRL"},
		{"garbage in fail-open too", Config{CRLs: []string{garbage}, Mode: FailOpen}, "parsing CRL"},
		{"nothing to check", Config{}, "nothing to check"},
		{"bad mode", Config{OCSP: true, Mode: "sometimes"}, `mode "sometimes"`},
		{"bad scheme", Config{CRLs: []string{"ldap://dir/crl"}}, "want http:// or https://"},
		{"twice", Config{CRLs: []string{garbage, garbage}}, "listed twice"},
		{"short refresh", Config{OCSP: true, Refresh: time.Millisecond}, "at least 1s"},
		{"negative", Config{OCSP: true, MaxStale: -1, HTTPTimeout: -1, OCSPCacheSize: -1}, "max_stale"},
		{"password hidden", Config{CRLs: []string{"ftp://u:secret@h/x"}}, "u:xxxxx@h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, nil, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "secret") {
				t.Errorf("New(%+v) = %v, want an error with %q", tc.cfg, err, tc.want)
			}
		})
	}
}

func TestNewRegistersOnce(t *testing.T) {
	ca := newCA(t, "CA")
	now := time.Now()
	path := tempFile(t, "crl.pem", ca.crlPEM(t, 1, now, now.Add(time.Hour)))
	reg := prometheus.NewRegistry()
	if _, err := New(Config{CRLs: []string{path}}, nil, reg, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{CRLs: []string{path}}, nil, reg, nil); err == nil {
		t.Error("second New on one registry: want an AlreadyRegistered error")
	}
	// One Checker per service shares a registry through a service label.
	shared := prometheus.NewRegistry()
	for _, svc := range []string{"a", "b"} {
		wrapped := prometheus.WrapRegistererWith(prometheus.Labels{"service": svc}, shared)
		if _, err := New(Config{CRLs: []string{path}}, nil, wrapped, nil); err != nil {
			t.Errorf("New for service %s: %v", svc, err)
		}
	}
	// Both checkers' series, apart by their service label.
	if n, err := testutil.GatherAndCount(shared, "portcullis_revocation_crl_entries"); err != nil || n != 2 {
		t.Errorf("GatherAndCount(crl_entries) = %d, %v; want 2 (services a and b)", n, err)
	}
}

// idp builds an issuingDistributionPoint value.
func idp(t *testing.T, uri string, flags map[uint8]bool) []byte {
	t.Helper()
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if uri != "" {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(uri)) })
				})
			})
		}
		for tag := uint8(1); tag <= 5; tag++ {
			if !flags[tag] {
				continue
			}
			b.AddASN1(cbasn1.Tag(tag).ContextSpecific(), func(b *cryptobyte.Builder) {
				if tag == 3 {
					b.AddBytes([]byte{0x07, 0x80}) // BIT STRING: keyCompromise... only
				} else {
					b.AddBytes([]byte{0xff})
				}
			})
		}
	})
	return b.BytesOrPanic()
}

func TestParseCRL(t *testing.T) {
	ca := newCA(t, "Parse CA")
	now := time.Now()
	leaf := ca.leaf(t, "x")
	der := ca.crlDER(t, 3, now, now.Add(time.Hour), revokedEntry(leaf, now, 1))
	pemCRL := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	ext := func(id asn1.ObjectIdentifier, critical bool, v []byte) []byte {
		return ca.crlWith(t, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(time.Hour),
			ExtraExtensions: []pkix.Extension{{Id: id, Critical: critical, Value: v}}})
	}
	entryExt := ca.crlWith(t, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(5), RevocationTime: now,
			ExtraExtensions: []pkix.Extension{{Id: oidCertIssuer, Critical: true, Value: []byte{0x30, 0}}}}}})
	for _, tc := range []struct {
		name string
		data []byte
		want string // "" means it parses
	}{
		{"der", der, ""},
		{"pem", pemCRL, ""},
		{"pem with text before", append([]byte("Certificate Revocation List (CRL):\n"), pemCRL...), ""},
		{"pem with text after", append(append([]byte{}, pemCRL...), "trailer\n"...), "text after the last block"},
		{"empty", nil, "empty"},
		{"spaces", []byte("  \n"), "empty"},
		{"garbage", []byte("garbage"), "parsing CRL"},
		{"truncated der", der[:len(der)-3], "parsing CRL"},
		{"trailing data", append(append([]byte{}, der...), 0, 0), "trailing data"},
		{"two blocks", append(append([]byte{}, pemCRL...), pemCRL...), "more than one"},
		{"certificate", pki.EncodeCertificates(ca.cert), `"CERTIFICATE", want X509 CRL`},
		{"damaged pem", []byte("-----BEGIN X509 CRL-----\n!!!\n"), "PEM block 1, line 2: not base64"},
		{"truncated pem", pemCRL[:len(pemCRL)/2], "PEM block 1, line 1: no END line"},
		{"delta", ext(oidDeltaCRL, true, []byte{2, 1, 1}), "delta CRLs are not supported"},
		{"unknown critical", ext(asn1.ObjectIdentifier{1, 2, 3}, true, []byte{5, 0}), "unsupported critical extension 1.2.3"},
		{"unknown non-critical", ext(asn1.ObjectIdentifier{1, 2, 3}, false, []byte{5, 0}), ""},
		{"idp user only", ext(oidIDP, true, idp(t, "", map[uint8]bool{1: true})), ""},
		{"idp with uri", ext(oidIDP, true, idp(t, "http://crl.example/a.crl", nil)), ""},
		{"idp ca only", ext(oidIDP, true, idp(t, "", map[uint8]bool{2: true})), "onlyContainsCACerts"},
		{"idp some reasons", ext(oidIDP, true, idp(t, "", map[uint8]bool{3: true})), "onlySomeReasons"},
		{"idp indirect", ext(oidIDP, true, idp(t, "", map[uint8]bool{4: true})), "indirect CRLs"},
		{"idp attribute", ext(oidIDP, true, idp(t, "", map[uint8]bool{5: true})), "onlyContainsAttributeCerts"},
		{"idp malformed", ext(oidIDP, true, []byte{0x30, 0x03, 0x81, 0x01}), "malformed issuingDistributionPoint"},
		{"entry certificateIssuer", entryExt, "indirect CRLs are not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseCRL(tc.data)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("parseCRL = %v, want success", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("parseCRL = %v, want an error with %q", err, tc.want)
			case err == nil && c.nextUpdate.Before(c.thisUpdate):
				t.Errorf("parseCRL: nextUpdate %v before thisUpdate %v", c.nextUpdate, c.thisUpdate)
			}
		})
	}
}

func TestCRLScope(t *testing.T) {
	ca := newCA(t, "Scoped CA")
	now := time.Now()
	inA := ca.leaf(t, "a", func(c *x509.Certificate) { c.CRLDistributionPoints = []string{"http://crl.example/a.crl"} })
	inB := ca.leaf(t, "b", func(c *x509.Certificate) { c.CRLDistributionPoints = []string{"http://crl.example/b.crl"} })
	sub := ca.leaf(t, "sub-ca", func(c *x509.Certificate) {
		c.IsCA, c.BasicConstraintsValid, c.KeyUsage, c.ExtKeyUsage = true, true, x509.KeyUsageCertSign, nil
		c.CRLDistributionPoints = []string{"http://crl.example/a.crl"}
	})
	partition := ca.crlWith(t, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: oidIDP, Critical: true, Value: idp(t, "http://crl.example/a.crl", map[uint8]bool{1: true})}}})
	c, err := New(Config{CRLs: []string{tempFile(t, "a.crl", partition)}}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cert *x509.Certificate
		want error
	}{{inA, nil}, {inB, ErrUnknown}, {sub, ErrUnknown}} {
		if err := c.Check(context.Background(), tc.cert, ca.cert); !errors.Is(err, tc.want) {
			t.Errorf("Check(%s) = %v, want %v", tc.cert.Subject.CommonName, err, tc.want)
		}
	}
}

func TestNewestCRLAcrossSources(t *testing.T) {
	ca := newCA(t, "Two Sources CA")
	leaf := ca.leaf(t, "x")
	now := time.Now()
	older := tempFile(t, "old.pem", ca.crlPEM(t, 4, now, now.Add(time.Hour)))
	newer := tempFile(t, "new.pem", ca.crlPEM(t, 5, now, now.Add(time.Hour), revokedEntry(leaf, now, 1)))
	for _, order := range [][]string{{older, newer}, {newer, older}} {
		c, err := New(Config{CRLs: order}, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var re *RevokedError
		if err := c.Check(context.Background(), leaf, ca.cert); !errors.As(err, &re) || re.Source != newer {
			t.Errorf("sources %v: Check = %v, want revoked per %s", order, err, newer)
		}
	}
}

func TestSerialEncodings(t *testing.T) {
	for _, n := range []*big.Int{big.NewInt(1), big.NewInt(127), big.NewInt(128), big.NewInt(255), big.NewInt(256),
		new(big.Int).Lsh(big.NewInt(1), 159)} {
		ca := newCA(t, "Serial CA")
		leaf := ca.leaf(t, "x", func(c *x509.Certificate) { c.SerialNumber = n })
		e := x509.RevocationListEntry{SerialNumber: n, RevocationTime: time.Now()}
		rl, err := x509.ParseRevocationList(ca.crlDER(t, 1, time.Now(), time.Now().Add(time.Hour), e))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := entrySerial(rl.RevokedCertificateEntries[0].Raw)
		if string(got) != string(certSerial(leaf)) || string(got) != string(serialOctets(n)) {
			t.Errorf("serial %s: CRL %x, certificate %x, re-encoded %x", n, got, certSerial(leaf), serialOctets(n))
		}
	}
}

// TestForgedSuccessor: a forged CRL (right name and key identifier, wrong
// key) with a huge number must neither replace a verified CRL nor, when it
// got in before any Check, lock the real successors out.
func TestForgedSuccessor(t *testing.T) {
	for _, verified := range []bool{true, false} {
		t.Run(fmt.Sprintf("verified=%v", verified), func(t *testing.T) {
			f := newFixture(t, FailClosed)
			ctx := context.Background()
			if verified {
				if err := f.checker.Check(ctx, f.good, f.ca.cert); err != nil {
					t.Fatal(err)
				}
			}
			now := time.Now()
			forger := newCA(t, "Test CA", f.ca.cert.SubjectKeyId...)
			writeFile(t, f.path, forger.crlPEM(t, 1000, now, now.Add(time.Hour), revokedEntry(f.good, now, 1)))
			err := f.checker.Reload()
			if verified && (err == nil || !strings.Contains(err.Error(), "not signed by")) {
				t.Errorf("Reload(forged) = %v, want a signature error", err)
			}
			wantForged := error(nil)
			if !verified {
				wantForged = ErrUnknown // loaded, but no Check trusts it
			}
			if err := f.checker.Check(ctx, f.good, f.ca.cert); !errors.Is(err, wantForged) {
				t.Errorf("after forged CRL: Check(good) = %v, want %v", err, wantForged)
			}
			writeFile(t, f.path, f.ca.crlPEM(t, 2, now, now.Add(time.Hour)))
			if err := f.checker.Reload(); err != nil {
				t.Errorf("Reload(real CRL 2) = %v, want nil", err)
			}
			if err := f.checker.Check(ctx, f.good, f.ca.cert); err != nil {
				t.Errorf("after real CRL 2: Check(good) = %v, want nil", err)
			}
		})
	}
}
