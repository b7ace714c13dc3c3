package tunnel

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/tunnel/relay"
)

// Connection outcomes, the bounded label values of connections_total.
const (
	outcomeOK          = "ok"
	outcomeDenied      = "denied"
	outcomeHandshake   = "handshake_error"
	outcomeUnreachable = "target_unreachable"
	outcomeLimit       = "limit"
	outcomeError       = "error"
)

// metrics are the tunnel's Prometheus series, registered on an injected
// registry. Labels are bounded: service names come from the config, the
// outcome and reason sets are fixed.
type metrics struct {
	open         *prometheus.GaugeVec
	total        *prometheus.CounterVec
	handshakeErr *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	handshake    *prometheus.HistogramVec
	connect      *prometheus.HistogramVec
	notAfter     *prometheus.GaugeVec
	reloadOK     prometheus.Gauge
	reloadTime   prometheus.Gauge
	parked       prometheus.GaugeFunc
	parks        prometheus.CounterFunc
}

func newMetrics(reg prometheus.Registerer, eng *relay.Engine) *metrics {
	m := &metrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "portcullis_tunnel_connections_open", Help: "Connections being proxied now.",
		}, []string{"service"}),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_tunnel_connections_total", Help: "Connections accepted, by how they ended.",
		}, []string{"service", "outcome"}),
		handshakeErr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_tunnel_handshake_errors_total", Help: "Failed TLS handshakes by reason.",
		}, []string{"service", "reason"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_tunnel_bytes_total", Help: "Bytes proxied, counted when a connection closes; direction up is client to target.",
		}, []string{"service", "direction"}),
		handshake: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "portcullis_tunnel_handshake_seconds", Help: "TLS handshake latency.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"service"}),
		connect: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "portcullis_tunnel_connect_seconds", Help: "Time to connect to a target (client mode: including its TLS handshake).",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}, []string{"service"}),
		notAfter: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "portcullis_tunnel_cert_not_after_timestamp_seconds", Help: "Expiry of the service's own certificate.",
		}, []string{"service"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portcullis_tunnel_last_reload_successful", Help: "1 if the last reload succeeded.",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "portcullis_tunnel_last_reload_success_timestamp_seconds", Help: "When the configuration or certificates were last (re)loaded successfully.",
		}),
	}
	// Read from the proxy's copy engine: how many connection directions
	// wait without a goroutine (relay/park_linux.go), and how often they
	// parked.
	m.parked = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "portcullis_tunnel_parked_directions", Help: "Directions of idle connections waiting without a goroutine (Linux).",
	}, func() float64 { return float64(eng.Parked()) })
	m.parks = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "portcullis_tunnel_parks_total", Help: "Times a direction of an idle connection gave up its goroutine.",
	}, func() float64 { return float64(eng.Parks()) })
	reg.MustRegister(m.open, m.total, m.handshakeErr, m.bytes, m.handshake, m.connect, m.notAfter, m.reloadOK, m.reloadTime, m.parked, m.parks)
	return m
}
