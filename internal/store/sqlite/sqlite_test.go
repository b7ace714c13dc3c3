package sqlite_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-dev/portcullis/internal/store"
	"github.com/portcullis-dev/portcullis/internal/store/sqlite"
	"github.com/portcullis-dev/portcullis/internal/store/storetest"
)

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "ca.db"))
	})
}

func newCert(t testing.TB, name string) *store.Cert {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	return &store.Cert{
		Serial:    n.Text(16),
		Name:      name,
		Profile:   "server",
		Issuer:    "a1a1",
		Subject:   "CN=" + name,
		NotBefore: now.Add(-time.Hour),
		NotAfter:  now.Add(90 * 24 * time.Hour),
		DER:       bytes.Repeat([]byte{0x30}, 800),
	}
}

// TestNanosecondsUTC pins what the package doc promises beyond storetest:
// times come back to the nanosecond, in UTC.
func TestNanosecondsUTC(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "ca.db"))
	defer s.Close()
	zone := time.FixedZone("UTC-7", -7*3600)
	c := newCert(t, "web")
	c.NotBefore = time.Date(2030, 1, 2, 3, 4, 5, 123456789, zone)
	c.NotAfter = time.Date(2262, 4, 11, 0, 0, 0, 1, time.UTC)
	c.CreatedAt = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond)
	if err := s.CreateCert(t.Context(), c); err != nil {
		t.Fatalf("CreateCert() = %v", err)
	}
	at := time.Date(2031, 5, 6, 7, 8, 9, 987654321, zone)
	if _, err := s.Revoke(t.Context(), c.Serial, at, 1); err != nil {
		t.Fatalf("Revoke() = %v", err)
	}
	got, err := s.Cert(t.Context(), c.Serial)
	if err != nil {
		t.Fatalf("Cert() = %v", err)
	}
	for _, tt := range []struct {
		field     string
		got, want time.Time
	}{
		{"NotBefore", got.NotBefore, c.NotBefore},
		{"NotAfter", got.NotAfter, c.NotAfter},
		{"CreatedAt", got.CreatedAt, c.CreatedAt},
		{"RevokedAt", got.RevokedAt, at},
	} {
		if !tt.got.Equal(tt.want) || tt.got.Location() != time.UTC {
			t.Errorf("%s = %v, want %v in UTC", tt.field, tt.got, tt.want.UTC())
		}
	}
}

// TestTimeOutOfRange checks that a time an int64 of nanoseconds cannot hold
// is refused, not wrapped around: RFC 5280 §4.1.2.5 allows a NotAfter of
// 9999-12-31 for "no well-defined expiration date".
func TestTimeOutOfRange(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "ca.db"))
	defer s.Close()
	tests := []struct {
		name string
		edit func(c *store.Cert)
	}{
		{"not after 9999", func(c *store.Cert) { c.NotAfter = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC) }},
		{"not before 1600", func(c *store.Cert) { c.NotBefore = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"zero not after", func(c *store.Cert) { c.NotAfter = time.Time{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCert(t, "web")
			tt.edit(c)
			err := s.CreateCert(t.Context(), c)
			if err == nil || !strings.Contains(err.Error(), "outside the range") {
				t.Errorf("CreateCert(%s) = %v, want an out of range error", tt.name, err)
			}
			if _, err := s.Cert(t.Context(), c.Serial); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Cert(refused) = %v, want %v", err, store.ErrNotFound)
			}
		})
	}
}

func TestOpenNotADatabase(t *testing.T) {
	tests := []struct {
		name    string
		content []byte
		wantErr string
	}{
		{"garbage", bytes.Repeat([]byte("not a database\n"), 300), "file is not a database"},
		{"short text", []byte("hello\n"), "file is not a database"},
		{"header only", append([]byte("SQLite format 3\x00"), bytes.Repeat([]byte{0xff}, 200)...), "file is not a database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "ca.db")
			if err := os.WriteFile(path, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := sqlite.Open(t.Context(), path)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%s) = nil error, want %q", tt.name, tt.wantErr)
			}
			want := fmt.Sprintf("opening store %q: %s", path, tt.wantErr)
			if err.Error() != want {
				t.Errorf("Open(%s) = %q, want %q", tt.name, err, want)
			}
			got, rerr := os.ReadFile(path)
			if rerr != nil || !bytes.Equal(got, tt.content) {
				t.Errorf("after Open(%s), file changed (err %v)", tt.name, rerr)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("after Open(%s), directory holds %d files, want only ca.db", tt.name, len(entries))
			}
		})
	}
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ca.db")
	s := open(t, path)
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("new store mode = %v, want 0600", perm)
	}
}

func TestOpenPathNeedsEscaping(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odd ?#%name", "ca.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	s := open(t, path)
	defer s.Close()
	if err := s.CreateCert(t.Context(), newCert(t, "web")); err != nil {
		t.Fatalf("CreateCert() = %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("store not at %q: %v", path, err)
	}
}

func TestCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ca.db")
	s := open(t, path)
	for i := range 200 {
		if err := s.CreateCert(t.Context(), newCert(t, fmt.Sprint("c", i))); err != nil {
			t.Fatalf("CreateCert() = %v", err)
		}
	}
	if err := s.Check(t.Context()); err != nil {
		t.Errorf("Check(healthy store) = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Smash the pages after the first (schema) page: Open still works, since
	// it does not read them, and Check notices.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 4096; i < len(b); i += 4096 {
		copy(b[i:], bytes.Repeat([]byte{0xa5}, 64))
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	if err := s.Check(t.Context()); err == nil {
		t.Errorf("Check(corrupt store) = nil, want an error")
	}
}

// Environment of a TestMultiProcess child.
const (
	childDBEnv = "PORTCULLIS_SQLITE_TEST_DB"
	childIDEnv = "PORTCULLIS_SQLITE_TEST_ID"
)

const (
	procs        = 4
	certsPerProc = 50
)

// TestMultiProcess runs several copies of the test binary against one new
// database file at once, as two `portcullis ca issue` runs would: they race
// to create the schema, each records certsPerProc certificates and takes as
// many CRL numbers, and all try to claim one shared name.
func TestMultiProcess(t *testing.T) {
	if path := os.Getenv(childDBEnv); path != "" {
		multiProcessChild(t, path, os.Getenv(childIDEnv))
		return
	}
	path := filepath.Join(t.TempDir(), "ca.db")
	outs := make([]bytes.Buffer, procs)
	errs := make([]error, procs)
	var wg sync.WaitGroup
	for i := range procs {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestMultiProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), childDBEnv+"="+path, childIDEnv+"="+strconv.Itoa(i))
		cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
		wg.Go(func() { errs[i] = cmd.Run() })
	}
	wg.Wait()

	var crls []int64
	sharedWins := 0
	for i := range procs {
		if errs[i] != nil {
			t.Fatalf("child %d: %v\n%s", i, errs[i], outs[i].String())
		}
		for line := range strings.Lines(outs[i].String()) {
			switch f := strings.Fields(line); {
			case len(f) == 2 && f[0] == "crl":
				n, err := strconv.ParseInt(f[1], 10, 64)
				if err != nil {
					t.Fatalf("child %d: bad line %q", i, line)
				}
				crls = append(crls, n)
			case len(f) == 2 && f[0] == "shared" && f[1] == "won":
				sharedWins++
			}
		}
	}

	slices.Sort(crls)
	want := make([]int64, procs*certsPerProc)
	for i := range want {
		want[i] = int64(i + 1)
	}
	if diff := cmp.Diff(want, crls); diff != "" {
		t.Errorf("CRL numbers are not 1..%d exactly once (-want +got):\n%s", len(want), diff)
	}
	if sharedWins != 1 {
		t.Errorf("%d processes recorded the shared name, want 1", sharedWins)
	}

	s := open(t, path)
	defer s.Close()
	all, err := s.List(t.Context(), store.Filter{})
	if err != nil {
		t.Fatalf("List() = %v", err)
	}
	if got, want := len(all), procs*certsPerProc+1; got != want {
		t.Errorf("List() = %d records, want %d", got, want)
	}
}

// multiProcessChild is the body of one TestMultiProcess child. It reports on
// stdout, one "crl N" line per CRL number and "shared won" or "shared taken".
func multiProcessChild(t *testing.T, path, id string) {
	s := open(t, path)
	defer s.Close()
	ctx := t.Context()
	shared := newCert(t, "shared")
	for i := range certsPerProc {
		if i == certsPerProc/2 {
			switch err := s.CreateCert(ctx, shared); {
			case err == nil:
				fmt.Println("shared won")
			case errors.Is(err, store.ErrNameTaken):
				fmt.Println("shared taken")
			default:
				t.Fatalf("CreateCert(shared) = %v", err)
			}
		}
		c := newCert(t, fmt.Sprintf("p%s-%d", id, i))
		if err := s.CreateCert(ctx, c); err != nil {
			t.Fatalf("CreateCert(%s) = %v", c.Name, err)
		}
		n, err := s.NextCRLNumber(ctx, "a1a1")
		if err != nil {
			t.Fatalf("NextCRLNumber() = %v", err)
		}
		fmt.Println("crl", n)
	}
}

func BenchmarkCreateCert(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "ca.db"))
	defer s.Close()
	i := 0
	for b.Loop() {
		c := newCert(b, strconv.Itoa(i))
		i++
		if err := s.CreateCert(b.Context(), c); err != nil {
			b.Fatalf("CreateCert() = %v", err)
		}
	}
}
