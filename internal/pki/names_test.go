package pki_test

import (
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-dev/portcullis/internal/pki"
)

func TestParseNamesDNS(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"example.com", "example.com", false},
		{"Example.COM", "example.com", false},
		{"example.com.", "example.com", false},
		{" host.internal ", "host.internal", false},
		{"localhost", "localhost", false},
		{"a-b.example.com", "a-b.example.com", false},
		{"123.example", "123.example", false},
		{label63 + ".example", label63 + ".example", false},
		{"*.example.com", "*.example.com", false},
		{"*.svc.cluster.local", "*.svc.cluster.local", false},
		{"xn--bcher-kva.example", "xn--bcher-kva.example", false},
		{"xn--80ak6aa92e.com", "xn--80ak6aa92e.com", false},
		// Bad labels.
		{"", "", true},
		{".", "", true},
		{"..", "", true},
		{"a..b", "", true},
		{".example.com", "", true},
		{"-a.example.com", "", true},
		{"a-.example.com", "", true},
		{"a_b.example.com", "", true},
		{"_srv.example.com", "", true},
		{"a b.example.com", "", true},
		{"ab--cd.example", "", true},
		{label63 + "a.example", "", true},
		{strings.Repeat("a.", 127) + "ab", "", true}, // 255 characters
		{"exa\x00mple.com", "", true},
		{"10.0.0.1/8", "", true},
		// Wildcards: one leftmost label, with at least two labels below.
		{"*.com", "", true},
		{"*", "", true},
		{"*.", "", true},
		{"foo.*.example.com", "", true},
		{"*.*.example.com", "", true},
		{"f*.example.com", "", true},
		{"**.example.com", "", true},
		{"*example.com", "", true},
		// IDNs in U-label form; certificates carry A-labels.
		{"bücher.example", "", true},
		{"пример.com", "", true},
		{"ＥＸＡＭＰＬＥ.com", "", true},
	}
	for _, tt := range tests {
		n, err := pki.ParseNames([]string{tt.in}, nil, nil, nil)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseNames(DNS %q) = %q, want an error", tt.in, n.DNS)
			}
			continue
		}
		if err != nil || len(n.DNS) != 1 || n.DNS[0] != tt.want {
			t.Errorf("ParseNames(DNS %q) = %q, %v, want [%q]", tt.in, n.DNS, err, tt.want)
		}
	}
}

func TestParseNamesIP(t *testing.T) {
	tests := []struct {
		in      string
		want    net.IP
		wantErr bool
	}{
		{"10.0.0.1", net.IP{10, 0, 0, 1}, false},
		{" 127.0.0.1 ", net.IP{127, 0, 0, 1}, false},
		{"::1", net.ParseIP("::1"), false},
		{"fd00::1", net.ParseIP("fd00::1"), false},
		// IPv4-mapped becomes the 4-byte form: one SAN encoding per address.
		{"::ffff:10.0.0.1", net.IP{10, 0, 0, 1}, false},
		{"", nil, true},
		{"10.0.0.256", nil, true},
		{"10.0.0.0/8", nil, true},
		{"fe80::1%eth0", nil, true},
		{"localhost", nil, true},
	}
	for _, tt := range tests {
		n, err := pki.ParseNames(nil, []string{tt.in}, nil, nil)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseNames(IP %q) = %v, want an error", tt.in, n.IPs)
			}
			continue
		}
		if err != nil || len(n.IPs) != 1 || !n.IPs[0].Equal(tt.want) || len(n.IPs[0]) != len(tt.want) {
			t.Errorf("ParseNames(IP %q) = %#v, %v, want %#v", tt.in, n.IPs, err, tt.want)
		}
	}
}

func TestParseNamesEmail(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{"alice@example.com", false},
		{"alice.smith+tag@mail.example.com", false},
		{"root@localhost", false},
		{"Alice@Example.COM", false},
		{"", true},
		{"alice", true},
		{"alice@", true},
		{"@example.com", true},
		{"alice@@example.com", true},
		{"Alice <alice@example.com>", true},
		{"<alice@example.com>", true},
		{"\"alice\"@example.com", true},
		{"alice@exa mple.com", true},
		{"alice@example..com", true},
		{"alice@-example.com", true},
		{"alice@bücher.example", true},
		{"alice@example.com, bob@example.com", true},
	}
	for _, tt := range tests {
		n, err := pki.ParseNames(nil, nil, []string{tt.in}, nil)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseNames(email %q) = %q, want an error", tt.in, n.Emails)
			}
			continue
		}
		if err != nil || len(n.Emails) != 1 || n.Emails[0] != tt.in {
			t.Errorf("ParseNames(email %q) = %q, %v, want [%q]", tt.in, n.Emails, err, tt.in)
		}
	}
}

func TestParseNamesURI(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{"spiffe://example.org/device/1", false},
		{"https://example.com/", false},
		{"urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", false},
		{"", true},
		{"/device/1", true},
		{"device/1", true},
		{"example.org/device/1", true},
		{"//example.org/device/1", true},
		{"spiffe://", true},
		{"spiffe:///device/1", true},
		{"http://[::1", true},
		{"spiffe://exa mple.org/", true},
	}
	for _, tt := range tests {
		n, err := pki.ParseNames(nil, nil, nil, []string{tt.in})
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseNames(URI %q) = %v, want an error", tt.in, n.URIs)
			}
			continue
		}
		if err != nil || len(n.URIs) != 1 || n.URIs[0].String() != tt.in {
			t.Errorf("ParseNames(URI %q) = %v, %v, want [%s]", tt.in, n.URIs, err, tt.in)
		}
	}
}

// TestParseNamesAllErrors: every bad name is reported, not just the first,
// and the good ones are still returned.
func TestParseNamesAllErrors(t *testing.T) {
	n, err := pki.ParseNames(
		[]string{"good.example", "bad_name"},
		[]string{"10.0.0.1", "nope"},
		[]string{"a@example.com", "nope"},
		[]string{"spiffe://x/y", "/rel"},
	)
	if err == nil {
		t.Fatal("ParseNames(mixed) = nil error, want errors")
	}
	for _, s := range []string{"bad_name", `"nope"`, "/rel"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("ParseNames error %q does not name %s", err, s)
		}
	}
	if got := strings.Count(err.Error(), "\n") + 1; got != 4 {
		t.Errorf("ParseNames(mixed) reported %d errors, want 4: %v", got, err)
	}
	want := pki.Names{DNS: []string{"good.example"}, IPs: []net.IP{{10, 0, 0, 1}}, Emails: []string{"a@example.com"}, URIs: []*url.URL{mustURL(t, "spiffe://x/y")}}
	if diff := cmp.Diff(want, n); diff != "" {
		t.Errorf("ParseNames(mixed) good names (-want +got):\n%s", diff)
	}
	if !(pki.Names{}).Empty() || n.Empty() {
		t.Errorf("Empty() wrong: Names{}.Empty() = %v, n.Empty() = %v", (pki.Names{}).Empty(), n.Empty())
	}
}

func TestNamePolicyCheck(t *testing.T) {
	tests := []struct {
		name   string
		policy pki.NamePolicy
		names  pki.Names
		ok     bool
	}{
		{"empty policy allows all", pki.NamePolicy{}, mustNames(t,
			[]string{"anything.example", "*.wild.example"}, []string{"8.8.8.8", "::1"},
			[]string{"x@y.example"}, []string{"spiffe://a/b"}), true},

		// DNS: ".suffix" matches below, not itself; "exact" only itself.
		{"dns suffix matches subdomain", dnsAllow(".corp.example"), dnsNames("a.corp.example"), true},
		{"dns suffix matches deep subdomain", dnsAllow(".corp.example"), dnsNames("a.b.corp.example"), true},
		{"dns suffix matches wildcard below", dnsAllow(".corp.example"), dnsNames("*.corp.example"), true},
		{"dns suffix does not match itself", dnsAllow(".corp.example"), dnsNames("corp.example"), false},
		{"dns suffix is label-aligned", dnsAllow(".corp.example"), dnsNames("evilcorp.example"), false},
		{"dns exact matches itself", dnsAllow("corp.example"), dnsNames("corp.example"), true},
		{"dns exact does not match subdomain", dnsAllow("corp.example"), dnsNames("a.corp.example"), false},
		{"dns match is case-blind", dnsAllow(".corp.example"), pki.Names{DNS: []string{"A.CORP.example"}}, true},
		{"dns one of several names refused", dnsAllow(".corp.example"), dnsNames("a.corp.example", "b.other.example"), false},
		{"dns deny wins over allow", pki.NamePolicy{DNS: pki.Rules{Allow: []string{".corp.example"}, Deny: []string{"secret.corp.example"}}},
			dnsNames("secret.corp.example"), false},
		{"dns deny suffix", pki.NamePolicy{DNS: pki.Rules{Deny: []string{".prod.example"}}}, dnsNames("db.prod.example"), false},
		{"dns deny only, others allowed", pki.NamePolicy{DNS: pki.Rules{Deny: []string{".prod.example"}}}, dnsNames("db.dev.example"), true},
		{"dns rules ignore other types", dnsAllow(".corp.example"), mustNames(t, nil, []string{"10.0.0.1"}, nil, nil), true},

		// IP: CIDR or single address, v4 and v6.
		{"ip v4 in cidr", ipAllow("10.0.0.0/8"), ipNames("10.200.3.4"), true},
		{"ip v4 outside cidr", ipAllow("10.0.0.0/8"), ipNames("11.0.0.1"), false},
		{"ip unmasked cidr", ipAllow("10.1.2.3/8"), ipNames("10.200.3.4"), true},
		{"ip single address", ipAllow("192.168.1.10"), ipNames("192.168.1.10"), true},
		{"ip single address, other", ipAllow("192.168.1.10"), ipNames("192.168.1.11"), false},
		{"ip v6 in cidr", ipAllow("fd00::/8"), ipNames("fd12::1"), true},
		{"ip v6 outside cidr", ipAllow("fd00::/8"), ipNames("2001:db8::1"), false},
		{"ip v4 not in v6 any", ipAllow("::/0"), ipNames("10.0.0.1"), false},
		{"ip v6 not in v4 any", ipAllow("0.0.0.0/0"), ipNames("::1"), false},
		{"ip v4-mapped name in v4 cidr", ipAllow("10.0.0.0/8"), pki.Names{IPs: []net.IP{net.ParseIP("::ffff:10.1.1.1")}}, true},
		{"ip v4-mapped name cannot dodge a v4 deny", pki.NamePolicy{IP: pki.Rules{Deny: []string{"10.0.0.0/8"}}},
			pki.Names{IPs: []net.IP{net.ParseIP("::ffff:10.1.1.1")}}, false},
		{"ip deny wins", pki.NamePolicy{IP: pki.Rules{Allow: []string{"10.0.0.0/8"}, Deny: []string{"10.0.0.1"}}}, ipNames("10.0.0.1"), false},
		{"ip deny v6", pki.NamePolicy{IP: pki.Rules{Deny: []string{"::1/128"}}}, ipNames("::1"), false},

		// Email: exact, @domain, .domain (subdomains).
		{"email @domain", emailAllow("@example.com"), emailNames("alice@example.com"), true},
		{"email @domain case-blind", emailAllow("@Example.com"), emailNames("alice@EXAMPLE.COM"), true},
		{"email @domain not subdomain", emailAllow("@example.com"), emailNames("alice@mail.example.com"), false},
		{"email @domain not suffix", emailAllow("@example.com"), emailNames("alice@badexample.com"), false},
		{"email .domain matches subdomain", emailAllow(".example.com"), emailNames("alice@mail.example.com"), true},
		{"email .domain not the domain", emailAllow(".example.com"), emailNames("alice@example.com"), false},
		{"email exact", emailAllow("alice@example.com"), emailNames("alice@example.com"), true},
		{"email exact, other mailbox", emailAllow("alice@example.com"), emailNames("bob@example.com"), false},
		{"email deny wins", pki.NamePolicy{Email: pki.Rules{Allow: []string{"@example.com"}, Deny: []string{"root@example.com"}}},
			emailNames("root@example.com"), false},

		// URI: string prefix.
		{"uri prefix", uriAllow("spiffe://corp.example/device/"), uriNames("spiffe://corp.example/device/laptop-1"), true},
		{"uri other path", uriAllow("spiffe://corp.example/device/"), uriNames("spiffe://corp.example/user/alice"), false},
		{"uri prefix with slash is host-aligned", uriAllow("spiffe://corp.example/"), uriNames("spiffe://corp.example.evil/device/1"), false},
		{"uri deny wins", pki.NamePolicy{URI: pki.Rules{Allow: []string{"spiffe://corp.example/"}, Deny: []string{"spiffe://corp.example/admin/"}}},
			uriNames("spiffe://corp.example/admin/root"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Check(tt.names)
			if tt.ok && err != nil {
				t.Errorf("Check(%+v) = %v, want nil", tt.names, err)
			}
			if !tt.ok && !errors.Is(err, pki.ErrNameNotAllowed) {
				t.Errorf("Check(%+v) = %v, want ErrNameNotAllowed", tt.names, err)
			}
			if err := tt.policy.Validate(); err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
		})
	}
}

func dnsAllow(p ...string) pki.NamePolicy   { return pki.NamePolicy{DNS: pki.Rules{Allow: p}} }
func ipAllow(p ...string) pki.NamePolicy    { return pki.NamePolicy{IP: pki.Rules{Allow: p}} }
func emailAllow(p ...string) pki.NamePolicy { return pki.NamePolicy{Email: pki.Rules{Allow: p}} }
func uriAllow(p ...string) pki.NamePolicy   { return pki.NamePolicy{URI: pki.Rules{Allow: p}} }
func dnsNames(d ...string) pki.Names        { return pki.Names{DNS: d} }
func emailNames(e ...string) pki.Names      { return pki.Names{Emails: e} }

func ipNames(s ...string) pki.Names {
	var n pki.Names
	for _, x := range s {
		n.IPs = append(n.IPs, ip(x))
	}
	return n
}

func uriNames(s ...string) pki.Names {
	var n pki.Names
	for _, x := range s {
		u, err := url.Parse(x)
		if err != nil {
			panic(err)
		}
		n.URIs = append(n.URIs, u)
	}
	return n
}

// TestNamePolicyErrorNamesRule: a refusal says which ca.yaml rule refused,
// so an operator of an unattended renewal knows what to change.
func TestNamePolicyErrorNamesRule(t *testing.T) {
	policy := pki.NamePolicy{
		DNS: pki.Rules{Allow: []string{".corp.example.com", "localhost"}, Deny: []string{"admin.corp.example.com"}},
		IP:  pki.Rules{Allow: []string{"10.0.0.0/8"}},
	}
	tests := []struct {
		names pki.Names
		want  string
	}{
		{dnsNames("x.evil.com"), `dns name "x.evil.com" is not allowed by name_policy.dns.allow [.corp.example.com localhost]`},
		{dnsNames("admin.corp.example.com"), `dns name "admin.corp.example.com" is denied by name_policy.dns.deny "admin.corp.example.com"`},
		{ipNames("192.168.1.1"), `ip address "192.168.1.1" is not allowed by name_policy.ip.allow [10.0.0.0/8]`},
	}
	for _, tt := range tests {
		err := policy.Check(tt.names)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Check(%+v) = %v, want %s", tt.names, err, tt.want)
		}
		var pe *pki.PolicyError
		if !errors.As(err, &pe) || !errors.Is(err, pki.ErrNameNotAllowed) {
			t.Errorf("Check(%+v) = %T, want a *PolicyError wrapping ErrNameNotAllowed", tt.names, err)
		}
	}
}

func TestNamePolicyValidate(t *testing.T) {
	tests := []struct {
		name    string
		policy  pki.NamePolicy
		wantErr []string // substrings, one per expected error
	}{
		{"empty", pki.NamePolicy{}, nil},
		{"good", pki.NamePolicy{
			DNS:   pki.Rules{Allow: []string{".corp.example", "corp.example"}, Deny: []string{"*.x.corp.example"}},
			IP:    pki.Rules{Allow: []string{"10.0.0.0/8", "fd00::/8", "192.168.1.1", "::1"}},
			Email: pki.Rules{Allow: []string{"@example.com"}},
			URI:   pki.Rules{Allow: []string{"spiffe://corp.example/"}},
		}, nil},
		{"bad ip cidr", pki.NamePolicy{IP: pki.Rules{Allow: []string{"10.0.0.0/33"}}}, []string{"10.0.0.0/33"}},
		{"bad ip", pki.NamePolicy{IP: pki.Rules{Deny: []string{"10.0.0"}}}, []string{"10.0.0"}},
		{"hostname as ip", pki.NamePolicy{IP: pki.Rules{Allow: []string{"localhost"}}}, []string{"localhost"}},
		{"bad dns", pki.NamePolicy{DNS: pki.Rules{Allow: []string{"bad_name.example"}}}, []string{"bad_name"}},
		{"dot alone", pki.NamePolicy{DNS: pki.Rules{Deny: []string{"."}}}, []string{"empty"}},
		{"empty dns", pki.NamePolicy{DNS: pki.Rules{Allow: []string{""}}}, []string{"empty"}},
		// Patterns are written as ParseNames would return the names.
		{"upper-case dns", pki.NamePolicy{DNS: pki.Rules{Allow: []string{".Corp.Example"}}}, []string{"Corp"}},
		{"u-label dns", pki.NamePolicy{DNS: pki.Rules{Allow: []string{".bücher.example"}}}, []string{"bücher"}},
		{"every error reported", pki.NamePolicy{
			DNS: pki.Rules{Allow: []string{"a_b"}, Deny: []string{"c_d"}},
			IP:  pki.Rules{Allow: []string{"x"}, Deny: []string{"1.2.3.4/99"}},
		}, []string{"a_b", "c_d", `"x"`, "1.2.3.4/99"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors naming %q", tt.wantErr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Validate() = %v, want it to name %s", err, s)
				}
			}
			if got := strings.Count(err.Error(), "\n") + 1; got != len(tt.wantErr) {
				t.Errorf("Validate() reported %d errors, want %d: %v", got, len(tt.wantErr), err)
			}
		})
	}
}
