package server

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"github.com/portcullis-dev/portcullis/internal/api"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/ca"
	"github.com/portcullis-dev/portcullis/internal/enroll"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
)

func (s *Server) routes() (api, public http.Handler) {
	m := http.NewServeMux()
	h := func(pattern string, fn http.HandlerFunc) {
		s.patterns = append(s.patterns, pattern)
		m.Handle(pattern, s.metrics.instrument(pattern, fn))
	}
	h("POST /api/v1/enroll", s.limited(s.handleEnroll))
	h("GET /api/v1/enroll/{id}", s.limited(s.handlePoll))
	h("POST /api/v1/renew", s.handleRenew)
	h("GET /api/v1/admin/requests", s.adminOnly(RoleViewer, s.handleListRequests))
	h("POST /api/v1/admin/requests/{id}/approve", s.adminOnly(RoleApprover, s.handleDecide(true)))
	h("POST /api/v1/admin/requests/{id}/deny", s.adminOnly(RoleApprover, s.handleDecide(false)))
	h("POST /api/v1/admin/requests/decide", s.adminOnly(RoleApprover, s.handleBulkDecide))
	h("GET /api/v1/admin/devices", s.adminOnly(RoleViewer, s.handleListDevices))
	h("GET /api/v1/admin/devices/{id}", s.adminOnly(RoleViewer, s.handleDevice))
	h("POST /api/v1/admin/devices/{id}/revoke", s.adminOnly(RoleAdmin, s.handleRevokeDevice))
	h("GET /api/v1/admin/certs", s.adminOnly(RoleViewer, s.handleListCerts))
	h("POST /api/v1/admin/certs/{serial}/revoke", s.adminOnly(RoleAdmin, s.handleRevokeCert))
	h("GET /api/v1/admin/tokens", s.adminOnly(RoleViewer, s.handleListTokens))
	h("POST /api/v1/admin/tokens", s.adminOnly(RoleAdmin, s.handleCreateToken))
	h("POST /api/v1/admin/tokens/{id}/revoke", s.adminOnly(RoleAdmin, s.handleRevokeToken))
	h("GET /api/v1/admin/stats", s.adminOnly(RoleViewer, s.handleStats))
	h("POST /api/v1/logs", s.handleUploadLog)
	h("GET /api/v1/admin/devices/{id}/logs", s.adminOnly(RoleViewer, s.handleListLogs))
	h("GET /api/v1/admin/devices/{id}/logs/{log}", s.adminOnly(RoleViewer, s.handleGetLog))
	s.revocationRoutes(h)
	s.healthRoutes(h)

	p := http.NewServeMux()
	ph := func(pattern string, fn http.HandlerFunc) { p.Handle(pattern, s.metrics.instrument(pattern, fn)) }
	s.revocationRoutes(ph)
	s.healthRoutes(ph)
	p.Handle("GET /metrics", s.metrics.handler())
	return m, p
}

// viewRequest is a request as the API shows it.
func viewRequest(r *store.Request) api.Request {
	v := api.Request{ID: string(r.ID), Device: string(r.Device), State: string(r.State), Facts: api.Facts(r.Facts),
		DecidedBy: r.DecidedBy, Comment: r.Comment, Evidence: r.Evidence, CertSerial: r.CertSerial,
		SourceAddr: r.SourceAddr, CreatedAt: r.CreatedAt.UTC()}
	if !r.DecidedAt.IsZero() {
		t := r.DecidedAt.UTC()
		v.DecidedAt = &t
	}
	return v
}

func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) {
	var body api.EnrollRequest
	if err := s.decodeJSON(w, r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if body.CSR == "" {
		s.writeError(w, r, errStatus(http.StatusBadRequest, `missing "csr": want a PEM certificate request`))
		return
	}
	if body.Token != "" {
		// Per token as well as per address: a leaked token replayed from
		// many addresses is slowed down too (it is single-use anyway; this
		// bounds the load and the audit noise it makes).
		h := sha256.Sum256([]byte(body.Token))
		if ok, wait := s.tokenLimiter.allow(hex.EncodeToString(h[:8])); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
			s.writeError(w, r, errStatus(http.StatusTooManyRequests, "too many attempts with this token; retry later"))
			return
		}
	}
	out, err := s.deps.RA.Submit(r.Context(), enroll.Submission{CSR: []byte(body.CSR), Facts: enroll.Facts(body.Facts),
		Token: body.Token, SourceAddr: r.RemoteAddr})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.metrics.enrollments.WithLabelValues(string(out.Request.State)).Inc()
	note := ""
	if out.TokenRejected != nil {
		note = out.TokenRejected.Error()
	}
	s.answerRequest(w, r, out.Request, note)
}

func (s *Server) handlePoll(w http.ResponseWriter, r *http.Request) {
	req, err := s.deps.RA.Status(r.Context(), store.RequestID(r.PathValue("id")))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.answerRequest(w, r, req, "")
}

// answerRequest settles the request (an approved one gets its
// certificate now) and answers as RFC 7030 §4.2.3 and ACME do: 200 with
// the certificate, 202 with Retry-After while it waits, 403 when denied.
func (s *Server) answerRequest(w http.ResponseWriter, r *http.Request, req *store.Request, tokenNote string) {
	settled, err := s.deps.RA.Settle(r.Context(), req.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v := viewRequest(settled)
	v.TokenRejected = tokenNote
	// A device sees its own request, not who decided or the evidence.
	v.Evidence, v.SourceAddr = nil, ""
	w.Header().Set("Location", "/api/v1/enroll/"+string(settled.ID))
	switch settled.State {
	case store.RequestIssued:
		pemChain, err := s.chainPEM(r, settled.CertSerial)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		v.Certificate = pemChain
		s.writeJSON(w, http.StatusOK, v)
	case store.RequestDenied:
		v.Error = "enrollment denied"
		if settled.Comment != "" {
			v.Error += ": " + oneLine(settled.Comment)
		}
		s.writeJSON(w, http.StatusForbidden, v)
	default:
		w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.PollInterval.Seconds())))
		s.writeJSON(w, http.StatusAccepted, v)
	}
}

func (s *Server) chainPEM(r *http.Request, serial string) (string, error) {
	rec, err := s.deps.RA.Certificate(r.Context(), serial)
	if err != nil {
		return "", err
	}
	c, err := x509.ParseCertificate(rec.DER)
	if err != nil {
		return "", fmt.Errorf("stored certificate %s: %w", serial, err)
	}
	return string(pki.EncodeCertificates(append([]*x509.Certificate{c}, s.cfg.Chain...)...)), nil
}

func viewCert(c *store.Cert) api.Cert {
	v := api.Cert{Serial: c.Serial, Name: c.Name, Profile: c.Profile, Subject: c.Subject,
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), Status: string(c.Status)}
	if c.Status == store.StatusRevoked {
		v.RevokedAt, v.Reason = c.RevokedAt.UTC(), ca.ReasonName(c.Reason)
	}
	return v
}

func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request) {
	leaf, err := s.verifyClient(r, true)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var body api.RenewRequest
	if r.ContentLength != 0 {
		if err := s.decodeJSON(w, r, &body); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	var csr *x509.CertificateRequest
	if body.CSR != "" {
		if csr, err = pki.ParseCSR([]byte(body.CSR)); err != nil {
			s.writeError(w, r, errStatus(http.StatusBadRequest, "%v", err))
			return
		}
	}
	ren, err := s.deps.RA.Renew(r.Context(), leaf, csr, body.AgentVersion)
	if err != nil {
		s.metrics.renewals.WithLabelValues("refused").Inc()
		s.writeError(w, r, err)
		return
	}
	s.metrics.renewals.WithLabelValues("renewed").Inc()
	v := api.Cert{Serial: pki.SerialString(ren.Cert.SerialNumber), Name: string(ren.Device.ID), Profile: "device",
		Subject: ren.Cert.Subject.String(), NotBefore: ren.Cert.NotBefore.UTC(), NotAfter: ren.Cert.NotAfter.UTC(),
		Status: string(store.StatusActive), Replaces: ren.Replaces,
		Certificate: string(pki.EncodeCertificates(append([]*x509.Certificate{ren.Cert}, s.cfg.Chain...)...))}
	s.writeJSON(w, http.StatusOK, v)
}

// page reads the paging parameters.
func page(r *http.Request) (after string, limit int, err error) {
	q := r.URL.Query()
	if l := q.Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 {
			return "", 0, errStatus(http.StatusBadRequest, "limit %q: want a positive number", l)
		}
	}
	return q.Get("after"), limit, nil
}

func (s *Server) handleListRequests(w http.ResponseWriter, r *http.Request, _ admin) error {
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	f := store.RequestFilter{State: store.RequestState(r.URL.Query().Get("state")), Device: store.DeviceID(r.URL.Query().Get("device")),
		After: store.RequestID(after), Limit: limit}
	switch f.State {
	case "", store.RequestPending, store.RequestApproved, store.RequestDenied, store.RequestIssued:
	default:
		return errStatus(http.StatusBadRequest, "state %q: want pending, approved, denied or issued", f.State)
	}
	reqs, err := s.deps.RA.Requests(r.Context(), f)
	if err != nil {
		return err
	}
	out := api.RequestList{Requests: []api.Request{}}
	for _, q := range reqs {
		out.Requests = append(out.Requests, viewRequest(q))
	}
	if len(reqs) > 0 && len(reqs) == store.PageLimit(limit) {
		out.Next = string(reqs[len(reqs)-1].ID)
	}
	s.writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleDecide(approve bool) func(http.ResponseWriter, *http.Request, admin) error {
	return func(w http.ResponseWriter, r *http.Request, a admin) error {
		var body api.DecideRequest
		if r.ContentLength != 0 {
			if err := s.decodeJSON(w, r, &body); err != nil {
				return err
			}
		}
		req, err := s.decide(r, a, store.RequestID(r.PathValue("id")), approve, body.Comment)
		if err != nil {
			return err
		}
		s.writeJSON(w, http.StatusOK, viewRequest(req))
		return nil
	}
}

// decide applies one decision and settles an approval (issues it).
func (s *Server) decide(r *http.Request, a admin, id store.RequestID, approve bool, comment string) (*store.Request, error) {
	var (
		req *store.Request
		err error
	)
	if approve {
		req, err = s.deps.RA.Approve(r.Context(), id, a.actor(), comment)
	} else {
		req, err = s.deps.RA.Deny(r.Context(), id, a.actor(), comment)
	}
	if err != nil {
		return nil, err
	}
	if approve {
		// The decision stands even if issuing fails now; the device's
		// next poll settles it again.
		if settled, err := s.deps.RA.Settle(r.Context(), id); err == nil {
			req = settled
		} else {
			s.log.WarnContext(r.Context(), "issuing an approved request failed; the next poll retries", "request", id, "err", err)
		}
	}
	return req, nil
}

// maxBulk bounds one bulk decision: each is a transaction and an audit
// line; a larger batch is several calls.
const maxBulk = 500

func (s *Server) handleBulkDecide(w http.ResponseWriter, r *http.Request, a admin) error {
	var body api.BulkDecideRequest
	if err := s.decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.Decision != "approve" && body.Decision != "deny" {
		return errStatus(http.StatusBadRequest, "decision %q: want approve or deny", body.Decision)
	}
	if len(body.IDs) == 0 || len(body.IDs) > maxBulk {
		return errStatus(http.StatusBadRequest, "ids: want 1 to %d request IDs, got %d", maxBulk, len(body.IDs))
	}
	var out api.BulkDecideResponse
	// Each decision stands alone: one already decided by someone else
	// says so, the others still apply.
	for _, id := range body.IDs {
		req, err := s.decide(r, a, store.RequestID(id), body.Decision == "approve", body.Comment)
		if err != nil {
			out.Results = append(out.Results, api.BulkResult{ID: id, Error: oneLine(err.Error())})
			continue
		}
		out.Results = append(out.Results, api.BulkResult{ID: id, State: string(req.State)})
	}
	s.writeJSON(w, http.StatusOK, out)
	return nil
}

func viewDevice(d *store.Device) api.Device {
	return api.Device{ID: string(d.ID), Name: d.Name, HardwareSerial: d.HardwareSerial, OS: d.OS,
		OSVersion: d.OSVersion, Owner: d.OwnerEmail, AgentVersion: d.AgentVersion, State: string(d.State),
		FirstSeen: d.FirstSeen.UTC(), LastSeen: d.LastSeen.UTC()}
}

func (s *Server) handleListDevices(w http.ResponseWriter, r *http.Request, _ admin) error {
	after, limit, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.DeviceFilter{State: store.DeviceState(q.Get("state")), OS: q.Get("os"), Owner: q.Get("owner"),
		Name: q.Get("name"), After: store.DeviceID(after), Limit: limit}
	switch f.State {
	case "", store.DevicePending, store.DeviceActive, store.DeviceRevoked:
	default:
		return errStatus(http.StatusBadRequest, "state %q: want pending, active or revoked", f.State)
	}
	if v := q.Get("last_seen_before"); v != "" {
		if f.LastSeenBefore, err = time.Parse(time.RFC3339, v); err != nil {
			return errStatus(http.StatusBadRequest, "last_seen_before %q: want an RFC 3339 time", v)
		}
	}
	devs, err := s.deps.RA.Devices(r.Context(), f)
	if err != nil {
		return err
	}
	views := []api.Device{}
	for _, d := range devs {
		views = append(views, viewDevice(d))
	}
	if q.Get("format") == "csv" {
		return writeCSV(w, "devices.csv", []string{"id", "name", "hardware_serial", "os", "os_version", "owner_email",
			"agent_version", "state", "first_seen", "last_seen"}, len(views), func(i int) []string {
			d := views[i]
			return []string{d.ID, d.Name, d.HardwareSerial, d.OS, d.OSVersion, d.Owner, d.AgentVersion, d.State,
				d.FirstSeen.Format(time.RFC3339), d.LastSeen.Format(time.RFC3339)}
		})
	}
	out := api.DeviceList{Devices: views}
	if len(devs) > 0 && len(devs) == store.PageLimit(limit) {
		out.Next = string(devs[len(devs)-1].ID)
	}
	s.writeJSON(w, http.StatusOK, out)
	return nil
}

// writeCSV writes rows as CSV; cells that a spreadsheet would run as a
// formula are prefixed with a quote (OWASP's CSV injection advice): the
// facts are device claims, and an admin opens the export in Excel.
func writeCSV(w http.ResponseWriter, name string, header []string, n int, row func(int) []string) error {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return err
	}
	for i := range n {
		cells := row(i)
		for j, c := range cells {
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				cells[j] = "'" + c
			}
		}
		if err := cw.Write(cells); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request, _ admin) error {
	d, certs, err := s.deps.RA.Device(r.Context(), store.DeviceID(r.PathValue("id")))
	if err != nil {
		return err
	}
	v := viewDevice(d)
	for _, c := range certs {
		v.Certificates = append(v.Certificates, viewCert(c))
	}
	s.writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) revokeReason(w http.ResponseWriter, r *http.Request) (int, error) {
	var body api.RevokeRequest
	if r.ContentLength != 0 {
		if err := s.decodeJSON(w, r, &body); err != nil {
			return 0, err
		}
	}
	if body.Reason == "" {
		return 0, nil
	}
	code, err := ca.ParseReason(body.Reason)
	if err != nil {
		return 0, errStatus(http.StatusBadRequest, "%v", err)
	}
	return code, nil
}

func (s *Server) handleRevokeDevice(w http.ResponseWriter, r *http.Request, a admin) error {
	reason, err := s.revokeReason(w, r)
	if err != nil {
		return err
	}
	d, serials, err := s.deps.RA.RevokeDevice(r.Context(), a.actor(), store.DeviceID(r.PathValue("id")), reason)
	if err != nil {
		return err
	}
	s.afterRevoke(r, serials...)
	s.writeJSON(w, http.StatusOK, api.DeviceRevoked{Device: viewDevice(d), Revoked: append([]string{}, serials...)})
	return nil
}

func (s *Server) handleRevokeCert(w http.ResponseWriter, r *http.Request, a admin) error {
	reason, err := s.revokeReason(w, r)
	if err != nil {
		return err
	}
	c, err := s.deps.RA.RevokeCert(r.Context(), a.actor(), r.PathValue("serial"), reason)
	if err != nil {
		return err
	}
	s.afterRevoke(r, c.Serial)
	s.writeJSON(w, http.StatusOK, viewCert(c))
	return nil
}

func (s *Server) handleListCerts(w http.ResponseWriter, r *http.Request, _ admin) error {
	q := r.URL.Query()
	f := store.Filter{Name: q.Get("name"), Profile: q.Get("profile"), Status: store.Status(q.Get("status"))}
	if v := q.Get("expiring_within"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return errStatus(http.StatusBadRequest, "expiring_within %q: want a duration such as 720h", v)
		}
		now := s.deps.Now()
		f.NotAfterAfter, f.NotAfterBefore = now, now.Add(d)
	}
	certs, err := s.deps.RA.Certs(r.Context(), f)
	if err != nil {
		return err
	}
	views := []api.Cert{}
	for _, c := range certs {
		views = append(views, viewCert(c))
	}
	if q.Get("format") == "csv" {
		return writeCSV(w, "certificates.csv", []string{"serial", "name", "profile", "subject", "not_before", "not_after", "status", "revoked_at", "reason"},
			len(views), func(i int) []string {
				c := views[i]
				rev := ""
				if !c.RevokedAt.IsZero() {
					rev = c.RevokedAt.Format(time.RFC3339)
				}
				return []string{c.Serial, c.Name, c.Profile, c.Subject, c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), c.Status, rev, c.Reason}
			})
	}
	s.writeJSON(w, http.StatusOK, api.CertList{Certificates: views})
	return nil
}

func viewToken(t *store.Token) api.Token {
	return api.Token{ID: string(t.ID), CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt.UTC(), ExpiresAt: t.ExpiresAt.UTC(),
		BoundName: t.BoundName, BoundOwner: t.BoundOwner, UsedAt: t.UsedAt, UsedBy: string(t.UsedBy), RevokedAt: t.RevokedAt}
}

func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request, a admin) error {
	var body api.TokenRequest
	if r.ContentLength != 0 {
		if err := s.decodeJSON(w, r, &body); err != nil {
			return err
		}
	}
	var o enroll.TokenOptions
	if body.TTL != "" {
		d, err := time.ParseDuration(body.TTL)
		if err != nil {
			return errStatus(http.StatusBadRequest, "ttl %q: want a duration such as 24h", body.TTL)
		}
		o.TTL = d
	}
	o.BoundName, o.BoundOwner = body.BoundName, body.BoundOwner
	secret, t, err := s.deps.RA.CreateToken(r.Context(), a.actor(), o)
	if err != nil {
		return err
	}
	v := viewToken(t)
	v.Secret = secret
	s.writeJSON(w, http.StatusCreated, v)
	return nil
}

func (s *Server) handleListTokens(w http.ResponseWriter, r *http.Request, _ admin) error {
	toks, err := s.deps.RA.Tokens(r.Context())
	if err != nil {
		return err
	}
	views := []api.Token{}
	for _, t := range toks {
		views = append(views, viewToken(t))
	}
	s.writeJSON(w, http.StatusOK, api.TokenList{Tokens: views})
	return nil
}

func (s *Server) handleRevokeToken(w http.ResponseWriter, r *http.Request, a admin) error {
	if err := s.deps.RA.RevokeToken(r.Context(), a.actor(), store.TokenID(r.PathValue("id"))); err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, api.TokenRevoked{ID: r.PathValue("id"), State: "revoked"})
	return nil
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request, _ admin) error {
	st, err := s.deps.RA.Stats(r.Context())
	if err != nil {
		return err
	}
	out := api.Stats{Devices: map[string]int{}, Requests: map[string]int{}, ExpiringWithin7d: st.ExpiringWithin7d,
		ExpiringWithin30d: st.ExpiringWithin30d}
	for k, n := range st.Devices {
		out.Devices[string(k)] = n
	}
	for k, n := range st.Requests {
		out.Requests[string(k)] = n
	}
	for _, d := range st.EnrollmentsPerDay {
		out.EnrollmentsPerDay = append(out.EnrollmentsPerDay, api.DayCount{Day: d.Day.Format(time.DateOnly), Count: d.Count})
	}
	s.writeJSON(w, http.StatusOK, out)
	return nil
}
