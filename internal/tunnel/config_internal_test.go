package tunnel

import (
	"crypto/tls"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/portcullis-dev/portcullis/internal/revocation"
)

// TestCompile: what the proxy runs on is the file, parsed once.
func TestCompile(t *testing.T) {
	data, err := os.ReadFile("testdata/config/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := DecodeConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Services[0].Curves = []string{"x25519", "P256"}
	got, err := cfg.compile()
	if err != nil {
		t.Fatalf("compile(full.yaml) = %v", err)
	}
	tcp := func(s string) Addr { return Addr{Network: "tcp", Address: s} }
	id := cfg.Services[0].Identity
	want := compiled{status: tcp("127.0.0.1:9100"), shutdownTimeout: 2 * time.Minute, services: []compiledService{{
		Name: "api", Mode: ModeServer, Listen: tcp("0.0.0.0:8443"), SNI: []string{"api.example.com", "API2.example.com"},
		Targets: []Addr{tcp("127.0.0.1:8080"), tcp("127.0.0.1:8081")}, RoundRobin: true, Identity: id,
		Curves: []tls.CurveID{tls.X25519, tls.CurveP256},
		Revocation: &revocation.Config{CRLs: []string{"/etc/portcullis/ca.crl", "https://pki.example.com/ca.crl"}, OCSP: true,
			Mode: revocation.FailOpen, Refresh: 30 * time.Minute, MaxStale: time.Hour},
		ProxyProtocol: true, ConnectTimeout: 5 * time.Second, HandshakeTimeout: 3 * time.Second,
		CloseTimeout: 500 * time.Millisecond, MaxConnLifetime: 24 * time.Hour, MaxConns: 1000,
	}, {
		Name: "default", Mode: ModeServer, Listen: tcp("0.0.0.0:8443"), Targets: []Addr{{Network: "unix", Address: "/run/app.sock"}},
		Identity: cfg.Services[1].Identity, ConnectTimeout: 10 * time.Second, HandshakeTimeout: 10 * time.Second, CloseTimeout: time.Second,
	}, {
		Name: "db-out", Mode: ModeClient, Listen: Addr{Network: "unix", Address: "/run/portcullis/db.sock"},
		Targets: []Addr{tcp("db1.example.com:5433"), tcp("db2.example.com:5433")}, Identity: cfg.Services[2].Identity,
		ServerName: "db.example.com", ConnectTimeout: 10 * time.Second, HandshakeTimeout: 10 * time.Second, CloseTimeout: time.Second,
	}}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(compiled{}), cmpopts.IgnoreFields(compiledService{}, "Rules")); diff != "" {
		t.Errorf("compile(full.yaml) (-want +got):\n%s", diff)
	}
	for i, want := range []string{
		`cn=["web-frontend"] ou=["payments"] dns=["*.svc.example.com"] ip=["10.0.0.0/8"] uri=["spiffe://example.com/ns/prod/*"] email=["ops@example.com"] issuer=["Example Devices CA"]`,
		"", `uri=["spiffe://example.com/ns/prod/db"]`,
	} {
		// "" for allow_all: compiled, however it prints.
		if r := got.services[i].Rules; r == nil || want != "" && r.String() != want {
			t.Errorf("compile(full.yaml).services[%d].Rules = %v, want %q", i, r, want)
		}
	}
}
