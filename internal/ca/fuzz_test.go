package ca

// Fuzz targets of the ca package's parsers of operator-supplied files
// (ca.yaml and easy-rsa's index.txt) and of OCSP requests from the network. Table tests of parseIndexLine live
// here too, next to its fuzz target.

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/crypto/ocsp"

	"github.com/portcullis-dev/portcullis/internal/pki"
)

func FuzzParseConfig(f *testing.F) {
	for _, name := range []string{"ca.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	def, err := DefaultConfig().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(def)
	for _, s := range []string{
		"version: 1\nkey_type: p256\ntrust_domain: x\nlifetimes: {server: 90d, client: 720h, device: 1y, crl: 7d}\n",
		"version: 1\nkey_type: rsa2048\ntrust_domain: x\nlifetimes: {server: 1h30m, client: 1d, device: 1d, crl: 1d}\nname_policy: {ip: {deny: [\"::1\"]}}\n",
		"version: 1\n---\nversion: 1\n",
		"version: 1\nbogus: true\n",
		"version: 1\nlifetimes: {crl: 213504d}\n",
		"",
		"{}",
		"[1, 2]",
		"version: &a 1\nkey_type: *a\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted a config Validate refuses: %v", err)
		}
		if !slices.Contains(pki.KeyTypes(), c.KeyType) {
			t.Fatalf("ParseConfig accepted key_type %q, which pki.GenerateKey does not know", c.KeyType)
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal(parsed config) = %v", err)
		}
		again, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("ParseConfig(Marshal(c)) = %v\n%s", err, out)
		}
		if diff := cmp.Diff(c, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("config does not round-trip through Marshal (-parsed +again):\n%s", diff)
		}
	})
}

func idxTime(s string) time.Time {
	t, err := time.Parse("20060102150405Z", s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestParseIndexLineEasyRSA reads testdata/easyrsa-index.txt, written by
// easy-rsa 3.1.0 (`revoke NAME REASON`) and `openssl ca -revoke` with
// -crl_hold, -crl_compromise and -crl_CA_compromise.
func TestParseIndexLineEasyRSA(t *testing.T) {
	entries, err := readIndex(filepath.Join("testdata", "easyrsa-index.txt"))
	if err != nil {
		t.Fatalf("readIndex(testdata/easyrsa-index.txt) = %v", err)
	}
	want := []indexEntry{
		{status: 'R', serial: "9b6ebd693583b517e472ab45d7b1f690", revokedAt: idxTime("20261123011017Z"), reason: 2, dn: "/CN=a"},
		{status: 'R', serial: "cabf1c26555b15bbfd880eef4760febe", revokedAt: idxTime("20261123011017Z"), reason: 1, dn: "/CN=b"},
		{status: 'R', serial: "2a03cf6d031e8e5cb9b65fb18bd6fcc3", revokedAt: idxTime("20261123011018Z"), reason: 6, dn: "/CN=c"},
		{status: 'R', serial: "63456e5ceb0cc1a6cbd06f753db4634d", revokedAt: idxTime("20261123011018Z"), reason: 0, dn: "/CN=d"},
		{status: 'V', serial: "e9f1d0791a9e51161a3b469211d7b916", dn: "/CN=e"},
		{status: 'R', serial: "a5400970301772302e2c6b21808e34cf", revokedAt: idxTime("20261123011023Z"), reason: 6, dn: "/CN=f"},
		{status: 'R', serial: "1b61735f696ec85796be45dbc5075c45", revokedAt: idxTime("20261123011023Z"), reason: 1, dn: "/CN=g"},
		{status: 'R', serial: "2d5814a98c317159f8c45f9c1fd17b4c", revokedAt: idxTime("20261123011023Z"), reason: 2, dn: "/CN=h"},
	}
	if diff := cmp.Diff(want, entries, cmp.AllowUnexported(indexEntry{})); diff != "" {
		t.Errorf("readIndex(testdata/easyrsa-index.txt) (-want +got):\n%s", diff)
	}
}

func TestParseIndexLine(t *testing.T) {
	line := func(fields ...string) string { return strings.Join(fields, "\t") }
	tests := []struct {
		name    string
		in      string
		want    indexEntry
		wantErr bool
	}{
		{"valid", line("V", "290225011017Z", "", "E9F1D0791A9E51161A3B469211D7B916", "unknown", "/CN=e"),
			indexEntry{status: 'V', serial: "e9f1d0791a9e51161a3b469211d7b916", dn: "/CN=e"}, false},
		{"expired", line("E", "200101000000Z", "", "01", "unknown", "/CN=old"),
			indexEntry{status: 'E', serial: "1", dn: "/CN=old"}, false},
		{"odd-length serial", line("V", "290225011017Z", "", "ABC", "unknown", "/CN=x"),
			indexEntry{status: 'V', serial: "abc", dn: "/CN=x"}, false},
		{"revoked, no reason", line("R", "290225011017Z", "261123011017Z", "0A", "unknown", "/CN=r"),
			indexEntry{status: 'R', serial: "a", revokedAt: idxTime("20261123011017Z"), dn: "/CN=r"}, false},
		{"revoked, 4-digit year", line("R", "20500225011017Z", "20501123011017Z,superseded", "0A", "unknown", "/CN=r"),
			indexEntry{status: 'R', serial: "a", revokedAt: idxTime("20501123011017Z"), reason: 4, dn: "/CN=r"}, false},
		{"reason, openssl's case", line("R", "290225011017Z", "261123011017Z,CACompromise", "0A", "unknown", "/CN=r"),
			indexEntry{status: 'R', serial: "a", revokedAt: idxTime("20261123011017Z"), reason: 2, dn: "/CN=r"}, false},
		{"reason, any case", line("R", "290225011017Z", "261123011017Z,KEYCOMPROMISE", "0A", "unknown", "/CN=r"),
			indexEntry{status: 'R', serial: "a", revokedAt: idxTime("20261123011017Z"), reason: 1, dn: "/CN=r"}, false},
		{"hold instruction", line("R", "290225011017Z", "261123011017Z,holdInstruction,holdInstructionReject", "0A", "unknown", "/CN=r"),
			indexEntry{status: 'R', serial: "a", revokedAt: idxTime("20261123011017Z"), reason: 6, dn: "/CN=r"}, false},
		{"key compromise time", line("R", "290225011017Z", "261123011017Z,keyTime,20261101000000Z", "0A", "unknown", "/CN=r"),
			indexEntry{status: 'R', serial: "a", revokedAt: idxTime("20261123011017Z"), reason: 1, dn: "/CN=r"}, false},
		{"DN with spaces", line("V", "290225011017Z", "", "01", "unknown", "/CN=a b/O=x"),
			indexEntry{status: 'V', serial: "1", dn: "/CN=a b/O=x"}, false},
		{"valid ignores the revocation field", line("V", "290225011017Z", "garbage", "01", "unknown", "/CN=v"),
			indexEntry{status: 'V', serial: "1", dn: "/CN=v"}, false},

		{"empty", "", indexEntry{}, true},
		{"five fields", line("V", "290225011017Z", "", "01", "unknown"), indexEntry{}, true},
		{"seven fields", line("V", "290225011017Z", "", "01", "unknown", "/CN=x", "extra"), indexEntry{}, true},
		{"spaces, not tabs", "V 290225011017Z  01 unknown /CN=x", indexEntry{}, true},
		{"bad status", line("X", "290225011017Z", "", "01", "unknown", "/CN=x"), indexEntry{}, true},
		{"two-letter status", line("VR", "290225011017Z", "", "01", "unknown", "/CN=x"), indexEntry{}, true},
		{"empty status", line("", "290225011017Z", "", "01", "unknown", "/CN=x"), indexEntry{}, true},
		{"bad serial", line("V", "290225011017Z", "", "zz", "unknown", "/CN=x"), indexEntry{}, true},
		{"zero serial", line("V", "290225011017Z", "", "00", "unknown", "/CN=x"), indexEntry{}, true},
		{"empty serial", line("V", "290225011017Z", "", "", "unknown", "/CN=x"), indexEntry{}, true},
		{"revoked, no time", line("R", "290225011017Z", "", "01", "unknown", "/CN=x"), indexEntry{}, true},
		{"revoked, bad time", line("R", "290225011017Z", "yesterday", "01", "unknown", "/CN=x"), indexEntry{}, true},
		{"revoked, unknown reason", line("R", "290225011017Z", "261123011017Z,bogus", "01", "unknown", "/CN=x"), indexEntry{}, true},
		{"revoked, empty reason", line("R", "290225011017Z", "261123011017Z,", "01", "unknown", "/CN=x"),
			indexEntry{status: 'R', serial: "1", revokedAt: idxTime("20261123011017Z"), dn: "/CN=x"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseIndexLine(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Errorf("parseIndexLine(%q) = %+v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseIndexLine(%q) = %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(indexEntry{})); diff != "" {
				t.Errorf("parseIndexLine(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

// formatIndexLine writes e as openssl would, for the round-trip check.
func formatIndexLine(e indexEntry) string {
	rev := ""
	if e.status == 'R' {
		rev = e.revokedAt.UTC().Format("20060102150405Z")
		if y := e.revokedAt.Year(); y >= 1969 && y < 2069 { // Go's "06" window
			rev = e.revokedAt.UTC().Format("060102150405Z")
		}
		if e.reason != 0 {
			rev += "," + ReasonName(e.reason)
		}
	}
	return strings.Join([]string{string(e.status), "290225011017Z", rev, e.serial, "unknown", e.dn}, "\t")
}

func FuzzParseIndexLine(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("testdata", "easyrsa-index.txt"))
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f.Add(l)
	}
	for _, s := range []string{
		"", "V\t\t\t01\tunknown\t/CN=x", "R\t\t20501123011017Z,superseded\t0A\tunknown\t/CN=r",
		"R\t\t261123011017Z,\t0A\tunknown\t/CN=r", "E\t\t\t0x1F\tunknown\t", "R\t\t261123011017Z,certificateHold,x,y\t1\t\t",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := parseIndexLine(s)
		if err != nil {
			return
		}
		if !strings.ContainsRune("VRE", rune(e.status)) {
			t.Fatalf("parseIndexLine(%q) status %q", s, e.status)
		}
		n, err := pki.ParseSerial(e.serial)
		if err != nil || pki.SerialString(n) != e.serial {
			t.Fatalf("parseIndexLine(%q) serial %q is not canonical: %v", s, e.serial, err)
		}
		if e.status == 'R' {
			if e.revokedAt.IsZero() {
				t.Fatalf("parseIndexLine(%q): revoked without a time", s)
			}
			if ReasonName(e.reason) == fmt.Sprintf("reason(%d)", e.reason) {
				t.Fatalf("parseIndexLine(%q): reason %d has no name", s, e.reason)
			}
		} else if !e.revokedAt.IsZero() || e.reason != 0 {
			t.Fatalf("parseIndexLine(%q): status %c with revocation data", s, e.status)
		}
		if strings.Contains(e.dn, "\t") {
			return // cannot be written back as one field
		}
		again, err := parseIndexLine(formatIndexLine(e))
		if err != nil {
			t.Fatalf("parseIndexLine(format(%+v)) = %v", e, err)
		}
		if diff := cmp.Diff(e, again, cmp.AllowUnexported(indexEntry{})); diff != "" {
			t.Fatalf("index entry does not round-trip (-first +again):\n%s", diff)
		}
	})
}

// FuzzOCSPRequest feeds arbitrary bytes to Responder.Respond, the parser
// of what any client on the network sends: it never panics, refuses with
// a malformed or unauthorized error only, and whatever it answers parses
// against the issuer and is about the serial asked. Seeds: openssl's
// requests (SHA-1 with a nonce, SHA-256 without, two CertIDs) from
// testdata, and requests about this CA's certificates.
func FuzzOCSPRequest(f *testing.F) {
	fx := newCA(f, nil)
	good, revoked := fx.issueLeaf(f, "good"), fx.issueLeaf(f, "revoked")
	if _, err := fx.a.Revoke(context.Background(), "revoked", 1); err != nil {
		f.Fatal(err)
	}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		for _, c := range []*x509.Certificate{good, revoked, {SerialNumber: big.NewInt(7)}} {
			f.Add(ocspRequest(f, c, fx.a.Issuer(), h))
		}
	}
	r := fx.responder(f, ResponderOptions{CacheSize: 256})
	f.Fuzz(func(t *testing.T, data []byte) {
		resp, err := r.Respond(context.Background(), data)
		if err != nil {
			if !errors.Is(err, ErrOCSPMalformed) && !errors.Is(err, ErrOCSPUnauthorized) {
				t.Fatalf("Respond(%x) = %v, want a malformed or unauthorized error", data, err)
			}
			var re ocsp.ResponseError
			if _, perr := ocsp.ParseResponse(OCSPErrorResponse(err), nil); !errors.As(perr, &re) {
				t.Fatalf("OCSPErrorResponse(%v) parses as %v, want an OCSP error status", err, perr)
			}
			return
		}
		parsed, err := ocsp.ParseResponse(resp, fx.a.Issuer())
		if err != nil {
			t.Fatalf("answer to %x does not parse: %v", data, err)
		}
		req, err := ocsp.ParseRequest(data)
		if err != nil {
			t.Fatalf("Respond answered a request ocsp.ParseRequest refuses: %v", err)
		}
		if parsed.SerialNumber.Cmp(req.SerialNumber) != 0 || parsed.IssuerHash != req.HashAlgorithm {
			t.Fatalf("answer about %x (%v), asked about %x (%v)", parsed.SerialNumber, parsed.IssuerHash, req.SerialNumber, req.HashAlgorithm)
		}
	})
}
