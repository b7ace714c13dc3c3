package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portcullis-dev/portcullis/internal/enroll"
	"github.com/portcullis-dev/portcullis/internal/store"
)

type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	enrollments *prometheus.CounterVec
	renewals    *prometheus.CounterVec
	ocsp        *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry, ra *enroll.Service) (*metrics, error) {
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_server_http_requests_total",
			Help: "HTTP requests by route and status code."}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "portcullis_server_http_request_duration_seconds",
			Help: "HTTP request latency by route.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"route"}),
		enrollments: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_server_enrollments_total",
			Help: "Enrollment submissions by the state they reached at once."}, []string{"state"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_server_renewals_total",
			Help: "Renewals over mTLS by outcome."}, []string{"outcome"}),
		ocsp: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_server_ocsp_responses_total",
			Help: "OCSP responses by outcome."}, []string{"outcome"}),
	}
	// The fleet gauges are read from the store at scrape time: they are
	// right across replicas, which counters kept in memory would not be.
	stats := func() *enroll.Stats {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := ra.Stats(ctx)
		if err != nil {
			return &enroll.Stats{}
		}
		return st
	}
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portcullis_enrollment_requests_pending",
		Help: "Enrollment requests waiting for a decision."}, func() float64 {
		return float64(stats().Requests[store.RequestPending])
	})
	exp7 := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portcullis_device_certificates_expiring_7d",
		Help: "Active device certificates expiring within 7 days."}, func() float64 { return float64(stats().ExpiringWithin7d) })
	exp30 := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portcullis_device_certificates_expiring_30d",
		Help: "Active device certificates expiring within 30 days."}, func() float64 { return float64(stats().ExpiringWithin30d) })
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.enrollments, m.renewals, m.ocsp, pending, exp7, exp30} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (m *metrics) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
