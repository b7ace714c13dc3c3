package pki_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"math/big"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-dev/portcullis/internal/pki"
)

var (
	testCRL    = []string{"http://ca.portcullis.internal/crl.der"}
	testOCSP   = []string{"http://ca.portcullis.internal/ocsp"}
	testIssuer = []string{"http://ca.portcullis.internal/ca.cer"}
)

// request is a valid request for profile p; tests change what they probe.
func request(t testing.TB, p pki.Profile) pki.Request {
	r := pki.Request{
		Profile: p, Subject: subject("node-1"), PublicKey: testKey(t, pki.KeyP256, 2).Public(),
		NotBefore: testNow, NotAfter: testNow.Add(30 * day),
		CRLURLs: testCRL, OCSPURLs: testOCSP, IssuerURLs: testIssuer,
	}
	switch p {
	case pki.ProfileServer:
		r.Names = mustNames(t, []string{"node-1.portcullis.internal"}, []string{"10.0.0.1"}, nil, nil)
	case pki.ProfileClient:
		r.Names = mustNames(t, nil, nil, []string{"alice@example.com"}, []string{"spiffe://portcullis.internal/user/alice"})
	case pki.ProfileDevice:
		r.Names = mustNames(t, []string{"node-1.portcullis.internal"}, nil, nil, []string{"spiffe://portcullis.internal/device/node-1"})
	}
	return r
}

// testRoot is a P-256 root CA made with Template.
func testRoot(t testing.TB) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key := testKey(t, pki.KeyP256, 0)
	root := issue(t, pki.Request{
		Profile: pki.ProfileRoot, Subject: subject("Portcullis Test Root"), PublicKey: key.Public(),
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(3650 * day),
	}, nil, key)
	return root, key
}

// TestTemplateProfiles checks the extensions each profile fixes, on the
// certificate as signed and parsed back.
func TestTemplateProfiles(t *testing.T) {
	type want struct {
		ku             x509.KeyUsage
		eku            []x509.ExtKeyUsage
		isCA           bool
		maxPathLen     int // as parsed: -1 = absent
		maxPathLenZero bool
		urls           bool // CRL DP, OCSP and caIssuers carried
		ocspNoCheck    bool
		policies       int
	}
	tests := []struct {
		profile pki.Profile
		want    want
	}{
		{pki.ProfileRoot, want{ku: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, isCA: true, maxPathLen: -1}},
		{pki.ProfileIntermediate, want{
			ku:   x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
			isCA: true, maxPathLen: 0, maxPathLenZero: true, urls: true, policies: 1,
		}},
		{pki.ProfileServer, want{ku: x509.KeyUsageDigitalSignature, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, maxPathLen: -1, urls: true}},
		{pki.ProfileClient, want{ku: x509.KeyUsageDigitalSignature, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, maxPathLen: -1, urls: true}},
		{pki.ProfileDevice, want{ku: x509.KeyUsageDigitalSignature, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, maxPathLen: -1, urls: true}},
		{pki.ProfileOCSP, want{ku: x509.KeyUsageDigitalSignature, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}, maxPathLen: -1, ocspNoCheck: true}},
	}
	root, caKey := testRoot(t)
	for _, tt := range tests {
		t.Run(string(tt.profile), func(t *testing.T) {
			r := request(t, tt.profile)
			issuer := root
			if tt.profile == pki.ProfileRoot {
				r.PublicKey, issuer = caKey.Public(), nil
			}
			c := issue(t, r, issuer, caKey)
			got := want{
				ku: c.KeyUsage, eku: c.ExtKeyUsage, isCA: c.IsCA, maxPathLen: c.MaxPathLen, maxPathLenZero: c.MaxPathLenZero,
				urls:     len(c.CRLDistributionPoints) > 0 || len(c.OCSPServer) > 0 || len(c.IssuingCertificateURL) > 0,
				policies: len(c.Policies),
			}
			for _, e := range c.Extensions {
				if e.Id.Equal(pki.OIDOCSPNoCheck) {
					got.ocspNoCheck = true
					if !bytes.Equal(e.Value, []byte{0x05, 0x00}) || e.Critical {
						t.Errorf("ocsp-nocheck = %x critical=%v, want NULL, not critical", e.Value, e.Critical)
					}
				}
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("Template(%s) (-want +got):\n%s", tt.profile, diff)
			}
			if !c.BasicConstraintsValid {
				t.Errorf("Template(%s): basicConstraints missing", tt.profile)
			}
			ski, err := pki.SubjectKeyID(r.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(c.SubjectKeyId, ski) {
				t.Errorf("Template(%s) SKI = %x, want %x", tt.profile, c.SubjectKeyId, ski)
			}
			if tt.profile != pki.ProfileRoot && !bytes.Equal(c.AuthorityKeyId, root.SubjectKeyId) {
				t.Errorf("Template(%s) AKI = %x, want the issuer's SKI %x", tt.profile, c.AuthorityKeyId, root.SubjectKeyId)
			}
			if tt.want.urls {
				if !slices.Equal(c.CRLDistributionPoints, testCRL) || !slices.Equal(c.OCSPServer, testOCSP) || !slices.Equal(c.IssuingCertificateURL, testIssuer) {
					t.Errorf("Template(%s) URLs = %q %q %q, want %q %q %q", tt.profile,
						c.CRLDistributionPoints, c.OCSPServer, c.IssuingCertificateURL, testCRL, testOCSP, testIssuer)
				}
			}
			if got := pki.ProfileOf(c); got != profileOfWant(tt.profile) {
				t.Errorf("ProfileOf(Template(%s)) = %s, want %s", tt.profile, got, profileOfWant(tt.profile))
			}
			if tt.profile.IsCA() != c.IsCA {
				t.Errorf("%s.IsCA() = %v, want %v", tt.profile, tt.profile.IsCA(), c.IsCA)
			}
		})
	}
}

// profileOfWant: a device certificate looks like a client certificate
// from the outside (same EKU).
func profileOfWant(p pki.Profile) pki.Profile {
	if p == pki.ProfileDevice {
		return pki.ProfileClient
	}
	return p
}

func TestTemplateIntermediatePathLen(t *testing.T) {
	root, caKey := testRoot(t)
	for _, n := range []int{0, 1, 3} {
		r := request(t, pki.ProfileIntermediate)
		r.MaxPathLen = n
		c := issue(t, r, root, caKey)
		if c.MaxPathLen != n || c.MaxPathLenZero != (n == 0) {
			t.Errorf("Template(intermediate, MaxPathLen %d): parsed MaxPathLen %d, zero %v", n, c.MaxPathLen, c.MaxPathLenZero)
		}
	}
}

func TestTemplateServerCN(t *testing.T) {
	tests := []struct {
		name   string
		cn     string
		dns    []string
		ips    []string
		wantCN string
	}{
		{"cn not a SAN becomes the first DNS name", "web", []string{"web.example.internal", "www.example.internal"}, nil, "web.example.internal"},
		{"cn that is a SAN stays", "www.example.internal", []string{"web.example.internal", "www.example.internal"}, nil, "www.example.internal"},
		{"cn that is an IP SAN stays", "10.0.0.1", []string{"web.example.internal"}, []string{"10.0.0.1"}, "10.0.0.1"},
		{"ip only: cn becomes the IP", "db", nil, []string{"10.0.0.5"}, "10.0.0.5"},
		{"empty cn", "", []string{"web.example.internal"}, nil, "web.example.internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := request(t, pki.ProfileServer)
			r.Subject = subject(tt.cn)
			r.Names = mustNames(t, tt.dns, tt.ips, nil, nil)
			tmpl, err := pki.Template(r, big.NewInt(1))
			if err != nil {
				t.Fatalf("Template: %v", err)
			}
			if tmpl.Subject.CommonName != tt.wantCN {
				t.Errorf("Template(server CN %q, %q %q) CN = %q, want %q", tt.cn, tt.dns, tt.ips, tmpl.Subject.CommonName, tt.wantCN)
			}
			if r.Subject.CommonName != tt.cn {
				t.Errorf("Template changed the request's CN to %q", r.Subject.CommonName)
			}
		})
	}
	// Other leaves keep their CN.
	for _, p := range []pki.Profile{pki.ProfileClient, pki.ProfileDevice} {
		tmpl, err := pki.Template(request(t, p), big.NewInt(1))
		if err != nil || tmpl.Subject.CommonName != "node-1" {
			t.Errorf("Template(%s) CN = %v, %v, want node-1", p, tmpl, err)
		}
	}
}

func TestTemplateNameRules(t *testing.T) {
	tests := []struct {
		name    string
		profile pki.Profile
		names   pki.Names
		ok      bool
		policy  bool // the error wraps ErrNameNotAllowed
	}{
		{"server dns", pki.ProfileServer, mustNames(t, []string{"a.example"}, nil, nil, nil), true, false},
		{"server ip only", pki.ProfileServer, mustNames(t, nil, []string{"10.0.0.1"}, nil, nil), true, false},
		{"server uri + dns", pki.ProfileServer, mustNames(t, []string{"a.example"}, nil, nil, []string{"spiffe://x/y"}), true, false},
		{"server wildcard", pki.ProfileServer, mustNames(t, []string{"*.a.example"}, nil, nil, nil), true, false},
		{"server no SAN", pki.ProfileServer, pki.Names{}, false, false},
		{"server uri only", pki.ProfileServer, mustNames(t, nil, nil, nil, []string{"spiffe://x/y"}), false, false},
		{"server email", pki.ProfileServer, mustNames(t, []string{"a.example"}, nil, []string{"a@example.com"}, nil), false, true},
		{"client email + uri", pki.ProfileClient, mustNames(t, nil, nil, []string{"a@example.com"}, []string{"spiffe://x/y"}), true, false},
		{"client no SAN", pki.ProfileClient, pki.Names{}, true, false},
		{"client ip", pki.ProfileClient, mustNames(t, nil, []string{"10.0.0.1"}, nil, nil), false, true},
		{"client wildcard", pki.ProfileClient, mustNames(t, []string{"*.a.example"}, nil, nil, nil), false, true},
		{"device uri + dns", pki.ProfileDevice, mustNames(t, []string{"d.example"}, nil, nil, []string{"spiffe://x/device/d"}), true, false},
		{"device ip", pki.ProfileDevice, mustNames(t, nil, []string{"::1"}, nil, []string{"spiffe://x/device/d"}), false, true},
		{"device email", pki.ProfileDevice, mustNames(t, nil, nil, []string{"a@example.com"}, nil), false, true},
		{"device wildcard", pki.ProfileDevice, mustNames(t, []string{"*.d.example"}, nil, nil, nil), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := request(t, tt.profile)
			r.Names = tt.names
			tmpl, err := pki.Template(r, big.NewInt(1))
			if tt.ok {
				if err != nil {
					t.Fatalf("Template(%s, %+v) = %v, want ok", tt.profile, tt.names, err)
				}
				if !slices.Equal(tmpl.DNSNames, tt.names.DNS) || !slices.EqualFunc(tmpl.IPAddresses, tt.names.IPs, net.IP.Equal) ||
					!slices.Equal(tmpl.EmailAddresses, tt.names.Emails) || len(tmpl.URIs) != len(tt.names.URIs) {
					t.Errorf("Template(%s) SANs = %q %v %q %v, want %+v", tt.profile, tmpl.DNSNames, tmpl.IPAddresses, tmpl.EmailAddresses, tmpl.URIs, tt.names)
				}
				return
			}
			if err == nil {
				t.Fatalf("Template(%s, %+v) = nil error, want an error", tt.profile, tt.names)
			}
			if errors.Is(err, pki.ErrNameNotAllowed) != tt.policy {
				t.Errorf("Template(%s, %+v) = %v; errors.Is(ErrNameNotAllowed) = %v, want %v", tt.profile, tt.names, err, !tt.policy, tt.policy)
			}
		})
	}
}

// TestTemplateIgnoresFields: the CA profiles decide the extensions, so
// names and URLs on a request for a profile that does not carry them are
// dropped, not copied.
func TestTemplateIgnoresFields(t *testing.T) {
	for _, p := range []pki.Profile{pki.ProfileRoot, pki.ProfileOCSP} {
		r := request(t, p)
		r.Names = mustNames(t, []string{"a.example"}, []string{"10.0.0.1"}, []string{"a@example.com"}, []string{"spiffe://x/y"})
		tmpl, err := pki.Template(r, big.NewInt(1))
		if err != nil {
			t.Fatalf("Template(%s): %v", p, err)
		}
		if len(tmpl.DNSNames)+len(tmpl.IPAddresses)+len(tmpl.EmailAddresses)+len(tmpl.URIs) != 0 {
			t.Errorf("Template(%s) carries SANs %q %v %q %v, want none", p, tmpl.DNSNames, tmpl.IPAddresses, tmpl.EmailAddresses, tmpl.URIs)
		}
		if len(tmpl.CRLDistributionPoints)+len(tmpl.OCSPServer)+len(tmpl.IssuingCertificateURL) != 0 {
			t.Errorf("Template(%s) carries URLs %q %q %q, want none (CABF e_ocsp_cert_cdp_forbidden)", p,
				tmpl.CRLDistributionPoints, tmpl.OCSPServer, tmpl.IssuingCertificateURL)
		}
	}
}

func TestTemplateErrors(t *testing.T) {
	tests := []struct {
		name   string
		mod    func(*pki.Request)
		serial *big.Int
		weak   bool
	}{
		{"nil serial", nil, nil, false},
		{"zero serial", nil, big.NewInt(0), false},
		{"negative serial", nil, big.NewInt(-5), false},
		{"notAfter before notBefore", func(r *pki.Request) { r.NotAfter = r.NotBefore.Add(-time.Hour) }, big.NewInt(1), false},
		{"notAfter equals notBefore", func(r *pki.Request) { r.NotAfter = r.NotBefore }, big.NewInt(1), false},
		{"unknown profile", func(r *pki.Request) { r.Profile = "code-signing" }, big.NewInt(1), false},
		{"empty profile", func(r *pki.Request) { r.Profile = "" }, big.NewInt(1), false},
		{"RSA-1024 key", func(r *pki.Request) { r.PublicKey = rsa1024(t).Public() }, big.NewInt(1), true},
		{"P-224 key", func(r *pki.Request) { r.PublicKey = p224(t).Public() }, big.NewInt(1), true},
		{"no key", func(r *pki.Request) { r.PublicKey = nil }, big.NewInt(1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := request(t, pki.ProfileServer)
			if tt.mod != nil {
				tt.mod(&r)
			}
			tmpl, err := pki.Template(r, tt.serial)
			if err == nil {
				t.Fatalf("Template(%s) = %v, want an error", tt.name, tmpl)
			}
			if errors.Is(err, pki.ErrWeakKey) != tt.weak {
				t.Errorf("Template(%s) = %v, want ErrWeakKey: %v", tt.name, err, tt.weak)
			}
		})
	}
}

func TestTemplateTimes(t *testing.T) {
	r := request(t, pki.ProfileClient)
	loc := time.FixedZone("UTC+5", 5*3600)
	r.NotBefore = time.Date(2026, 11, 1, 17, 0, 0, 999_999_999, loc)
	r.NotAfter = r.NotBefore.Add(30 * day)
	tmpl, err := pki.Template(r, big.NewInt(1))
	if err != nil {
		t.Fatal(err)
	}
	wantNB := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	if !tmpl.NotBefore.Equal(wantNB) || tmpl.NotBefore.Location() != time.UTC || tmpl.NotAfter.Nanosecond() != 0 {
		t.Errorf("Template times = %v .. %v, want UTC whole seconds from %v", tmpl.NotBefore, tmpl.NotAfter, wantNB)
	}
}

func TestParseProfile(t *testing.T) {
	tests := []struct {
		in      string
		want    pki.Profile
		wantErr bool
	}{
		{"server", pki.ProfileServer, false},
		{"Client", pki.ProfileClient, false},
		{"DEVICE", pki.ProfileDevice, false},
		{"root", "", true},
		{"intermediate", "", true},
		{"ocsp", "", true},
		{"", "", true},
		{" server", "", true},
	}
	for _, tt := range tests {
		got, err := pki.ParseProfile(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseProfile(%q) = %q, %v, want %q, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestNamesOf(t *testing.T) {
	root, caKey := testRoot(t)
	r := request(t, pki.ProfileServer)
	r.Names = mustNames(t, []string{"a.example", "b.example"}, []string{"10.0.0.1", "::1"}, nil, []string{"spiffe://x/y"})
	c := issue(t, r, root, caKey)
	got := pki.NamesOf(c)
	if diff := cmp.Diff(r.Names, got); diff != "" {
		t.Errorf("NamesOf(issued) (-want +got):\n%s", diff)
	}
}
