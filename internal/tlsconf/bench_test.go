package tlsconf_test

import (
	"crypto/tls"
	"net"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/tlsconf"
)

// BenchmarkHandshakeMTLS measures full mutual-TLS handshakes (no
// resumption; the server still issues tickets, as in production) over
// net.Pipe, ECDSA P-256 on both sides. "stdlib" is crypto/tls verifying
// the client itself (RequireAndVerifyClientCert, fixed ClientCAs): the
// floor our reloadable VerifyConnection is measured against.
func BenchmarkHandshakeMTLS(b *testing.B) {
	w := newWorld(b)
	client := func(edit func(*tls.Config)) *tls.Config {
		c := tlsconf.ClientConfig(w.client, "localhost", nil)
		c.ClientSessionCache = nil
		if edit != nil {
			edit(c)
		}
		return c
	}
	stdlibServer := &tls.Config{
		Certificates: []tls.Certificate{*w.server.Certificate()},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    w.server.Roots(),
	}
	stdlibClient := &tls.Config{
		Certificates: []tls.Certificate{*w.client.Certificate()},
		RootCAs:      w.client.Roots(),
		ServerName:   "localhost",
	}
	cases := []struct {
		name           string
		server, client *tls.Config
	}{
		{"TLS13", tlsconf.ServerConfig(w.server, nil), client(nil)},
		{"TLS13-X25519", tlsconf.ServerConfig(w.server, nil), client(func(c *tls.Config) { c.CurvePreferences = []tls.CurveID{tls.X25519} })},
		{"TLS12", tlsconf.ServerConfig(w.server, nil), client(func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 })},
		{"TLS13-stdlib", stdlibServer, stdlibClient},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				handshake(b, tc.server, tc.client)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
		})
	}
	b.Run("TLS13-parallel", func(b *testing.B) {
		srv, cli := tlsconf.ServerConfig(w.server, nil), client(nil)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				handshake(b, srv, cli)
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
	})
}

// handshake runs one full handshake over an in-memory pipe. The client
// reads one byte so that the server's TLS 1.3 tickets, written after its
// handshake, are consumed.
func handshake(b *testing.B, server, client *tls.Config) {
	sc, cc := net.Pipe()
	defer sc.Close()
	defer cc.Close()
	srv, cli := tls.Server(sc, server), tls.Client(cc, client)
	errc := make(chan error, 1)
	go func() {
		err := srv.Handshake()
		if err == nil {
			_, err = srv.Write([]byte{1})
		}
		errc <- err
	}()
	err := cli.Handshake()
	if err == nil {
		var one [1]byte
		_, err = cli.Read(one[:])
	}
	if err != nil {
		b.Fatalf("client: %v", err)
	}
	if err := <-errc; err != nil {
		b.Fatalf("server: %v", err)
	}
}
