package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/portcullis-dev/portcullis/internal/store"
)

func testListFilter(t *testing.T, s store.Store) {
	n := now()
	day := 24 * time.Hour
	mk := func(name, profile, issuer string, status store.Status, notAfter time.Duration, created int) *store.Cert {
		c := newCert(t, name)
		c.Profile, c.Issuer, c.Status = profile, issuer, status
		c.NotAfter = n.Add(notAfter)
		c.NotBefore = c.NotAfter.Add(-90 * day)
		c.CreatedAt = n.Add(time.Duration(created) * time.Second)
		if status == store.StatusRevoked {
			c.RevokedAt = n
		}
		return c
	}
	webOld := mk("web", "server", issuerA, store.StatusSuperseded, 5*day, 0)
	web := mk("web", "server", issuerA, store.StatusActive, 30*day, 1)
	api := mk("api", "client", issuerA, store.StatusActive, 10*day, 2)
	old := mk("old", "server", issuerB, store.StatusSuperseded, -day, 3)
	dev := mk("dev", "device", issuerB, store.StatusRevoked, 60*day, 4)
	// Insert out of CreatedAt order: List orders by CreatedAt.
	for _, c := range []*store.Cert{dev, web, old, webOld, api} {
		mustCreate(t, s, c)
	}

	tests := []struct {
		name string
		f    store.Filter
		want []*store.Cert
	}{
		{"all", store.Filter{}, []*store.Cert{webOld, web, api, old, dev}},
		{"name", store.Filter{Name: "web"}, []*store.Cert{webOld, web}},
		{"profile", store.Filter{Profile: "server"}, []*store.Cert{webOld, web, old}},
		{"issuer", store.Filter{Issuer: issuerB}, []*store.Cert{old, dev}},
		{"active", store.Filter{Status: store.StatusActive}, []*store.Cert{web, api}},
		{"superseded", store.Filter{Status: store.StatusSuperseded}, []*store.Cert{webOld, old}},
		{"revoked", store.Filter{Status: store.StatusRevoked}, []*store.Cert{dev}},
		{"expired", store.Filter{NotAfterBefore: n}, []*store.Cert{old}},
		{"expiring in 20 days", store.Filter{NotAfterBefore: n.Add(20 * day)}, []*store.Cert{webOld, api, old}},
		{"not after before is strict", store.Filter{NotAfterBefore: api.NotAfter}, []*store.Cert{webOld, old}},
		{"not after after", store.Filter{NotAfterAfter: n.Add(20 * day)}, []*store.Cert{web, dev}},
		{"not after after is strict", store.Filter{NotAfterAfter: web.NotAfter}, []*store.Cert{dev}},
		{"window", store.Filter{NotAfterAfter: n, NotAfterBefore: n.Add(20 * day)}, []*store.Cert{webOld, api}},
		{"far bounds", store.Filter{
			NotAfterAfter:  time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC),
			NotAfterBefore: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		}, []*store.Cert{webOld, web, api, old, dev}},
		{"combined", store.Filter{Issuer: issuerA, Status: store.StatusActive, NotAfterBefore: n.Add(20 * day)}, []*store.Cert{api}},
		{"no match", store.Filter{Name: "nope"}, nil},
		{"no match combined", store.Filter{Name: "dev", Status: store.StatusActive}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.List(t.Context(), tt.f)
			if err != nil {
				t.Fatalf("List(%+v) = %v", tt.f, err)
			}
			if diff := cmp.Diff(serials(tt.want), serials(got)); diff != "" {
				t.Errorf("List(%+v) serials mismatch (-want +got):\n%s", tt.f, diff)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("List(%+v) records mismatch (-want +got):\n%s", tt.f, diff)
			}
		})
	}
}

func testListOrder(t *testing.T, s store.Store) {
	base := now()
	var want []string
	// Created in reverse: the i-th insert is the (10-i)-th oldest.
	certs := make([]*store.Cert, 10)
	for i := range certs {
		c := newCert(t, "order")
		c.Status = store.StatusSuperseded
		c.CreatedAt = base.Add(-time.Duration(i) * time.Millisecond)
		certs[i] = c
		mustCreate(t, s, c)
	}
	for i := len(certs) - 1; i >= 0; i-- {
		want = append(want, certs[i].Serial)
	}
	got, err := s.List(t.Context(), store.Filter{Name: "order"})
	if err != nil {
		t.Fatalf("List() = %v", err)
	}
	if diff := cmp.Diff(want, serials(got)); diff != "" {
		t.Errorf("List() order mismatch (-want +got):\n%s", diff)
	}

	// Records created at the same instant come in the order they were
	// recorded, whatever their serials.
	want = nil
	for range 10 {
		c := newCert(t, "tie")
		c.Status = store.StatusSuperseded
		c.CreatedAt = base
		mustCreate(t, s, c)
		want = append(want, c.Serial)
	}
	got, err = s.List(t.Context(), store.Filter{Name: "tie"})
	if err != nil {
		t.Fatalf("List() = %v", err)
	}
	if diff := cmp.Diff(want, serials(got)); diff != "" {
		t.Errorf("List() of equal CreatedAt: order mismatch (-want +got):\n%s", diff)
	}
}

func testRevoke(t *testing.T, s store.Store) {
	tests := []struct {
		name   string
		status store.Status
		reason int
	}{
		{"active", store.StatusActive, 1},         // keyCompromise
		{"superseded", store.StatusSuperseded, 4}, // superseded
		{"unspecified", store.StatusActive, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCert(t, "r-"+tt.name)
			c.Status = tt.status
			mustCreate(t, s, c)
			at := now().Add(-time.Minute)

			got, err := s.Revoke(t.Context(), c.Serial, at, tt.reason)
			if err != nil {
				t.Fatalf("Revoke(%s) = %v", c.Serial, err)
			}
			want := *c
			want.Status, want.RevokedAt, want.Reason, want.Version = store.StatusRevoked, at, tt.reason, 2
			if diff := cmp.Diff(&want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Revoke(%s) mismatch (-want +got):\n%s", c.Serial, diff)
			}
			wantCert(t, s, &want)
		})
	}

	t.Run("frees name", func(t *testing.T) {
		c := newCert(t, "web")
		mustCreate(t, s, c)
		if _, err := s.Revoke(t.Context(), c.Serial, now(), 1); err != nil {
			t.Fatalf("Revoke(%s) = %v", c.Serial, err)
		}
		mustCreate(t, s, newCert(t, "web"))
	})
}

func testRevokeErrors(t *testing.T, s store.Store) {
	c := newCert(t, "web")
	mustCreate(t, s, c)
	first, err := s.Revoke(t.Context(), c.Serial, now(), 1)
	if err != nil {
		t.Fatalf("Revoke(%s) = %v", c.Serial, err)
	}
	if _, err := s.Revoke(t.Context(), c.Serial, now().Add(time.Hour), 4); !errors.Is(err, store.ErrAlreadyRevoked) {
		t.Errorf("second Revoke(%s) = %v, want %v", c.Serial, err, store.ErrAlreadyRevoked)
	}
	// The first revocation's time and reason stand.
	wantCert(t, s, first)

	if _, err := s.Revoke(t.Context(), "123abc", now(), 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Revoke(unknown) = %v, want %v", err, store.ErrNotFound)
	}
}

func testRevoked(t *testing.T, s store.Store) {
	n := now()
	floor := n.Add(-24 * time.Hour)
	revoked := func(issuer string, notAfter time.Time, reason int) store.Revocation {
		c := newCert(t, "x")
		c.Issuer, c.NotAfter, c.NotBefore = issuer, notAfter, notAfter.Add(-48*time.Hour)
		c.Status = store.StatusSuperseded // Any number of them may share a name.
		mustCreate(t, s, c)
		at := n.Add(-time.Duration(reason) * time.Minute)
		if _, err := s.Revoke(t.Context(), c.Serial, at, reason); err != nil {
			t.Fatalf("Revoke(%s) = %v", c.Serial, err)
		}
		return store.Revocation{Serial: c.Serial, RevokedAt: at, Reason: reason}
	}
	live := revoked(issuerA, n.Add(30*24*time.Hour), 1)
	expired := revoked(issuerA, floor.Add(-time.Microsecond), 3)
	atFloor := revoked(issuerA, floor, 4)
	otherIssuer := revoked(issuerB, n.Add(time.Hour), 5)
	// Unrevoked certificates of the issuer are not CRL entries.
	mustCreate(t, s, newCert(t, "active"))
	unrevoked := newCert(t, "superseded")
	unrevoked.Status = store.StatusSuperseded
	mustCreate(t, s, unrevoked)

	tests := []struct {
		name   string
		issuer string
		floor  time.Time
		want   []store.Revocation
	}{
		{"zero floor", issuerA, time.Time{}, []store.Revocation{live, expired, atFloor}},
		{"floor keeps NotAfter == floor", issuerA, floor, []store.Revocation{live, atFloor}},
		{"floor after", issuerA, floor.Add(time.Microsecond), []store.Revocation{live}},
		{"far floor", issuerA, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), nil},
		{"other issuer", issuerB, floor, []store.Revocation{otherIssuer}},
		{"unknown issuer", "ffff", time.Time{}, nil},
	}
	sortRevs := cmpopts.SortSlices(func(a, b store.Revocation) bool { return a.Serial < b.Serial })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Revoked(t.Context(), tt.issuer, tt.floor)
			if err != nil {
				t.Fatalf("Revoked(%s, %v) = %v", tt.issuer, tt.floor, err)
			}
			if diff := cmp.Diff(tt.want, got, sortRevs, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Revoked(%s, %v) mismatch (-want +got):\n%s", tt.issuer, tt.floor, diff)
			}
		})
	}
	// RevokedSince goes by revocation time (reason N was revoked N
	// minutes ago), whatever the expiry.
	for _, tt := range []struct {
		name  string
		since time.Time
		want  []store.Revocation
	}{
		{"last 2 minutes", n.Add(-2 * time.Minute), []store.Revocation{live}},
		{"at a revocation time", n.Add(-3 * time.Minute), []store.Revocation{live, expired}},
		{"all", time.Time{}, []store.Revocation{live, expired, atFloor}},
		{"future", n.Add(time.Minute), nil},
	} {
		got, err := s.RevokedSince(t.Context(), issuerA, tt.since)
		if err != nil {
			t.Fatalf("RevokedSince(%s) = %v", tt.name, err)
		}
		if diff := cmp.Diff(tt.want, got, sortRevs, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("RevokedSince(%s) mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}
