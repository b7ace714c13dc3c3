package tlsconf_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/tlsconf"
)

// watch runs s.Watch until the test ends and returns its reload reports,
// once its watches are in place.
func watch(t *testing.T, s *tlsconf.Store, interval time.Duration) <-chan error {
	t.Helper()
	ready := make(chan struct{})
	tlsconf.SetWatchReady(s, func() { close(ready) })
	ctx, cancel := context.WithCancel(t.Context())
	reloads := make(chan error)
	done := make(chan error, 1)
	go func() {
		done <- s.Watch(ctx, interval, func(err error) {
			select {
			case reloads <- err:
			case <-ctx.Done():
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch() = %v after cancel, want nil", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Watch() = %v before it was ready", err)
	case <-time.After(ioTimeout):
		t.Fatal("Watch never became ready")
	}
	return reloads
}

// await waits, up to a deadline, for reloads until cond holds. It returns
// the error of the last reload seen.
func await(t *testing.T, reloads <-chan error, cond func(error) bool) {
	t.Helper()
	deadline := time.After(ioTimeout)
	for {
		select {
		case err := <-reloads:
			if cond(err) {
				return
			}
		case <-deadline:
			t.Fatal("no matching reload before the deadline")
		}
	}
}

// ecKey is the store's current private key, to issue a renewal for it.
func ecKey(s *tlsconf.Store) *ecdsa.PrivateKey { return s.Certificate().PrivateKey.(*ecdsa.PrivateKey) }

func hasSerial(s *tlsconf.Store, want *big.Int) func(error) bool {
	return func(error) bool { return s.Certificate().Leaf.SerialNumber.Cmp(want) == 0 }
}

func TestWatchRenameReplace(t *testing.T) {
	w := newWorld(t)
	reloads := watch(t, w.server, 0)
	next, _ := w.ca.issue(t, leaf{cn: "tunnel.server", server: true, key: ecKey(w.server)})
	replace(t, w.serverSrc.CertFile, certPEM(next))
	await(t, reloads, hasSerial(w.server, next.SerialNumber))
}

// TestWatchKubelet mimics kubelet's atomic writer for Secret volumes: the
// files are symlinks through "..data", itself a symlink swapped by rename
// to a new timestamped directory.
func TestWatchKubelet(t *testing.T) {
	ca := newCA(t, "Fleet CA")
	cert, key := ca.issue(t, leaf{cn: "v1", server: true})
	vol := t.TempDir()
	writeVersion := func(version string, c *x509.Certificate) {
		dir := filepath.Join(vol, version)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, "tls.crt", certPEM(c))
		writeFile(t, dir, "tls.key", keyPEM(t, key))
		writeFile(t, dir, "ca.crt", certPEM(ca.cert))
		if err := os.Symlink(version, filepath.Join(vol, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(vol, "..data_tmp"), filepath.Join(vol, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	writeVersion("..2026_01_01_00_00_00.1", cert)
	for _, name := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(vol, name)); err != nil {
			t.Fatal(err)
		}
	}
	s := mustLoad(t, tlsconf.Source{
		CertFile: filepath.Join(vol, "tls.crt"),
		KeyFile:  filepath.Join(vol, "tls.key"),
		CAFile:   filepath.Join(vol, "ca.crt"),
	}, nil)
	reloads := watch(t, s, 0)

	cert2, _ := ca.issue(t, leaf{cn: "v2", server: true, key: key})
	writeVersion("..2026_01_02_00_00_00.2", cert2)
	await(t, reloads, hasSerial(s, cert2.SerialNumber))
}

// TestWatchBadUpdate: a broken file is reported and the old certificate
// stays; the fixed file is then picked up.
func TestWatchBadUpdate(t *testing.T) {
	w := newWorld(t)
	before := w.server.Certificate()
	reloads := watch(t, w.server, 0)

	replace(t, w.serverSrc.CertFile, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	var got error
	await(t, reloads, func(err error) bool { got = err; return err != nil })
	if !strings.Contains(got.Error(), "certificate") || w.server.Certificate() != before {
		t.Fatalf("reload error = %v, certificate kept = %v; want an error and the old certificate", got, w.server.Certificate() == before)
	}

	next, _ := w.ca.issue(t, leaf{cn: "tunnel.server", server: true, key: ecKey(w.server)})
	replace(t, w.serverSrc.CertFile, certPEM(next))
	await(t, reloads, hasSerial(w.server, next.SerialNumber))
}

// TestWatchInterval: with an interval, reloads happen with no file event.
func TestWatchInterval(t *testing.T) {
	w := newWorld(t)
	reloads := watch(t, w.server, time.Millisecond)
	await(t, reloads, func(err error) bool {
		if err != nil {
			t.Fatalf("timed reload = %v", err)
		}
		return true
	})
}

func TestWatchMissingDirectory(t *testing.T) {
	ca := newCA(t, "CA")
	cert, key := ca.issue(t, leaf{cn: "x"})
	dir := filepath.Join(t.TempDir(), "certs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s := mustLoad(t, pairSource(t, dir, []*x509.Certificate{cert}, key, ca.cert), nil)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := s.Watch(t.Context(), 0, nil); err == nil || !strings.Contains(err.Error(), "watching "+dir) {
		t.Errorf("Watch() = %v, want an error naming %s", err, dir)
	}
}
