package e2e

import (
	"os"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/ca"
	"github.com/portcullis-dev/portcullis/internal/tunnel"
)

// TestReadmeConfigsParse keeps the README true: its ca.yaml and
// tunnels.yaml examples must parse with the strict decoders.
func TestReadmeConfigsParse(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	for _, tc := range []struct {
		heading string
		parse   func([]byte) error
	}{
		{"### `ca.yaml`", func(b []byte) error { _, err := ca.ParseConfig(b); return err }},
		{"### `tunnels.yaml`", func(b []byte) error { _, err := tunnel.ParseConfig(b); return err }},
	} {
		i := strings.Index(readme, tc.heading)
		if i < 0 {
			t.Errorf("README has no %s section", tc.heading)
			continue
		}
		start := strings.Index(readme[i:], "```yaml\n")
		end := strings.Index(readme[i+start+8:], "```")
		if start < 0 || end < 0 {
			t.Errorf("README %s: no yaml block", tc.heading)
			continue
		}
		block := readme[i+start+8 : i+start+8+end]
		if err := tc.parse([]byte(block)); err != nil {
			t.Errorf("README %s example does not parse: %v", tc.heading, err)
		}
	}
}
