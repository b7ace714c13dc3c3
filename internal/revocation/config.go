package revocation

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Mode is what Check does when no fresh revocation information exists.
type Mode string

const (
	// FailOpen allows the connection, logs a warning and counts
	// checks_total{result="unknown_allowed"}.
	FailOpen Mode = "fail-open"
	// FailClosed denies the connection with an error wrapping ErrUnknown.
	FailClosed Mode = "fail-closed"
)

// Defaults, applied by withDefaults to zero fields.
const (
	// DefaultMode is fail-closed: an operator who configured revocation
	// asked for revoked certificates to be kept out, and OpenSSL (so nginx,
	// stunnel, Envoy) rejects on an expired CRL too. The lockout risk is
	// answered with loud logs, metrics and Status, not by skipping checks.
	DefaultMode        = FailClosed
	DefaultRefresh     = time.Hour
	DefaultHTTPTimeout = 10 * time.Second
	DefaultOCSPCache   = 4096
)

const (
	// maxCRLSize bounds a CRL read from a file or URL.
	maxCRLSize = 32 << 20
	// maxOCSPSize bounds an OCSP response body.
	maxOCSPSize = 256 << 10
	// retryInterval is how soon a failed or stale source is tried again
	// (never later than Refresh).
	retryInterval = time.Minute
	// ocspRetry is how long a failed OCSP query is remembered, so that a
	// dead responder costs one timeout per certificate per ocspRetry, not
	// one per handshake.
	ocspRetry = 30 * time.Second
	// ocspNoNextUpdate is how long a response without nextUpdate (RFC
	// 6960: newer information is always available) is cached.
	ocspNoNextUpdate = time.Minute
	// clockSkew is the tolerance for an OCSP thisUpdate in the future.
	clockSkew = 5 * time.Minute
	// logEvery rate-limits the per-check "no fresh information" line.
	logEvery = time.Minute
)

// Config says where revocation information comes from and what to do
// without it. The zero values of the durations and sizes mean the defaults.
type Config struct {
	// CRLs are file paths or http(s) URLs, each one CRL in PEM or DER.
	CRLs []string `yaml:"crls,omitempty"`
	// OCSP asks the responder named in the leaf's AIA extension.
	OCSP bool `yaml:"ocsp,omitempty"`
	// Refresh is how often CRLs are re-read or re-fetched; a CRL is also
	// re-fetched at its nextUpdate when that comes first. It also caps how
	// long an OCSP answer is cached. Default 1h.
	Refresh time.Duration `yaml:"refresh,omitempty"`
	// Mode is FailOpen or FailClosed (the default).
	Mode Mode `yaml:"mode,omitempty"`
	// MaxStale is how long past its nextUpdate a CRL is still used. The
	// default 0 trusts the CA's own promise, as RFC 5280 and OpenSSL do:
	// the CA already chose how much slack its nextUpdate carries.
	MaxStale time.Duration `yaml:"max_stale,omitempty"`
	// HTTPTimeout bounds one CRL download or OCSP query. Default 10s.
	HTTPTimeout time.Duration `yaml:"http_timeout,omitempty"`
	// OCSPCacheSize bounds the OCSP answers kept. Default 4096.
	OCSPCacheSize int `yaml:"ocsp_cache_size,omitempty"`
}

// Validate reports every problem in c; it changes nothing.
func (c Config) Validate() error {
	var errs []error
	if len(c.CRLs) == 0 && !c.OCSP {
		errs = append(errs, errors.New("revocation: no CRL and OCSP off: nothing to check against"))
	}
	seen := map[string]bool{}
	for _, loc := range c.CRLs {
		if seen[loc] {
			errs = append(errs, fmt.Errorf("revocation: CRL %q listed twice", redact(loc)))
		}
		seen[loc] = true
		if _, err := parseLocation(loc); err != nil {
			errs = append(errs, err)
		}
	}
	switch c.Mode {
	case "", FailOpen, FailClosed:
	default:
		errs = append(errs, fmt.Errorf("revocation: mode %q: want %q or %q", c.Mode, FailOpen, FailClosed))
	}
	if c.Refresh < 0 || c.Refresh > 0 && c.Refresh < time.Second {
		errs = append(errs, fmt.Errorf("revocation: refresh %s: want at least 1s", c.Refresh))
	}
	if c.MaxStale < 0 {
		errs = append(errs, fmt.Errorf("revocation: max_stale %s is negative", c.MaxStale))
	}
	if c.HTTPTimeout < 0 {
		errs = append(errs, fmt.Errorf("revocation: http_timeout %s is negative", c.HTTPTimeout))
	}
	if c.OCSPCacheSize < 0 {
		errs = append(errs, fmt.Errorf("revocation: ocsp_cache_size %d is negative", c.OCSPCacheSize))
	}
	return errors.Join(errs...)
}

// withDefaults fills the zero fields; the one place defaults live.
func (c Config) withDefaults() Config {
	if c.Mode == "" {
		c.Mode = DefaultMode
	}
	if c.Refresh == 0 {
		c.Refresh = DefaultRefresh
	}
	if c.HTTPTimeout == 0 {
		c.HTTPTimeout = DefaultHTTPTimeout
	}
	if c.OCSPCacheSize == 0 {
		c.OCSPCacheSize = DefaultOCSPCache
	}
	c.CRLs = append([]string(nil), c.CRLs...)
	return c
}

// location is a parsed CRL source: a URL or a file path.
type location struct {
	url  *url.URL // nil for a file
	path string
}

func parseLocation(loc string) (location, error) {
	if strings.TrimSpace(loc) == "" {
		return location{}, errors.New("revocation: empty CRL location")
	}
	if !strings.Contains(loc, "://") {
		return location{path: loc}, nil
	}
	u, err := url.Parse(loc)
	if err != nil {
		return location{}, fmt.Errorf("revocation: CRL URL %q: %w", redact(loc), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return location{}, fmt.Errorf("revocation: CRL URL %q: want http:// or https:// and a host", u.Redacted())
	}
	return location{url: u}, nil
}

// redact hides a password in a URL, for logs, labels and errors.
func redact(loc string) string {
	if !strings.Contains(loc, "://") {
		return loc
	}
	if u, err := url.Parse(loc); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}
