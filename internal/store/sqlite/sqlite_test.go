package sqlite_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
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

// TestMicrosecondsUTC pins what the package doc promises beyond storetest:
// times come back in UTC, truncated (toward the past) to the microsecond,
// from before 1970 to RFC 5280's 9999-12-31 "no expiry", and CreateCert
// writes back the CreatedAt that Cert returns.
func TestMicrosecondsUTC(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "ca.db"))
	defer s.Close()
	zone := time.FixedZone("UTC-7", -7*3600)
	noExpiry := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	c := newCert(t, "web")
	c.NotBefore = time.Date(1950, 1, 2, 3, 4, 5, 123456789, zone)
	c.NotAfter = noExpiry
	c.CreatedAt = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Nanosecond)
	want := *c // The times as given, before CreateCert writes back.
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
		{"NotBefore", got.NotBefore, time.Date(1950, 1, 2, 10, 4, 5, 123456000, time.UTC)},
		{"NotAfter", got.NotAfter, noExpiry},
		{"CreatedAt", got.CreatedAt, time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC)},
		{"written-back CreatedAt", c.CreatedAt, got.CreatedAt},
		{"RevokedAt", got.RevokedAt, time.Date(2031, 5, 6, 14, 8, 9, 987654000, time.UTC)},
	} {
		if !tt.got.Equal(tt.want) || tt.got.Location() != time.UTC {
			t.Errorf("%s = %v, want %v in UTC", tt.field, tt.got, tt.want)
		}
	}
	if !want.CreatedAt.After(c.CreatedAt) {
		t.Errorf("written-back CreatedAt = %v, want %v truncated", c.CreatedAt, want.CreatedAt)
	}

	// The truncated NotAfter is what expiry is judged on: 9999 is not
	// expired at the end of 9999, and the certificate stays on the CRL.
	revs, err := s.Revoked(t.Context(), c.Issuer, noExpiry)
	if err != nil || len(revs) != 1 {
		t.Errorf("Revoked(floor 9999-12-31T23:59:59Z) = %v, %v; want the certificate", revs, err)
	}
}

// TestTimeOutOfRange checks that a time an int64 of microseconds cannot
// hold is refused, not wrapped around, and that a zero validity time, which
// it could hold, is refused as a caller's mistake.
func TestTimeOutOfRange(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "ca.db"))
	defer s.Close()
	tests := []struct {
		name    string
		edit    func(c *store.Cert)
		wantErr string
	}{
		{"not after year 300000", func(c *store.Cert) {
			c.NotAfter = time.Date(300_000, 1, 1, 0, 0, 0, 0, time.UTC)
		}, "not_after 300000-01-01T00:00:00Z is outside the range the store can hold"},
		{"not before year -300000", func(c *store.Cert) {
			c.NotBefore = time.Date(-300_000, 1, 1, 0, 0, 0, 0, time.UTC)
		}, "outside the range"},
		{"created at year 300000", func(c *store.Cert) {
			c.CreatedAt = time.Date(300_000, 1, 1, 0, 0, 0, 0, time.UTC)
		}, "outside the range"},
		{"revoked at year 300000", func(c *store.Cert) {
			c.Status, c.RevokedAt = store.StatusRevoked, time.Date(300_000, 1, 1, 0, 0, 0, 0, time.UTC)
		}, "outside the range"},
		{"zero not after", func(c *store.Cert) { c.NotAfter = time.Time{} }, "zero NotBefore or NotAfter"},
		{"zero not before", func(c *store.Cert) { c.NotBefore = time.Time{} }, "zero NotBefore or NotAfter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCert(t, "web")
			tt.edit(c)
			err := s.CreateCert(t.Context(), c)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("CreateCert(%s) = %v, want an error containing %q", tt.name, err, tt.wantErr)
			}
			if _, err := s.Cert(t.Context(), c.Serial); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Cert(refused) = %v, want %v", err, store.ErrNotFound)
			}
		})
	}

	t.Run("revoke at year 300000", func(t *testing.T) {
		c := newCert(t, "revoke")
		if err := s.CreateCert(t.Context(), c); err != nil {
			t.Fatalf("CreateCert() = %v", err)
		}
		_, err := s.Revoke(t.Context(), c.Serial, time.Date(300_000, 1, 1, 0, 0, 0, 0, time.UTC), 1)
		if err == nil || !strings.Contains(err.Error(), "outside the range") {
			t.Errorf("Revoke(year 300000) = %v, want an out of range error", err)
		}
	})
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

	// Smash the pages after those of an empty store (the schema, which no
	// longer fits one page, and the empty tables' roots): Open still works,
	// since it does not read them, and Check notices.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := emptyStoreSize(t); i < len(b); i += 4096 {
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

// emptyStoreSize returns the size of a freshly migrated store's file.
func emptyStoreSize(t *testing.T) int {
	t.Helper()
	path := filepath.Join(t.TempDir(), "empty.db")
	if err := open(t, path).Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Size())
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
	children := make([]*child, procs)
	for i := range children {
		children[i] = startChild(t, path, i)
	}
	// Release them together, or process start-up would spread them out
	// until they barely overlap.
	for _, c := range children {
		c.waitReady(t)
	}
	for _, c := range children {
		c.stdin.Close()
	}

	var crls []int64
	sharedWins := 0
	for i, c := range children {
		out, err := c.finish()
		if err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, out)
		}
		for line := range strings.Lines(out) {
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

// child is a running TestMultiProcess child.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	head   strings.Builder // what it printed up to "ready"
}

func startChild(t *testing.T, path string, id int) *child {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestMultiProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), childDBEnv+"="+path, childIDEnv+"="+strconv.Itoa(id))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout // The pipe StdoutPipe set: one stream to read.
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &child{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout)}
}

// waitReady reads the child's output up to its "ready" line.
func (c *child) waitReady(t *testing.T) {
	t.Helper()
	for {
		line, err := c.stdout.ReadString('\n')
		c.head.WriteString(line)
		if line == "ready\n" {
			return
		}
		if err != nil {
			out, werr := c.finish()
			t.Fatalf("child exited before ready: %v\n%s", werr, out)
		}
	}
}

// finish reads the rest of the child's output and waits for it to exit.
func (c *child) finish() (string, error) {
	rest, rerr := io.ReadAll(c.stdout)
	out := c.head.String() + string(rest)
	if err := c.cmd.Wait(); err != nil {
		return out, err
	}
	return out, rerr
}

// multiProcessChild is the body of one TestMultiProcess child. It reports on
// stdout, one "crl N" line per CRL number and "shared won" or "shared taken".
func multiProcessChild(t *testing.T, path, id string) {
	fmt.Println("ready")
	if _, err := io.ReadAll(os.Stdin); err != nil { // The parent closes it to start us.
		t.Fatal(err)
	}
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

// BenchmarkCreateCertParallel records certificates from 16 goroutines, as
// the server does under load: group commit shares each fsync among the
// writes waiting for it.
func BenchmarkCreateCertParallel(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "ca.db"))
	defer s.Close()
	var n atomic.Int64
	b.SetParallelism(8) // × GOMAXPROCS goroutines
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := newCert(b, strconv.FormatInt(n.Add(1), 10))
			if err := s.CreateCert(b.Context(), c); err != nil {
				b.Errorf("CreateCert() = %v", err)
				return
			}
		}
	})
}

// batchOf returns n certificates with serials and names counting up from
// first, cheaper to make than newCert's random serials.
func batchOf(first, n int) []*store.Cert {
	der := bytes.Repeat([]byte{0x30}, 800)
	now := time.Now()
	certs := make([]*store.Cert, n)
	for i := range certs {
		id := fmt.Sprintf("%032x", first+i)
		certs[i] = &store.Cert{
			Serial: id, Name: "d" + id, Profile: "device", Issuer: "a1a1", Subject: "CN=d" + id,
			NotBefore: now, NotAfter: now.Add(90 * 24 * time.Hour), DER: der,
		}
	}
	return certs
}

// TestCreateCertsLarge records a batch large enough to spill SQLite's page
// cache to the WAL before the commit, and checks it all landed. The 100,000
// of BenchmarkCreateCerts100k take a minute under the race detector.
func TestCreateCertsLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("records 5,000 certificates")
	}
	s := open(t, filepath.Join(t.TempDir(), "ca.db"))
	defer s.Close()
	const n = 5_000
	certs := batchOf(0, n)
	start := time.Now()
	if err := s.CreateCerts(t.Context(), certs); err != nil {
		t.Fatalf("CreateCerts(%d) = %v", n, err)
	}
	t.Logf("CreateCerts(%d) took %v", n, time.Since(start))
	all, err := s.List(t.Context(), store.Filter{Profile: "device"})
	if err != nil || len(all) != n {
		t.Fatalf("List() = %d records, %v; want %d", len(all), err, n)
	}
	for _, i := range []int{0, n / 2, n - 1} {
		if all[i].Serial != certs[i].Serial || certs[i].Version != 1 {
			t.Errorf("record %d: List() serial %s, written-back version %d; want %s, 1", i, all[i].Serial, certs[i].Version, certs[i].Serial)
		}
	}
}

// BenchmarkCreateCerts100k records batches of 100,000 certificates, as the
// import of a large PKI does.
func BenchmarkCreateCerts100k(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "ca.db"))
	defer s.Close()
	const n = 100_000
	next := 0
	for b.Loop() {
		b.StopTimer()
		certs := batchOf(next, n)
		next += n
		b.StartTimer()
		if err := s.CreateCerts(b.Context(), certs); err != nil {
			b.Fatalf("CreateCerts(%d) = %v", n, err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "certs/s")
}

func TestEnrollments(t *testing.T) {
	storetest.RunEnrollments(t, func(t *testing.T) store.Enrollments {
		s := open(t, filepath.Join(t.TempDir(), "ca.db"))
		t.Cleanup(func() { s.Close() })
		return s
	})
}
