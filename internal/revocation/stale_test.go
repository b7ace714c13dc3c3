package revocation

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestExpiredCRL(t *testing.T) {
	for _, tc := range []struct {
		mode       Mode
		want       error
		result     string
		logs       []string
		consequent string
	}{
		{FailClosed, ErrUnknown, "unknown_denied", []string{"level=ERROR", "connection denied (fail-closed)"}, "connections are denied (fail-closed)"},
		{FailOpen, nil, "unknown_allowed", []string{"level=WARN", "connection allowed without it (fail-open)"}, "connections are allowed without revocation checking (fail-open)"},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			ca := newCA(t, "Stale CA")
			good, revoked, held := ca.leaf(t, "good"), ca.leaf(t, "revoked"), ca.leaf(t, "held")
			now := time.Now()
			path := tempFile(t, "crl.pem", ca.crlPEM(t, 1, now.Add(-2*time.Hour), now.Add(-time.Hour),
				revokedEntry(revoked, now.Add(-2*time.Hour), 1), revokedEntry(held, now.Add(-2*time.Hour), reasonCertificateHold)))
			reg := prometheus.NewRegistry()
			lg, lb := newLog()
			c, err := New(Config{CRLs: []string{path}, Mode: tc.mode}, lg, reg, nil)
			if err != nil {
				t.Fatal(err)
			}
			lb.has(t, "CRL is past its nextUpdate and max_stale", tc.consequent, "source="+path)

			for i := range 3 {
				if err := c.Check(context.Background(), good, ca.cert); !errors.Is(err, tc.want) || err != nil && !strings.Contains(err.Error(), "stale") {
					t.Errorf("Check(good) #%d = %v, want %v", i, err, tc.want)
				}
			}
			if err := c.Check(context.Background(), held, ca.cert); !errors.Is(err, tc.want) {
				t.Errorf("Check(held) = %v, want %v: a stale CRL does not prove a hold", err, tc.want)
			}
			if got := testutil.ToFloat64(c.m.checks.WithLabelValues(tc.result)); got != 4 {
				t.Errorf("checks_total{%s} = %v, want 4", tc.result, got)
			}
			// A stale CRL still proves a revocation.
			if err := c.Check(context.Background(), revoked, ca.cert); !errors.Is(err, ErrRevoked) {
				t.Errorf("Check(revoked) = %v, want ErrRevoked", err)
			}
			lb.has(t, tc.logs...)
			if n := strings.Count(lb.String(), "revocation status unknown"); n != 1 {
				t.Errorf("%d per-check log lines, want 1 (rate-limited)", n)
			}
			st := c.Status().Sources[0]
			if !st.Stale || st.Usable || st.UsableUntil != st.NextUpdate {
				t.Errorf("Status = %+v, want stale and unusable", st)
			}
			if got := testutil.ToFloat64(oneSource(c, c.m.sources.stale)); got != 1 {
				t.Errorf("crl_stale = %v, want 1", got)
			}
		})
	}
}

func TestMaxStale(t *testing.T) {
	ca := newCA(t, "Grace CA")
	good := ca.leaf(t, "good")
	now := time.Now()
	path := tempFile(t, "crl.pem", ca.crlPEM(t, 1, now.Add(-2*time.Hour), now.Add(-time.Hour)))
	lg, lb := newLog()
	c, err := New(Config{CRLs: []string{path}, MaxStale: 2 * time.Hour}, lg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(context.Background(), good, ca.cert); err != nil {
		t.Errorf("Check within max_stale = %v, want nil", err)
	}
	st := c.Status().Sources[0]
	if !st.Stale || !st.Usable || !st.UsableUntil.Equal(st.NextUpdate.Add(2*time.Hour)) {
		t.Errorf("Status = %+v, want stale but usable for 2h more", st)
	}
	lb.has(t, "level=WARN", "still used until max_stale runs out")
}

// fakeClock is a settable clock for the checker's now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

// TestCRLExpiresWithoutRefresh: the hot path notices nextUpdate passing on
// its own, and so does the crl_stale gauge, with no refresh in between.
func TestCRLExpiresWithoutRefresh(t *testing.T) {
	ca := newCA(t, "Clock CA")
	good := ca.leaf(t, "good")
	start := time.Now()
	clock := &fakeClock{t: start}
	path := tempFile(t, "crl.pem", ca.crlPEM(t, 1, start, start.Add(time.Hour)))
	reg := prometheus.NewRegistry()
	c, err := newChecker(Config{CRLs: []string{path}}, nil, reg, nil, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(context.Background(), good, ca.cert); err != nil {
		t.Fatalf("Check = %v, want nil", err)
	}
	if got := testutil.ToFloat64(oneSource(c, c.m.sources.stale)); got != 0 {
		t.Errorf("crl_stale = %v, want 0", got)
	}
	if want, got := float64(start.Add(time.Hour).Unix()), testutil.ToFloat64(oneSource(c, c.m.sources.nextUpdate)); got != want {
		t.Errorf("crl_next_update_timestamp_seconds = %v, want %v", got, want)
	}
	clock.add(time.Hour + time.Second)
	if err := c.Check(context.Background(), good, ca.cert); !errors.Is(err, ErrUnknown) {
		t.Errorf("Check after nextUpdate = %v, want ErrUnknown", err)
	}
	if got := testutil.ToFloat64(oneSource(c, c.m.sources.stale)); got != 1 {
		t.Errorf("crl_stale = %v, want 1", got)
	}
	if d := c.untilDue(); d != 0 {
		t.Errorf("untilDue = %v, want 0 (refresh at nextUpdate)", d)
	}
}

func TestStatusJSON(t *testing.T) {
	f := newFixture(t, FailOpen)
	b, err := json.Marshal(f.checker.Status())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"mode":"fail-open"`, `"max_stale_seconds":0`, `"location":"` + f.path, `"crl_number":"1"`,
		`"next_update":`, `"usable_until":`, `"stale":false`, `"usable":true`, `"entries":1`, `"ocsp":{"enabled":false`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Status JSON has no %s: %s", want, b)
		}
	}
	if strings.Contains(string(b), "last_error") {
		t.Errorf("Status JSON shows an empty last_error: %s", b)
	}
}
