package apiclient

import (
	"context"
	"github.com/portcullis-dev/portcullis/internal/api"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// RequestFilter selects requests.
type RequestFilter struct {
	State, Device, After string
	Limit                int
}

func query(kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

func itoa(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// Requests lists one page of requests; next is the cursor of the next page.
func (c *Client) Requests(ctx context.Context, f RequestFilter) (reqs []Request, next string, err error) {
	var out api.RequestList
	_, _, err = c.do(ctx, "GET", "/api/v1/admin/requests"+query("state", f.State, "device", f.Device, "after", f.After, "limit", itoa(f.Limit)), nil, &out, http.StatusOK)
	for _, r := range out.Requests {
		reqs = append(reqs, Request{Request: r})
	}
	return reqs, out.Next, err
}

// Decide approves or denies one request.
func (c *Client) Decide(ctx context.Context, id string, approve bool, comment string) (*Request, error) {
	verb := "deny"
	if approve {
		verb = "approve"
	}
	var out Request
	_, _, err := c.do(ctx, "POST", "/api/v1/admin/requests/"+url.PathEscape(id)+"/"+verb, api.DecideRequest{Comment: comment}, &out, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// DeviceFilter selects devices.
type DeviceFilter struct {
	State, OS, Owner, Name, After string
	LastSeenBefore                time.Time
	Limit                         int
}

func (f DeviceFilter) query(format string) string {
	lsb := ""
	if !f.LastSeenBefore.IsZero() {
		lsb = f.LastSeenBefore.UTC().Format(time.RFC3339)
	}
	return query("state", f.State, "os", f.OS, "owner", f.Owner, "name", f.Name, "after", f.After,
		"last_seen_before", lsb, "limit", itoa(f.Limit), "format", format)
}

// Devices lists one page of devices.
func (c *Client) Devices(ctx context.Context, f DeviceFilter) (devs []Device, next string, err error) {
	var out api.DeviceList
	_, _, err = c.do(ctx, "GET", "/api/v1/admin/devices"+f.query(""), nil, &out, http.StatusOK)
	return out.Devices, out.Next, err
}

// DevicesCSV writes one page of devices as CSV to w.
func (c *Client) DevicesCSV(ctx context.Context, f DeviceFilter, w io.Writer) error {
	_, _, err := c.do(ctx, "GET", "/api/v1/admin/devices"+f.query("csv"), nil, w, http.StatusOK)
	return err
}

// Device returns a device with its certificates.
func (c *Client) Device(ctx context.Context, id string) (*Device, error) {
	var out Device
	if _, _, err := c.do(ctx, "GET", "/api/v1/admin/devices/"+url.PathEscape(id), nil, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeDevice revokes a device and its certificates; reason is an RFC
// 5280 reason name or empty.
func (c *Client) RevokeDevice(ctx context.Context, id, reason string) (*Device, []string, error) {
	var out api.DeviceRevoked
	if _, _, err := c.do(ctx, "POST", "/api/v1/admin/devices/"+url.PathEscape(id)+"/revoke", api.RevokeRequest{Reason: reason}, &out, http.StatusOK); err != nil {
		return nil, nil, err
	}
	return &out.Device, out.Revoked, nil
}

// CertFilter selects certificates.
type CertFilter struct {
	Name, Profile, Status string
	ExpiringWithin        time.Duration
}

func (f CertFilter) query(format string) string {
	ew := ""
	if f.ExpiringWithin > 0 {
		ew = f.ExpiringWithin.String()
	}
	return query("name", f.Name, "profile", f.Profile, "status", f.Status, "expiring_within", ew, "format", format)
}

// Certs lists certificates.
func (c *Client) Certs(ctx context.Context, f CertFilter) ([]Cert, error) {
	var out api.CertList
	_, _, err := c.do(ctx, "GET", "/api/v1/admin/certs"+f.query(""), nil, &out, http.StatusOK)
	return out.Certificates, err
}

// CertsCSV writes the certificates as CSV to w.
func (c *Client) CertsCSV(ctx context.Context, f CertFilter, w io.Writer) error {
	_, _, err := c.do(ctx, "GET", "/api/v1/admin/certs"+f.query("csv"), nil, w, http.StatusOK)
	return err
}

// RevokeCert revokes one certificate.
func (c *Client) RevokeCert(ctx context.Context, serial, reason string) (*Cert, error) {
	var out Cert
	if _, _, err := c.do(ctx, "POST", "/api/v1/admin/certs/"+url.PathEscape(serial)+"/revoke", api.RevokeRequest{Reason: reason}, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateToken makes a bootstrap token.
func (c *Client) CreateToken(ctx context.Context, ttl time.Duration, boundName, boundOwner string) (*Token, error) {
	body := api.TokenRequest{BoundName: boundName, BoundOwner: boundOwner}
	if ttl > 0 {
		body.TTL = ttl.String()
	}
	var out Token
	if _, _, err := c.do(ctx, "POST", "/api/v1/admin/tokens", body, &out, http.StatusCreated); err != nil {
		return nil, err
	}
	return &out, nil
}

// Tokens lists the tokens (without secrets).
func (c *Client) Tokens(ctx context.Context) ([]Token, error) {
	var out api.TokenList
	_, _, err := c.do(ctx, "GET", "/api/v1/admin/tokens", nil, &out, http.StatusOK)
	return out.Tokens, err
}

// RevokeToken makes a token unusable.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	_, _, err := c.do(ctx, "POST", "/api/v1/admin/tokens/"+url.PathEscape(id)+"/revoke", nil, nil, http.StatusOK)
	return err
}

// Stats returns the fleet's numbers.
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	var out Stats
	if _, _, err := c.do(ctx, "GET", "/api/v1/admin/stats", nil, &out, http.StatusOK); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeviceLogs lists a device's uploaded logs, newest first.
func (c *Client) DeviceLogs(ctx context.Context, device string) ([]Log, error) {
	var out api.LogList
	_, _, err := c.do(ctx, "GET", "/api/v1/admin/devices/"+url.PathEscape(device)+"/logs", nil, &out, http.StatusOK)
	return out.Logs, err
}

// DeviceLog writes one log's bytes to w.
func (c *Client) DeviceLog(ctx context.Context, device string, id int64, w io.Writer) error {
	_, _, err := c.do(ctx, "GET", "/api/v1/admin/devices/"+url.PathEscape(device)+"/logs/"+strconv.FormatInt(id, 10), nil, w, http.StatusOK)
	return err
}
