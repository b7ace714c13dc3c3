package pki

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"strings"
)

// Names are the identities a certificate asserts in its SAN extension.
type Names struct {
	DNS    []string
	IPs    []net.IP
	Emails []string
	URIs   []*url.URL
}

// Empty reports whether no name of any kind is present.
func (n Names) Empty() bool {
	return len(n.DNS) == 0 && len(n.IPs) == 0 && len(n.Emails) == 0 && len(n.URIs) == 0
}

// ParseNames turns command-line strings into Names, checking the syntax of
// each. DNS names are lowercased: certificates compare them case-blind.
func ParseNames(dns, ips, emails, uris []string) (Names, error) {
	var n Names
	var errs []error
	for _, d := range dns {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if err := checkDNSName(d); err != nil {
			errs = append(errs, err)
			continue
		}
		n.DNS = append(n.DNS, d)
	}
	for _, s := range ips {
		ip := net.ParseIP(strings.TrimSpace(s))
		if ip == nil {
			errs = append(errs, fmt.Errorf("IP address %q: not an IPv4 or IPv6 address", s))
			continue
		}
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		n.IPs = append(n.IPs, ip)
	}
	for _, e := range emails {
		if err := checkEmail(e); err != nil {
			errs = append(errs, err)
			continue
		}
		n.Emails = append(n.Emails, e)
	}
	for _, s := range uris {
		u, err := checkURI(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n.URIs = append(n.URIs, u)
	}
	return n, errors.Join(errs...)
}

// checkDNSName accepts LDH labels (RFC 1035, 1123), an optional leading
// "*." wildcard label, and no IDN in U-label form (RFC 5891: certificates
// carry A-labels, "xn--").
func checkDNSName(d string) error {
	if d == "" {
		return errors.New("DNS name: empty")
	}
	if len(d) > 253 {
		return fmt.Errorf("DNS name %q: longer than 253 characters", d)
	}
	labels := strings.Split(d, ".")
	for i, l := range labels {
		if l == "*" && i == 0 && len(labels) > 2 {
			continue
		}
		if err := checkLabel(l); err != nil {
			return fmt.Errorf("DNS name %q: %w", d, err)
		}
	}
	return nil
}

func checkLabel(l string) error {
	if l == "" {
		return errors.New("empty label")
	}
	if len(l) > 63 {
		return fmt.Errorf("label %q longer than 63 characters", l)
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return fmt.Errorf("label %q starts or ends with a hyphen", l)
	}
	for _, c := range []byte(l) {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
		if !ok {
			return fmt.Errorf("label %q has character %q (want a-z, 0-9, -; IDNs as xn-- A-labels)", l, c)
		}
	}
	if len(l) >= 4 && l[2:4] == "--" && l[:2] != "xn" {
		return fmt.Errorf("label %q has hyphens in the 3rd and 4th positions", l)
	}
	return nil
}

func checkEmail(e string) error {
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" {
		return fmt.Errorf("email %q: not a bare address like user@example.com", e)
	}
	at := strings.LastIndexByte(e, '@')
	if err := checkDNSName(strings.ToLower(e[at+1:])); err != nil {
		return fmt.Errorf("email %q: %w", e, err)
	}
	return nil
}

func checkURI(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("URI %q: %w", s, err)
	}
	if u.Scheme == "" || (u.Host == "" && u.Opaque == "") {
		return nil, fmt.Errorf("URI %q: want an absolute URI with a scheme and an authority, like spiffe://example.org/device/1", s)
	}
	return u, nil
}

// NamePolicy limits the names a CA certifies, per name type. An empty allow
// list allows every name of that type; a deny entry always wins.
type NamePolicy struct {
	DNS   Rules `yaml:"dns"`
	IP    Rules `yaml:"ip"`
	Email Rules `yaml:"email"`
	URI   Rules `yaml:"uri"`
}

// Rules are the allow and deny patterns of one name type. Patterns:
//   - DNS: "example.com" matches exactly; ".example.com" matches any name
//     below it, not itself.
//   - IP: a CIDR prefix ("10.0.0.0/8") or a single address.
//   - Email: "user@example.com" exactly, "@example.com" any mailbox there,
//     ".example.com" any mailbox in a subdomain.
//   - URI: a string prefix ("spiffe://corp.example.com/device/").
type Rules struct {
	Allow []string `yaml:"allow"`
	Deny  []string `yaml:"deny"`
}

// Validate checks that every pattern parses.
func (p NamePolicy) Validate() error {
	var errs []error
	for _, pat := range append(append([]string{}, p.IP.Allow...), p.IP.Deny...) {
		if _, err := parsePrefix(pat); err != nil {
			errs = append(errs, fmt.Errorf("name policy ip %q: %w", pat, err))
		}
	}
	for _, pat := range append(append([]string{}, p.DNS.Allow...), p.DNS.Deny...) {
		if err := checkDNSName(strings.TrimPrefix(pat, ".")); err != nil {
			errs = append(errs, fmt.Errorf("name policy dns: %w", err))
		}
	}
	return errors.Join(errs...)
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ErrNameNotAllowed wraps every refusal of the name policy.
var ErrNameNotAllowed = errors.New("name not allowed by policy")

// PolicyError is a refusal of the name policy. It names the rule that
// refused, so an operator knows which line of ca.yaml to change.
type PolicyError struct {
	// Kind is the name type as ca.yaml spells it: dns, ip, email, uri.
	Kind string
	Name string
	// List is "deny" when the deny pattern in Patterns matched, "allow"
	// when none of the allow Patterns did.
	List     string
	Patterns []string
}

func (e *PolicyError) Error() string {
	what := map[string]string{"dns": "dns name", "ip": "ip address", "email": "email", "uri": "uri"}[e.Kind]
	if e.List == "deny" {
		return fmt.Sprintf("%s %q is denied by name_policy.%s.deny %q", what, e.Name, e.Kind, e.Patterns[0])
	}
	return fmt.Sprintf("%s %q is not allowed by name_policy.%s.allow %v", what, e.Name, e.Kind, e.Patterns)
}

// Unwrap makes every PolicyError an ErrNameNotAllowed for errors.Is.
func (e *PolicyError) Unwrap() error { return ErrNameNotAllowed }

// Check returns a *PolicyError (wrapping ErrNameNotAllowed) for the first
// name the policy refuses, or nil.
func (p NamePolicy) Check(n Names) error {
	for _, d := range n.DNS {
		if err := p.DNS.check("dns", d, matchDNS); err != nil {
			return err
		}
	}
	for _, ip := range n.IPs {
		if err := p.IP.check("ip", ip.String(), matchIP); err != nil {
			return err
		}
	}
	for _, e := range n.Emails {
		if err := p.Email.check("email", e, matchEmail); err != nil {
			return err
		}
	}
	for _, u := range n.URIs {
		if err := p.URI.check("uri", u.String(), strings.HasPrefix); err != nil {
			return err
		}
	}
	return nil
}

func (r Rules) check(kind, name string, match func(name, pattern string) bool) error {
	for _, pat := range r.Deny {
		if match(name, pat) {
			return &PolicyError{Kind: kind, Name: name, List: "deny", Patterns: []string{pat}}
		}
	}
	if len(r.Allow) == 0 {
		return nil
	}
	for _, pat := range r.Allow {
		if match(name, pat) {
			return nil
		}
	}
	return &PolicyError{Kind: kind, Name: name, List: "allow", Patterns: r.Allow}
}

func matchDNS(name, pat string) bool {
	name, pat = strings.ToLower(name), strings.ToLower(pat)
	if strings.HasPrefix(pat, ".") {
		return strings.HasSuffix(name, pat) && len(name) > len(pat)
	}
	return name == pat
}

func matchIP(name, pat string) bool {
	a, err := netip.ParseAddr(name)
	if err != nil {
		return false
	}
	p, err := parsePrefix(pat)
	if err != nil {
		return false
	}
	return p.Contains(a.Unmap())
}

func matchEmail(name, pat string) bool {
	at := strings.LastIndexByte(name, '@')
	if at < 0 {
		return false
	}
	domain := strings.ToLower(name[at+1:])
	switch {
	case strings.HasPrefix(pat, "@"):
		return domain == strings.ToLower(pat[1:])
	case strings.HasPrefix(pat, "."):
		return matchDNS(domain, pat)
	}
	return strings.EqualFold(name, pat)
}
