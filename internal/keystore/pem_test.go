package keystore_test

import (
	"crypto"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/keystore"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/pki/pkitest"
)

// TestLoadFileBlocks: LoadFile takes the one private key among a file's
// PEM blocks, and fails naming the block when any block does not decode,
// before, between or after the others. pem.Decode alone passes over a
// damaged block, so [damaged key A, key B] used to load as key B.
func TestLoadFileBlocks(t *testing.T) {
	a, b := pkitest.Key(t), pkitest.Key(t)
	keyA, keyB := pkitest.KeyPEM(t, a), pkitest.KeyPEM(t, b)
	cert, _ := pkitest.SelfSign(t, pkitest.RootTemplate(t, pkix.Name{CommonName: "self"}))
	certPEM := pkitest.CertPEM(cert)
	ecParams := []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n")
	bad, cat := pkitest.DamagePEM, pkitest.Cat
	tests := []struct {
		name     string
		data     []byte
		want     crypto.Signer // nil: an error
		errBlock int           // the block a PEM error names; 0: another ErrMalformedKey
	}{
		{"EC PARAMETERS first, as openssl ecparam writes", cat(ecParams, keyA), a, 0},
		{"certificate and key", cat(certPEM, keyA), a, 0},
		{"two keys", cat(keyA, keyB), nil, 0},
		{"damaged key before a good one", cat(bad(keyA), keyB), nil, 1},
		{"damaged block in the middle", cat(ecParams, bad(keyA), keyB), nil, 2},
		{"damaged block at the end", cat(keyA, bad(certPEM)), nil, 2},
		{"damaged key at the end", cat(certPEM, keyA, bad(keyB)), nil, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key.pem")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := keystore.LoadFile(path, nil)
			if tt.want != nil {
				if err != nil || !samePublic(got, tt.want) {
					t.Fatalf("LoadFile(%s) = %v, want the key", tt.name, err)
				}
				return
			}
			var pe *pki.PEMError
			if !errors.Is(err, keystore.ErrMalformedKey) || errors.As(err, &pe) != (tt.errBlock > 0) || pe != nil && pe.Block != tt.errBlock {
				t.Errorf("LoadFile(%s) = %v, want ErrMalformedKey naming PEM block %d", tt.name, err, tt.errBlock)
			}
			if keystore.Encrypted(tt.data) {
				t.Errorf("Encrypted(%s) = true for a file Parse refuses", tt.name)
			}
		})
	}
}
