package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/apiclient"
)

// serverClients returns an anonymous and an admin API client of s.
func serverClients(t *testing.T, s *controlServer) (anon, admin *apiclient.Client) {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(s.data, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	adm, err := tls.LoadX509KeyPair(filepath.Join(s.data, "issued", "admin.chain.crt"), filepath.Join(s.data, "private", "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	if anon, err = apiclient.New(s.url(), roots, nil); err != nil {
		t.Fatal(err)
	}
	if admin, err = apiclient.New(s.url(), roots, &adm); err != nil {
		t.Fatal(err)
	}
	return anon, admin
}

func csrPEM(t testing.TB) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "d"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// TestServerCrash kills the server with SIGKILL in the middle of a burst
// of enrollments and approvals, restarts it on the same data, and checks
// that every answer the clients got still holds: a request acknowledged
// (202) exists, an approval acknowledged (200, issued) is issued with the
// same certificate, that certificate is on record; no serial repeats.
func TestServerCrash(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	// A burst from one address: lift the per-address rate limit.
	cfg := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(cfg, []byte("limits: {rate_per_second: 100000, burst: 100000}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, data, "--config", cfg)
	anon, admin := serverClients(t, srv)
	const total = 1000
	var (
		mu       sync.Mutex
		acked    = map[string]bool{}   // request IDs answered 202/200
		issued   = map[string]string{} // request ID → serial, answered by an approval
		sent     atomic.Int64
		ids      = make(chan string, total)
		wg       sync.WaitGroup
		killOnce sync.Once
	)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	csrs := make([][]byte, total)
	for i := range csrs {
		csrs[i] = csrPEM(t)
	}
	kill := func() {
		killOnce.Do(func() { srv.cmd.Process.Signal(syscall.SIGKILL) })
	}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += 8 {
				r, err := anon.Enroll(ctx, csrs[i], apiclient.Facts{Hostname: fmt.Sprintf("crash-%d", i)}, "")
				if err != nil {
					return // the server is gone
				}
				mu.Lock()
				acked[r.ID] = true
				mu.Unlock()
				ids <- r.ID
				if sent.Add(1) == total/2 {
					kill()
				}
			}
		}()
	}
	var approvers sync.WaitGroup
	for range 4 {
		approvers.Add(1)
		go func() {
			defer approvers.Done()
			for id := range ids {
				r, err := admin.Decide(ctx, id, true, "crash test")
				if err != nil {
					continue
				}
				if r.State == "issued" {
					mu.Lock()
					issued[id] = r.CertSerial
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(ids)
	approvers.Wait()
	kill()
	<-srv.exited
	if len(acked) < 10 || len(issued) < 5 {
		t.Fatalf("only %d requests and %d approvals acknowledged before the kill: the burst did not overlap it", len(acked), len(issued))
	}
	t.Logf("killed with %d requests and %d issued approvals acknowledged", len(acked), len(issued))

	srv2 := startServer(t, data, "--config", cfg)
	anon2, admin2 := serverClients(t, srv2)
	for id := range acked {
		r, err := anon2.Poll(ctx, id)
		if err != nil {
			t.Errorf("acknowledged request %s lost after the crash: %v", id, err)
			continue
		}
		if serial, ok := issued[id]; ok && (r.State != "issued" || r.CertSerial != serial) {
			t.Errorf("request %s was acknowledged issued with %s; after the crash it is %s with %q", id, serial, r.State, r.CertSerial)
		}
	}
	certs, err := admin2.Certs(ctx, apiclient.CertFilter{Profile: "device"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range certs {
		if seen[c.Serial] {
			t.Errorf("serial %s repeats", c.Serial)
		}
		seen[c.Serial] = true
	}
	for id, serial := range issued {
		if !seen[serial] {
			t.Errorf("certificate %s of acknowledged request %s lost", serial, id)
		}
	}
}
