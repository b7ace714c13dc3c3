package enroll

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzCheckFacts: facts come from the network. Whatever checkFacts accepts
// is bounded, printable UTF-8 with a hostname, and survives the JSON round
// trip the store puts it through unchanged.
func FuzzCheckFacts(f *testing.F) {
	f.Add("laptop-1", "macOS", "15.1", "C02XYZ", "0.1.0", "ada@example.com")
	f.Add("lab-7", "linux", "", "", "", "")
	f.Add("", "x", "", "", "", "")
	f.Add("a\x1b[31m", "", "", "", "", "a@b@c")
	f.Add("\xff", "", "", "", "", "@")
	f.Fuzz(func(t *testing.T, host, os, osv, serial, agent, owner string) {
		in := Facts{Hostname: host, OS: os, OSVersion: osv, HardwareSerial: serial, AgentVersion: agent, OwnerEmail: owner}
		if err := checkFacts(in); err != nil {
			return
		}
		for _, v := range []string{host, os, osv, serial, agent, owner} {
			if len(v) > maxFact || !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0 {
				t.Fatalf("checkFacts accepted %q", v)
			}
		}
		if strings.TrimSpace(host) == "" {
			t.Fatalf("checkFacts accepted an empty hostname %q", host)
		}
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var out Facts
		if err := json.Unmarshal(b, &out); err != nil || out != in {
			t.Fatalf("JSON round trip: %+v, %v; want %+v", out, err, in)
		}
	})
}

// FuzzRuleMatch: allow-list matching on hostile facts neither panics nor
// lets an empty fact through.
func FuzzRuleMatch(f *testing.F) {
	f.Add("lab-*", "LAB-7", "linux", "")
	f.Add("[", "x", "", "")
	f.Add("*", "", "", "")
	f.Fuzz(func(t *testing.T, pattern, host, os, serial string) {
		r := Rule{Name: "r", Hostname: pattern}
		if r.match(Facts{Hostname: host, OS: os, HardwareSerial: serial}) && host == "" {
			t.Fatalf("pattern %q matched an empty hostname", pattern)
		}
	})
}
