package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/store"
)

func testCreateAndGet(t *testing.T, s store.Store) {
	c := newCert(t, "web")
	mustCreate(t, s, c)
	if c.Version != 1 {
		t.Errorf("after CreateCert, c.Version = %d, want 1", c.Version)
	}
	wantCert(t, s, c)
}

func testCreateDefaults(t *testing.T, s store.Store) {
	c := newCert(t, "web")
	c.Status = ""
	c.CreatedAt = time.Time{}
	before := now()
	mustCreate(t, s, c)
	after := time.Now()
	if c.Status != store.StatusActive {
		t.Errorf("CreateCert with empty status: c.Status = %q, want %q", c.Status, store.StatusActive)
	}
	if c.CreatedAt.Before(before) || c.CreatedAt.After(after) {
		t.Errorf("CreateCert with zero CreatedAt: c.CreatedAt = %v, want between %v and %v", c.CreatedAt, before, after)
	}
	wantCert(t, s, c)
}

func testTimesRoundTrip(t *testing.T, s store.Store) {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	base := time.Date(2031, 7, 14, 9, 26, 53, 589793000, zone)
	tests := []struct {
		name string
		edit func(c *store.Cert)
	}{
		{"microseconds", func(c *store.Cert) {
			c.NotBefore = base.Add(-time.Microsecond)
			c.NotAfter = base.Add(time.Microsecond)
			c.CreatedAt = base
		}},
		{"whole seconds", func(c *store.Cert) {
			c.NotBefore = base.Truncate(time.Second)
			c.NotAfter = base.Truncate(time.Second).Add(397 * 24 * time.Hour)
		}},
		{"revoked", func(c *store.Cert) {
			c.Status = store.StatusRevoked
			c.RevokedAt = base.Add(time.Hour)
			c.Reason = 1
		}},
		// RFC 5280 §4.1.2.5: 99991231235959Z is "no well-defined
		// expiration date", which imported certificates may carry.
		{"no expiry", func(c *store.Cert) {
			c.NotAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
		}},
		// UTCTime reaches back to 1950.
		{"before 1970", func(c *store.Cert) {
			c.NotBefore = time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Microsecond)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCert(t, "rt-"+tt.name)
			tt.edit(c)
			mustCreate(t, s, c)
			wantCert(t, s, c)
		})
	}
}

func testNotFound(t *testing.T, s store.Store) {
	mustCreate(t, s, newCert(t, "web"))
	if _, err := s.Cert(t.Context(), "123abc"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Cert(unknown) = %v, want %v", err, store.ErrNotFound)
	}
	if _, err := s.ActiveCert(t.Context(), "api"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ActiveCert(unknown) = %v, want %v", err, store.ErrNotFound)
	}
}

func testDuplicateSerial(t *testing.T, s store.Store) {
	c := newCert(t, "web")
	mustCreate(t, s, c)
	tests := []struct {
		name   string
		status store.Status
		other  string
	}{
		{"same name", store.StatusActive, "web"},
		{"other name", store.StatusActive, "api"},
		{"superseded", store.StatusSuperseded, "api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dup := newCert(t, tt.other)
			dup.Serial = c.Serial
			dup.Status = tt.status
			if err := s.CreateCert(t.Context(), dup); !errors.Is(err, store.ErrDuplicateSerial) {
				t.Errorf("CreateCert(duplicate serial, %s) = %v, want %v", tt.name, err, store.ErrDuplicateSerial)
			}
			wantCert(t, s, c)
		})
	}
}

func testNameTaken(t *testing.T, s store.Store) {
	first := newCert(t, "web")
	mustCreate(t, s, first)
	second := newCert(t, "web")
	if err := s.CreateCert(t.Context(), second); !errors.Is(err, store.ErrNameTaken) {
		t.Fatalf("CreateCert(second active %q) = %v, want %v", second.Name, err, store.ErrNameTaken)
	}
	if _, err := s.Cert(t.Context(), second.Serial); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Cert(rejected serial) = %v, want %v", err, store.ErrNotFound)
	}
	wantCert(t, s, first)
	// Names are distinct keys, not prefixes or case-folded.
	for _, name := range []string{"web2", "Web", "we"} {
		mustCreate(t, s, newCert(t, name))
	}
}

func testExpiredActiveSuperseded(t *testing.T, s store.Store) {
	old := newCert(t, "web")
	old.NotBefore = now().Add(-48 * time.Hour)
	old.NotAfter = now().Add(-time.Hour)
	mustCreate(t, s, old)

	c := newCert(t, "web")
	mustCreate(t, s, c)
	wantStatus(t, s, old.Serial, store.StatusSuperseded, 2)
	got, err := s.ActiveCert(t.Context(), "web")
	if err != nil || got.Serial != c.Serial {
		t.Errorf("ActiveCert(web) = %v, %v; want %s", got, err, c.Serial)
	}
}

// testExpiryAtCreatedAt checks that expiry is judged at the new record's
// CreatedAt, the caller's clock, not at the store's.
func testExpiryAtCreatedAt(t *testing.T, s store.Store) {
	old := newCert(t, "web")
	old.NotAfter = now().Add(time.Hour)
	mustCreate(t, s, old)

	early := newCert(t, "web")
	early.CreatedAt = old.NotAfter.Add(-time.Second)
	if err := s.CreateCert(t.Context(), early); !errors.Is(err, store.ErrNameTaken) {
		t.Errorf("CreateCert(CreatedAt before old NotAfter) = %v, want %v", err, store.ErrNameTaken)
	}
	late := newCert(t, "web")
	late.CreatedAt = old.NotAfter // Expired means !now.Before(NotAfter).
	mustCreate(t, s, late)
	wantStatus(t, s, old.Serial, store.StatusSuperseded, 2)
}

func testInactiveDoesNotHoldName(t *testing.T, s store.Store) {
	tests := []struct {
		name string
		// setup records a certificate of name that must not block a new
		// active one.
		setup func(t *testing.T, name string)
	}{
		{"revoked", func(t *testing.T, name string) {
			c := newCert(t, name)
			mustCreate(t, s, c)
			if _, err := s.Revoke(t.Context(), c.Serial, now(), 1); err != nil {
				t.Fatalf("Revoke(%s) = %v", c.Serial, err)
			}
		}},
		{"created revoked", func(t *testing.T, name string) {
			c := newCert(t, name)
			c.Status, c.RevokedAt, c.Reason = store.StatusRevoked, now(), 4
			mustCreate(t, s, c)
		}},
		{"created superseded", func(t *testing.T, name string) {
			c := newCert(t, name)
			c.Status = store.StatusSuperseded
			mustCreate(t, s, c)
		}},
		{"replaced", func(t *testing.T, name string) {
			old := newCert(t, name)
			mustCreate(t, s, old)
			c := newCert(t, name)
			if err := s.Replace(t.Context(), old, c); err != nil {
				t.Fatalf("Replace() = %v", err)
			}
			if _, err := s.Revoke(t.Context(), c.Serial, now(), 1); err != nil {
				t.Fatalf("Revoke(%s) = %v", c.Serial, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "n-" + tt.name
			tt.setup(t, name)
			c := newCert(t, name)
			mustCreate(t, s, c)
			wantCert(t, s, c)
		})
	}

	t.Run("inactive beside active", func(t *testing.T) {
		active := newCert(t, "history")
		mustCreate(t, s, active)
		// Importing the history of a name must not disturb its active cert.
		for _, st := range []store.Status{store.StatusSuperseded, store.StatusRevoked} {
			c := newCert(t, "history")
			c.Status = st
			if st == store.StatusRevoked {
				c.RevokedAt = now()
			}
			mustCreate(t, s, c)
		}
		wantCert(t, s, active)
	})
}

func testReplace(t *testing.T, s store.Store) {
	old := newCert(t, "web")
	mustCreate(t, s, old)
	c := newCert(t, "web")
	c.CreatedAt = old.CreatedAt.Add(time.Second)
	if err := s.Replace(t.Context(), old, c); err != nil {
		t.Fatalf("Replace(%s, %s) = %v", old.Serial, c.Serial, err)
	}
	if c.Version != 1 || c.Status != store.StatusActive {
		t.Errorf("after Replace, c = status %s version %d, want active version 1", c.Status, c.Version)
	}
	wantCert(t, s, c)
	want := *old
	want.Status, want.Version = store.StatusSuperseded, 2
	wantCert(t, s, &want)

	got, err := s.ActiveCert(t.Context(), "web")
	if err != nil || got.Serial != c.Serial {
		t.Errorf("ActiveCert(web) = %v, %v; want %s", got, err, c.Serial)
	}

	// The renewal can be renewed in turn, from the record CreateCert or
	// Replace wrote back.
	next := newCert(t, "web")
	if err := s.Replace(t.Context(), c, next); err != nil {
		t.Fatalf("Replace(renewal) = %v", err)
	}
	wantStatus(t, s, c.Serial, store.StatusSuperseded, 2)
}

func testReplaceConflict(t *testing.T, s store.Store) {
	tests := []struct {
		name string
		// stale returns an old record that no longer matches the store.
		stale func(t *testing.T, old *store.Cert) *store.Cert
	}{
		{"renewed already", func(t *testing.T, old *store.Cert) *store.Cert {
			snapshot := *old
			if err := s.Replace(t.Context(), old, newCert(t, old.Name)); err != nil {
				t.Fatalf("first Replace() = %v", err)
			}
			return &snapshot
		}},
		{"revoked since", func(t *testing.T, old *store.Cert) *store.Cert {
			if _, err := s.Revoke(t.Context(), old.Serial, now(), 1); err != nil {
				t.Fatalf("Revoke() = %v", err)
			}
			return old
		}},
		{"wrong version", func(t *testing.T, old *store.Cert) *store.Cert {
			stale := *old
			stale.Version = 7
			return &stale
		}},
		{"not active", func(t *testing.T, old *store.Cert) *store.Cert {
			c := newCert(t, old.Name)
			c.Status = store.StatusSuperseded
			mustCreate(t, s, c)
			return c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := newCert(t, "c-"+tt.name)
			mustCreate(t, s, old)
			stale := tt.stale(t, old)
			before := mustCert(t, s, stale.Serial)

			c := newCert(t, old.Name)
			if err := s.Replace(t.Context(), stale, c); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("Replace(stale) = %v, want %v", err, store.ErrConflict)
			}
			if _, err := s.Cert(t.Context(), c.Serial); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Cert(rejected renewal) = %v, want %v", err, store.ErrNotFound)
			}
			wantCert(t, s, before)
		})
	}
}

func testReplaceNotFound(t *testing.T, s store.Store) {
	old := newCert(t, "web")
	old.Version = 1
	c := newCert(t, "web")
	if err := s.Replace(t.Context(), old, c); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Replace(unrecorded) = %v, want %v", err, store.ErrNotFound)
	}
	if _, err := s.Cert(t.Context(), c.Serial); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Cert(rejected renewal) = %v, want %v", err, store.ErrNotFound)
	}
}

// testReplaceIsAtomic checks that a Replace whose insert fails leaves the old
// certificate active.
func testReplaceIsAtomic(t *testing.T, s store.Store) {
	other := newCert(t, "api")
	mustCreate(t, s, other)
	old := newCert(t, "web")
	mustCreate(t, s, old)

	c := newCert(t, "web")
	c.Serial = other.Serial
	if err := s.Replace(t.Context(), old, c); !errors.Is(err, store.ErrDuplicateSerial) {
		t.Fatalf("Replace(duplicate serial) = %v, want %v", err, store.ErrDuplicateSerial)
	}
	wantCert(t, s, old)
	wantCert(t, s, other)
}

func testActiveCert(t *testing.T, s store.Store) {
	c := newCert(t, "web")
	mustCreate(t, s, c)
	got, err := s.ActiveCert(t.Context(), "web")
	if err != nil {
		t.Fatalf("ActiveCert(web) = %v", err)
	}
	if got.Serial != c.Serial {
		t.Errorf("ActiveCert(web) = %s, want %s", got.Serial, c.Serial)
	}

	// An expired certificate stays the active one until it is replaced.
	exp := newCert(t, "expired")
	exp.NotAfter = now().Add(-time.Minute)
	mustCreate(t, s, exp)
	if got, err := s.ActiveCert(t.Context(), "expired"); err != nil || got.Serial != exp.Serial {
		t.Errorf("ActiveCert(expired) = %v, %v; want %s", got, err, exp.Serial)
	}

	if _, err := s.Revoke(t.Context(), c.Serial, now(), 0); err != nil {
		t.Fatalf("Revoke() = %v", err)
	}
	if _, err := s.ActiveCert(t.Context(), "web"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ActiveCert(revoked name) = %v, want %v", err, store.ErrNotFound)
	}
}
