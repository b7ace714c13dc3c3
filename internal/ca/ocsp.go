package ca

import (
	"bytes"
	"context"
	"crypto"
	_ "crypto/sha1" // CertIDs hashed with SHA-1, what most clients send
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/store"
)

// The categories of a request the responder will not answer with a status.
// A front end maps them to the OCSP response status of the same name
// (OCSPErrorResponse), never to a signed answer.
var (
	// ErrOCSPMalformed: the request does not parse, is too large, is
	// signed, asks about no certificate or more than one, or uses a CertID
	// hash this responder does not know.
	ErrOCSPMalformed = errors.New("malformed OCSP request")
	// ErrOCSPUnauthorized: the request is about a certificate of another
	// issuer; this responder speaks for the issuing CA alone.
	ErrOCSPUnauthorized = errors.New("OCSP request for another issuer")
)

// MaxOCSPRequest bounds a request: one CertID with a nonce is about 100
// bytes; 10 KiB leaves room for a requestor name and refuses floods before
// any parsing.
const MaxOCSPRequest = 10 << 10

// ResponderOptions shape a Responder; zero fields take the defaults.
type ResponderOptions struct {
	// Validity is nextUpdate − thisUpdate of every answer: how long a
	// relying party may keep it, so how long a revocation may go unseen by
	// one that has it. Default 1 h.
	Validity time.Duration
	// CertLifetime of the delegated responder certificate. Default 30 days;
	// it is renewed when less than a third of it remains.
	CertLifetime time.Duration
	// CacheSize bounds the signed answers kept. Default 100,000 (about
	// 1 KiB each, so 100 MiB at most).
	CacheSize int
	// Reuse is the fraction of Validity during which a signed answer is
	// served again as is. Default 0.5: a relying party always gets an
	// answer with at least half its validity ahead.
	Reuse float64
}

func (o *ResponderOptions) defaults() {
	if o.Validity <= 0 {
		o.Validity = time.Hour
	}
	if o.CertLifetime <= 0 {
		o.CertLifetime = 30 * day
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 100_000
	}
	if o.Reuse <= 0 || o.Reuse > 1 {
		o.Reuse = 0.5
	}
}

// validate refuses settings that would renew the responder certificate
// all the time or answer with less than a minute of validity.
func (o *ResponderOptions) validate() error {
	var errs []error
	if o.CertLifetime < time.Hour {
		errs = append(errs, fmt.Errorf("OCSP responder certificate lifetime %s: want at least an hour", o.CertLifetime))
	}
	if o.Validity < time.Minute {
		errs = append(errs, fmt.Errorf("OCSP answer validity %s: want at least a minute", o.Validity))
	}
	return errors.Join(errs...)
}

// Responder answers OCSP requests (RFC 6960) for the certificates of the
// issuing CA, signing as a delegated responder (§4.2.2.2) whose
// certificate it renews itself. Signed answers are cached per serial, so a
// burst of requests about one certificate costs one signature.
//
// Request nonces (RFC 8954) are ignored: an answer with the nonce echoed
// could not be cached or pre-signed, and RFC 8954 §2.1 lets a responder
// leave it out; relying parties check thisUpdate instead, as against the
// public CAs, which all do the same.
type Responder struct {
	a    *Authority
	opts ResponderOptions
	// ids are the issuer's name and key hashes per CertID hash.
	ids   map[crypto.Hash]issuerHashes
	cur   atomic.Pointer[responderKey]
	renew sync.Mutex // one renewal at a time; guards lastRenew
	// lastRenew is when a renewal was last tried.
	lastRenew time.Time
	cache     *answerCache
}

type issuerHashes struct{ name, key []byte }

// responderKey is the delegated responder's certificate and key, swapped
// whole on renewal.
type responderKey struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// Responder returns the OCSP responder of the issuing CA, with its
// delegated certificate loaded from the CA directory, or issued (and
// recorded and written) when there is none, it is not the issuer's, or it
// is due for renewal. It needs the issuing key only to issue.
func (a *Authority) Responder(ctx context.Context, opts ResponderOptions) (*Responder, error) {
	opts.defaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	r := &Responder{a: a, opts: opts, ids: map[crypto.Hash]issuerHashes{}, cache: newAnswerCache(opts.CacheSize)}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(a.issuer.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil, fmt.Errorf("issuer public key: %w", err)
	}
	for _, h := range certIDHashes {
		r.ids[h] = issuerHashes{name: digest(h, a.issuer.RawSubject), key: digest(h, spki.PublicKey.RightAlign())}
	}
	rk, err := a.loadResponder()
	if err != nil && !errors.Is(err, errReissue) {
		return nil, err
	}
	if err != nil || a.responderDue(rk.cert) {
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			a.opts.Logger.Warn("issuing a new OCSP responder certificate", "reason", err.Error())
		}
		if rk, err = a.issueResponder(ctx, opts.CertLifetime); err != nil {
			return nil, err
		}
	}
	r.cur.Store(rk)
	return r, nil
}

func digest(h crypto.Hash, b []byte) []byte {
	d := h.New()
	d.Write(b)
	return d.Sum(nil)
}

// Certificate returns the delegated responder certificate in use.
func (r *Responder) Certificate() *x509.Certificate { return r.cur.Load().cert }

// Respond answers one DER OCSP request: a signed response (status good,
// revoked or unknown) from the store's record of the serial. An error
// wraps ErrOCSPMalformed or ErrOCSPUnauthorized for a request it will not
// answer (OCSPErrorResponse gives the DER to send), or is the store's or
// the signer's failure (internalError, or tryLater).
//
// A cached answer is returned as is, byte for byte, until Reuse of its
// validity has passed or Invalidate drops it.
func (r *Responder) Respond(ctx context.Context, reqDER []byte) ([]byte, error) {
	req, err := r.parse(reqDER)
	if err != nil {
		return nil, err
	}
	key := answerKey{serial: pki.SerialString(req.SerialNumber), hash: req.HashAlgorithm}
	now := r.a.opts.Now()
	if der, ok := r.cache.get(key, now); ok {
		return der, nil
	}
	gen := r.cache.generation()
	rk, err := r.signer(ctx, now)
	if err != nil {
		return nil, err
	}
	tmpl, err := r.status(ctx, req.SerialNumber, key.serial)
	if err != nil {
		return nil, err
	}
	tmpl.IssuerHash = req.HashAlgorithm
	tmpl.ThisUpdate = now.UTC().Truncate(time.Second)
	tmpl.NextUpdate = tmpl.ThisUpdate.Add(r.opts.Validity)
	if tmpl.NextUpdate.After(rk.cert.NotAfter) {
		tmpl.NextUpdate = rk.cert.NotAfter
	}
	tmpl.Certificate = rk.cert
	der, err := ocsp.CreateResponse(r.a.issuer, rk.cert, tmpl, rk.key)
	if err != nil {
		return nil, fmt.Errorf("signing OCSP response for %s: %w", key.serial, err)
	}
	reuse := time.Duration(float64(tmpl.NextUpdate.Sub(tmpl.ThisUpdate)) * r.opts.Reuse)
	r.cache.put(key, der, tmpl.ThisUpdate.Add(reuse), gen)
	return der, nil
}

// parse checks reqDER and returns its one CertID, after checking that it
// names the issuing CA.
func (r *Responder) parse(reqDER []byte) (*ocsp.Request, error) {
	if len(reqDER) > MaxOCSPRequest {
		return nil, fmt.Errorf("%w: %d bytes, over %d", ErrOCSPMalformed, len(reqDER), MaxOCSPRequest)
	}
	// One certificate per request: every CertID costs a store lookup and
	// a share of the signature, and a cached answer is per certificate.
	// Relying parties (openssl, Go, browsers, our revocation package) ask
	// about one certificate at a time; x/crypto/ocsp would silently answer
	// the first of several, which a client asking about two would take
	// for an answer about both.
	if n, err := countRequests(reqDER); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOCSPMalformed, err)
	} else if n != 1 {
		return nil, fmt.Errorf("%w: %d certificates in one request, want 1", ErrOCSPMalformed, n)
	}
	req, err := ocsp.ParseRequest(reqDER)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOCSPMalformed, err)
	}
	if req.SerialNumber == nil {
		return nil, fmt.Errorf("%w: no serial number", ErrOCSPMalformed)
	}
	id, ok := r.ids[req.HashAlgorithm]
	if !ok {
		return nil, fmt.Errorf("%w: CertID hash %v", ErrOCSPMalformed, req.HashAlgorithm)
	}
	if !bytes.Equal(id.name, req.IssuerNameHash) || !bytes.Equal(id.key, req.IssuerKeyHash) {
		return nil, fmt.Errorf("%w: issuer name hash %x, key hash %x", ErrOCSPUnauthorized, req.IssuerNameHash, req.IssuerKeyHash)
	}
	return req, nil
}

// countRequests returns the number of CertIDs in an OCSPRequest's
// requestList (RFC 6960 §4.1.1), reading no further.
func countRequests(der []byte) (int, error) {
	var req struct {
		TBS struct {
			Version int           `asn1:"explicit,tag:0,default:0,optional"`
			Name    asn1.RawValue `asn1:"explicit,tag:1,optional"`
			List    []asn1.RawValue
		}
	}
	if _, err := asn1.Unmarshal(der, &req); err != nil {
		return 0, err
	}
	return len(req.TBS.List), nil
}

// status reads the record of serial: unknown when this CA has no such
// certificate of the issuing CA (a CA certificate's serial included),
// revoked with time and reason, good otherwise (superseded and expired
// certificates were never revoked).
func (r *Responder) status(ctx context.Context, n *big.Int, serial string) (ocsp.Response, error) {
	tmpl := ocsp.Response{SerialNumber: n, Status: ocsp.Unknown}
	if n.Sign() <= 0 {
		return tmpl, nil
	}
	rec, err := r.a.store.Cert(ctx, serial)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return tmpl, nil
	case err != nil:
		return tmpl, fmt.Errorf("reading certificate %s: %w", serial, err)
	case rec.Issuer != r.a.issuerSKI || pki.Profile(rec.Profile).IsCA():
		// A root-only CA's root names itself as issuer; it has no
		// status to give, relying parties trust it or not.
		return tmpl, nil
	case rec.Status == store.StatusRevoked:
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, rec.RevokedAt.UTC().Truncate(time.Second), rec.Reason
	default:
		tmpl.Status = ocsp.Good
	}
	return tmpl, nil
}

// Invalidate drops the cached answers about serial (lowercase hex, as the
// store keeps it); the next request is answered from the store. The
// server calls it after a revocation.
func (r *Responder) Invalidate(serial string) { r.cache.drop(serial) }

// OCSPErrorResponse returns the DER OCSP response (unsigned, with no
// status of any certificate) for a request Respond refused with err:
// malformedRequest, unauthorized, or internalError for anything else.
func OCSPErrorResponse(err error) []byte {
	// Copies: x/crypto/ocsp's are package variables a caller could alter.
	switch {
	case errors.Is(err, ErrOCSPMalformed):
		return bytes.Clone(ocsp.MalformedRequestErrorResponse)
	case errors.Is(err, ErrOCSPUnauthorized):
		return bytes.Clone(ocsp.UnauthorizedErrorResponse)
	}
	return bytes.Clone(ocsp.InternalErrorErrorResponse)
}

// RespondOCSP is Respond for an HTTP front end: for a refused request it
// returns the DER error response along with the error, so the caller has
// a body to send either way (200 with application/ocsp-response, as RFC
// 6960 appendix A wants for OCSP-level errors) and a cause to log.
func (r *Responder) RespondOCSP(ctx context.Context, reqDER []byte) ([]byte, error) {
	resp, err := r.Respond(ctx, reqDER)
	if err != nil {
		return OCSPErrorResponse(err), err
	}
	return resp, nil
}
