package policy

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Rules are the access rules of one service: the --allow-* flags of a
// tunnel server, the --verify-* flags of a tunnel client, or the same keys
// in a YAML file. A peer is allowed when any single rule matches its leaf
// certificate, across all kinds, as in ghostunnel (auth/auth.go).
//
// Beyond ghostunnel: DNS rules ignore case and may start with a "*" label;
// IP rules may be CIDR prefixes; Email, SPKI and Issuer are new kinds.
// Stricter than ghostunnel: empty entries, entries with surrounding space
// and URI patterns without a literal scheme are errors, and a client with
// no --verify-* flag must say AllowAll instead of leaving Rules empty.
type Rules struct {
	// AllowAll allows every peer whose certificate verified. It excludes
	// every other rule, as --allow-all does in ghostunnel.
	AllowAll bool `yaml:"allow_all"`
	// CN matches the subject common name exactly.
	CN []string `yaml:"cn"`
	// OU matches any of the subject's organizational units exactly.
	OU []string `yaml:"ou"`
	// DNS matches any DNS SAN; see [CompileDNS].
	DNS []string `yaml:"dns"`
	// IP matches any IP SAN: an address, or a CIDR prefix containing it.
	// IPv4-mapped IPv6 addresses are their IPv4 address.
	IP []string `yaml:"ip"`
	// URI matches any URI SAN, as the URL's String prints it, against a
	// [Wildcard] pattern split by '/' ("spiffe://corp/device/*"). The scheme
	// must be literal and is compared ignoring case.
	URI []string `yaml:"uri"`
	// Email matches any e-mail SAN: the local part exactly, the domain
	// ignoring ASCII case.
	Email []string `yaml:"email"`
	// SPKI matches the SHA-256 of the leaf's DER SubjectPublicKeyInfo,
	// written as 64 hex digits (colons allowed between pairs) or standard
	// base64, optionally prefixed "sha256/" (HPKP) or "sha256:" (ghostunnel's
	// --allow-spki-pin). Unlike ghostunnel's pin, it does not replace chain
	// verification: the leaf must still verify.
	SPKI []string `yaml:"spki_sha256"`
	// Issuer matches the leaf's issuer: an entry holding '=' is a whole
	// distinguished name as pkix.Name.String prints it
	// ("CN=Corp Devices CA,O=Corp,C=US"), any other entry the issuer's CN.
	Issuer []string `yaml:"issuer"`
}

// Policy is compiled [Rules]. It is immutable and safe for concurrent use;
// a reload compiles a new one and swaps it in.
type Policy struct {
	allowAll bool
	// cn, ou, issuerCN and issuerDN map an entry to its Decision.Rule.
	cn, ou             map[string]string
	issuerCN, issuerDN map[string]string
	spki               map[[sha256.Size]byte]string
	dns, uri           []patternRule
	ip                 []prefixRule
	email              []emailRule
	summary            string
}

type patternRule struct {
	w    *Wildcard
	rule string
}

type prefixRule struct {
	prefix netip.Prefix
	rule   string
}

type emailRule struct {
	local, domain string
	rule          string
}

// errNoRule is the error of Rules that allow nobody.
var errNoRule = errors.New("no access rule: set allow_all or at least one rule")

// Validate reports every problem in r, joined with errors.Join. It is what
// Compile checks, for a check mode that runs before start.
func (r Rules) Validate() error {
	_, err := Compile(r)
	return err
}

// Compile checks r and compiles it into a Policy. On error the Policy is
// nil and the error lists every problem.
func Compile(r Rules) (*Policy, error) {
	p := &Policy{allowAll: r.AllowAll, summary: r.summary()}
	var errs []error
	switch n := r.count(); {
	case n == 0 && !r.AllowAll:
		errs = append(errs, errNoRule)
	case n > 0 && r.AllowAll:
		errs = append(errs, errors.New("allow_all cannot be combined with other rules"))
	}
	each(&errs, "cn", r.CN, func(v, rule string) error { return put(&p.cn, v, rule) })
	each(&errs, "ou", r.OU, func(v, rule string) error { return put(&p.ou, v, rule) })
	each(&errs, "dns", r.DNS, func(v, rule string) error { return addPattern(&p.dns, CompileDNS, v, rule) })
	each(&errs, "ip", r.IP, p.addIP)
	each(&errs, "uri", r.URI, func(v, rule string) error { return addPattern(&p.uri, compileURI, v, rule) })
	each(&errs, "email", r.Email, p.addEmail)
	each(&errs, "spki_sha256", r.SPKI, p.addSPKI)
	each(&errs, "issuer", r.Issuer, p.addIssuer)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// count is the number of rule entries besides AllowAll.
func (r Rules) count() int {
	return len(r.CN) + len(r.OU) + len(r.DNS) + len(r.IP) + len(r.URI) + len(r.Email) + len(r.SPKI) + len(r.Issuer)
}

// each checks every entry of one rule kind and hands it to add with its
// Decision.Rule, collecting the errors.
func each(errs *[]error, kind string, entries []string, add func(v, rule string) error) {
	for i, v := range entries {
		err := checkEntry(v)
		if err == nil {
			err = add(v, kind+"="+v)
		}
		if err != nil {
			*errs = append(*errs, &EntryError{Kind: kind, Index: i, Value: v, Err: err})
		}
	}
}

// EntryError is the problem of one rule entry, for a caller that names
// the entry its own way (a tunnel's --allow-ip flag).
type EntryError struct {
	Kind  string // the rule's YAML key: cn, ou, dns, ip, uri, email, spki_sha256, issuer
	Index int    // the entry's position in its list
	Value string
	Err   error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("%s[%d] %q: %v", e.Kind, e.Index, e.Value, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// checkEntry holds what every kind of entry must be: a typo's empty entry
// would otherwise match every certificate without that field.
func checkEntry(v string) error {
	if v == "" {
		return errors.New("empty entry")
	}
	if strings.TrimSpace(v) != v {
		return errors.New("leading or trailing space")
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] == 0x7f {
			return errors.New("control character")
		}
	}
	return nil
}

func put[K comparable](m *map[K]string, k K, rule string) error {
	if *m == nil {
		*m = make(map[K]string)
	}
	if _, dup := (*m)[k]; !dup {
		(*m)[k] = rule
	}
	return nil
}

func addPattern(list *[]patternRule, compile func(string) (*Wildcard, error), v, rule string) error {
	w, err := compile(v)
	if err != nil {
		return err
	}
	*list = append(*list, patternRule{w: w, rule: rule})
	return nil
}

// compileURI compiles a URI pattern whose scheme is literal. url.Parse
// lower-cases a SAN's scheme, so the pattern's is lower-cased too.
func compileURI(v string) (*Wildcard, error) {
	scheme, rest, ok := strings.Cut(v, ":")
	if !ok || !validScheme(scheme) {
		return nil, errors.New(`want a URI with a literal scheme, such as "spiffe://corp/device/*"`)
	}
	return CompileWildcard(strings.ToLower(scheme)+":"+rest, '/')
}

// validScheme follows RFC 3986 section 3.1.
func validScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (i == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}

func (p *Policy) addIP(v, rule string) error {
	prefix, err := parsePrefix(v)
	if err != nil {
		return err
	}
	p.ip = append(p.ip, prefixRule{prefix: prefix, rule: rule})
	return nil
}

// parsePrefix reads an address as a one-address prefix, or a CIDR prefix
// whose host bits are zero, with IPv4-mapped IPv6 unmapped.
func parsePrefix(v string) (netip.Prefix, error) {
	if !strings.Contains(v, "/") {
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, errors.New("not an IP address or CIDR prefix")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, errors.New("not an IP address or CIDR prefix")
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("host bits set; did you mean %s?", p.Masked())
	}
	if a := p.Addr(); a.Is4In6() {
		// Masked, so at least /96: shorter would clear the ffff.
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p, nil
}

func (p *Policy) addEmail(v, rule string) error {
	i := strings.LastIndexByte(v, '@')
	if i <= 0 || i == len(v)-1 {
		return errors.New("want local@domain")
	}
	if err := checkName(v[i+1:], false); err != nil {
		return fmt.Errorf("domain: %w", err)
	}
	p.email = append(p.email, emailRule{local: v[:i], domain: v[i+1:], rule: rule})
	return nil
}

func (p *Policy) addSPKI(v, rule string) error {
	sum, err := parseSPKI(v)
	if err != nil {
		return err
	}
	return put(&p.spki, sum, rule)
}

// parseSPKI decodes a SHA-256 digest written in hex or base64, with an
// optional "sha256/" or "sha256:" prefix.
func parseSPKI(v string) (sum [sha256.Size]byte, err error) {
	s := v
	for _, prefix := range []string{"sha256/", "sha256:"} {
		if len(s) > len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
			s = s[len(prefix):]
			break
		}
	}
	if len(s) == 3*sha256.Size-1 && strings.Count(s, ":") == sha256.Size-1 {
		s = strings.ReplaceAll(s, ":", "")
	}
	var b []byte
	switch len(s) {
	case hex.EncodedLen(sha256.Size):
		b, err = hex.DecodeString(s)
	case base64.StdEncoding.EncodedLen(sha256.Size):
		b, err = base64.StdEncoding.Strict().DecodeString(s)
	case base64.RawStdEncoding.EncodedLen(sha256.Size):
		b, err = base64.RawStdEncoding.Strict().DecodeString(s)
	default:
		err = errors.New("wrong length")
	}
	if err != nil || len(b) != sha256.Size {
		return sum, errors.New(`want the SHA-256 of a SubjectPublicKeyInfo as 64 hex digits or base64, optionally prefixed "sha256/"`)
	}
	return [sha256.Size]byte(b), nil
}

func (p *Policy) addIssuer(v, rule string) error {
	if strings.Contains(v, "=") {
		return put(&p.issuerDN, v, rule)
	}
	return put(&p.issuerCN, v, rule)
}

// summary is Policy.String: the rules in YAML key order, quoted, since
// distinguished names hold commas and spaces.
func (r Rules) summary() string {
	if r.AllowAll {
		return "allow_all"
	}
	var b strings.Builder
	for _, k := range []struct {
		name    string
		entries []string
	}{
		{"cn", r.CN}, {"ou", r.OU}, {"dns", r.DNS}, {"ip", r.IP}, {"uri", r.URI},
		{"email", r.Email}, {"spki_sha256", r.SPKI}, {"issuer", r.Issuer},
	} {
		if len(k.entries) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%q", k.name, k.entries)
	}
	return b.String()
}

// String summarizes the rules for logs and status pages, such as
// `cn=["alice"] uri=["spiffe://corp/device/*"]`.
func (p *Policy) String() string {
	if p == nil {
		return "deny_all"
	}
	return p.summary
}
