package pki

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Profile is a kind of certificate the CA issues. It fixes the extensions:
// an operator chooses a profile, never individual key usages.
type Profile string

// The profiles.
const (
	ProfileRoot         Profile = "root"
	ProfileIntermediate Profile = "intermediate"
	ProfileServer       Profile = "server"
	ProfileClient       Profile = "client"
	ProfileDevice       Profile = "device"
	ProfileOCSP         Profile = "ocsp"
)

// LeafProfiles are the profiles `ca issue` and `ca sign` accept, in a
// fresh slice.
func LeafProfiles() []Profile { return []Profile{ProfileServer, ProfileClient, ProfileDevice} }

// ParseProfile accepts a leaf profile name.
func ParseProfile(s string) (Profile, error) {
	for _, p := range LeafProfiles() {
		if string(p) == strings.ToLower(s) {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown profile %q (want server, client or device)", s)
}

// IsCA reports whether the profile makes a CA certificate.
func (p Profile) IsCA() bool { return p == ProfileRoot || p == ProfileIntermediate }

// allowedNames says which SAN types a leaf profile may carry. Servers carry
// the names clients dial; clients a person's or workload's identity; devices
// a URI (SPIFFE-style) and, for devices that also serve, DNS names.
func (p Profile) allowedNames(n Names) error {
	var bad []string
	switch p {
	case ProfileServer:
		if len(n.Emails) > 0 {
			bad = append(bad, "email")
		}
	case ProfileClient:
		if len(n.IPs) > 0 {
			bad = append(bad, "IP")
		}
	case ProfileDevice:
		if len(n.IPs) > 0 {
			bad = append(bad, "IP")
		}
		if len(n.Emails) > 0 {
			bad = append(bad, "email")
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: profile %s does not carry %s names", ErrNameNotAllowed, p, strings.Join(bad, " or "))
	}
	if p == ProfileServer && len(n.DNS) == 0 && len(n.IPs) == 0 {
		return fmt.Errorf("profile server needs at least one DNS name or IP address")
	}
	for _, d := range n.DNS {
		if strings.HasPrefix(d, "*.") && p != ProfileServer {
			return fmt.Errorf("%w: wildcard DNS name %q outside the server profile", ErrNameNotAllowed, d)
		}
	}
	return nil
}

// Request is what the CA decided to certify; Template turns it into an
// x509.Certificate. Nothing in it comes from a CSR unchecked.
type Request struct {
	Profile Profile
	// Subject is the full subject name. For leaves the CA puts the name the
	// operator gave as the CN; zlint's CABF lints want a server's CN to be one
	// of its SANs, so Template picks the first SAN for servers when the CN
	// is not one.
	Subject   pkix.Name
	Names     Names
	PublicKey crypto.PublicKey
	NotBefore time.Time
	NotAfter  time.Time
	// MaxPathLen for an intermediate: 0 means it can sign leaves only.
	MaxPathLen int
	// URLs baked into leaves (and intermediates) so relying parties find
	// revocation data: CRL distribution points, OCSP responders, and where
	// to fetch the issuer (AIA caIssuers).
	CRLURLs    []string
	OCSPURLs   []string
	IssuerURLs []string
}

// oidOCSPNoCheck is id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): relying
// parties need not check a delegated OCSP responder's own revocation.
var oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}

// Template builds the certificate template for r with serial. It sets every
// extension itself from the profile, so a CSR can never smuggle one in.
func Template(r Request, serial *big.Int) (*x509.Certificate, error) {
	if serial == nil || serial.Sign() <= 0 {
		return nil, errors.New("template: serial must be positive")
	}
	if !r.NotAfter.After(r.NotBefore) {
		return nil, fmt.Errorf("template: notAfter %s is not after notBefore %s", r.NotAfter, r.NotBefore)
	}
	if _, err := KeyTypeOf(r.PublicKey); err != nil {
		return nil, err
	}
	ski, err := SubjectKeyID(r.PublicKey)
	if err != nil {
		return nil, err
	}
	t := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               r.Subject,
		NotBefore:             r.NotBefore.UTC().Truncate(time.Second),
		NotAfter:              r.NotAfter.UTC().Truncate(time.Second),
		SubjectKeyId:          ski,
		BasicConstraintsValid: true,
	}
	switch r.Profile {
	case ProfileRoot:
		// No pathLen on a root: CABF warns about it and it buys nothing.
		t.IsCA = true
		t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		return t, nil
	case ProfileIntermediate:
		t.IsCA = true
		t.MaxPathLen = r.MaxPathLen
		t.MaxPathLenZero = r.MaxPathLen == 0
		t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
		// anyPolicy: RFC 5280 path validation with a policy set needs
		// one, and CABF requires the extension on subordinate CAs.
		// OIDFromInts fails only for fewer than two arcs or a first arc
		// over 2; this constant has neither.
		anyPolicy, _ := x509.OIDFromInts([]uint64{2, 5, 29, 32, 0})
		t.Policies = []x509.OID{anyPolicy}
		t.CRLDistributionPoints = r.CRLURLs
		t.IssuingCertificateURL = r.IssuerURLs
		t.OCSPServer = r.OCSPURLs
		return t, nil
	case ProfileOCSP:
		t.KeyUsage = x509.KeyUsageDigitalSignature
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
		// No CDP or AIA-OCSP on a responder certificate (CABF
		// e_ocsp_cert_cdp_forbidden); nocheck instead.
		t.ExtraExtensions = []pkix.Extension{{Id: oidOCSPNoCheck, Value: []byte{0x05, 0x00}}}
		return t, nil
	case ProfileServer, ProfileClient, ProfileDevice:
		return leafTemplate(t, r)
	}
	return nil, fmt.Errorf("template: unknown profile %q", r.Profile)
}

func leafTemplate(t *x509.Certificate, r Request) (*x509.Certificate, error) {
	if err := r.Profile.allowedNames(r.Names); err != nil {
		return nil, err
	}
	// ECDSA keys sign, they never encipher: digitalSignature alone. RSA
	// keys in TLS 1.2 RSA key exchange would need keyEncipherment, but our
	// TLS configs only offer ECDHE suites, so the same usage fits both.
	t.KeyUsage = x509.KeyUsageDigitalSignature
	switch r.Profile {
	case ProfileServer:
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case ProfileClient, ProfileDevice:
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	t.DNSNames = r.Names.DNS
	t.IPAddresses = r.Names.IPs
	t.EmailAddresses = r.Names.Emails
	t.URIs = r.Names.URIs
	t.CRLDistributionPoints = r.CRLURLs
	t.OCSPServer = r.OCSPURLs
	t.IssuingCertificateURL = r.IssuerURLs
	if r.Profile == ProfileServer && !cnInSANs(t) {
		if len(t.DNSNames) > 0 {
			t.Subject.CommonName = t.DNSNames[0]
		} else {
			t.Subject.CommonName = t.IPAddresses[0].String()
		}
	}
	return t, nil
}

func cnInSANs(t *x509.Certificate) bool {
	cn := t.Subject.CommonName
	for _, d := range t.DNSNames {
		if d == cn {
			return true
		}
	}
	for _, ip := range t.IPAddresses {
		if ip.String() == cn {
			return true
		}
	}
	return false
}

// NamesOf returns the SAN names of a certificate.
func NamesOf(c *x509.Certificate) Names {
	return Names{DNS: c.DNSNames, IPs: c.IPAddresses, Emails: c.EmailAddresses, URIs: c.URIs}
}

// ProfileOf infers the profile of an existing certificate from its
// extensions, for certificates imported from another CA.
func ProfileOf(c *x509.Certificate) Profile {
	if c.IsCA {
		if c.CheckSignatureFrom(c) == nil {
			return ProfileRoot
		}
		return ProfileIntermediate
	}
	var server, client bool
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageServerAuth:
			server = true
		case x509.ExtKeyUsageClientAuth:
			client = true
		case x509.ExtKeyUsageOCSPSigning:
			return ProfileOCSP
		}
	}
	if client && !server {
		return ProfileClient
	}
	return ProfileServer
}
