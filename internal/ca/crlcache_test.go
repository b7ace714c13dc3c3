package ca

import (
	"context"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/pki"
)

func TestCRLCache(t *testing.T) {
	f := newCA(t, nil)
	ctx := context.Background()
	leaf := f.issueLeaf(t, "leaf")
	c := f.a.CRLCache(CRLCacheOptions{})
	first, err := c.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Current(ctx)
	if err != nil || again != first {
		t.Fatalf("second Current = %v, %v; want the cached CRL", again, err)
	}
	der, etag, next, err := c.CurrentCRL(ctx)
	if err != nil || &der[0] != &first.DER[0] || etag != first.ETag || !next.Equal(first.NextUpdate) {
		t.Fatalf("CurrentCRL = %d bytes, %q, %s, %v; want the cached CRL", len(der), etag, next, err)
	}
	rl, err := x509.ParseRevocationList(first.DER)
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.CheckSignatureFrom(f.a.Issuer()); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%x", rl.Number); got != first.ETag || len(rl.RevokedCertificateEntries) != 0 {
		t.Fatalf("CRL number %s, %d entries; want ETag %s and none", got, len(rl.RevokedCertificateEntries), first.ETag)
	}

	// Revoke signs crl.pem itself; the cache learns of it by Invalidate.
	if _, err := f.a.Revoke(ctx, "leaf", 1); err != nil {
		t.Fatal(err)
	}
	if cur, _ := c.Current(ctx); cur != first {
		t.Fatalf("cache changed without Invalidate")
	}
	c.Invalidate()
	after, err := c.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rl, err = x509.ParseRevocationList(after.DER); err != nil {
		t.Fatal(err)
	}
	if after.Number <= first.Number || after.ETag == first.ETag || len(rl.RevokedCertificateEntries) != 1 ||
		pki.SerialString(rl.RevokedCertificateEntries[0].SerialNumber) != pki.SerialString(leaf.SerialNumber) {
		t.Fatalf("after Invalidate: number %d (was %d), %d entries; want a higher number listing the leaf", after.Number, first.Number, len(rl.RevokedCertificateEntries))
	}

	// Within the margin of nextUpdate (half of 7 days by default), it is
	// signed again; before, not.
	f.clock.Add(3*day + 11*time.Hour)
	if cur, _ := c.Current(ctx); cur != after {
		t.Fatalf("re-signed with more than the margin left")
	}
	f.clock.Add(2 * time.Hour)
	if cur, _ := c.Current(ctx); cur == after || !cur.ThisUpdate.Equal(f.clock.Now().UTC().Truncate(time.Second)) {
		t.Fatalf("not re-signed within the margin of nextUpdate")
	}
	if r, err := c.Refresh(ctx); err != nil || r.Number <= after.Number {
		t.Fatalf("Refresh = %v, %v; want a new CRL", r, err)
	}
}
