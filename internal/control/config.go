// Package control is the control server as a process: its settings
// (server.yaml), the first run (a CA, a server certificate, the first
// admin's bundle), and the wiring of store, CA, registration authority and
// HTTP front end. It holds no rule of its own (enroll does), signs nothing
// itself (ca does), has no SQL (store) and no handler (server).
package control

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/ca"
	"github.com/portcullis-dev/portcullis/internal/enroll"
	"github.com/portcullis-dev/portcullis/internal/server"
	"github.com/portcullis-dev/portcullis/internal/strictyaml"
)

// Config is server.yaml. Every field has a default; `portcullis server`
// with no file runs on these.
type Config struct {
	// Data is the directory of the CA, the SQLite store, the audit log and
	// the server's own certificate.
	Data string `yaml:"data"`
	// Listen is the HTTPS API; PublicListen is plain HTTP for CRL, OCSP and
	// health checks (relying parties fetch those before they trust anything).
	Listen       string `yaml:"listen"`
	PublicListen string `yaml:"public_listen"`
	// PublicURL is how relying parties reach PublicListen; it is baked into
	// certificates (CRL distribution point, OCSP) when the CA is created.
	PublicURL string `yaml:"public_url"`
	// Hostnames are extra DNS names or IPs for the server certificate.
	Hostnames []string `yaml:"hostnames"`
	// Store is "sqlite" (DATA/portcullis.db) or a postgres:// URL.
	Store string `yaml:"store"`
	// PassphraseFile holds the CA key passphrase. Unset: the environment's
	// PORTCULLIS_CA_PASSPHRASE, else DATA/ca-passphrase (made on first run).
	PassphraseFile string    `yaml:"passphrase_file"`
	Log            LogConfig `yaml:"log"`
	Enroll         struct {
		RequestTTL   ca.Duration   `yaml:"request_ttl"`
		TokenTTL     ca.Duration   `yaml:"token_ttl"`
		MaxTokenTTL  ca.Duration   `yaml:"max_token_ttl"`
		PollInterval ca.Duration   `yaml:"poll_interval"`
		AllowList    []AllowedRule `yaml:"allow_list"`
	} `yaml:"enroll"`
	Logs struct {
		// MaxBytes caps one uploaded device log; Keep is how many a device keeps.
		MaxBytes int `yaml:"max_bytes"`
		Keep     int `yaml:"keep"`
	} `yaml:"logs"`
	Renewal struct {
		// Grace lets a device renew this long after its certificate expired.
		Grace ca.Duration `yaml:"grace"`
	} `yaml:"renewal"`
	Admin struct {
		// Roles maps an admin certificate's CN to viewer, approver or admin.
		Roles map[string]string `yaml:"roles"`
	} `yaml:"admin"`
	Limits struct {
		MaxBody       int64   `yaml:"max_body"`
		RatePerSecond float64 `yaml:"rate_per_second"`
		Burst         int     `yaml:"burst"`
	} `yaml:"limits"`
	ShutdownTimeout ca.Duration `yaml:"shutdown_timeout"`
}

// LogConfig is the operator log's format and level.
type LogConfig struct {
	Format string `yaml:"format"`
	Level  string `yaml:"level"`
}

// AllowedRule is an allow-list entry (enroll.Rule).
type AllowedRule struct {
	Name           string `yaml:"name"`
	Hostname       string `yaml:"hostname"`
	OS             string `yaml:"os"`
	HardwareSerial string `yaml:"hardware_serial"`
}

// AdminName is the CN of the admin certificate the first run makes.
const AdminName = "admin"

// DefaultConfig is what runs without a file.
func DefaultConfig() Config {
	var c Config
	c.Data = "./portcullis-data"
	c.Listen = "127.0.0.1:8443"
	c.PublicListen = "127.0.0.1:8080"
	c.Store = "sqlite"
	c.Log = LogConfig{Format: "text", Level: "info"}
	c.Enroll.PollInterval = ca.Duration(server.DefaultPollInterval)
	c.Renewal.Grace = ca.Duration(30 * 24 * time.Hour)
	c.Admin.Roles = map[string]string{AdminName: "admin"}
	c.ShutdownTimeout = ca.Duration(30 * time.Second)
	return c
}

// ParseConfig reads server.yaml strictly over the defaults and validates it.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	// A file's roles replace the default ones (YAML would merge them into
	// the map, keeping an "admin" the operator meant to remove).
	c.Admin.Roles = nil
	if err := strictyaml.Decode(data, &c); err != nil {
		return Config{}, err
	}
	if c.Admin.Roles == nil {
		c.Admin.Roles = DefaultConfig().Admin.Roles
	}
	return c, c.Validate()
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	for key, addr := range map[string]string{"listen": c.Listen, "public_listen": c.PublicListen} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want host:port", key, addr))
		}
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || u.Scheme != "http" || u.Host == "" {
			errs = append(errs, fmt.Errorf("public_url %q: want http://host[:port] (CRL and OCSP are fetched over plain HTTP, RFC 5280 §4.2.1.13)", c.PublicURL))
		}
	}
	if c.Data == "" {
		errs = append(errs, errors.New("data: must not be empty"))
	}
	if c.Store != "sqlite" && !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") {
		errs = append(errs, fmt.Errorf("store %q: want sqlite or a postgres:// URL", c.Store))
	}
	if _, err := c.Roles(); err != nil {
		errs = append(errs, err)
	}
	if err := c.EnrollConfig().WithDefaults().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("enroll: %w", err))
	}
	if c.Limits.MaxBody < 0 || c.Limits.RatePerSecond < 0 || c.Limits.Burst < 0 {
		errs = append(errs, errors.New("limits: must not be negative"))
	}
	return errors.Join(errs...)
}

// Roles reads admin.roles.
func (c *Config) Roles() (map[string]server.Role, error) {
	out := map[string]server.Role{}
	for cn, name := range c.Admin.Roles {
		r, err := server.ParseRole(name)
		if err != nil {
			return nil, fmt.Errorf("admin.roles.%s: %w", cn, err)
		}
		out[cn] = r
	}
	return out, nil
}

// EnrollConfig is the RA's part.
func (c *Config) EnrollConfig() enroll.Config {
	e := enroll.Config{RequestTTL: time.Duration(c.Enroll.RequestTTL), TokenTTL: time.Duration(c.Enroll.TokenTTL),
		MaxTokenTTL: time.Duration(c.Enroll.MaxTokenTTL), RenewalGrace: time.Duration(c.Renewal.Grace),
		LogMaxBytes: c.Logs.MaxBytes, LogsKept: c.Logs.Keep}
	for _, r := range c.Enroll.AllowList {
		e.AllowList = append(e.AllowList, enroll.Rule(r))
	}
	return e
}

// publicURL is PublicURL or, unset, http:// and the public listener.
func (c *Config) publicURL() string {
	if c.PublicURL != "" {
		return strings.TrimSuffix(c.PublicURL, "/")
	}
	return "http://" + c.PublicListen
}

// apiURL is how the printed next steps reach the API.
func (c *Config) apiURL() string {
	host, port, _ := net.SplitHostPort(c.Listen)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, port)
}
