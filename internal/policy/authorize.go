package policy

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrDenied is the error, wrapped, of every Authorize that allows nobody.
var ErrDenied = errors.New("access denied")

// Decision is the outcome of Authorize.
type Decision struct {
	Allowed bool
	// Rule is the rule that allowed the peer, as kind=entry
	// (`uri=spiffe://corp/device/*`), or "allow_all".
	Rule string
}

// Authorize decides whether the verified leaf certificate of a peer may
// connect. Rule kinds are tried in the order cn, ou, dns, ip, email, uri,
// spki_sha256, issuer, and the first match is the Decision's Rule. When
// nothing matches, the error wraps ErrDenied and names the peer's CN and
// first SAN. It allocates only to print a URI SAN (once per URI SAN, when
// there are URI rules), an issuer DN (when there are DN rules), or the
// denial.
func (p *Policy) Authorize(leaf *x509.Certificate) (Decision, error) {
	switch {
	case leaf == nil:
		return Decision{}, fmt.Errorf("%w: no peer certificate", ErrDenied)
	case p == nil:
		return Decision{}, fmt.Errorf("%w: no policy", ErrDenied)
	case p.allowAll:
		return Decision{Allowed: true, Rule: "allow_all"}, nil
	}
	if rule := p.match(leaf); rule != "" {
		return Decision{Allowed: true, Rule: rule}, nil
	}
	return Decision{}, &deniedError{leaf: leaf}
}

// match returns the Decision.Rule of the first rule that matches leaf, or "".
func (p *Policy) match(leaf *x509.Certificate) string {
	if rule, ok := p.cn[leaf.Subject.CommonName]; ok {
		return rule
	}
	for _, ou := range leaf.Subject.OrganizationalUnit {
		if rule, ok := p.ou[ou]; ok {
			return rule
		}
	}
	if rule := p.matchDNS(leaf); rule != "" {
		return rule
	}
	if rule := p.matchIP(leaf); rule != "" {
		return rule
	}
	if rule := p.matchEmail(leaf); rule != "" {
		return rule
	}
	if rule := p.matchURI(leaf); rule != "" {
		return rule
	}
	if rule := p.matchSPKI(leaf); rule != "" {
		return rule
	}
	return p.matchIssuer(leaf)
}

func (p *Policy) matchDNS(leaf *x509.Certificate) string {
	for _, r := range p.dns {
		for _, name := range leaf.DNSNames {
			if r.w.Match(name) {
				return r.rule
			}
		}
	}
	return ""
}

func (p *Policy) matchIP(leaf *x509.Certificate) string {
	if len(p.ip) == 0 {
		return ""
	}
	for _, ip := range leaf.IPAddresses {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		a = a.Unmap()
		for _, r := range p.ip {
			if r.prefix.Contains(a) {
				return r.rule
			}
		}
	}
	return ""
}

func (p *Policy) matchEmail(leaf *x509.Certificate) string {
	for _, addr := range leaf.EmailAddresses {
		i := strings.LastIndexByte(addr, '@')
		if i < 0 {
			continue
		}
		for _, r := range p.email {
			if addr[:i] == r.local && equalFoldASCII(addr[i+1:], r.domain) {
				return r.rule
			}
		}
	}
	return ""
}

// matchURI prints each URI SAN once, as ghostunnel's intersectsURI does,
// and matches the patterns against that.
func (p *Policy) matchURI(leaf *x509.Certificate) string {
	if len(p.uri) == 0 {
		return ""
	}
	for _, u := range leaf.URIs {
		if u == nil {
			continue
		}
		s := u.String()
		for _, r := range p.uri {
			if r.w.Match(s) {
				return r.rule
			}
		}
	}
	return ""
}

func (p *Policy) matchSPKI(leaf *x509.Certificate) string {
	if len(p.spki) == 0 || len(leaf.RawSubjectPublicKeyInfo) == 0 {
		return ""
	}
	return p.spki[sha256.Sum256(leaf.RawSubjectPublicKeyInfo)]
}

func (p *Policy) matchIssuer(leaf *x509.Certificate) string {
	if rule, ok := p.issuerCN[leaf.Issuer.CommonName]; ok {
		return rule
	}
	if len(p.issuerDN) == 0 {
		return ""
	}
	return p.issuerDN[leaf.Issuer.String()]
}

// deniedError names the peer a policy denied. It keeps the certificate and
// prints it only when the error is, so a flood of denials costs one
// allocation each.
type deniedError struct {
	leaf *x509.Certificate
}

func (e *deniedError) Error() string {
	return fmt.Sprintf("%v: no rule matches peer cn=%q san=%q", ErrDenied, e.leaf.Subject.CommonName, firstSAN(e.leaf))
}

func (e *deniedError) Unwrap() error { return ErrDenied }

// firstSAN is the peer's most telling SAN, kind-prefixed: a URI (a SPIFFE
// ID) first, then DNS, IP, e-mail.
func firstSAN(c *x509.Certificate) string {
	switch {
	case len(c.URIs) > 0 && c.URIs[0] != nil:
		return "uri:" + c.URIs[0].String()
	case len(c.DNSNames) > 0:
		return "dns:" + c.DNSNames[0]
	case len(c.IPAddresses) > 0:
		return "ip:" + c.IPAddresses[0].String()
	case len(c.EmailAddresses) > 0:
		return "email:" + c.EmailAddresses[0]
	}
	return ""
}
