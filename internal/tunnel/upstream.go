package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Failover policies for a service with several targets.
const (
	FailoverPriority   = "priority"    // always the first healthy target
	FailoverRoundRobin = "round-robin" // rotate over the healthy targets
)

// Passive health: a target that fails to connect is skipped for a backoff
// that doubles with each consecutive failure, and tried again after it.
const (
	backoffMin = time.Second
	backoffMax = 30 * time.Second
)

// Addr is a parsed listen or target address: TCP host:port or unix:PATH.
type Addr struct {
	Network string // "tcp" or "unix"
	Address string
}

func (a Addr) String() string {
	if a.Network == "unix" {
		return "unix:" + a.Address
	}
	return a.Address
}

// ParseAddr reads "host:port" or "unix:/path".
func ParseAddr(s string) (Addr, error) {
	if p, ok := strings.CutPrefix(s, "unix:"); ok {
		if p == "" {
			return Addr{}, fmt.Errorf("address %q: empty socket path", s)
		}
		return Addr{Network: "unix", Address: p}, nil
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return Addr{}, fmt.Errorf("address %q: want host:port or unix:/path", s)
	}
	if port == "" {
		return Addr{}, fmt.Errorf("address %q: missing port", s)
	}
	return Addr{Network: "tcp", Address: s}, nil
}

// Loopback reports whether the address cannot be reached from another
// host: a UNIX socket, localhost, or a loopback IP. Plaintext sides must be
// such addresses unless the operator says otherwise (as ghostunnel).
func (a Addr) Loopback() bool {
	if a.Network == "unix" {
		return true
	}
	// ParseAddr accepted a.Address as host:port, so this cannot fail.
	host, _, _ := net.SplitHostPort(a.Address)
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// target is one backend with its passive health state.
type target struct {
	addr      Addr
	mu        sync.Mutex
	failures  int
	downUntil time.Time
	lastErr   error
}

func (t *target) healthy(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !now.Before(t.downUntil)
}

func (t *target) record(err error, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil {
		t.failures, t.downUntil, t.lastErr = 0, time.Time{}, nil
		return
	}
	t.failures++
	d := backoffMin << min(t.failures-1, 5)
	t.downUntil, t.lastErr = now.Add(min(d, backoffMax)), err
}

// TargetStatus is one target in /status.
type TargetStatus struct {
	Address   string    `json:"address"`
	Healthy   bool      `json:"healthy"`
	Failures  int       `json:"consecutive_failures"`
	DownUntil time.Time `json:"down_until,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

func (t *target) status(now time.Time) TargetStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := TargetStatus{Address: t.addr.String(), Healthy: !now.Before(t.downUntil), Failures: t.failures}
	if !s.Healthy {
		s.DownUntil = t.downUntil
	}
	if t.lastErr != nil {
		s.LastError = t.lastErr.Error()
	}
	return s
}

// upstream is the target set of a service.
type upstream struct {
	targets    []*target
	roundRobin bool // else priority: the first healthy target
	next       atomic.Uint64
}

func newUpstream(addrs []Addr, roundRobin bool) *upstream {
	u := &upstream{roundRobin: roundRobin}
	for _, a := range addrs {
		u.targets = append(u.targets, &target{addr: a})
	}
	return u
}

// order returns the targets to try, in order: healthy ones first by the
// failover policy, then the ones in backoff (better a retry than a refusal
// when every target looks down).
func (u *upstream) order(now time.Time) []*target {
	n := len(u.targets)
	start := 0
	if u.roundRobin && n > 1 {
		start = int(u.next.Add(1)-1) % n
	}
	out := make([]*target, 0, n)
	var down []*target
	for i := range n {
		t := u.targets[(start+i)%n]
		if t.healthy(now) {
			out = append(out, t)
		} else {
			down = append(down, t)
		}
	}
	return append(out, down...)
}

// ErrNoTarget: every target of the service refused or timed out.
var ErrNoTarget = errors.New("no target reachable")

// dial connects to the first target that answers, each attempt bounded by
// timeout, recording passive health as it goes.
func (u *upstream) dial(ctx context.Context, timeout time.Duration, dial func(ctx context.Context, a Addr) (net.Conn, error)) (net.Conn, *target, error) {
	var errs []error
	for _, t := range u.order(time.Now()) {
		dctx, cancel := context.WithTimeout(ctx, timeout)
		c, err := dial(dctx, t.addr)
		cancel()
		t.record(err, time.Now())
		if err == nil {
			return c, t, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, nil, fmt.Errorf("%w: %w", ErrNoTarget, errors.Join(errs...))
}

func (u *upstream) status() []TargetStatus {
	now := time.Now()
	out := make([]TargetStatus, len(u.targets))
	for i, t := range u.targets {
		out[i] = t.status(now)
	}
	return out
}

// anyHealthy reports whether some target is not in backoff.
func (u *upstream) anyHealthy() bool {
	now := time.Now()
	for _, t := range u.targets {
		if t.healthy(now) {
			return true
		}
	}
	return false
}

// probe connects to every target once (TCP or UNIX connect, then close)
// and records the result, so readiness does not wait for a client to fail.
// Only plaintext targets are probed: a bare connect to an mTLS server would
// be logged there as a failed handshake.
func (u *upstream) probe(ctx context.Context, timeout time.Duration) {
	var wg sync.WaitGroup
	for _, t := range u.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			c, err := plainDialer.DialContext(dctx, t.addr.Network, t.addr.Address)
			if err == nil {
				c.Close()
			}
			t.record(err, time.Now())
		}()
	}
	wg.Wait()
}
