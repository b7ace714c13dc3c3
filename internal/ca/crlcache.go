package ca

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// CRLCacheOptions shape a CRLCache; zero fields take the defaults.
type CRLCacheOptions struct {
	// Margin: the CRL is signed again when its nextUpdate is closer than
	// this. Default half the CRL lifetime of ca.yaml (lifetimes.crl), so a
	// relying party never fetches one with less than half its life ahead.
	Margin time.Duration
}

// SignedCRL is a CRL as served: its DER, a strong validator and its
// update times. The DER is shared; callers must not modify it.
type SignedCRL struct {
	DER []byte
	// ETag is the hex CRL number. Numbers come from
	// store.NextCRLNumber, which never hands one out twice, even to
	// replicas on one store: two different CRLs never share an ETag.
	ETag       string
	Number     int64
	ThisUpdate time.Time
	NextUpdate time.Time
}

// CRLCache holds the issuing CA's current signed CRL. Serving it is an
// atomic load; it is signed again (through Authority.CRL, which also
// rewrites crl.pem) on the first request after Invalidate, or when its
// nextUpdate comes within the margin.
type CRLCache struct {
	a      *Authority
	margin time.Duration
	cur    atomic.Pointer[SignedCRL]
	// stale is set by Invalidate; the next request signs.
	stale atomic.Bool
	mu    sync.Mutex // one signing at a time
}

// CRLCache returns an empty cache of the issuing CA's CRL; the first
// Current signs.
func (a *Authority) CRLCache(opts CRLCacheOptions) *CRLCache {
	if opts.Margin <= 0 {
		opts.Margin = time.Duration(a.cfg.Lifetimes.CRL) / 2
	}
	return &CRLCache{a: a, margin: opts.Margin}
}

// Current returns the cached CRL, signing a new one first if there is
// none, Invalidate was called, or nextUpdate is within the margin. When
// signing fails for the margin alone, the cached CRL, still valid, is
// returned (and the failure logged); after an Invalidate it is not, since
// it would hide a revocation.
func (c *CRLCache) Current(ctx context.Context) (*SignedCRL, error) {
	if crl := c.cur.Load(); c.fresh(crl) {
		return crl, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	crl := c.cur.Load()
	if c.fresh(crl) {
		return crl, nil
	}
	next, err := c.sign(ctx)
	if err == nil {
		return next, nil
	}
	if crl != nil && !c.stale.Load() && c.a.opts.Now().Before(crl.NextUpdate) {
		c.a.opts.Logger.Warn("signing a new CRL; serving the current one until its nextUpdate",
			"crl_number", crl.Number, "next_update", crl.NextUpdate, "error", err.Error())
		return crl, nil
	}
	return nil, err
}

func (c *CRLCache) fresh(crl *SignedCRL) bool {
	return crl != nil && !c.stale.Load() && c.a.opts.Now().Before(crl.NextUpdate.Add(-c.margin))
}

// Refresh signs a new CRL now and caches it.
func (c *CRLCache) Refresh(ctx context.Context) (*SignedCRL, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sign(ctx)
}

// sign runs with mu held. The stale flag is cleared before the store is
// read, so an Invalidate during the signing marks the result stale again.
func (c *CRLCache) sign(ctx context.Context) (*SignedCRL, error) {
	wasStale := c.stale.Swap(false)
	rl, err := c.a.CRL(ctx)
	if err != nil {
		if wasStale {
			c.stale.Store(true)
		}
		return nil, err
	}
	n := rl.Number.Int64()
	crl := &SignedCRL{DER: rl.Raw, ETag: fmt.Sprintf("%x", n), Number: n, ThisUpdate: rl.ThisUpdate, NextUpdate: rl.NextUpdate}
	c.cur.Store(crl)
	return crl, nil
}

// Invalidate marks the cached CRL stale: the next Current signs a new one
// that includes the revocations recorded so far. The server calls it
// after a revocation.
func (c *CRLCache) Invalidate() { c.stale.Store(true) }

// CurrentCRL is Current for an HTTP front end: the DER, the ETag and the
// nextUpdate (for Cache-Control).
func (c *CRLCache) CurrentCRL(ctx context.Context) (der []byte, etag string, nextUpdate time.Time, err error) {
	crl, err := c.Current(ctx)
	if err != nil {
		return nil, "", time.Time{}, err
	}
	return crl.DER, crl.ETag, crl.NextUpdate, nil
}
