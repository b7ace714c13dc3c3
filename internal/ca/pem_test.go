package ca

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/pki/pkitest"
)

// TestOpenDamagedPEM: Open fails naming the block when a certificate file
// of the CA holds a block that does not decode, in the middle or at the
// end, rather than reading the good blocks around it.
func TestOpenDamagedPEM(t *testing.T) {
	f := newCA(t, nil)
	l := f.a.Layout()
	root, issuer := pki.EncodeCertificates(f.a.Root()), pki.EncodeCertificates(f.a.Issuer())
	bad, cat := pkitest.DamagePEM, pkitest.Cat
	tests := []struct {
		name  string
		path  string
		data  []byte
		block int
	}{
		{"root, damaged in the middle", l.RootCert(), cat(root, bad(issuer), issuer), 2},
		{"root, damaged at the end", l.RootCert(), cat(root, bad(issuer)), 2},
		{"intermediate, damaged in the middle", l.IntermediateCert(), cat(issuer, bad(root), root), 2},
		{"intermediate, damaged at the end", l.IntermediateCert(), cat(issuer, root, bad(root)), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved, err := os.ReadFile(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.WriteFile(tt.path, saved, 0o644) })
			if err := os.WriteFile(tt.path, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = Open(context.Background(), f.dir, f.st, Options{})
			var pe *pki.PEMError
			if !errors.As(err, &pe) || pe.Block != tt.block {
				t.Errorf("Open(%s) = %v, want a PEM error at block %d", tt.name, err, tt.block)
			}
		})
	}
}
