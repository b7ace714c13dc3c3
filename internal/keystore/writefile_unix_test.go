//go:build unix

package keystore_test

import (
	"crypto"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/keystore"
)

// TestWriteFileMode: key files are 0600 whatever the umask, replace an
// existing file, and leave no temporary file behind.
func TestWriteFileMode(t *testing.T) {
	// umask is per process: this test must not run in parallel.
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "ca.key")
	// An existing world-readable file is replaced by a 0600 one.
	if err := os.WriteFile(path, []byte("old"), 0o666); err != nil {
		t.Fatal(err)
	}
	// Write twice: creating, then replacing.
	for _, key := range []crypto.Signer{ecKey(), rsaKey()} {
		if err := keystore.WriteFile(path, key, nil); err != nil {
			t.Fatalf("WriteFile: %v", err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("WriteFile with umask 0: mode %v, want 0600", fi.Mode().Perm())
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != "ca.key" {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("directory holds %q after WriteFile, want only ca.key", names)
		}
	}
	got, err := keystore.LoadFile(path, nil)
	if err != nil || !samePublic(got, rsaKey()) {
		t.Errorf("LoadFile(WriteFile(key)) = %v, want the key", err)
	}
}
