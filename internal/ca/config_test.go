package ca_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/portcullis-dev/portcullis/internal/ca"
	"github.com/portcullis-dev/portcullis/internal/pki"
)

const day = 24 * time.Hour

// minimalYAML is the smallest ca.yaml ParseConfig accepts.
const minimalYAML = `version: 1
key_type: p256
trust_domain: portcullis.internal
lifetimes:
  server: 90d
  client: 30d
  device: 30d
  crl: 7d
`

// withLine replaces the line of minimalYAML starting with prefix (or
// appends line when none does).
func withLine(prefix, line string) string {
	var out []string
	found := false
	for _, l := range strings.Split(strings.TrimSuffix(minimalYAML, "\n"), "\n") {
		if strings.HasPrefix(l, prefix) {
			found = true
			if line != "" {
				out = append(out, line)
			}
			continue
		}
		out = append(out, l)
	}
	if !found {
		out = append(out, line)
	}
	return strings.Join(out, "\n") + "\n"
}

func readCATestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseConfigFull(t *testing.T) {
	got, err := ca.ParseConfig(readCATestdata(t, "ca.yaml"))
	if err != nil {
		t.Fatalf("ParseConfig(testdata/ca.yaml) = %v", err)
	}
	want := ca.Config{
		Version: 1, KeyType: pki.KeyP384, Organization: "Example Org", Country: "US", TrustDomain: "corp.example",
		URLs: ca.URLs{
			CRL: []string{"http://ca.corp.example/crl.der"}, OCSP: []string{"http://ca.corp.example/ocsp"},
			Issuer: []string{"https://ca.corp.example/ca.cer"},
		},
		Lifetimes: ca.Lifetimes{
			Server: ca.Duration(90 * day), Client: ca.Duration(720 * time.Hour),
			Device: ca.Duration(365 * day), CRL: ca.Duration(36 * time.Hour),
		},
		NamePolicy: pki.NamePolicy{
			DNS:   pki.Rules{Allow: []string{".corp.example", "corp.example"}, Deny: []string{"secret.corp.example"}},
			IP:    pki.Rules{Allow: []string{"10.0.0.0/8", "fd00::/8"}},
			Email: pki.Rules{Allow: []string{"@corp.example"}},
			URI:   pki.Rules{Allow: []string{"spiffe://corp.example/"}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseConfig(testdata/ca.yaml) (-want +got):\n%s", diff)
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; "" = ok
	}{
		{"minimal", minimalYAML, ""},
		{"document end marker", minimalYAML + "...\n", ""},
		{"document start marker", "---\n" + minimalYAML, ""},
		{"comments", "# settings\n" + minimalYAML + "# end\n", ""},
		{"go durations", withLine("  server:", "  server: 2160h"), ""},
		{"server at 398 days", withLine("  server:", "  server: 398d"), ""},
		{"long client lifetime", withLine("  client:", "  client: 2y"), ""},
		{"every key type", withLine("key_type:", "key_type: rsa3072"), ""},
		{"https urls", minimalYAML + "urls:\n  crl: [https://ca.example/crl]\n  ocsp: [http://127.0.0.1:8889/ocsp]\n", ""},

		{"empty", "", "empty config"},
		{"only a comment", "# nothing\n", "empty config"},
		{"unknown key", minimalYAML + "colour: blue\n", "colour"},
		{"misspelt key", strings.Replace(minimalYAML, "trust_domain", "trustdomain", 1), "trustdomain"},
		{"unknown nested key", minimalYAML + "name_policy:\n  dns:\n    alow: [.x]\n", "alow"},
		{"unknown lifetime", withLine("  crl:", "  crl: 7d\n  ocsp: 1d"), "ocsp"},
		{"two documents", minimalYAML + "---\n" + minimalYAML, "more than one YAML document"},
		{"empty second document", minimalYAML + "---\n", "more than one YAML document"},
		{"text after document end", minimalYAML + "...\ngarbage: 1\n", "more than one YAML document"},
		{"duplicate key", minimalYAML + "version: 1\n", "already defined"},
		{"syntax error", minimalYAML + "urls: [\n", "line "},
		{"not a mapping", "- version: 1\n", "want a mapping"},
		{"missing version", withLine("version:", ""), "version: missing"},
		{"version 0", withLine("version:", "version: 0"), "version: missing"},
		{"version 2", withLine("version:", "version: 2"), "version: 2, want 1"},
		{"version not a number", withLine("version:", "version: one"), "version: want an integer"},
		{"bad key_type", withLine("key_type:", "key_type: p521"), "key_type"},
		{"empty key_type", withLine("key_type:", `key_type: ""`), "key_type"},
		{"missing key_type", withLine("key_type:", ""), "key_type"},
		// ParseKeyType's spellings are for flags; the CA generates keys from
		// the config's key_type as is, so it must be a canonical name.
		{"key_type alias", withLine("key_type:", "key_type: ecdsa"), "key_type"},
		{"key_type other case", withLine("key_type:", "key_type: P256"), "key_type"},
		{"missing trust_domain", withLine("trust_domain:", ""), "trust_domain"},
		{"trust_domain with path", withLine("trust_domain:", "trust_domain: corp.example/x"), "trust_domain"},
		{"trust_domain with port", withLine("trust_domain:", "trust_domain: corp.example:443"), "trust_domain"},
		{"negative lifetime", withLine("  client:", "  client: -24h"), "lifetimes.client: must be positive"},
		{"zero lifetime", withLine("  device:", "  device: 0d"), "lifetimes.device: must be positive"},
		{"missing lifetime", withLine("  crl:", ""), "lifetimes.crl: must be positive"},
		{"server over 398 days", withLine("  server:", "  server: 399d"), "over 398 days"},
		{"server a year and a day", withLine("  server:", "  server: 9553h"), "over 398 days"},
		{"bad duration", withLine("  server:", "  server: 90days"), "90days"},
		{"fractional days", withLine("  server:", "  server: 1.5d"), "whole number"},
		{"duration overflow", withLine("  crl:", "  crl: 213504d"), "213504d"},
		{"duration overflow in years", withLine("  crl:", "  crl: 600y"), "600y"},
		{"lifetime as list", withLine("  crl:", "  crl: [7d]"), "duration"},
		{"ftp url", minimalYAML + "urls:\n  crl: [ftp://ca.example/crl]\n", "ftp://ca.example/crl"},
		{"relative url", minimalYAML + "urls:\n  ocsp: [/ocsp]\n", "/ocsp"},
		{"url without host", minimalYAML + "urls:\n  issuer: [\"http://\"]\n", "http://"},
		{"not a url", minimalYAML + "urls:\n  crl: [\"ca.example crl\"]\n", "ca.example crl"},
		{"bad ip policy", minimalYAML + "name_policy:\n  ip:\n    allow: [10.0.0.0/33]\n", "10.0.0.0/33"},
		{"bad dns policy", minimalYAML + "name_policy:\n  dns:\n    deny: [bad_name.example]\n", "bad_name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ca.ParseConfig([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseConfig(%q) = %v, want ok", tt.in, err)
				}
				if err := got.Validate(); err != nil {
					t.Errorf("Validate() of a parsed config = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseConfig(%q) = %+v, %v, want an error containing %q", tt.in, got, err, tt.wantErr)
			}
		})
	}
}

// TestValidateReportsAll: every problem at once, and nothing changed.
func TestValidateReportsAll(t *testing.T) {
	c := ca.DefaultConfig()
	c.Version = 3
	c.KeyType = "dsa"
	c.TrustDomain = ""
	c.Lifetimes.Client = 0
	c.Lifetimes.Server = ca.Duration(500 * day)
	c.URLs.CRL = []string{"ldap://x"}
	c.NamePolicy.IP.Deny = []string{"nope"}
	before := c
	before.URLs.CRL = append([]string(nil), c.URLs.CRL...)
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	for _, s := range []string{"version", "key_type", "trust_domain", "lifetimes.client", "lifetimes.server", "ldap://x", `"nope"`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Validate() = %v, want it to report %s", err, s)
		}
	}
	if diff := cmp.Diff(before, c); diff != "" {
		t.Errorf("Validate changed the config (-before +after):\n%s", diff)
	}
}

func TestDefaultConfig(t *testing.T) {
	c := ca.DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v", err)
	}
	if c.Version != ca.ConfigVersion || c.KeyType != pki.DefaultKeyType {
		t.Errorf("DefaultConfig() = version %d key %s, want %d %s", c.Version, c.KeyType, ca.ConfigVersion, pki.DefaultKeyType)
	}
}

func TestConfigMarshalRoundTrip(t *testing.T) {
	full, err := ca.ParseConfig(readCATestdata(t, "ca.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	odd := ca.DefaultConfig()
	odd.Lifetimes.CRL = ca.Duration(90 * time.Minute)
	odd.Organization = "Example: \"Org\" # not a comment"
	for name, c := range map[string]ca.Config{"default": ca.DefaultConfig(), "full": full, "odd": odd} {
		t.Run(name, func(t *testing.T) {
			data, err := c.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !bytes.HasPrefix(data, []byte("# ")) {
				t.Errorf("Marshal() does not start with the header comment: %q", firstLine(data))
			}
			got, err := ca.ParseConfig(data)
			if err != nil {
				t.Fatalf("ParseConfig(Marshal()) = %v\n%s", err, data)
			}
			if diff := cmp.Diff(c, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseConfig(Marshal(c)) (-c +got):\n%s", diff)
			}
		})
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"90d", 90 * day, false},
		{"1d", day, false},
		{"0d", 0, false},
		{" 30d ", 30 * day, false},
		{"1y", 365 * day, false},
		{"10y", 3650 * day, false},
		{"292y", 292 * 365 * day, false},
		{"106751d", 106751 * day, false}, // the largest whole-day time.Duration
		{"720h", 720 * time.Hour, false},
		{"15m", 15 * time.Minute, false},
		{"1h30m", 90 * time.Minute, false},
		{"1.5h", 90 * time.Minute, false},
		{"-24h", -day, false}, // a Go duration; Validate refuses it
		{"", 0, true},
		{"d", 0, true},
		{"y", 0, true},
		{"90", 0, true},
		{"90days", 0, true},
		{"90D", 0, true},
		{"1.5d", 0, true},
		{"-1d", 0, true},
		{"+1d", 0, true},
		{"1 d", 0, true},
		{"0x10d", 0, true},
		{"1e3d", 0, true},
		{"4294967296d", 0, true},
		// Overflow: these used to wrap around to a short, positive
		// duration (213504d became 25 minutes).
		{"106752d", 0, true},
		{"213504d", 0, true},
		{"4294967295d", 0, true},
		{"293y", 0, true},
		{"585y", 0, true},
		{"600y", 0, true},
		{"3000000h", 0, true},
	}
	for _, tt := range tests {
		got, err := ca.ParseDuration(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseDuration(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		d    ca.Duration
		want string
	}{
		{ca.Duration(90 * day), "90d"},
		{ca.Duration(365 * day), "365d"},
		{ca.Duration(36 * time.Hour), "36h0m0s"},
		{ca.Duration(90 * time.Second), "1m30s"},
		{0, "0d"},
	}
	for _, tt := range tests {
		if got := tt.d.String(); got != tt.want {
			t.Errorf("Duration(%d).String() = %q, want %q", int64(tt.d), got, tt.want)
		}
		back, err := ca.ParseDuration(tt.d.String())
		if err != nil || ca.Duration(back) != tt.d {
			t.Errorf("ParseDuration(%q) = %v, %v, want %v", tt.d.String(), back, err, time.Duration(tt.d))
		}
	}
}
