package tunnel_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gopkg.in/yaml.v3"

	"github.com/portcullis-dev/portcullis/internal/policy"
	"github.com/portcullis-dev/portcullis/internal/tunnel"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseConfigFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file    string
		wantErr string // "" for success
	}{
		{"full.yaml", ""},
		{"minimal.yaml", ""},
		{"client.yaml", ""},
		{"unknown-key.yaml", `line 9: unknown key "allow_cn" in service "web" (did you mean "allow.cn"?)`},
		{"two-documents.yaml", "more than one YAML document"},
		{"no-version.yaml", "version: missing"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			cfg, err := tunnel.ParseConfig(readTestdata(t, filepath.Join("config", tt.file)))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseConfig(%s) = %v", tt.file, err)
				}
				if err := cfg.Validate(); err != nil {
					t.Errorf("Validate() of ParseConfig(%s) = %v", tt.file, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseConfig(%s) = %v, want an error containing %q", tt.file, err, tt.wantErr)
			}
		})
	}
}

func TestParseConfigFull(t *testing.T) {
	t.Parallel()
	got, err := tunnel.ParseConfig(readTestdata(t, "config/full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	d := func(s string) tunnel.Duration {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return tunnel.Duration(v)
	}
	want := tunnel.Config{
		Version: 1, Status: "127.0.0.1:9100", ShutdownTimeout: d("2m"),
		Services: []tunnel.Service{{
			Name: "api", Mode: "server", Listen: "0.0.0.0:8443", SNI: []string{"api.example.com", "API2.example.com"},
			Targets: []string{"127.0.0.1:8080", "127.0.0.1:8081"}, Failover: "round-robin",
			Identity: tunnel.Identity{Cert: "/etc/portcullis/api.crt", Key: "/etc/portcullis/api.key",
				StorepassFile: "/etc/portcullis/api.pass", CACert: "/etc/portcullis/ca.pem"},
			Allow: policy.Rules{CN: []string{"web-frontend"}, OU: []string{"payments"}, DNS: []string{"*.svc.example.com"},
				IP: []string{"10.0.0.0/8"}, URI: []string{"spiffe://example.com/ns/prod/*"}, Email: []string{"ops@example.com"},
				Issuer: []string{"Example Devices CA"}},
			Revocation: &tunnel.Revocation{CRLs: []string{"/etc/portcullis/ca.crl", "https://pki.example.com/ca.crl"},
				OCSP: true, Mode: "fail-open", Refresh: d("30m"), MaxStale: d("1h")},
			ProxyProtocol: true, ConnectTimeout: d("5s"), HandshakeTimeout: d("3s"), CloseTimeout: d("500ms"),
			MaxConnLifetime: d("24h"), MaxConns: 1000,
		}, {
			Name: "default", Mode: "server", Listen: "0.0.0.0:8443", Targets: []string{"unix:/run/app.sock"}, Failover: "priority",
			Identity: tunnel.Identity{Keystore: "/etc/portcullis/default.p12", StorepassFile: "/etc/portcullis/default.pass",
				CACert: "/etc/portcullis/ca.pem"},
			Allow:          policy.Rules{AllowAll: true},
			ConnectTimeout: d("10s"), HandshakeTimeout: d("10s"), CloseTimeout: d("1s"),
		}, {
			Name: "db-out", Mode: "client", Listen: "unix:/run/portcullis/db.sock",
			Targets: []string{"db1.example.com:5433", "db2.example.com:5433"}, Failover: "priority", ServerName: "db.example.com",
			Identity:       tunnel.Identity{Cert: "/etc/portcullis/app.crt", Key: "/etc/portcullis/app.key", CACert: "/etc/portcullis/ca.pem"},
			Verify:         policy.Rules{URI: []string{"spiffe://example.com/ns/prod/db"}},
			ConnectTimeout: d("10s"), HandshakeTimeout: d("10s"), CloseTimeout: d("1s"),
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseConfig(full.yaml) (-want +got):\n%s", diff)
	}
}

// TestParseConfigDefaults compares the defaulted minimal config with a
// golden file (go test -run TestParseConfigDefaults -update rewrites it).
func TestParseConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := tunnel.ParseConfig(readTestdata(t, "config/minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "config", "minimal.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := readTestdata(t, "config/minimal.golden.yaml")
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("defaulted minimal.yaml (-golden +got):\n%s", diff)
	}
	// What the golden file prints reads back as the same config.
	again, err := tunnel.ParseConfig(got)
	if err != nil {
		t.Fatalf("ParseConfig(golden) = %v", err)
	}
	if diff := cmp.Diff(cfg, again, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("golden re-parsed (-first +again):\n%s", diff)
	}
}

func TestParseConfigErrors(t *testing.T) {
	t.Parallel()
	const svc = `
services:
  - name: web
    mode: server
    listen: :8443
    targets: [127.0.0.1:8080]
    identity: {cert: s.crt, key: s.key, cacert: ca.pem}
    allow: {cn: [client]}
`
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", "empty config"},
		{"comment only", "# nothing\n", "empty config"},
		{"missing version", svc, "version: missing"},
		{"version 0", "version: 0" + svc, "version: missing"},
		{"version 2", "version: 2" + svc, "version: 2, want 1"},
		{"version not a number", "version: one" + svc, `line 1: version: want an integer, got "one"`},
		{"not a mapping", "[1, 2]", "line 1: want a mapping, got a list"},
		{"unknown top-level key", "version: 1\nlisten: :80" + svc, `line 2: unknown key "listen"`},
		{"unknown service key", "version: 1" + svc + "    target: [x]\n", `line 9: unknown key "target" in service "web" (did you mean "targets"?)`},
		{"unknown identity key", "version: 1" + strings.Replace(svc, "cacert:", "ca:", 1), `line 7: unknown key "identity.ca" in service "web" (did you mean "identity.cacert"?)`},
		{"mis-indented line", "version: 1" + strings.Replace(svc, "    targets", "   targets", 1), `line 6: did not find expected '-' indicator (check this line's indentation)`},
		{"second document", "version: 1" + svc + "---\nversion: 1\n", "more than one YAML document"},
		{"second document not YAML", "version: 1" + svc + "---\n: : :\n", "more than one YAML document"},
		{"no services", "version: 1\n", "services: none"},
		{"syntax", "version: 1\nservices:\n\t- x", "found character"},
		{"bad duration", "version: 1\nshutdown_timeout: soon" + svc, `line 2: shutdown_timeout: duration "soon": want like 10s or 1m`},
		{"negative duration", "version: 1\nshutdown_timeout: -1s" + svc, "negative"},
		{"negative seconds", "version: 1\nshutdown_timeout: -1" + svc, `duration "-1"`},
		{"NaN seconds", "version: 1\nshutdown_timeout: NaN" + svc, `duration "NaN"`},
		{"infinite seconds", "version: 1\nshutdown_timeout: inf" + svc, `duration "inf"`},
		{"overflowing seconds", "version: 1\nshutdown_timeout: 1e300" + svc, `duration "1e300"`},
		{"validation", "version: 1" + strings.Replace(svc, "mode: server", "mode: relay", 1), `mode "relay"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := tunnel.ParseConfig([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseConfig(%q) = %+v, %v; want an error containing %q", tt.in, cfg, err, tt.want)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"10s", 10 * time.Second, false},
		{"1m30s", 90 * time.Second, false},
		{"250ms", 250 * time.Millisecond, false},
		{"5", 5 * time.Second, false},
		{"0.5", 500 * time.Millisecond, false},
		{"0", 0, false},
		{"9000000000", 9e9 * time.Second, false},
		{"-1s", 0, true},
		{"-1", 0, true},
		{"-0.5", 0, true},
		{"NaN", 0, true},
		{"+Inf", 0, true},
		{"1e300", 0, true},
		{"10e9", 0, true}, // more seconds than a time.Duration holds
		{"soon", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var v struct {
				D tunnel.Duration `yaml:"d"`
			}
			err := yaml.Unmarshal([]byte("d: "+strings.TrimSpace(quoteEmpty(tt.in))), &v)
			if tt.err {
				if err == nil {
					t.Errorf("Duration(%q) = %v, want an error", tt.in, time.Duration(v.D))
				}
				return
			}
			if err != nil || time.Duration(v.D) != tt.want {
				t.Errorf("Duration(%q) = %v, %v; want %v", tt.in, time.Duration(v.D), err, tt.want)
			}
			out, err := yaml.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var back struct {
				D tunnel.Duration `yaml:"d"`
			}
			if err := yaml.Unmarshal(out, &back); err != nil || back.D != v.D {
				t.Errorf("Duration(%q) marshals to %q, which reads back as %v, %v", tt.in, out, time.Duration(back.D), err)
			}
		})
	}
}

func quoteEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

// validConfig has a server-mode and a client-mode service and no problem.
func validConfig() tunnel.Config {
	return tunnel.Config{
		Version: tunnel.ConfigVersion,
		Status:  "127.0.0.1:9100",
		Services: []tunnel.Service{{
			Name: "web", Mode: tunnel.ModeServer, Listen: "0.0.0.0:8443", Targets: []string{"127.0.0.1:8080"},
			Identity: tunnel.Identity{Cert: "s.crt", Key: "s.key", CACert: "ca.pem"},
			Allow:    policy.Rules{CN: []string{"client"}},
		}, {
			Name: "out", Mode: tunnel.ModeClient, Listen: "127.0.0.1:5432", Targets: []string{"db.example.com:5433"},
			Identity: tunnel.Identity{Cert: "c.crt", Key: "c.key", CACert: "ca.pem"}, ServerName: "db.example.com",
		}},
	}.WithDefaults()
}

func TestValidate(t *testing.T) {
	t.Parallel()
	web, out := 0, 1
	tests := []struct {
		name   string
		mutate func(c *tunnel.Config)
		want   string // "" for valid
	}{
		{"valid", func(*tunnel.Config) {}, ""},
		{"bad mode", func(c *tunnel.Config) { c.Services[web].Mode = "relay" }, `mode "relay": want server or client`},
		{"wrong version", func(c *tunnel.Config) { c.Version = 3 }, "version: 3, want 1"},
		{"no services", func(c *tunnel.Config) { c.Services = nil }, "services: none"},
		{"bad status address", func(c *tunnel.Config) { c.Status = "9100" }, "status:"},
		{"name used twice", func(c *tunnel.Config) { c.Services[out].Name = "web" }, `"web": name used twice`},
		{"bad listen", func(c *tunnel.Config) { c.Services[web].Listen = "8443" }, "listen:"},
		{"empty unix path", func(c *tunnel.Config) { c.Services[web].Listen = "unix:" }, "empty socket path"},
		{"no targets", func(c *tunnel.Config) { c.Services[web].Targets = nil }, "targets is required"},
		{"bad target", func(c *tunnel.Config) { c.Services[web].Targets = []string{"127.0.0.1:"} }, "missing port"},
		{"non-loopback target", func(c *tunnel.Config) { c.Services[web].Targets = []string{"10.0.0.1:8080"} }, "target 10.0.0.1:8080 is not loopback"},
		{"non-loopback target allowed", func(c *tunnel.Config) {
			c.Services[web].Targets, c.Services[web].UnsafeTarget = []string{"10.0.0.1:8080"}, true
		}, ""},
		{"loopback targets", func(c *tunnel.Config) {
			c.Services[web].Targets = []string{"localhost:1", "[::1]:2", "127.1.2.3:3", "unix:/run/x.sock"}
		}, ""},
		{"client listen on all interfaces", func(c *tunnel.Config) { c.Services[out].Listen = ":5432" }, "listen :5432 is not loopback"},
		{"client listen non-loopback", func(c *tunnel.Config) { c.Services[out].Listen = "192.0.2.1:5432" }, "listen 192.0.2.1:5432 is not loopback"},
		{"client listen non-loopback allowed", func(c *tunnel.Config) {
			c.Services[out].Listen, c.Services[out].UnsafeListen = "0.0.0.0:5432", true
		}, ""},
		{"client listen unix", func(c *tunnel.Config) { c.Services[out].Listen = "unix:/run/out.sock" }, ""},
		{"client targets anywhere", func(c *tunnel.Config) { c.Services[out].Targets = []string{"192.0.2.9:5433"} }, ""},
		{"shared listen with a client service", func(c *tunnel.Config) {
			c.Services[out].Listen, c.Services[out].UnsafeListen = c.Services[web].Listen, true
		}, `"out" is not server mode`},
		{"duplicate sni", func(c *tunnel.Config) {
			c.Services = append(c.Services, c.Services[web])
			c.Services[2].Name = "web2"
			c.Services[web].SNI, c.Services[2].SNI = []string{"a.test"}, []string{"b.test", "A.TEST"}
		}, `sni "a.test" claimed by "web" and "web2"`},
		{"two defaults", func(c *tunnel.Config) {
			c.Services = append(c.Services, c.Services[web])
			c.Services[2].Name = "web2"
		}, "2 services without sni; at most one may be the default"},
		{"sni routing with one default", func(c *tunnel.Config) {
			c.Services = append(c.Services, c.Services[web], c.Services[web])
			c.Services[2].Name, c.Services[2].SNI = "a", []string{"a.test"}
			c.Services[3].Name, c.Services[3].SNI = "b", []string{"b.test"}
		}, ""},
		{"keystore and cert", func(c *tunnel.Config) { c.Services[web].Identity.Keystore = "id.p12" }, "keystore and cert/key exclude each other"},
		{"keystore alone", func(c *tunnel.Config) {
			c.Services[web].Identity = tunnel.Identity{Keystore: "id.p12", CACert: "ca.pem"}
		}, ""},
		{"storepass and storepass file", func(c *tunnel.Config) {
			c.Services[web].Identity.Storepass, c.Services[web].Identity.StorepassFile = "secret", "pass.txt"
		}, "storepass and storepass_file exclude each other"},
		{"cert without key", func(c *tunnel.Config) { c.Services[web].Identity.Key = "" }, "want keystore, or cert and key"},
		{"client without identity", func(c *tunnel.Config) { c.Services[out].Identity = tunnel.Identity{CACert: "ca.pem"} }, "want keystore, or cert and key"},
		{"client without identity, authentication disabled", func(c *tunnel.Config) {
			c.Services[out].Identity, c.Services[out].DisableAuthentication = tunnel.Identity{CACert: "ca.pem"}, true
		}, ""},
		{"missing cacert", func(c *tunnel.Config) { c.Services[web].Identity.CACert = "" }, "identity.cacert is required"},
		{"server without allow", func(c *tunnel.Config) { c.Services[web].Allow = policy.Rules{} }, "allow: no access rule"},
		{"bad allow rule", func(c *tunnel.Config) { c.Services[web].Allow.IP = []string{"10.0.0.0/33"} }, "allow:"},
		{"allow in client mode", func(c *tunnel.Config) { c.Services[out].Allow.CN = []string{"x"} }, "allow, sni and proxy_protocol are server-mode settings"},
		{"sni in client mode", func(c *tunnel.Config) { c.Services[out].SNI = []string{"x.test"} }, "server-mode settings"},
		{"proxy protocol in client mode", func(c *tunnel.Config) { c.Services[out].ProxyProtocol = true }, "server-mode settings"},
		{"verify in server mode", func(c *tunnel.Config) { c.Services[web].Verify.CN = []string{"x"} }, "client-mode settings"},
		{"server name in server mode", func(c *tunnel.Config) { c.Services[web].ServerName = "x" }, "client-mode settings"},
		{"bad verify rule", func(c *tunnel.Config) { c.Services[out].Verify.URI = []string{"no-scheme"} }, "verify:"},
		{"bad failover", func(c *tunnel.Config) { c.Services[web].Failover = "random" }, `failover "random": want priority or round-robin`},
		{"round robin", func(c *tunnel.Config) { c.Services[web].Failover = tunnel.FailoverRoundRobin }, ""},
		{"bad revocation mode", func(c *tunnel.Config) {
			c.Services[web].Revocation = &tunnel.Revocation{CRLs: []string{"ca.crl"}, Mode: "fail-sometimes"}
		}, `revocation.mode "fail-sometimes"`},
		{"revocation without source", func(c *tunnel.Config) { c.Services[web].Revocation = &tunnel.Revocation{} }, "neither crls nor ocsp"},
		{"revocation", func(c *tunnel.Config) {
			c.Services[web].Revocation = &tunnel.Revocation{OCSP: true, Mode: "fail-closed"}
		}, ""},
		{"negative connection limit", func(c *tunnel.Config) { c.Services[web].MaxConns = -1 }, "max_concurrent_conns: negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := validConfig()
			tt.mutate(&cfg)
			before := cloneConfig(t, cfg)
			err := cfg.Validate()
			if diff := cmp.Diff(before, cfg, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Validate changed the config (-before +after):\n%s", diff)
			}
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// cloneConfig deep-copies c through YAML.
func cloneConfig(t testing.TB, c tunnel.Config) tunnel.Config {
	t.Helper()
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var out tunnel.Config
	if err := yaml.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	for i := range out.Services {
		out.Services[i].Identity.Storepass = c.Services[i].Identity.Storepass
	}
	return out
}

// TestValidateAllAtOnce: one config with a problem of every kind reports
// each of them.
func TestValidateAllAtOnce(t *testing.T) {
	t.Parallel()
	id := tunnel.Identity{Cert: "s.crt", Key: "s.key", CACert: "ca.pem"}
	allow := policy.Rules{AllowAll: true}
	cfg := tunnel.Config{Version: tunnel.ConfigVersion, Services: []tunnel.Service{
		{Name: "badmode", Mode: "relay", Listen: "127.0.0.1:1", Targets: []string{"127.0.0.1:2"},
			Identity: tunnel.Identity{Cert: "s.crt", Key: "s.key"}},
		{Name: "exposed", Mode: tunnel.ModeServer, Listen: "0.0.0.0:2", Targets: []string{"10.0.0.1:80"}, Failover: "random",
			Identity: tunnel.Identity{Keystore: "id.p12", Cert: "s.crt", CACert: "ca.pem"}, Allow: allow},
		{Name: "open-client", Mode: tunnel.ModeClient, Listen: "0.0.0.0:3", Targets: []string{"db:5433"}, Identity: id,
			Allow: allow, Revocation: &tunnel.Revocation{OCSP: true, Mode: "fail-sometimes"}},
		{Name: "sni-a", Mode: tunnel.ModeServer, Listen: "0.0.0.0:443", SNI: []string{"a.test"}, Targets: []string{"127.0.0.1:1"}, Identity: id, Allow: allow},
		{Name: "sni-b", Mode: tunnel.ModeServer, Listen: "0.0.0.0:443", SNI: []string{"A.test"}, Targets: []string{"127.0.0.1:1"}, Identity: id, Allow: allow},
		{Name: "default-1", Mode: tunnel.ModeServer, Listen: "0.0.0.0:443", Targets: []string{"127.0.0.1:1"}, Identity: id, Allow: allow},
		{Name: "default-2", Mode: tunnel.ModeClient, Listen: "0.0.0.0:443", UnsafeListen: true, Targets: []string{"x:1"}, Identity: id},
	}}.WithDefaults()
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	for _, want := range []string{
		`"badmode": mode "relay"`,
		`"badmode": identity.cacert is required`,
		`"exposed": target 10.0.0.1:80 is not loopback`,
		`"exposed": failover "random"`,
		`"exposed": identity: keystore and cert/key exclude each other`,
		`"open-client": listen 0.0.0.0:3 is not loopback`,
		`"open-client": allow, sni and proxy_protocol are server-mode settings`,
		`"open-client": revocation.mode "fail-sometimes"`,
		`sni "a.test" claimed by "sni-a" and "sni-b"`,
		`2 services without sni`,
		`"default-2" is not server mode`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v\nmissing %q", err, want)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	in := tunnel.Config{Version: 1, Services: []tunnel.Service{
		{Mode: tunnel.ModeServer, Listen: ":8443"},
		{Name: "set", Mode: tunnel.ModeClient, Listen: "127.0.0.1:1", Failover: tunnel.FailoverRoundRobin,
			ConnectTimeout: tunnel.Duration(time.Second), HandshakeTimeout: tunnel.Duration(2 * time.Second),
			CloseTimeout: tunnel.Duration(3 * time.Second), MaxConnLifetime: tunnel.Duration(time.Hour), MaxConns: 5},
	}}
	orig := cloneConfig(t, in)
	got := in.WithDefaults()
	want := tunnel.Config{Version: 1, ShutdownTimeout: tunnel.Duration(5 * time.Minute), Services: []tunnel.Service{
		{Name: "server-:8443", Mode: tunnel.ModeServer, Listen: ":8443", Failover: tunnel.FailoverPriority,
			ConnectTimeout: tunnel.Duration(10 * time.Second), HandshakeTimeout: tunnel.Duration(10 * time.Second),
			CloseTimeout: tunnel.Duration(time.Second)},
		in.Services[1],
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WithDefaults() (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(orig, in, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("WithDefaults changed its receiver (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(got, got.WithDefaults()); diff != "" {
		t.Errorf("WithDefaults is not idempotent (-once +twice):\n%s", diff)
	}
}

func TestParseAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in       string
		want     tunnel.Addr
		loopback bool
		err      bool
	}{
		{"127.0.0.1:80", tunnel.Addr{Network: "tcp", Address: "127.0.0.1:80"}, true, false},
		{"localhost:80", tunnel.Addr{Network: "tcp", Address: "localhost:80"}, true, false},
		{"[::1]:80", tunnel.Addr{Network: "tcp", Address: "[::1]:80"}, true, false},
		{"unix:/run/a.sock", tunnel.Addr{Network: "unix", Address: "/run/a.sock"}, true, false},
		{":80", tunnel.Addr{Network: "tcp", Address: ":80"}, false, false},
		{"10.0.0.1:80", tunnel.Addr{Network: "tcp", Address: "10.0.0.1:80"}, false, false},
		{"example.com:443", tunnel.Addr{Network: "tcp", Address: "example.com:443"}, false, false},
		{"unix:", tunnel.Addr{}, false, true},
		{"80", tunnel.Addr{}, false, true},
		{"host:", tunnel.Addr{}, false, true},
		{"", tunnel.Addr{}, false, true},
	}
	for _, tt := range tests {
		got, err := tunnel.ParseAddr(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseAddr(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.err)
			continue
		}
		if err == nil && got.Loopback() != tt.loopback {
			t.Errorf("ParseAddr(%q).Loopback() = %v, want %v", tt.in, got.Loopback(), tt.loopback)
		}
		if err == nil {
			if back, err := tunnel.ParseAddr(got.String()); err != nil || back != got {
				t.Errorf("ParseAddr(%q.String()) = %+v, %v", tt.in, back, err)
			}
		}
	}
}

// TestValidateSpeaksTheSource: the same mistake is said in tunnels.yaml
// keys, or in flags when the config came from flags.
func TestValidateSpeaksTheSource(t *testing.T) {
	t.Parallel()
	server := func() tunnel.Service {
		return tunnel.Service{Name: "web", Mode: tunnel.ModeServer, Listen: "0.0.0.0:8443", Targets: []string{"127.0.0.1:8080"},
			Identity: tunnel.Identity{Cert: "s.crt", Key: "s.key", CACert: "ca.pem"}, Allow: policy.Rules{AllowAll: true}}
	}
	client := func() tunnel.Service {
		return tunnel.Service{Name: "out", Mode: tunnel.ModeClient, Listen: "127.0.0.1:5432", Targets: []string{"db:5433"},
			Identity: tunnel.Identity{Cert: "c.crt", Key: "c.key", CACert: "ca.pem"}}
	}
	tests := []struct {
		name        string
		svc         func() tunnel.Service
		mutate      func(s *tunnel.Service)
		yaml, flags string
	}{
		{"missing cacert", server, func(s *tunnel.Service) { s.Identity.CACert = "" },
			`service "web": identity.cacert is required (the CA bundle peers are verified against)`,
			`--cacert is required (the CA bundle peers are verified against)`},
		{"no access rule", server, func(s *tunnel.Service) { s.Allow = policy.Rules{} },
			`service "web": allow: no access rule: set allow_all: true or at least one rule (cn, ou, dns, ip, uri, email, spki_sha256, issuer)`,
			`no access rule: give --allow-all or at least one of --allow-cn, --allow-ou, --allow-dns, --allow-ip, --allow-uri`},
		{"allow all and a rule", server, func(s *tunnel.Service) { s.Allow.CN = []string{"a"} },
			`service "web": allow: allow_all cannot be combined with other rules`,
			`--allow-all cannot be combined with other --allow-* flags`},
		{"bad allow entry", server, func(s *tunnel.Service) { s.Allow = policy.Rules{CN: []string{"a"}, IP: []string{"10.0.0.0/33"}} },
			`service "web": allow: ip[0] "10.0.0.0/33": not an IP address or CIDR prefix`,
			`--allow-ip "10.0.0.0/33": not an IP address or CIDR prefix`},
		{"bad verify entry", client, func(s *tunnel.Service) { s.Verify.URI = []string{"no-scheme"} },
			`service "out": verify: uri[0] "no-scheme": want a URI with a literal scheme, such as "spiffe://corp/device/*"`,
			`--verify-uri "no-scheme": want a URI with a literal scheme, such as "spiffe://corp/device/*"`},
		{"no target", server, func(s *tunnel.Service) { s.Targets = nil },
			`service "web": targets is required`, `--target is required`},
		{"bad target", server, func(s *tunnel.Service) { s.Targets = []string{"8080"} },
			`service "web": target: address "8080": want host:port or unix:/path`,
			`--target: address "8080": want host:port or unix:/path`},
		{"exposed target", server, func(s *tunnel.Service) { s.Targets = []string{"10.0.0.1:80"} },
			`service "web": target 10.0.0.1:80 is not loopback or a UNIX socket: plaintext would cross the network (set unsafe_target: true to allow)`,
			`--target 10.0.0.1:80 is not loopback or a UNIX socket: plaintext would cross the network (add --unsafe-target to allow)`},
		{"exposed client listener", client, func(s *tunnel.Service) { s.Listen = ":5432" },
			`service "out": listen :5432 is not loopback or a UNIX socket: anyone on the network could use this client's identity (set unsafe_listen: true to allow)`,
			`--listen :5432 is not loopback or a UNIX socket: anyone on the network could use this client's identity (add --unsafe-listen to allow)`},
		{"keystore and cert", server, func(s *tunnel.Service) { s.Identity.Keystore = "id.p12" },
			`service "web": identity: keystore and cert/key exclude each other`,
			`--keystore and --cert/--key exclude each other`},
		{"no identity", client, func(s *tunnel.Service) { s.Identity.Key = "" },
			`service "out": identity: want keystore, or cert and key`,
			`want --keystore, or --cert and --key`},
		{"bad failover", server, func(s *tunnel.Service) { s.Failover = "random" },
			`service "web": failover "random": want priority or round-robin`,
			`--failover "random": want priority or round-robin`},
		{"bad revocation mode", server, func(s *tunnel.Service) {
			s.Revocation = &tunnel.Revocation{OCSP: true, Mode: "sometimes"}
		}, `service "web": revocation.mode "sometimes": want fail-open or fail-closed`,
			`--revocation "sometimes": want fail-open or fail-closed`},
		{"bad curve", server, func(s *tunnel.Service) { s.Curves = []string{"p521"} },
			`service "web": curves: key exchange "p521": want x25519mlkem768, x25519, p256 or p384`,
			`--curves: key exchange "p521": want x25519mlkem768, x25519, p256 or p384`},
		{"negative limit", server, func(s *tunnel.Service) { s.MaxConns = -1 },
			`service "web": max_concurrent_conns: negative`, `--max-concurrent-conns: negative`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := tt.svc()
			tt.mutate(&s)
			for _, src := range []struct {
				source tunnel.Source
				want   string
			}{{tunnel.SourceFile, tt.yaml}, {tunnel.SourceFlags, tt.flags}} {
				cfg := tunnel.Config{Source: src.source, Version: tunnel.ConfigVersion, Services: []tunnel.Service{s}}
				err := cfg.Validate()
				if err == nil || err.Error() != src.want {
					t.Errorf("Validate() from %v = %v, want %q", src.source, err, src.want)
				}
				if !errors.Is(err, tunnel.ErrInvalidConfig) {
					t.Errorf("Validate() from %v = %v, not ErrInvalidConfig", src.source, err)
				}
			}
		})
	}
}
