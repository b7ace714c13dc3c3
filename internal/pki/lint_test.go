package pki_test

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"

	"github.com/portcullis-dev/portcullis/internal/pki"
)

const day = 24 * time.Hour

// zlintRegistry builds the registry the way a relying reviewer would from
// PEERS.md, independently of pki.LintDER: the pki lint sources minus the
// exemptions, and minus the offline ones when offline.
func zlintRegistry(t testing.TB, offline bool) lint.Registry {
	t.Helper()
	var exclude []string
	for n := range pki.PrivatePKIExemptions() {
		exclude = append(exclude, n)
	}
	if offline {
		for n := range pki.OfflineRevocationExemptions() {
			exclude = append(exclude, n)
		}
	}
	reg, err := lint.GlobalRegistry().Filter(lint.FilterOptions{IncludeSources: pki.LintSources(), ExcludeNames: exclude})
	if err != nil {
		t.Fatalf("Filter: %v", err)
	}
	return reg
}

// lintFindings returns every result at Warn or worse, one line each, and
// how many lints passed.
func lintFindings(t testing.TB, reg lint.Registry, der []byte) (bad []string, passed int) {
	t.Helper()
	c, err := zx509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("zcrypto cannot parse the certificate: %v", err)
	}
	rs := zlint.LintCertificateEx(c, reg)
	for name, r := range rs.Results {
		switch {
		case r.Status >= lint.Warn:
			bad = append(bad, fmt.Sprintf("%s: %s %s", name, r.Status, r.Details))
		case r.Status == lint.Pass:
			passed++
		}
	}
	sort.Strings(bad)
	return bad, passed
}

type issuedCert struct {
	profile pki.Profile
	cert    *x509.Certificate
	usage   x509.ExtKeyUsage // for chain verification of leaves
}

type chainOptions struct {
	kt       pki.KeyType
	rootOnly bool
	urls     bool
}

// buildChain issues what `ca init` and `ca issue` would for o: a root, an
// intermediate unless rootOnly, and one certificate of every leaf profile
// plus a delegated OCSP responder, all with the CA's own subjects and
// lifetimes.
func buildChain(t testing.TB, o chainOptions) (root *x509.Certificate, out []issuedCert) {
	t.Helper()
	rootKey, interKey, leafKey := testKey(t, o.kt, 0), testKey(t, o.kt, 1), testKey(t, o.kt, 2)
	var crl, ocsp, issuerURLs []string
	if o.urls {
		crl = []string{"http://ca.portcullis.internal/crl.der"}
		ocsp = []string{"http://ca.portcullis.internal/ocsp"}
		issuerURLs = []string{"http://ca.portcullis.internal/ca.cer"}
	}
	notBefore := testNow.Add(-time.Minute)
	root = issue(t, pki.Request{
		Profile: pki.ProfileRoot, Subject: subject("Portcullis Root CA"), PublicKey: rootKey.Public(),
		NotBefore: notBefore, NotAfter: testNow.Add(10 * 365 * day),
	}, nil, rootKey)
	out = append(out, issuedCert{profile: pki.ProfileRoot, cert: root})
	issuer, issuerKey := root, rootKey
	if !o.rootOnly {
		inter := issue(t, pki.Request{
			Profile: pki.ProfileIntermediate, Subject: subject("Portcullis Intermediate CA"), PublicKey: interKey.Public(),
			NotBefore: notBefore, NotAfter: testNow.Add(5 * 365 * day), MaxPathLen: 0,
			CRLURLs: crl, OCSPURLs: ocsp, IssuerURLs: issuerURLs,
		}, root, rootKey)
		out = append(out, issuedCert{profile: pki.ProfileIntermediate, cert: inter})
		issuer, issuerKey = inter, interKey
	}
	deviceSubject := subject("laptop-1")
	deviceSubject.OrganizationalUnit = []string{"devices"}
	leaves := []struct {
		profile  pki.Profile
		subject  pkix.Name
		names    pki.Names
		lifetime time.Duration
		usage    x509.ExtKeyUsage
	}{
		{pki.ProfileServer, subject("api"), mustNames(t,
			[]string{"api.portcullis.internal", "localhost"}, []string{"127.0.0.1", "10.1.2.3", "::1"}, nil, nil),
			90 * day, x509.ExtKeyUsageServerAuth},
		{pki.ProfileServer, subject("127.0.0.1"), mustNames(t, nil, []string{"127.0.0.1"}, nil, nil),
			90 * day, x509.ExtKeyUsageServerAuth},
		{pki.ProfileClient, subject("alice"), mustNames(t,
			nil, nil, []string{"alice@example.com"}, []string{"spiffe://portcullis.internal/user/alice"}),
			30 * day, x509.ExtKeyUsageClientAuth},
		{pki.ProfileDevice, deviceSubject, mustNames(t,
			[]string{"laptop-1.portcullis.internal"}, nil, nil, []string{"spiffe://portcullis.internal/device/laptop-1"}),
			30 * day, x509.ExtKeyUsageClientAuth},
		{pki.ProfileOCSP, subject("Portcullis OCSP Responder"), pki.Names{}, 30 * day, x509.ExtKeyUsageOCSPSigning},
	}
	for _, l := range leaves {
		c := issue(t, pki.Request{
			Profile: l.profile, Subject: l.subject, Names: l.names, PublicKey: leafKey.Public(),
			NotBefore: notBefore, NotAfter: testNow.Add(l.lifetime),
			CRLURLs: crl, OCSPURLs: ocsp, IssuerURLs: issuerURLs,
		}, issuer, issuerKey)
		out = append(out, issuedCert{profile: l.profile, cert: c, usage: l.usage})
	}
	return root, out
}

// TestLintEveryProfile lints every certificate the CA makes, for every key
// type, with and without an intermediate, with and without revocation
// URLs, using zlint directly: no result may be a warning or worse.
func TestLintEveryProfile(t *testing.T) {
	registries := map[bool]lint.Registry{false: zlintRegistry(t, false), true: zlintRegistry(t, true)}
	for _, kt := range pki.KeyTypes() {
		t.Run(string(kt), func(t *testing.T) {
			t.Parallel()
			for _, o := range []chainOptions{
				{kt: kt, urls: true}, {kt: kt, urls: false},
				{kt: kt, rootOnly: true, urls: true}, {kt: kt, rootOnly: true, urls: false},
			} {
				chain := "root+intermediate"
				if o.rootOnly {
					chain = "root-only"
				}
				urls := "with-urls"
				if !o.urls {
					urls = "offline"
				}
				t.Run(chain+"/"+urls, func(t *testing.T) {
					root, certs := buildChain(t, o)
					lo := pki.LintOptions{OfflineRevocation: !o.urls}
					for i, ic := range certs {
						name := fmt.Sprintf("%d-%s", i, ic.profile)
						bad, passed := lintFindings(t, registries[!o.urls], ic.cert.Raw)
						for _, b := range bad {
							t.Errorf("%s (%s): %s", name, ic.cert.Subject, b)
						}
						// A registry that lints nothing passes everything:
						// make sure real lints ran.
						if passed < 20 {
							t.Errorf("%s: only %d lints passed; is the registry empty?", name, passed)
						}
						if err := pki.LintDER(ic.cert.Raw, lo); err != nil {
							t.Errorf("%s: LintDER(%+v) = %v, want nil", name, lo, err)
						}
						if ic.usage != 0 {
							verifyChain(t, root, certs, ic)
						}
					}
				})
			}
		})
	}
}

func verifyChain(t *testing.T, root *x509.Certificate, certs []issuedCert, leaf issuedCert) {
	t.Helper()
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range certs {
		if c.profile == pki.ProfileIntermediate {
			inters.AddCert(c.cert)
		}
	}
	_, err := leaf.cert.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inters, CurrentTime: testNow,
		KeyUsages: []x509.ExtKeyUsage{leaf.usage},
	})
	if err != nil {
		t.Errorf("%s %s: Verify = %v, want a chain to the root", leaf.profile, leaf.cert.Subject, err)
	}
}

// TestLintExemptionsPinned makes adding or dropping an exemption a
// deliberate change: the lists below must be edited with it.
func TestLintExemptionsPinned(t *testing.T) {
	tests := []struct {
		name string
		got  map[string]string
		want []string
	}{
		{"PrivatePKIExemptions", pki.PrivatePKIExemptions(), []string{
			"e_cabf_ecc_allowed_key_usages",
			"e_dnsname_not_valid_tld",
			"e_ext_san_contains_reserved_ip",
			"e_server_cert_valid_time_longer_than_100_days",
			"e_server_cert_valid_time_longer_than_200_days",
			"e_server_cert_valid_time_longer_than_47_days",
			"e_sub_cert_cert_policy_empty",
			"e_sub_cert_certificate_policies_missing",
			"e_sub_cert_locality_name_must_appear",
			"e_sub_cert_province_must_appear",
			"e_subject_contains_reserved_ip",
			"n_ca_digital_signature_not_set",
			"n_san_iana_pub_suffix_empty",
			"w_ext_subject_key_identifier_not_recommended_subscriber",
			"w_server_cert_valid_time_longer_than_199_days",
			"w_server_cert_valid_time_longer_than_46_days",
			"w_server_cert_valid_time_longer_than_99_days",
			"w_sub_cert_aia_contains_internal_names",
			"w_sub_cert_aia_does_not_contain_issuing_ca_url",
			"w_subject_common_name_included",
		}},
		{"OfflineRevocationExemptions", pki.OfflineRevocationExemptions(), []string{
			"e_missing_crl_distrib_point",
			"e_sub_ca_crl_distribution_points_missing",
			"e_sub_cert_aia_missing",
			"w_sub_ca_aia_missing",
		}},
	}
	sources := map[lint.LintSource]bool{}
	for _, s := range pki.LintSources() {
		sources[s] = true
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for n, reason := range tt.got {
				got = append(got, n)
				if strings.TrimSpace(reason) == "" {
					t.Errorf("%s[%q] has no reason", tt.name, n)
				}
				// An exemption for a lint that does not exist, or is not
				// in a linted source, silently exempts nothing.
				l := lint.GlobalRegistry().ByName(n)
				if l == nil {
					t.Errorf("%s[%q]: zlint has no such lint", tt.name, n)
					continue
				}
				if !sources[l.Source] {
					t.Errorf("%s[%q]: source %s is not in LintSources", tt.name, n, l.Source)
				}
			}
			sort.Strings(got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s changed (-want +got):\n%s", tt.name, diff)
			}
		})
	}
	for n := range pki.OfflineRevocationExemptions() {
		if _, dup := pki.PrivatePKIExemptions()[n]; dup {
			t.Errorf("%q is in both exemption sets", n)
		}
	}
}

// TestLintSources pins the sources: dropping CABF_BR would make the RFC
// lints alone pass a sloppy CA (PEERS.md).
func TestLintSources(t *testing.T) {
	want := lint.SourceList{
		lint.RFC5280, lint.RFC5480, lint.RFC3279, lint.RFC8813, lint.RFC5891,
		lint.Community, lint.CABFBaselineRequirements,
	}
	if !slices.Equal(pki.LintSources(), want) {
		t.Errorf("LintSources = %v, want %v", pki.LintSources(), want)
	}
}

// naiveCert is what a careless CA makes: serial 1, no key usage, no SAN,
// no EKU, 20 years.
func naiveCert(t *testing.T, isCA bool) []byte {
	t.Helper()
	key := testKey(t, pki.KeyP256, 2)
	caKey := testKey(t, pki.KeyP256, 0)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Naive CA"},
		NotBefore: testNow, NotAfter: testNow.AddDate(20, 0, 0),
		IsCA: true, BasicConstraintsValid: true,
	}
	if isCA {
		der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "naive.example.com"},
		NotBefore: testNow, NotAfter: testNow.AddDate(20, 0, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caTmpl, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestLintRejectsNaiveCerts proves the lint set has teeth: with every
// exemption applied, a careless certificate still fails.
func TestLintRejectsNaiveCerts(t *testing.T) {
	tests := []struct {
		name string
		isCA bool
		opts pki.LintOptions
		// A few of the lints that must be among the failures.
		want []string
	}{
		{"leaf", false, pki.LintOptions{}, []string{
			"e_ext_san_missing", "e_sub_cert_eku_missing", "e_sub_cert_valid_time_longer_than_825_days",
			"e_sub_cert_aia_missing", "e_missing_crl_distrib_point",
		}},
		{"leaf/offline", false, pki.LintOptions{OfflineRevocation: true}, []string{
			"e_ext_san_missing", "e_sub_cert_eku_missing", "e_sub_cert_valid_time_longer_than_825_days",
			"e_subject_common_name_not_exactly_from_san",
		}},
		{"ca", true, pki.LintOptions{}, []string{"e_ca_key_usage_missing", "e_ca_country_name_missing"}},
		{"ca/offline", true, pki.LintOptions{OfflineRevocation: true}, []string{"e_ca_key_usage_missing", "e_ca_organization_name_missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pki.LintDER(naiveCert(t, tt.isCA), tt.opts)
			if !errors.Is(err, pki.ErrLint) {
				t.Fatalf("LintDER(naive %s, %+v) = %v, want ErrLint", tt.name, tt.opts, err)
			}
			for _, name := range tt.want {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("LintDER(naive %s) = %v, want it to name %s", tt.name, err, name)
				}
			}
		})
	}
}

func TestLintDERGarbage(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("not a certificate"), {0x30, 0x03, 0x02, 0x01, 0x01}} {
		if err := pki.LintDER(in, pki.LintOptions{}); !errors.Is(err, pki.ErrLint) {
			t.Errorf("LintDER(%q) = %v, want ErrLint", in, err)
		}
	}
}

// TestLintServerLifetime: the CA/B Forum SC-081 limits shorten publicly
// trusted server certificates by issuance date (200 days from 2026-03-15,
// 100 from 2027-03-15, 47 from 2029-03-15). They are exempt for this private
// PKI, so the default 90 days, and up to the 398 days ca.yaml allows, lint
// clean on any date; the CA bounds the lifetime itself. Past 825 days a
// server still fails (e_sub_cert_valid_time_longer_than_825_days).
func TestLintServerLifetime(t *testing.T) {
	root, _ := buildChain(t, chainOptions{kt: pki.KeyP256, rootOnly: true, urls: true})
	key := testKey(t, pki.KeyP256, 2)
	dates := []time.Time{
		testNow,
		time.Date(2027, time.June, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2029, time.March, 15, 0, 0, 0, 0, time.UTC),
		time.Date(2029, time.June, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC),
	}
	for _, at := range dates {
		for _, tt := range []struct {
			days int
			ok   bool
		}{{47, true}, {90, true}, {199, true}, {398, true}, {826, false}} {
			t.Run(fmt.Sprintf("%s/%d", at.Format(time.DateOnly), tt.days), func(t *testing.T) {
				c := issue(t, pki.Request{
					Profile: pki.ProfileServer, Subject: subject("web.portcullis.internal"),
					Names:     mustNames(t, []string{"web.portcullis.internal"}, nil, nil, nil),
					PublicKey: key.Public(), NotBefore: at, NotAfter: at.Add(time.Duration(tt.days) * day),
					CRLURLs: []string{"http://ca.portcullis.internal/crl.der"}, OCSPURLs: []string{"http://ca.portcullis.internal/ocsp"},
				}, root, testKey(t, pki.KeyP256, 0))
				err := pki.LintDER(c.Raw, pki.LintOptions{})
				if (err == nil) != tt.ok {
					t.Errorf("LintDER(server issued %s, %d days) = %v, want ok=%v", at.Format(time.DateOnly), tt.days, err, tt.ok)
				}
			})
		}
	}
}

// TestLinter checks the Boulder-style pre-issuance linter: it lints a
// template under a throwaway key and refuses bad ones.
func TestLinter(t *testing.T) {
	for _, kt := range []pki.KeyType{pki.KeyP256, pki.KeyRSA2048} {
		t.Run(string(kt), func(t *testing.T) {
			root, _ := buildChain(t, chainOptions{kt: kt, rootOnly: true, urls: true})
			l, err := pki.NewLinter(root, kt, pki.LintOptions{})
			if err != nil {
				t.Fatalf("NewLinter: %v", err)
			}
			pub := testKey(t, kt, 2).Public()
			good, err := pki.Template(pki.Request{
				Profile: pki.ProfileServer, Subject: subject("web.portcullis.internal"),
				Names:     mustNames(t, []string{"web.portcullis.internal"}, nil, nil, nil),
				PublicKey: pub, NotBefore: testNow, NotAfter: testNow.Add(90 * day),
				CRLURLs: []string{"http://ca.portcullis.internal/crl.der"}, OCSPURLs: []string{"http://ca.portcullis.internal/ocsp"},
				IssuerURLs: []string{"http://ca.portcullis.internal/ca.cer"},
			}, serial(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Check(good, pub); err != nil {
				t.Errorf("Check(good server) = %v, want nil", err)
			}
			bad := *good
			bad.NotAfter = testNow.AddDate(5, 0, 0)
			if err := l.Check(&bad, pub); !errors.Is(err, pki.ErrLint) {
				t.Errorf("Check(5-year server) = %v, want ErrLint", err)
			}
			noURLs := *good
			noURLs.CRLDistributionPoints, noURLs.OCSPServer, noURLs.IssuingCertificateURL = nil, nil, nil
			if err := l.Check(&noURLs, pub); !errors.Is(err, pki.ErrLint) {
				t.Errorf("Check(server without URLs, online) = %v, want ErrLint", err)
			}
			offline, err := pki.NewLinter(root, kt, pki.LintOptions{OfflineRevocation: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := offline.Check(&noURLs, pub); err != nil {
				t.Errorf("Check(server without URLs, offline) = %v, want nil", err)
			}
		})
	}
}

// TestLintCRL lints a CRL as the CA makes it: number, AKI, reason codes.
func TestLintCRL(t *testing.T) {
	for _, kt := range pki.KeyTypes() {
		t.Run(string(kt), func(t *testing.T) {
			_, certs := buildChain(t, chainOptions{kt: kt, urls: true})
			var inter *x509.Certificate
			var revoked []x509.RevocationListEntry
			for _, c := range certs {
				switch {
				case c.profile == pki.ProfileIntermediate:
					inter = c.cert
				case !c.profile.IsCA():
					revoked = append(revoked, x509.RevocationListEntry{
						SerialNumber: c.cert.SerialNumber, RevocationTime: testNow, ReasonCode: 1,
					})
				}
			}
			der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
				Number: big.NewInt(7), ThisUpdate: testNow, NextUpdate: testNow.Add(7 * day),
				RevokedCertificateEntries: revoked,
			}, inter, testKey(t, kt, 1))
			if err != nil {
				t.Fatalf("CreateRevocationList: %v", err)
			}
			crl, err := zx509.ParseRevocationList(der)
			if err != nil {
				t.Fatalf("zcrypto ParseRevocationList: %v", err)
			}
			rs := zlint.LintRevocationList(crl)
			applied := 0
			for name, r := range rs.Results {
				if r.Status >= lint.Warn {
					t.Errorf("CRL lint %s: %s %s", name, r.Status, r.Details)
				}
				if r.Status != lint.NA && r.Status != lint.NE {
					applied++
				}
			}
			if applied == 0 {
				t.Errorf("no CRL lint applied")
			}
		})
	}
}

// TestTablesAreCopies: the package's lookup tables come out as copies, so
// no caller can change what the CA enforces for everyone else.
func TestTablesAreCopies(t *testing.T) {
	tests := []struct {
		name   string
		mutate func()
		check  func() bool
	}{
		{"PrivatePKIExemptions", func() { pki.PrivatePKIExemptions()["e_ext_san_missing"] = "x" },
			func() bool { _, ok := pki.PrivatePKIExemptions()["e_ext_san_missing"]; return !ok }},
		{"OfflineRevocationExemptions", func() { pki.OfflineRevocationExemptions()["e_ext_san_missing"] = "x" },
			func() bool { _, ok := pki.OfflineRevocationExemptions()["e_ext_san_missing"]; return !ok }},
		{"LintSources", func() { pki.LintSources()[0] = lint.EtsiEsi },
			func() bool { return pki.LintSources()[0] == lint.RFC5280 }},
		{"KeyTypes", func() { pki.KeyTypes()[0] = "dsa" },
			func() bool { return pki.KeyTypes()[0] == pki.KeyP256 }},
		{"LeafProfiles", func() { pki.LeafProfiles()[0] = pki.ProfileRoot },
			func() bool { return pki.LeafProfiles()[0] == pki.ProfileServer }},
	}
	for _, tt := range tests {
		tt.mutate()
		if !tt.check() {
			t.Errorf("%s: a caller's change to the returned value reached the package", tt.name)
		}
	}
	if err := pki.LintDER(naiveCert(t, false), pki.LintOptions{}); !strings.Contains(fmt.Sprint(err), "e_ext_san_missing") {
		t.Errorf("LintDER(naive leaf) = %v, want e_ext_san_missing still linted", err)
	}
}
