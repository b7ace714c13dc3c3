package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/portcullis-dev/portcullis/internal/keystore"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
)

// issueLeaf issues a device certificate named name.
func (f *fixture) issueLeaf(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	out, err := f.a.Issue(context.Background(), IssueRequest{Profile: pki.ProfileDevice, Name: name})
	if err != nil {
		t.Fatalf("Issue(%s): %v", name, err)
	}
	return out.Cert
}

func (f *fixture) responder(t testing.TB, o ResponderOptions) *Responder {
	t.Helper()
	r, err := f.a.Responder(context.Background(), o)
	if err != nil {
		t.Fatalf("Responder: %v", err)
	}
	return r
}

func ocspRequest(t testing.TB, leaf, issuer *x509.Certificate, h crypto.Hash) []byte {
	t.Helper()
	der, err := ocsp.CreateRequest(leaf, issuer, &ocsp.RequestOptions{Hash: h})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// respond asks r about leaf and parses the answer against issuer, which
// checks both signatures: the issuer's on the responder certificate and
// the responder's on the answer.
func respond(t *testing.T, r *Responder, leaf, issuer *x509.Certificate, h crypto.Hash) (*ocsp.Response, []byte) {
	t.Helper()
	der, err := r.Respond(context.Background(), ocspRequest(t, leaf, issuer, h))
	if err != nil {
		t.Fatalf("Respond(%s): %v", pki.SerialString(leaf.SerialNumber), err)
	}
	resp, err := ocsp.ParseResponseForCert(der, leaf, issuer)
	if err != nil {
		t.Fatalf("ParseResponseForCert: %v", err)
	}
	return resp, der
}

func TestOCSPStatuses(t *testing.T) {
	for _, rootOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("rootOnly=%v", rootOnly), func(t *testing.T) {
			f := newCA(t, func(o *InitOptions) { o.RootOnly = rootOnly })
			ctx := context.Background()
			good, revoked := f.issueLeaf(t, "good"), f.issueLeaf(t, "revoked")
			if _, err := f.a.Revoke(ctx, "revoked", 1); err != nil {
				t.Fatal(err)
			}
			rec, err := f.st.Cert(ctx, pki.SerialString(revoked.SerialNumber))
			if err != nil {
				t.Fatal(err)
			}
			unknown := &x509.Certificate{SerialNumber: big.NewInt(0x1234567)}
			r := f.responder(t, ResponderOptions{})
			for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
				for _, tc := range []struct {
					leaf   *x509.Certificate
					status int
				}{{good, ocsp.Good}, {revoked, ocsp.Revoked}, {unknown, ocsp.Unknown}} {
					resp, _ := respond(t, r, tc.leaf, f.a.Issuer(), h)
					if resp.Status != tc.status {
						t.Errorf("%v %s: status %d, want %d", h, tc.leaf.SerialNumber, resp.Status, tc.status)
					}
					if resp.IssuerHash != h {
						t.Errorf("CertID hash %v, want %v", resp.IssuerHash, h)
					}
					if now := f.clock.Now().Truncate(time.Second); !resp.ThisUpdate.Equal(now) || resp.NextUpdate.Sub(resp.ThisUpdate) != time.Hour {
						t.Errorf("thisUpdate %s nextUpdate %s, want %s and an hour later", resp.ThisUpdate, resp.NextUpdate, now)
					}
					if resp.Certificate == nil || !resp.Certificate.Equal(r.Certificate()) {
						t.Errorf("answer does not carry the responder certificate")
					}
					if tc.status == ocsp.Revoked && (!resp.RevokedAt.Equal(rec.RevokedAt.Truncate(time.Second)) || resp.RevocationReason != 1) {
						t.Errorf("revoked at %s reason %d, want %s reason 1", resp.RevokedAt, resp.RevocationReason, rec.RevokedAt)
					}
				}
			}
			// A CA certificate's serial is not a certificate of the issuer.
			if resp, _ := respond(t, r, f.a.Root(), f.a.Issuer(), crypto.SHA256); resp.Status != ocsp.Unknown {
				t.Errorf("root serial: status %d, want unknown", resp.Status)
			}
		})
	}
}

func TestOCSPWrongIssuer(t *testing.T) {
	f, other := newCA(t, nil), newCA(t, nil)
	leaf := other.issueLeaf(t, "elsewhere")
	r := f.responder(t, ResponderOptions{})
	for _, issuer := range []*x509.Certificate{other.a.Issuer(), f.a.Root()} {
		_, err := r.Respond(context.Background(), ocspRequest(t, leaf, issuer, crypto.SHA1))
		if !errors.Is(err, ErrOCSPUnauthorized) {
			t.Fatalf("Respond(issuer %s) = %v, want ErrOCSPUnauthorized", issuer.Subject, err)
		}
		der, err2 := r.RespondOCSP(context.Background(), ocspRequest(t, leaf, issuer, crypto.SHA1))
		var re ocsp.ResponseError
		if _, perr := ocsp.ParseResponse(der, nil); !errors.As(perr, &re) || re.Status != ocsp.Unauthorized || err2 == nil {
			t.Errorf("RespondOCSP = %x, %v; parsed: %v, want unauthorized and an error", der, err2, perr)
		}
	}
}

// twoCertIDs builds a request asking about two certificates.
func twoCertIDs(t *testing.T, one []byte) []byte {
	t.Helper()
	var req struct {
		TBS struct {
			List []asn1.RawValue
		}
	}
	if _, err := asn1.Unmarshal(one, &req); err != nil {
		t.Fatal(err)
	}
	req.TBS.List = append(req.TBS.List, req.TBS.List[0])
	der, err := asn1.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// signedRequest appends an optionalSignature ([0]) to a request.
func signedRequest(t *testing.T, one []byte) []byte {
	t.Helper()
	var req struct{ TBS asn1.RawValue }
	if _, err := asn1.Unmarshal(one, &req); err != nil {
		t.Fatal(err)
	}
	sig := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: []byte{0x30, 0x00}}
	der, err := asn1.Marshal(struct {
		TBS asn1.RawValue
		Sig asn1.RawValue
	}{req.TBS, sig})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestOCSPMalformed(t *testing.T) {
	f := newCA(t, nil)
	leaf := f.issueLeaf(t, "leaf")
	r := f.responder(t, ResponderOptions{})
	good := ocspRequest(t, leaf, f.a.Issuer(), crypto.SHA256)
	for name, req := range map[string][]byte{
		"empty":     {},
		"garbage":   []byte("GET / HTTP/1.1\r\n"),
		"truncated": good[:len(good)-1],
		"trailing":  append(slices.Clone(good), 0),
		"too large": append(slices.Clone(good), make([]byte, MaxOCSPRequest)...),
		"two certs": twoCertIDs(t, good),
		"signed":    signedRequest(t, good),
		"no certs":  {0x30, 0x04, 0x30, 0x02, 0x30, 0x00},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := r.Respond(context.Background(), req)
			if !errors.Is(err, ErrOCSPMalformed) {
				t.Fatalf("Respond = %v, want ErrOCSPMalformed", err)
			}
			var re ocsp.ResponseError
			if _, perr := ocsp.ParseResponse(OCSPErrorResponse(err), nil); !errors.As(perr, &re) || re.Status != ocsp.Malformed {
				t.Errorf("OCSPErrorResponse parses as %v, want malformed", perr)
			}
		})
	}
}

func TestOCSPResponderCertificate(t *testing.T) {
	for _, rootOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("rootOnly=%v", rootOnly), func(t *testing.T) {
			f := newCA(t, func(o *InitOptions) { o.RootOnly = rootOnly })
			r := f.responder(t, ResponderOptions{})
			c := r.Certificate()
			if err := c.CheckSignatureFrom(f.a.Issuer()); err != nil {
				t.Errorf("not signed by the issuer: %v", err)
			}
			if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}) || len(c.UnknownExtKeyUsage) > 0 {
				t.Errorf("EKU %v %v, want OCSPSigning only", c.ExtKeyUsage, c.UnknownExtKeyUsage)
			}
			if c.IsCA || c.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("IsCA %v KeyUsage %v, want a leaf with digitalSignature", c.IsCA, c.KeyUsage)
			}
			if !slices.ContainsFunc(c.Extensions, func(e pkix.Extension) bool { return e.Id.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}) }) {
				t.Errorf("no id-pkix-ocsp-nocheck extension")
			}
			if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
				t.Errorf("key %T, want ECDSA P-256", c.PublicKey)
			}
			if got := c.NotAfter.Sub(c.NotBefore); got != 30*day+time.Minute {
				t.Errorf("lifetime %s, want 30 days (and the minute of backdating)", got)
			}
			if len(c.CRLDistributionPoints) > 0 || len(c.OCSPServer) > 0 {
				t.Errorf("a responder certificate carries no revocation pointers (nocheck)")
			}
			st, err := os.Stat(f.a.Layout().OCSPKey())
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("key file: %v, mode %v, want 0600", err, st.Mode())
			}
			rec, err := f.st.ActiveCert(context.Background(), responderName)
			if err != nil || rec.Profile != string(pki.ProfileOCSP) || !bytes.Equal(rec.DER, c.Raw) {
				t.Fatalf("store record %+v, %v; want the responder certificate, profile ocsp", rec, err)
			}
			// A second Responder loads what the first issued.
			if again := f.responder(t, ResponderOptions{}); !again.Certificate().Equal(c) {
				t.Errorf("second Responder issued serial %s, want to load %s", again.Certificate().SerialNumber, c.SerialNumber)
			}
		})
	}
}

func TestOCSPResponderName(t *testing.T) {
	if err := CheckName(responderName); err == nil {
		t.Errorf("CheckName(%q) = nil, want reserved", responderName)
	}
}

func TestOCSPCacheAndInvalidate(t *testing.T) {
	f := newCA(t, nil)
	ctx := context.Background()
	leaf := f.issueLeaf(t, "leaf")
	r := f.responder(t, ResponderOptions{})
	first, der1 := respond(t, r, leaf, f.a.Issuer(), crypto.SHA1)
	_, der2 := respond(t, r, leaf, f.a.Issuer(), crypto.SHA1)
	if !bytes.Equal(der1, der2) || first.Status != ocsp.Good {
		t.Fatalf("second answer differs from the cached first (or not good: %d)", first.Status)
	}
	// Another CertID hash is another answer: its CertID differs.
	if sha256, _ := respond(t, r, leaf, f.a.Issuer(), crypto.SHA256); sha256.IssuerHash != crypto.SHA256 {
		t.Fatalf("SHA-256 request answered with CertID hash %v", sha256.IssuerHash)
	}
	rec, err := f.a.Revoke(ctx, "leaf", 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, der := respond(t, r, leaf, f.a.Issuer(), crypto.SHA1); !bytes.Equal(der, der1) {
		t.Fatalf("answer changed before Invalidate; the cache was bypassed")
	}
	r.Invalidate(rec.Serial)
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		if resp, _ := respond(t, r, leaf, f.a.Issuer(), h); resp.Status != ocsp.Revoked || resp.RevocationReason != 4 {
			t.Fatalf("%v after Invalidate: status %d reason %d, want revoked (4)", h, resp.Status, resp.RevocationReason)
		}
	}
	// Past half the validity, the answer is signed again.
	_, before := respond(t, r, leaf, f.a.Issuer(), crypto.SHA1)
	f.clock.Add(31 * time.Minute)
	resp, after := respond(t, r, leaf, f.a.Issuer(), crypto.SHA1)
	if bytes.Equal(before, after) || !resp.ThisUpdate.Equal(f.clock.Now().Truncate(time.Second)) {
		t.Fatalf("answer not re-signed after half its validity (thisUpdate %s)", resp.ThisUpdate)
	}
}

func TestOCSPCacheBound(t *testing.T) {
	f := newCA(t, nil)
	r := f.responder(t, ResponderOptions{CacheSize: 3})
	for i := range 10 {
		unknown := &x509.Certificate{SerialNumber: big.NewInt(int64(1000 + i))}
		respond(t, r, unknown, f.a.Issuer(), crypto.SHA1)
	}
	if n := r.cache.len(); n != 3 {
		t.Fatalf("cache holds %d answers, want 3", n)
	}
}

// TestOCSPConcurrent races answers against revocations: after the last
// Invalidate, every answer says revoked.
func TestOCSPConcurrent(t *testing.T) {
	f := newCA(t, nil)
	ctx := context.Background()
	leaves := make([]*x509.Certificate, 4)
	for i := range leaves {
		leaves[i] = f.issueLeaf(t, fmt.Sprintf("l%d", i))
	}
	r := f.responder(t, ResponderOptions{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				req := ocspRequest(t, leaves[(g+i)%len(leaves)], f.a.Issuer(), crypto.SHA1)
				if _, err := r.Respond(ctx, req); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i, l := range leaves {
		if _, err := f.a.Revoke(ctx, fmt.Sprintf("l%d", i), 1); err != nil {
			t.Fatal(err)
		}
		r.Invalidate(pki.SerialString(l.SerialNumber))
	}
	wg.Wait()
	for _, l := range leaves {
		if resp, _ := respond(t, r, l, f.a.Issuer(), crypto.SHA1); resp.Status != ocsp.Revoked {
			t.Errorf("%s: status %d after revocation and Invalidate, want revoked", l.SerialNumber, resp.Status)
		}
	}
}

func TestOCSPResponderRenewal(t *testing.T) {
	f := newCA(t, nil)
	ctx := context.Background()
	leaf := f.issueLeaf(t, "leaf")
	r := f.responder(t, ResponderOptions{})
	old := r.Certificate()
	respond(t, r, leaf, f.a.Issuer(), crypto.SHA1)
	// 19 days in, over a third remains: no renewal.
	f.clock.Add(19 * day)
	if resp, _ := respond(t, r, leaf, f.a.Issuer(), crypto.SHA1); !resp.Certificate.Equal(old) {
		t.Fatalf("renewed with more than a third of the life left")
	}
	f.clock.Add(2 * day)
	resp, _ := respond(t, r, leaf, f.a.Issuer(), crypto.SHA1)
	if resp.Certificate.Equal(old) || !r.Certificate().Equal(resp.Certificate) {
		t.Fatalf("not renewed with under a third of the life left")
	}
	if got := r.Certificate().NotBefore; !got.Equal(f.clock.Now().Add(-time.Minute).Truncate(time.Second)) {
		t.Errorf("renewed certificate starts %s, want now", got)
	}
	oldRec, err := f.st.Cert(ctx, pki.SerialString(old.SerialNumber))
	if err != nil || oldRec.Status != store.StatusSuperseded {
		t.Errorf("old responder record %v, %v; want superseded", oldRec, err)
	}
	// The files hold the new one: a new Responder (a restart) loads it.
	if again := f.responder(t, ResponderOptions{}); !again.Certificate().Equal(r.Certificate()) {
		t.Errorf("a restart does not load the renewed certificate")
	}
	// A restart with an expired certificate renews before answering.
	f.clock.Add(40 * day)
	if again := f.responder(t, ResponderOptions{}); again.Certificate().Equal(r.Certificate()) {
		t.Errorf("a restart kept an expired responder certificate")
	}
}

// TestOCSPResponderKeyEncrypted: with the CA keys encrypted, the
// responder key is too, and a restart reads it with the passphrase.
func TestOCSPResponderKeyEncrypted(t *testing.T) {
	pass := []byte("correct horse battery")
	f := newCA(t, func(o *InitOptions) { o.Passphrase = pass })
	ctx := context.Background()
	a, err := Open(ctx, f.dir, f.st, Options{Now: f.clock.Now, Passphrase: func() ([]byte, error) { return pass, nil }})
	if err != nil {
		t.Fatal(err)
	}
	r, err := a.Responder(ctx, ResponderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(a.Layout().OCSPKey())
	if err != nil || !keystore.Encrypted(data) {
		t.Fatalf("responder key not encrypted at rest (%v)", err)
	}
	b, err := Open(ctx, f.dir, f.st, Options{Now: f.clock.Now, Passphrase: func() ([]byte, error) { return pass, nil }})
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.Responder(ctx, ResponderOptions{})
	if err != nil || !again.Certificate().Equal(r.Certificate()) {
		t.Fatalf("restart: %v; want the same responder certificate", err)
	}
	// A wrong passphrase stops the responder; it never replaces the key.
	wrong, err := Open(ctx, f.dir, f.st, Options{Now: f.clock.Now, Passphrase: func() ([]byte, error) { return []byte("wrong horse"), nil }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.Responder(ctx, ResponderOptions{}); !errors.Is(err, keystore.ErrBadPassphrase) {
		t.Fatalf("Responder with a wrong passphrase = %v, want ErrBadPassphrase", err)
	}
	if after, _ := os.ReadFile(a.Layout().OCSPKey()); !bytes.Equal(after, data) {
		t.Fatalf("a wrong passphrase replaced the responder key")
	}
}

// TestOCSPResponderReissue: a responder certificate that is damaged, or
// does not match its key, is replaced.
func TestOCSPResponderReissue(t *testing.T) {
	f := newCA(t, nil)
	first := f.responder(t, ResponderOptions{}).Certificate()
	l := f.a.Layout()
	if err := os.WriteFile(l.OCSPCert(), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := f.responder(t, ResponderOptions{}).Certificate()
	if second.Equal(first) {
		t.Fatalf("damaged certificate file not replaced")
	}
	other := newCA(t, nil)
	other.responder(t, ResponderOptions{})
	data, err := os.ReadFile(other.a.Layout().OCSPKey())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.OCSPKey(), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if third := f.responder(t, ResponderOptions{}).Certificate(); third.Equal(second) {
		t.Fatalf("certificate with a foreign key not replaced")
	}
}

func TestResponderOptions(t *testing.T) {
	f := newCA(t, nil)
	for _, o := range []ResponderOptions{{CertLifetime: time.Minute}, {Validity: time.Second}} {
		if _, err := f.a.Responder(context.Background(), o); err == nil {
			t.Errorf("Responder(%+v) = nil error, want refused", o)
		}
	}
}
