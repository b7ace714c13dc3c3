package tunnel_test

import (
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gopkg.in/yaml.v3"

	"github.com/portcullis-dev/portcullis/internal/tunnel"
)

// configSeeds are the fuzz seeds: every config in testdata.
func configSeeds(t testing.TB) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "config", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no seed configs: %v", err)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return append(out, []byte("version: 1\nservices:\n  - {mode: server, listen: ':1', targets: ['[::1]:2'], identity: {cert: a, key: b, cacert: c}, allow: {allow_all: true}, connect_timeout: 1.5}\n"))
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range configSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := tunnel.ParseConfig(data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("ParseConfig(%q) succeeded, but Validate() = %v", data, err)
		}
		if diff := cmp.Diff(cfg, cfg.WithDefaults()); diff != "" {
			t.Fatalf("ParseConfig(%q) did not apply every default (-got +defaulted):\n%s", data, diff)
		}
		if cfg.ShutdownTimeout <= 0 {
			t.Fatalf("ParseConfig(%q): shutdown_timeout %v", data, time.Duration(cfg.ShutdownTimeout))
		}
		for _, s := range cfg.Services {
			for _, d := range []tunnel.Duration{s.ConnectTimeout, s.HandshakeTimeout, s.CloseTimeout} {
				if d <= 0 {
					t.Fatalf("ParseConfig(%q): service %q has a timeout %v", data, s.Name, time.Duration(d))
				}
			}
			if s.MaxConnLifetime < 0 {
				t.Fatalf("ParseConfig(%q): service %q has max_conn_lifetime %v", data, s.Name, time.Duration(s.MaxConnLifetime))
			}
		}
		// What it decoded encodes back to a config that decodes the same.
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("Marshal(ParseConfig(%q)) = %v", data, err)
		}
		again, err := tunnel.ParseConfig(out)
		if err != nil {
			t.Fatalf("ParseConfig(Marshal(ParseConfig(%q))) = %v\n%s", data, err, out)
		}
		if diff := cmp.Diff(cfg, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("config changed through Marshal (-first +again):\n%s", diff)
		}
	})
}

// proxyHeaderSeeds are the hex-encoded headers in testdata/proxyheader.
func proxyHeaderSeeds(t testing.TB) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "proxyheader", "*.hex"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no seed headers: %v", err)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, raw)
	}
	return out
}

// TestProxyHeaderSeeds pins what the hand-made seed decodes to.
func TestProxyHeaderSeeds(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("testdata", "proxyheader", "haproxy-foreign-tlvs.hex"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	got, n, err := tunnel.ParseProxyHeader(raw)
	if err != nil || n != len(raw) {
		t.Fatalf("ParseProxyHeader = %d, %v; want %d bytes", n, err, len(raw))
	}
	want := &tunnel.ProxyHeader{Src: netip.MustParseAddrPort("127.0.0.1:8080"), Dst: netip.MustParseAddrPort("127.0.0.2:443"),
		TLSVersion: "TLSv1.3", CN: "bob"}
	if diff := cmp.Diff(want, got, addrPortsEqual); diff != "" {
		t.Errorf("haproxy-foreign-tlvs (-want +got):\n%s", diff)
	}
}

// addrPortsEqual compares addresses by value, an IPv4-mapped IPv6 address
// equal to its IPv4 address: AppendProxyHeader sends a pair of them as
// IPv4 on purpose (dual-stack listeners see IPv4 peers as mapped).
var addrPortsEqual = cmp.Comparer(func(a, b netip.AddrPort) bool {
	return a.Addr().Unmap() == b.Addr().Unmap() && a.Port() == b.Port()
})

func FuzzProxyHeader(f *testing.F) {
	for _, s := range proxyHeaderSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, n, err := tunnel.ParseProxyHeader(data)
		if err != nil {
			return
		}
		if n < 16 || n > len(data) {
			t.Fatalf("ParseProxyHeader(%x) took %d bytes", data, n)
		}
		b, err := tunnel.AppendProxyHeader(nil, h)
		if err != nil {
			t.Fatalf("AppendProxyHeader(ParseProxyHeader(%x) = %+v) = %v", data, h, err)
		}
		again, m, err := tunnel.ParseProxyHeader(b)
		if err != nil || m != len(b) {
			t.Fatalf("ParseProxyHeader(AppendProxyHeader(%+v)) = %d, %v; want %d bytes", h, m, err, len(b))
		}
		if diff := cmp.Diff(h, again, addrPortsEqual, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("header of %x changed through AppendProxyHeader (-first +again):\n%s", data, diff)
		}
	})
}
