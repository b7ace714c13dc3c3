package tunnel

import (
	"testing"
	"time"
)

// TestTicketKeys: a period's keys are the previous period's shifted by
// one (tickets stay usable for ticketKeysKept periods), services and
// processes get different keys, and the same service gets the same keys
// again (what makes tickets survive a reload).
func TestTicketKeys(t *testing.T) {
	k := newTicketKeys()
	now := time.Now()
	a := k.keys("a", now)
	if len(a) != ticketKeysKept {
		t.Fatalf("%d keys, want %d", len(a), ticketKeysKept)
	}
	if again := k.keys("a", now); again[0] != a[0] {
		t.Error("the same service got other keys in the same period")
	}
	next := k.keys("a", now.Add(ticketKeyPeriod))
	if next[0] == a[0] || next[1] != a[0] || next[ticketKeysKept-1] != a[ticketKeysKept-2] {
		t.Error("the next period's keys are not the current ones shifted by one")
	}
	if b := k.keys("b", now); b[0] == a[0] {
		t.Error("two services share a ticket key")
	}
	if other := newTicketKeys().keys("a", now); other[0] == a[0] {
		t.Error("two processes share a ticket key")
	}
	seen := map[[32]byte]bool{}
	for _, key := range a {
		if seen[key] {
			t.Fatal("a key repeats within one set")
		}
		seen[key] = true
	}
}
