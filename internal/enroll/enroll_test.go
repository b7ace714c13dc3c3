package enroll_test

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/enroll"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
)

// TestPolicy pins which submissions are approved without a person, by what,
// and which wait.
func TestPolicy(t *testing.T) {
	cfg := enroll.Config{AllowList: []enroll.Rule{
		{Name: "lab", Hostname: "lab-*", OS: "linux"},
		{Name: "fleet-serials", HardwareSerial: "FLEET-*"},
	}}
	// token makes a token with o and returns its secret, after prep.
	type setup func(t *testing.T, e *env) string
	token := func(o enroll.TokenOptions, prep func(t *testing.T, e *env, secret string, tok *store.Token)) setup {
		return func(t *testing.T, e *env) string {
			secret, tok, err := e.svc.CreateToken(t.Context(), "admin", o)
			if err != nil {
				t.Fatalf("CreateToken() = %v", err)
			}
			if prep != nil {
				prep(t, e, secret, tok)
			}
			return secret
		}
	}
	tests := []struct {
		name         string
		facts        enroll.Facts
		token        setup
		wantState    store.RequestState
		wantBy       string // prefix
		wantRejected error
	}{
		{name: "manual by default", facts: facts("laptop-1"), wantState: store.RequestPending},
		{name: "token", facts: facts("laptop-1"), token: token(enroll.TokenOptions{}, nil),
			wantState: store.RequestApproved, wantBy: "token:tok_"},
		{name: "token bound to this name", facts: facts("laptop-1"), token: token(enroll.TokenOptions{BoundName: "LAPTOP-1"}, nil),
			wantState: store.RequestApproved, wantBy: "token:tok_"},
		{name: "token bound to this owner", facts: facts("laptop-1"), token: token(enroll.TokenOptions{BoundOwner: "ada@example.com"}, nil),
			wantState: store.RequestApproved, wantBy: "token:tok_"},
		{name: "token bound to another name", facts: facts("laptop-1"), token: token(enroll.TokenOptions{BoundName: "laptop-2"}, nil),
			wantState: store.RequestPending, wantRejected: enroll.ErrTokenBinding},
		{name: "token bound to another owner", facts: facts("laptop-1"), token: token(enroll.TokenOptions{BoundOwner: "bob@example.com"}, nil),
			wantState: store.RequestPending, wantRejected: enroll.ErrTokenBinding},
		{name: "expired token", facts: facts("laptop-1"), token: token(enroll.TokenOptions{TTL: time.Hour},
			func(t *testing.T, e *env, _ string, _ *store.Token) { e.clock.Advance(time.Hour) }),
			wantState: store.RequestPending, wantRejected: store.ErrTokenExpired},
		{name: "replayed token", facts: facts("laptop-1"), token: token(enroll.TokenOptions{},
			func(t *testing.T, e *env, secret string, _ *store.Token) {
				o, err := e.svc.Submit(t.Context(), enroll.Submission{CSR: newCSR(t, "first"), Facts: facts("first"), Token: secret})
				if err != nil || o.Request.State != store.RequestApproved {
					t.Fatalf("first Submit() = %+v, %v; want approved", o, err)
				}
			}),
			wantState: store.RequestPending, wantRejected: store.ErrTokenUsed},
		{name: "revoked token", facts: facts("laptop-1"), token: token(enroll.TokenOptions{},
			func(t *testing.T, e *env, _ string, tok *store.Token) {
				if err := e.svc.RevokeToken(t.Context(), "admin", tok.ID); err != nil {
					t.Fatal(err)
				}
			}),
			wantState: store.RequestPending, wantRejected: store.ErrTokenRevoked},
		{name: "unknown token", facts: facts("laptop-1"),
			token:     func(*testing.T, *env) string { return base64.RawURLEncoding.EncodeToString(make([]byte, 32)) },
			wantState: store.RequestPending, wantRejected: store.ErrNotFound},
		{name: "allow-list match", facts: enroll.Facts{Hostname: "LAB-7", OS: "Linux"},
			wantState: store.RequestApproved, wantBy: "allow_list:lab"},
		{name: "allow-list second rule", facts: enroll.Facts{Hostname: "x", HardwareSerial: "fleet-0042"},
			wantState: store.RequestApproved, wantBy: "allow_list:fleet-serials"},
		{name: "allow-list one pattern of two", facts: enroll.Facts{Hostname: "lab-7", OS: "windows"},
			wantState: store.RequestPending},
		{name: "allow-list missing fact", facts: enroll.Facts{Hostname: "lab-7"}, wantState: store.RequestPending},
		{name: "a rejected token is not rescued by the allow-list", facts: enroll.Facts{Hostname: "lab-7", OS: "linux"},
			token:     func(*testing.T, *env) string { return "nonsense" },
			wantState: store.RequestPending, wantRejected: store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, cfg)
			sub := enroll.Submission{CSR: newCSR(t, tt.facts.Hostname), Facts: tt.facts, SourceAddr: "192.0.2.7:40000"}
			if tt.token != nil {
				sub.Token = tt.token(t, e)
			}
			o, err := e.svc.Submit(t.Context(), sub)
			if err != nil {
				t.Fatalf("Submit() = %v", err)
			}
			r := o.Request
			if r.State != tt.wantState || !strings.HasPrefix(r.DecidedBy, tt.wantBy) || !o.Created {
				t.Errorf("Submit() = state %q by %q (created %v), want %q by %q…", r.State, r.DecidedBy, o.Created, tt.wantState, tt.wantBy)
			}
			if !errors.Is(o.TokenRejected, tt.wantRejected) || (tt.wantRejected == nil) != (o.TokenRejected == nil) {
				t.Errorf("Submit().TokenRejected = %v, want %v", o.TokenRejected, tt.wantRejected)
			}
			if tt.wantState == store.RequestApproved {
				checkEvidence(t, r, tt.wantBy)
				if !strings.Contains(e.audit.String(), `"event":"enroll.approved"`) {
					t.Errorf("no enroll.approved audit event in:\n%s", e.audit)
				}
			}
			if sub.Token != "" && strings.Contains(e.audit.String(), sub.Token) {
				t.Errorf("the audit log contains the token's secret")
			}
		})
	}
}

func checkEvidence(t *testing.T, r *store.Request, by string) {
	t.Helper()
	var ev enroll.Evidence
	if err := json.Unmarshal(r.Evidence, &ev); err != nil {
		t.Fatalf("evidence %s: %v", r.Evidence, err)
	}
	switch {
	case strings.HasPrefix(by, "token:"):
		if ev.Policy != "token" || "token:"+string(ev.Token) != r.DecidedBy || ev.Facts == nil {
			t.Errorf("evidence %s, want policy token, token %s, facts", r.Evidence, r.DecidedBy)
		}
	case strings.HasPrefix(by, "allow_list:"):
		if ev.Policy != "allow_list" || "allow_list:"+ev.Rule != r.DecidedBy || ev.Facts == nil {
			t.Errorf("evidence %s, want policy allow_list, rule of %s, facts", r.Evidence, r.DecidedBy)
		}
	}
}

func TestSubmitRejects(t *testing.T) {
	e := newEnv(t, enroll.Config{})
	good := newCSR(t, "laptop-1")
	badSig := append([]byte(nil), good...)
	badSig[len(badSig)-1] ^= 0xff
	tests := []struct {
		name string
		sub  enroll.Submission
		want error
	}{
		{"empty CSR", enroll.Submission{Facts: facts("a")}, pki.ErrMalformedCSR},
		{"garbage CSR", enroll.Submission{CSR: []byte("hello"), Facts: facts("a")}, pki.ErrMalformedCSR},
		{"bad signature", enroll.Submission{CSR: badSig, Facts: facts("a")}, pki.ErrCSRSignature},
		{"no hostname", enroll.Submission{CSR: good, Facts: enroll.Facts{OS: "linux"}}, enroll.ErrInvalidFacts},
		{"control character", enroll.Submission{CSR: good, Facts: enroll.Facts{Hostname: "a\x1b[31m"}}, enroll.ErrInvalidFacts},
		{"long fact", enroll.Submission{CSR: good, Facts: enroll.Facts{Hostname: "a", OS: strings.Repeat("x", 257)}}, enroll.ErrInvalidFacts},
		{"bad owner", enroll.Submission{CSR: good, Facts: enroll.Facts{Hostname: "a", OwnerEmail: "ada"}}, enroll.ErrInvalidFacts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := e.svc.Submit(t.Context(), tt.sub); !errors.Is(err, tt.want) {
				t.Errorf("Submit(%s) = %v, want %v", tt.name, err, tt.want)
			}
		})
	}
	if s := e.audit.String(); s != "" {
		t.Errorf("rejected submissions were recorded:\n%s", s)
	}
}

// TestDedupe: the same CSR, DER or PEM, sequentially or at once, is one
// request; a token sent with a repeat is not looked at.
func TestDedupe(t *testing.T) {
	e := newEnv(t, enroll.Config{})
	der := newCSR(t, "laptop-1")
	first, err := e.svc.Submit(t.Context(), enroll.Submission{CSR: der, Facts: facts("laptop-1")})
	if err != nil || !first.Created {
		t.Fatalf("Submit() = %+v, %v", first, err)
	}
	secret, _, err := e.svc.CreateToken(t.Context(), "admin", enroll.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pemCSR := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	const n = 8
	var wg sync.WaitGroup
	outs := make([]*enroll.Outcome, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			csr := der
			if i%2 == 1 {
				csr = pemCSR
			}
			outs[i], errs[i] = e.svc.Submit(t.Context(), enroll.Submission{CSR: csr, Facts: facts("laptop-1"), Token: secret})
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || outs[i].Created || outs[i].Request.ID != first.Request.ID || outs[i].Request.State != store.RequestPending {
			t.Errorf("Submit(same CSR) #%d = %+v, %v; want request %s, not created, pending", i, outs[i], errs[i], first.Request.ID)
		}
	}
	// The token is still good for another CSR.
	o, err := e.svc.Submit(t.Context(), enroll.Submission{CSR: newCSR(t, "laptop-2"), Facts: facts("laptop-2"), Token: secret})
	if err != nil || o.Request.State != store.RequestApproved {
		t.Errorf("Submit(new CSR, unused token) = %+v, %v; want approved", o, err)
	}
}

func TestDecisions(t *testing.T) {
	e := newEnv(t, enroll.Config{RequestTTL: 24 * time.Hour})
	submit := func(host string) store.RequestID {
		o, err := e.svc.Submit(t.Context(), enroll.Submission{CSR: newCSR(t, host), Facts: facts(host)})
		if err != nil {
			t.Fatal(err)
		}
		return o.Request.ID
	}
	a := submit("a")
	r, err := e.svc.Deny(t.Context(), a, "alice", "unknown device")
	if err != nil || r.State != store.RequestDenied || r.Comment != "unknown device" || r.DecidedBy != "alice" {
		t.Fatalf("Deny() = %+v, %v", r, err)
	}
	_, err = e.svc.Approve(t.Context(), a, "bob", "")
	var ad *store.AlreadyDecidedError
	if !errors.As(err, &ad) || ad.By != "alice" || ad.State != store.RequestDenied {
		t.Errorf("Approve(denied) = %v, want AlreadyDecidedError by alice", err)
	}
	if got, err := e.svc.Status(t.Context(), a); err != nil || got.State != store.RequestDenied {
		t.Errorf("Status() = %+v, %v; want denied", got, err)
	}
	if _, err := e.svc.Approve(t.Context(), submit("b"), "", ""); !errors.Is(err, enroll.ErrNoActor) {
		t.Errorf("Approve(no actor) = %v, want ErrNoActor", err)
	}
	if _, err := e.svc.Approve(t.Context(), "req_none", "bob", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Approve(unknown) = %v, want ErrNotFound", err)
	}
	stale := submit("c")
	e.clock.Advance(24*time.Hour + time.Second)
	if _, err := e.svc.Approve(t.Context(), stale, "bob", ""); !errors.Is(err, enroll.ErrRequestExpired) {
		t.Errorf("Approve(stale) = %v, want ErrRequestExpired", err)
	}
	if _, err := e.svc.Deny(t.Context(), stale, "bob", "too old"); err != nil {
		t.Errorf("Deny(stale) = %v, want nil", err)
	}
	if got := strings.Count(e.audit.String(), `"event":"enroll.denied"`); got != 2 {
		t.Errorf("%d enroll.denied audit events, want 2", got)
	}
	if !strings.Contains(e.audit.String(), `"actor":"alice"`) {
		t.Errorf("audit log lacks the actor:\n%s", e.audit)
	}
}

// TestConcurrentApprove: of N admins deciding one request at once, exactly
// one decision lands and is audited; the others learn who won.
func TestConcurrentApprove(t *testing.T) {
	e := newEnv(t, enroll.Config{})
	o, err := e.svc.Submit(t.Context(), enroll.Submission{CSR: newCSR(t, "a"), Facts: facts("a")})
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			actor := fmt.Sprintf("admin-%d", i)
			if i%2 == 0 {
				_, errs[i] = e.svc.Approve(t.Context(), o.Request.ID, actor, "")
			} else {
				_, errs[i] = e.svc.Deny(t.Context(), o.Request.ID, actor, "no")
			}
		})
	}
	wg.Wait()
	winners := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
		case !errors.Is(err, store.ErrAlreadyDecided):
			t.Errorf("decision %d = %v, want nil or ErrAlreadyDecided", i, err)
		}
	}
	events := strings.Count(e.audit.String(), `"event":"enroll.approved"`) + strings.Count(e.audit.String(), `"event":"enroll.denied"`)
	if winners != 1 || events != 1 {
		t.Errorf("%d decisions succeeded, %d audited; want 1, 1", winners, events)
	}
}

// TestConcurrentTokenReplay: one token sent with N different CSRs at once
// approves exactly one of them.
func TestConcurrentTokenReplay(t *testing.T) {
	e := newEnv(t, enroll.Config{})
	secret, _, err := e.svc.CreateToken(t.Context(), "admin", enroll.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	csrs := make([][]byte, n)
	for i := range csrs {
		csrs[i] = newCSR(t, fmt.Sprint("d", i))
	}
	outs := make([]*enroll.Outcome, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			outs[i], errs[i] = e.svc.Submit(t.Context(), enroll.Submission{CSR: csrs[i], Facts: facts(fmt.Sprint("d", i)), Token: secret})
		})
	}
	wg.Wait()
	approved := 0
	for i := range n {
		switch {
		case errs[i] != nil:
			t.Errorf("Submit #%d = %v", i, errs[i])
		case outs[i].Request.State == store.RequestApproved:
			approved++
		case !errors.Is(outs[i].TokenRejected, store.ErrTokenUsed):
			t.Errorf("Submit #%d: pending with TokenRejected %v, want ErrTokenUsed", i, outs[i].TokenRejected)
		}
	}
	if approved != 1 {
		t.Errorf("%d requests approved by one token, want 1", approved)
	}
}

func TestCreateToken(t *testing.T) {
	e := newEnv(t, enroll.Config{TokenTTL: time.Hour, MaxTokenTTL: 48 * time.Hour})
	secret, tok, err := e.svc.CreateToken(t.Context(), "admin", enroll.TokenOptions{BoundName: "laptop-1"})
	if err != nil {
		t.Fatalf("CreateToken() = %v", err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(secret)
	if err != nil || len(raw) != 32 {
		t.Errorf("secret %q: %d bytes, %v; want 32 bytes of base64url", secret, len(raw), err)
	}
	if !tok.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) || tok.CreatedBy != "admin" || tok.BoundName != "laptop-1" {
		t.Errorf("token %+v, want expiry in 1h by admin bound to laptop-1", tok)
	}
	if strings.Contains(e.audit.String(), secret) || !strings.Contains(e.audit.String(), string(tok.ID)) {
		t.Errorf("audit log holds the secret or lacks the token ID:\n%s", e.audit)
	}
	for _, o := range []enroll.TokenOptions{{TTL: 49 * time.Hour}, {TTL: -time.Second}, {BoundName: "a\nb"}} {
		if _, _, err := e.svc.CreateToken(t.Context(), "admin", o); err == nil {
			t.Errorf("CreateToken(%+v) = nil, want an error", o)
		}
	}
	if _, _, err := e.svc.CreateToken(t.Context(), "", enroll.TokenOptions{}); !errors.Is(err, enroll.ErrNoActor) {
		t.Errorf("CreateToken(no actor) = %v, want ErrNoActor", err)
	}
	if err := e.svc.RevokeToken(t.Context(), "admin", "tok_none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeToken(unknown) = %v, want ErrNotFound", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  enroll.Config
		want []string // substrings of the error; none: valid
	}{
		{"zero", enroll.Config{}, nil},
		{"rules", enroll.Config{AllowList: []enroll.Rule{{Name: "a", Hostname: "lab-*"}}}, nil},
		{"empty rule", enroll.Config{AllowList: []enroll.Rule{{Name: "all"}}}, []string{"every request"}},
		{"bad pattern and no name", enroll.Config{AllowList: []enroll.Rule{{Name: "x", OS: "["}, {Hostname: "a"}}},
			[]string{`os pattern "["`, "no name"}},
		{"duplicate names", enroll.Config{AllowList: []enroll.Rule{{Name: "a", OS: "x"}, {Name: "a", OS: "y"}}}, []string{"used twice"}},
		{"ttls", enroll.Config{RequestTTL: -1, TokenTTL: 3 * time.Hour, MaxTokenTTL: time.Hour},
			[]string{"request_ttl", "exceeds max_token_ttl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.WithDefaults().Validate()
			if (err == nil) != (len(tt.want) == 0) {
				t.Fatalf("Validate() = %v, want errors %q", err, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to mention %q", err, w)
				}
			}
		})
	}
}
