package storetest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-dev/portcullis/internal/store"
)

// RunEnrollments runs the suite of store.Enrollments, as Run does for
// store.Store. Beyond the interface's doc comments it pins that every
// "at most once" rule (a decision, a token's use, a CSR's request) holds
// under concurrent callers: exactly one of them wins.
func RunEnrollments(t *testing.T, open func(t *testing.T) store.Enrollments) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Enrollments)
	}{
		{"CreateRequest", testCreateRequest},
		{"CreateRequestDedupe", testCreateRequestDedupe},
		{"ConcurrentCreateRequestDedupe", testConcurrentCreateRequestDedupe},
		{"EnrollmentNotFound", testEnrollmentNotFound},
		{"DecideOnce", testDecideOnce},
		{"DecideVersion", testDecideVersion},
		{"ConcurrentDecide", testConcurrentDecide},
		{"Token", testToken},
		{"RedeemUnusable", testRedeemUnusable},
		{"RedeemDecidedRequestKeepsToken", testRedeemDecidedRequestKeepsToken},
		{"ConcurrentRedeem", testConcurrentRedeem},
		{"MarkIssued", testMarkIssued},
		{"ListRequests", testListRequests},
		{"ListDevices", testListDevices},
		{"TouchDevice", testTouchDevice},
		{"RevokeDevice", testRevokeDevice},
		{"ListTokensAndCounts", testListTokensAndCounts},
		{"DeviceLogs", testDeviceLogs},
		{"EnrollmentsPerDay", testEnrollmentsPerDay},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			tt.fn(t, s)
		})
	}
}

func randomCSR(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 64)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// newRequest records a pending request for a random "CSR" (the store does
// not parse it) and returns it.
func newRequest(t *testing.T, s store.Enrollments) *store.Request {
	t.Helper()
	der := randomCSR(t)
	h := sha256.Sum256(der)
	r := &store.Request{CSR: der, CSRHash: h[:], Facts: store.Facts{Hostname: "laptop-1"}, SourceAddr: "192.0.2.1"}
	if _, err := s.CreateRequest(t.Context(), r, &store.Device{Name: "laptop-1"}); err != nil {
		t.Fatalf("CreateRequest() = %v", err)
	}
	return r
}

func newToken(t *testing.T, s store.Enrollments, expires time.Time) (*store.Token, []byte) {
	t.Helper()
	h := sha256.Sum256(randomCSR(t))
	tok := &store.Token{Hash: h[:], CreatedBy: "admin", ExpiresAt: expires, BoundName: "laptop-1"}
	if err := s.CreateToken(t.Context(), tok); err != nil {
		t.Fatalf("CreateToken() = %v", err)
	}
	return tok, h[:]
}

func approval(r *store.Request, by string) store.Decision {
	return store.Decision{Request: r.ID, State: store.RequestApproved, By: by, At: now(), Comment: "ok",
		Evidence: json.RawMessage(`{"rule":"test"}`)}
}

func testCreateRequest(t *testing.T, s store.Enrollments) {
	der := randomCSR(t)
	h := sha256.Sum256(der)
	facts := store.Facts{Hostname: "laptop-1", OS: "macOS", OSVersion: "15.1", HardwareSerial: "C02XYZ",
		AgentVersion: "0.1.0", OwnerEmail: "ada@example.com"}
	r := &store.Request{CSR: der, CSRHash: h[:], Facts: facts, SourceAddr: "192.0.2.1:5555", CreatedAt: now()}
	d := &store.Device{Name: "laptop-1", HardwareSerial: "C02XYZ", OS: "macOS", OSVersion: "15.1",
		OwnerEmail: "ada@example.com", AgentVersion: "0.1.0"}
	created, err := s.CreateRequest(t.Context(), r, d)
	if err != nil || !created {
		t.Fatalf("CreateRequest() = %v, %v; want true, nil", created, err)
	}
	if r.ID == "" || r.Device != d.ID || r.State != store.RequestPending || r.Version != 1 {
		t.Errorf("CreateRequest() set ID %q, Device %q (device %q), State %q, Version %d", r.ID, r.Device, d.ID, r.State, r.Version)
	}
	got, err := s.Request(t.Context(), r.ID)
	if err != nil {
		t.Fatalf("Request(%s) = %v", r.ID, err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("Request(%s) mismatch (-created +read):\n%s", r.ID, diff)
	}
	gotDev, err := s.Device(t.Context(), d.ID)
	if err != nil {
		t.Fatalf("Device(%s) = %v", d.ID, err)
	}
	if diff := cmp.Diff(d, gotDev); diff != "" {
		t.Errorf("Device(%s) mismatch (-created +read):\n%s", d.ID, diff)
	}
	if d.State != store.DevicePending || !d.FirstSeen.Equal(r.CreatedAt) {
		t.Errorf("device state %q first seen %v, want pending at %v", d.State, d.FirstSeen, r.CreatedAt)
	}
}

func testCreateRequestDedupe(t *testing.T, s store.Enrollments) {
	first := newRequest(t, s)
	again := &store.Request{CSR: first.CSR, CSRHash: first.CSRHash, Facts: store.Facts{Hostname: "other"}}
	created, err := s.CreateRequest(t.Context(), again, &store.Device{Name: "other"})
	if err != nil || created {
		t.Fatalf("CreateRequest(same CSR) = %v, %v; want false, nil", created, err)
	}
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("CreateRequest(same CSR) did not return the first request (-first +got):\n%s", diff)
	}
}

func testConcurrentCreateRequestDedupe(t *testing.T, s store.Enrollments) {
	der := randomCSR(t)
	h := sha256.Sum256(der)
	const n = 16
	reqs := make([]*store.Request, n)
	errs := race(n, func(i int) error {
		reqs[i] = &store.Request{CSR: der, CSRHash: h[:]}
		created, err := s.CreateRequest(t.Context(), reqs[i], &store.Device{Name: "d"})
		if err == nil && !created {
			return store.ErrConflict // a loser: found the winner's request
		}
		return err
	})
	w := wantOneWinner(t, "CreateRequest(same CSR)", errs, store.ErrConflict)
	for i, r := range reqs {
		if r.ID != reqs[w].ID {
			t.Errorf("call %d got request %s, want the winner's %s", i, r.ID, reqs[w].ID)
		}
	}
}

func testEnrollmentNotFound(t *testing.T, s store.Enrollments) {
	ctx := t.Context()
	h := sha256.Sum256([]byte("nothing"))
	for name, err := range map[string]error{
		"Request":     second(s.Request(ctx, "req_none")),
		"Device":      second(s.Device(ctx, "dev_none")),
		"TokenByHash": second(s.TokenByHash(ctx, h[:])),
		"Decide":      second(s.Decide(ctx, store.Decision{Request: "req_none", State: store.RequestDenied, At: now()})),
		"RedeemToken": second(s.RedeemToken(ctx, h[:], store.Decision{Request: "req_none", State: store.RequestApproved, At: now()})),
		"RevokeToken": s.RevokeToken(ctx, "tok_none", now()),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s(unknown) = %v, want ErrNotFound", name, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func testDecideOnce(t *testing.T, s store.Enrollments) {
	r := newRequest(t, s)
	d := approval(r, "alice")
	got, err := s.Decide(t.Context(), d)
	if err != nil {
		t.Fatalf("Decide(approve) = %v", err)
	}
	if got.State != store.RequestApproved || got.DecidedBy != "alice" || !got.DecidedAt.Equal(d.At) ||
		got.Comment != "ok" || string(got.Evidence) != `{"rule":"test"}` || got.Version != 2 {
		t.Errorf("Decide(approve) = %+v", got)
	}
	deny := store.Decision{Request: r.ID, State: store.RequestDenied, By: "bob", At: now(), Comment: "no"}
	_, err = s.Decide(t.Context(), deny)
	var ad *store.AlreadyDecidedError
	if !errors.Is(err, store.ErrAlreadyDecided) || !errors.As(err, &ad) || ad.By != "alice" || ad.State != store.RequestApproved {
		t.Fatalf("second Decide(deny) = %v, want AlreadyDecidedError by alice, approved", err)
	}
	if after, _ := s.Request(t.Context(), r.ID); after.State != store.RequestApproved || after.DecidedBy != "alice" {
		t.Errorf("after the losing decision: state %q by %q, want approved by alice", after.State, after.DecidedBy)
	}
	if _, err := s.Decide(t.Context(), store.Decision{Request: r.ID, State: store.RequestIssued, At: now()}); err == nil {
		t.Error("Decide(state issued) = nil, want an error")
	}
}

func testDecideVersion(t *testing.T, s store.Enrollments) {
	r := newRequest(t, s)
	d := approval(r, "alice")
	d.Version = r.Version + 1
	if _, err := s.Decide(t.Context(), d); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Decide(stale version) = %v, want ErrConflict", err)
	}
	d.Version = r.Version
	if _, err := s.Decide(t.Context(), d); err != nil {
		t.Fatalf("Decide(current version) = %v", err)
	}
}

func testConcurrentDecide(t *testing.T, s store.Enrollments) {
	r := newRequest(t, s)
	const n = 16
	errs := race(n, func(i int) error {
		d := approval(r, fmt.Sprintf("admin-%d", i))
		if i%2 == 1 {
			d.State = store.RequestDenied
		}
		_, err := s.Decide(t.Context(), d)
		return err
	})
	w := wantOneWinner(t, "Decide", errs, store.ErrAlreadyDecided)
	got, err := s.Request(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("admin-%d", w); got.DecidedBy != want || got.Version != 2 {
		t.Errorf("request decided by %q, version %d; want %q, 2", got.DecidedBy, got.Version, want)
	}
}

func testToken(t *testing.T, s store.Enrollments) {
	tok, hash := newToken(t, s, now().Add(time.Hour))
	if tok.ID == "" || tok.CreatedAt.IsZero() {
		t.Errorf("CreateToken() set ID %q, CreatedAt %v", tok.ID, tok.CreatedAt)
	}
	got, err := s.TokenByHash(t.Context(), hash)
	if err != nil {
		t.Fatalf("TokenByHash() = %v", err)
	}
	if diff := cmp.Diff(tok, got); diff != "" {
		t.Errorf("TokenByHash() mismatch (-created +read):\n%s", diff)
	}
	r := newRequest(t, s)
	d := approval(r, "token:"+string(tok.ID))
	if _, err := s.RedeemToken(t.Context(), hash, d); err != nil {
		t.Fatalf("RedeemToken() = %v", err)
	}
	got, _ = s.TokenByHash(t.Context(), hash)
	if got.UsedBy != r.ID || !got.UsedAt.Equal(d.At) {
		t.Errorf("after RedeemToken: used by %q at %v, want %q at %v", got.UsedBy, got.UsedAt, r.ID, d.At)
	}
	if req, _ := s.Request(t.Context(), r.ID); req.State != store.RequestApproved {
		t.Errorf("after RedeemToken: request %q, want approved", req.State)
	}
	if err := s.RevokeToken(t.Context(), tok.ID, now()); err != nil {
		t.Errorf("RevokeToken(used) = %v, want nil", err)
	}
	if got, _ = s.TokenByHash(t.Context(), hash); !got.RevokedAt.IsZero() {
		t.Errorf("RevokeToken(used) changed the token: revoked at %v", got.RevokedAt)
	}
}

func testRedeemUnusable(t *testing.T, s store.Enrollments) {
	n := now()
	_, expiredHash := newToken(t, s, n)
	revoked, revokedHash := newToken(t, s, n.Add(time.Hour))
	if err := s.RevokeToken(t.Context(), revoked.ID, n); err != nil {
		t.Fatalf("RevokeToken() = %v", err)
	}
	if err := s.RevokeToken(t.Context(), revoked.ID, n); err != nil {
		t.Errorf("RevokeToken(again) = %v, want nil", err)
	}
	_, usedHash := newToken(t, s, n.Add(time.Hour))
	if _, err := s.RedeemToken(t.Context(), usedHash, approval(newRequest(t, s), "first")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		hash []byte
		want error
	}{
		{"expired at its expiry", expiredHash, store.ErrTokenExpired},
		{"revoked", revokedHash, store.ErrTokenRevoked},
		{"used", usedHash, store.ErrTokenUsed},
	}
	for _, tt := range tests {
		r := newRequest(t, s)
		d := approval(r, "token")
		d.At = n
		if _, err := s.RedeemToken(t.Context(), tt.hash, d); !errors.Is(err, tt.want) {
			t.Errorf("RedeemToken(%s) = %v, want %v", tt.name, err, tt.want)
		}
		if got, _ := s.Request(t.Context(), r.ID); got.State != store.RequestPending {
			t.Errorf("RedeemToken(%s) left the request %q, want pending", tt.name, got.State)
		}
	}
}

func testRedeemDecidedRequestKeepsToken(t *testing.T, s store.Enrollments) {
	r := newRequest(t, s)
	if _, err := s.Decide(t.Context(), store.Decision{Request: r.ID, State: store.RequestDenied, By: "bob", At: now()}); err != nil {
		t.Fatal(err)
	}
	_, hash := newToken(t, s, now().Add(time.Hour))
	if _, err := s.RedeemToken(t.Context(), hash, approval(r, "token")); !errors.Is(err, store.ErrAlreadyDecided) {
		t.Fatalf("RedeemToken(denied request) = %v, want ErrAlreadyDecided", err)
	}
	if tok, _ := s.TokenByHash(t.Context(), hash); !tok.UsedAt.IsZero() {
		t.Errorf("a failed decision used the token (used at %v)", tok.UsedAt)
	}
}

// testConcurrentRedeem replays one token for N different requests at once:
// exactly one request is approved, the others stay pending.
func testConcurrentRedeem(t *testing.T, s store.Enrollments) {
	_, hash := newToken(t, s, now().Add(time.Hour))
	const n = 16
	reqs := make([]*store.Request, n)
	for i := range reqs {
		reqs[i] = newRequest(t, s)
	}
	errs := race(n, func(i int) error {
		_, err := s.RedeemToken(t.Context(), hash, approval(reqs[i], "token"))
		return err
	})
	w := wantOneWinner(t, "RedeemToken", errs, store.ErrTokenUsed)
	for i, r := range reqs {
		got, err := s.Request(t.Context(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := store.RequestPending
		if i == w {
			want = store.RequestApproved
		}
		if got.State != want {
			t.Errorf("request %d: %q, want %q", i, got.State, want)
		}
	}
}

func testMarkIssued(t *testing.T, s store.Enrollments) {
	r := newRequest(t, s)
	if _, err := s.MarkIssued(t.Context(), r.ID, "abc", now()); !errors.Is(err, store.ErrConflict) {
		t.Errorf("MarkIssued(pending) = %v, want ErrConflict", err)
	}
	if _, err := s.MarkIssued(t.Context(), "req_none", "abc", now()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MarkIssued(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.Decide(t.Context(), approval(r, "alice")); err != nil {
		t.Fatal(err)
	}
	at := now().Add(time.Minute)
	got, err := s.MarkIssued(t.Context(), r.ID, "abc", at)
	if err != nil || got.State != store.RequestIssued || got.CertSerial != "abc" || got.Version != 3 {
		t.Fatalf("MarkIssued(approved) = %+v, %v; want issued, serial abc, version 3", got, err)
	}
	d, err := s.Device(t.Context(), r.Device)
	if err != nil || d.State != store.DeviceActive || !d.LastSeen.Equal(at) {
		t.Errorf("device after MarkIssued = %+v, %v; want active, last seen %v", d, err, at)
	}
	if _, err := s.MarkIssued(t.Context(), r.ID, "def", at); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second MarkIssued = %v, want ErrConflict", err)
	}
}
