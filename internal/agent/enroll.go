// Package agent is the device side of Portcullis. For now it holds the
// enrollment and renewal flows that `portcullis enroll` and `portcullis
// renew` run: a key made and kept on the device (a file, 0600, written
// atomically), a CSR, the request's ID kept beside them so a re-run
// resumes instead of asking twice, and the certificate written atomically
// once issued. The service, TPM/PKCS#11 keys and health come with the
// agent issue.
package agent

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/apiclient"
	"github.com/portcullis-dev/portcullis/internal/atomicfile"
	"github.com/portcullis-dev/portcullis/internal/keystore"
	"github.com/portcullis-dev/portcullis/internal/pki"
)

// Dir is a device's enrollment directory.
type Dir string

func (d Dir) Key() string       { return filepath.Join(string(d), "key.pem") }
func (d Dir) CSR() string       { return filepath.Join(string(d), "request.csr") }
func (d Dir) RequestID() string { return filepath.Join(string(d), "request.id") }
func (d Dir) Cert() string      { return filepath.Join(string(d), "cert.pem") }

// ErrDenied: an admin denied the request.
var ErrDenied = errors.New("enrollment denied")

// ErrStillPending: the request waits for a decision (Enroll with wait 0,
// or the wait ran out).
var ErrStillPending = errors.New("enrollment request still waits for approval")

// EnrollOptions shape an enrollment.
type EnrollOptions struct {
	Facts apiclient.Facts
	Token string
	// Wait is how long to poll for a decision; 0 submits and returns.
	Wait time.Duration
	// Progress, if set, is told what happens (one line each).
	Progress func(string)
}

// Enroll makes or reuses the key and CSR in dir, submits (or polls the
// request already submitted), and writes the certificate chain when
// issued. It returns the request as last seen.
func Enroll(ctx context.Context, c *apiclient.Client, dir Dir, o EnrollOptions) (*apiclient.Request, error) {
	say := o.Progress
	if say == nil {
		say = func(string) {}
	}
	if err := os.MkdirAll(string(dir), 0o700); err != nil {
		return nil, err
	}
	csrPEM, err := keyAndCSR(dir, o.Facts.Hostname)
	if err != nil {
		return nil, err
	}
	var r *apiclient.Request
	if id, err := os.ReadFile(dir.RequestID()); err == nil {
		say("polling request " + strings.TrimSpace(string(id)))
		r, err = c.Poll(ctx, strings.TrimSpace(string(id)))
		if apiclient.StatusOf(err) == 404 {
			r = nil // the server forgot it (a new server?): submit again
		} else if err != nil {
			return nil, err
		}
	}
	if r == nil {
		if r, err = c.Enroll(ctx, csrPEM, o.Facts, o.Token); err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(dir.RequestID(), []byte(r.ID+"\n"), 0o600); err != nil {
			return nil, err
		}
		say(fmt.Sprintf("submitted request %s: %s", r.ID, r.State))
		if r.TokenRejected != "" {
			say("the bootstrap token was not accepted (" + r.TokenRejected + "); the request waits for an admin")
		}
	}
	deadline := time.Now().Add(o.Wait)
	for r.State == "pending" || r.State == "approved" {
		if time.Now().Add(r.RetryAfter).After(deadline) {
			return r, fmt.Errorf("%w: request %s", ErrStillPending, r.ID)
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(r.RetryAfter):
		}
		if r, err = c.Poll(ctx, r.ID); err != nil {
			return nil, err
		}
	}
	switch r.State {
	case "denied":
		return r, fmt.Errorf("%w: %s", ErrDenied, strings.TrimPrefix(r.Error, "enrollment denied: "))
	case "issued":
		if _, err := pki.ParseCertificates([]byte(r.Certificate)); err != nil {
			return r, fmt.Errorf("the server's certificate chain: %w", err)
		}
		if err := atomicfile.WriteFile(dir.Cert(), []byte(r.Certificate), 0o644); err != nil {
			return r, err
		}
		say("certificate written to " + dir.Cert())
		return r, nil
	}
	return r, fmt.Errorf("request %s in unexpected state %q", r.ID, r.State)
}

// keyAndCSR returns the CSR of dir, making a P-256 key and the CSR on
// first use. The CSR is kept, not remade: ECDSA signatures are random, so
// a new CSR would be a new request.
func keyAndCSR(dir Dir, cn string) ([]byte, error) {
	if data, err := os.ReadFile(dir.CSR()); err == nil {
		if _, err := os.Stat(dir.Key()); err != nil {
			return nil, fmt.Errorf("%s exists without its key %s", dir.CSR(), dir.Key())
		}
		return data, nil
	}
	key, err := pki.GenerateKey(pki.DefaultKeyType, rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := keystore.WriteFile(dir.Key(), key, nil); err != nil {
		return nil, err
	}
	return writeCSR(dir.CSR(), key, cn)
}

func writeCSR(path string, key crypto.Signer, cn string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	return data, atomicfile.WriteFile(path, data, 0o644)
}

// Renew renews the certificate of dir over mTLS (c must present it). With
// rekey a new key is made and certified; the new key and certificate
// replace the old ones only once the server has answered, key first.
func Renew(ctx context.Context, c *apiclient.Client, dir Dir, rekey bool, agentVersion string) (*apiclient.Cert, error) {
	var (
		csrPEM []byte
		newKey crypto.Signer
		err    error
	)
	if rekey {
		if newKey, err = pki.GenerateKey(pki.DefaultKeyType, rand.Reader); err != nil {
			return nil, err
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, newKey)
		if err != nil {
			return nil, err
		}
		csrPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	out, err := c.Renew(ctx, csrPEM, agentVersion)
	if err != nil {
		return nil, err
	}
	files := []atomicfile.File{{Path: dir.Cert(), Data: []byte(out.Certificate), Perm: 0o644}}
	if newKey != nil {
		data, err := keystore.Marshal(newKey, nil)
		if err != nil {
			return out, err
		}
		// Key first: Commit renames in order, and a certificate should
		// never be visible before its key.
		files = append([]atomicfile.File{{Path: dir.Key(), Data: data, Perm: 0o600}}, files...)
	}
	var b atomicfile.Batch
	if err := b.AddAll(files...); err != nil {
		return out, err
	}
	return out, b.Commit()
}
