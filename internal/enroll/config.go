package enroll

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
)

// Config is the registration authority's policy. The zero Config, after
// defaults, approves nothing by itself: every request waits for a person,
// unless it carries a valid bootstrap token.
type Config struct {
	// AllowList approves, without a person, a request whose facts match one
	// of its rules. Facts are the device's own claims, so a rule is as
	// strong as the hardest of its patterns to guess; keep it narrow.
	AllowList []Rule
	// RequestTTL is how long a pending request may wait for a decision;
	// after it, Approve refuses it and the device must submit again.
	RequestTTL time.Duration
	// TokenTTL is the lifetime of a bootstrap token created without one;
	// MaxTokenTTL caps the lifetime an admin may ask for.
	TokenTTL    time.Duration
	MaxTokenTTL time.Duration
	// RenewalGrace is how long after expiry a device may still renew with
	// its old certificate (laptops asleep for weeks). Zero: not at all.
	RenewalGrace time.Duration
	// LogMaxBytes caps one uploaded device log; LogsKept is how many a
	// device keeps (the oldest go first).
	LogMaxBytes int
	LogsKept    int
}

// Rule is one allow-list entry. Each non-empty pattern (path.Match syntax,
// compared case-insensitively) must match its fact; a rule with no pattern
// is refused by Validate, since it would approve every request.
type Rule struct {
	Name           string // names the rule in the evidence and the audit log
	Hostname       string
	OS             string
	HardwareSerial string
}

// Defaults of Config, applied by WithDefaults.
const (
	DefaultRequestTTL  = 7 * 24 * time.Hour
	DefaultTokenTTL    = 24 * time.Hour
	DefaultMaxTokenTTL = 30 * 24 * time.Hour
	DefaultLogMaxBytes = 1 << 20
	DefaultLogsKept    = 20
)

// WithDefaults returns c with its zero durations set to the defaults.
func (c Config) WithDefaults() Config {
	if c.RequestTTL == 0 {
		c.RequestTTL = DefaultRequestTTL
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	if c.MaxTokenTTL == 0 {
		c.MaxTokenTTL = DefaultMaxTokenTTL
	}
	if c.LogMaxBytes == 0 {
		c.LogMaxBytes = DefaultLogMaxBytes
	}
	if c.LogsKept == 0 {
		c.LogsKept = DefaultLogsKept
	}
	return c
}

// Validate reports every problem of c at once; it changes nothing.
func (c Config) Validate() error {
	var errs []error
	for name, d := range map[string]time.Duration{"request_ttl": c.RequestTTL, "token_ttl": c.TokenTTL, "max_token_ttl": c.MaxTokenTTL, "renewal_grace": c.RenewalGrace} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %v: must not be negative", name, d))
		}
	}
	if c.LogMaxBytes < 0 || c.LogsKept < 0 {
		errs = append(errs, errors.New("logs: max_bytes and keep must not be negative"))
	}
	if c.MaxTokenTTL > 0 && c.TokenTTL > c.MaxTokenTTL {
		errs = append(errs, fmt.Errorf("token_ttl %v exceeds max_token_ttl %v", c.TokenTTL, c.MaxTokenTTL))
	}
	seen := map[string]bool{}
	for i, r := range c.AllowList {
		if err := r.validate(); err != nil {
			errs = append(errs, fmt.Errorf("allow_list rule %d (%q): %w", i+1, r.Name, err))
		}
		if seen[r.Name] {
			errs = append(errs, fmt.Errorf("allow_list rule %d: name %q used twice", i+1, r.Name))
		}
		seen[r.Name] = true
	}
	return errors.Join(errs...)
}

func (r Rule) validate() error {
	if r.Name == "" {
		return errors.New("no name")
	}
	pats := r.patterns()
	if len(pats) == 0 {
		return errors.New("no pattern: it would approve every request")
	}
	for field, p := range pats {
		// path.Match reports a bad pattern only when it gets that far
		// into it; matching against the pattern itself gets there.
		if _, err := path.Match(p, p); err != nil {
			return fmt.Errorf("%s pattern %q: %w", field, p, err)
		}
	}
	return nil
}

func (r Rule) patterns() map[string]string {
	pats := map[string]string{}
	for field, p := range map[string]string{"hostname": r.Hostname, "os": r.OS, "hardware_serial": r.HardwareSerial} {
		if p != "" {
			pats[field] = strings.ToLower(p)
		}
	}
	return pats
}

// match reports whether every pattern of r matches its fact. An empty fact
// matches no pattern, not even "*": a device that does not say its serial
// is not let in by a serial rule.
func (r Rule) match(f Facts) bool {
	facts := map[string]string{"hostname": f.Hostname, "os": f.OS, "hardware_serial": f.HardwareSerial}
	for field, p := range r.patterns() {
		v := strings.ToLower(facts[field])
		if v == "" {
			return false
		}
		if ok, err := path.Match(p, v); err != nil || !ok {
			return false
		}
	}
	return true
}
