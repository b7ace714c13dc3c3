package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// auditEvents are the events the CA writes to audit.log.
var auditEvents = map[string]bool{
	"ca.created": true, "ca.imported": true, "cert.issued": true, "cert.renewed": true,
	"cert.revoked": true, "cert.exported": true, "crl.generated": true,
}

// auditLine is one parsed line of audit.log.
type auditLine struct {
	Event     string    `json:"event"`
	Type      string    `json:"type"`
	Actor     string    `json:"actor"`
	Time      time.Time `json:"time"`
	Serial    string    `json:"serial"`
	Name      string    `json:"name"`
	Reason    string    `json:"reason"`
	Replaces  string    `json:"replaces"`
	CRLNumber *int64    `json:"crl_number"`
}

// readAudit parses audit.log and checks every line: valid JSON, a known
// event, an actor, a time, a serial on certificate events, a CRL number on
// CRL events, and never the passphrase.
func readAudit(t *testing.T, ca *testCA) []auditLine {
	t.Helper()
	var lines []auditLine
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, ca.path("audit.log"))))
	for n := 1; sc.Scan(); n++ {
		raw := sc.Bytes()
		if bytes.Contains(raw, []byte(passphrase)) {
			t.Errorf("audit.log line %d contains the passphrase", n)
		}
		var l auditLine
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&l); err != nil || dec.More() {
			t.Errorf("audit.log line %d is not one JSON object (%v): %s", n, err, raw)
			continue
		}
		if !auditEvents[l.Event] || l.Type != "audit" || l.Actor == "" || l.Time.IsZero() {
			t.Errorf("audit.log line %d: event %q, type %q, actor %q, time %v; want a known event, type audit, an actor and a time",
				n, l.Event, l.Type, l.Actor, l.Time)
		}
		if (strings.HasPrefix(l.Event, "cert.") || l.Event == "ca.created") && l.Serial == "" {
			t.Errorf("audit.log line %d: %s without a serial: %s", n, l.Event, raw)
		}
		if l.Event == "crl.generated" && l.CRLNumber == nil {
			t.Errorf("audit.log line %d: crl.generated without crl_number: %s", n, raw)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// checkAudit reads the audit log and checks how often some events occur.
func checkAudit(t *testing.T, ca *testCA, counts map[string]int) []auditLine {
	t.Helper()
	lines := readAudit(t, ca)
	got := map[string]int{}
	for _, l := range lines {
		if _, ok := counts[l.Event]; ok {
			got[l.Event]++
		}
	}
	if diff := cmp.Diff(counts, got); diff != "" {
		t.Errorf("audit event counts (-want +got):\n%s", diff)
	}
	return lines
}

// TestAudit follows one certificate's life through audit.log: each step is
// one JSON line naming the event, the actor and the serial, in order.
func TestAudit(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	p12pass := filepath.Join(t.TempDir(), "p12pass")
	const p12Password = "e2e-P12-Password-91b2"
	writeFile(t, p12pass, p12Password+"\n")
	var outputs []result
	for _, args := range [][]string{
		{"ca", "issue", "server", "web", "--dns", "web.example.com"},
		{"ca", "issue", "client", "alice"},
		{"ca", "revoke", "alice", "--reason", "keyCompromise"},
		{"ca", "crl"},
		{"ca", "renew", "web"},
		{"ca", "export", "web", "--p12", "--password-file", p12pass, "--out", filepath.Join(t.TempDir(), "web.p12")},
	} {
		outputs = append(outputs, ca.ok(t, args...))
	}

	views := ca.list(t)
	serial := func(name, status string) string {
		for _, v := range byName(views, name) {
			if v.Status == status {
				return v.Serial
			}
		}
		t.Fatalf("no %s record named %s in %+v", status, name, views)
		return ""
	}
	root, inter := serial("ca", "active"), serial("intermediate", "active")
	web1, web2, alice := serial("web", "superseded"), serial("web", "active"), serial("alice", "revoked")

	type step struct{ Event, Serial, Name, Reason, Replaces string }
	var got []step
	var crlNumbers []int64
	for _, l := range readAudit(t, ca) {
		got = append(got, step{l.Event, l.Serial, l.Name, l.Reason, l.Replaces})
		if l.CRLNumber != nil {
			crlNumbers = append(crlNumbers, *l.CRLNumber)
		}
	}
	want := []step{
		{Event: "ca.created", Serial: root},
		{Event: "ca.created", Serial: inter},
		{Event: "crl.generated"},
		{Event: "cert.issued", Serial: web1, Name: "web"},
		{Event: "cert.issued", Serial: alice, Name: "alice"},
		{Event: "cert.revoked", Serial: alice, Name: "alice", Reason: "keyCompromise"},
		{Event: "crl.generated"},
		{Event: "crl.generated"},
		{Event: "cert.renewed", Serial: web2, Name: "web", Replaces: web1},
		{Event: "cert.exported", Serial: web2, Name: "web"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("audit.log events (-want +got):\n%s", diff)
	}
	for i := 1; i < len(crlNumbers); i++ {
		if crlNumbers[i] <= crlNumbers[i-1] {
			t.Errorf("crl_number in audit.log: %v, want increasing", crlNumbers)
		}
	}

	// No secret anywhere: not in any file of the CA directory (the
	// database included), not in any output.
	for _, secret := range []string{passphrase, p12Password} {
		for _, r := range outputs {
			if strings.Contains(r.stdout+r.stderr, secret) {
				t.Errorf("a command printed a secret: %s", r)
			}
		}
		err := filepath.WalkDir(ca.dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if bytes.Contains(readFile(t, p), []byte(secret)) {
				t.Errorf("%s contains a secret", p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
