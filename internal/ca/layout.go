package ca

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// Layout names the files of a CA directory. It follows easy-rsa's shape so
// its users find things where they expect them.
type Layout struct{ Dir string }

func (l Layout) path(p ...string) string { return filepath.Join(append([]string{l.Dir}, p...)...) }

// The files of a CA directory.
func (l Layout) Config() string           { return l.path("ca.yaml") }
func (l Layout) DB() string               { return l.path("portcullis.db") }
func (l Layout) Audit() string            { return l.path("audit.log") }
func (l Layout) RootCert() string         { return l.path("ca.crt") }
func (l Layout) IntermediateCert() string { return l.path("intermediate.crt") }
func (l Layout) Bundle() string           { return l.path("ca-bundle.crt") }
func (l Layout) CRL() string              { return l.path("crl.pem") }
func (l Layout) IssuedDir() string        { return l.path("issued") }
func (l Layout) PrivateDir() string       { return l.path("private") }
func (l Layout) RootKey() string          { return l.path("private", "ca.key") }
func (l Layout) IntermediateKey() string  { return l.path("private", "intermediate.key") }
func (l Layout) Cert(name string) string  { return l.path("issued", name+".crt") }
func (l Layout) Chain(name string) string { return l.path("issued", name+".chain.crt") }
func (l Layout) Key(name string) string   { return l.path("private", name+".key") }
func (l Layout) P12(name string) string   { return l.path("private", name+".p12") }
func (l Layout) OCSPCert() string         { return l.path("ocsp-responder.crt") }
func (l Layout) OCSPKey() string          { return l.path("private", "ocsp-responder.key") }

// File modes of a CA directory: keys (and anything holding one) are for
// the CA's user alone, whatever the umask; certificates are public.
const (
	privateDirMode os.FileMode = 0o700
	publicDirMode  os.FileMode = 0o755
	keyFileMode    os.FileMode = 0o600
	publicFileMode os.FileMode = 0o644
)

// Create makes the directory and its issued/ and private/ folders, each
// with its mode; existing ones are left as they are.
func (l Layout) Create() error {
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{l.Dir, publicDirMode}, {l.IssuedDir(), publicDirMode}, {l.PrivateDir(), privateDirMode}} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return fmt.Errorf("creating CA directory: %w", err)
		}
	}
	return nil
}

// Rollback notes which files of a CA directory exist now (extra names
// files outside it, such as an exported root key) and returns a function
// that removes every one created since: a failed init or import, store
// files included, leaves the directory as it was.
func (l Layout) Rollback(extra ...string) func() {
	paths := append([]string{l.DB(), l.DB() + "-wal", l.DB() + "-shm", l.Audit(), l.Config(), l.RootCert(),
		l.IntermediateCert(), l.Bundle(), l.CRL(), l.RootKey(), l.IntermediateKey(), l.IssuedDir(), l.PrivateDir(), l.Dir}, extra...)
	existed := map[string]bool{}
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			existed[p] = true
		}
	}
	return func() {
		for _, p := range paths {
			if p != "" && !existed[p] {
				os.RemoveAll(p)
			}
		}
	}
}

// validName keeps names usable as file stems on every OS the agent runs on:
// no separators, no dot-files, no "..".
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)

// reservedNames are the stems of the CA's own files.
var reservedNames = map[string]bool{"ca": true, "intermediate": true, "ca-bundle": true, responderName: true}

// CheckName validates a certificate name.
func CheckName(name string) error {
	if !validName.MatchString(name) || filepath.Ext(name) == ".chain" {
		return fmt.Errorf("name %q: want letters, digits, '.', '_', '@', '-' (1-128, not starting with a dot or dash)", name)
	}
	if reservedNames[name] {
		return fmt.Errorf("name %q is reserved for the CA's own files", name)
	}
	return nil
}
