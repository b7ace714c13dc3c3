package server

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxOCSPRequest bounds an OCSP request: one CertID with a nonce is about
// 100 bytes; 10 KiB leaves room for signed requests and refuses floods.
const maxOCSPRequest = 10 << 10

func (s *Server) revocationRoutes(h func(string, http.HandlerFunc)) {
	h("GET /crl/{file}", s.handleCRL)
	h("GET /ocsp/{req...}", s.limited(s.handleOCSPGet))
	h("POST /ocsp", s.limited(s.handleOCSPPost))
}

// handleCRL serves the issuing CA's CRL as DER. Its name is
// "issuing.crl" (what the CA bakes into certificates) or "<SKI>.crl", the
// issuer's subject key ID in hex, so a second issuer can have its own.
func (s *Server) handleCRL(w http.ResponseWriter, r *http.Request) {
	if s.deps.CRL == nil {
		http.NotFound(w, r)
		return
	}
	name, ok := strings.CutSuffix(r.PathValue("file"), ".crl")
	if !ok || (name != "issuing" && !strings.EqualFold(name, s.cfg.IssuerID)) {
		http.NotFound(w, r)
		return
	}
	der, etag, next, err := s.deps.CRL.CurrentCRL(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	etag = `"` + etag + `"`
	w.Header().Set("ETag", etag)
	// Relying parties may cache it until a little before nextUpdate, but
	// not so long that a revocation waits for it: at most 5 minutes.
	maxAge := min(max(time.Until(next)-time.Minute, 0), 5*time.Minute)
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(maxAge.Seconds())))
	w.Header().Set("Content-Type", "application/pkix-crl")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(der)
}

// handleOCSPGet takes the base64 of the DER request in the path (RFC
// 6960 appendix A.1), URL-escaped or not.
func (s *Server) handleOCSPGet(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("req")
	if un, err := url.PathUnescape(raw); err == nil {
		raw = un
	}
	if len(raw) > base64.StdEncoding.EncodedLen(maxOCSPRequest) {
		http.Error(w, "OCSP request too large", http.StatusRequestEntityTooLarge)
		return
	}
	der, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		der = []byte{} // answered as malformed by the responder
	}
	s.answerOCSP(w, r, der, true)
}

func (s *Server) handleOCSPPost(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "application/ocsp-request" {
		http.Error(w, "want Content-Type application/ocsp-request", http.StatusUnsupportedMediaType)
		return
	}
	der, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxOCSPRequest))
	if err != nil {
		http.Error(w, "OCSP request too large", http.StatusRequestEntityTooLarge)
		return
	}
	s.answerOCSP(w, r, der, false)
}

func (s *Server) answerOCSP(w http.ResponseWriter, r *http.Request, der []byte, cacheable bool) {
	if s.deps.OCSP == nil {
		http.NotFound(w, r)
		return
	}
	resp, err := s.deps.OCSP.RespondOCSP(r.Context(), der)
	if resp == nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	if err == nil && cacheable {
		w.Header().Set("Cache-Control", "public, max-age=60")
	} else {
		w.Header().Set("Cache-Control", "no-store")
	}
	s.metrics.ocsp.WithLabelValues(map[bool]string{true: "ok", false: "error"}[err == nil]).Inc()
	_, _ = w.Write(resp)
}

// afterRevoke tells the caches that these serials changed.
func (s *Server) afterRevoke(r *http.Request, serials ...string) {
	if s.deps.OnRevoke != nil {
		s.deps.OnRevoke(r.Context(), serials...)
	}
}

func (s *Server) healthRoutes(h func(string, http.HandlerFunc)) {
	h("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
	})
	h("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if s.deps.Ready != nil {
			if err := s.deps.Ready(r.Context()); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, "not ready: "+oneLine(err.Error())+"\n")
				return
			}
		}
		_, _ = io.WriteString(w, "ready\n")
	})
}
