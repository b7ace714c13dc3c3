package revocation

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// crlServer serves one CRL on 127.0.0.1 with an ETag or a Last-Modified
// validator, and counts what it answered.
type crlServer struct {
	*httptest.Server
	mu           sync.Mutex
	body         []byte
	modified     time.Time
	useLastMod   bool
	ok, notMod   atomic.Int32
	conditionals atomic.Int32
}

func newCRLServer(t *testing.T, useLastMod bool) *crlServer {
	t.Helper()
	s := &crlServer{useLastMod: useLastMod}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *crlServer) set(body []byte, modified time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.modified = body, modified
}

func (s *crlServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	body, modified := s.body, s.modified
	s.mu.Unlock()
	etag := fmt.Sprintf(`"%x"`, sha256.Sum256(body))
	if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "" {
		s.conditionals.Add(1)
	}
	if s.useLastMod {
		w.Header().Set("Last-Modified", modified.UTC().Format(http.TimeFormat))
		if since, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && !modified.Truncate(time.Second).After(since) {
			s.notMod.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
	} else {
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			s.notMod.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	s.ok.Add(1)
	w.Header().Set("Content-Type", "application/pkix-crl")
	_, _ = w.Write(body)
}

func TestCRLURLNotModified(t *testing.T) {
	for _, lastMod := range []bool{false, true} {
		t.Run(fmt.Sprintf("last-modified=%v", lastMod), func(t *testing.T) {
			ca := newCA(t, "URL CA")
			leaf := ca.leaf(t, "x")
			now := time.Now()
			srv := newCRLServer(t, lastMod)
			srv.set(ca.crlDER(t, 1, now, now.Add(time.Hour)), now.Add(-time.Minute))
			lg, lb := newLog()
			c, err := New(Config{CRLs: []string{srv.URL + "/ca.crl"}}, lg, nil, srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			before := c.Status().Sources[0].LastSuccess
			if err := c.Reload(); err != nil {
				t.Fatalf("Reload = %v", err)
			}
			if srv.ok.Load() != 1 || srv.notMod.Load() != 1 || srv.conditionals.Load() != 1 {
				t.Errorf("server answered %d×200, %d×304 (%d conditional), want 1, 1, 1", srv.ok.Load(), srv.notMod.Load(), srv.conditionals.Load())
			}
			if n := strings.Count(lb.String(), "CRL loaded"); n != 1 {
				t.Errorf("%d \"CRL loaded\" lines, want 1 (304 changes nothing)", n)
			}
			if st := c.Status().Sources[0]; !st.LastSuccess.After(before) && !st.LastSuccess.Equal(before) || st.CRLNumber != "1" {
				t.Errorf("after 304: Status = %+v", st)
			}
			// A new CRL is served in full and used.
			srv.set(ca.crlDER(t, 2, now, now.Add(time.Hour), revokedEntry(leaf, now, 1)), now)
			if err := c.Reload(); err != nil {
				t.Fatalf("Reload = %v", err)
			}
			if err := c.Check(context.Background(), leaf, ca.cert); !errors.Is(err, ErrRevoked) {
				t.Errorf("Check after new CRL = %v, want ErrRevoked", err)
			}
		})
	}
}

// TestCRLURLRefreshAtNextUpdate runs Run in a synctest bubble: the CRL says
// nextUpdate is in 10 minutes and Refresh is an hour, so Run must fetch
// again at 10 minutes, and every minute after while the server still serves
// the stale CRL.
func TestCRLURLRefreshAtNextUpdate(t *testing.T) {
	ca := newCA(t, "Refresh CA")
	leaf := ca.leaf(t, "x")
	srv := newCRLServer(t, false) // outside the bubble: its goroutines are not fake-timed
	synctest.Test(t, func(t *testing.T) {
		start := time.Now() // the bubble's clock
		srv.set(ca.crlDER(t, 1, start, start.Add(10*time.Minute)), start)
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		lg, lb := newLog()
		c, err := New(Config{CRLs: []string{srv.URL}}, lg, nil, client)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()

		time.Sleep(9 * time.Minute)
		synctest.Wait()
		if got := srv.ok.Load() + srv.notMod.Load(); got != 1 {
			t.Errorf("requests before nextUpdate: %d, want 1", got)
		}
		// The CA publishes CRL 2 before the first one's nextUpdate.
		srv.set(ca.crlDER(t, 2, start.Add(9*time.Minute), start.Add(20*time.Minute), revokedEntry(leaf, start, 1)), start.Add(9*time.Minute))
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		if err := c.Check(context.Background(), leaf, ca.cert); !errors.Is(err, ErrRevoked) {
			t.Errorf("Check after nextUpdate = %v, want ErrRevoked from CRL 2", err)
		}
		if st := c.Status().Sources[0]; st.CRLNumber != "2" || !st.NextRefresh.Equal(start.Add(20*time.Minute)) {
			t.Errorf("Status = %+v, want CRL 2, next refresh at its nextUpdate", st)
		}

		// Now the server stops publishing: at 20 min the CRL goes stale,
		// and Run retries every minute, each answered 304.
		time.Sleep(10*time.Minute + 3*time.Minute)
		synctest.Wait()
		if got := srv.notMod.Load(); got != 4 {
			t.Errorf("304s after CRL 2 went stale: %d, want 4 (at 20, 21, 22, 23 min)", got)
		}
		if err := c.Check(context.Background(), ca.leaf(t, "y"), ca.cert); !errors.Is(err, ErrUnknown) {
			t.Errorf("Check with a stale CRL = %v, want ErrUnknown", err)
		}
		lb.has(t, "CRL is past its nextUpdate and max_stale")

		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	})
}

func TestCRLURLErrors(t *testing.T) {
	ca := newCA(t, "Error CA")
	now := time.Now()
	good := ca.crlDER(t, 1, now, now.Add(time.Hour))
	huge := make([]byte, maxCRLSize+1)
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"oversized with length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(huge)))
			_, _ = w.Write(huge)
		}, "Content-Length"},
		{"oversized chunked", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write(huge[:1024])
			w.(http.Flusher).Flush() // no Content-Length from here on
			_, _ = w.Write(huge[1024:])
		}, "body is over the"},
		{"status", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) }, "503"},
		{"unasked 304", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotModified) }, "304"},
		{"garbage", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(good[:40]) }, "parsing CRL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			reg := prometheus.NewRegistry()
			lg, lb := newLog()
			// A URL that fails at start is not fatal: Run retries it.
			c, err := New(Config{CRLs: []string{srv.URL}}, lg, reg, srv.Client())
			if err != nil {
				t.Fatalf("New = %v, want nil for a failing URL", err)
			}
			st := c.Status().Sources[0]
			if !strings.Contains(st.LastError, tc.want) || st.CRLNumber != "" || !st.Stale || st.Usable {
				t.Errorf("Status = %+v, want last error with %q", st, tc.want)
			}
			if got := testutil.ToFloat64(c.m.refreshErrors.WithLabelValues(srv.URL)); got != 1 {
				t.Errorf("refresh_errors_total = %v, want 1", got)
			}
			lb.has(t, "level=ERROR", "CRL unavailable", "connections are denied (fail-closed)")
			if err := c.Check(context.Background(), ca.leaf(t, "x"), ca.cert); !errors.Is(err, ErrUnknown) {
				t.Errorf("Check = %v, want ErrUnknown", err)
			}
		})
	}
}

func TestCRLURLTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, err := New(Config{CRLs: []string{srv.URL}, HTTPTimeout: 50 * time.Millisecond}, nil, nil, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if st := c.Status().Sources[0]; !strings.Contains(st.LastError, "deadline exceeded") {
		t.Errorf("Status last error = %q, want a timeout", st.LastError)
	}
}
