package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/portcullis-dev/portcullis/internal/store"
)

func mustCreateCerts(t *testing.T, s store.Store, certs []*store.Cert) {
	t.Helper()
	if err := s.CreateCerts(t.Context(), certs); err != nil {
		t.Fatalf("CreateCerts(%d records) = %v", len(certs), err)
	}
}

// snapshot copies the records of a batch, to check later that a failed
// CreateCerts left them alone.
func snapshot(certs []*store.Cert) []store.Cert {
	out := make([]store.Cert, len(certs))
	for i, c := range certs {
		out[i] = *c
	}
	return out
}

func testCreateCerts(t *testing.T, s store.Store) {
	// An expired active certificate, which the batch's "renew" takes over.
	expired := newCert(t, "renew")
	expired.NotBefore, expired.NotAfter = now().Add(-48*time.Hour), now().Add(-time.Hour)
	mustCreate(t, s, expired)

	web := newCert(t, "web")
	defaults := newCert(t, "api")
	defaults.Status, defaults.CreatedAt = "", time.Time{}
	history := newCert(t, "web")
	history.Status = store.StatusSuperseded
	revoked := newCert(t, "dev")
	revoked.Status, revoked.RevokedAt, revoked.Reason = store.StatusRevoked, now().Add(-time.Minute), 1
	renew := newCert(t, "renew")
	certs := []*store.Cert{web, defaults, history, revoked, renew}

	before := now()
	mustCreateCerts(t, s, certs)
	after := time.Now()
	if defaults.Status != store.StatusActive {
		t.Errorf("CreateCerts with empty status: Status = %q, want %q", defaults.Status, store.StatusActive)
	}
	if defaults.CreatedAt.Before(before) || defaults.CreatedAt.After(after) {
		t.Errorf("CreateCerts with zero CreatedAt: CreatedAt = %v, want between %v and %v", defaults.CreatedAt, before, after)
	}
	for _, c := range certs {
		if c.Version != 1 {
			t.Errorf("after CreateCerts, %s %q: Version = %d, want 1", c.Serial, c.Name, c.Version)
		}
		wantCert(t, s, c)
	}
	wantStatus(t, s, expired.Serial, store.StatusSuperseded, 2)
}

// testCreateCertsInBatchNames checks that the records of a batch are judged
// against the earlier ones of the batch as against recorded ones.
func testCreateCertsInBatchNames(t *testing.T, s store.Store) {
	t.Run("expired earlier record superseded", func(t *testing.T) {
		first := newCert(t, "web")
		first.NotAfter = now().Add(time.Hour)
		second := newCert(t, "web")
		second.CreatedAt = first.NotAfter
		mustCreateCerts(t, s, []*store.Cert{first, second})
		wantStatus(t, s, first.Serial, store.StatusSuperseded, 2)
		wantCert(t, s, second)
	})
	t.Run("inactive records share a name", func(t *testing.T) {
		var certs []*store.Cert
		for _, st := range []store.Status{store.StatusSuperseded, store.StatusActive, store.StatusSuperseded, store.StatusRevoked} {
			c := newCert(t, "history")
			c.Status = st
			if st == store.StatusRevoked {
				c.RevokedAt = now()
			}
			certs = append(certs, c)
		}
		mustCreateCerts(t, s, certs)
		for _, c := range certs {
			wantCert(t, s, c)
		}
	})
}

// testCreateCertsAtomic checks that a batch whose third record fails leaves
// no trace: none of its records, not even the supersession of an expired
// certificate by its first record, and no change to its elements.
func testCreateCertsAtomic(t *testing.T, s store.Store) {
	taken := newCert(t, "taken")
	mustCreate(t, s, taken)
	tests := []struct {
		name   string
		third  func(batch []*store.Cert) // spoils batch[2]
		wantIs error                     // nil: any error
	}{
		{"duplicate of a recorded serial", func(b []*store.Cert) { b[2].Serial = taken.Serial }, store.ErrDuplicateSerial},
		{"duplicate serial in the batch", func(b []*store.Cert) { b[2].Serial = b[1].Serial }, store.ErrDuplicateSerial},
		{"name taken by a recorded certificate", func(b []*store.Cert) { b[2].Name = taken.Name }, store.ErrNameTaken},
		{"name taken in the batch", func(b []*store.Cert) { b[2].Name = b[1].Name }, store.ErrNameTaken},
		{"invalid record", func(b []*store.Cert) { b[2].Status = "bogus" }, nil},
		{"revoked without time", func(b []*store.Cert) { b[2].Status = store.StatusRevoked }, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stale := newCert(t, fmt.Sprint("stale-", i))
			stale.NotBefore, stale.NotAfter = now().Add(-48*time.Hour), now().Add(-time.Hour)
			mustCreate(t, s, stale)

			batch := []*store.Cert{newCert(t, stale.Name)} // supersedes stale
			for j := range 4 {
				batch = append(batch, newCert(t, fmt.Sprintf("b%d-%d", i, j)))
			}
			tt.third(batch)
			want := snapshot(batch)

			err := s.CreateCerts(t.Context(), batch)
			switch {
			case err == nil:
				t.Fatalf("CreateCerts(%s) = nil, want an error", tt.name)
			case tt.wantIs != nil && !errors.Is(err, tt.wantIs):
				t.Errorf("CreateCerts(%s) = %v, want %v", tt.name, err, tt.wantIs)
			case !strings.Contains(err.Error(), batch[2].Serial):
				t.Errorf("CreateCerts(%s) = %v, want it to name serial %s", tt.name, err, batch[2].Serial)
			}
			for _, c := range batch {
				if c.Serial == taken.Serial {
					continue
				}
				if got, err := s.Cert(t.Context(), c.Serial); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("Cert(%s of the failed batch) = %v, %v; want %v", c.Serial, got, err, store.ErrNotFound)
				}
			}
			wantCert(t, s, stale)
			wantCert(t, s, taken)
			if diff := cmp.Diff(want, snapshot(batch), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("failed CreateCerts changed its records (-before +after):\n%s", diff)
			}
		})
	}
}

func testCreateCertsEmpty(t *testing.T, s store.Store) {
	c := newCert(t, "web")
	mustCreate(t, s, c)
	for _, batch := range [][]*store.Cert{nil, {}} {
		if err := s.CreateCerts(t.Context(), batch); err != nil {
			t.Errorf("CreateCerts(%#v) = %v, want nil", batch, err)
		}
	}
	all, err := s.List(t.Context(), store.Filter{})
	if err != nil {
		t.Fatalf("List() = %v", err)
	}
	if diff := cmp.Diff([]string{c.Serial}, serials(all)); diff != "" {
		t.Errorf("List() after empty batches mismatch (-want +got):\n%s", diff)
	}
}

// testCreateCertsListed checks that a batch recorded at one instant
// is listed in batch order and that its revoked records are CRL entries.
func testCreateCertsListed(t *testing.T, s store.Store) {
	const n = 300
	at := now()
	earlier := newCert(t, "earlier")
	earlier.CreatedAt = at.Add(-time.Second)
	later := newCert(t, "later")
	later.CreatedAt = at.Add(time.Second)
	mustCreate(t, s, later)

	batch := []*store.Cert{earlier}
	var revs []store.Revocation
	for i := range n {
		c := newCert(t, fmt.Sprint("n", i))
		c.CreatedAt = at
		if i%3 == 0 {
			c.Status, c.RevokedAt, c.Reason = store.StatusRevoked, at.Add(-time.Duration(i)*time.Second), i%10
			revs = append(revs, store.Revocation{Serial: c.Serial, RevokedAt: c.RevokedAt, Reason: c.Reason})
		}
		batch = append(batch, c)
	}
	mustCreateCerts(t, s, batch)

	got, err := s.List(t.Context(), store.Filter{})
	if err != nil {
		t.Fatalf("List() = %v", err)
	}
	want := append(batch, later)
	if diff := cmp.Diff(serials(want), serials(got)); diff != "" {
		t.Errorf("List() serials mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("List() records mismatch (-want +got):\n%s", diff)
	}

	gotRevs, err := s.Revoked(t.Context(), issuerA, at)
	if err != nil {
		t.Fatalf("Revoked() = %v", err)
	}
	sortRevs := cmpopts.SortSlices(func(a, b store.Revocation) bool { return a.Serial < b.Serial })
	if diff := cmp.Diff(revs, gotRevs, sortRevs); diff != "" {
		t.Errorf("Revoked() mismatch (-want +got):\n%s", diff)
	}
}
