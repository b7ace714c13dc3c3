package server_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/portcullis-dev/portcullis/internal/enroll"
)

// TestOCSPEndpoints: GET (RFC 6960 A.1, escaped or not) and POST answer
// for a device certificate, good then revoked; garbage gets the
// malformedRequest status, not an HTTP error.
func TestOCSPEndpoints(t *testing.T) {
	e := newEnv(t, enroll.Config{})
	tok := e.do(e.admin("admin"), "POST", "/api/v1/admin/tokens", nil).json(t)["token"].(string)
	dev := newDevice(t, nil)
	body := dev.body("laptop-1")
	body["token"] = tok
	r := e.do(e.client(nil), "POST", "/api/v1/enroll", body)
	cert := dev.tlsCert(t, r.json(t)["certificate"].(string)).Leaf
	req, err := ocsp.CreateRequest(cert, e.ca.Issuer(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(method string) *ocsp.Response {
		t.Helper()
		var res *http.Response
		if method == "GET" {
			res, err = http.Get(e.public.URL + "/ocsp/" + url.PathEscape(base64.StdEncoding.EncodeToString(req)))
		} else {
			res, err = http.Post(e.public.URL+"/ocsp", "application/ocsp-request", bytes.NewReader(req))
		}
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		der, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/ocsp-response" {
			t.Fatalf("%s /ocsp = %d %s", method, res.StatusCode, res.Header.Get("Content-Type"))
		}
		resp, err := ocsp.ParseResponseForCert(der, cert, e.ca.Issuer())
		if err != nil {
			t.Fatalf("%s /ocsp: %v", method, err)
		}
		return resp
	}
	for _, m := range []string{"GET", "POST"} {
		if got := ask(m); got.Status != ocsp.Good {
			t.Errorf("%s before revocation: status %d, want good", m, got.Status)
		}
	}
	devID := r.json(t)["device"].(string)
	e.do(e.admin("admin"), "POST", "/api/v1/admin/devices/"+devID+"/revoke", map[string]string{"reason": "keyCompromise"})
	for _, m := range []string{"GET", "POST"} {
		if got := ask(m); got.Status != ocsp.Revoked || got.RevocationReason != ocsp.KeyCompromise {
			t.Errorf("%s after revocation: status %d reason %d, want revoked, keyCompromise", m, got.Status, got.RevocationReason)
		}
	}
	res, err := http.Post(e.public.URL+"/ocsp", "application/ocsp-request", bytes.NewReader([]byte("garbage")))
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if _, err := ocsp.ParseResponse(der, nil); err == nil || res.StatusCode != 200 {
		t.Errorf("garbage: %d, parse error %v; want 200 with an OCSP error status", res.StatusCode, err)
	} else if re, ok := err.(ocsp.ResponseError); !ok || re.Status != ocsp.Malformed {
		t.Errorf("garbage: %v, want malformedRequest", err)
	}
	if res, err := http.Post(e.public.URL+"/ocsp", "text/plain", bytes.NewReader(req)); err != nil || res.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("wrong content type: %v %v; want 415", res.StatusCode, err)
	}
}
