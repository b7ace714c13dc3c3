package enroll

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/portcullis-dev/portcullis/internal/store"
)

// TokenOptions shape a new bootstrap token.
type TokenOptions struct {
	// TTL is its lifetime: Config.TokenTTL if zero, at most
	// Config.MaxTokenTTL.
	TTL time.Duration
	// BoundName and BoundOwner, when set, restrict it to a device of that
	// hostname or owner e-mail (compared case-insensitively).
	BoundName  string
	BoundOwner string
}

// tokenBytes is the secret's entropy: 256 bits, beyond guessing even with
// the per-token rate limits the HTTP front end will add.
const tokenBytes = 32

// CreateToken makes a bootstrap token and returns its secret, which exists
// only in this return value: the store keeps its SHA-256. (A fast hash is
// enough for 256 random bits; password hashing guards low-entropy secrets.)
func (s *Service) CreateToken(ctx context.Context, actor string, o TokenOptions) (string, *store.Token, error) {
	if actor == "" {
		return "", nil, fmt.Errorf("creating token: %w", ErrNoActor)
	}
	ttl := o.TTL
	if ttl == 0 {
		ttl = s.cfg.TokenTTL
	}
	if ttl < 0 || ttl > s.cfg.MaxTokenTTL {
		return "", nil, fmt.Errorf("creating token: %w", invalid(fmt.Errorf("lifetime %v not within (0, %v]", ttl, s.cfg.MaxTokenTTL)))
	}
	for name, v := range map[string]string{"bound name": o.BoundName, "bound owner": o.BoundOwner} {
		if err := checkFact(v); err != nil {
			return "", nil, fmt.Errorf("creating token: %w", invalid(fmt.Errorf("%s: %w", name, err)))
		}
	}
	raw := make([]byte, tokenBytes)
	if _, err := io.ReadFull(s.rand, raw); err != nil {
		return "", nil, fmt.Errorf("creating token: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	h := sha256.Sum256([]byte(secret))
	now := s.now()
	t := &store.Token{Hash: h[:], CreatedBy: actor, CreatedAt: now, ExpiresAt: now.Add(ttl),
		BoundName: o.BoundName, BoundOwner: o.BoundOwner}
	if err := s.store.CreateToken(ctx, t); err != nil {
		return "", nil, fmt.Errorf("creating token: %w", err)
	}
	s.auditEvent(ctx, "enroll.token_created", slog.String("token", string(t.ID)), slog.String("actor", actor),
		slog.Time("expires_at", t.ExpiresAt), slog.String("bound_name", t.BoundName), slog.String("bound_owner", t.BoundOwner))
	return secret, t, nil
}

// RevokeToken makes an unused token unusable.
func (s *Service) RevokeToken(ctx context.Context, actor string, id store.TokenID) error {
	if actor == "" {
		return fmt.Errorf("revoking token %s: %w", id, ErrNoActor)
	}
	if err := s.store.RevokeToken(ctx, id, s.now()); err != nil {
		return fmt.Errorf("revoking token %s: %w", id, err)
	}
	s.auditEvent(ctx, "enroll.token_revoked", slog.String("token", string(id)), slog.String("actor", actor))
	return nil
}
