package server_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/ca"
	"github.com/portcullis-dev/portcullis/internal/enroll"
	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/server"
	"github.com/portcullis-dev/portcullis/internal/store/sqlite"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a control server on loopback over a real CA and SQLite store.
type env struct {
	t       testing.TB
	ca      *ca.Authority
	ra      *enroll.Service
	srv     *server.Server
	api     *httptest.Server
	public  *httptest.Server
	clock   *clock
	roots   *x509.CertPool
	admins  map[string]tls.Certificate
	revoked []string
	ocsp    *ca.Responder
}

// crlSource signs a fresh CRL per call: enough for these tests, which
// check content, not speed.
type crlSource struct{ a *ca.Authority }

func (c crlSource) CurrentCRL(ctx context.Context) ([]byte, string, time.Time, error) {
	crl, err := c.a.CRL(ctx)
	if err != nil {
		return nil, "", time.Time{}, err
	}
	return crl.Raw, crl.Number.String(), crl.NextUpdate, nil
}

func newEnv(t testing.TB, cfg enroll.Config) *env {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, clock: &clock{t: time.Now().UTC().Truncate(time.Second)}, admins: map[string]tls.Certificate{}}
	e.ca, err = ca.Init(t.Context(), t.TempDir(), st, ca.DefaultInitOptions(), ca.Options{Now: e.clock.Now, Actor: "test", RecordOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	e.ra, err = enroll.New(cfg, st, enroll.Options{Signer: e.ca, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if e.ocsp, err = e.ca.Responder(t.Context(), ca.ResponderOptions{}); err != nil {
		t.Fatal(err)
	}
	srvCert := e.issue(pki.ProfileServer, "server", pki.Names{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	e.roots = x509.NewCertPool()
	e.roots.AddCert(e.ca.Root())
	roles := map[string]server.Role{}
	for name, role := range map[string]server.Role{"admin": server.RoleAdmin, "viewer": server.RoleViewer, "approver": server.RoleApprover} {
		e.admins[name] = e.issue(pki.ProfileClient, name, pki.Names{})
		roles[name] = role
	}
	e.admins["nobody"] = e.issue(pki.ProfileClient, "nobody", pki.Names{})
	e.srv, err = server.New(server.Config{Certificate: srvCert, Roots: e.roots, Chain: []*x509.Certificate{e.ca.Issuer()},
		IssuerID: fmt.Sprintf("%x", e.ca.Issuer().SubjectKeyId), Roles: roles, PollInterval: 3 * time.Second, MaxBody: 16 << 10,
		RatePerSecond: 1000, Burst: 1000},
		server.Deps{RA: e.ra, CRL: crlSource{e.ca}, OCSP: e.ocsp, Now: e.clock.Now,
			OnRevoke: func(_ context.Context, s ...string) {
				e.revoked = append(e.revoked, s...)
				for _, serial := range s {
					e.ocsp.Invalidate(serial)
				}
			}})
	if err != nil {
		t.Fatal(err)
	}
	// Every answer of every test is checked against docs/openapi.yaml.
	rec := &recorder{h: e.srv.APIHandler()}
	t.Cleanup(func() { checkAgainstSpec(t, rec.seen) })
	e.api = httptest.NewUnstartedServer(rec)
	e.api.TLS = e.srv.TLSConfig()
	e.api.StartTLS()
	t.Cleanup(e.api.Close)
	e.public = httptest.NewServer(e.srv.PublicHandler())
	t.Cleanup(e.public.Close)
	return e
}

func (e *env) issue(p pki.Profile, name string, n pki.Names) tls.Certificate {
	e.t.Helper()
	out, err := e.ca.Issue(e.t.Context(), ca.IssueRequest{Profile: p, Name: name, Names: n})
	if err != nil {
		e.t.Fatalf("issuing %s: %v", name, err)
	}
	return tls.Certificate{Certificate: [][]byte{out.Cert.Raw, e.ca.Issuer().Raw}, PrivateKey: out.Key, Leaf: out.Cert}
}

// client returns an HTTPS client presenting cert (none if nil).
func (e *env) client(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: e.roots}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not JSON: %v\n%s", r.status, err, r.body)
	}
	return m
}

func (e *env) do(c *http.Client, method, path string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.api.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{res.StatusCode, res.Header, data}
}

func (e *env) admin(name string) *http.Client {
	c := e.admins[name]
	return e.client(&c)
}

// device is a laptop's key and CSR.
type device struct {
	key    *ecdsa.PrivateKey
	csrPEM string
}

func newDevice(t testing.TB, mod func(*x509.CertificateRequest)) device {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "laptop"}}
	if mod != nil {
		mod(tmpl)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return device{key: key, csrPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))}
}

func (d device) body(host string) map[string]any {
	return map[string]any{"csr": d.csrPEM, "hostname": host, "os": "macOS", "os_version": "15.1",
		"hardware_serial": "C02" + host, "agent_version": "0.1.0", "owner_email": "ada@example.com"}
}

// tlsCert turns an issued chain PEM into the device's client certificate.
func (d device) tlsCert(t testing.TB, chainPEM string) tls.Certificate {
	t.Helper()
	certs, err := pki.ParseCertificates([]byte(chainPEM))
	if err != nil || len(certs) < 2 {
		t.Fatalf("chain of %d certificates: %v", len(certs), err)
	}
	var c tls.Certificate
	for _, x := range certs {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	c.PrivateKey, c.Leaf = crypto.Signer(d.key), certs[0]
	return c
}
