package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testpeer"
)

// TestMTLS runs a real mutual-TLS round trip: a Go HTTPS server that trusts
// our bundle, serves our server certificate and checks our CRL, and curl and
// openssl s_client as clients with our client and device certificates.
func TestMTLS(t *testing.T) {
	t.Parallel()
	curl := testpeer.Require(t, "curl")
	openssl := testpeer.Require(t, "openssl")
	ca := newCA(t)
	ca.ok(t, "ca", "issue", "server", "gw", "--dns", "localhost", "--ip", "127.0.0.1")
	ca.ok(t, "ca", "issue", "client", "alice")
	ca.ok(t, "ca", "issue", "client", "bob")
	ca.ok(t, "ca", "issue", "device", "dev1")

	rc := &revocationChecker{}
	rc.load(t, ca.path("crl.pem"))
	addr := serveMTLS(t, ca, rc)
	url := "https://" + addr + "/"

	curlAs := func(name string) result {
		t.Helper()
		return run(t, curl, "-sS", "--max-time", "10", "--cacert", ca.path("ca.crt"),
			"--cert", ca.path("issued", name+".chain.crt"), "--key", ca.path("private", name+".key"), url)
	}
	wantCN := func(name string) {
		t.Helper()
		r := curlAs(name)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "CN="+name+" ") {
			t.Errorf("curl as %s: %s\nwant stdout CN=%s", name, r, name)
		}
	}
	wantCN("alice")
	wantCN("bob")

	// Without a client certificate the server refuses the connection.
	if r := run(t, curl, "-sS", "--max-time", "10", "--cacert", ca.path("ca.crt"), url); r.code == 0 {
		t.Errorf("curl without a client certificate: %s\nwant a failure", r)
	}

	t.Run("s_client-device", func(t *testing.T) {
		for _, version := range []string{"-tls1_2", "-tls1_3"} {
			r := execIn(t, "", nil, []byte("GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"), openssl,
				"s_client", version, "-quiet", "-connect", addr,
				"-CAfile", ca.path("ca.crt"), "-verify_return_error", "-verify_ip", "127.0.0.1",
				"-cert", ca.path("issued", "dev1.crt"), "-key", ca.path("private", "dev1.key"),
				"-cert_chain", ca.path("intermediate.crt"))
			want := "CN=dev1 OU=devices URI=spiffe://portcullis.internal/device/dev1"
			if r.code != 0 || !strings.Contains(r.stdout, want) {
				t.Errorf("openssl s_client %s with the device certificate: %s\nwant %q in stdout", version, r, want)
			}
		}
	})

	t.Run("revoked", func(t *testing.T) {
		alice := readCerts(t, ca.path("issued", "alice.crt"))[0]
		ca.ok(t, "ca", "revoke", "alice", "--reason", "keyCompromise")
		// Until the server reloads, it still holds the old CRL.
		wantCN("alice")
		rc.load(t, ca.path("crl.pem"))
		if r := curlAs("alice"); r.code == 0 {
			t.Errorf("curl as revoked alice: %s\nwant a failure", r)
		}
		if got := rc.rejectedSerials(); len(got) != 1 || got[0] != serialHex(alice) {
			t.Errorf("server rejected serials %v, want [%s] (alice)", got, serialHex(alice))
		}
		wantCN("bob")
	})
}

// serveMTLS starts the test's HTTPS server on 127.0.0.1:0 with our server
// certificate gw, and returns its address. The handler prints who the client
// is; the server stops when the test ends.
func serveMTLS(t *testing.T, ca *testCA, rc *revocationChecker) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(ca.path("issued", "gw.chain.crt"), ca.path("private", "gw.key"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(readFile(t, ca.path("ca-bundle.crt"))) {
		t.Fatal("ca-bundle.crt: no certificates")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c := r.TLS.PeerCertificates[0]
			var uris []string
			for _, u := range c.URIs {
				uris = append(uris, u.String())
			}
			fmt.Fprintf(w, "CN=%s OU=%s URI=%s\n", c.Subject.CommonName, strings.Join(c.Subject.OrganizationalUnit, ","), strings.Join(uris, ","))
		}),
		TLSConfig: &tls.Config{
			Certificates:          []tls.Certificate{cert},
			ClientAuth:            tls.RequireAndVerifyClientCert,
			ClientCAs:             pool,
			MinVersion:            tls.VersionTLS12,
			VerifyPeerCertificate: rc.verify,
		},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutting down the mTLS server: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("mTLS server: %v", err)
		}
	})
	return ln.Addr().String()
}

// revocationChecker is the server's CRL check: a relying party that reads
// crl.pem, verifies it against the issuer of the client certificate, and
// refuses listed serials.
type revocationChecker struct {
	mu       sync.Mutex
	crl      *x509.RevocationList
	rejected []string
}

// load (re)reads the CRL file, as a server does on SIGHUP.
func (rc *revocationChecker) load(t *testing.T, path string) {
	t.Helper()
	b, _ := pem.Decode(readFile(t, path))
	if b == nil || b.Type != "X509 CRL" {
		t.Fatalf("%s: no X509 CRL block", path)
	}
	crl, err := x509.ParseRevocationList(b.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.crl = crl
}

func (rc *revocationChecker) verify(_ [][]byte, chains [][]*x509.Certificate) error {
	if len(chains) == 0 || len(chains[0]) < 2 {
		return errors.New("no verified chain with an issuer")
	}
	leaf, issuer := chains[0][0], chains[0][1]
	rc.mu.Lock()
	defer rc.mu.Unlock()
	crl := rc.crl
	if crl == nil {
		return errors.New("no CRL loaded")
	}
	if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) {
		return fmt.Errorf("CRL of %s does not cover certificates of %s", crl.Issuer, issuer.Subject)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return fmt.Errorf("CRL signature: %w", err)
	}
	if now := time.Now(); now.Before(crl.ThisUpdate) || now.After(crl.NextUpdate) {
		return fmt.Errorf("CRL is not current (%s to %s)", crl.ThisUpdate, crl.NextUpdate)
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
			rc.rejected = append(rc.rejected, serialHex(leaf))
			return fmt.Errorf("certificate %s is revoked", serialHex(leaf))
		}
	}
	return nil
}

func (rc *revocationChecker) rejectedSerials() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.rejected...)
}
