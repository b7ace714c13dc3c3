// Package keystore holds private keys as crypto.Signer: PEM files, encrypted
// at rest as PKCS#8 PBES2 (readable by `openssl pkey`), PKCS#12 files, and
// later PKCS#11 tokens and TPMs. Key files are untrusted input: their
// encryption parameters and KDF cost are checked before a library decrypts
// them. It also gathers passphrases from files, the environment or a
// terminal.
package keystore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/youmark/pkcs8"

	"github.com/portcullis-dev/portcullis/internal/atomicfile"
	"github.com/portcullis-dev/portcullis/internal/pki"
)

// Errors callers test with errors.Is.
var (
	ErrBadPassphrase = errors.New("wrong passphrase")
	ErrMalformedKey  = errors.New("malformed private key")
	ErrNoPassphrase  = errors.New("key is encrypted and no passphrase was given")
)

// KDFIterations is the PBKDF2-HMAC-SHA-256 work factor for keys we encrypt,
// OWASP's 2023 figure: a few hundred milliseconds per unlock, paid once per
// process, and expensive for anyone guessing offline.
const KDFIterations = 600_000

// Passphrase returns the passphrase for a key when it turns out to be
// encrypted. It is called lazily so an unencrypted key never prompts.
type Passphrase func() ([]byte, error)

// Marshal encodes key as PKCS#8 PEM, encrypted with PBES2 (PBKDF2-SHA-256,
// AES-256-CBC) when passphrase is non-empty.
func Marshal(key crypto.Signer, passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("encoding private key: %w", err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	}
	opts := &pkcs8.Opts{
		Cipher:  pkcs8.AES256CBC,
		KDFOpts: pkcs8.PBKDF2Opts{SaltSize: 16, IterationCount: KDFIterations, HMACHash: crypto.SHA256},
	}
	der, err := pkcs8.MarshalPrivateKey(key, passphrase, opts)
	if err != nil {
		return nil, fmt.Errorf("encrypting private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}), nil
}

// Encrypted reports whether PEM data holds an encrypted key.
func Encrypted(data []byte) bool {
	b, err := keyBlock(data)
	return err == nil && (b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] == "4,ENCRYPTED")
}

// keyBlock finds the one private key among the PEM blocks of data. Other
// blocks are skipped: openssl ecparam writes EC PARAMETERS before the key,
// and a keystore bundle holds the certificate chain too. Every block must
// decode (pki.DecodePEMBlocks), so a damaged key is not passed over for
// another one.
func keyBlock(data []byte) (*pem.Block, error) {
	blocks, err := pki.DecodePEMBlocks(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedKey, err)
	}
	var key *pem.Block
	for _, b := range blocks {
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		if key != nil {
			return nil, fmt.Errorf("%w: more than one private key", ErrMalformedKey)
		}
		key = b
	}
	if key == nil {
		return nil, fmt.Errorf("%w: no PEM private key block", ErrMalformedKey)
	}
	return key, nil
}

// Parse decodes the private key in PEM data (see keyBlock): PKCS#8 (plain
// or encrypted), SEC 1 "EC PRIVATE KEY" and PKCS#1 "RSA PRIVATE KEY"
// (plain, or with the legacy OpenSSL Proc-Type encryption older easy-rsa
// versions wrote).
func Parse(data []byte, pass Passphrase) (crypto.Signer, error) {
	block, err := keyBlock(data)
	if err != nil {
		return nil, err
	}
	der := block.Bytes
	if block.Type == "ENCRYPTED PRIVATE KEY" {
		return parseEncrypted(der, pass)
	}
	//lint:ignore SA1019 legacy encrypted PEM is insecure, but existing easy-rsa and openssl PKIs have such keys and import must read them once.
	if x509.IsEncryptedPEMBlock(block) {
		pw, err := ask(pass)
		if err != nil {
			return nil, err
		}
		//lint:ignore SA1019 see above.
		der, err = x509.DecryptPEMBlock(block, pw)
		if err != nil {
			return nil, ErrBadPassphrase
		}
		// As with PKCS#8: a wrong passphrase leaves valid padding on
		// garbage about 1 time in 256, and the key parser then fails.
		k, err := parseDER(block.Type, der)
		if err != nil {
			return nil, fmt.Errorf("%w (or a damaged key: %v)", ErrBadPassphrase, err)
		}
		return k, nil
	}
	return parseDER(block.Type, der)
}

// parseEncrypted decrypts a PKCS#8 EncryptedPrivateKeyInfo. The file is
// checked before the passphrase is asked for or the library sees it.
func parseEncrypted(der []byte, pass Passphrase) (crypto.Signer, error) {
	if err := checkPBES2(der); err != nil {
		return nil, err
	}
	pw, err := ask(pass)
	if err != nil {
		return nil, err
	}
	k, err := contain("PKCS#8 decryption", func() (any, error) { return pkcs8.ParsePKCS8PrivateKey(der, pw) })
	switch {
	case errors.Is(err, ErrMalformedKey):
		return nil, err
	case err != nil && (strings.Contains(err.Error(), "password") || strings.Contains(err.Error(), "padding")):
		return nil, ErrBadPassphrase
	case err != nil:
		// A wrong passphrase can decrypt to garbage with valid
		// padding (1 in 256); the parse error then means the same.
		return nil, fmt.Errorf("%w (or a damaged key: %v)", ErrBadPassphrase, err)
	}
	return signer(k)
}

// errPanicked marks a contained library panic, so fuzz targets still
// report one.
var errPanicked = errors.New("panicked")

// contain runs a third-party parser on untrusted bytes and turns a panic
// into an ErrMalformedKey: a damaged key file must fail the load, or a
// reload that keeps the old key, never end the process. The checks before
// each call are the real fix; this catches what they miss.
func contain[T any](what string, parse func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero T
			v, err = zero, fmt.Errorf("%w: %s %w: %v", ErrMalformedKey, what, errPanicked, r)
		}
	}()
	return parse()
}

func ask(pass Passphrase) ([]byte, error) {
	if pass == nil {
		return nil, ErrNoPassphrase
	}
	pw, err := pass()
	if err != nil {
		return nil, err
	}
	if len(pw) == 0 {
		return nil, ErrNoPassphrase
	}
	return pw, nil
}

func parseDER(typ string, der []byte) (crypto.Signer, error) {
	var (
		k   any
		err error
	)
	switch typ {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(der)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(der)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(der)
	default:
		return nil, fmt.Errorf("%w: PEM block is %q, want a private key", ErrMalformedKey, typ)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedKey, strings.TrimPrefix(err.Error(), "x509: "))
	}
	return signer(k)
}

func signer(k any) (crypto.Signer, error) {
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	case crypto.Signer:
		return k, nil
	}
	return nil, fmt.Errorf("%w: %T is not a signing key", ErrMalformedKey, k)
}

// WriteFile stores key at path, 0600, atomically, encrypted when
// passphrase is non-empty.
func WriteFile(path string, key crypto.Signer, passphrase []byte) error {
	data, err := Marshal(key, passphrase)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o600)
}

// LoadFile reads a key written by WriteFile, or by openssl or easy-rsa.
func LoadFile(path string, pass Passphrase) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	k, err := Parse(data, pass)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	return k, nil
}
