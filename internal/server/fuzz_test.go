package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/enroll"
)

// FuzzEnrollJSON sends arbitrary bodies to POST /api/v1/enroll. Whatever
// comes in, the answer is a request (200/202/403) or a client error with
// a one-line JSON message, never a server error or a panic.
func FuzzEnrollJSON(f *testing.F) {
	e := newEnv(f, enroll.Config{})
	good := newDevice(f, nil)
	body, _ := json.Marshal(good.body("laptop-1"))
	for _, seed := range []string{
		string(body), `{}`, `{"csr":""}`, `{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}`,
		`{"csr":1}`, `[]`, `null`, `{"csr":"x","token":"` + strings.Repeat("a", 300) + `"}`, `{"csr":"x"}{"csr":"y"}`,
		`{"hostname":"\u0000"}`, "\xff\xfe",
	} {
		f.Add([]byte(seed))
	}
	h := e.srv.APIHandler()
	f.Fuzz(func(t *testing.T, data []byte) {
		req := httptest.NewRequest("POST", "/api/v1/enroll", bytes.NewReader(data))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch code := rec.Code; {
		case code == http.StatusOK || code == http.StatusAccepted || code == http.StatusForbidden:
		case code >= 400 && code < 500:
			var m map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || m["error"] == "" || strings.Contains(m["error"], "\n") {
				t.Fatalf("%d answer is not a one-line JSON error: %q", code, rec.Body.String())
			}
		default:
			t.Fatalf("status %d for %q: %s", code, data, rec.Body.String())
		}
	})
}
