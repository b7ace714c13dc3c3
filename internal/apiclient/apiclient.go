// Package apiclient is the Go client of the control server's /api/v1: the
// enroll and admin commands use it now, the agent and the gateway later.
// It speaks the wire format of docs/api.md and knows nothing of the
// server's internals.
package apiclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/portcullis-dev/portcullis/internal/api"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls one control server.
type Client struct {
	base *url.URL
	http *http.Client
}

// New returns a client of the server at baseURL (https://host:port),
// verifying it against roots and presenting cert when not nil.
func New(baseURL string, roots *x509.CertPool, cert *tls.Certificate) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(baseURL, "/"))
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want https://host[:port]", baseURL)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second, IdleConnTimeout: time.Minute}
	return &Client{base: u, http: &http.Client{Transport: tr, Timeout: time.Minute}}, nil
}

// Error is a non-2xx answer: the status and the server's one-line message.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("server said %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// StatusOf returns the HTTP status of an *Error in err's chain, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// maxResponse bounds what the client reads (a CSV of 100,000 devices is
// about 20 MB).
const maxResponse = 64 << 20

// do sends body (JSON, unless nil) and decodes a JSON answer into out.
// okCodes are the statuses that decode into out; others become *Error,
// except that a body is still decoded into out for them when it is JSON
// (a 202 or 403 of the enrollment carry the request).
func (c *Client) do(ctx context.Context, method, path string, body, out any, okCodes ...int) (int, http.Header, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	res, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxResponse))
	if err != nil {
		return res.StatusCode, res.Header, err
	}
	ok := false
	for _, code := range okCodes {
		ok = ok || res.StatusCode == code
	}
	if !ok {
		var e api.Error
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return res.StatusCode, res.Header, &Error{Status: res.StatusCode, Message: e.Error}
	}
	if out != nil {
		if w, isWriter := out.(io.Writer); isWriter {
			_, err = w.Write(data)
			return res.StatusCode, res.Header, err
		}
		if err := json.Unmarshal(data, out); err != nil {
			return res.StatusCode, res.Header, fmt.Errorf("decoding the answer to %s %s: %w", method, path, err)
		}
	}
	return res.StatusCode, res.Header, nil
}

// The wire types are internal/api's; these names keep callers short.
type (
	Facts    = api.Facts
	Cert     = api.Cert
	Device   = api.Device
	Token    = api.Token
	Stats    = api.Stats
	Log      = api.Log
	DayCount = api.DayCount
)

// Request is an enrollment request and, for a waiting one, the server's
// Retry-After.
type Request struct {
	api.Request
	RetryAfter time.Duration `json:"-"`
}

// Enroll submits a CSR (PEM) with the device's facts and optional token.
// The answer is the request: State "issued" with Certificate, "denied"
// with Error, or waiting ("pending", "approved") with RetryAfter.
func (c *Client) Enroll(ctx context.Context, csrPEM []byte, f Facts, token string) (*Request, error) {
	return c.request(ctx, "POST", "/api/v1/enroll", api.EnrollRequest{CSR: string(csrPEM), Facts: f, Token: token})
}

// Poll asks for the state of a request.
func (c *Client) Poll(ctx context.Context, id string) (*Request, error) {
	return c.request(ctx, "GET", "/api/v1/enroll/"+url.PathEscape(id), nil)
}

func (c *Client) request(ctx context.Context, method, path string, body any) (*Request, error) {
	var r Request
	code, h, err := c.do(ctx, method, path, body, &r, http.StatusOK, http.StatusAccepted, http.StatusForbidden)
	if err != nil {
		return nil, err
	}
	if code == http.StatusAccepted {
		r.RetryAfter = 10 * time.Second
		if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s >= 0 {
			r.RetryAfter = time.Duration(s) * time.Second
		}
	}
	if code == http.StatusForbidden && r.State != "denied" {
		return nil, &Error{Status: code, Message: r.Error}
	}
	return &r, nil
}

// Renew renews the client certificate the Client presents; csrPEM nil
// keeps the key.
func (c *Client) Renew(ctx context.Context, csrPEM []byte, agentVersion string) (*Cert, error) {
	var out Cert
	if _, _, err := c.do(ctx, "POST", "/api/v1/renew", api.RenewRequest{CSR: string(csrPEM), AgentVersion: agentVersion}, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return &out, nil
}

// UploadLog sends a log as the device the Client presents.
func (c *Client) UploadLog(ctx context.Context, name string, data []byte) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", c.base.String()+"/api/v1/logs?name="+url.QueryEscape(name), bytes.NewReader(data))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	var out struct {
		api.Log
		api.Error
	}
	_ = json.Unmarshal(body, &out) // a non-JSON answer leaves Error empty
	if res.StatusCode != http.StatusCreated {
		return 0, &Error{Status: res.StatusCode, Message: out.Error.Error}
	}
	return out.ID, nil
}
