package tunnel_test

import (
	"crypto/tls"
	"strings"
	"testing"
)

// TestCurves: by default a Go client and the tunnel agree on the
// post-quantum hybrid; a service with curves set negotiates only those.
func TestCurves(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		curves []string
		want   tls.CurveID
	}{
		{nil, tls.X25519MLKEM768},
		{[]string{"x25519", "p256"}, tls.X25519},
		{[]string{"P256"}, tls.CurveP256},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.curves, ","), func(t *testing.T) {
			t.Parallel()
			svc := e.serverService("web", "127.0.0.1:0", echoBackend(t))
			svc.Curves = tt.curves
			h := startProxy(t, config(svc))
			c := dialTLS(t, h.addr(t, "127.0.0.1:0"), e.tlsClient(e.client))
			defer c.Close()
			roundTrip(t, c, "hello")
			if got := c.ConnectionState().CurveID; got != tt.want {
				t.Errorf("curves %v: negotiated %v, want %v", tt.curves, got, tt.want)
			}
		})
	}
	bad := e.serverService("web", "127.0.0.1:0", "127.0.0.1:1")
	bad.Curves = []string{"x448"}
	if err := config(bad).WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "x448") {
		t.Errorf("Validate(curves x448) = %v, want an error naming it", err)
	}
}
