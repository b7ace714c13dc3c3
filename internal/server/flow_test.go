package server_test

import (
	"crypto/x509"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/enroll"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/server"
)

// TestEnrollApproveRenewRevoke walks a device through its life over the
// API: pending, approved by an admin, issued, renewed over mTLS, revoked
// with its device, then refused.
func TestEnrollApproveRenewRevoke(t *testing.T) {
	e := newEnv(t, enroll.Config{})
	anon := e.client(nil)
	dev := newDevice(t, nil)

	r := e.do(anon, "POST", "/api/v1/enroll", dev.body("laptop-1"))
	if r.status != http.StatusAccepted || r.header.Get("Retry-After") != "3" {
		t.Fatalf("enroll = %d (Retry-After %q) %s; want 202, 3", r.status, r.header.Get("Retry-After"), r.body)
	}
	id := r.json(t)["id"].(string)
	if loc := r.header.Get("Location"); loc != "/api/v1/enroll/"+id {
		t.Errorf("Location %q", loc)
	}
	// The same CSR again is the same request.
	if again := e.do(anon, "POST", "/api/v1/enroll", dev.body("laptop-1")); again.json(t)["id"] != id {
		t.Errorf("re-submission got %v, want %s", again.json(t)["id"], id)
	}
	if p := e.do(anon, "GET", "/api/v1/enroll/"+id, nil); p.status != http.StatusAccepted || p.json(t)["state"] != "pending" {
		t.Errorf("poll = %d %s; want 202 pending", p.status, p.body)
	}
	// The queue shows it to a viewer; a viewer cannot approve.
	q := e.do(e.admin("viewer"), "GET", "/api/v1/admin/requests?state=pending", nil)
	if q.status != 200 || !strings.Contains(string(q.body), id) {
		t.Fatalf("queue = %d %s", q.status, q.body)
	}
	if v := e.do(e.admin("viewer"), "POST", "/api/v1/admin/requests/"+id+"/approve", nil); v.status != http.StatusForbidden {
		t.Errorf("viewer approve = %d %s; want 403", v.status, v.body)
	}
	a := e.do(e.admin("approver"), "POST", "/api/v1/admin/requests/"+id+"/approve", map[string]string{"comment": "known laptop"})
	if a.status != 200 || a.json(t)["state"] != "issued" || a.json(t)["decided_by"] != "admin:approver" {
		t.Fatalf("approve = %d %s; want 200 issued by admin:approver", a.status, a.body)
	}
	// A second decision says who was first.
	if d := e.do(e.admin("admin"), "POST", "/api/v1/admin/requests/"+id+"/deny", nil); d.status != http.StatusConflict ||
		!strings.Contains(string(d.body), "already issued by admin:approver") {
		t.Errorf("second decision = %d %s; want 409 naming the approver", d.status, d.body)
	}
	p := e.do(anon, "GET", "/api/v1/enroll/"+id, nil)
	if p.status != 200 {
		t.Fatalf("poll after approval = %d %s", p.status, p.body)
	}
	cert := dev.tlsCert(t, p.json(t)["certificate"].(string))
	inter := x509.NewCertPool()
	inter.AddCert(e.ca.Issuer())
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: e.roots, Intermediates: inter, CurrentTime: e.clock.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("issued certificate does not verify: %v", err)
	}
	devID := p.json(t)["device"].(string)
	if cert.Leaf.Subject.CommonName != devID {
		t.Errorf("certificate CN %q, want the device ID %s", cert.Leaf.Subject.CommonName, devID)
	}

	// Renewal: no body (same key), then a new key.
	mtls := e.client(&cert)
	e.clock.Advance(time.Hour)
	rn := e.do(mtls, "POST", "/api/v1/renew", nil)
	if rn.status != 200 || rn.json(t)["replaces"] != pki.SerialString(cert.Leaf.SerialNumber) {
		t.Fatalf("renew = %d %s", rn.status, rn.body)
	}
	renewed := dev.tlsCert(t, rn.json(t)["certificate"].(string))
	dev2 := newDevice(t, nil)
	rn2 := e.do(e.client(&renewed), "POST", "/api/v1/renew", map[string]string{"csr": dev2.csrPEM, "agent_version": "0.2.0"})
	if rn2.status != 200 {
		t.Fatalf("renew with a new key = %d %s", rn2.status, rn2.body)
	}
	current := dev2.tlsCert(t, rn2.json(t)["certificate"].(string))
	// The superseded certificate does not renew twice.
	if again := e.do(e.client(&renewed), "POST", "/api/v1/renew", nil); again.status != http.StatusConflict {
		t.Errorf("renew with a superseded certificate = %d %s; want 409", again.status, again.body)
	}
	dv := e.do(e.admin("viewer"), "GET", "/api/v1/admin/devices/"+devID, nil)
	if dv.status != 200 || dv.json(t)["agent_version"] != "0.2.0" || len(dv.json(t)["certificates"].([]any)) != 3 {
		t.Errorf("device = %d %s; want agent 0.2.0 and 3 certificates", dv.status, dv.body)
	}

	// Revoke the device: its valid certificates are revoked, the CRL says
	// so, renewal is refused.
	if v := e.do(e.admin("approver"), "POST", "/api/v1/admin/devices/"+devID+"/revoke", nil); v.status != http.StatusForbidden {
		t.Errorf("approver revoke = %d; want 403", v.status)
	}
	rv := e.do(e.admin("admin"), "POST", "/api/v1/admin/devices/"+devID+"/revoke", map[string]string{"reason": "keyCompromise"})
	if rv.status != 200 || len(rv.json(t)["revoked_serials"].([]any)) != 3 || len(e.revoked) != 3 {
		t.Fatalf("revoke device = %d %s (told the caches %v)", rv.status, rv.body, e.revoked)
	}
	if again := e.do(e.client(&current), "POST", "/api/v1/renew", nil); again.status != http.StatusForbidden ||
		!strings.Contains(string(again.body), "device is revoked") {
		t.Errorf("renew after revocation = %d %s; want 403 device is revoked", again.status, again.body)
	}
	crlResp, err := http.Get(e.public.URL + "/crl/issuing.crl")
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(crlResp.Body)
	crlResp.Body.Close()
	crl, err := x509.ParseRevocationList(der)
	if err != nil || crl.CheckSignatureFrom(e.ca.Issuer()) != nil {
		t.Fatalf("CRL: %v", err)
	}
	listed := map[string]bool{}
	for _, rc := range crl.RevokedCertificateEntries {
		listed[pki.SerialString(rc.SerialNumber)] = true
	}
	if !listed[pki.SerialString(current.Leaf.SerialNumber)] || crlResp.Header.Get("ETag") == "" {
		t.Errorf("CRL lists %v, want %s; ETag %q", listed, pki.SerialString(current.Leaf.SerialNumber), crlResp.Header.Get("ETag"))
	}
	// Per-issuer name too.
	if r, err := http.Get(e.public.URL + fmt.Sprintf("/crl/%x.crl", e.ca.Issuer().SubjectKeyId)); err != nil || r.StatusCode != 200 {
		t.Errorf("CRL by SKI: %v %v", r.StatusCode, err)
	}

	// Inventory export.
	csvResp := e.do(e.admin("viewer"), "GET", "/api/v1/admin/devices?format=csv", nil)
	rows, err := csv.NewReader(strings.NewReader(string(csvResp.body))).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][0] != devID || rows[1][7] != "revoked" {
		t.Errorf("devices CSV = %v, %v", rows, err)
	}
	st := e.do(e.admin("viewer"), "GET", "/api/v1/admin/stats", nil).json(t)
	if fmt.Sprint(st["devices"]) != "map[revoked:1]" {
		t.Errorf("stats = %v", st)
	}
}

func TestDenyAndTokens(t *testing.T) {
	e := newEnv(t, enroll.Config{})
	anon := e.client(nil)
	r := e.do(anon, "POST", "/api/v1/enroll", newDevice(t, nil).body("laptop-1")).json(t)
	e.do(e.admin("approver"), "POST", fmt.Sprintf("/api/v1/admin/requests/%s/deny", r["id"]), map[string]string{"comment": "unknown owner"})
	p := e.do(anon, "GET", fmt.Sprintf("/api/v1/enroll/%s", r["id"]), nil)
	if p.status != http.StatusForbidden || p.json(t)["error"] != "enrollment denied: unknown owner" {
		t.Errorf("poll after deny = %d %s; want 403 with the reason", p.status, p.body)
	}
	// Tokens: made by an admin only, shown once, single use.
	if v := e.do(e.admin("approver"), "POST", "/api/v1/admin/tokens", nil); v.status != http.StatusForbidden {
		t.Errorf("approver creates token = %d; want 403", v.status)
	}
	tok := e.do(e.admin("admin"), "POST", "/api/v1/admin/tokens", map[string]string{"ttl": "1h", "bound_name": "laptop-2"})
	if tok.status != http.StatusCreated {
		t.Fatalf("create token = %d %s", tok.status, tok.body)
	}
	secret := tok.json(t)["token"].(string)
	list := e.do(e.admin("viewer"), "GET", "/api/v1/admin/tokens", nil)
	if strings.Contains(string(list.body), secret) {
		t.Error("token list shows the secret")
	}
	body := newDevice(t, nil).body("laptop-2")
	body["token"] = secret
	got := e.do(anon, "POST", "/api/v1/enroll", body)
	if got.status != 200 || got.json(t)["certificate"] == nil {
		t.Fatalf("enroll with token = %d %s; want 200 with a certificate", got.status, got.body)
	}
	replay := newDevice(t, nil).body("laptop-2")
	replay["token"] = secret
	rp := e.do(anon, "POST", "/api/v1/enroll", replay)
	if rp.status != http.StatusAccepted || !strings.Contains(rp.json(t)["token_rejected"].(string), "already used") {
		t.Errorf("replayed token = %d %s; want 202 pending, token rejected as used", rp.status, rp.body)
	}
	// Bulk: one already decided, one pending.
	p2 := e.do(anon, "POST", "/api/v1/enroll", newDevice(t, nil).body("laptop-3")).json(t)
	bulk := e.do(e.admin("approver"), "POST", "/api/v1/admin/requests/decide",
		map[string]any{"ids": []any{r["id"], p2["id"]}, "decision": "approve"})
	res := bulk.json(t)["results"].([]any)
	if bulk.status != 200 || len(res) != 2 || !strings.Contains(fmt.Sprint(res[0]), "already denied") || res[1].(map[string]any)["state"] != "issued" {
		t.Errorf("bulk = %d %s", bulk.status, bulk.body)
	}
}

// TestBadInput: each is a 4xx with a one-line error, and nothing stored.
func TestBadInput(t *testing.T) {
	e := newEnv(t, enroll.Config{})
	anon := e.client(nil)
	good := newDevice(t, nil)
	badSig := newDevice(t, nil)
	badSig.csrPEM = strings.Replace(badSig.csrPEM, badSig.csrPEM[len(badSig.csrPEM)-40:len(badSig.csrPEM)-30], "AAAAAAAAAA", 1)
	manySANs := newDevice(t, func(r *x509.CertificateRequest) {
		for i := range 5000 {
			r.DNSNames = append(r.DNSNames, fmt.Sprintf("h%d.example.com", i))
		}
	})
	withBody := func(d device, mod func(map[string]any)) map[string]any {
		b := d.body("laptop-1")
		if mod != nil {
			mod(b)
		}
		return b
	}
	for _, tt := range []struct {
		name   string
		body   any
		status int
		want   string
	}{
		{"malformed JSON", `{"csr":`, 400, "malformed JSON"},
		{"trailing data", `{"csr":"x"} {}`, 400, "data after the object"},
		{"unknown field", withBody(good, func(b map[string]any) { b["hostnme"] = "x" }), 400, `unknown field "hostnme"`},
		{"no CSR", withBody(good, func(b map[string]any) { delete(b, "csr") }), 400, `missing "csr"`},
		{"not a CSR", withBody(good, func(b map[string]any) { b["csr"] = "hello" }), 400, "CSR"},
		{"bad signature", withBody(badSig, nil), 400, ""},
		{"CA:TRUE", withBody(newDevice(t, func(r *x509.CertificateRequest) {
			r.ExtraExtensions = append(r.ExtraExtensions, caTrueExt(t))
		}), nil), 400, "CA"},
		{"oversized", withBody(manySANs, nil), 413, "over 16384 bytes"},
		{"control character in facts", withBody(good, func(b map[string]any) { b["hostname"] = "a\nb" }), 400, ""},
	} {
		r := e.do(anon, "POST", "/api/v1/enroll", tt.body)
		m := r.json(t)
		msg, _ := m["error"].(string)
		if r.status != tt.status || !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
			t.Errorf("%s: %d %q; want %d containing %q", tt.name, r.status, msg, tt.status, tt.want)
		}
	}
	if q := e.do(e.admin("viewer"), "GET", "/api/v1/admin/requests", nil); strings.Contains(string(q.body), `"id"`) {
		t.Errorf("bad input stored requests: %s", q.body)
	}
	// Authentication on mTLS routes.
	for _, tt := range []struct {
		name   string
		client *http.Client
		method string
		path   string
		status int
	}{
		{"admin route without certificate", anon, "GET", "/api/v1/admin/requests", 401},
		{"renew without certificate", anon, "POST", "/api/v1/renew", 401},
		{"admin cert without role", e.admin("nobody"), "GET", "/api/v1/admin/requests", 403},
		{"renew with an admin certificate", e.admin("admin"), "POST", "/api/v1/renew", 403},
		{"unknown request", anon, "GET", "/api/v1/enroll/req_0000", 404},
		{"bad state filter", e.admin("viewer"), "GET", "/api/v1/admin/requests?state=maybe", 400},
	} {
		if r := e.do(tt.client, tt.method, tt.path, nil); r.status != tt.status {
			t.Errorf("%s: %d %s; want %d", tt.name, r.status, r.body, tt.status)
		}
	}
	// A certificate of another CA is refused on every mTLS route.
	foreign := newEnv(t, enroll.Config{}).admins["admin"]
	for _, path := range []string{"/api/v1/renew", "/api/v1/admin/requests"} {
		method := map[string]string{"/api/v1/renew": "POST", "/api/v1/admin/requests": "GET"}[path]
		if r := e.do(e.client(&foreign), method, path, nil); r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), "does not verify") {
			t.Errorf("%s with another CA's certificate = %d %s; want 401", path, r.status, r.body)
		}
	}
	// A revoked admin certificate is refused.
	if _, err := e.ca.Revoke(t.Context(), "viewer", 0); err != nil {
		t.Fatal(err)
	}
	if r := e.do(e.admin("viewer"), "GET", "/api/v1/admin/requests", nil); r.status != 403 || !strings.Contains(string(r.body), "revoked") {
		t.Errorf("revoked admin = %d %s; want 403 revoked", r.status, r.body)
	}
}

func TestDeviceLogs(t *testing.T) {
	e := newEnv(t, enroll.Config{LogMaxBytes: 1000, LogsKept: 2})
	tok := e.do(e.admin("admin"), "POST", "/api/v1/admin/tokens", nil).json(t)["token"].(string)
	dev := newDevice(t, nil)
	body := dev.body("laptop-1")
	body["token"] = tok
	r := e.do(e.client(nil), "POST", "/api/v1/enroll", body)
	cert := dev.tlsCert(t, r.json(t)["certificate"].(string))
	devID := r.json(t)["device"].(string)
	mtls := e.client(&cert)
	upload := func(c *http.Client, name, data string) resp {
		t.Helper()
		return e.do(c, "POST", "/api/v1/logs?name="+name, []byte(data))
	}
	for i := range 3 {
		if u := upload(mtls, "agent.log", fmt.Sprintf("line %d\n", i)); u.status != http.StatusCreated {
			t.Fatalf("upload %d = %d %s", i, u.status, u.body)
		}
	}
	if u := upload(mtls, "big.log", strings.Repeat("x", 1001)); u.status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized upload = %d %s; want 413", u.status, u.body)
	}
	if u := upload(mtls, "..%2Fetc", "x"); u.status != http.StatusBadRequest {
		t.Errorf("upload named ../etc = %d %s; want 400", u.status, u.body)
	}
	if u := upload(e.client(nil), "a.log", "x"); u.status != http.StatusUnauthorized {
		t.Errorf("upload without a certificate = %d; want 401", u.status)
	}
	if u := upload(e.admin("admin"), "a.log", "x"); u.status != http.StatusForbidden {
		t.Errorf("upload with an admin certificate = %d; want 403", u.status)
	}
	list := e.do(e.admin("viewer"), "GET", "/api/v1/admin/devices/"+devID+"/logs", nil)
	logs := list.json(t)["logs"].([]any)
	if list.status != 200 || len(logs) != 2 {
		t.Fatalf("logs = %d %s; want the newest 2", list.status, list.body)
	}
	newest := logs[0].(map[string]any)
	get := e.do(e.admin("viewer"), "GET", fmt.Sprintf("/api/v1/admin/devices/%s/logs/%v", devID, newest["id"]), nil)
	if get.status != 200 || string(get.body) != "line 2\n" || get.header.Get("Content-Disposition") == "" {
		t.Errorf("download = %d %q (%v)", get.status, get.body, get.header)
	}
	st := e.do(e.admin("viewer"), "GET", "/api/v1/admin/stats", nil).json(t)
	days := st["enrollments_per_day"].([]any)
	if len(days) != 30 || days[29].(map[string]any)["count"].(float64) != 1 {
		t.Errorf("enrollments_per_day = %v", days)
	}
}

func TestRateLimits(t *testing.T) {
	e := newEnv(t, enroll.Config{})
	anon := e.client(nil)
	// Per token: the sixth attempt with one token within a minute waits.
	var last resp
	for range 6 {
		b := newDevice(t, nil).body("laptop-1")
		b["token"] = "not-a-real-token"
		last = e.do(anon, "POST", "/api/v1/enroll", b)
	}
	if last.status != http.StatusTooManyRequests || last.header.Get("Retry-After") == "" {
		t.Errorf("sixth attempt with one token = %d %s; want 429 with Retry-After", last.status, last.body)
	}
	// Per address: Burst requests pass, the next waits (this env allows 1000).
	srv, err := server.New(server.Config{Certificate: e.api.TLS.Certificates[0], Roots: e.roots, RatePerSecond: 0.001, Burst: 2},
		server.Deps{RA: e.ra})
	if err != nil {
		t.Fatal(err)
	}
	var codes []int
	for range 3 {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/api/v1/enroll/req_x", nil)
		srv.APIHandler().ServeHTTP(rec, req)
		codes = append(codes, rec.Code)
	}
	if fmt.Sprint(codes) != "[404 404 429]" {
		t.Errorf("three polls with burst 2 = %v; want [404 404 429]", codes)
	}
}
