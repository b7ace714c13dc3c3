package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-dev/portcullis/internal/ca"
	"github.com/portcullis-dev/portcullis/internal/enroll"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
)

// apiError is an error with the HTTP status it maps to; its message is
// one line, safe to show the caller.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errStatus(status int, format string, a ...any) error {
	return &apiError{status: status, msg: fmt.Sprintf(format, a...)}
}

// statusOf maps the domain's errors to HTTP statuses. The message is the
// error's own: domain errors are written to be read by the caller, and
// none carries a secret (tokens are never in an error, only their IDs).
func statusOf(err error) int {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae.status
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, enroll.ErrLogTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, store.ErrAlreadyDecided), errors.Is(err, store.ErrConflict),
		errors.Is(err, store.ErrAlreadyRevoked), errors.Is(err, store.ErrNameTaken):
		return http.StatusConflict
	case errors.Is(err, enroll.ErrDeviceRevoked), errors.Is(err, ca.ErrRevoked),
		errors.Is(err, enroll.ErrExpiredBeyondGrace), errors.Is(err, enroll.ErrNotADevice):
		return http.StatusForbidden
	case errors.Is(err, enroll.ErrRequestExpired):
		return http.StatusGone
	case errors.Is(err, enroll.ErrInvalid), errors.Is(err, pki.ErrCSRSignature), errors.Is(err, pki.ErrMalformedCSR),
		errors.Is(err, pki.ErrCSRAsksForCA), errors.Is(err, pki.ErrWeakKey), errors.Is(err, pki.ErrNameNotAllowed):
		return http.StatusBadRequest
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeError answers with {"error": "..."}; a 5xx hides the detail from
// the caller and logs it instead.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	msg := err.Error()
	if status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = http.StatusText(status)
	}
	s.writeJSON(w, status, map[string]string{"error": oneLine(msg)})
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"error":"encoding the response failed"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes()) // the client may be gone; nothing to do then.
}

// decodeJSON reads one JSON object of at most MaxBody bytes into v,
// refusing unknown fields and trailing data: a typo in a field name must
// not silently drop the field.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return errStatus(http.StatusUnsupportedMediaType, "content type %q: want application/json", ct)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errStatus(http.StatusRequestEntityTooLarge, "request body over %d bytes", s.cfg.MaxBody)
		}
		if errors.Is(err, io.EOF) {
			return errStatus(http.StatusBadRequest, "empty request body: want a JSON object")
		}
		return errStatus(http.StatusBadRequest, "malformed JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errStatus(http.StatusBadRequest, "malformed JSON: data after the object")
	}
	return nil
}

// limiter is a token bucket per source IP. Buckets idle for a minute are
// dropped, so a scan from many addresses does not grow it without bound.
type limiter struct {
	mu      sync.Mutex
	rate    float64
	burst   float64
	now     func() time.Time
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

const maxBuckets = 100_000

func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// allow takes a token for key and reports whether there was one, and if
// not, how long until there is.
func (l *limiter) allow(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.swept) > time.Minute || len(l.buckets) >= maxBuckets {
		for k, b := range l.buckets {
			if now.Sub(b.last) > time.Minute {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			return false, time.Second
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// limited wraps an unauthenticated handler with the per-address limit.
func (s *Server) limited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ok, wait := s.limiter.allow(sourceIP(r))
		if !ok {
			w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
			s.writeError(w, r, errStatus(http.StatusTooManyRequests, "too many requests from this address; retry later"))
			return
		}
		h(w, r)
	}
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
