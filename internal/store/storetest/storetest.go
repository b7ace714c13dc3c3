// Package storetest is the conformance suite every store.Store passes: sqlite
// now, postgres and mem later. An implementation's test calls Run with a
// function that opens a fresh, empty store.
//
// What the suite pins beyond the interface's doc comments:
//
//   - CreateCert and Replace write back what they stored: c.Status (an empty
//     status means active), c.CreatedAt (a zero one means now) and c.Version
//     (1), so a created record can be handed to Replace as old.
//   - CreateCert judges whether the active certificate it would displace has
//     expired at c.CreatedAt, so a caller with its own (fake) clock gets
//     answers consistent with that clock.
//   - Times come back equal under time.Equal (go-cmp uses it) to what was
//     stored, to the microsecond: the suite's times are whole microseconds,
//     the precision of a postgres timestamptz and of the sqlite store, and
//     range from 1950 to 9999-12-31T23:59:59Z (RFC 5280's "no expiry"). How
//     a store treats finer parts is its own to test. The location of
//     returned times is not pinned.
//   - List's order is CreatedAt, oldest first, then the order of recording;
//     Revoked's order is not pinned.
//   - Revoked keeps a certificate whose NotAfter equals notAfterFloor: it has
//     not expired before the floor.
//   - Replace of an old record that is no longer active fails with
//     ErrConflict, whatever its version.
//   - A record that both repeats a serial and claims a taken name fails with
//     ErrDuplicateSerial, the graver of the two.
//   - CreateCerts applies CreateCert's rules record by record, in order, so
//     a record may supersede an expired active one recorded earlier in the
//     same batch; on failure its error contains the failing record's serial,
//     nothing of the batch is recorded and no element of the batch changes.
package storetest

import (
	"crypto/rand"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/portcullis-dev/portcullis/internal/store"
)

// Run runs the suite. Every subtest calls open for its own store, runs in
// parallel with the others and closes the store when it ends, so open must be
// safe for concurrent use and must not close the store itself.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"CreateDefaults", testCreateDefaults},
		{"CreateCerts", testCreateCerts},
		{"CreateCertsInBatchNames", testCreateCertsInBatchNames},
		{"CreateCertsAtomic", testCreateCertsAtomic},
		{"CreateCertsEmpty", testCreateCertsEmpty},
		{"CreateCertsListed", testCreateCertsListed},
		{"TimesRoundTrip", testTimesRoundTrip},
		{"NotFound", testNotFound},
		{"DuplicateSerial", testDuplicateSerial},
		{"NameTaken", testNameTaken},
		{"ExpiredActiveSuperseded", testExpiredActiveSuperseded},
		{"ExpiryAtCreatedAt", testExpiryAtCreatedAt},
		{"InactiveDoesNotHoldName", testInactiveDoesNotHoldName},
		{"Replace", testReplace},
		{"ReplaceConflict", testReplaceConflict},
		{"ReplaceNotFound", testReplaceNotFound},
		{"ReplaceIsAtomic", testReplaceIsAtomic},
		{"ActiveCert", testActiveCert},
		{"ListFilter", testListFilter},
		{"ListOrder", testListOrder},
		{"Revoke", testRevoke},
		{"RevokeErrors", testRevokeErrors},
		{"Revoked", testRevoked},
		{"NextCRLNumber", testNextCRLNumber},
		{"SetCRLNumber", testSetCRLNumber},
		{"ConcurrentNextCRLNumber", testConcurrentNextCRLNumber},
		{"ConcurrentCreateSameName", testConcurrentCreateSameName},
		{"ConcurrentCreateCerts", testConcurrentCreateCerts},
		{"ConcurrentReplace", testConcurrentReplace},
		{"ConcurrentRevoke", testConcurrentRevoke},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close() = %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// Issuer SKIs of the two CAs the fixtures use.
const (
	issuerA = "a1a1"
	issuerB = "b2b2"
)

// now is the current time at the suite's precision.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// newCert returns an active, unexpired server certificate of name with a
// random serial, as the CA would record it.
func newCert(t *testing.T, name string) *store.Cert {
	t.Helper()
	n := now()
	return &store.Cert{
		Serial:    randomSerial(t),
		Name:      name,
		Profile:   "server",
		Issuer:    issuerA,
		Subject:   "CN=" + name,
		NotBefore: n.Add(-time.Hour),
		NotAfter:  n.Add(90 * 24 * time.Hour),
		DER:       randomBytes(t, 64),
		Status:    store.StatusActive,
		CreatedAt: n,
	}
}

// randomSerial returns a 128-bit serial formatted as store.Cert.Serial says.
func randomSerial(t *testing.T) string {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatal(err)
	}
	return n.Text(16)
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func mustCreate(t *testing.T, s store.Store, c *store.Cert) {
	t.Helper()
	if err := s.CreateCert(t.Context(), c); err != nil {
		t.Fatalf("CreateCert(%s %q) = %v", c.Serial, c.Name, err)
	}
}

func mustCert(t *testing.T, s store.Store, serial string) *store.Cert {
	t.Helper()
	c, err := s.Cert(t.Context(), serial)
	if err != nil {
		t.Fatalf("Cert(%s) = %v", serial, err)
	}
	return c
}

// wantCert fails the test unless the stored record of want.Serial equals want.
func wantCert(t *testing.T, s store.Store, want *store.Cert) {
	t.Helper()
	got := mustCert(t, s, want.Serial)
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Cert(%s) mismatch (-want +got):\n%s", want.Serial, diff)
	}
}

// wantStatus fails the test unless the record of serial has that status and
// version.
func wantStatus(t *testing.T, s store.Store, serial string, status store.Status, version int64) {
	t.Helper()
	c := mustCert(t, s, serial)
	if c.Status != status || c.Version != version {
		t.Errorf("Cert(%s) = status %s version %d, want %s version %d", serial, c.Status, c.Version, status, version)
	}
}

func serials(certs []*store.Cert) []string {
	var out []string
	for _, c := range certs {
		out = append(out, c.Serial)
	}
	return out
}
