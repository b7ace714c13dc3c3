package revocation

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"
)

// maxResponders bounds the AIA OCSP URLs tried for one certificate.
const maxResponders = 3

// ocspKey identifies a certificate: its issuer's name and key, its serial.
type ocspKey [sha256.Size]byte

func ocspKeyOf(leaf, issuer *x509.Certificate) ocspKey {
	h := sha256.New()
	for _, part := range [][]byte{issuer.RawSubject, issuer.RawSubjectPublicKeyInfo, certSerial(leaf)} {
		var n [4]byte
		n[0], n[1], n[2], n[3] = byte(len(part)>>24), byte(len(part)>>16), byte(len(part)>>8), byte(len(part))
		h.Write(n[:])
		h.Write(part)
	}
	var k ocspKey
	h.Sum(k[:0])
	return k
}

// ocspCache keeps OCSP answers until their nextUpdate (capped by Refresh),
// least recently used out first, and runs one query per certificate at a
// time however many handshakes want it.
type ocspCache struct {
	mu       sync.Mutex
	capacity int
	items    map[ocspKey]*list.Element // of *ocspItem
	lru      *list.List                // front: most recently used
	calls    map[ocspKey]*ocspCall
	hits     atomic.Uint64
	misses   atomic.Uint64
}

type ocspItem struct {
	key   ocspKey
	ans   answer
	until time.Time
}

// ocspCall is a query in flight; done closes when ans is set.
type ocspCall struct {
	done chan struct{}
	ans  answer
}

func newOCSPCache(capacity int) *ocspCache {
	return &ocspCache{capacity: capacity, items: map[ocspKey]*list.Element{}, lru: list.New(), calls: map[ocspKey]*ocspCall{}}
}

func (oc *ocspCache) getLocked(k ocspKey, now time.Time) (answer, bool) {
	el := oc.items[k]
	if el == nil {
		return answer{}, false
	}
	it := el.Value.(*ocspItem)
	if !now.Before(it.until) {
		oc.lru.Remove(el)
		delete(oc.items, k)
		return answer{}, false
	}
	oc.lru.MoveToFront(el)
	return it.ans, true
}

func (oc *ocspCache) putLocked(k ocspKey, ans answer, until time.Time) {
	if el := oc.items[k]; el != nil {
		it := el.Value.(*ocspItem)
		it.ans, it.until = ans, until
		oc.lru.MoveToFront(el)
		return
	}
	oc.items[k] = oc.lru.PushFront(&ocspItem{key: k, ans: ans, until: until})
	for oc.lru.Len() > oc.capacity {
		back := oc.lru.Back()
		oc.lru.Remove(back)
		delete(oc.items, back.Value.(*ocspItem).key)
	}
}

func (oc *ocspCache) purge() {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	oc.items = map[ocspKey]*list.Element{}
	oc.lru.Init()
}

func (oc *ocspCache) status() OCSPStatus {
	oc.mu.Lock()
	n := oc.lru.Len()
	oc.mu.Unlock()
	return OCSPStatus{Enabled: true, CacheEntries: n, CacheCapacity: oc.capacity, Hits: oc.hits.Load(), Misses: oc.misses.Load()}
}

// checkOCSP answers from the cache or joins (or starts) the one query for
// this certificate. The query runs on its own, bounded by HTTPTimeout, so a
// handshake that gives up (ctx) does not fail the others waiting for it.
func (c *Checker) checkOCSP(ctx context.Context, leaf, issuer *x509.Certificate, now time.Time) answer {
	oc, k := c.ocsp, ocspKeyOf(leaf, issuer)
	oc.mu.Lock()
	if ans, ok := oc.getLocked(k, now); ok {
		oc.mu.Unlock()
		oc.hits.Add(1)
		c.m.ocspHit.Inc()
		return ans
	}
	oc.misses.Add(1)
	c.m.ocspMiss.Inc()
	call := oc.calls[k]
	if call == nil {
		call = &ocspCall{done: make(chan struct{})}
		oc.calls[k] = call
		go c.runOCSP(context.WithoutCancel(ctx), k, call, leaf, issuer)
	}
	oc.mu.Unlock()
	select {
	case <-call.done:
		return call.ans
	case <-ctx.Done():
		return answer{why: "OCSP: stopped waiting for the responder: " + ctx.Err().Error()}
	}
}

func (c *Checker) runOCSP(ctx context.Context, k ocspKey, call *ocspCall, leaf, issuer *x509.Certificate) {
	ans, until := c.queryOCSP(ctx, leaf, issuer)
	oc := c.ocsp
	oc.mu.Lock()
	oc.putLocked(k, ans, until)
	delete(oc.calls, k)
	oc.mu.Unlock()
	call.ans = ans
	close(call.done)
}

// queryOCSP asks the leaf's responders in order until one answers, and
// says how long the answer may be cached.
func (c *Checker) queryOCSP(ctx context.Context, leaf, issuer *x509.Certificate) (answer, time.Time) {
	// SHA-1 CertID (the default): RFC 5019 §2.1.1 requires it of
	// lightweight clients, so every responder understands it.
	req, err := createRequest(leaf, issuer)
	if err != nil {
		c.m.ocspRequests.WithLabelValues(ocspError).Inc()
		return answer{why: "OCSP: building the request: " + err.Error()}, c.now().Add(min(ocspRetry, c.cfg.Refresh))
	}
	var ans answer
	var until time.Time
	for i, u := range leaf.OCSPServer {
		if i == maxResponders {
			break
		}
		var result string
		ans, until, result = c.askResponder(ctx, u, req, leaf, issuer)
		c.m.ocspRequests.WithLabelValues(result).Inc()
		if result != ocspError {
			break
		}
	}
	return ans, until
}

// createRequest is ocsp.CreateRequest with a panic made an error: under
// GODEBUG=fips140=only crypto/sha1 panics on the SHA-1 CertID hash, and
// this runs in a goroutine of its own, where a panic ends the process.
func createRequest(leaf, issuer *x509.Certificate) (req []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			req, err = nil, fmt.Errorf("x/crypto/ocsp panicked: %v", r)
		}
	}()
	return ocsp.CreateRequest(leaf, issuer, nil)
}

func (c *Checker) askResponder(ctx context.Context, url string, req []byte, leaf, issuer *x509.Certificate) (answer, time.Time, string) {
	fail := func(format string, args ...any) (answer, time.Time, string) {
		return answer{why: "OCSP " + url + ": " + fmt.Sprintf(format, args...)}, c.now().Add(min(ocspRetry, c.cfg.Refresh)), ocspError
	}
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return fail("not an http(s) URL")
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.HTTPTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(req))
	if err != nil {
		return fail("%v", err)
	}
	hreq.Header.Set("Content-Type", "application/ocsp-request")
	hreq.Header.Set("Accept", "application/ocsp-response")
	resp, err := c.client.Do(hreq)
	if err != nil {
		return fail("%v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail("HTTP status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxOCSPSize+1))
	if err != nil {
		return fail("reading the response: %v", err)
	}
	if len(body) > maxOCSPSize {
		return fail("response over %d bytes", maxOCSPSize)
	}
	now := c.now()
	r, err := verifyOCSP(body, leaf, issuer, now)
	if err != nil {
		return fail("%v", err)
	}
	until := now.Add(c.cfg.Refresh)
	switch {
	case r.NextUpdate.IsZero():
		until = now.Add(min(c.cfg.Refresh, ocspNoNextUpdate))
	case r.NextUpdate.Before(until):
		until = r.NextUpdate
	}
	switch r.Status {
	case ocsp.Good:
		return answer{v: vGood}, until, ocspGood
	case ocsp.Revoked:
		return answer{v: vRevoked, source: "OCSP " + url, revokedAt: r.RevokedAt.UTC(), reason: r.RevocationReason}, until, ocspRevoked
	}
	return answer{why: "OCSP " + url + ": the responder does not know the certificate"}, until, ocspUnknown
}

// verifyOCSP parses a response for leaf and checks who signed it: the issuer,
// or a responder certificate the issuer signed for OCSPSigning (RFC 6960
// §4.2.2.2). x/crypto/ocsp is given no issuer on purpose: it would check a
// delegated certificate's signature but not its EKU (so any leaf of the CA
// could vouch for itself), and it rejects a response that embeds the issuer
// itself. Then the response must be current.
func verifyOCSP(body []byte, leaf, issuer *x509.Certificate, now time.Time) (*ocsp.Response, error) {
	r, err := ocsp.ParseResponseForCert(body, leaf, nil)
	if err != nil {
		return nil, fmt.Errorf("parsing the response: %w", err)
	}
	signer := issuer
	if d := r.Certificate; d != nil && !bytes.Equal(d.Raw, issuer.Raw) {
		if err := d.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("responder certificate %q is not issued by %q: %w", d.Subject, issuer.Subject, err)
		}
		if !slices.Contains(d.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
			return nil, fmt.Errorf("responder certificate %q lacks the OCSPSigning extended key usage", d.Subject)
		}
		if now.Before(d.NotBefore) || now.After(d.NotAfter) {
			return nil, fmt.Errorf("responder certificate %q is outside its validity period", d.Subject)
		}
		signer = d
	}
	if err := r.CheckSignatureFrom(signer); err != nil {
		return nil, fmt.Errorf("response signature: %w", err)
	}
	if r.ThisUpdate.After(now.Add(clockSkew)) {
		return nil, fmt.Errorf("response thisUpdate %s is in the future", r.ThisUpdate.UTC().Format(time.RFC3339))
	}
	if !r.NextUpdate.IsZero() && now.After(r.NextUpdate) {
		return nil, fmt.Errorf("response expired at %s", r.NextUpdate.UTC().Format(time.RFC3339))
	}
	return r, nil
}
