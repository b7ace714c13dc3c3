package tunnel

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-dev/portcullis/internal/policy"
	"github.com/portcullis-dev/portcullis/internal/revocation"
	"github.com/portcullis-dev/portcullis/internal/strictyaml"
	"github.com/portcullis-dev/portcullis/internal/tlsconf"
)

// ConfigVersion is the tunnels.yaml schema version.
const ConfigVersion = 1

// Modes of a service.
const (
	ModeServer = "server" // terminate mTLS, forward plaintext to the targets
	ModeClient = "client" // accept plaintext, dial the targets over mTLS
)

// Source is where a Config came from.
type Source int

// Sources of a Config.
const (
	SourceFile  Source = iota // tunnels.yaml
	SourceFlags               // the single-service flags of `tunnel server|client`
)

// Config is a tunnel process: many services, one status listener. Flags
// (one service, ghostunnel's names) and tunnels.yaml both fill it.
type Config struct {
	// Source is where the config came from, so that its errors name what
	// the user typed: a tunnels.yaml key or a flag.
	Source  Source `yaml:"-"`
	Version int    `yaml:"version"`
	// Status is the address of the status listener (/healthz, /readyz,
	// /metrics, /status); empty for none.
	Status          string    `yaml:"status,omitempty"`
	ShutdownTimeout Duration  `yaml:"shutdown_timeout,omitempty"`
	Services        []Service `yaml:"services" strictyaml:"service"`
}

// Service is one proxied service.
type Service struct {
	Name   string `yaml:"name"`
	Mode   string `yaml:"mode"`
	Listen string `yaml:"listen"`
	// SNI lists the server names this service answers for when several
	// server-mode services share a listen address; at most one service of
	// a shared address may leave it empty (the default).
	SNI      []string `yaml:"sni,omitempty"`
	Targets  []string `yaml:"targets"`
	Failover string   `yaml:"failover,omitempty"`

	Identity Identity `yaml:"identity"`
	// Allow (server mode) admits clients by certificate identity.
	Allow policy.Rules `yaml:"allow,omitempty"`
	// Verify (client mode) checks the server's certificate identity on top
	// of the chain and, when ServerName is set, the host name.
	Verify     policy.Rules `yaml:"verify,omitempty"`
	ServerName string       `yaml:"server_name,omitempty"`
	// DisableAuthentication (client mode): present no client certificate.
	DisableAuthentication bool `yaml:"disable_authentication,omitempty"`

	// Curves replaces the default key exchanges (x25519mlkem768, x25519,
	// p256); see tlsconf.ParseCurves.
	Curves []string `yaml:"curves,omitempty"`

	Revocation *Revocation `yaml:"revocation,omitempty"`
	// ProxyProtocol (server mode): send a PROXY v2 header with the client's
	// address and verified identity to the target.
	ProxyProtocol bool `yaml:"proxy_protocol,omitempty"`

	ConnectTimeout   Duration `yaml:"connect_timeout,omitempty"`
	HandshakeTimeout Duration `yaml:"handshake_timeout,omitempty"`
	CloseTimeout     Duration `yaml:"close_timeout,omitempty"`
	MaxConnLifetime  Duration `yaml:"max_conn_lifetime,omitempty"`
	MaxConns         int      `yaml:"max_concurrent_conns,omitempty"`
	// UnsafeTarget / UnsafeListen allow a plaintext side that is not
	// loopback or a UNIX socket.
	UnsafeTarget bool `yaml:"unsafe_target,omitempty"`
	UnsafeListen bool `yaml:"unsafe_listen,omitempty"`
}

// Identity is where a service's certificate, key and trusted CAs come from.
type Identity struct {
	Cert     string `yaml:"cert,omitempty"`
	Key      string `yaml:"key,omitempty"`
	Keystore string `yaml:"keystore,omitempty"`
	// StorepassFile holds the PKCS#12 password or the key passphrase.
	StorepassFile string `yaml:"storepass_file,omitempty"`
	// Storepass is the password itself, from ghostunnel's --storepass flag;
	// a config file names a file instead.
	Storepass string `yaml:"-"`
	CACert    string `yaml:"cacert"`
}

// Revocation configures the checks of peer certificates.
type Revocation struct {
	CRLs     []string `yaml:"crls,omitempty"`
	OCSP     bool     `yaml:"ocsp,omitempty"`
	Mode     string   `yaml:"mode,omitempty"`
	Refresh  Duration `yaml:"refresh,omitempty"`
	MaxStale Duration `yaml:"max_stale,omitempty"`
}

// Defaults, in one place. Timeouts follow ghostunnel's where it has them.
const (
	defaultConnectTimeout   = 10 * time.Second
	defaultHandshakeTimeout = 10 * time.Second
	defaultCloseTimeout     = time.Second
	defaultShutdownTimeout  = 5 * time.Minute
)

// WithDefaults returns a copy of c with every unset value at its default.
func (c Config) WithDefaults() Config {
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = Duration(defaultShutdownTimeout)
	}
	svcs := make([]Service, len(c.Services))
	for i, s := range c.Services {
		if s.Failover == "" {
			s.Failover = FailoverPriority
		}
		if s.ConnectTimeout == 0 {
			s.ConnectTimeout = Duration(defaultConnectTimeout)
		}
		if s.HandshakeTimeout == 0 {
			s.HandshakeTimeout = Duration(defaultHandshakeTimeout)
		}
		if s.CloseTimeout == 0 {
			s.CloseTimeout = Duration(defaultCloseTimeout)
		}
		if s.Name == "" {
			s.Name = fmt.Sprintf("%s-%s", s.Mode, s.Listen)
		}
		svcs[i] = s
	}
	c.Services = svcs
	return c
}

// compiled is a Config parsed and checked, once: addresses, access rules,
// key exchanges and revocation settings in the types the proxy runs on.
// Nothing downstream parses the Config again.
type compiled struct {
	// status is the status listener's address; zero for none.
	status          Addr
	shutdownTimeout time.Duration
	services        []compiledService
}

// compiledService is one Service, compiled. The field names are those of
// Service where the meaning is the same.
type compiledService struct {
	Name   string
	Mode   string // ModeServer or ModeClient
	Listen Addr
	SNI    []string
	// Targets are tried in order, or rotated when RoundRobin.
	Targets    []Addr
	RoundRobin bool
	Identity   Identity
	// Anonymous: a client-mode service that presents no certificate and
	// needs only the CA bundle.
	Anonymous bool
	// Rules are the compiled allow (server) or verify (client) rules; nil
	// for a client that checks the chain and host name only.
	Rules                 *policy.Policy
	ServerName            string
	DisableAuthentication bool
	// Curves replace the default key exchanges when not empty.
	Curves        []tls.CurveID
	Revocation    *revocation.Config
	ProxyProtocol bool

	ConnectTimeout   time.Duration
	HandshakeTimeout time.Duration
	CloseTimeout     time.Duration
	MaxConnLifetime  time.Duration
	MaxConns         int
}

// Validate reports every problem at once and changes nothing. It runs the
// compile step New and Reload run: what it accepts, they run.
func (c Config) Validate() error {
	_, err := c.compile()
	return err
}

// ErrInvalidConfig is what every error of Validate (and of New and Reload
// for a config that does not validate) is, for errors.Is: the config is
// wrong, as opposed to a file it names failing to load.
var ErrInvalidConfig = errors.New("invalid tunnel configuration")

// invalidConfig marks a validation error without changing its message.
type invalidConfig struct{ error }

func (e invalidConfig) Is(target error) bool { return target == ErrInvalidConfig }
func (e invalidConfig) Unwrap() error        { return e.error }

// compile applies defaults, checks c and returns it parsed; the error
// lists every problem.
func (c Config) compile() (compiled, error) {
	c = c.WithDefaults()
	n := names{flags: c.Source == SourceFlags}
	out := compiled{shutdownTimeout: time.Duration(c.ShutdownTimeout)}
	var errs []error
	if c.Version != ConfigVersion {
		errs = append(errs, fmt.Errorf("version: %d, want %d", c.Version, ConfigVersion))
	}
	if len(c.Services) == 0 {
		errs = append(errs, errors.New("services: none"))
	}
	if c.Status != "" {
		a, err := ParseAddr(c.Status)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.key("status"), err))
		}
		out.status = a
	}
	names := map[string]bool{}
	for _, s := range c.Services {
		if names[s.Name] {
			errs = append(errs, fmt.Errorf("service %q: name used twice", s.Name))
		}
		names[s.Name] = true
		cs, err := s.compile(n)
		errs = append(errs, err)
		out.services = append(out.services, cs)
	}
	errs = append(errs, validateShared(out.services))
	if err := errors.Join(errs...); err != nil {
		return compiled{}, invalidConfig{err}
	}
	return out, nil
}

// compile checks one service (defaults applied) and parses it; n names
// its settings as the user wrote them.
func (s Service) compile(n names) (compiledService, error) {
	cs := compiledService{Name: s.Name, Mode: s.Mode, SNI: s.SNI, RoundRobin: s.Failover == FailoverRoundRobin,
		Identity: s.Identity, ServerName: s.ServerName, DisableAuthentication: s.DisableAuthentication,
		ProxyProtocol: s.ProxyProtocol, ConnectTimeout: time.Duration(s.ConnectTimeout),
		HandshakeTimeout: time.Duration(s.HandshakeTimeout), CloseTimeout: time.Duration(s.CloseTimeout),
		MaxConnLifetime: time.Duration(s.MaxConnLifetime), MaxConns: s.MaxConns}
	var errs []error
	bad := func(format string, a ...any) {
		err := fmt.Errorf(format, a...)
		if !n.flags {
			// Flags configure one service: naming it would only confuse.
			err = fmt.Errorf("service %q: %w", s.Name, err)
		}
		errs = append(errs, err)
	}
	if s.Mode != ModeServer && s.Mode != ModeClient {
		bad("mode %q: want server or client", s.Mode)
	}
	cs.Listen, cs.Targets = s.addrs(n, bad)
	if s.Failover != FailoverPriority && s.Failover != FailoverRoundRobin {
		bad("%s %q: want priority or round-robin", n.key("failover"), s.Failover)
	}
	cs.Anonymous = s.identity(n, bad)
	cs.Rules = s.rules(n, bad)
	if s.Revocation != nil {
		rc, err := s.Revocation.config(n)
		if err != nil {
			bad("%w", err)
		}
		cs.Revocation = &rc
	}
	if s.MaxConns < 0 {
		bad("%s: negative", n.key("max_concurrent_conns"))
	}
	if len(s.Curves) > 0 {
		var err error
		if cs.Curves, err = tlsconf.ParseCurves(s.Curves); err != nil {
			bad("%s: %v", n.key("curves"), err)
		}
	}
	return cs, errors.Join(errs...)
}

// report records one problem of a service.
type report func(format string, a ...any)

// addrs parses the listen and target addresses and checks that the
// plaintext side stays on the host unless the user says otherwise.
func (s Service) addrs(n names, bad report) (Addr, []Addr) {
	listen, err := ParseAddr(s.Listen)
	if err != nil {
		bad("%s: %v", n.key("listen"), err)
	} else if s.Mode == ModeClient && !s.UnsafeListen && !listen.Loopback() {
		bad("%s %s is not loopback or a UNIX socket: anyone on the network could use this client's identity (%s to allow)", n.key("listen"), s.Listen, n.enable("unsafe_listen"))
	}
	if len(s.Targets) == 0 {
		bad("%s is required", n.key("targets"))
	}
	var targets []Addr
	for _, t := range s.Targets {
		a, err := ParseAddr(t)
		if err != nil {
			bad("%s: %v", n.key("target"), err)
			continue
		}
		if s.Mode == ModeServer && !s.UnsafeTarget && !a.Loopback() {
			bad("%s %s is not loopback or a UNIX socket: plaintext would cross the network (%s to allow)", n.key("target"), t, n.enable("unsafe_target"))
		}
		targets = append(targets, a)
	}
	return listen, targets
}

// identity checks where the certificate, key and CA bundle come from and
// reports whether the service is an anonymous client (no certificate).
func (s Service) identity(n names, bad report) (anonymous bool) {
	id := s.Identity
	anonymous = s.Mode == ModeClient && s.DisableAuthentication && id.Cert == "" && id.Key == "" && id.Keystore == ""
	switch {
	case id.Keystore != "" && (id.Cert != "" || id.Key != ""):
		bad("%s", n.say("identity: keystore and cert/key exclude each other", "--keystore and --cert/--key exclude each other"))
	case anonymous:
	case id.Keystore == "" && (id.Cert == "" || id.Key == ""):
		bad("%s", n.say("identity: want keystore, or cert and key", "want --keystore, or --cert and --key"))
	}
	if id.Storepass != "" && id.StorepassFile != "" {
		bad("%s", n.say("identity: storepass and storepass_file exclude each other", "--storepass and --storepass-file exclude each other"))
	}
	if id.CACert == "" {
		bad("%s is required (the CA bundle peers are verified against)", n.key("identity.cacert"))
	}
	return anonymous
}

// rules compiles the allow rules of a server or the verify rules of a
// client (nil when it has none: chain and host name only) and checks that
// no setting of the other mode is set.
func (s Service) rules(n names, bad report) *policy.Policy {
	var p *policy.Policy
	var errs []error
	if s.Mode == ModeServer {
		p, errs = n.policy(s.Allow, "allow")
		if s.ServerName != "" || s.DisableAuthentication || !emptyRules(s.Verify) {
			bad("server_name, verify and disable_authentication are client-mode settings")
		}
	} else {
		if !emptyRules(s.Verify) {
			p, errs = n.policy(s.Verify, "verify")
		}
		if !emptyRules(s.Allow) || s.ProxyProtocol || len(s.SNI) > 0 {
			bad("allow, sni and proxy_protocol are server-mode settings")
		}
	}
	for _, err := range errs {
		bad("%w", err)
	}
	return p
}

// validateShared checks services sharing a listen address: all server mode,
// SNI names unique, at most one default.
func validateShared(services []compiledService) error {
	byListen := map[Addr][]*compiledService{}
	var order []Addr
	for i := range services {
		s := &services[i]
		if s.Listen == (Addr{}) {
			continue // reported already
		}
		if byListen[s.Listen] == nil {
			order = append(order, s.Listen)
		}
		byListen[s.Listen] = append(byListen[s.Listen], s)
	}
	var errs []error
	for _, listen := range order {
		errs = append(errs, validateGroup(listen, byListen[listen]))
	}
	return errors.Join(errs...)
}

func validateGroup(listen Addr, group []*compiledService) error {
	if len(group) < 2 {
		return nil
	}
	var errs []error
	seen := map[string]string{}
	defaults := 0
	for _, s := range group {
		if s.Mode != ModeServer {
			errs = append(errs, fmt.Errorf("listen %s: shared by %d services, and %q is not server mode (only server mode routes by SNI)", listen, len(group), s.Name))
		}
		if len(s.SNI) == 0 {
			defaults++
		}
		for _, n := range s.SNI {
			n = strings.ToLower(n)
			if other, ok := seen[n]; ok {
				errs = append(errs, fmt.Errorf("listen %s: sni %q claimed by %q and %q", listen, n, other, s.Name))
			}
			seen[n] = s.Name
		}
	}
	if defaults > 1 {
		errs = append(errs, fmt.Errorf("listen %s: %d services without sni; at most one may be the default", listen, defaults))
	}
	return errors.Join(errs...)
}

func (r *Revocation) config(n names) (revocation.Config, error) {
	c := revocation.Config{CRLs: r.CRLs, OCSP: r.OCSP, Mode: revocation.Mode(r.Mode),
		Refresh: time.Duration(r.Refresh), MaxStale: time.Duration(r.MaxStale)}
	if len(c.CRLs) == 0 && !c.OCSP {
		return c, errors.New("revocation: neither crls nor ocsp")
	}
	switch c.Mode {
	case "", revocation.FailOpen, revocation.FailClosed:
	default:
		return c, fmt.Errorf("%s %q: want fail-open or fail-closed", n.key("revocation.mode"), r.Mode)
	}
	return c, nil
}

// DecodeConfig decodes tunnels.yaml strictly (unknown keys, a second
// document and a missing version are errors) and applies defaults. New
// validates and compiles what it returns; ParseConfig validates too.
func DecodeConfig(data []byte) (Config, error) {
	var c Config
	if err := strictyaml.Decode(data, &c); err != nil {
		return Config{}, err
	}
	if c.Version == 0 {
		return Config{}, errors.New("version: missing")
	}
	return c.WithDefaults(), nil
}

// ParseConfig is DecodeConfig and Validate: for a check of a file without
// running it.
func ParseConfig(data []byte) (Config, error) {
	c, err := DecodeConfig(data)
	if err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Duration reads Go durations ("10s", "1m30s") or plain seconds.
type Duration time.Duration

// maxSeconds is the most seconds a time.Duration holds, in whole seconds.
const maxSeconds = float64(math.MaxInt64 / int64(time.Second))

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if secs, err := strconv.ParseFloat(n.Value, 64); err == nil {
		// Negative, NaN, infinite or too large, the conversion would give
		// a negative or meaningless time.Duration.
		if !(secs >= 0 && secs <= maxSeconds) {
			return fmt.Errorf("duration %q: want seconds from 0 to %.0f", n.Value, maxSeconds)
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("duration %q: want like 10s or 1m", n.Value)
	}
	if v < 0 {
		return fmt.Errorf("duration %q: negative", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// emptyRules reports whether no access rule is set: a client-mode service
// then checks the chain and host name only, as ghostunnel without --verify-*.
func emptyRules(r policy.Rules) bool {
	return !r.AllowAll && ruleCount(r) == 0
}

// ruleCount is the number of rule entries besides AllowAll.
func ruleCount(r policy.Rules) int {
	return len(r.CN) + len(r.OU) + len(r.DNS) + len(r.IP) + len(r.URI) + len(r.Email) + len(r.SPKI) + len(r.Issuer)
}
