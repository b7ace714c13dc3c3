package revocation

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/ocsp"
)

// goResponder is an OCSP responder on 127.0.0.1 built on x/crypto/ocsp;
// answer makes the DER response for each parsed request.
type goResponder struct {
	*httptest.Server
	requests atomic.Int32
	answer   func(req *ocsp.Request) []byte
	gate     chan struct{} // when set, each request waits for it to close
	entered  chan struct{} // when set, signalled as each request arrives
}

func newGoResponder(t *testing.T, answer func(*ocsp.Request) []byte) *goResponder {
	t.Helper()
	g := &goResponder{answer: answer}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.requests.Add(1)
		if g.entered != nil {
			g.entered <- struct{}{}
		}
		if g.gate != nil {
			<-g.gate
		}
		body, _ := io.ReadAll(r.Body)
		req, err := ocsp.ParseRequest(body)
		if err != nil || r.Header.Get("Content-Type") != "application/ocsp-request" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		_, _ = w.Write(g.answer(req))
	}))
	t.Cleanup(g.Close)
	return g
}

// ocspResponse signs a response about serial with key; embed, when set, is
// the certificate put in the response.
func ocspResponse(t testing.TB, issuer *x509.Certificate, signer crypto.Signer, embed *x509.Certificate, req *ocsp.Request, status int, nextUpdate time.Duration) []byte {
	t.Helper()
	now := time.Now().Truncate(time.Second)
	tmpl := ocsp.Response{Status: status, SerialNumber: req.SerialNumber, ThisUpdate: now.Add(-time.Minute),
		Certificate: embed, IssuerHash: req.HashAlgorithm}
	if nextUpdate != 0 {
		tmpl.NextUpdate = now.Add(nextUpdate)
	}
	if status == ocsp.Revoked {
		tmpl.RevokedAt, tmpl.RevocationReason = now.Add(-time.Hour), ocsp.KeyCompromise
	}
	responder := issuer
	if embed != nil {
		responder = embed
	}
	der, err := ocsp.CreateResponse(issuer, responder, tmpl, signer)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func withOCSP(url string) func(*x509.Certificate) {
	return func(c *x509.Certificate) { c.OCSPServer = []string{url} }
}

func TestOCSPResponses(t *testing.T) {
	ca := newCA(t, "OCSP CA")
	delegateKey := newKey(t)
	delegate := sign(t, &x509.Certificate{SerialNumber: newSerial(t), Subject: pkix.Name{CommonName: "OCSP responder"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}},
		ca.cert, &delegateKey.PublicKey, ca.key)
	// A plain client certificate of the same CA: it must not vouch for anyone.
	imposterKey := newKey(t)
	imposter := sign(t, &x509.Certificate{SerialNumber: newSerial(t), Subject: delegate.Subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca.cert, &imposterKey.PublicKey, ca.key)
	other := newCA(t, "Other CA")
	otherDelegate := other.leaf(t, "other ocsp", func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning} })

	for _, tc := range []struct {
		name   string
		answer func(*ocsp.Request) []byte
		want   error
		why    string
		result string
	}{
		{"issuer signs", func(r *ocsp.Request) []byte { return ocspResponse(t, ca.cert, ca.key, nil, r, ocsp.Good, time.Hour) }, nil, "", ocspGood},
		{"issuer signs and embeds itself", func(r *ocsp.Request) []byte {
			return ocspResponse(t, ca.cert, ca.key, ca.cert, r, ocsp.Good, time.Hour)
		}, nil, "", ocspGood},
		{"delegated responder", func(r *ocsp.Request) []byte {
			return ocspResponse(t, ca.cert, delegateKey, delegate, r, ocsp.Good, time.Hour)
		}, nil, "", ocspGood},
		{"revoked", func(r *ocsp.Request) []byte { return ocspResponse(t, ca.cert, ca.key, nil, r, ocsp.Revoked, time.Hour) }, ErrRevoked, "keyCompromise", ocspRevoked},
		{"unknown", func(r *ocsp.Request) []byte { return ocspResponse(t, ca.cert, ca.key, nil, r, ocsp.Unknown, time.Hour) }, ErrUnknown, "does not know", ocspUnknown},
		{"delegate without OCSPSigning", func(r *ocsp.Request) []byte {
			return ocspResponse(t, ca.cert, imposterKey, imposter, r, ocsp.Good, time.Hour)
		}, ErrUnknown, "lacks the OCSPSigning", ocspError},
		{"delegate of another CA", func(r *ocsp.Request) []byte {
			return ocspResponse(t, ca.cert, delegateKey, otherDelegate, r, ocsp.Good, time.Hour)
		}, ErrUnknown, "", ocspError},
		{"signed by another CA", func(r *ocsp.Request) []byte { return ocspResponse(t, ca.cert, other.key, nil, r, ocsp.Good, time.Hour) }, ErrUnknown, "signature", ocspError},
		{"expired", func(r *ocsp.Request) []byte { return ocspResponse(t, ca.cert, ca.key, nil, r, ocsp.Good, -time.Second) }, ErrUnknown, "expired", ocspError},
		{"try later", func(r *ocsp.Request) []byte { return ocsp.TryLaterErrorResponse }, ErrUnknown, "try later", ocspError},
		{"garbage", func(r *ocsp.Request) []byte { return []byte("<html>") }, ErrUnknown, "parsing the response", ocspError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := newGoResponder(t, tc.answer)
			leaf := ca.leaf(t, "leaf", withOCSP(resp.URL))
			reg := prometheus.NewRegistry()
			c, err := New(Config{OCSP: true}, nil, reg, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Check(context.Background(), leaf, ca.cert)
			if !errors.Is(err, tc.want) || err != nil && !strings.Contains(err.Error(), tc.why) {
				t.Errorf("Check = %v, want %v with %q", err, tc.want, tc.why)
			}
			if got := testutil.ToFloat64(c.m.ocspRequests.WithLabelValues(tc.result)); got != 1 {
				t.Errorf("ocsp_requests_total{%s} = %v, want 1", tc.result, got)
			}
		})
	}
}

func TestOCSPSingleflight(t *testing.T) {
	ca := newCA(t, "Flight CA")
	resp := newGoResponder(t, func(r *ocsp.Request) []byte { return ocspResponse(t, ca.cert, ca.key, nil, r, ocsp.Good, time.Hour) })
	resp.gate, resp.entered = make(chan struct{}), make(chan struct{}, 16)
	leaf := ca.leaf(t, "popular", withOCSP(resp.URL))
	c, err := New(Config{OCSP: true}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	errs := make(chan error, n)
	for range n {
		go func() { errs <- c.Check(context.Background(), leaf, ca.cert) }()
	}
	<-resp.entered
	deadline := time.Now().Add(10 * time.Second)
	for c.ocsp.misses.Load() < n && time.Now().Before(deadline) {
		runtime.Gosched() // until every Check has joined the query in flight
	}
	close(resp.gate)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("Check = %v, want nil", err)
		}
	}
	if got := resp.requests.Load(); got != 1 {
		t.Errorf("responder saw %d requests for %d concurrent checks, want 1", got, n)
	}
	if err := c.Check(context.Background(), leaf, ca.cert); err != nil || resp.requests.Load() != 1 {
		t.Errorf("Check = %v after %d requests, want a cache hit", err, resp.requests.Load())
	}
	if st := c.Status().OCSP; st.Hits != 1 || st.Misses != n || st.CacheEntries != 1 {
		t.Errorf("Status().OCSP = %+v, want 1 hit, %d misses, 1 entry", st, n)
	}
}

func TestOCSPWaiterGivesUp(t *testing.T) {
	ca := newCA(t, "Slow CA")
	resp := newGoResponder(t, func(r *ocsp.Request) []byte { return ocspResponse(t, ca.cert, ca.key, nil, r, ocsp.Good, time.Hour) })
	resp.gate, resp.entered = make(chan struct{}), make(chan struct{}, 4)
	leaf := ca.leaf(t, "x", withOCSP(resp.URL))
	c, err := New(Config{OCSP: true, Mode: FailClosed}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Check(ctx, leaf, ca.cert) }()
	<-resp.entered
	cancel()
	if err := <-done; !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "stopped waiting") {
		t.Errorf("Check with a cancelled ctx = %v, want ErrUnknown", err)
	}
	// The query itself went on and its answer is cached for the next one.
	close(resp.gate)
	deadline := time.Now().Add(10 * time.Second)
	for c.Status().OCSP.CacheEntries == 0 && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if err := c.Check(context.Background(), leaf, ca.cert); err != nil || resp.requests.Load() != 1 {
		t.Errorf("Check = %v after %d requests, want nil from the cache", err, resp.requests.Load())
	}
}

func TestOCSPCacheBound(t *testing.T) {
	ca := newCA(t, "LRU CA")
	resp := newGoResponder(t, func(r *ocsp.Request) []byte { return ocspResponse(t, ca.cert, ca.key, nil, r, ocsp.Good, time.Hour) })
	c, err := New(Config{OCSP: true, OCSPCacheSize: 2}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaves := []*x509.Certificate{ca.leaf(t, "a", withOCSP(resp.URL)), ca.leaf(t, "b", withOCSP(resp.URL)), ca.leaf(t, "c", withOCSP(resp.URL))}
	for _, l := range leaves {
		if err := c.Check(context.Background(), l, ca.cert); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.Status().OCSP; st.CacheEntries != 2 || st.CacheCapacity != 2 {
		t.Errorf("Status().OCSP = %+v, want 2 of 2", st)
	}
	_ = c.Check(context.Background(), leaves[0], ca.cert) // evicted: asked again
	if got := resp.requests.Load(); got != 4 {
		t.Errorf("requests = %d, want 4", got)
	}
	// Reload forgets every answer.
	if err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	if st := c.Status().OCSP; st.CacheEntries != 0 {
		t.Errorf("after Reload: %d cached answers, want 0", st.CacheEntries)
	}
}

// TestOCSPAndCRL: a revocation from either source wins; a fresh CRL answers
// when the responder cannot.
func TestOCSPAndCRL(t *testing.T) {
	ca := newCA(t, "Both CA")
	var status atomic.Int32
	status.Store(int32(ocsp.Good))
	resp := newGoResponder(t, func(r *ocsp.Request) []byte {
		return ocspResponse(t, ca.cert, ca.key, nil, r, int(status.Load()), time.Hour)
	})
	crlRevoked := ca.leaf(t, "crl-revoked", withOCSP(resp.URL))
	ocspRevoked := ca.leaf(t, "ocsp-revoked", withOCSP(resp.URL))
	noResponder := ca.leaf(t, "no-responder", withOCSP("http://127.0.0.1:1/"))
	now := time.Now()
	path := tempFile(t, "crl.pem", ca.crlPEM(t, 1, now, now.Add(time.Hour), revokedEntry(crlRevoked, now, 1)))
	c, err := New(Config{CRLs: []string{path}, OCSP: true}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var re *RevokedError
	if err := c.Check(context.Background(), crlRevoked, ca.cert); !errors.As(err, &re) || re.Source != path {
		t.Errorf("Check(crl-revoked) = %v, want revoked per the CRL", err)
	}
	if resp.requests.Load() != 0 {
		t.Errorf("OCSP asked about a certificate the CRL revokes")
	}
	status.Store(int32(ocsp.Revoked))
	if err := c.Check(context.Background(), ocspRevoked, ca.cert); !errors.As(err, &re) || !strings.HasPrefix(re.Source, "OCSP ") {
		t.Errorf("Check(ocsp-revoked) = %v, want revoked per OCSP", err)
	}
	if err := c.Check(context.Background(), noResponder, ca.cert); err != nil {
		t.Errorf("Check(no-responder) = %v, want nil from the fresh CRL", err)
	}
}
