package e2e

import (
	"bytes"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// badCase is one refused command. Every case checks the CLI's failure
// contract: the exit code, exactly one "portcullis: " line on stderr that
// says what is wrong, and a PKI left exactly as it was.
type badCase struct {
	name string
	// setup prepares (damages) the test's copy of the CA before the
	// snapshot.
	setup func(t *testing.T, ca *testCA)
	// argv is the full portcullis command line; most use ca.args.
	argv func(t *testing.T, ca *testCA) []string
	code int
	// want are substrings of the error line (case-sensitive).
	want []string
	// keepDB adds portcullis.db to the snapshot: its bytes must not change.
	keepDB bool
	// after runs extra checks once the command failed.
	after func(t *testing.T, ca *testCA)
}

// sign is the argv of `ca sign` with a CSR file.
func sign(csr, profile string) func(*testing.T, *testCA) []string {
	return func(_ *testing.T, ca *testCA) []string {
		return ca.args("ca", "sign", "--csr", csr, "--profile", profile)
	}
}

// signBytes writes data to a CSR file and signs it as a server.
func signBytes(data func(t *testing.T) []byte) func(*testing.T, *testCA) []string {
	return func(t *testing.T, ca *testCA) []string {
		f := filepath.Join(t.TempDir(), "req.csr")
		if err := os.WriteFile(f, data(t), 0o600); err != nil {
			t.Fatal(err)
		}
		return ca.args("ca", "sign", "--csr", f, "--profile", "server")
	}
}

func argv(args ...string) func(*testing.T, *testCA) []string {
	return func(_ *testing.T, ca *testCA) []string { return ca.args(args...) }
}

// hostCSR returns the DER of the good fixture CSR, to damage.
func hostCSR(t *testing.T) []byte {
	t.Helper()
	b, _ := pem.Decode(readFile(t, filepath.Join("testdata", "host.csr")))
	if b == nil {
		t.Fatal("testdata/host.csr: no PEM block")
	}
	return b.Bytes
}

// dnsPolicy restricts the CA's DNS names to *.corp.example.com in ca.yaml.
func dnsPolicy(t *testing.T, ca *testCA) {
	editConfig(t, ca, func(cfg map[string]any) {
		np := cfg["name_policy"].(map[string]any)
		np["dns"] = map[string]any{"allow": []string{".corp.example.com"}, "deny": []string{}}
	})
}

// editConfig rewrites ca.yaml through a generic map.
func editConfig(t *testing.T, ca *testCA, edit func(map[string]any)) {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal(readFile(t, ca.path("ca.yaml")), &cfg); err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, ca.path("ca.yaml"), string(out))
}

func serialOf(t *testing.T, ca *testCA, name string) string {
	t.Helper()
	return serialHex(readCerts(t, ca.path("issued", name+".crt"))[0])
}

// badInputCA is the PKI every case starts from: web (server, active) and
// alice (client, revoked).
func badInputCA(t *testing.T) *testCA {
	t.Helper()
	ca := newCA(t)
	ca.ok(t, "ca", "issue", "server", "web", "--dns", "web.example.com")
	ca.ok(t, "ca", "issue", "client", "alice")
	ca.ok(t, "ca", "revoke", "alice", "--reason", "superseded")
	return ca
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	base := badInputCA(t)
	cases := []badCase{
		{name: "malformed PEM CSR", argv: sign(filepath.Join("testdata", "malformed.csr"), "server"), code: 1, want: []string{"malformed CSR"}},
		{name: "truncated PEM CSR", code: 1, want: []string{"malformed CSR", "truncated"},
			argv: signBytes(func(t *testing.T) []byte {
				pemData := readFile(t, filepath.Join("testdata", "host.csr"))
				return pemData[:len(pemData)/2]
			})},
		{name: "DER garbage", code: 1, want: []string{"malformed CSR"},
			argv: signBytes(func(*testing.T) []byte { return bytes.Repeat([]byte{0x30, 0x82, 0xde, 0xad, 0xbe, 0xef}, 40) })},
		{name: "empty CSR file", code: 1, want: []string{"malformed CSR"},
			argv: signBytes(func(*testing.T) []byte { return nil })},
		{name: "certificate instead of CSR", code: 1, want: []string{"malformed CSR", "CERTIFICATE"},
			argv: func(_ *testing.T, ca *testCA) []string {
				return ca.args("ca", "sign", "--csr", ca.path("ca.crt"), "--profile", "server")
			}},
		{name: "data after the CSR", code: 1, want: []string{"malformed CSR", "after"},
			argv: signBytes(func(t *testing.T) []byte {
				return append(readFile(t, filepath.Join("testdata", "host.csr")), "trailing junk\n"...)
			})},
		{name: "CSR with a bad signature", code: 1, want: []string{"signature"},
			argv: signBytes(func(t *testing.T) []byte {
				der := hostCSR(t)
				der[len(der)-5] ^= 0xff // inside the ECDSA signature's s
				return der
			})},
		{name: "CSR altered after signing", code: 1, want: []string{"signature"},
			argv: signBytes(func(t *testing.T) []byte {
				der := hostCSR(t)
				i := bytes.Index(der, []byte("host.example.com"))
				der[i] = 'g' // ghost.example.com: the signed part changed
				return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
			})},
		{name: "CSR asks for CA:TRUE", argv: sign(filepath.Join("testdata", "ca-true.csr"), "server"), code: 1, want: []string{"CA certificate"}},
		{name: "weak RSA-1024 key", argv: sign(filepath.Join("testdata", "rsa1024.csr"), "server"), code: 1, want: []string{"RSA-1024"}},
		{name: "CSR name outside policy", setup: dnsPolicy, argv: sign(filepath.Join("testdata", "evil.csr"), "server"),
			code: 1, want: []string{"policy", "evil.example.org"}},
		{name: "issued name outside policy", setup: dnsPolicy, argv: argv("ca", "issue", "server", "x", "--dns", "evil.example.org"),
			code: 1, want: []string{"policy", "evil.example.org"}},
		{name: "wrong passphrase", code: 1, want: []string{"wrong passphrase"},
			argv: func(t *testing.T, ca *testCA) []string {
				wrong := filepath.Join(t.TempDir(), "wrong")
				writeFile(t, wrong, "not-the-passphrase\n")
				return []string{"ca", "issue", "client", "zed", "--dir", ca.dir, "--passphrase-file", wrong}
			}},
		{name: "missing passphrase file", code: 1, want: []string{"passphrase file"},
			argv: func(t *testing.T, ca *testCA) []string {
				return []string{"ca", "issue", "client", "zed", "--dir", ca.dir, "--passphrase-file", filepath.Join(t.TempDir(), "nope")}
			}},
		{name: "dir without a CA", code: 1, want: []string{"no CA here", "--dir", "./portcullis-data"},
			argv: func(t *testing.T, ca *testCA) []string {
				return []string{"ca", "list", "--dir", filepath.Join(t.TempDir(), "pki"), "--passphrase-file", ca.passFile}
			}},
		{name: "dir under a regular file", code: 1, want: []string{"no CA", "--dir"},
			argv: func(_ *testing.T, ca *testCA) []string {
				return []string{"ca", "issue", "client", "zed", "--dir", filepath.Join(ca.passFile, "pki"), "--passphrase-file", ca.passFile}
			}},
		{name: "corrupt database", code: 1, want: []string{"portcullis.db", "not a database"}, keepDB: true,
			setup: func(t *testing.T, ca *testCA) {
				writeFile(t, ca.path("portcullis.db"), strings.Repeat("this is not SQLite\n", 4096))
			},
			argv: argv("ca", "issue", "client", "zed")},
		{name: "unknown profile", argv: sign(filepath.Join("testdata", "host.csr"), "bogus"), code: 2, want: []string{"profile", `"bogus"`}},
		{name: "unknown reason", argv: argv("ca", "revoke", "web", "--reason", "bogus"), code: 2, want: []string{"reason", `"bogus"`}},
		{name: "duplicate name", argv: argv("ca", "issue", "server", "web", "--dns", "web.example.com"), code: 1,
			want: []string{`"web"`, "renew", "revoke"}},
		{name: "revoke unknown serial", argv: argv("ca", "revoke", "0badc0ffee"), code: 1, want: []string{"0badc0ffee"}},
		{name: "revoke twice", code: 1, want: []string{"already revoked"},
			argv: func(t *testing.T, ca *testCA) []string { return ca.args("ca", "revoke", serialOf(t, ca, "alice")) }},
		{name: "renew a name the policy now forbids", setup: dnsPolicy, argv: argv("ca", "renew", "web"), code: 1,
			want: []string{`renewing "web": dns name "web.example.com" is not allowed by name_policy.dns.allow [.corp.example.com]`}},
		{name: "renew a revoked certificate", code: 1, want: []string{"revoked"},
			argv: func(t *testing.T, ca *testCA) []string { return ca.args("ca", "renew", serialOf(t, ca, "alice")) }},
		{name: "ca.yaml with an unknown key", code: 1, want: []string{"ca.yaml", "bogus_key"},
			setup: func(t *testing.T, ca *testCA) {
				writeFile(t, ca.path("ca.yaml"), string(readFile(t, ca.path("ca.yaml")))+"bogus_key: 1\n")
			},
			argv: argv("ca", "issue", "client", "zed")},
		{name: "ca.yaml with two bad values", code: 1, want: []string{"ca.yaml", "key_type", "lifetimes.server"},
			setup: func(t *testing.T, ca *testCA) {
				editConfig(t, ca, func(cfg map[string]any) {
					cfg["key_type"] = "dsa1024"
					cfg["lifetimes"].(map[string]any)["server"] = "500d"
				})
			},
			argv: argv("ca", "issue", "client", "zed")},
		{name: "init over an existing CA", argv: argv("ca", "init"), code: 1, want: []string{"already exists"}},
		{name: "server without names", argv: argv("ca", "issue", "server", "nonames"), code: 2, want: []string{"--dns", "--ip"}},
		{name: "name with a path", argv: argv("ca", "issue", "client", "../../evil"), code: 1, want: []string{"../../evil"},
			after: func(t *testing.T, ca *testCA) {
				for _, p := range []string{filepath.Join(ca.dir, "..", "evil.crt"), filepath.Join(ca.dir, "..", "evil.key")} {
					if _, err := os.Stat(p); err == nil {
						t.Errorf("%s was written outside the CA directory", p)
					}
				}
			}},
		{name: "bad DNS name", argv: argv("ca", "issue", "server", "x", "--dns", "bad_name!"), code: 2, want: []string{"bad_name!"}},
		{name: "bad lifetime", argv: argv("ca", "issue", "client", "zed", "--lifetime", "forever"), code: 2, want: []string{"--lifetime", "forever"}},
		{name: "unknown flag", argv: argv("ca", "issue", "client", "zed", "--bogus"), code: 2, want: []string{"--bogus"}},
		{name: "PKCS#12 without a password", argv: argv("ca", "export", "web", "--p12"), code: 1, want: []string{"password"}},
		{name: "export a revoked certificate", argv: argv("ca", "export", "alice"), code: 1,
			want: []string{`certificate "alice" is revoked (superseded)`, "ca show"}},
		{name: "PKCS#12 of a revoked certificate", code: 1, want: []string{`certificate "alice" is revoked (superseded)`},
			argv: func(t *testing.T, ca *testCA) []string {
				pw := filepath.Join(t.TempDir(), "p12.pass")
				writeFile(t, pw, "p12-password\n")
				return ca.args("ca", "export", "alice", "--p12", "--password-file", pw)
			}},
		{name: "show unknown", argv: argv("ca", "show", "nosuch"), code: 1, want: []string{`"nosuch"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ca := cloneCA(t, base)
			if tc.setup != nil {
				tc.setup(t, ca)
			}
			before := snapshot(t, ca, tc.keepDB)
			args := tc.argv(t, ca)
			r := execIn(t, "", nil, nil, bin, args...)
			if r.code == 0 || (tc.code != 0 && r.code != tc.code) || r.code > 2 {
				t.Errorf("portcullis %s: exit %d, want %d (1 fails, 2 usage)\n%s", strings.Join(args, " "), r.code, tc.code, r)
			}
			line := oneErrorLine(t, r)
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("error %q does not mention %q", line, w)
				}
			}
			if strings.Contains(r.stderr+r.stdout, passphrase) {
				t.Errorf("the output shows the passphrase")
			}
			if diff := cmp.Diff(before, snapshot(t, ca, tc.keepDB)); diff != "" {
				t.Errorf("the PKI changed (-before +after):\n%s", diff)
			}
			if tc.after != nil {
				tc.after(t, ca)
			}
		})
	}
}

// snapshot is what a refused command must not change: every file of the CA
// directory but the audit log and (unless keepDB) the SQLite files, and
// what `ca list --json` says.
func snapshot(t *testing.T, ca *testCA, keepDB bool) string {
	t.Helper()
	files := hashTree(t, ca.dir, func(rel string) bool {
		switch {
		case rel == "audit.log":
			return true
		case rel == "portcullis.db":
			return !keepDB
		}
		return strings.HasPrefix(rel, "portcullis.db-")
	})
	list := execIn(t, "", nil, nil, bin, ca.args("ca", "list", "--json")...)
	return files + "\n" + list.String()
}

// TestBadInit: a refused `ca init` leaves no CA directory behind (and an
// existing directory as it was).
func TestBadInit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// argv gets the CA directory, a good passphrase file and a
		// temporary directory.
		argv   func(t *testing.T, dir, pass, tmp string) []string
		exists bool // the CA directory exists (empty) before
		code   int
		want   []string
		// leftovers are other paths that must not exist afterwards.
		leftovers func(tmp string) []string
	}{
		{name: "parent is a regular file", code: 1, want: []string{"not a directory"},
			argv: func(_ *testing.T, _, pass, _ string) []string {
				return []string{"ca", "init", "--dir", filepath.Join(pass, "pki"), "--passphrase-file", pass}
			}},
		{name: "short passphrase", code: 1, want: []string{"8 characters"},
			argv: func(t *testing.T, dir, _, tmp string) []string {
				short := filepath.Join(tmp, "short")
				writeFile(t, short, "short\n")
				return []string{"ca", "init", "--dir", dir, "--passphrase-file", short}
			}},
		{name: "missing passphrase file", code: 1, want: []string{"passphrase file"},
			argv: func(_ *testing.T, dir, _, tmp string) []string {
				return []string{"ca", "init", "--dir", dir, "--passphrase-file", filepath.Join(tmp, "nope")}
			}},
		{name: "no passphrase and no terminal", code: 1, want: []string{"passphrase"},
			argv: func(_ *testing.T, dir, _, _ string) []string { return []string{"ca", "init", "--dir", dir} }},
		{name: "no-passphrase with passphrase-file", code: 2, want: []string{"--no-passphrase"},
			argv: func(_ *testing.T, dir, pass, _ string) []string {
				return []string{"ca", "init", "--dir", dir, "--passphrase-file", pass, "--no-passphrase"}
			}},
		{name: "unknown key type", code: 2, want: []string{"dsa"},
			argv: func(_ *testing.T, dir, pass, _ string) []string {
				return []string{"ca", "init", "--dir", dir, "--passphrase-file", pass, "--key-type", "dsa"}
			}},
		{name: "root-only with export-root", code: 1, want: []string{"--export-root"},
			argv: func(_ *testing.T, dir, pass, tmp string) []string {
				return []string{"ca", "init", "--dir", dir, "--passphrase-file", pass, "--root-only", "--export-root", filepath.Join(tmp, "root.key")}
			},
			leftovers: func(tmp string) []string { return []string{filepath.Join(tmp, "root.key")} }},
		{name: "export-root into a missing directory", code: 1, want: []string{"root.key"},
			argv: func(_ *testing.T, dir, pass, tmp string) []string {
				return []string{"ca", "init", "--dir", dir, "--passphrase-file", pass, "--export-root", filepath.Join(tmp, "nope", "root.key")}
			}},
		{name: "bad CRL URL", code: 1, want: []string{`"nope"`},
			argv: func(_ *testing.T, dir, pass, _ string) []string {
				return []string{"ca", "init", "--dir", dir, "--passphrase-file", pass, "--crl-url", "nope"}
			}},
		{name: "bad country", code: 1, want: []string{"USA"},
			argv: func(_ *testing.T, dir, pass, _ string) []string {
				return []string{"ca", "init", "--dir", dir, "--passphrase-file", pass, "--country", "USA"}
			}},
		{name: "existing empty dir is kept", exists: true, code: 1, want: []string{`"nope"`},
			argv: func(_ *testing.T, dir, pass, _ string) []string {
				return []string{"ca", "init", "--dir", dir, "--passphrase-file", pass, "--ocsp-url", "nope"}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			dir, pass := filepath.Join(tmp, "pki"), filepath.Join(tmp, "passphrase")
			writeFile(t, pass, passphrase+"\n")
			if tc.exists {
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			args := tc.argv(t, dir, pass, tmp)
			before := hashTree(t, tmp, nil)
			r := execIn(t, "", nil, nil, bin, args...)
			if r.code != tc.code {
				t.Errorf("portcullis %s: exit %d, want %d\n%s", strings.Join(args, " "), r.code, tc.code, r)
			}
			line := oneErrorLine(t, r)
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("error %q does not mention %q", line, w)
				}
			}
			if diff := cmp.Diff(before, hashTree(t, tmp, nil)); diff != "" {
				t.Errorf("refused init left files behind (-before +after):\n%s", diff)
			}
		})
	}
}

// TestIssueWriteFailureKeepsPKI: when `ca issue` cannot write the
// certificate file, it fails; the PKI must then be as it was, so the
// operator can fix the directory and run the same command again.
func TestIssueWriteFailureKeepsPKI(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	// As root chmod does not stop writes: make issued/ a regular file.
	if err := os.Remove(ca.path("issued")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, ca.path("issued"), "not a directory\n")
	before := snapshot(t, ca, false)
	r := ca.run(t, "ca", "issue", "client", "zed")
	if r.code != 1 {
		t.Errorf("ca issue into an unwritable issued/: exit %d, want 1\n%s", r.code, r)
	}
	oneErrorLine(t, r)
	if diff := cmp.Diff(before, snapshot(t, ca, false)); diff != "" {
		t.Errorf("the PKI changed (-before +after):\n%s", diff)
	}
	// Once the directory is back, the same command works.
	if err := os.Remove(ca.path("issued")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(ca.path("issued"), 0o755); err != nil {
		t.Fatal(err)
	}
	ca.ok(t, "ca", "issue", "client", "zed")
}
