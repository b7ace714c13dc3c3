package enroll

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/portcullis-dev/portcullis/internal/store"
)

// Evidence is why a request was approved or denied, stored with it as JSON
// and written to the audit log.
type Evidence struct {
	// Policy is "manual", "token" or "allow_list".
	Policy string `json:"policy"`
	// Token is the ID (never the secret) of the bootstrap token used.
	Token store.TokenID `json:"token,omitempty"`
	// Rule names the allow-list rule that matched.
	Rule string `json:"rule,omitempty"`
	// Facts are the claims the rule or the token's binding matched.
	Facts *Facts `json:"facts,omitempty"`
}

func (e Evidence) json() json.RawMessage {
	b, err := json.Marshal(e)
	if err != nil {
		// Strings and a struct of strings always marshal.
		panic(fmt.Sprintf("marshaling evidence: %v", err))
	}
	return b
}

// Approve approves a pending request on an admin's word.
func (s *Service) Approve(ctx context.Context, id store.RequestID, actor, comment string) (*store.Request, error) {
	return s.decideManually(ctx, id, store.RequestApproved, actor, comment)
}

// Deny denies a pending request; reason is shown to the device.
func (s *Service) Deny(ctx context.Context, id store.RequestID, actor, reason string) (*store.Request, error) {
	return s.decideManually(ctx, id, store.RequestDenied, actor, reason)
}

func (s *Service) decideManually(ctx context.Context, id store.RequestID, state store.RequestState, actor, comment string) (*store.Request, error) {
	verb := map[store.RequestState]string{store.RequestApproved: "approving", store.RequestDenied: "denying"}[state]
	if actor == "" {
		return nil, fmt.Errorf("%s request %s: %w", verb, id, ErrNoActor)
	}
	r, err := s.store.Request(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("%s request %s: %w", verb, id, err)
	}
	now := s.now()
	// A stale request is refused approval (its CSR's key may be long
	// gone) but may still be denied, which only closes it.
	if state == store.RequestApproved && r.State == store.RequestPending && now.Sub(r.CreatedAt) > s.cfg.RequestTTL {
		return nil, fmt.Errorf("approving request %s: %w (created %s)", id, ErrRequestExpired, r.CreatedAt.Format("2006-01-02T15:04:05Z07:00"))
	}
	d := store.Decision{Request: id, State: state, By: actor, At: now, Comment: comment,
		Evidence: Evidence{Policy: "manual"}.json(), Version: r.Version}
	r, err = s.store.Decide(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("%s request %s: %w", verb, id, err)
	}
	s.auditDecision(ctx, r)
	return r, nil
}

// auditDecision writes the event of a decision that the store accepted.
func (s *Service) auditDecision(ctx context.Context, r *store.Request) {
	s.auditEvent(ctx, "enroll."+string(r.State),
		slog.String("request", string(r.ID)), slog.String("device", string(r.Device)),
		slog.String("hostname", r.Facts.Hostname), slog.String("actor", r.DecidedBy),
		slog.String("comment", r.Comment), slog.Any("evidence", r.Evidence))
}
