package control

import (
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/server"
)

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(`
data: /var/lib/portcullis
listen: 0.0.0.0:443
public_listen: 0.0.0.0:80
public_url: http://pki.corp.example.com
hostnames: [pki.corp.example.com]
enroll:
  request_ttl: 3d
  poll_interval: 30s
  allow_list:
    - {name: lab, hostname: "lab-*"}
renewal: {grace: 14d}
admin:
  roles: {alice: approver, bob: viewer}
limits: {max_body: 32768, rate_per_second: 5, burst: 10}
`))
	if err != nil {
		t.Fatalf("ParseConfig() = %v", err)
	}
	if c.Data != "/var/lib/portcullis" || c.publicURL() != "http://pki.corp.example.com" || c.apiURL() != "https://127.0.0.1:443" {
		t.Errorf("config = %+v", c)
	}
	e := c.EnrollConfig()
	if e.RequestTTL != 72*time.Hour || e.RenewalGrace != 14*24*time.Hour || len(e.AllowList) != 1 || e.AllowList[0].Hostname != "lab-*" {
		t.Errorf("EnrollConfig() = %+v", e)
	}
	roles, err := c.Roles()
	if err != nil || roles["alice"] != server.RoleApprover || roles["bob"] != server.RoleViewer || roles["admin"] != 0 {
		t.Errorf("Roles() = %v, %v (a file's roles replace the default admin)", roles, err)
	}
	names, err := c.serverNames()
	if err != nil || len(names.IPs) != 1 || names.IPs[0].String() != "127.0.0.1" || !contains(names.DNS, "pki.corp.example.com") {
		t.Errorf("serverNames() = %+v, %v", names, err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestParseConfigErrors(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"listne: 1.2.3.4:5", `"listne"`},
		{"listen: nowhere", `listen "nowhere": want host:port`},
		{"public_url: https://x", "want http://host"},
		{"store: mysql://x", `store "mysql://x"`},
		{"admin: {roles: {alice: god}}", `admin.roles.alice: role "god"`},
		{"enroll: {allow_list: [{name: all}]}", "no pattern"},
		{"renewal: {grace: soon}", `duration "soon"`},
		{"limits: {burst: -1}", "must not be negative"},
	} {
		_, err := ParseConfig([]byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseConfig(%q) = %v; want an error containing %q", tt.yaml, err, tt.want)
		}
	}
}
