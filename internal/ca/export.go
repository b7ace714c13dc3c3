package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/portcullis-dev/portcullis/internal/atomicfile"
	"github.com/portcullis-dev/portcullis/internal/keystore"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
)

// ExportFormat selects what Export produces.
type ExportFormat string

// Formats: a PEM chain (leaf, intermediate, optionally root and key) or a
// PKCS#12 file with the key.
const (
	FormatPEM ExportFormat = "pem"
	FormatP12 ExportFormat = "p12"
)

// ExportOptions shape an export.
type ExportOptions struct {
	Format ExportFormat
	// WithRoot appends the root to a PEM chain (off by default: peers
	// should trust the root from their own store, not from the chain).
	WithRoot bool
	// WithKey puts the private key first in a PEM export.
	WithKey bool
	// Password protects a PKCS#12 export.
	Password string
}

// Exported is the outcome of an export.
type Exported struct {
	Data   []byte
	Record *store.Cert
	// Path is where the export goes when the caller names no file:
	// private/NAME.p12 for a PKCS#12, "" (standard output) for PEM.
	Path string
	// Perm is the mode of a file holding Data: 0600 with a key in it.
	Perm os.FileMode
}

// WriteFile writes the export to path atomically, with e.Perm.
func (e *Exported) WriteFile(path string) error {
	return atomicfile.WriteFile(path, e.Data, e.Perm)
}

// ErrNoKey: the certificate's private key is not in the CA directory: its
// holder made the CSR and keeps the key.
var ErrNoKey = errors.New("no private key here")

// Export returns the certificate ref points to in the asked format. Only
// certificates whose key the CA generated can be exported with their key
// (else ErrNoKey), and no revoked certificate (ErrRevoked).
func (a *Authority) Export(ctx context.Context, ref string, o ExportOptions) (*Exported, error) {
	rec, err := a.Find(ctx, ref)
	if err != nil {
		return nil, err
	}
	// As step-ca and easy-rsa do: a revoked certificate is not handed out
	// for deployment, least of all with its key in a PKCS#12.
	if err := usable(rec); err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(rec.DER)
	if err != nil {
		return nil, fmt.Errorf("stored certificate %s: %w", rec.Serial, err)
	}
	chain := append([]*x509.Certificate{leaf}, a.chain...)
	if o.WithRoot && len(a.chain) > 0 {
		chain = append(chain, a.root)
	}
	var key crypto.Signer
	if o.Format == FormatP12 || o.WithKey {
		if key, err = keystore.LoadFile(a.layout.Key(rec.Name), nil); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%s: %w (it was signed from a CSR)", rec.Name, ErrNoKey)
			}
			return nil, err
		}
		if !publicKeysEqual(key.Public(), leaf.PublicKey) {
			return nil, fmt.Errorf("%s does not match certificate %s (renewed or re-keyed since?)", a.layout.Key(rec.Name), rec.Serial)
		}
	}
	var out []byte
	switch o.Format {
	case FormatP12:
		// The PKCS#12 carries the whole chain to the root: importers
		// (Keychain, Windows, NSS) build the path from it.
		cas := append(append([]*x509.Certificate{}, a.chain...), a.root)
		if len(a.chain) == 0 {
			cas = []*x509.Certificate{a.root}
		}
		out, err = pki.EncodePKCS12(key, leaf, cas, o.Password)
	case FormatPEM, "":
		if key != nil {
			out, err = keystore.Marshal(key, nil)
		}
		out = append(out, pki.EncodeCertificates(chain...)...)
	default:
		err = fmt.Errorf("unknown export format %q (want pem or p12)", o.Format)
	}
	if err != nil {
		return nil, err
	}
	a.audit(ctx, "cert.exported", slog.String("serial", rec.Serial), slog.String("name", rec.Name),
		slog.String("format", string(o.Format)), slog.Bool("with_key", key != nil))
	e := &Exported{Data: out, Record: rec, Perm: publicFileMode}
	if key != nil {
		e.Perm = keyFileMode
	}
	if o.Format == FormatP12 {
		e.Path = a.layout.P12(rec.Name)
	}
	return e, nil
}
