package storetest

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-dev/portcullis/internal/store"
)

func testNextCRLNumber(t *testing.T, s store.Store) {
	for i, want := range []struct {
		issuer string
		n      int64
	}{{issuerA, 1}, {issuerA, 2}, {issuerB, 1}, {issuerA, 3}, {issuerB, 2}} {
		got, err := s.NextCRLNumber(t.Context(), want.issuer)
		if err != nil || got != want.n {
			t.Errorf("call %d: NextCRLNumber(%s) = %d, %v; want %d", i, want.issuer, got, err, want.n)
		}
	}
}

func testSetCRLNumber(t *testing.T, s store.Store) {
	tests := []struct {
		name  string
		nexts int     // NextCRLNumber calls before the sets
		sets  []int64 // SetCRLNumber calls, in order
		want  int64   // the NextCRLNumber after them
	}{
		{"fresh issuer", 0, []int64{100}, 101},
		{"zero", 0, []int64{0}, 1},
		{"raises", 3, []int64{41}, 42},
		{"never lowers", 5, []int64{2}, 6},
		{"equal is a no-op", 5, []int64{5}, 6},
		{"keeps the highest", 0, []int64{50, 20, 70, 60}, 71},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			issuer := "i-" + tt.name
			for range tt.nexts {
				if _, err := s.NextCRLNumber(t.Context(), issuer); err != nil {
					t.Fatalf("NextCRLNumber() = %v", err)
				}
			}
			for _, n := range tt.sets {
				if err := s.SetCRLNumber(t.Context(), issuer, n); err != nil {
					t.Fatalf("SetCRLNumber(%d) = %v", n, err)
				}
			}
			if got, err := s.NextCRLNumber(t.Context(), issuer); err != nil || got != tt.want {
				t.Errorf("NextCRLNumber() = %d, %v; want %d", got, err, tt.want)
			}
		})
	}

	t.Run("no wrap around", func(t *testing.T) {
		if err := s.SetCRLNumber(t.Context(), "max", math.MaxInt64); err != nil {
			t.Fatalf("SetCRLNumber(MaxInt64) = %v", err)
		}
		// Anything but an error would repeat or lower a number.
		if got, err := s.NextCRLNumber(t.Context(), "max"); err == nil {
			t.Errorf("NextCRLNumber() after MaxInt64 = %d, want an error", got)
		}
	})
}

func testConcurrentNextCRLNumber(t *testing.T, s store.Store) {
	const workers, calls = 8, 25
	var (
		mu   sync.Mutex
		got  []int64
		errs []error
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for range calls {
				n, err := s.NextCRLNumber(t.Context(), issuerA)
				mu.Lock()
				got = append(got, n)
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("NextCRLNumber() errors: %v", err)
	}
	checkCRLNumbers(t, got, workers*calls)
}

// checkCRLNumbers fails the test unless got is exactly 1..n in some order:
// each number handed out once, none skipped.
func checkCRLNumbers(t *testing.T, got []int64, n int) {
	t.Helper()
	slices.Sort(got)
	if len(got) != n {
		t.Fatalf("got %d CRL numbers, want %d", len(got), n)
	}
	for i, v := range got {
		if v != int64(i+1) {
			t.Fatalf("sorted CRL numbers[%d] = %d, want %d (duplicate or gap)", i, v, i+1)
		}
	}
}

// race runs fn(i) for i in [0, n) concurrently and returns the errors by i.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// wantOneWinner fails the test unless exactly one of errs is nil and all the
// others are sentinel; it returns the winner's index.
func wantOneWinner(t *testing.T, op string, errs []error, sentinel error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("%s: calls %d and %d both succeeded", op, winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, sentinel):
			t.Errorf("%s: call %d = %v, want nil or %v", op, i, err, sentinel)
		}
	}
	if winner < 0 {
		t.Fatalf("%s: no call succeeded", op)
	}
	return winner
}

func testConcurrentCreateSameName(t *testing.T, s store.Store) {
	const n = 16
	certs := make([]*store.Cert, n)
	for i := range certs {
		certs[i] = newCert(t, "web")
	}
	errs := race(n, func(i int) error { return s.CreateCert(t.Context(), certs[i]) })
	winner := wantOneWinner(t, "CreateCert", errs, store.ErrNameTaken)

	got, err := s.ActiveCert(t.Context(), "web")
	if err != nil || got.Serial != certs[winner].Serial {
		t.Errorf("ActiveCert(web) = %v, %v; want %s", got, err, certs[winner].Serial)
	}
	all, err := s.List(t.Context(), store.Filter{Name: "web"})
	if err != nil || len(all) != 1 {
		t.Errorf("List(web) = %d records, %v; want 1", len(all), err)
	}
}

func testConcurrentReplace(t *testing.T, s store.Store) {
	const n = 8
	old := newCert(t, "web")
	mustCreate(t, s, old)
	renewals := make([]*store.Cert, n)
	for i := range renewals {
		renewals[i] = newCert(t, "web")
	}
	errs := race(n, func(i int) error {
		snapshot := *old // Each renewer read the same record.
		return s.Replace(t.Context(), &snapshot, renewals[i])
	})
	winner := wantOneWinner(t, "Replace", errs, store.ErrConflict)

	wantStatus(t, s, old.Serial, store.StatusSuperseded, 2)
	got, err := s.ActiveCert(t.Context(), "web")
	if err != nil || got.Serial != renewals[winner].Serial {
		t.Errorf("ActiveCert(web) = %v, %v; want %s", got, err, renewals[winner].Serial)
	}
}

func testConcurrentRevoke(t *testing.T, s store.Store) {
	const n = 8
	c := newCert(t, "web")
	mustCreate(t, s, c)
	errs := race(n, func(i int) error {
		_, err := s.Revoke(t.Context(), c.Serial, now(), i)
		return err
	})
	winner := wantOneWinner(t, "Revoke", errs, store.ErrAlreadyRevoked)

	got := mustCert(t, s, c.Serial)
	if got.Reason != winner || got.Version != 2 {
		t.Errorf("after racing Revokes, Cert() = reason %d version %d, want the winner's reason %d and version 2",
			got.Reason, got.Version, winner)
	}
}

// testConcurrentCreateCerts races batches that all claim one name: one
// batch wins whole, the others leave nothing.
func testConcurrentCreateCerts(t *testing.T, s store.Store) {
	const n = 8
	batches := make([][]*store.Cert, n)
	for i := range batches {
		batches[i] = []*store.Cert{
			newCert(t, fmt.Sprint("own-a-", i)),
			newCert(t, "shared"),
			newCert(t, fmt.Sprint("own-b-", i)),
		}
	}
	errs := race(n, func(i int) error { return s.CreateCerts(t.Context(), batches[i]) })
	winner := wantOneWinner(t, "CreateCerts", errs, store.ErrNameTaken)

	all, err := s.List(t.Context(), store.Filter{})
	if err != nil {
		t.Fatalf("List() = %v", err)
	}
	if diff := cmp.Diff(serials(batches[winner]), serials(all)); diff != "" {
		t.Errorf("List() after racing batches: want the winner's records only (-want +got):\n%s", diff)
	}
}
