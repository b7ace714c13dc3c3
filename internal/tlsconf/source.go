package tlsconf

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/portcullis-dev/portcullis/internal/keystore"
	"github.com/portcullis-dev/portcullis/internal/pki"
)

// Errors callers test with errors.Is.
var (
	ErrKeyMismatch       = errors.New("private key does not match the certificate")
	ErrNoCertificate     = errors.New("no certificate")
	ErrNoPeerCertificate = errors.New("peer presented no certificate")
)

// Source says where the identity and trust roots live, with ghostunnel's
// flag names: --cert/--key, or --keystore (and --storepass), and --cacert.
type Source struct {
	// CertFile is a PEM file: the leaf first, then any intermediates.
	CertFile string
	// KeyFile is the PEM private key for CertFile, possibly encrypted
	// (PKCS#8, or legacy OpenSSL) with Storepass.
	KeyFile string
	// Keystore holds certificate chain and key in one file: a PEM bundle,
	// or PKCS#12 (.p12/.pfx, or any file that is not PEM).
	Keystore string
	// Storepass is the PKCS#12 password or the PEM key's passphrase.
	Storepass string
	// CAFile is a PEM bundle of trusted roots. Empty means the system
	// roots, as in ghostunnel; a server authenticating devices should
	// always name its own CA.
	CAFile string
	// Anonymous: this side has no identity of its own, only trust (a
	// client-mode tunnel with --disable-authentication). It presents no
	// certificate.
	Anonymous bool
}

// Validate reports every problem with s; it reads no files.
func (s Source) Validate() error {
	var errs []error
	hasPair := s.CertFile != "" || s.KeyFile != ""
	switch {
	case s.Anonymous && (s.Keystore != "" || hasPair):
		errs = append(errs, errors.New("anonymous: no cert, key or keystore"))
	case s.Anonymous && s.CAFile == "":
		errs = append(errs, errors.New("anonymous: a CA bundle is required"))
	case s.Anonymous:
	case s.Keystore != "" && hasPair:
		errs = append(errs, errors.New("give either a keystore or a cert and key, not both"))
	case s.Keystore == "" && !hasPair:
		errs = append(errs, errors.New("no identity: give a cert and key, or a keystore"))
	case s.Keystore == "" && s.CertFile == "":
		errs = append(errs, errors.New("key given without a cert"))
	case s.Keystore == "" && s.KeyFile == "":
		errs = append(errs, errors.New("cert given without a key"))
	}
	return errors.Join(errs...)
}

// files lists the paths s reads, in a fixed order.
func (s Source) files() []string {
	var out []string
	for _, p := range []string{s.CertFile, s.KeyFile, s.Keystore, s.CAFile} {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// contents are the bytes of a Source's files, read once per reload.
type contents map[string][]byte

func (s Source) read() (contents, error) {
	c := make(contents, 4)
	for _, p := range s.files() {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err // a *fs.PathError: "open /etc/x.pem: no such file or directory"
		}
		c[p] = b
	}
	return c, nil
}

// digest fingerprints the contents, so a reload of unchanged files skips
// parsing (and the key derivation of an encrypted key) without keeping
// the key's bytes around to compare.
func (s Source) digest(c contents) [32]byte {
	h := sha256.New()
	for _, p := range s.files() {
		fmt.Fprintf(h, "%d:%s%d:", len(p), p, len(c[p]))
		h.Write(c[p])
	}
	return [32]byte(h.Sum(nil))
}

// identity parses the certificate chain and key.
func (s Source) identity(c contents) (*tls.Certificate, error) {
	if s.Anonymous {
		return &tls.Certificate{}, nil
	}
	pass := func() ([]byte, error) { return []byte(s.Storepass), nil }
	if s.Keystore != "" {
		data := c[s.Keystore]
		var (
			cert *tls.Certificate
			err  error
		)
		if isPKCS12(s.Keystore, data) {
			cert, err = parsePKCS12(data, s.Storepass)
		} else {
			cert, err = parseBundle(data, pass)
		}
		if err != nil {
			return nil, fmt.Errorf("keystore %s: %w", s.Keystore, err)
		}
		return cert, nil
	}
	chain, err := parseCertificates(c[s.CertFile])
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", s.CertFile, err)
	}
	key, err := keystore.Parse(c[s.KeyFile], pass)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", s.KeyFile, err)
	}
	if !matches(key, chain[0]) {
		return nil, fmt.Errorf("key %s, certificate %s (%s): %w", s.KeyFile, s.CertFile, chain[0].Subject, ErrKeyMismatch)
	}
	return certificate(key, chain), nil
}

// roots parses the CA bundle, or returns the system roots.
func (s Source) roots(c contents) (*x509.CertPool, []*x509.Certificate, error) {
	if s.CAFile == "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			return nil, nil, fmt.Errorf("loading system roots: %w", err)
		}
		return pool, nil, nil
	}
	certs, err := parseCertificates(c[s.CAFile])
	if err != nil {
		return nil, nil, fmt.Errorf("CA bundle %s: %w", s.CAFile, err)
	}
	pool := x509.NewCertPool()
	for _, cert := range certs {
		pool.AddCert(cert)
	}
	return pool, certs, nil
}

// isPKCS12 goes by the file name, then by content: PKCS#12 is DER (a
// SEQUENCE), so anything with no PEM block and a leading 0x30 is tried as
// PKCS#12.
func isPKCS12(path string, data []byte) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".p12", ".pfx":
		return true
	}
	return len(data) > 0 && data[0] == 0x30 && !bytes.Contains(data, []byte("-----BEGIN"))
}

func parsePKCS12(data []byte, password string) (*tls.Certificate, error) {
	key, chain, err := keystore.ParsePKCS12(data, password)
	if err != nil {
		return nil, fmt.Errorf("PKCS#12: %w", err)
	}
	if !matches(key, chain[0]) {
		return nil, fmt.Errorf("PKCS#12 certificate %s: %w", chain[0].Subject, ErrKeyMismatch)
	}
	return certificate(key, chain), nil
}

// parseBundle reads a PEM file holding one private key and its chain in
// any order; the certificate matching the key becomes the leaf, the
// others follow in file order.
func parseBundle(data []byte, pass keystore.Passphrase) (*tls.Certificate, error) {
	certs, err := parseCertificates(data)
	if err != nil {
		return nil, err
	}
	key, err := keystore.Parse(data, pass)
	if err != nil {
		return nil, err
	}
	for i, c := range certs {
		if matches(key, c) {
			chain := append([]*x509.Certificate{c}, certs[:i]...)
			return certificate(key, append(chain, certs[i+1:]...)), nil
		}
	}
	return nil, fmt.Errorf("none of %d certificates: %w", len(certs), ErrKeyMismatch)
}

// parseCertificates returns every CERTIFICATE block in data, skipping
// other blocks (keys, EC PARAMETERS) the way tls.X509KeyPair does, but
// unlike x509.CertPool.AppendCertsFromPEM failing on a damaged one: a
// half-readable bundle must not silently shrink the trust set.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	blocks, err := pki.DecodePEMBlocks(data)
	if err != nil {
		return nil, err
	}
	certs, err := pki.ParseCertificateBlocks(blocks)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no PEM CERTIFICATE block", ErrNoCertificate)
	}
	return certs, nil
}

func matches(key crypto.Signer, cert *x509.Certificate) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// certificate builds a tls.Certificate with Leaf set, so crypto/tls never
// parses our own certificate during a handshake.
func certificate(key crypto.Signer, chain []*x509.Certificate) *tls.Certificate {
	c := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}
