package pki

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
)

// MaxCSRSize bounds the CSR input the CA reads. Real CSRs are under 4 KiB;
// the bound keeps a hostile upload from costing memory or parse time.
const MaxCSRSize = 64 << 10

// Errors a CSR check returns, for callers that map them to statuses.
var (
	ErrMalformedCSR = errors.New("malformed CSR")
	ErrCSRSignature = errors.New("CSR signature does not verify")
	ErrCSRAsksForCA = errors.New("CSR asks for a CA certificate")
)

var oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}

// ParseCSR reads one PKCS#10 request, PEM ("CERTIFICATE REQUEST" or the
// older "NEW CERTIFICATE REQUEST") or raw DER. A second block, a damaged
// block, text after the block or trailing DER bytes are errors: a CSR file
// holds one CSR. Text before the block is ignored (DecodePEMBlocks).
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	if len(data) > MaxCSRSize {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrMalformedCSR, len(data), MaxCSRSize)
	}
	der, err := DecodeOne(data, "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedCSR, err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformedCSR, derError(err))
	}
	return csr, nil
}

// derError shortens a parse error for one log or CLI line: encoding/asn1
// errors carry Go struct dumps that mean nothing to an operator.
func derError(err error) string {
	msg := trimX509(err)
	if strings.Contains(msg, "asn1:") {
		if i := strings.Index(msg, " ("); i > 0 {
			msg = msg[:i]
		}
		if i := strings.Index(msg, " {"); i > 0 {
			msg = msg[:i]
		}
		return "not valid DER (" + msg + ")"
	}
	return msg
}

func trimX509(err error) string { return strings.TrimPrefix(err.Error(), "x509: ") }

// CheckCSR verifies what a CSR proves and asks for, and returns the names
// it requests. It checks the self-signature (proof of possession), the key
// strength, that no CA certificate is requested, and the syntax of every
// name. With cnAsDNS, a CN that is a valid DNS name joins the DNS names
// (openssl req without a SAN section puts the host name only there).
func CheckCSR(csr *x509.CertificateRequest, cnAsDNS bool) (Names, error) {
	if _, err := KeyTypeOf(csr.PublicKey); err != nil {
		return Names{}, err
	}
	if err := csr.CheckSignature(); err != nil {
		return Names{}, fmt.Errorf("%w: %v", ErrCSRSignature, trimX509(err))
	}
	for _, ext := range csr.Extensions {
		if !ext.Id.Equal(oidBasicConstraints) {
			continue
		}
		var bc struct {
			IsCA       bool `asn1:"optional"`
			MaxPathLen int  `asn1:"optional,default:-1"`
		}
		if _, err := asn1.Unmarshal(ext.Value, &bc); err != nil {
			return Names{}, fmt.Errorf("%w: basicConstraints: %v", ErrMalformedCSR, err)
		}
		if bc.IsCA {
			return Names{}, ErrCSRAsksForCA
		}
	}
	uris := make([]string, len(csr.URIs))
	for i, u := range csr.URIs {
		uris[i] = u.String()
	}
	ips := make([]string, len(csr.IPAddresses))
	for i, ip := range csr.IPAddresses {
		ips[i] = ip.String()
	}
	dns := append([]string(nil), csr.DNSNames...)
	if cn := strings.ToLower(csr.Subject.CommonName); cnAsDNS && cn != "" && checkDNSName(cn) == nil && !contains(dns, cn) {
		dns = append(dns, cn)
	}
	names, err := ParseNames(dns, ips, csr.EmailAddresses, uris)
	if err != nil {
		return Names{}, fmt.Errorf("%w: %v", ErrMalformedCSR, err)
	}
	return names, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
