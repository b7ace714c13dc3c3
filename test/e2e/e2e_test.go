package e2e

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestListAndShow checks the inventory views: the filters of `ca list`
// and `ca show --json/--pem` against the files `ca issue` wrote.
func TestListAndShow(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	ca.ok(t, "ca", "issue", "server", "web", "--dns", "web.example.com", "--ip", "192.0.2.10")
	ca.ok(t, "ca", "issue", "client", "soon", "--lifetime", "2d", "--email", "soon@example.com")
	ca.ok(t, "ca", "issue", "client", "gone")
	ca.ok(t, "ca", "issue", "device", "dev1")
	ca.ok(t, "ca", "revoke", "gone", "--reason", "cessationOfOperation")

	names := func(flags ...string) []string {
		t.Helper()
		var out []string
		for _, v := range ca.list(t, flags...) {
			out = append(out, v.Name)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		flags []string
		want  []string
	}{
		{nil, []string{"ca", "dev1", "gone", "intermediate", "soon", "web"}},
		{[]string{"--revoked"}, []string{"gone"}},
		{[]string{"--expiring", "7d"}, []string{"soon"}},
		{[]string{"--profile", "server"}, []string{"web"}},
		{[]string{"--profile", "device"}, []string{"dev1"}},
		{[]string{"--expired"}, nil},
	} {
		if diff := cmp.Diff(tc.want, names(tc.flags...)); diff != "" {
			t.Errorf("ca list --json %q (-want +got):\n%s", tc.flags, diff)
		}
	}

	var web certView
	if err := json.Unmarshal([]byte(ca.ok(t, "ca", "show", "web", "--json").stdout), &web); err != nil {
		t.Fatal(err)
	}
	cert := readCerts(t, ca.path("issued", "web.crt"))[0]
	want := certView{Serial: serialHex(cert), Name: "web", Profile: "server", Status: "active", Subject: cert.Subject.String(),
		DNS: []string{"web.example.com"}, IPs: []string{"192.0.2.10"}, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter}
	if diff := cmp.Diff(want, web); diff != "" {
		t.Errorf("ca show web --json (-want +got):\n%s", diff)
	}
	// By serial, as PEM: the same bytes as issued/web.crt.
	if got := ca.ok(t, "ca", "show", serialHex(cert), "--pem").stdout; got != string(readFile(t, ca.path("issued", "web.crt"))) {
		t.Errorf("ca show SERIAL --pem differs from issued/web.crt:\n%s", got)
	}
	// By serial and by name: a revoked certificate is still shown.
	for _, ref := range []string{serialOf(t, ca, "gone"), "gone"} {
		var gone certView
		if err := json.Unmarshal([]byte(ca.ok(t, "ca", "show", ref, "--json").stdout), &gone); err != nil {
			t.Fatal(err)
		}
		if gone.Status != "revoked" || gone.Reason != "cessationOfOperation" || gone.RevokedAt.IsZero() {
			t.Errorf("ca show %s (revoked): status %q, reason %q, revoked at %v", ref, gone.Status, gone.Reason, gone.RevokedAt)
		}
	}
}
