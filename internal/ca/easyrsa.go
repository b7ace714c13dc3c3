package ca

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/keystore"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
)

// ImportReport says what an easy-rsa import adopted.
type ImportReport struct {
	Certificates int
	Revoked      int
	Expired      int
	Keys         int
	// Skipped lists index.txt entries whose certificate file was missing.
	Skipped []string
}

// EasyRSAOptions shape an import.
type EasyRSAOptions struct {
	// Source is the easy-rsa directory, or its pki/ directory.
	Source string
	// SourcePassphrase unlocks easy-rsa's private/ca.key if it is
	// encrypted.
	SourcePassphrase keystore.Passphrase
	// Passphrase encrypts the adopted CA key in the new directory; empty
	// leaves it in clear (the CLI warns).
	Passphrase []byte
}

// indexEntry is one line of easy-rsa's (openssl ca's) index.txt.
type indexEntry struct {
	status    byte // V, R or E
	serial    string
	revokedAt time.Time
	reason    int
	dn        string
}

type adopted struct {
	cert *x509.Certificate
	rec  *store.Cert
	key  crypto.Signer
}

// ImportEasyRSA adopts an easy-rsa PKI into a new CA directory: its CA
// (as a root-only CA), every certificate in index.txt with its status and
// revocation reason, the leaf keys, and the CRL number. It reads and checks
// everything before writing anything, and never modifies the source.
func ImportEasyRSA(ctx context.Context, dir string, st store.Store, o EasyRSAOptions, opts Options) (*Authority, *ImportReport, error) {
	opts.defaults()
	if Exists(dir) {
		return nil, nil, fmt.Errorf("%s: %w", dir, ErrExists)
	}
	if err := checkPassphrase(o.Passphrase); err != nil {
		return nil, nil, err
	}
	src := o.Source
	if _, err := os.Stat(filepath.Join(src, "pki", "index.txt")); err == nil {
		src = filepath.Join(src, "pki")
	}
	caCert, err := readCert(filepath.Join(src, "ca.crt"))
	if err != nil {
		return nil, nil, fmt.Errorf("easy-rsa PKI %s: %w", o.Source, err)
	}
	if !caCert.IsCA {
		return nil, nil, fmt.Errorf("easy-rsa %s/ca.crt is not a CA certificate", src)
	}
	caKey, err := keystore.LoadFile(filepath.Join(src, "private", "ca.key"), o.SourcePassphrase)
	if err != nil {
		return nil, nil, fmt.Errorf("easy-rsa CA key: %w", err)
	}
	if !publicKeysEqual(caKey.Public(), caCert.PublicKey) {
		return nil, nil, fmt.Errorf("easy-rsa %s/private/ca.key does not match ca.crt", src)
	}
	kt, err := pki.KeyTypeOf(caKey.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("easy-rsa CA key: %w", err)
	}
	entries, err := readIndex(filepath.Join(src, "index.txt"))
	if err != nil {
		return nil, nil, err
	}
	certs, report, err := collectEasyRSA(src, caCert, entries, opts.Now())
	if err != nil {
		return nil, nil, err
	}

	cfg := DefaultConfig()
	cfg.KeyType = kt
	if len(caCert.Subject.Organization) > 0 {
		cfg.Organization = caCert.Subject.Organization[0]
	}
	if len(caCert.Subject.Country) == 1 && len(caCert.Subject.Country[0]) == 2 {
		cfg.Country = caCert.Subject.Country[0]
	}
	l := Layout{Dir: dir}
	if err := l.Create(); err != nil {
		return nil, nil, err
	}
	now := opts.Now()
	// One transaction: the import is recorded whole or not at all.
	recs := []*store.Cert{record(caCert, "ca", pki.ProfileRoot, now)}
	for _, c := range certs {
		recs = append(recs, c.rec)
	}
	if err := st.CreateCerts(ctx, recs); err != nil {
		return nil, nil, err
	}
	if n, ok := easyRSACRLNumber(src, caCert); ok {
		if err := st.SetCRLNumber(ctx, issuerID(caCert), n); err != nil {
			return nil, nil, err
		}
	}
	if err := writeImportFiles(l, cfg, caCert, caKey, o.Passphrase, certs); err != nil {
		return nil, nil, err
	}
	for _, c := range certs {
		if c.key != nil {
			report.Keys++
		}
	}
	a, err := Open(ctx, dir, st, opts)
	if err != nil {
		return nil, nil, err
	}
	if err := a.adoptKey(caKey); err != nil {
		return nil, nil, err
	}
	if _, err := a.CRL(ctx); err != nil {
		return nil, nil, fmt.Errorf("writing the CRL: %w", err)
	}
	a.audit(ctx, "ca.imported", slog.String("source", o.Source), slog.String("format", "easy-rsa"),
		slog.Int("certificates", report.Certificates), slog.Int("revoked", report.Revoked),
		slog.Int("keys", report.Keys), slog.Int("skipped", len(report.Skipped)))
	return a, report, nil
}

// readIndex parses index.txt: status, expiry, revocation[,reason], serial,
// file (always "unknown"), DN, separated by tabs.
func readIndex(path string) ([]indexEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading easy-rsa index: %w", err)
	}
	var out []indexEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		e, err := parseIndexLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

func parseIndexLine(s string) (indexEntry, error) {
	f := strings.Split(s, "\t")
	if len(f) != 6 || len(f[0]) != 1 || !strings.Contains("VRE", f[0]) {
		return indexEntry{}, fmt.Errorf("want 6 tab-separated fields starting with V, R or E: %q", s)
	}
	e := indexEntry{status: f[0][0], dn: f[5]}
	n, err := pki.ParseSerial(f[3])
	if err != nil {
		return indexEntry{}, err
	}
	e.serial = pki.SerialString(n)
	if e.status == 'R' {
		when, reason, _ := strings.Cut(f[2], ",")
		if e.revokedAt, err = parseIndexTime(when); err != nil {
			return indexEntry{}, fmt.Errorf("revocation time %q: %w", when, err)
		}
		e.reason = 0
		if reason != "" {
			code, ok := indexReason(reason)
			if !ok {
				return indexEntry{}, fmt.Errorf("unknown revocation reason %q", reason)
			}
			e.reason = code
		}
	}
	return e, nil
}

// parseIndexTime reads the ASN.1 UTCTime (YYMMDDHHMMSSZ) or
// GeneralizedTime (YYYYMMDDHHMMSSZ) that openssl ca writes. The digits are
// checked first because time.Parse also accepts a fractional second the
// layout does not name ("…12.1Z"), which openssl never writes and which
// would not survive being written back.
func parseIndexTime(s string) (time.Time, error) {
	digits := strings.TrimSuffix(s, "Z")
	if len(digits) == len(s) || (len(digits) != 12 && len(digits) != 14) ||
		strings.TrimLeft(digits, "0123456789") != "" {
		return time.Time{}, errors.New("want YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ")
	}
	if len(digits) == 12 {
		return time.Parse("060102150405Z", s)
	}
	return time.Parse("20060102150405Z", s)
}

// indexReason reads the reason openssl ca writes after the revocation
// time. openssl compares it case-blind and spells it "CACompromise"; with
// -crl_hold or -crl_compromise it writes a pseudo-reason and a third field
// ("holdInstruction,<oid>", "keyTime,<time>", "CAkeyTime,<time>").
func indexReason(s string) (int, bool) {
	s, _, _ = strings.Cut(s, ",")
	for name, code := range reasons {
		if strings.EqualFold(name, s) {
			return code, true
		}
	}
	code, ok := map[string]int{"holdinstruction": 6, "keytime": 1, "cakeytime": 2}[strings.ToLower(s)]
	return code, ok
}

// collectEasyRSA finds the certificate of every index entry, checks it was
// signed by the CA, and decides names and statuses.
func collectEasyRSA(src string, ca *x509.Certificate, entries []indexEntry, now time.Time) ([]*adopted, *ImportReport, error) {
	byName, err := issuedBySerial(src)
	if err != nil {
		return nil, nil, err
	}
	report := &ImportReport{}
	var out []*adopted
	for _, e := range entries {
		c, name, err := findEasyRSACert(src, e.serial, byName)
		if errors.Is(err, os.ErrNotExist) {
			report.Skipped = append(report.Skipped, fmt.Sprintf("serial %s (%s): no certificate file", e.serial, e.dn))
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if err := c.CheckSignatureFrom(ca); err != nil {
			return nil, nil, fmt.Errorf("easy-rsa certificate %s is not signed by its ca.crt: %w", e.serial, err)
		}
		if name == "" || CheckName(name) != nil {
			name = sanitizeName(c.Subject.CommonName, e.serial)
		}
		rec := record(c, name, pki.ProfileOf(c), now)
		switch e.status {
		case 'R':
			rec.Status, rec.RevokedAt, rec.Reason = store.StatusRevoked, e.revokedAt, e.reason
			report.Revoked++
		case 'E':
			report.Expired++
		}
		out = append(out, &adopted{cert: c, rec: rec})
	}
	// One active certificate per name: the newest unrevoked one; older
	// ones (easy-rsa renewals) are superseded.
	sort.SliceStable(out, func(i, j int) bool { return out[i].cert.NotBefore.Before(out[j].cert.NotBefore) })
	latest := map[string]*adopted{}
	for _, c := range out {
		if c.rec.Status != store.StatusActive {
			continue
		}
		if prev := latest[c.rec.Name]; prev != nil {
			prev.rec.Status = store.StatusSuperseded
		}
		latest[c.rec.Name] = c
	}
	for name, c := range latest {
		k, err := keystore.LoadFile(filepath.Join(src, "private", name+".key"), nil)
		if err == nil && publicKeysEqual(k.Public(), c.cert.PublicKey) {
			c.key = k
		}
	}
	report.Certificates = len(out)
	return out, report, nil
}

// issuedBySerial maps serials to names from issued/NAME.crt.
func issuedBySerial(src string) (map[string]string, error) {
	m := map[string]string{}
	files, err := filepath.Glob(filepath.Join(src, "issued", "*.crt"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading easy-rsa certificate: %w", err)
		}
		certs, err := pki.ParseCertificates(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		m[pki.SerialString(certs[0].SerialNumber)] = strings.TrimSuffix(filepath.Base(f), ".crt")
	}
	return m, nil
}

func findEasyRSACert(src, serial string, names map[string]string) (*x509.Certificate, string, error) {
	upper := strings.ToUpper(serial)
	if len(upper)%2 == 1 {
		upper = "0" + upper
	}
	candidates := []string{
		filepath.Join(src, "certs_by_serial", upper+".pem"),
		filepath.Join(src, "revoked", "certs_by_serial", upper+".crt"),
		filepath.Join(src, "renewed", "certs_by_serial", upper+".crt"),
	}
	if n, ok := names[serial]; ok {
		candidates = append([]string{filepath.Join(src, "issued", n+".crt")}, candidates...)
	}
	for _, p := range candidates {
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("reading easy-rsa certificate: %w", err)
		}
		certs, err := pki.ParseCertificates(data)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", p, err)
		}
		if pki.SerialString(certs[0].SerialNumber) != serial {
			return nil, "", fmt.Errorf("%s holds serial %x, index.txt says %s", p, certs[0].SerialNumber, serial)
		}
		return certs[0], names[serial], nil
	}
	return nil, "", os.ErrNotExist
}

// sanitizeName makes a file-safe name from a CN, falling back to the serial.
func sanitizeName(cn, serial string) string {
	var b strings.Builder
	for _, r := range cn {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_', r == '@':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('_')
		}
	}
	if CheckName(b.String()) != nil {
		return "serial-" + serial
	}
	return b.String()
}

// easyRSACRLNumber returns the last CRL number easy-rsa used, from its
// crlnumber file (which holds the next one) or its current CRL.
func easyRSACRLNumber(src string, ca *x509.Certificate) (int64, bool) {
	if data, err := os.ReadFile(filepath.Join(src, "crlnumber")); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 16, 64); err == nil && n > 0 {
			return n - 1, true
		}
	}
	data, err := os.ReadFile(filepath.Join(src, "crl.pem"))
	if err != nil {
		return 0, false
	}
	der, err := pki.DecodeOne(data, "X509 CRL")
	if err != nil {
		return 0, false
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil || crl.CheckSignatureFrom(ca) != nil || crl.Number == nil || !crl.Number.IsInt64() {
		return 0, false
	}
	return crl.Number.Int64(), true
}

func writeImportFiles(l Layout, cfg Config, caCert *x509.Certificate, caKey crypto.Signer, pass []byte, certs []*adopted) error {
	if err := keystore.WriteFile(l.RootKey(), caKey, pass); err != nil {
		return err
	}
	for _, p := range []string{l.RootCert(), l.Bundle()} {
		if err := writePublic(p, pki.EncodeCertificates(caCert)); err != nil {
			return err
		}
	}
	for _, c := range certs {
		if c.rec.Status != store.StatusActive {
			continue
		}
		a := &Authority{layout: l}
		batch, _, err := a.stageLeaf(c.rec.Name, c.cert, c.key)
		if err != nil {
			return err
		}
		if err := batch.Commit(); err != nil {
			return err
		}
	}
	data, err := cfg.Marshal()
	if err != nil {
		return err
	}
	return writePublic(l.Config(), data)
}
