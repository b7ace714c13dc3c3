package e2e

import (
	"path/filepath"
	"testing"
)

// TestTunnelConfigErrors: a refused tunnel configuration says what is wrong
// in the terms the user typed (flags, or tunnels.yaml with its lines), on
// one line, with exit 2 for flags and 1 for a file.
func TestTunnelConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name, data string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, data)
		return p
	}
	const svc = "version: 1\nservices:\n  - name: web\n    mode: server\n    listen: 127.0.0.1:0\n"
	typo := file("typo.yaml", svc+"    target: [127.0.0.1:8080]\n")
	indent := file("indent.yaml", svc+"   targets: [127.0.0.1:8080]\n")
	nocacert := file("nocacert.yaml", svc+"    targets: [127.0.0.1:8080]\n    identity: {cert: a, key: b}\n    allow: {allow_all: true}\n")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"flags without --cacert", []string{"tunnel", "server", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1",
			"--cert", "a", "--key", "b", "--allow-all"}, 2,
			"portcullis: --cacert is required (the CA bundle peers are verified against)"},
		{"flags without a rule", []string{"tunnel", "server", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1",
			"--cert", "a", "--key", "b", "--cacert", "c"}, 2,
			"portcullis: no access rule: give --allow-all or at least one of --allow-cn, --allow-ou, --allow-dns, --allow-ip, --allow-uri"},
		{"unknown key", []string{"tunnel", "--config", typo, "--check"}, 1,
			"portcullis: " + typo + `: line 6: unknown key "target" in service "web" (did you mean "targets"?)`},
		{"mis-indented line", []string{"tunnel", "--config", indent, "--check"}, 1,
			"portcullis: " + indent + `: line 6: did not find expected '-' indicator (check this line's indentation)`},
		{"file without cacert", []string{"tunnel", "--config", nocacert, "--check"}, 1,
			"portcullis: " + nocacert + `: service "web": identity.cacert is required (the CA bundle peers are verified against)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, bin, tt.args...)
			if r.code != tt.code {
				t.Errorf("portcullis %q: %v; want exit %d", tt.args, r, tt.code)
			}
			if got := oneErrorLine(t, r); got != tt.want {
				t.Errorf("portcullis %q: error line\n%s\nwant\n%s", tt.args, got, tt.want)
			}
		})
	}
}
