package strictyaml

import (
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	type doc struct {
		Version int    `yaml:"version"`
		Name    string `yaml:"name"`
	}
	tests := []struct {
		in, err string
	}{
		{"version: 1\nname: a\n", ""},
		{"", "empty config"},
		{"version: 1\nbogus: 2\n", "field bogus not found"},
		{"version: 1\n---\nversion: 2\n", "more than one YAML document"},
		{"version: [\n", "yaml:"},
	}
	for _, tt := range tests {
		var d doc
		err := Decode([]byte(tt.in), &d)
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("Decode(%q) = %v, want error containing %q", tt.in, err, tt.err)
		}
	}
}
