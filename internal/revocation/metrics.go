package revocation

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of checks_total.
const (
	resultGood           = "good"
	resultRevoked        = "revoked"
	resultUnknownAllowed = "unknown_allowed"
	resultUnknownDenied  = "unknown_denied"
)

// Results of ocsp_requests_total (one per HTTP query, not per Check).
const (
	ocspGood    = "good"
	ocspRevoked = "revoked"
	ocspUnknown = "unknown" // the responder does not know the certificate
	ocspError   = "error"   // unreachable, bad HTTP status, bad or stale response
)

// metrics are the portcullis_revocation_* series. Several Checkers (one per
// service) can share a registry if each gets
// prometheus.WrapRegistererWith(prometheus.Labels{"service": name}, reg).
type metrics struct {
	checks        *prometheus.CounterVec
	refreshErrors *prometheus.CounterVec
	ocspRequests  *prometheus.CounterVec
	ocspCache     *prometheus.CounterVec
	sources       *sourceCollector
	// resolved children: Check increments these without a label lookup.
	checkGood, checkRevoked, checkUnknownAllowed, checkUnknownDenied prometheus.Counter
	ocspHit, ocspMiss                                                prometheus.Counter
}

func newMetrics(c *Checker) *metrics {
	m := &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_revocation_checks_total",
			Help: "Revocation checks by result: good, revoked, unknown_allowed (fail-open) or unknown_denied (fail-closed).",
		}, []string{"result"}),
		refreshErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_revocation_refresh_errors_total",
			Help: "Failed CRL reads or fetches, and CRLs rejected as invalid or older than the loaded one.",
		}, []string{"source"}),
		ocspRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_revocation_ocsp_requests_total",
			Help: "OCSP queries sent, by result: good, revoked, unknown or error.",
		}, []string{"result"}),
		ocspCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_revocation_ocsp_cache_lookups_total",
			Help: "OCSP cache lookups by result: hit or miss.",
		}, []string{"result"}),
		sources: newSourceCollector(c),
	}
	m.checkGood = m.checks.WithLabelValues(resultGood)
	m.checkRevoked = m.checks.WithLabelValues(resultRevoked)
	m.checkUnknownAllowed = m.checks.WithLabelValues(resultUnknownAllowed)
	m.checkUnknownDenied = m.checks.WithLabelValues(resultUnknownDenied)
	m.ocspHit = m.ocspCache.WithLabelValues("hit")
	m.ocspMiss = m.ocspCache.WithLabelValues("miss")
	for _, r := range []string{ocspGood, ocspRevoked, ocspUnknown, ocspError} {
		m.ocspRequests.WithLabelValues(r)
	}
	for _, s := range c.sources {
		m.refreshErrors.WithLabelValues(s.label)
	}
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	var errs []error
	for _, col := range []prometheus.Collector{m.checks, m.refreshErrors, m.ocspRequests, m.ocspCache, m.sources} {
		if err := reg.Register(col); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("registering revocation metrics: %w", errors.Join(errs...))
	}
	return nil
}

// sourceCollector reports the per-source gauges from the current snapshot
// at scrape time, so crl_stale turns 1 when nextUpdate passes even if no
// refresh ran since.
type sourceCollector struct {
	c                                  *Checker
	entries, nextUpdate, stale, lastOK *prometheus.Desc
}

func newSourceCollector(c *Checker) *sourceCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("portcullis_revocation_"+name, help, []string{"source"}, nil)
	}
	return &sourceCollector{
		c:          c,
		entries:    d("crl_entries", "Revoked serials in the loaded CRL."),
		nextUpdate: d("crl_next_update_timestamp_seconds", "nextUpdate of the loaded CRL (0: none loaded)."),
		stale:      d("crl_stale", "1 when no CRL is loaded or the loaded one is past its nextUpdate."),
		lastOK:     d("crl_last_success_timestamp_seconds", "When the source was last read successfully (0: never)."),
	}
}

func (sc *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sc.entries
	ch <- sc.nextUpdate
	ch <- sc.stale
	ch <- sc.lastOK
}

func (sc *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	now, snap := sc.c.now(), sc.c.snap.Load()
	for i, s := range sc.c.sources {
		st := snap.sources[i]
		var entries, next float64
		stale := 1.0
		if st.crl != nil {
			entries = float64(len(st.crl.entries))
			next = float64(st.crl.nextUpdate.Unix())
			if !now.After(st.crl.nextUpdate) {
				stale = 0
			}
		}
		var lastOK float64
		if !st.lastSuccess.IsZero() {
			lastOK = float64(st.lastSuccess.Unix())
		}
		ch <- prometheus.MustNewConstMetric(sc.entries, prometheus.GaugeValue, entries, s.label)
		ch <- prometheus.MustNewConstMetric(sc.nextUpdate, prometheus.GaugeValue, next, s.label)
		ch <- prometheus.MustNewConstMetric(sc.stale, prometheus.GaugeValue, stale, s.label)
		ch <- prometheus.MustNewConstMetric(sc.lastOK, prometheus.GaugeValue, lastOK, s.label)
	}
}
