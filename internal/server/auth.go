package server

import (
	"crypto/x509"
	"net/http"
	"time"

	"github.com/portcullis-dev/portcullis/internal/pki"
)

// verifyClient verifies the client certificate of r against the roots.
// With graceful, an expired leaf is verified as of one second before its
// expiry, so that the RA (which knows the grace period) can judge it; the
// signature chain, key usage and proof of possession (the TLS handshake's
// CertificateVerify, checked by crypto/tls) still hold.
func (s *Server) verifyClient(r *http.Request, graceful bool) (*x509.Certificate, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, errStatus(http.StatusUnauthorized, "this endpoint needs a client certificate (mTLS)")
	}
	leaf := r.TLS.PeerCertificates[0]
	inter := x509.NewCertPool()
	if s.cfg.Intermediates != nil {
		inter = s.cfg.Intermediates.Clone()
	}
	for _, c := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	now := s.deps.Now()
	at := now
	if graceful && now.After(leaf.NotAfter) {
		at = leaf.NotAfter.Add(-time.Second)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: s.cfg.Roots, Intermediates: inter, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return nil, errStatus(http.StatusUnauthorized, "client certificate %s (CN %q) does not verify: %v",
			pki.SerialString(leaf.SerialNumber), leaf.Subject.CommonName, err)
	}
	return leaf, nil
}

// admin is an authenticated admin.
type admin struct {
	cn   string
	role Role
}

// actor is how the audit log names the admin.
func (a admin) actor() string { return "admin:" + a.cn }

// authAdmin authenticates r's caller as an admin with at least role need.
func (s *Server) authAdmin(r *http.Request, need Role) (admin, error) {
	leaf, err := s.verifyClient(r, false)
	if err != nil {
		return admin{}, err
	}
	if _, err := s.deps.RA.CheckClient(r.Context(), leaf); err != nil {
		return admin{}, errStatus(http.StatusForbidden, "client certificate %q: %v", leaf.Subject.CommonName, err)
	}
	a := admin{cn: leaf.Subject.CommonName, role: s.cfg.Roles[leaf.Subject.CommonName]}
	if a.role == 0 {
		return admin{}, errStatus(http.StatusForbidden, "%q has no admin role (server.yaml admin.roles)", a.cn)
	}
	if a.role < need {
		return admin{}, errStatus(http.StatusForbidden, "%q is %s; this needs %s", a.cn, a.role, need)
	}
	return a, nil
}

// adminOnly wraps a handler that needs an admin of role need.
func (s *Server) adminOnly(need Role, h func(http.ResponseWriter, *http.Request, admin) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, err := s.authAdmin(r, need)
		if err == nil {
			err = h(w, r, a)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	}
}
