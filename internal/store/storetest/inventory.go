package storetest

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-dev/portcullis/internal/store"
)

// requestAt records a pending request created at at for a device with the
// given facts.
func requestAt(t *testing.T, s store.Enrollments, at time.Time, d store.Device) *store.Request {
	t.Helper()
	der := randomCSR(t)
	h := sha256.Sum256(der)
	r := &store.Request{CSR: der, CSRHash: h[:], Facts: store.Facts{Hostname: d.Name}, CreatedAt: at}
	if _, err := s.CreateRequest(t.Context(), r, &d); err != nil {
		t.Fatalf("CreateRequest() = %v", err)
	}
	return r
}

func requestIDs(rs []*store.Request) []store.RequestID {
	out := []store.RequestID{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func deviceIDs(ds []*store.Device) []store.DeviceID {
	out := []store.DeviceID{}
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

func testListRequests(t *testing.T, s store.Enrollments) {
	base := now()
	var all []*store.Request
	// Two requests share a creation time: the ID breaks the tie.
	for i, off := range []time.Duration{0, time.Second, time.Second, 2 * time.Second, 3 * time.Second} {
		all = append(all, requestAt(t, s, base.Add(off), store.Device{Name: "laptop-" + string(rune('a'+i))}))
	}
	if all[1].ID > all[2].ID {
		all[1], all[2] = all[2], all[1]
	}
	if _, err := s.Decide(t.Context(), approval(all[3], "alice")); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListRequests(t.Context(), store.RequestFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(requestIDs(all), requestIDs(got)); diff != "" {
		t.Errorf("ListRequests({}) order (-want +got):\n%s", diff)
	}
	// Paging by two walks the same order without gaps or repeats.
	var paged []*store.Request
	for after := store.RequestID(""); ; {
		page, err := s.ListRequests(t.Context(), store.RequestFilter{After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 2 {
			t.Fatalf("page of %d with Limit 2", len(page))
		}
		if len(page) == 0 {
			break
		}
		paged, after = append(paged, page...), page[len(page)-1].ID
	}
	if diff := cmp.Diff(requestIDs(all), requestIDs(paged)); diff != "" {
		t.Errorf("paged ListRequests (-want +got):\n%s", diff)
	}
	pending, err := s.ListRequests(t.Context(), store.RequestFilter{State: store.RequestPending})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.RequestID{all[0].ID, all[1].ID, all[2].ID, all[4].ID}
	if diff := cmp.Diff(want, requestIDs(pending)); diff != "" {
		t.Errorf("ListRequests(pending) (-want +got):\n%s", diff)
	}
	byDevice, err := s.ListRequests(t.Context(), store.RequestFilter{Device: all[2].Device})
	if err != nil || len(byDevice) != 1 || byDevice[0].ID != all[2].ID {
		t.Errorf("ListRequests(device %s) = %v, %v", all[2].Device, requestIDs(byDevice), err)
	}
}

func testListDevices(t *testing.T, s store.Enrollments) {
	base := now()
	devs := []store.Device{
		{Name: "mac-1", OS: "macOS", OwnerEmail: "ada@example.com"},
		{Name: "win-1", OS: "Windows", OwnerEmail: "bob@example.com"},
		{Name: "mac-2", OS: "macOS", OwnerEmail: "Bob@Example.com"},
	}
	var ids []store.DeviceID
	for i, d := range devs {
		r := requestAt(t, s, base.Add(time.Duration(i)*time.Second), d)
		ids = append(ids, r.Device)
	}
	if _, err := s.TouchDevice(t.Context(), ids[2], base.Add(time.Hour), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeDevice(t.Context(), ids[1]); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		f    store.DeviceFilter
		want []store.DeviceID
	}{
		{"all", store.DeviceFilter{}, ids},
		{"os case-blind", store.DeviceFilter{OS: "MACOS"}, []store.DeviceID{ids[0], ids[2]}},
		{"owner case-blind", store.DeviceFilter{Owner: "bob@example.com"}, []store.DeviceID{ids[1], ids[2]}},
		{"state", store.DeviceFilter{State: store.DeviceRevoked}, []store.DeviceID{ids[1]}},
		{"name", store.DeviceFilter{Name: "mac-2"}, []store.DeviceID{ids[2]}},
		{"stale", store.DeviceFilter{LastSeenBefore: base.Add(time.Minute)}, []store.DeviceID{ids[0], ids[1]}},
		{"after", store.DeviceFilter{After: ids[0]}, []store.DeviceID{ids[1], ids[2]}},
		{"limit", store.DeviceFilter{Limit: 1}, []store.DeviceID{ids[0]}},
	} {
		got, err := s.ListDevices(t.Context(), tt.f)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if diff := cmp.Diff(tt.want, deviceIDs(got)); diff != "" {
			t.Errorf("ListDevices(%s) (-want +got):\n%s", tt.name, diff)
		}
	}
}

func testTouchDevice(t *testing.T, s store.Enrollments) {
	r := newRequest(t, s)
	later := now().Add(time.Hour)
	d, err := s.TouchDevice(t.Context(), r.Device, later, "1.2.3")
	if err != nil || !d.LastSeen.Equal(later) || d.AgentVersion != "1.2.3" {
		t.Fatalf("TouchDevice() = %+v, %v; want last seen %v, agent 1.2.3", d, err, later)
	}
	// An earlier check-in arriving late does not move last-seen back; an
	// empty agent version keeps the known one.
	d, err = s.TouchDevice(t.Context(), r.Device, later.Add(-time.Minute), "")
	if err != nil || !d.LastSeen.Equal(later) || d.AgentVersion != "1.2.3" {
		t.Errorf("late TouchDevice() = %+v, %v; want last seen kept at %v", d, err, later)
	}
	if _, err := s.TouchDevice(t.Context(), "dev_none", later, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TouchDevice(unknown) = %v, want ErrNotFound", err)
	}
}

func testRevokeDevice(t *testing.T, s store.Enrollments) {
	r := newRequest(t, s)
	d, err := s.RevokeDevice(t.Context(), r.Device)
	if err != nil || d.State != store.DeviceRevoked {
		t.Fatalf("RevokeDevice() = %+v, %v; want revoked", d, err)
	}
	again, err := s.RevokeDevice(t.Context(), r.Device)
	if err != nil || again.State != store.DeviceRevoked || again.Version != d.Version {
		t.Errorf("second RevokeDevice() = %+v, %v; want unchanged", again, err)
	}
	// Issuing a revoked device's approved request does not revive it.
	if _, err := s.Decide(t.Context(), approval(r, "alice")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkIssued(t.Context(), r.ID, "abc", now()); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Device(t.Context(), r.Device); err != nil || d.State != store.DeviceRevoked {
		t.Errorf("device after MarkIssued = %+v, %v; want still revoked", d, err)
	}
	if _, err := s.RevokeDevice(t.Context(), "dev_none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeDevice(unknown) = %v, want ErrNotFound", err)
	}
}

func testListTokensAndCounts(t *testing.T, s store.Enrollments) {
	a, _ := newToken(t, s, now().Add(time.Hour))
	b, _ := newToken(t, s, now().Add(time.Hour))
	toks, err := s.ListTokens(t.Context())
	if err != nil || len(toks) != 2 {
		t.Fatalf("ListTokens() = %d tokens, %v; want 2", len(toks), err)
	}
	if got := map[store.TokenID]bool{toks[0].ID: true, toks[1].ID: true}; !got[a.ID] || !got[b.ID] {
		t.Errorf("ListTokens() = %s, %s; want %s and %s", toks[0].ID, toks[1].ID, a.ID, b.ID)
	}
	r1, r2 := newRequest(t, s), newRequest(t, s)
	newRequest(t, s)
	if _, err := s.Decide(t.Context(), approval(r1, "alice")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeDevice(t.Context(), r2.Device); err != nil {
		t.Fatal(err)
	}
	reqs, err := s.CountRequests(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[store.RequestState]int{store.RequestPending: 2, store.RequestApproved: 1}, reqs); diff != "" {
		t.Errorf("CountRequests() (-want +got):\n%s", diff)
	}
	devs, err := s.CountDevices(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[store.DeviceState]int{store.DevicePending: 2, store.DeviceRevoked: 1}, devs); diff != "" {
		t.Errorf("CountDevices() (-want +got):\n%s", diff)
	}
}

func testDeviceLogs(t *testing.T, s store.Enrollments) {
	r := newRequest(t, s)
	other := newRequest(t, s)
	at := now()
	var ids []int64
	for i := range 4 {
		l := &store.DeviceLog{Device: r.Device, Name: "agent.log", ReceivedAt: at.Add(time.Duration(i) * time.Second), Data: []byte{byte('a' + i), '\n'}}
		if err := s.AddDeviceLog(t.Context(), l, 3); err != nil {
			t.Fatal(err)
		}
		if l.ID == 0 || l.Size != 2 {
			t.Errorf("AddDeviceLog() set ID %d, Size %d", l.ID, l.Size)
		}
		ids = append(ids, l.ID)
	}
	if err := s.AddDeviceLog(t.Context(), &store.DeviceLog{Device: other.Device, Name: "x", ReceivedAt: at, Data: []byte("x")}, 3); err != nil {
		t.Fatal(err)
	}
	logs, err := s.DeviceLogs(t.Context(), r.Device)
	if err != nil {
		t.Fatal(err)
	}
	// The oldest beyond 3 is gone; newest first; no data in the list.
	if len(logs) != 3 || logs[0].ID != ids[3] || logs[2].ID != ids[1] || logs[0].Data != nil || logs[0].Size != 2 {
		t.Fatalf("DeviceLogs() = %+v", logs)
	}
	got, err := s.DeviceLog(t.Context(), r.Device, ids[3])
	if err != nil || string(got.Data) != "d\n" || got.Name != "agent.log" || !got.ReceivedAt.Equal(at.Add(3*time.Second)) {
		t.Errorf("DeviceLog() = %+v, %v", got, err)
	}
	if _, err := s.DeviceLog(t.Context(), r.Device, ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeviceLog(trimmed) = %v, want ErrNotFound", err)
	}
	if _, err := s.DeviceLog(t.Context(), other.Device, ids[3]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeviceLog(another device's) = %v, want ErrNotFound", err)
	}
}

func testEnrollmentsPerDay(t *testing.T, s store.Enrollments) {
	day := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	for _, at := range []time.Time{day.Add(time.Hour), day.Add(23 * time.Hour), day.Add(49 * time.Hour), day.Add(-time.Hour)} {
		requestAt(t, s, at, store.Device{Name: "d"})
	}
	got, err := s.EnrollmentsPerDay(t.Context(), day)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.DayCount{{Day: day, Count: 2}, {Day: day.AddDate(0, 0, 2), Count: 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("EnrollmentsPerDay() (-want +got):\n%s", diff)
	}
}
