package control

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/atomicfile"
	"github.com/portcullis-dev/portcullis/internal/ca"
	"github.com/portcullis-dev/portcullis/internal/keystore"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
)

// ServerName is the store name of the server's own TLS certificate.
const ServerName = "portcullis-server"

// Paths are the files the first run makes, which the banner names.
type Paths struct {
	Root, Bundle, Passphrase string
	AdminP12, AdminPass      string
	AdminCert, AdminKey      string
}

func paths(l ca.Layout, passphraseFile string) Paths {
	return Paths{Root: l.RootCert(), Bundle: l.Bundle(), Passphrase: passphraseFile,
		AdminP12: l.P12(AdminName), AdminPass: l.P12(AdminName) + ".pass",
		AdminCert: l.Chain(AdminName), AdminKey: l.Key(AdminName)}
}

// passphrase returns the CA passphrase source and, on first run, makes a
// random passphrase file when none is configured, so the CA keys are
// encrypted at rest from the start. (The file sits beside the keys: it
// guards against a copied key file, not a copied directory; production
// puts it elsewhere with passphrase_file or the environment.)
func (c *Config) passphrase(firstRun bool) (keystore.Passphrase, string, error) {
	if c.PassphraseFile != "" {
		return keystore.FromFile(c.PassphraseFile), c.PassphraseFile, nil
	}
	if os.Getenv(passphraseEnv) != "" {
		return keystore.FromEnv(passphraseEnv), "$" + passphraseEnv, nil
	}
	path := filepath.Join(c.Data, "ca-passphrase")
	if firstRun {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			b := make([]byte, 24)
			_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
			if err := atomicfile.WriteFile(path, []byte(base64.RawURLEncoding.EncodeToString(b)+"\n"), 0o600); err != nil {
				return nil, "", fmt.Errorf("writing the CA passphrase: %w", err)
			}
		}
	}
	return keystore.FromFile(path), path, nil
}

// passphraseEnv is shared with `portcullis ca`.
const passphraseEnv = "PORTCULLIS_CA_PASSPHRASE"

// firstRun creates what a fresh data directory lacks: the CA (with CRL
// and OCSP URLs on the public listener), the server certificate, and the
// first admin's certificate as PEM and PKCS#12 with a password file.
func firstRun(ctx context.Context, c *Config, st store.Store, opts ca.Options, pass keystore.Passphrase) (*ca.Authority, error) {
	io := ca.DefaultInitOptions()
	io.URLs = ca.URLs{CRL: []string{c.publicURL() + "/crl/issuing.crl"}, OCSP: []string{c.publicURL() + "/ocsp"}}
	p, err := pass()
	if err != nil {
		return nil, err
	}
	io.Passphrase = p
	a, err := ca.Init(ctx, c.Data, st, io, opts)
	if err != nil {
		return nil, err
	}
	admin, err := a.Issue(ctx, ca.IssueRequest{Profile: pki.ProfileClient, Name: AdminName})
	if err != nil {
		return nil, fmt.Errorf("issuing the first admin certificate: %w", err)
	}
	secret := make([]byte, 18)
	_, _ = rand.Read(secret) // never fails (Go 1.24+).
	password := base64.RawURLEncoding.EncodeToString(secret)
	exp, err := a.Export(ctx, admin.Record.Serial, ca.ExportOptions{Format: ca.FormatP12, Password: password})
	if err != nil {
		return nil, fmt.Errorf("exporting the admin bundle: %w", err)
	}
	ps := paths(a.Layout(), "")
	if err := atomicfile.WriteFile(ps.AdminPass, []byte(password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := exp.WriteFile(ps.AdminP12); err != nil {
		return nil, err
	}
	return a, nil
}

// serverCertificate returns the API's TLS certificate, issuing or renewing
// it when it is missing, covers other names than wanted, or has less than
// a third of its life left.
func serverCertificate(ctx context.Context, c *Config, a *ca.Authority) (tls.Certificate, error) {
	names, err := c.serverNames()
	if err != nil {
		return tls.Certificate{}, err
	}
	l := a.Layout()
	rec, err := a.Find(ctx, ServerName)
	switch {
	case errors.Is(err, store.ErrNotFound):
		_, err = a.Issue(ctx, ca.IssueRequest{Profile: pki.ProfileServer, Name: ServerName, Names: names})
	case err != nil:
	case rec.Status == store.StatusRevoked || !sameNames(rec, names):
		if rec.Status != store.StatusRevoked {
			if _, err = a.Revoke(ctx, rec.Serial, 4); err != nil { // superseded
				break
			}
		}
		_, err = a.Issue(ctx, ca.IssueRequest{Profile: pki.ProfileServer, Name: ServerName, Names: names})
	case time.Until(rec.NotAfter) < rec.NotAfter.Sub(rec.NotBefore)/3:
		_, err = a.Renew(ctx, ServerName, true)
	}
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server certificate: %w", err)
	}
	return tls.LoadX509KeyPair(l.Chain(ServerName), l.Key(ServerName))
}

func sameNames(rec *store.Cert, want pki.Names) bool {
	c, err := x509.ParseCertificate(rec.DER)
	if err != nil {
		return false
	}
	got := pki.NamesOf(c)
	return fmt.Sprint(got.DNS, got.IPs) == fmt.Sprint(want.DNS, want.IPs)
}

// serverNames are the listen host, localhost for a loopback or wildcard
// listener, and hostnames.
func (c *Config) serverNames() (pki.Names, error) {
	host, _, _ := net.SplitHostPort(c.Listen)
	var dns, ips []string
	add := func(h string) {
		if net.ParseIP(h) != nil {
			ips = append(ips, h)
		} else if h != "" {
			dns = append(dns, h)
		}
	}
	switch ip := net.ParseIP(host); {
	case host == "" || (ip != nil && ip.IsUnspecified()):
		add("127.0.0.1")
		add("localhost")
		if h, err := os.Hostname(); err == nil && !strings.Contains(h, "_") {
			add(strings.ToLower(h))
		}
	case ip != nil && ip.IsLoopback():
		add(host)
		add("localhost")
	default:
		add(host)
	}
	for _, h := range c.Hostnames {
		add(h)
	}
	return pki.ParseNames(dns, ips, nil, nil)
}

// fingerprint is the SHA-256 of a certificate, as `openssl x509
// -fingerprint -sha256` prints it.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}
