package obs

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestAuditLogConcurrent: lines from many writers all land, whole, each
// as valid JSON, however the group commit batches them.
func TestAuditLogConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	a, err := OpenAuditLog(path)
	if err != nil {
		t.Fatal(err)
	}
	log := a.Logger()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				log.Info("test.event", "writer", w, "i", i)
			}
		}()
	}
	wg.Wait()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[[2]int]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m struct {
			Event  string `json:"event"`
			Writer int    `json:"writer"`
			I      int    `json:"i"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m.Event != "test.event" {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		seen[[2]int{m.Writer, m.I}] = true
	}
	if len(seen) != 16*50 {
		t.Errorf("%d distinct lines, want %d", len(seen), 16*50)
	}
}

func TestAuditLogWriteError(t *testing.T) {
	a, err := OpenAuditLog(filepath.Join(t.TempDir(), "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if _, err := a.Write([]byte("x\n")); err == nil {
		t.Error("Write after Close succeeded")
	}
}
