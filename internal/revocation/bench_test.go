package revocation

import (
	"context"
	"crypto/x509"
	"errors"
	"math/big"
	"testing"
	"time"
)

// BenchmarkCheckCRL is the handshake path against a 100,000-entry CRL.
func BenchmarkCheckCRL(b *testing.B) {
	ca := newCA(b, "Bench CA")
	good, revoked := ca.leaf(b, "good"), ca.leaf(b, "revoked")
	now := time.Now()
	entries := make([]x509.RevocationListEntry, 0, 100_000)
	entries = append(entries, revokedEntry(revoked, now, 1))
	for len(entries) < cap(entries) {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: newSerial(b), RevocationTime: now})
	}
	path := tempFile(b, "crl.der", ca.crlWith(b, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now,
		NextUpdate: now.Add(time.Hour), RevokedCertificateEntries: entries}))
	c, err := New(Config{CRLs: []string{path}}, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	if n := c.Status().Sources[0].Entries; n != 100_000 {
		b.Fatalf("CRL has %d entries, want 100000", n)
	}
	ctx := context.Background()
	b.Run("good", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Check(ctx, good, ca.cert); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("revoked", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Check(ctx, revoked, ca.cert); !errors.Is(err, ErrRevoked) {
				b.Fatal(err)
			}
		}
	})
	b.Run("good-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := c.Check(ctx, good, ca.cert); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
