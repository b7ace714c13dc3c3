package ca

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/portcullis-dev/portcullis/internal/pki"
	"github.com/portcullis-dev/portcullis/internal/strictyaml"
)

// ConfigVersion is the ca.yaml schema version this binary writes and reads.
const ConfigVersion = 1

// Config is the CA's settings, kept in <dir>/ca.yaml. `ca init` writes it;
// operators may edit it (lifetimes, URLs, name policy) and every command
// reads it strictly: unknown keys are errors, not silently ignored.
type Config struct {
	Version int `yaml:"version"`
	// KeyType of the keys `ca issue` generates for leaves.
	KeyType pki.KeyType `yaml:"key_type"`
	// Organization and Country go into every subject the CA builds.
	Organization string `yaml:"organization,omitempty"`
	Country      string `yaml:"country,omitempty"`
	// TrustDomain names the fleet in device identities: a device NAME gets
	// the URI SAN spiffe://<trust_domain>/device/<NAME>.
	TrustDomain string         `yaml:"trust_domain"`
	URLs        URLs           `yaml:"urls"`
	Lifetimes   Lifetimes      `yaml:"lifetimes"`
	NamePolicy  pki.NamePolicy `yaml:"name_policy"`
}

// URLs are baked into every issued certificate so relying parties find
// revocation data and the issuer.
type URLs struct {
	CRL    []string `yaml:"crl,omitempty"`
	OCSP   []string `yaml:"ocsp,omitempty"`
	Issuer []string `yaml:"issuer,omitempty"`
}

// Lifetimes per profile, and how long a CRL is valid.
type Lifetimes struct {
	Server Duration `yaml:"server"`
	Client Duration `yaml:"client"`
	Device Duration `yaml:"device"`
	CRL    Duration `yaml:"crl"`
}

// DefaultConfig holds every default in one place.
func DefaultConfig() Config {
	return Config{
		Version:     ConfigVersion,
		KeyType:     pki.DefaultKeyType,
		TrustDomain: "portcullis.internal",
		Lifetimes: Lifetimes{
			Server: Duration(90 * day),
			Client: Duration(30 * day),
			Device: Duration(30 * day),
			CRL:    Duration(7 * day),
		},
	}
}

const day = 24 * time.Hour

// Validate reports every problem at once and changes nothing.
func (c *Config) Validate() error {
	var errs []error
	if c.Version != ConfigVersion {
		errs = append(errs, fmt.Errorf("version: %d, want %d", c.Version, ConfigVersion))
	}
	// Only the canonical names: the CA generates keys from KeyType as is,
	// and pki.GenerateKey knows no aliases ("ecdsa", "P-256").
	if kt, err := pki.ParseKeyType(string(c.KeyType)); err != nil || kt != c.KeyType {
		errs = append(errs, fmt.Errorf("key_type: %q is not one of p256, p384, rsa2048, rsa3072", c.KeyType))
	}
	if c.TrustDomain == "" || strings.ContainsAny(c.TrustDomain, "/:@ ") {
		errs = append(errs, fmt.Errorf("trust_domain: %q is not a host name", c.TrustDomain))
	}
	for name, d := range map[string]Duration{"server": c.Lifetimes.Server, "client": c.Lifetimes.Client, "device": c.Lifetimes.Device, "crl": c.Lifetimes.CRL} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("lifetimes.%s: must be positive", name))
		}
	}
	if c.Lifetimes.Server > Duration(MaxServerLifetime) {
		errs = append(errs, fmt.Errorf("lifetimes.server: over %d days; TLS clients (Apple, Chrome) refuse such server certificates", MaxServerLifetime/day))
	}
	for _, list := range [][]string{c.URLs.CRL, c.URLs.OCSP, c.URLs.Issuer} {
		for _, s := range list {
			if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, fmt.Errorf("urls: %q is not an http(s) URL", s))
			}
		}
	}
	if err := c.NamePolicy.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// lifetime returns the configured lifetime of a leaf profile.
func (c *Config) lifetime(p pki.Profile) time.Duration {
	switch p {
	case pki.ProfileServer:
		return time.Duration(c.Lifetimes.Server)
	case pki.ProfileClient:
		return time.Duration(c.Lifetimes.Client)
	}
	return time.Duration(c.Lifetimes.Device)
}

// ParseConfig decodes ca.yaml strictly: unknown keys, a second document and
// a missing version are errors.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	if err := strictyaml.Decode(data, &c); err != nil {
		return Config{}, err
	}
	if c.Version == 0 {
		return Config{}, errors.New("version: missing")
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Marshal encodes the config as YAML with a header comment.
func (c Config) Marshal() ([]byte, error) {
	body, err := yaml.Marshal(c)
	if err != nil {
		return nil, err
	}
	return append([]byte("# Portcullis CA settings. Read strictly by every `portcullis ca` command.\n"), body...), nil
}

// Duration is a time.Duration that reads and writes days ("90d") as well
// as Go durations ("720h", "15m").
type Duration time.Duration

// ParseDuration accepts "<n>d", "<n>y" (365 days) or a Go duration.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	for suffix, unit := range map[string]time.Duration{"d": day, "y": 365 * day} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseUint(n, 10, 32)
			if err != nil {
				return 0, fmt.Errorf("duration %q: want a whole number of %s", s, map[string]string{"d": "days", "y": "years"}[suffix])
			}
			if v > uint64(math.MaxInt64/unit) {
				return 0, fmt.Errorf("duration %q: too long (over %d years)", s, math.MaxInt64/(365*day))
			}
			return time.Duration(v) * unit, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: want like 90d, 1y or 12h", s)
	}
	return d, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

func (d Duration) String() string {
	v := time.Duration(d)
	if v%day == 0 {
		return fmt.Sprintf("%dd", v/day)
	}
	return v.String()
}

func (c *Config) lintOptions() pki.LintOptions {
	return pki.LintOptions{OfflineRevocation: len(c.URLs.CRL) == 0 && len(c.URLs.OCSP) == 0}
}
