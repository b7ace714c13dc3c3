package revocation

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sort"
	"time"
)

// errRollback marks a CRL older than the one loaded from the same source.
var errRollback = errors.New("older than the loaded CRL")

// source is one configured CRL location.
type source struct {
	loc   location
	label string // the location with any password hidden
	// HTTP validators of the loaded CRL; guarded by Checker.refreshMu.
	etag, lastModified string
}

// sourceState is what is known of a source; immutable once published.
type sourceState struct {
	crl         *crl // nil until a CRL loaded
	lastErr     string
	lastErrAt   time.Time
	lastSuccess time.Time
	nextRefresh time.Time
}

// Run keeps the CRLs fresh: each source is read again every Refresh, at its
// CRL's nextUpdate when that comes first, and every minute while it fails or
// is past nextUpdate. It returns nil when ctx is done.
func (c *Checker) Run(ctx context.Context) error {
	if len(c.sources) == 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTimer(c.untilDue())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.kick:
		case <-t.C:
			c.refresh(ctx, false, false)
		}
		t.Reset(c.untilDue())
	}
}

// Reload reads every CRL now (SIGHUP) and forgets cached OCSP answers. A
// source that fails keeps its previous CRL; the error names each failed
// source and why. Failures are also logged here, with their consequence,
// like those of Run: the caller need not log them again.
func (c *Checker) Reload() error {
	errs := c.refresh(context.Background(), true, false)
	if c.ocsp != nil {
		c.ocsp.purge()
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
	var out []error
	for i, err := range errs {
		if err != nil {
			out = append(out, fmt.Errorf("CRL %s: %w", c.sources[i].label, err))
		}
	}
	return errors.Join(out...)
}

// untilDue is the time to the next source refresh.
func (c *Checker) untilDue() time.Duration {
	now, snap := c.now(), c.snap.Load()
	d := c.cfg.Refresh
	for _, st := range snap.sources {
		d = min(d, st.nextRefresh.Sub(now))
	}
	return max(d, 0)
}

// refresh reads the sources that are due (all when force), publishes the
// new snapshot and returns each source's error. initial (from New) leaves
// file errors unlogged: New returns them.
func (c *Checker) refresh(ctx context.Context, force, initial bool) []error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	old := c.snap.Load()
	next := &snapshot{sources: slices.Clone(old.sources)}
	errs := make([]error, len(c.sources))
	for i, s := range c.sources {
		if ctx.Err() != nil {
			break
		}
		if force || !c.now().Before(old.sources[i].nextRefresh) {
			next.sources[i], errs[i] = c.refreshSource(ctx, s, old.sources[i], initial)
		}
	}
	next.byIssuer = index(next.sources)
	c.snap.Store(next)
	return errs
}

// index groups the loaded CRLs by issuer name, newest first.
func index(states []sourceState) map[string][]*crl {
	m := make(map[string][]*crl, len(states))
	for _, st := range states {
		if st.crl != nil {
			m[string(st.crl.rawIssuer)] = append(m[string(st.crl.rawIssuer)], st.crl)
		}
	}
	for _, list := range m {
		sort.SliceStable(list, func(i, j int) bool { return list[i].newer(list[j]) })
	}
	return m
}

func (c *Checker) refreshSource(ctx context.Context, s *source, prev sourceState, initial bool) (sourceState, error) {
	st := prev
	cr, err := c.load(ctx, s, prev.crl)
	if err != nil && ctx.Err() != nil {
		return prev, nil // shutting down: not the source's fault
	}
	now := c.now()
	if err != nil {
		st.lastErr, st.lastErrAt = err.Error(), now
		c.m.refreshErrors.WithLabelValues(s.label).Inc()
		if !initial || s.loc.url != nil {
			c.logFailure(s, st.crl, err, now)
		}
	} else {
		if cr != nil {
			c.logLoaded(s, prev.crl, cr)
			st.crl = cr
		}
		st.lastSuccess = now
		c.logFreshness(s, st.crl, cr == nil, now)
	}
	st.nextRefresh = c.schedule(now, st.crl, err != nil)
	return st, err
}

// schedule picks a source's next refresh: Refresh from now or the CRL's
// nextUpdate, whichever is first; soon (retryInterval) after a failure or
// when the CRL is already past nextUpdate.
func (c *Checker) schedule(now time.Time, cr *crl, failed bool) time.Time {
	if failed || cr == nil || !now.Before(cr.nextUpdate) {
		return now.Add(min(c.cfg.Refresh, retryInterval))
	}
	next := now.Add(c.cfg.Refresh)
	if cr.nextUpdate.Before(next) {
		next = cr.nextUpdate
	}
	return next
}

// load reads a source and returns its new CRL, or nil when unchanged.
func (c *Checker) load(ctx context.Context, s *source, cur *crl) (*crl, error) {
	data, meta, err := c.read(ctx, s, cur != nil)
	if err != nil || data == nil {
		return nil, err
	}
	if der, err := crlDER(data); err == nil && cur != nil && sha256.Sum256(der) == cur.digest {
		return nil, nil
	}
	cr, err := parseCRL(data)
	if err != nil {
		return nil, err
	}
	if err := successor(cur, cr); err != nil {
		return nil, err
	}
	cr.source = s.label
	s.etag, s.lastModified = meta.etag, meta.lastModified
	return cr, nil
}

// successor decides whether next may replace cur from the same source.
// Signatures are checked at Check time, when the issuer is known, so only
// a cur that a Check verified is trusted: its successor must verify
// against the same issuer and must not be older. An unverified cur guards
// nothing, or a forged CRL with a huge number, fetched over plain HTTP,
// would lock the real ones out for good.
func successor(cur, next *crl) error {
	if cur == nil || !cur.sameScope(next) {
		return nil
	}
	v := cur.verified.Load()
	if v == nil || v.err != nil {
		return nil
	}
	if err := next.verifiedBy(v.issuer); err != nil {
		return fmt.Errorf("CRL is not signed by %q, which signed the loaded CRL: %w", v.issuer.Subject, err)
	}
	if cur.newer(next) {
		return fmt.Errorf("%w: CRL number %q of %s, loaded %q of %s; keeping the loaded CRL", errRollback,
			next.numberString(), next.thisUpdate.UTC().Format(time.RFC3339), cur.numberString(), cur.thisUpdate.UTC().Format(time.RFC3339))
	}
	return nil
}

// validators are the HTTP cache validators of a response.
type validators struct{ etag, lastModified string }

// read returns the bytes of a source; nil bytes and no error mean an HTTP
// 304 to a conditional request.
func (c *Checker) read(ctx context.Context, s *source, conditional bool) ([]byte, validators, error) {
	if s.loc.url == nil {
		data, err := readFile(s.loc.path)
		return data, validators{}, err
	}
	return c.fetch(ctx, s, conditional)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCRLSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > maxCRLSize {
		return nil, fmt.Errorf("%s is over the %d-byte CRL limit", path, maxCRLSize)
	}
	return data, nil
}

// fetch GETs a CRL URL, conditionally when a CRL is loaded, within
// HTTPTimeout and maxCRLSize.
func (c *Checker) fetch(ctx context.Context, s *source, conditional bool) ([]byte, validators, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.HTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.loc.url.String(), nil)
	if err != nil {
		return nil, validators{}, err
	}
	if conditional && s.etag != "" {
		req.Header.Set("If-None-Match", s.etag)
	}
	if conditional && s.lastModified != "" {
		req.Header.Set("If-Modified-Since", s.lastModified)
	}
	resp, err := c.client.Do(req) // the *url.Error hides any password
	if err != nil {
		return nil, validators{}, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && conditional:
		return nil, validators{}, nil
	case resp.StatusCode != http.StatusOK:
		return nil, validators{}, fmt.Errorf("GET %s: HTTP status %s", s.label, resp.Status)
	case resp.ContentLength > maxCRLSize:
		return nil, validators{}, fmt.Errorf("GET %s: Content-Length %d is over the %d-byte CRL limit", s.label, resp.ContentLength, maxCRLSize)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxCRLSize+1))
	if err != nil {
		return nil, validators{}, fmt.Errorf("GET %s: reading body: %w", s.label, err)
	}
	if len(data) > maxCRLSize {
		return nil, validators{}, fmt.Errorf("GET %s: body is over the %d-byte CRL limit", s.label, maxCRLSize)
	}
	return data, validators{etag: resp.Header.Get("ETag"), lastModified: resp.Header.Get("Last-Modified")}, nil
}

func crlAttrs(s *source, cr *crl) []any {
	return []any{slog.String("source", s.label), slog.String("issuer", cr.issuer),
		slog.String("crl_number", cr.numberString()), slog.Int("entries", len(cr.entries)),
		slog.Time("this_update", cr.thisUpdate), slog.Time("next_update", cr.nextUpdate)}
}

func (c *Checker) logLoaded(s *source, prev, cr *crl) {
	if prev != nil && prev.sameScope(cr) && len(prev.entries) > 0 && len(cr.entries) == 0 {
		c.log.Warn("CRL loaded with no entries although the previous one had some; check the CA",
			append(crlAttrs(s, cr), slog.Int("previous_entries", len(prev.entries)))...)
		return
	}
	c.log.Info("CRL loaded", crlAttrs(s, cr)...)
}

// logFreshness says loudly when a CRL is stale or about to be: these are
// the states that lock everyone out (fail-closed) or let revoked
// certificates in (fail-open).
func (c *Checker) logFreshness(s *source, cr *crl, unchanged bool, now time.Time) {
	if cr == nil {
		return
	}
	attrs := append(crlAttrs(s, cr), slog.Duration("max_stale", c.cfg.MaxStale))
	switch {
	case now.After(cr.expires(c.cfg.MaxStale)):
		c.log.Error("CRL is past its nextUpdate and max_stale, so it is not used: no revocation information for its issuer; "+
			c.consequence(), attrs...)
	case now.After(cr.nextUpdate):
		c.log.Warn("CRL is past its nextUpdate; still used until max_stale runs out",
			append(attrs, slog.Time("usable_until", cr.expires(c.cfg.MaxStale)))...)
	case unchanged && cr.nextUpdate.Sub(now) < cr.nextUpdate.Sub(cr.thisUpdate)/10:
		c.log.Warn("CRL expires soon and no newer one is published; after that "+c.consequence(),
			append(attrs, slog.Time("usable_until", cr.expires(c.cfg.MaxStale)))...)
	}
}

func (c *Checker) logFailure(s *source, cur *crl, err error, now time.Time) {
	attrs := []any{slog.String("source", s.label), slog.String("error", err.Error())}
	switch {
	case errors.Is(err, errRollback):
		c.log.Warn("ignoring a CRL older than the loaded one", attrs...)
	case cur != nil && !now.After(cur.expires(c.cfg.MaxStale)):
		c.log.Warn("refreshing CRL failed; keeping the loaded one",
			append(attrs, slog.String("crl_number", cur.numberString()), slog.Time("usable_until", cur.expires(c.cfg.MaxStale)))...)
	default:
		c.log.Error("CRL unavailable: no revocation information for its issuer; "+c.consequence(), attrs...)
	}
}
