package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/portcullis-dev/portcullis/internal/keystore"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
	"github.com/portcullis-dev/portcullis/internal/store/sqlite"
)

// clock is a settable time source for the CA under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// lockedBuffer collects audit lines from concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) events(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(l.b.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("audit line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

type fixture struct {
	a     *Authority
	st    store.Store
	dir   string
	clock *clock
	audit *lockedBuffer
}

// newCA creates an unencrypted CA (the KDF would cost ~0.3 s per open) with
// a fake clock. Encrypted keys have their own test.
func newCA(t testing.TB, mod func(*InitOptions)) *fixture {
	t.Helper()
	return newCAAt(t, time.Now().UTC().Truncate(time.Second), mod)
}

// newCAAt is newCA with the clock starting at now.
func newCAAt(t testing.TB, now time.Time, mod func(*InitOptions)) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, dir: dir, clock: &clock{t: now}, audit: &lockedBuffer{}}
	io := DefaultInitOptions()
	io.URLs = URLs{CRL: []string{"http://127.0.0.1:8889/crl"}, OCSP: []string{"http://127.0.0.1:8889/ocsp"}}
	if mod != nil {
		mod(&io)
	}
	opts := Options{Now: f.clock.Now, Audit: slog.New(slog.NewJSONHandler(f.audit, nil)), Actor: "test"}
	if f.a, err = Init(context.Background(), dir, st, io, opts); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return f
}

func (f *fixture) verify(t *testing.T, c *x509.Certificate, usage x509.ExtKeyUsage) {
	t.Helper()
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(f.a.Root())
	inter.AddCert(f.a.Issuer())
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}, CurrentTime: f.clock.Now()}); err != nil {
		t.Fatalf("verify %s: %v", c.Subject, err)
	}
}

func names(t *testing.T, dns ...string) pki.Names {
	t.Helper()
	n, err := pki.ParseNames(dns, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestIssueEachProfile(t *testing.T) {
	for _, rootOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("rootOnly=%v", rootOnly), func(t *testing.T) {
			f := newCA(t, func(o *InitOptions) { o.RootOnly = rootOnly })
			ctx := context.Background()
			for _, tc := range []struct {
				profile pki.Profile
				usage   x509.ExtKeyUsage
				names   pki.Names
			}{
				{pki.ProfileServer, x509.ExtKeyUsageServerAuth, names(t, "web.example.com")},
				{pki.ProfileClient, x509.ExtKeyUsageClientAuth, pki.Names{}},
				{pki.ProfileDevice, x509.ExtKeyUsageClientAuth, pki.Names{}},
			} {
				out, err := f.a.Issue(ctx, IssueRequest{Profile: tc.profile, Name: "n-" + string(tc.profile), Names: tc.names})
				if err != nil {
					t.Fatalf("Issue(%s): %v", tc.profile, err)
				}
				f.verify(t, out.Cert, tc.usage)
				rec, err := f.st.Cert(ctx, out.Record.Serial)
				if err != nil || !bytes.Equal(rec.DER, out.Cert.Raw) {
					t.Fatalf("store has %v, %v; want the issued certificate", rec, err)
				}
				if len(out.Cert.SerialNumber.Bytes()) != 17 {
					t.Errorf("serial %x is %d bytes, want 17", out.Cert.SerialNumber, len(out.Cert.SerialNumber.Bytes()))
				}
				info, err := os.Stat(f.a.Layout().Key(out.Record.Name))
				if err != nil || info.Mode().Perm() != 0o600 {
					t.Errorf("key file: %v, mode %v; want 0600", err, info.Mode().Perm())
				}
				chain, err := os.ReadFile(f.a.Layout().Chain(out.Record.Name))
				if err != nil {
					t.Fatal(err)
				}
				certs, err := pki.ParseCertificates(chain)
				if want := 2; rootOnly {
					want = 1
					if err != nil || len(certs) != want {
						t.Errorf("chain file has %d certificates (%v), want %d", len(certs), err, want)
					}
				} else if err != nil || len(certs) != want {
					t.Errorf("chain file has %d certificates (%v), want %d", len(certs), err, want)
				}
			}
			dev, _ := f.st.ActiveCert(ctx, "n-device")
			c, _ := x509.ParseCertificate(dev.DER)
			if len(c.URIs) != 1 || c.URIs[0].String() != "spiffe://portcullis.internal/device/n-device" {
				t.Errorf("device URIs = %v, want the fleet SPIFFE ID", c.URIs)
			}
			if len(c.Subject.OrganizationalUnit) != 1 || c.Subject.OrganizationalUnit[0] != "devices" {
				t.Errorf("device OU = %v, want [devices]", c.Subject.OrganizationalUnit)
			}
		})
	}
}

func TestNameTakenUntilRevokedOrExpired(t *testing.T) {
	f := newCA(t, nil)
	ctx := context.Background()
	req := IssueRequest{Profile: pki.ProfileClient, Name: "alice"}
	first, err := f.a.Issue(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	keyBefore, _ := os.ReadFile(f.a.Layout().Key("alice"))
	if _, err := f.a.Issue(ctx, req); !errors.Is(err, store.ErrNameTaken) {
		t.Fatalf("second Issue = %v, want ErrNameTaken", err)
	}
	if keyAfter, _ := os.ReadFile(f.a.Layout().Key("alice")); !bytes.Equal(keyBefore, keyAfter) {
		t.Fatal("a refused issuance overwrote the existing key")
	}
	if _, err := f.a.Revoke(ctx, "alice", 1); err != nil {
		t.Fatal(err)
	}
	second, err := f.a.Issue(ctx, req)
	if err != nil {
		t.Fatalf("Issue after revoke: %v", err)
	}
	// After expiry the name is free again without a revocation.
	f.clock.Add(31 * day)
	third, err := f.a.Issue(ctx, req)
	if err != nil {
		t.Fatalf("Issue after expiry: %v", err)
	}
	old, _ := f.st.Cert(ctx, second.Record.Serial)
	if old.Status != store.StatusSuperseded {
		t.Errorf("expired predecessor status = %s, want superseded", old.Status)
	}
	if first.Record.Serial == second.Record.Serial || second.Record.Serial == third.Record.Serial {
		t.Error("serial repeated")
	}
}

func TestRenew(t *testing.T) {
	f := newCA(t, nil)
	ctx := context.Background()
	orig, err := f.a.Issue(ctx, IssueRequest{Profile: pki.ProfileServer, Name: "web", Names: names(t, "web.example.com", "api.example.com")})
	if err != nil {
		t.Fatal(err)
	}
	for _, rekey := range []bool{false, true} {
		prev, _ := f.st.ActiveCert(ctx, "web")
		prevCert, _ := x509.ParseCertificate(prev.DER)
		f.clock.Add(time.Hour)
		out, err := f.a.Renew(ctx, "web", rekey)
		if err != nil {
			t.Fatalf("Renew(rekey=%v): %v", rekey, err)
		}
		samePub := publicKeysEqual(out.Cert.PublicKey, prevCert.PublicKey)
		if samePub == rekey {
			t.Errorf("Renew(rekey=%v): same public key = %v", rekey, samePub)
		}
		if fmt.Sprint(out.Cert.DNSNames) != fmt.Sprint(orig.Cert.DNSNames) {
			t.Errorf("renewed DNS names %v, want %v", out.Cert.DNSNames, orig.Cert.DNSNames)
		}
		old, _ := f.st.Cert(ctx, prev.Serial)
		if old.Status != store.StatusSuperseded {
			t.Errorf("old status %s, want superseded", old.Status)
		}
		key, err := keystore.LoadFile(f.a.Layout().Key("web"), nil)
		if err != nil || !publicKeysEqual(key.Public(), out.Cert.PublicKey) {
			t.Errorf("key file does not match the renewed certificate (%v)", err)
		}
		f.verify(t, out.Cert, x509.ExtKeyUsageServerAuth)
	}
	cur, _ := f.st.ActiveCert(ctx, "web")
	if _, err := f.a.Revoke(ctx, cur.Serial, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Renew(ctx, cur.Serial, false); err == nil {
		t.Error("Renew of a revoked certificate succeeded")
	}
}

// TestRenewChecksRulesInForce: renewal applies ca.yaml as it is now, not
// as it was at issuance, so renewing is never a way around a tightened
// name policy or lifetime.
func TestRenewChecksRulesInForce(t *testing.T) {
	tests := []struct {
		name    string
		profile pki.Profile
		names   pki.Names
		tighten func(*Config)
		wantIs  error
		want    string
	}{
		{"dns outside allow", pki.ProfileServer, names(t, "x.evil.com"),
			func(c *Config) { c.NamePolicy.DNS.Allow = []string{".corp.example.com"} }, pki.ErrNameNotAllowed,
			`renewing "n": dns name "x.evil.com" is not allowed by name_policy.dns.allow [.corp.example.com]`},
		{"dns denied", pki.ProfileServer, names(t, "admin.corp.example.com"),
			func(c *Config) { c.NamePolicy.DNS.Deny = []string{"admin.corp.example.com"} }, pki.ErrNameNotAllowed,
			`renewing "n": dns name "admin.corp.example.com" is denied by name_policy.dns.deny "admin.corp.example.com"`},
		{"device uri outside allow", pki.ProfileDevice, pki.Names{},
			func(c *Config) { c.NamePolicy.URI.Allow = []string{"spiffe://other.example/"} }, pki.ErrNameNotAllowed,
			`renewing "n": uri "spiffe://portcullis.internal/device/n" is not allowed by name_policy.uri.allow [spiffe://other.example/]`},
		{"lifetime under the minimum", pki.ProfileClient, pki.Names{},
			func(c *Config) { c.Lifetimes.Client = Duration(time.Minute) }, nil,
			`renewing "n": lifetime 1m0s: shorter than 5m0s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCA(t, nil)
			ctx := context.Background()
			orig, err := f.a.Issue(ctx, IssueRequest{Profile: tt.profile, Name: "n", Names: tt.names})
			if err != nil {
				t.Fatal(err)
			}
			tt.tighten(&f.a.cfg)
			_, err = f.a.Renew(ctx, "n", false)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Renew = %v, want %s", err, tt.want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Renew = %v, want errors.Is %v", err, tt.wantIs)
			}
			if cur, err := f.st.ActiveCert(ctx, "n"); err != nil || cur.Serial != orig.Record.Serial {
				t.Errorf("after a refused renewal the active certificate is %v (%v), want %s", cur, err, orig.Record.Serial)
			}
		})
	}
}

// TestServerAfterSC081 issues and renews a server certificate with the
// default lifetime on dates when the CA/B Forum's SC-081 limits for the web
// PKI (47 days from 2029-03-15) would refuse it: the private CA must keep
// working on those dates.
func TestServerAfterSC081(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(2029, time.June, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC),
	} {
		t.Run(at.Format(time.DateOnly), func(t *testing.T) {
			f := newCAAt(t, at, nil)
			ctx := context.Background()
			out, err := f.a.Issue(ctx, IssueRequest{Profile: pki.ProfileServer, Name: "web", Names: names(t, "web.example.com")})
			if err != nil {
				t.Fatalf("Issue(server) at %s: %v", at, err)
			}
			if got, want := out.Cert.NotAfter.Sub(at), time.Duration(DefaultConfig().Lifetimes.Server); got != want {
				t.Errorf("lifetime %s, want the default %s", got, want)
			}
			f.clock.Add(60 * day)
			if _, err := f.a.Renew(ctx, "web", false); err != nil {
				t.Errorf("Renew(server) at %s: %v", f.clock.Now(), err)
			}
		})
	}
}

// TestIssueLifetimeBounds: a lifetime asked for on the command line meets
// the same bounds as ca.yaml's.
func TestIssueLifetimeBounds(t *testing.T) {
	f := newCA(t, nil)
	ctx := context.Background()
	tests := []struct {
		profile  pki.Profile
		lifetime time.Duration
		ok       bool
	}{
		{pki.ProfileServer, MaxServerLifetime, true},
		{pki.ProfileServer, MaxServerLifetime + day, false},
		{pki.ProfileServer, time.Minute, false},
		{pki.ProfileClient, 400 * day, true},
	}
	for i, tt := range tests {
		req := IssueRequest{Profile: tt.profile, Name: fmt.Sprintf("l%d", i), Names: names(t, "l.example.com"), Lifetime: tt.lifetime}
		if tt.profile != pki.ProfileServer {
			req.Names = pki.Names{}
		}
		if _, err := f.a.Issue(ctx, req); (err == nil) != tt.ok {
			t.Errorf("Issue(%s, %s) = %v, want ok=%v", tt.profile, tt.lifetime, err, tt.ok)
		}
	}
}

func TestRevokeAndCRL(t *testing.T) {
	f := newCA(t, nil)
	ctx := context.Background()
	var serials []string
	for i := range 3 {
		out, err := f.a.Issue(ctx, IssueRequest{Profile: pki.ProfileDevice, Name: fmt.Sprintf("d%d", i), Lifetime: time.Duration(i+1) * day})
		if err != nil {
			t.Fatal(err)
		}
		serials = append(serials, out.Record.Serial)
	}
	var last int64
	for i, s := range serials {
		if _, err := f.a.Revoke(ctx, s, 1); err != nil {
			t.Fatal(err)
		}
		crl := readCRL(t, f)
		if n := crl.Number.Int64(); n <= last {
			t.Errorf("CRL number %d after %d: not increasing", n, last)
		} else {
			last = n
		}
		if len(crl.RevokedCertificateEntries) != i+1 {
			t.Errorf("CRL has %d entries, want %d", len(crl.RevokedCertificateEntries), i+1)
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.ReasonCode != 1 {
				t.Errorf("entry %x reason %d, want 1", e.SerialNumber, e.ReasonCode)
			}
		}
	}
	if _, err := f.a.Revoke(ctx, serials[0], 1); !errors.Is(err, store.ErrAlreadyRevoked) {
		t.Errorf("revoking twice = %v, want ErrAlreadyRevoked", err)
	}
	// Entries leave the CRL once their certificate has expired.
	f.clock.Add(36 * time.Hour)
	if _, err := f.a.CRL(ctx); err != nil {
		t.Fatal(err)
	}
	if crl := readCRL(t, f); len(crl.RevokedCertificateEntries) != 2 {
		t.Errorf("after the first expired, CRL has %d entries, want 2", len(crl.RevokedCertificateEntries))
	}
	if _, err := f.a.Revoke(ctx, "intermediate", 1); err == nil {
		t.Error("revoking the intermediate through the intermediate's own CRL succeeded")
	}
}

// TestRevokeCRLNotPublished: when the CRL cannot be written the revocation
// stands, and the error says the CRL is not out yet.
func TestRevokeCRLNotPublished(t *testing.T) {
	f := newCA(t, nil)
	ctx := context.Background()
	if _, err := f.a.Issue(ctx, IssueRequest{Profile: pki.ProfileClient, Name: "bob"}); err != nil {
		t.Fatal(err)
	}
	crl := f.a.Layout().CRL()
	// A non-empty directory where crl.pem goes: the rename onto it fails.
	if err := os.Remove(crl); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(crl, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	rec, err := f.a.Revoke(ctx, "bob", 1)
	if !errors.Is(err, ErrCRLNotPublished) || rec == nil || rec.Status != store.StatusRevoked {
		t.Errorf("Revoke with an unwritable CRL = %+v, %v; want the revoked record and ErrCRLNotPublished", rec, err)
	}
}

func readCRL(t *testing.T, f *fixture) *x509.RevocationList {
	t.Helper()
	data, err := os.ReadFile(f.a.Layout().CRL())
	if err != nil {
		t.Fatal(err)
	}
	der, err := pki.DecodeOne(data, "X509 CRL")
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(f.a.Issuer()); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if !crl.NextUpdate.After(crl.ThisUpdate) {
		t.Errorf("nextUpdate %v not after thisUpdate %v", crl.NextUpdate, crl.ThisUpdate)
	}
	return crl
}

func TestNamePolicyAndCSR(t *testing.T) {
	f := newCA(t, nil)
	ctx := context.Background()
	f.a.cfg.NamePolicy = pki.NamePolicy{DNS: pki.Rules{Allow: []string{".corp.example.com"}, Deny: []string{"bad.corp.example.com"}}}
	for _, tc := range []struct {
		dns  string
		want error
	}{
		{"a.corp.example.com", nil},
		{"evil.example.org", pki.ErrNameNotAllowed},
		{"bad.corp.example.com", pki.ErrNameNotAllowed},
	} {
		_, err := f.a.Issue(ctx, IssueRequest{Profile: pki.ProfileServer, Name: tc.dns, Names: names(t, tc.dns)})
		if !errors.Is(err, tc.want) {
			t.Errorf("Issue(%s) = %v, want %v", tc.dns, err, tc.want)
		}
	}
	recs, _ := f.st.List(ctx, store.Filter{Profile: "server"})
	if len(recs) != 1 {
		t.Errorf("%d server records, want 1: refusals must record nothing", len(recs))
	}
}

func TestEncryptedKeysAndWrongPassphrase(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	io := DefaultInitOptions()
	io.Passphrase = []byte("correct horse battery")
	if _, err := Init(ctx, dir, st, io, Options{}); err != nil {
		t.Fatal(err)
	}
	l := Layout{Dir: dir}
	for _, p := range []string{l.RootKey(), l.IntermediateKey()} {
		data, _ := os.ReadFile(p)
		if !keystore.Encrypted(data) {
			t.Errorf("%s is not encrypted", p)
		}
	}
	wrong, err := Open(ctx, dir, st, Options{Passphrase: func() ([]byte, error) { return []byte("wrong horse"), nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.Issue(ctx, IssueRequest{Profile: pki.ProfileClient, Name: "x"}); !errors.Is(err, keystore.ErrBadPassphrase) {
		t.Fatalf("Issue with a wrong passphrase = %v, want ErrBadPassphrase", err)
	}
	if recs, _ := st.List(ctx, store.Filter{Profile: "client"}); len(recs) != 0 {
		t.Errorf("%d client records after a failed issue, want 0", len(recs))
	}
	right, _ := Open(ctx, dir, st, Options{Passphrase: func() ([]byte, error) { return io.Passphrase, nil }})
	if _, err := right.Issue(ctx, IssueRequest{Profile: pki.ProfileClient, Name: "x"}); err != nil {
		t.Fatalf("Issue with the right passphrase: %v", err)
	}
}

// TestWriteFailureChangesNothing: when the files cannot be written, the
// certificate is neither recorded nor partly written, and the name stays
// free for a retry once the directory is fixed.
func TestWriteFailureChangesNothing(t *testing.T) {
	f := newCA(t, nil)
	ctx := context.Background()
	issued := f.a.Layout().IssuedDir()
	if err := os.RemoveAll(issued); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(issued, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Issue(ctx, IssueRequest{Profile: pki.ProfileClient, Name: "bob"}); err == nil {
		t.Fatal("Issue succeeded with issued/ being a file")
	}
	if recs, _ := f.st.List(ctx, store.Filter{Name: "bob"}); len(recs) != 0 {
		t.Errorf("%d records for bob after a failed write, want 0", len(recs))
	}
	if left, _ := filepath.Glob(filepath.Join(f.a.Layout().PrivateDir(), "*bob*")); len(left) != 0 {
		t.Errorf("files left behind: %v", left)
	}
	os.Remove(issued)
	if err := os.Mkdir(issued, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Issue(ctx, IssueRequest{Profile: pki.ProfileClient, Name: "bob"}); err != nil {
		t.Fatalf("retry after fixing issued/: %v", err)
	}
}

// TestRecordBeforeFiles: a store refusal (here: a taken name found only by
// the store, as when another process wins the race) leaves no file.
func TestRecordBeforeFiles(t *testing.T) {
	f := newCA(t, nil)
	ctx := context.Background()
	if _, err := f.a.Issue(ctx, IssueRequest{Profile: pki.ProfileClient, Name: "eve"}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(f.a.Layout().Key("eve"))
	cur, _ := f.st.ActiveCert(ctx, "eve")
	stale := *cur
	stale.Version-- // Replace with a stale version: the store refuses
	_, err := f.a.publish(ctx, mustParse(t, cur.DER), nil, &store.Cert{Name: "eve"}, func() error { return f.st.Replace(ctx, &stale, cur) })
	if err == nil {
		t.Fatal("publish succeeded although the store refused")
	}
	if after, _ := os.ReadFile(f.a.Layout().Key("eve")); !bytes.Equal(before, after) {
		t.Error("key file changed although nothing was recorded")
	}
	if tmp, _ := filepath.Glob(filepath.Join(f.a.Layout().IssuedDir(), ".*tmp*")); len(tmp) != 0 {
		t.Errorf("staged files left behind: %v", tmp)
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConcurrentIssuers(t *testing.T) {
	f := newCA(t, nil)
	ctx := context.Background()
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each goroutine opens its own Authority and store handle, as
			// separate `ca issue` processes do.
			st, err := sqlite.Open(ctx, Layout{Dir: f.dir}.DB())
			if err != nil {
				errs <- err
				return
			}
			defer st.Close()
			a, err := Open(ctx, f.dir, st, Options{})
			if err != nil {
				errs <- err
				return
			}
			_, err = a.Issue(ctx, IssueRequest{Profile: pki.ProfileDevice, Name: fmt.Sprintf("dev%d", i%(n/2))})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	var ok, taken int
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrNameTaken):
			taken++
		default:
			t.Errorf("concurrent Issue: %v", err)
		}
	}
	if ok != n/2 || taken != n/2 {
		t.Errorf("%d issued and %d refused as taken, want %d each", ok, taken, n/2)
	}
	recs, _ := f.st.List(ctx, store.Filter{Profile: "device"})
	seen := map[string]bool{}
	for _, r := range recs {
		if seen[r.Serial] {
			t.Errorf("serial %s repeated", r.Serial)
		}
		seen[r.Serial] = true
	}
	if len(recs) != n/2 {
		t.Errorf("%d device records, want %d", len(recs), n/2)
	}
}

func TestExportP12(t *testing.T) {
	f := newCA(t, nil)
	ctx := context.Background()
	out, err := f.a.Issue(ctx, IssueRequest{Profile: pki.ProfileDevice, Name: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	p12, err := f.a.Export(ctx, "laptop", ExportOptions{Format: FormatP12, Password: "pw-123456"})
	if err != nil {
		t.Fatal(err)
	}
	key, leaf, cas, err := pkcs12.DecodeChain(p12.Data, "pw-123456")
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.Equal(out.Cert) || len(cas) != 2 || !publicKeysEqual(out.Key.Public(), key.(crypto.Signer).Public()) {
		t.Errorf("P12 holds leaf %v with %d CA certs; want the issued leaf, its key and 2 CAs", leaf.Subject, len(cas))
	}
	if p12.Path != f.a.Layout().P12("laptop") || p12.Perm != 0o600 {
		t.Errorf("P12 export goes to %s with mode %o, want %s, 0600", p12.Path, p12.Perm, f.a.Layout().P12("laptop"))
	}
	if _, err := f.a.Export(ctx, "laptop", ExportOptions{Format: FormatP12}); err == nil {
		t.Error("P12 export without a password succeeded")
	}
	pemOut, err := f.a.Export(ctx, "laptop", ExportOptions{Format: FormatPEM, WithRoot: true})
	if err != nil {
		t.Fatal(err)
	}
	if certs, err := pki.ParseCertificates(pemOut.Data); err != nil || len(certs) != 3 {
		t.Errorf("PEM export with root: %d certs, %v; want 3", len(certs), err)
	}
	if pemOut.Path != "" || pemOut.Perm != 0o644 {
		t.Errorf("PEM export without key goes to %q with mode %o, want stdout, 0644", pemOut.Path, pemOut.Perm)
	}
}

// TestRevokedByName: a revoked certificate is found by its name (not "not
// found"), shown, but neither exported nor renewed.
func TestRevokedByName(t *testing.T) {
	f := newCA(t, nil)
	ctx := context.Background()
	out, err := f.a.Issue(ctx, IssueRequest{Profile: pki.ProfileDevice, Name: "laptop-042"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Revoke(ctx, "laptop-042", 1); err != nil {
		t.Fatal(err)
	}
	rec, err := f.a.Find(ctx, "laptop-042")
	if err != nil || rec.Serial != out.Record.Serial || rec.Status != store.StatusRevoked {
		t.Fatalf("Find(revoked name) = %+v, %v; want the revoked record %s", rec, err, out.Record.Serial)
	}
	const want = `certificate "laptop-042" is revoked (keyCompromise)`
	for _, o := range []ExportOptions{{Format: FormatPEM}, {Format: FormatP12, Password: "pw-123456"}} {
		if _, err := f.a.Export(ctx, "laptop-042", o); !errors.Is(err, ErrRevoked) || err.Error() != want {
			t.Errorf("Export(%s) = %v, want %s", o.Format, err, want)
		}
	}
	if _, err := f.a.Renew(ctx, "laptop-042", false); !errors.Is(err, ErrRevoked) {
		t.Errorf("Renew(revoked) = %v, want ErrRevoked", err)
	}
	if _, err := f.a.Revoke(ctx, "laptop-042", 1); !errors.Is(err, store.ErrAlreadyRevoked) {
		t.Errorf("Revoke(revoked name) = %v, want ErrAlreadyRevoked", err)
	}
	if _, err := f.a.Find(ctx, "never-issued"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Find(unknown) = %v, want ErrNotFound", err)
	}
}

func TestAuditEvents(t *testing.T) {
	f := newCA(t, nil)
	ctx := context.Background()
	out, err := f.a.Issue(ctx, IssueRequest{Profile: pki.ProfileClient, Name: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Renew(ctx, "carol", false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Revoke(ctx, "carol", 3); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range f.audit.events(t) {
		got = append(got, e["msg"].(string))
		if e["actor"] != "test" {
			t.Errorf("event %v has actor %v, want test", e["msg"], e["actor"])
		}
	}
	want := "[ca.created ca.created crl.generated cert.issued cert.renewed cert.revoked crl.generated]"
	if fmt.Sprint(got) != want {
		t.Errorf("audit events %v, want %s", got, want)
	}
	if !bytes.Contains(f.audit.b.Bytes(), []byte(out.Record.Serial)) {
		t.Error("audit log does not name the issued serial")
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := Open(ctx, dir, nil, Options{}); !errors.Is(err, ErrNotInitialized) {
		t.Errorf("Open(empty) = %v, want ErrNotInitialized", err)
	}
	f := newCA(t, nil)
	if _, err := Init(ctx, f.dir, f.st, DefaultInitOptions(), Options{}); !errors.Is(err, ErrExists) {
		t.Errorf("Init over a CA = %v, want ErrExists", err)
	}
	for _, tc := range []struct {
		mod  func(*InitOptions)
		want error
	}{
		{func(o *InitOptions) { o.Passphrase = []byte("short") }, ErrShortPassphrase},
		{func(o *InitOptions) { o.RootOnly, o.ExportRoot = true, filepath.Join(t.TempDir(), "root.key") }, ErrRootOnlyExport},
	} {
		io := DefaultInitOptions()
		tc.mod(&io)
		if _, err := Init(ctx, t.TempDir(), f.st, io, Options{}); !errors.Is(err, tc.want) {
			t.Errorf("Init(%+v) = %v, want %v", io, err, tc.want)
		}
	}
	if err := os.WriteFile(f.a.Layout().Config(), []byte("version: 1\nbogus: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, f.dir, f.st, Options{}); err == nil {
		t.Error("Open with an unknown key in ca.yaml succeeded")
	}
}
