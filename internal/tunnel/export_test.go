package tunnel

import "github.com/prometheus/client_golang/prometheus"

// Buffers is how many copy buffers the proxy's engine has out of the pools.
func (p *Proxy) Buffers() int64 { return p.engine.Buffers() }

// Parks counts directions parked so far by the proxy's engine.
func (p *Proxy) Parks() int64 { return p.engine.Parks() }

// Parked counts the proxy's directions parked at this moment.
func (p *Proxy) Parked() int { return p.engine.Parked() }

// Collector is the proxy's collector of the metric name (the vector of a
// labelled one), for prometheus/testutil.
func (p *Proxy) Collector(name string) prometheus.Collector {
	m := p.m
	c, ok := map[string]prometheus.Collector{
		"portcullis_tunnel_connections_open":                 m.open,
		"portcullis_tunnel_connections_total":                m.total,
		"portcullis_tunnel_handshake_errors_total":           m.handshakeErr,
		"portcullis_tunnel_bytes_total":                      m.bytes,
		"portcullis_tunnel_cert_not_after_timestamp_seconds": m.notAfter,
		"portcullis_tunnel_last_reload_successful":           m.reloadOK,
		"portcullis_tunnel_parked_directions":                m.parked,
		"portcullis_tunnel_parks_total":                      m.parks,
	}[name]
	if !ok {
		panic("no collector of " + name + " for tests")
	}
	return c
}

// Series is the series of the metric name with the given label pairs
// (name, value, …), for testutil.ToFloat64.
func (p *Proxy) Series(name string, pairs ...string) prometheus.Collector {
	l := prometheus.Labels{}
	for i := 0; i+1 < len(pairs); i += 2 {
		l[pairs[i]] = pairs[i+1]
	}
	switch v := p.Collector(name).(type) {
	case *prometheus.CounterVec:
		return v.With(l)
	case *prometheus.GaugeVec:
		return v.With(l)
	default:
		return v
	}
}
