package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/pki"
)

var (
	// ErrRevoked is wrapped by every *RevokedError.
	ErrRevoked = errors.New("certificate revoked")
	// ErrUnknown means no fresh revocation information exists for the
	// certificate; Check returns it only in fail-closed mode.
	ErrUnknown = errors.New("no fresh revocation information")
)

// RevokedError says who revoked a certificate, when and why.
type RevokedError struct {
	Serial    *big.Int  // the leaf's; pki.SerialString prints it
	Reason    int       // RFC 5280 CRLReason code
	RevokedAt time.Time // revocationDate
	Source    string    // the CRL location or the OCSP responder URL
}

func (e *RevokedError) Error() string {
	return fmt.Sprintf("certificate %s revoked at %s (%s) per %s",
		pki.SerialString(e.Serial), e.RevokedAt.UTC().Format(time.RFC3339), ReasonText(e.Reason), e.Source)
}

// Unwrap makes errors.Is(err, ErrRevoked) true.
func (e *RevokedError) Unwrap() error { return ErrRevoked }

// reasonCertificateHold is the one CRLReason that can be undone.
const reasonCertificateHold = 6

var reasons = [...]string{"unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
	"superseded", "cessationOfOperation", "certificateHold", "", "removeFromCRL",
	"privilegeWithdrawn", "aACompromise"}

// ReasonText names an RFC 5280 CRLReason code as openssl does.
func ReasonText(code int) string {
	if code >= 0 && code < len(reasons) && reasons[code] != "" {
		return reasons[code]
	}
	return fmt.Sprintf("reason %d", code)
}

// Checker answers "is this certificate revoked?" from CRLs and OCSP. Check
// is safe for concurrent use and cheap; Run keeps the CRLs fresh.
type Checker struct {
	cfg     Config
	log     *slog.Logger
	client  *http.Client
	now     func() time.Time
	m       *metrics
	sources []*source
	snap    atomic.Pointer[snapshot]
	ocsp    *ocspCache // nil when OCSP is off
	// refreshMu lets one refresh run at a time (Run's timer, Reload).
	refreshMu sync.Mutex
	// kick tells Run to recompute its timer after a Reload.
	kick       chan struct{}
	unknownLog limiter
}

// snapshot is everything Check reads, published whole by each refresh.
type snapshot struct {
	sources []sourceState // index-aligned with Checker.sources
	// byIssuer maps a raw issuer name to the usable CRLs that name it,
	// newest first: Check takes the first that verifies and covers.
	byIssuer map[string][]*crl
}

// New validates cfg, registers the metrics on reg and loads every CRL once.
// A CRL file that is missing or invalid is a configuration error; a CRL URL
// that cannot be fetched is logged and retried by Run, so that a CRL server
// down at start does not keep the service down (its checks answer per Mode
// until then). A nil client means a fresh http.Client; a nil log discards.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer, client *http.Client) (*Checker, error) {
	return newChecker(cfg, log, reg, client, time.Now)
}

func newChecker(cfg Config, log *slog.Logger, reg prometheus.Registerer, client *http.Client, now func() time.Time) (*Checker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if client == nil {
		client = &http.Client{}
	}
	c := &Checker{cfg: cfg, log: log, client: client, now: now, kick: make(chan struct{}, 1)}
	for _, loc := range cfg.CRLs {
		l, err := parseLocation(loc)
		if err != nil { // Validate accepted it; a failure here is a bug, said rather than hidden
			return nil, fmt.Errorf("crl %q: %w", redact(loc), err)
		}
		c.sources = append(c.sources, &source{loc: l, label: redact(loc)})
	}
	if cfg.OCSP {
		c.ocsp = newOCSPCache(cfg.OCSPCacheSize)
	}
	c.m = newMetrics(c)
	c.snap.Store(&snapshot{sources: make([]sourceState, len(c.sources))})
	var fatal []error
	for i, err := range c.refresh(context.Background(), true, true) {
		if err != nil && c.sources[i].loc.url == nil {
			fatal = append(fatal, fmt.Errorf("loading CRL %s: %w", c.sources[i].label, err))
		}
	}
	if len(fatal) > 0 {
		return nil, errors.Join(fatal...)
	}
	if reg != nil {
		if err := c.m.register(reg); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// verdict is what one source says about a certificate.
type verdict uint8

const (
	vNone    verdict = iota // no fresh information
	vGood                   // fresh, not revoked
	vRevoked                // revoked
)

// answer is a verdict with its evidence. The good path fills no strings,
// so Check allocates nothing for a certificate that is fine.
type answer struct {
	v         verdict
	source    string
	revokedAt time.Time
	reason    int
	why       string // for vNone
}

// Check returns nil when leaf (issued by issuer) is not revoked, an error
// wrapping ErrRevoked (a *RevokedError) when it is, and, when no fresh
// information exists, an error wrapping ErrUnknown in fail-closed mode or
// nil (with a rate-limited warning and unknown_allowed counted) in
// fail-open mode. A CRL's answer comes first; unless it is a revocation,
// OCSP is asked too (when on and the leaf names a responder): a revocation
// from either wins, and a good answer from either suffices. ctx bounds only
// the wait for an OCSP answer. To check intermediates too, call Check for
// each (certificate, issuer) pair of the verified chain: each pair needs
// revocation data from its own issuer.
//
// A nil leaf or issuer is a caller bug and always an ErrUnknown error.
func (c *Checker) Check(ctx context.Context, leaf, issuer *x509.Certificate) error {
	if leaf == nil || issuer == nil {
		c.m.checkUnknownDenied.Inc()
		return fmt.Errorf("%w: Check needs the leaf and its issuer", ErrUnknown)
	}
	now := c.now()
	ans := c.checkCRL(leaf, issuer, now)
	if ans.v != vRevoked && c.ocsp != nil && len(leaf.OCSPServer) > 0 {
		o := c.checkOCSP(ctx, leaf, issuer, now)
		switch {
		case o.v != vNone:
			ans = o
		case ans.v == vNone && ans.why != "":
			ans.why += "; " + o.why
		case ans.v == vNone:
			ans.why = o.why
		}
	}
	switch ans.v {
	case vGood:
		c.m.checkGood.Inc()
		return nil
	case vRevoked:
		c.m.checkRevoked.Inc()
		return &RevokedError{Serial: leaf.SerialNumber, Reason: ans.reason,
			RevokedAt: ans.revokedAt, Source: ans.source}
	}
	if ans.why == "" {
		ans.why = "no CRL is configured and the certificate names no OCSP responder"
	}
	return c.unknown(leaf, ans.why, now)
}

// checkCRL looks leaf up in the newest usable CRL of its issuer.
func (c *Checker) checkCRL(leaf, issuer *x509.Certificate, now time.Time) answer {
	if len(c.sources) == 0 {
		return answer{}
	}
	if !bytes.Equal(leaf.RawIssuer, issuer.RawSubject) {
		return answer{why: fmt.Sprintf("the certificate is not issued by %q", issuer.Subject)}
	}
	why := ""
	for _, cr := range c.snap.Load().byIssuer[string(issuer.RawSubject)] {
		if !cr.matches(issuer) || !cr.covers(leaf) {
			continue
		}
		if err := cr.verifiedBy(issuer); err != nil {
			why = fmt.Sprintf("CRL %s names %q but is not signed by it: %v", cr.source, cr.issuer, err)
			continue
		}
		e, listed := cr.entries[string(certSerial(leaf))]
		if now.After(cr.expires(c.cfg.MaxStale)) {
			// A stale CRL cannot say "good", but an authentic one still
			// proves a revocation: only a hold is ever lifted.
			if listed && e.reason != reasonCertificateHold {
				return answer{v: vRevoked, source: cr.source, revokedAt: time.Unix(e.revokedAt, 0).UTC(), reason: int(e.reason)}
			}
			return answer{why: fmt.Sprintf("CRL %s is stale: nextUpdate %s, max_stale %s",
				cr.source, cr.nextUpdate.UTC().Format(time.RFC3339), c.cfg.MaxStale)}
		}
		if !listed {
			return answer{v: vGood}
		}
		return answer{v: vRevoked, source: cr.source, revokedAt: time.Unix(e.revokedAt, 0).UTC(), reason: int(e.reason)}
	}
	if why == "" {
		why = fmt.Sprintf("no loaded CRL covers issuer %q", issuer.Subject)
	}
	return answer{why: why}
}

// unknown applies Mode. The log line is rate-limited: the caller logs each
// connection; this line says, once a minute, that the cause is revocation
// data and what the mode does about it.
func (c *Checker) unknown(leaf *x509.Certificate, why string, now time.Time) error {
	serial := pki.SerialString(leaf.SerialNumber)
	logIt, suppressed := c.unknownLog.allow(now)
	if c.cfg.Mode == FailOpen {
		c.m.checkUnknownAllowed.Inc()
		if logIt {
			c.log.Warn("revocation status unknown; connection allowed without it (fail-open)",
				slog.String("serial", serial), slog.String("subject", leaf.Subject.String()),
				slog.String("reason", why), slog.Int64("suppressed", suppressed))
		}
		return nil
	}
	c.m.checkUnknownDenied.Inc()
	if logIt {
		c.log.Error("revocation status unknown; connection denied (fail-closed)",
			slog.String("serial", serial), slog.String("subject", leaf.Subject.String()),
			slog.String("reason", why), slog.Int64("suppressed", suppressed))
	}
	return fmt.Errorf("%w for certificate %s: %s", ErrUnknown, serial, why)
}

// limiter lets one event through per logEvery and counts the others.
type limiter struct {
	last       atomic.Int64 // Unix nanoseconds of the last event let through
	suppressed atomic.Int64
}

func (l *limiter) allow(now time.Time) (bool, int64) {
	last, t := l.last.Load(), now.UnixNano()
	if last != 0 && t-last < int64(logEvery) || !l.last.CompareAndSwap(last, t) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}

// consequence says what happens to connections without revocation data.
func (c *Checker) consequence() string {
	s := "connections are denied (fail-closed)"
	if c.cfg.Mode == FailOpen {
		s = "connections are allowed without revocation checking (fail-open)"
	}
	if c.cfg.OCSP {
		s = "unless OCSP answers, " + s
	}
	return s
}
