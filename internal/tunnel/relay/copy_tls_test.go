package relay

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"testing"
	"time"
)

// tlsPair returns both ends of a loopback TLS connection (server
// authentication only: the copy loop does not care).
func tlsPair(tb testing.TB) (*tls.Conn, *tls.Conn) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench"},
		DNSNames: []string{"bench"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	a, b := tcpPair(tb)
	cli := tls.Client(a, &tls.Config{RootCAs: pool, ServerName: "bench"})
	srv := tls.Server(b, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		tb.Fatal(err)
	}
	if err := <-errc; err != nil {
		tb.Fatal(err)
	}
	return cli, srv
}

// BenchmarkPipeTLS is BenchmarkPipe with a TLS source: writer →(TLS)→ pipe
// → reader, 1 MiB per op; "buffered" is the loop that holds its buffer
// throughout, for comparison.
func BenchmarkPipeTLS(b *testing.B) {
	for _, bc := range []struct {
		name string
		pipe func(dst, src net.Conn) (int64, error)
	}{{"idle-free", pipeConns}, {"buffered", New(Options{}).pipeBuffered}} {
		b.Run(bc.name, func(b *testing.B) {
			const size = 1 << 20
			writer, src := tlsPair(b)
			dst, reader := tcpPair(b)
			go bc.pipe(dst, src)
			next := make(chan struct{})
			go func() {
				chunk := make([]byte, 64<<10)
				for range next {
					for sent := 0; sent < size; sent += len(chunk) {
						if _, err := writer.Write(chunk); err != nil {
							return
						}
					}
				}
				writer.Close()
			}()
			buf := make([]byte, size)
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				next <- struct{}{}
				if _, err := io.ReadFull(reader, buf); err != nil {
					b.Fatal(err)
				}
			}
			close(next)
		})
	}
}
