package tunnel_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-dev/portcullis/internal/tunnel"
)

func TestProxyHeaderRoundTrip(t *testing.T) {
	t.Parallel()
	v4a, v4b := netip.MustParseAddrPort("192.0.2.1:50000"), netip.MustParseAddrPort("198.51.100.7:443")
	v6a, v6b := netip.MustParseAddrPort("[2001:db8::1]:50000"), netip.MustParseAddrPort("[2001:db8::2]:443")
	mapped := netip.MustParseAddrPort("[::ffff:192.0.2.1]:50000")
	full := tunnel.ProxyHeader{
		TLSVersion: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", SNI: "api.example.com", ALPN: "h2",
		CN: "device-7", URIs: []string{"spiffe://corp/device/7", "urn:x"}, Serial: "1f2e", Resumed: true,
	}
	with := func(src, dst netip.AddrPort, h tunnel.ProxyHeader) tunnel.ProxyHeader {
		h.Src, h.Dst = src, dst
		return h
	}
	tests := []struct {
		name   string
		in     tunnel.ProxyHeader
		want   tunnel.ProxyHeader // after decoding
		family byte
	}{
		{"ipv4", with(v4a, v4b, tunnel.ProxyHeader{}), with(v4a, v4b, tunnel.ProxyHeader{}), 0x11},
		{"ipv6", with(v6a, v6b, tunnel.ProxyHeader{}), with(v6a, v6b, tunnel.ProxyHeader{}), 0x21},
		{"mixed families become ipv6", with(v4a, v6b, tunnel.ProxyHeader{}), with(mapped, v6b, tunnel.ProxyHeader{}), 0x21},
		{"ipv4-mapped pair becomes ipv4", with(mapped, netip.MustParseAddrPort("[::ffff:198.51.100.7]:443"), tunnel.ProxyHeader{}), with(v4a, v4b, tunnel.ProxyHeader{}), 0x11},
		{"all tlvs", with(v4a, v4b, full), with(v4a, v4b, full), 0x11},
		{"all tlvs ipv6", with(v6a, v6b, full), with(v6a, v6b, full), 0x21},
		{"tls without certificate", with(v4a, v4b, tunnel.ProxyHeader{TLSVersion: "TLS 1.2", Cipher: "X"}),
			with(v4a, v4b, tunnel.ProxyHeader{TLSVersion: "TLS 1.2", Cipher: "X"}), 0x11},
		{"cn without tls version", with(v4a, v4b, tunnel.ProxyHeader{CN: "x", Resumed: true}),
			with(v4a, v4b, tunnel.ProxyHeader{CN: "x", Resumed: true}), 0x11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			prefix := []byte("prefix")
			b, err := tunnel.AppendProxyHeader(bytes.Clone(prefix), &tt.in)
			if err != nil {
				t.Fatalf("AppendProxyHeader(%+v) = %v", tt.in, err)
			}
			if !bytes.HasPrefix(b, prefix) {
				t.Fatalf("AppendProxyHeader did not append")
			}
			b = b[len(prefix):]
			if b[13] != tt.family {
				t.Errorf("family byte = %#x, want %#x", b[13], tt.family)
			}
			if n := int(binary.BigEndian.Uint16(b[14:16])); n != len(b)-16 {
				t.Errorf("length field = %d, want %d", n, len(b)-16)
			}
			payload := append(bytes.Clone(b), "client bytes"...)
			got, n, err := tunnel.ParseProxyHeader(payload)
			if err != nil {
				t.Fatalf("ParseProxyHeader(AppendProxyHeader(%+v)) = %v", tt.in, err)
			}
			if n != len(b) {
				t.Errorf("ParseProxyHeader took %d bytes, want %d", n, len(b))
			}
			if diff := cmp.Diff(tt.want, *got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAppendProxyHeaderErrors(t *testing.T) {
	t.Parallel()
	ok := netip.MustParseAddrPort("192.0.2.1:1")
	tests := []struct {
		name string
		h    tunnel.ProxyHeader
		want string
	}{
		{"no source", tunnel.ProxyHeader{Dst: ok}, "required"},
		{"no destination", tunnel.ProxyHeader{Src: ok}, "required"},
		{"tlv too long", tunnel.ProxyHeader{Src: ok, Dst: ok, SNI: strings.Repeat("a", 70000)}, "longer than 65535"},
		{"header too long", tunnel.ProxyHeader{Src: ok, Dst: ok, URIs: []string{strings.Repeat("a", 40000), strings.Repeat("b", 40000)}}, "longer than 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tunnel.AppendProxyHeader(nil, &tt.h); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("AppendProxyHeader() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestParseProxyHeaderErrors(t *testing.T) {
	t.Parallel()
	good, err := tunnel.AppendProxyHeader(nil, &tunnel.ProxyHeader{
		Src: netip.MustParseAddrPort("192.0.2.1:1"), Dst: netip.MustParseAddrPort("192.0.2.2:2"), SNI: "a"})
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "short"},
		{"v1 text", []byte("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n"), "bad signature"},
		{"local command", edit(func(b []byte) []byte { b[12] = 0x20; return b }), "version/command"},
		{"udp", edit(func(b []byte) []byte { b[13] = 0x12; return b }), "family"},
		{"truncated", good[:len(good)-1], "past the data"},
		{"short addresses", edit(func(b []byte) []byte { b[13] = 0x21; return b }), "short IPv6"},
		{"tlv past the end", edit(func(b []byte) []byte { b[len(b)-2] = 9; return b }), "past the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := tunnel.ParseProxyHeader(tt.data); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseProxyHeader(%x) = %v, want an error containing %q", tt.data, err, tt.want)
			}
		})
	}
}

// readProxyHeader reads one v2 header off c, and nothing more.
func readProxyHeader(c net.Conn) (*tunnel.ProxyHeader, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, err
	}
	b = append(b, make([]byte, binary.BigEndian.Uint16(b[14:16]))...)
	if _, err := io.ReadFull(c, b[16:]); err != nil {
		return nil, err
	}
	h, n, err := tunnel.ParseProxyHeader(b)
	if err == nil && n != len(b) {
		err = fmt.Errorf("ParseProxyHeader took %d of %d bytes", n, len(b))
	}
	return h, err
}

func TestServerModeProxyProtocol(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	type header struct {
		h   *tunnel.ProxyHeader
		err error
	}
	headers := make(chan header, 2)
	backend := startBackend(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		h, err := readProxyHeader(c)
		headers <- header{h, err}
		if err == nil {
			echo(c)
		}
	}).Addr().String()
	svc := e.serverService("web", "127.0.0.1:0", backend)
	svc.ProxyProtocol = true
	h := startProxy(t, config(svc))
	addr := h.addr(t, "127.0.0.1:0")
	// The proxy may see IPv4 peers as IPv4-mapped IPv6; the header says
	// IPv4 either way.
	unmapped := cmp.Comparer(func(a, b netip.AddrPort) bool {
		return a.Addr().Unmap() == b.Addr().Unmap() && a.Port() == b.Port()
	})
	conf := e.tlsClient(e.client)
	for i, resumed := range []bool{false, true} {
		c := dialTLS(t, addr, conf)
		roundTrip(t, c, "after the header")
		c.Close()
		got := <-headers
		if got.err != nil {
			t.Fatalf("connection %d: backend reading the PROXY header: %v", i, got.err)
		}
		want := &tunnel.ProxyHeader{
			Src: c.LocalAddr().(*net.TCPAddr).AddrPort(), Dst: c.RemoteAddr().(*net.TCPAddr).AddrPort(),
			TLSVersion: "TLS 1.3", Cipher: got.h.Cipher, SNI: "localhost",
			CN: "client", URIs: []string{"spiffe://test/client"}, Serial: e.client.cert.SerialNumber.Text(16), Resumed: resumed,
		}
		if diff := cmp.Diff(want, got.h, unmapped); diff != "" {
			t.Errorf("connection %d: header (-want +got):\n%s", i, diff)
		}
		if !strings.HasPrefix(got.h.Cipher, "TLS_") {
			t.Errorf("cipher = %q, want a TLS 1.3 suite name", got.h.Cipher)
		}
		h.logs.conn(t)
	}
}

// TestProxyHeaderClientBits pins the PP2_CLIENT_* bits against the spec:
// a certificate sent on this connection sets CERT_CONN and CERT_SESS; a
// resumed session sent none on this connection, so CERT_SESS alone.
func TestProxyHeaderClientBits(t *testing.T) {
	t.Parallel()
	const ssl, conn, sess = 0x01, 0x02, 0x04
	addr := netip.MustParseAddrPort("192.0.2.1:1")
	tests := []struct {
		name string
		h    tunnel.ProxyHeader
		want byte
	}{
		{"no certificate", tunnel.ProxyHeader{TLSVersion: "TLS 1.3"}, ssl},
		{"certificate", tunnel.ProxyHeader{TLSVersion: "TLS 1.3", CN: "a"}, ssl | conn | sess},
		{"uri only", tunnel.ProxyHeader{TLSVersion: "TLS 1.3", URIs: []string{"spiffe://a/b"}}, ssl | conn | sess},
		{"resumed", tunnel.ProxyHeader{TLSVersion: "TLS 1.3", CN: "a", Resumed: true}, ssl | sess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.h.Src, tt.h.Dst = addr, addr
			b, err := tunnel.AppendProxyHeader(nil, &tt.h)
			if err != nil {
				t.Fatal(err)
			}
			i := bytes.IndexByte(b[16+12:], 0x20) // the SSL TLV follows the addresses
			if i < 0 {
				t.Fatalf("no SSL TLV in %x", b)
			}
			if got := b[16+12+i+3]; got != tt.want {
				t.Errorf("client bits = %#x, want %#x", got, tt.want)
			}
		})
	}
}
