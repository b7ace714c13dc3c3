package enroll

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
)

// Submission is what a device sends to enroll.
type Submission struct {
	// CSR is the PKCS#10 request, DER (PEM is accepted too; the DER is
	// what is stored and hashed, so both forms of one CSR are one request).
	CSR   []byte
	Facts Facts
	// Token is the bootstrap token's secret, if the device has one.
	Token string
	// SourceAddr is the address the submission came from, for the record.
	SourceAddr string
}

// Outcome is what Submit did.
type Outcome struct {
	Request *store.Request
	// Created is false when the CSR was submitted before: Request is that
	// first request, and nothing else happened (a token sent again is not
	// looked at, so a retry cannot burn a second one).
	Created bool
	// TokenRejected says why the token did not approve the request (used,
	// expired, revoked, unknown, bound elsewhere); the request then waits
	// for a person. Nil when no token was sent or it was accepted.
	TokenRejected error
}

// maxToken bounds the token input; a real one is 43 characters.
const maxToken = 256

// Submit checks a device's CSR and facts before anything is stored,
// records the request (or finds the one recorded for the same CSR), and
// applies the automatic approval rules. A submission with a token is judged
// by the token alone: a rejected token (replayed, expired, bound elsewhere)
// is a signal worth a person's look, which the allow-list must not paper
// over. Without a token the allow-list applies. Otherwise, or when neither
// approves, the request stays pending for a person.
func (s *Service) Submit(ctx context.Context, sub Submission) (*Outcome, error) {
	csr, err := pki.ParseCSR(sub.CSR)
	if err != nil {
		return nil, fmt.Errorf("submitting: %w", invalid(err))
	}
	// CN as DNS name, as the CA's device profile reads it.
	if _, err := pki.CheckCSR(csr, true); err != nil {
		return nil, fmt.Errorf("submitting: %w", invalid(err))
	}
	if err := checkFacts(sub.Facts); err != nil {
		return nil, fmt.Errorf("submitting: %w", invalid(err))
	}
	if len(sub.Token) > maxToken {
		return nil, fmt.Errorf("submitting: %w", invalid(fmt.Errorf("bootstrap token of %d bytes (limit %d)", len(sub.Token), maxToken)))
	}
	r, err := s.record(ctx, csr.Raw, sub)
	if err != nil || !r.Created {
		return r, err
	}
	switch {
	case sub.Token != "":
		err = s.redeem(ctx, r, sub.Token)
	default:
		err = s.allowList(ctx, r)
	}
	if err != nil {
		return nil, err
	}
	s.logSubmission(ctx, r, sub.SourceAddr)
	return r, nil
}

// logSubmission is the one operator line per new submission.
func (s *Service) logSubmission(ctx context.Context, o *Outcome, source string) {
	attrs := []slog.Attr{slog.String("request", string(o.Request.ID)), slog.String("state", string(o.Request.State)),
		slog.String("decided_by", o.Request.DecidedBy), slog.String("source", source)}
	if o.TokenRejected != nil {
		attrs = append(attrs, slog.String("token_rejected", o.TokenRejected.Error()))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "enrollment submitted", attrs...)
}

// record stores the request and its device, or finds the earlier request
// of the same CSR.
func (s *Service) record(ctx context.Context, der []byte, sub Submission) (*Outcome, error) {
	h := sha256.Sum256(der)
	f := sub.Facts
	r := &store.Request{CSR: der, CSRHash: h[:], Facts: f, SourceAddr: sub.SourceAddr, CreatedAt: s.now()}
	d := &store.Device{Name: f.Hostname, HardwareSerial: f.HardwareSerial, OS: f.OS, OSVersion: f.OSVersion,
		OwnerEmail: f.OwnerEmail, AgentVersion: f.AgentVersion}
	created, err := s.store.CreateRequest(ctx, r, d)
	if err != nil {
		return nil, fmt.Errorf("submitting: %w", err)
	}
	if created {
		s.auditEvent(ctx, "enroll.submitted", slog.String("request", string(r.ID)),
			slog.String("device", string(r.Device)), slog.String("hostname", f.Hostname),
			slog.String("hardware_serial", f.HardwareSerial), slog.String("source", sub.SourceAddr))
	}
	return &Outcome{Request: r, Created: created}, nil
}

// redeem approves o's request with the token if the token allows it. A
// token that does not is recorded in o.TokenRejected and audited; only a
// failure of the store itself is an error.
func (s *Service) redeem(ctx context.Context, o *Outcome, secret string) error {
	h := sha256.Sum256([]byte(secret))
	r := o.Request
	tok, err := s.store.TokenByHash(ctx, h[:])
	switch {
	case err == nil && subtle.ConstantTimeCompare(tok.Hash, h[:]) != 1:
		// Unreachable with an honest store (it looked the hash up); a
		// store that matched loosely must not approve anything.
		err = store.ErrNotFound
	case err == nil:
		err = checkBinding(tok, r.Facts)
	}
	if err == nil {
		d := store.Decision{Request: r.ID, State: store.RequestApproved, By: "token:" + string(tok.ID), At: s.now(),
			Evidence: Evidence{Policy: "token", Token: tok.ID, Facts: &r.Facts}.json()}
		var approved *store.Request
		if approved, err = s.store.RedeemToken(ctx, h[:], d); err == nil {
			o.Request = approved
			s.auditDecision(ctx, approved)
			return nil
		}
	}
	if !isTokenRejection(err) {
		return fmt.Errorf("submitting: redeeming token: %w", err)
	}
	o.TokenRejected = err
	attrs := []slog.Attr{slog.String("request", string(r.ID)), slog.String("hostname", r.Facts.Hostname),
		slog.String("reason", err.Error())}
	if tok != nil {
		attrs = append(attrs, slog.String("token", string(tok.ID)))
	}
	s.auditEvent(ctx, "enroll.token_rejected", attrs...)
	return nil
}

func isTokenRejection(err error) bool {
	for _, e := range []error{store.ErrNotFound, store.ErrTokenUsed, store.ErrTokenExpired, store.ErrTokenRevoked, ErrTokenBinding} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// checkBinding refuses a bound token to a device of another name or owner.
func checkBinding(t *store.Token, f Facts) error {
	if t.BoundName != "" && !strings.EqualFold(t.BoundName, f.Hostname) {
		return fmt.Errorf("%w: bound to name %q, device says %q", ErrTokenBinding, t.BoundName, f.Hostname)
	}
	if t.BoundOwner != "" && !strings.EqualFold(t.BoundOwner, f.OwnerEmail) {
		return fmt.Errorf("%w: bound to owner %q, device says %q", ErrTokenBinding, t.BoundOwner, f.OwnerEmail)
	}
	return nil
}

// allowList approves o's request if a rule matches its facts.
func (s *Service) allowList(ctx context.Context, o *Outcome) error {
	r := o.Request
	for _, rule := range s.cfg.AllowList {
		if !rule.match(r.Facts) {
			continue
		}
		d := store.Decision{Request: r.ID, State: store.RequestApproved, By: "allow_list:" + rule.Name, At: s.now(),
			Evidence: Evidence{Policy: "allow_list", Rule: rule.Name, Facts: &r.Facts}.json(), Version: r.Version}
		approved, err := s.store.Decide(ctx, d)
		if err != nil {
			return fmt.Errorf("submitting: approving by rule %q: %w", rule.Name, err)
		}
		o.Request = approved
		s.auditDecision(ctx, approved)
		return nil
	}
	return nil
}
