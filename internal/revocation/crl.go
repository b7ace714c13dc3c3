package revocation

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/portcullis-dev/portcullis/internal/pki"
)

// Extension OIDs of RFC 5280 §5.2 and §5.3 that parseCRL knows.
var (
	oidAKI              = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber        = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidDeltaCRL         = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIDP              = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidReasonCode       = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidInvalidityDate   = asn1.ObjectIdentifier{2, 5, 29, 24}
	oidCertIssuer       = asn1.ObjectIdentifier{2, 5, 29, 29}
	errMalformedIDP     = errors.New("malformed issuingDistributionPoint")
	errCRLNotApplicable = errors.New("CRL does not cover every certificate of its issuer")
)

// entry is one revoked serial: small, because a CRL may hold 10⁵ of them.
type entry struct {
	revokedAt int64 // Unix seconds
	reason    int16 // RFC 5280 CRLReason, 0 when absent
}

// crl is a parsed CRL, immutable after parseCRL except for its signature
// verification cache.
type crl struct {
	source     string // the label of the source it came from
	rawIssuer  []byte
	issuer     string // for logs and Status
	aki        []byte
	number     *big.Int // nil when the CRL has no cRLNumber
	thisUpdate time.Time
	nextUpdate time.Time
	entries    map[string]entry // key: serial INTEGER content octets
	digest     [32]byte
	// userOnly: onlyContainsUserCerts, so the CRL says nothing of CAs.
	userOnly bool
	// dps: the URIs of the issuingDistributionPoint; when set, the CRL
	// covers only certificates that name one of them (a partitioned CRL).
	dps []string
	// sig holds what CheckSignatureFrom needs, not the parsed entries.
	sig      x509.RevocationList
	verified atomic.Pointer[verification]
}

// verification caches the signature check against one issuer certificate,
// so the handshake path verifies a CRL once per issuer, not per handshake.
type verification struct {
	issuer *x509.Certificate
	err    error
}

// parseCRL reads one CRL, PEM ("X509 CRL") or DER, from untrusted bytes. It
// checks the structure and the extensions it must understand; the signature
// is checked later against the issuer presented at Check time.
func parseCRL(data []byte) (*crl, error) {
	der, err := crlDER(data)
	if err != nil {
		return nil, err
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("parsing CRL: %w", err)
	}
	if len(rl.Raw) != len(der) {
		return nil, fmt.Errorf("parsing CRL: %d bytes of trailing data", len(der)-len(rl.Raw))
	}
	if len(rl.RawIssuer) == 0 || bytes.Equal(rl.RawIssuer, []byte{0x30, 0}) {
		return nil, errors.New("CRL has an empty issuer name")
	}
	if rl.NextUpdate.IsZero() {
		return nil, errors.New("CRL has no nextUpdate, so its freshness cannot be judged")
	}
	if !rl.NextUpdate.After(rl.ThisUpdate) {
		return nil, fmt.Errorf("CRL nextUpdate %s is not after thisUpdate %s", rl.NextUpdate.UTC(), rl.ThisUpdate.UTC())
	}
	if rl.Number != nil && rl.Number.Sign() < 0 {
		return nil, fmt.Errorf("CRL number %s is negative", rl.Number)
	}
	c := &crl{
		rawIssuer:  rl.RawIssuer,
		issuer:     rl.Issuer.String(),
		aki:        rl.AuthorityKeyId,
		number:     rl.Number,
		thisUpdate: rl.ThisUpdate,
		nextUpdate: rl.NextUpdate,
		digest:     sha256.Sum256(der),
		sig: x509.RevocationList{
			RawTBSRevocationList: rl.RawTBSRevocationList,
			Signature:            rl.Signature,
			SignatureAlgorithm:   rl.SignatureAlgorithm,
		},
	}
	if err := c.readExtensions(rl); err != nil {
		return nil, err
	}
	if err := c.readEntries(rl); err != nil {
		return nil, err
	}
	return c, nil
}

// crlDER finds the DER of the one CRL in data.
func crlDER(data []byte) ([]byte, error) {
	if len(data) > maxCRLSize {
		return nil, fmt.Errorf("CRL is %d bytes, over the %d limit", len(data), maxCRLSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("CRL is empty")
	}
	der, err := pki.DecodeOne(data, "X509 CRL")
	if err != nil {
		return nil, fmt.Errorf("CRL: %w", err)
	}
	return der, nil
}

func (c *crl) readExtensions(rl *x509.RevocationList) error {
	for _, e := range rl.Extensions {
		switch {
		case e.Id.Equal(oidAKI), e.Id.Equal(oidCRLNumber):
		case e.Id.Equal(oidDeltaCRL):
			return errors.New("delta CRLs are not supported: use the full CRL")
		case e.Id.Equal(oidIDP):
			if err := c.readIDP(e.Value); err != nil {
				return err
			}
		case e.Critical:
			return fmt.Errorf("CRL has an unsupported critical extension %s", e.Id)
		}
	}
	return nil
}

func (c *crl) readEntries(rl *x509.RevocationList) error {
	c.entries = make(map[string]entry, len(rl.RevokedCertificateEntries))
	for i, re := range rl.RevokedCertificateEntries {
		for _, e := range re.Extensions {
			switch {
			case e.Id.Equal(oidCertIssuer):
				return fmt.Errorf("CRL entry %d names a certificateIssuer: indirect CRLs are not supported", i+1)
			case e.Critical && !e.Id.Equal(oidReasonCode) && !e.Id.Equal(oidInvalidityDate):
				return fmt.Errorf("CRL entry %d has an unsupported critical extension %s", i+1, e.Id)
			}
		}
		key, ok := entrySerial(re.Raw)
		if !ok {
			return fmt.Errorf("CRL entry %d: malformed serial number", i+1)
		}
		if _, dup := c.entries[string(key)]; dup {
			continue // the first listing stands
		}
		c.entries[string(key)] = entry{revokedAt: re.RevocationTime.Unix(), reason: int16(re.ReasonCode)}
	}
	return nil
}

// entrySerial returns the serial INTEGER content octets of a DER
// revokedCertificates entry: the same bytes certSerial takes from a
// certificate, so two encodings of one number never miss each other.
func entrySerial(raw []byte) ([]byte, bool) {
	s := cryptobyte.String(raw)
	var seq, serial cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1(&serial, cbasn1.INTEGER) || len(serial) == 0 {
		return nil, false
	}
	return serial, true
}

// certSerial returns the serial INTEGER content octets of a certificate,
// read from its TBS without allocating; a certificate built by hand (no
// Raw) falls back to re-encoding SerialNumber.
func certSerial(c *x509.Certificate) []byte {
	s := cryptobyte.String(c.RawTBSCertificate)
	var tbs, serial cryptobyte.String
	if s.ReadASN1(&tbs, cbasn1.SEQUENCE) &&
		tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) &&
		tbs.ReadASN1(&serial, cbasn1.INTEGER) && len(serial) > 0 {
		return serial
	}
	return serialOctets(c.SerialNumber)
}

// serialOctets DER-encodes n as INTEGER content octets.
func serialOctets(n *big.Int) []byte {
	if n == nil {
		return nil
	}
	der, err := asn1.Marshal(n)
	if err != nil {
		return nil
	}
	s := cryptobyte.String(der)
	var content cryptobyte.String
	if !s.ReadASN1(&content, cbasn1.INTEGER) {
		return nil
	}
	return content
}

// readIDP parses the issuingDistributionPoint (RFC 5280 §5.2.5) and rejects
// the scopes this package cannot honour: a CRL that leaves out some reasons,
// leaves, or other issuers' certificates cannot say "not revoked".
func (c *crl) readIDP(v []byte) error {
	in := cryptobyte.String(v)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return errMalformedIDP
	}
	var dp cryptobyte.String
	var hasDP bool
	if !seq.ReadOptionalASN1(&dp, &hasDP, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return errMalformedIDP
	}
	if hasDP {
		uris, err := dpURIs(dp)
		if err != nil {
			return err
		}
		c.dps = uris
	}
	flags := [6]bool{}
	for _, tag := range []uint8{1, 2, 3, 4, 5} {
		var val cryptobyte.String
		t := cbasn1.Tag(tag).ContextSpecific()
		if !seq.ReadOptionalASN1(&val, &flags[tag], t) {
			return errMalformedIDP
		}
		if flags[tag] && tag != 3 { // BOOLEAN DEFAULT FALSE; 3 is onlySomeReasons
			if len(val) != 1 {
				return errMalformedIDP
			}
			flags[tag] = val[0] != 0
		}
	}
	if !seq.Empty() {
		return errMalformedIDP
	}
	c.userOnly = flags[1]
	switch {
	case flags[2]:
		return fmt.Errorf("%w: onlyContainsCACerts", errCRLNotApplicable)
	case flags[3]:
		return fmt.Errorf("%w: onlySomeReasons", errCRLNotApplicable)
	case flags[4]:
		return errors.New("indirect CRLs are not supported")
	case flags[5]:
		return fmt.Errorf("%w: onlyContainsAttributeCerts", errCRLNotApplicable)
	}
	return nil
}

// dpURIs reads the URIs of a DistributionPointName; a name relative to the
// issuer cannot be matched against a certificate here, so it is refused.
func dpURIs(dp cryptobyte.String) ([]string, error) {
	var names cryptobyte.String
	var full bool
	if !dp.ReadOptionalASN1(&names, &full, cbasn1.Tag(0).Constructed().ContextSpecific()) || !full || !dp.Empty() {
		return nil, fmt.Errorf("%w: distributionPoint is not a fullName", errCRLNotApplicable)
	}
	var uris []string
	for !names.Empty() {
		var name cryptobyte.String
		var tag cbasn1.Tag
		if !names.ReadAnyASN1(&name, &tag) {
			return nil, errMalformedIDP
		}
		if tag == cbasn1.Tag(6).ContextSpecific() { // uniformResourceIdentifier
			uris = append(uris, string(name))
		}
	}
	if len(uris) == 0 {
		return nil, fmt.Errorf("%w: distributionPoint names no URI", errCRLNotApplicable)
	}
	return uris, nil
}

// covers says whether the CRL speaks for cert (already known to be from
// its issuer): a user-only CRL says nothing of CAs, and a partitioned CRL
// only of certificates that point at it.
func (c *crl) covers(cert *x509.Certificate) bool {
	if c.userOnly && cert.IsCA {
		return false
	}
	if len(c.dps) == 0 {
		return true
	}
	for _, want := range c.dps {
		for _, got := range cert.CRLDistributionPoints {
			if got == want {
				return true
			}
		}
	}
	return false
}

// verifiedBy checks the CRL's signature against issuer, once per issuer:
// the result is cached by certificate identity, then by content.
func (c *crl) verifiedBy(issuer *x509.Certificate) error {
	if v := c.verified.Load(); v != nil && (v.issuer == issuer || len(issuer.Raw) > 0 && bytes.Equal(v.issuer.Raw, issuer.Raw)) {
		return v.err
	}
	err := c.sig.CheckSignatureFrom(issuer)
	c.verified.Store(&verification{issuer: issuer, err: err})
	return err
}

// matches says whether the CRL can be issuer's: same name, and the same key
// identifier when both carry one.
func (c *crl) matches(issuer *x509.Certificate) bool {
	return len(c.aki) == 0 || len(issuer.SubjectKeyId) == 0 || bytes.Equal(c.aki, issuer.SubjectKeyId)
}

// expires is when the CRL stops being used: nextUpdate plus MaxStale.
func (c *crl) expires(maxStale time.Duration) time.Time { return c.nextUpdate.Add(maxStale) }

// sameScope says whether next is a successor of c: same issuer name and key.
func (c *crl) sameScope(next *crl) bool {
	return bytes.Equal(c.rawIssuer, next.rawIssuer) && bytes.Equal(c.aki, next.aki)
}

// newer orders CRLs of one issuer: higher number first, then later
// thisUpdate. A CRL without a number sorts below one with a number.
func (c *crl) newer(o *crl) bool {
	switch {
	case c.number != nil && o.number != nil:
		if d := c.number.Cmp(o.number); d != 0 {
			return d > 0
		}
	case c.number != nil:
		return true
	case o.number != nil:
		return false
	}
	return c.thisUpdate.After(o.thisUpdate)
}

// numberString is the CRL number in decimal, or "" when absent.
func (c *crl) numberString() string {
	if c.number == nil {
		return ""
	}
	return c.number.String()
}
