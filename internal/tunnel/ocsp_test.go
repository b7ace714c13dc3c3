package tunnel_test

import (
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/portcullis-dev/portcullis/internal/policy"
	"github.com/portcullis-dev/portcullis/internal/tunnel"
)

// TestOCSP wires --ocsp through a service: the tunnel asks the responder
// named in the client certificate, admits a good one, refuses a revoked
// one, and answers the second handshake of the same certificate from its
// cache.
func TestOCSP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/ocsp"
	good := e.ca.issue(t, e.dir, "good", leafSpec{cn: "good", ocsp: url})
	bad := e.ca.issue(t, e.dir, "bad", leafSpec{cn: "bad", ocsp: url})
	var requests atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		req, err := ocsp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		now := time.Now()
		tmpl := ocsp.Response{Status: ocsp.Good, SerialNumber: req.SerialNumber, ThisUpdate: now.Add(-time.Minute),
			NextUpdate: now.Add(time.Hour), IssuerHash: req.HashAlgorithm}
		if req.SerialNumber.Cmp(bad.cert.SerialNumber) == 0 {
			tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, now.Add(-time.Minute), ocsp.KeyCompromise
		}
		out, err := ocsp.CreateResponse(e.ca.cert, e.ca.cert, tmpl, e.ca.key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(out)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	svc := e.serverService("web", "127.0.0.1:0", echoBackend(t))
	svc.Allow = policy.Rules{AllowAll: true}
	svc.Revocation = &tunnel.Revocation{OCSP: true}
	h := startProxy(t, config(svc))
	addr := h.addr(t, "127.0.0.1:0")
	for i := range 2 {
		c := dialTLS(t, addr, e.tlsClient(good))
		roundTrip(t, c, "hello")
		c.Close()
		if l := h.logs.conn(t); l.str("outcome") != "ok" {
			t.Fatalf("good client, try %d: outcome %q (%v)", i, l.str("outcome"), l.attrs)
		}
	}
	refused(t, addr, e.tlsClient(bad))
	if l := h.logs.conn(t); l.str("outcome") != "denied" {
		t.Errorf("revoked client: outcome %q, want denied (%v)", l.str("outcome"), l.attrs)
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("responder got %d requests, want 2 (the good certificate's second check from the cache)", n)
	}
}
