package server_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/enroll"
	"github.com/portcullis-dev/portcullis/internal/server"
)

// TestServeSlowClientAndShutdown runs Serve on real listeners: a client
// that sends half a request header is cut at ReadHeaderTimeout, others
// are served meanwhile, and cancelling the context stops both listeners.
func TestServeSlowClientAndShutdown(t *testing.T) {
	e := newEnv(t, enroll.Config{})
	srv, err := server.New(server.Config{Certificate: e.api.TLS.Certificates[0], Roots: e.roots, ReadHeaderTimeout: 300 * time.Millisecond},
		server.Deps{RA: e.ra})
	if err != nil {
		t.Fatal(err)
	}
	apiLn, _ := net.Listen("tcp", "127.0.0.1:0")
	pubLn, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, apiLn, pubLn, time.Second) }()

	slow, err := tls.Dial("tcp", apiLn.Addr().String(), &tls.Config{RootCAs: e.roots})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := slow.Write([]byte("POST /api/v1/enroll HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// Meanwhile the public listener answers.
	if r, err := http.Get("http://" + pubLn.Addr().String() + "/healthz"); err != nil || r.StatusCode != 200 {
		t.Fatalf("healthz during a slow client: %v", err)
	}
	slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(slow)
	if waited := time.Since(start); waited > 3*time.Second {
		t.Errorf("slow client held its connection %v (err %v); want it cut after ~300ms", waited, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve() = %v after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := net.DialTimeout("tcp", pubLn.Addr().String(), time.Second); err == nil {
		t.Error("public listener still accepts after shutdown")
	}
}
