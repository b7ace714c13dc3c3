package tunnel_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portcullis-dev/portcullis/internal/tunnel"
)

// get serves one request from h without a network.
func get(t testing.TB, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w
}

func TestStatusHandler(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.serverService("web", "127.0.0.1:0", echoBackend(t))
	svc.Revocation = &tunnel.Revocation{CRLs: []string{e.ca.crl(t, e.dir, "ca.crl")}}
	h := startProxy(t, config(svc))
	c := dialTLS(t, h.addr(t, "127.0.0.1:0"), e.tlsClient(e.client))
	roundTrip(t, c, "hello") // one connection open
	handler := h.p.StatusHandler()

	tests := []struct {
		path, contentType string
		code              int
		body              []string
	}{
		{"/healthz", "text/plain", http.StatusOK, []string{"ok"}},
		{"/readyz", "text/plain", http.StatusOK, []string{"ready"}},
		{"/metrics", "text/plain", http.StatusOK, []string{
			"portcullis_tunnel_connections_open{service=\"web\"} 1",
			"portcullis_tunnel_cert_not_after_timestamp_seconds{service=\"web\"}",
			"portcullis_tunnel_last_reload_successful 1",
			"portcullis_revocation_crl_entries{service=\"web\"",
		}},
		{"/status", "application/json", http.StatusOK, []string{`"ready": true`, `"connections_open": 1`}},
		{"/nope", "text/plain", http.StatusNotFound, nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			w := get(t, handler, tt.path)
			if w.Code != tt.code || !strings.HasPrefix(w.Header().Get("Content-Type"), tt.contentType) {
				t.Errorf("GET %s = %d %q, want %d %s", tt.path, w.Code, w.Header().Get("Content-Type"), tt.code, tt.contentType)
			}
			for _, want := range tt.body {
				if !strings.Contains(w.Body.String(), want) {
					t.Errorf("GET %s body lacks %q:\n%s", tt.path, want, w.Body)
				}
			}
		})
	}

	var st tunnel.Status
	if err := json.Unmarshal(get(t, handler, "/status").Body.Bytes(), &st); err != nil {
		t.Fatalf("/status is not a Status: %v", err)
	}
	if len(st.Services) != 1 {
		t.Fatalf("/status services = %+v, want one", st.Services)
	}
	s := st.Services[0]
	if s.Name != "web" || s.Mode != "server" || s.Subject != e.server.cert.Subject.String() ||
		!s.NotAfter.Equal(e.server.cert.NotAfter) || s.Open != 1 || len(s.Targets) != 1 || !s.Targets[0].Healthy ||
		s.Policy == "" || s.Revocation == nil || len(s.Problems) != 0 || st.LastReload.IsZero() {
		t.Errorf("/status = %+v", st)
	}
}

// TestReadyz: not ready while every target of a service is in backoff, or
// a service's certificate is about to expire.
func TestReadyz(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	expiring := e.ca.issue(t, e.dir, "expiring", leafSpec{cn: "server", server: true, notAfter: time.Now().Add(30 * time.Minute)})
	up := echoBackend(t)
	tests := []struct {
		name    string
		targets []string
		ident   *ident
		connect bool   // make one connection first
		problem string // "" for ready
	}{
		{"ready", []string{up}, e.server, true, ""},
		{"one of two targets down", []string{refusedAddr(t), up}, e.server, true, ""},
		{"every target down", []string{refusedAddr(t), refusedAddr(t)}, e.server, true, "web: no target reachable"},
		// /readyz probes plaintext targets itself: no client has to fail first.
		{"target down, no client yet", []string{refusedAddr(t)}, e.server, false, "web: no target reachable"},
		{"certificate near expiry", []string{up}, expiring, false, "web: certificate expires"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc := e.serverService("web", "127.0.0.1:0", tt.targets...)
			svc.Identity.Cert, svc.Identity.Key = tt.ident.certFile, tt.ident.keyFile
			h := startProxy(t, config(svc))
			if tt.connect {
				c := dialTLS(t, h.addr(t, "127.0.0.1:0"), e.tlsClient(e.client))
				c.Write([]byte("x"))
				c.Read(make([]byte, 1))
				c.Close()
				h.logs.conn(t)
			}
			// The backoff after a refusal lasts a second at least; what
			// follows takes far less.
			w := get(t, h.p.StatusHandler(), "/readyz")
			ready := h.p.Status().Ready
			switch {
			case tt.problem == "" && (w.Code != http.StatusOK || !ready):
				t.Errorf("GET /readyz = %d %q, Status().Ready = %v; want 200", w.Code, w.Body, ready)
			case tt.problem != "" && (w.Code != http.StatusServiceUnavailable || ready || !strings.Contains(w.Body.String(), tt.problem)):
				t.Errorf("GET /readyz = %d %q, Status().Ready = %v; want 503 with %q", w.Code, w.Body, ready, tt.problem)
			}
		})
	}
}

// TestRemovedServiceMetrics: a reload that removes a service drops its
// certificate-expiry series instead of reporting a certificate nobody uses.
func TestRemovedServiceMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.serverService("a", "127.0.0.1:0", echoBackend(t))
	b := e.serverService("b", "unix:"+filepath.Join(shortDir(t), "b.sock"), echoBackend(t))
	h := startProxy(t, config(a, b))
	const name = "portcullis_tunnel_cert_not_after_timestamp_seconds"
	if n := testutil.CollectAndCount(h.p.Collector(name)); n != 2 {
		t.Fatalf("%d series of %s before the reload, want 2 (a and b)", n, name)
	}
	if err := h.p.Reload(config(a)); err != nil {
		t.Fatalf("Reload(without b) = %v", err)
	}
	if n := testutil.CollectAndCount(h.p.Collector(name)); n != 1 {
		t.Errorf("%d series of %s after b was removed, want 1", n, name)
	}
	if h.metric(t, name, "service", "a") == 0 {
		t.Errorf("%s{service=a} = 0, want it kept", name)
	}
}
