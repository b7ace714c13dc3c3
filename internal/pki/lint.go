package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
)

// privatePKIExemptions are the lints of LintSources that a private PKI
// cannot or should not meet, each with its reason. This is the one place
// the exemptions are listed; the CA and the tests both use it.
var privatePKIExemptions = map[string]string{
	"e_sub_cert_cert_policy_empty":                            "no CA/B Forum policy OIDs in a private PKI",
	"e_sub_cert_certificate_policies_missing":                 "no CA/B Forum policy OIDs in a private PKI",
	"e_dnsname_not_valid_tld":                                 "internal names (localhost, .internal, .corp) are the point of a private PKI",
	"n_san_iana_pub_suffix_empty":                             "internal names have no public suffix",
	"e_ext_san_contains_reserved_ip":                          "127.0.0.1 and RFC 1918 addresses are what internal services listen on",
	"e_subject_contains_reserved_ip":                          "an IP-only server gets its IP as CN (Template puts a SAN there), as above",
	"e_sub_cert_locality_name_must_appear":                    "web-PKI organization validation; the subject O names the fleet, not a vetted legal entity",
	"e_sub_cert_province_must_appear":                         "web-PKI organization validation, as above",
	"w_ext_subject_key_identifier_not_recommended_subscriber": "RFC 5280 recommends the SKI on every certificate; CABF's style choice differs",
	"w_subject_common_name_included":                          "legacy peers (stunnel, nginx $ssl_client_s_dn, ghostunnel --allow-cn) match on the CN",
	"w_sub_cert_aia_contains_internal_names":                  "AIA and CRL URLs point at the internal control server",
	"w_sub_cert_aia_does_not_contain_issuing_ca_url":          "peers get the intermediate from the TLS handshake (chain files); caIssuers is baked in only with --issuer-url",
	"e_cabf_ecc_allowed_key_usages":                           "zlint v3.7.1 bug: applies to CA certificates too, so every ECDSA CA with keyCertSign fails",
	"n_ca_digital_signature_not_set":                          "notice only: the root signs certificates and CRLs, not OCSP responses",
	// CA/B Forum ballot SC-081 shortens publicly trusted server certificates
	// in steps by issuance date: 200 days from 2026-03-15, 100 from
	// 2027-03-15, 47 from 2029-03-15. zlint judges the date of notBefore,
	// so with these lints the CA's 90-day default would start failing on
	// 2029-03-15, and every deployment with it. A private CA's server
	// lifetime is ca.yaml's lifetimes.server; the CA caps it at 398 days
	// (ca.MaxServerLifetime), the limit TLS clients apply.
	"e_server_cert_valid_time_longer_than_200_days": "SC-081 web-PKI limit (issued 2026-03-15 to 2027-03-15); the private CA's limit is ca.yaml's, at most 398 days",
	"w_server_cert_valid_time_longer_than_199_days": "SC-081 web-PKI limit, the warning of the 200-day one, as above",
	"e_server_cert_valid_time_longer_than_100_days": "SC-081 web-PKI limit (issued 2027-03-15 to 2029-03-15), as above",
	"w_server_cert_valid_time_longer_than_99_days":  "SC-081 web-PKI limit, the warning of the 100-day one, as above",
	"e_server_cert_valid_time_longer_than_47_days":  "SC-081 web-PKI limit (issued from 2029-03-15): the 90-day default server lifetime would fail it, as above",
	"w_server_cert_valid_time_longer_than_46_days":  "SC-081 web-PKI limit, the warning of the 47-day one, as above",
}

// offlineRevocationExemptions apply on top of privatePKIExemptions when
// the CA has no CRL or OCSP URL configured: its CRL is then handed to relying
// parties as a file (a tunnel's --crl), as easy-rsa users do with OpenVPN,
// and certificates cannot point at a URL that does not exist.
var offlineRevocationExemptions = map[string]string{
	"e_missing_crl_distrib_point":              "no CRL URL configured: the CRL is distributed as a file",
	"e_sub_cert_aia_missing":                   "no OCSP or issuer URL configured: nothing to point at",
	"e_sub_ca_crl_distribution_points_missing": "no CRL URL configured, as above, for the intermediate",
	"w_sub_ca_aia_missing":                     "no OCSP or issuer URL configured, as above, for the intermediate",
}

// PrivatePKIExemptions returns a copy of the lints exempt for a private
// PKI, each with its reason.
func PrivatePKIExemptions() map[string]string { return maps.Clone(privatePKIExemptions) }

// OfflineRevocationExemptions returns a copy of the lints exempt, on top
// of PrivatePKIExemptions, when the CA has no CRL or OCSP URL.
func OfflineRevocationExemptions() map[string]string { return maps.Clone(offlineRevocationExemptions) }

// ErrLint wraps a pre-issuance lint failure: the CA refused to sign.
var ErrLint = errors.New("certificate failed pre-issuance lint")

// LintOptions select the exemptions that apply.
type LintOptions struct {
	// OfflineRevocation: the CA has no CRL or OCSP URL to bake in.
	OfflineRevocation bool
}

// Linter lints a template before the real CA key signs it, as Boulder does:
// it signs the template with a throwaway key of the issuer's type under a
// copy of the issuer, and lints that. A certificate that fails is never
// signed by the real key, so it can never exist.
type Linter struct {
	issuer *x509.Certificate
	key    crypto.Signer
	opts   LintOptions
}

// NewLinter makes a Linter for certificates issued by issuer, whose key is
// of type kt.
func NewLinter(issuer *x509.Certificate, kt KeyType, o LintOptions) (*Linter, error) {
	key, err := GenerateKey(kt, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating lint key: %w", err)
	}
	fake := *issuer
	fake.PublicKey = key.Public()
	return &Linter{issuer: &fake, key: key, opts: o}, nil
}

// Check lints tmpl as it would be issued to pub.
func (l *Linter) Check(tmpl *x509.Certificate, pub crypto.PublicKey) error {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, l.issuer, pub, l.key)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrLint, err)
	}
	return LintDER(der, l.opts)
}
