package revocation

import "time"

// Status is the revocation part of the /status endpoint.
type Status struct {
	Mode Mode `json:"mode"`
	// MaxStaleSeconds is the staleness bound: how long past nextUpdate a
	// CRL is still used.
	MaxStaleSeconds float64        `json:"max_stale_seconds"`
	Sources         []SourceStatus `json:"sources"`
	OCSP            OCSPStatus     `json:"ocsp"`
}

// SourceStatus describes one CRL source.
type SourceStatus struct {
	Location   string    `json:"location"`
	Issuer     string    `json:"issuer,omitempty"`
	CRLNumber  string    `json:"crl_number,omitempty"`
	ThisUpdate time.Time `json:"this_update,omitzero"`
	NextUpdate time.Time `json:"next_update,omitzero"`
	// UsableUntil is NextUpdate plus MaxStale: after it the CRL is not
	// used and its issuer's certificates get Mode.
	UsableUntil time.Time `json:"usable_until,omitzero"`
	Entries     int       `json:"entries"`
	// Stale: no CRL loaded, or the loaded one is past its NextUpdate.
	Stale bool `json:"stale"`
	// Usable: a CRL is loaded and UsableUntil has not passed.
	Usable bool `json:"usable"`
	// AgeSeconds is the time since the CRL's ThisUpdate.
	AgeSeconds float64 `json:"age_seconds,omitempty"`
	// Signature is "verified" or "invalid" once a Check met the CRL's
	// issuer, "unchecked" before.
	Signature string `json:"signature,omitempty"`
	// LastError is the most recent failure, kept after later successes:
	// compare LastErrorAt with LastSuccess.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	NextRefresh time.Time `json:"next_refresh,omitzero"`
}

// OCSPStatus describes the OCSP cache.
type OCSPStatus struct {
	Enabled       bool   `json:"enabled"`
	CacheEntries  int    `json:"cache_entries"`
	CacheCapacity int    `json:"cache_capacity"`
	Hits          uint64 `json:"hits"`
	Misses        uint64 `json:"misses"`
}

// Status reports every source and the OCSP cache, as of now.
func (c *Checker) Status() Status {
	now, snap := c.now(), c.snap.Load()
	st := Status{Mode: c.cfg.Mode, MaxStaleSeconds: c.cfg.MaxStale.Seconds(), Sources: make([]SourceStatus, len(c.sources))}
	for i, s := range c.sources {
		ss := snap.sources[i]
		out := SourceStatus{Location: s.label, Stale: true, LastError: ss.lastErr, LastErrorAt: ss.lastErrAt,
			LastSuccess: ss.lastSuccess, NextRefresh: ss.nextRefresh}
		if cr := ss.crl; cr != nil {
			out.Issuer, out.CRLNumber, out.Entries = cr.issuer, cr.numberString(), len(cr.entries)
			out.ThisUpdate, out.NextUpdate, out.UsableUntil = cr.thisUpdate, cr.nextUpdate, cr.expires(c.cfg.MaxStale)
			out.Stale = now.After(cr.nextUpdate)
			out.Usable = !now.After(out.UsableUntil)
			out.AgeSeconds = now.Sub(cr.thisUpdate).Seconds()
			out.Signature = "unchecked"
			if v := cr.verified.Load(); v != nil && v.err == nil {
				out.Signature = "verified"
			} else if v != nil {
				out.Signature = "invalid"
			}
		}
		st.Sources[i] = out
	}
	if c.ocsp != nil {
		st.OCSP = c.ocsp.status()
	}
	return st
}
