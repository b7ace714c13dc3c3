package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-dev/portcullis/internal/obs"
	"github.com/portcullis-dev/portcullis/internal/tunnel"
)

// tunnelFlags are every flag of `tunnel` and of its modes, in one struct
// that `tunnel` and both modes fill: the persistent flags (--status,
// --log-*…) wherever they are given, the service of a mode directly in svc.
// The names are ghostunnel's, so its users can swap binaries.
type tunnelFlags struct {
	configFile, status, logFormat, logLevel string
	check, syslog, pprof                    bool
	timedReload                             time.Duration
	shutdownTimeout                         time.Duration
	svc                                     tunnel.Service
	// crls, ocsp and revocationMode become svc.Revocation when a CRL or
	// OCSP is asked for.
	crls              []string
	ocsp              bool
	revocationMode    string
	revocationRefresh time.Duration
}

func newTunnelCmd() *cobra.Command {
	f := &tunnelFlags{}
	c := &cobra.Command{
		Use:   "tunnel [--config tunnels.yaml [--check]]",
		Short: "mTLS proxy: terminate mTLS to a plaintext backend (server) or carry plaintext over mTLS (client)",
		Long: `An mTLS proxy with ghostunnel's flags.

  portcullis tunnel server --listen :8443 --target 127.0.0.1:8080 --cert s.crt --key s.key --cacert ca.crt --allow-uri 'spiffe://corp/device/*'
  portcullis tunnel client --listen 127.0.0.1:9000 --target backend:8443 --keystore device.p12 --storepass-file p --cacert ca.crt
  portcullis tunnel --config tunnels.yaml          # many services, SNI routing, failover
  portcullis tunnel --config tunnels.yaml --check  # validate and load, then exit

SIGHUP reloads the configuration and certificates; SIGTERM drains.`,
		Args: exactArgs(0, "a mode (server, client) or --config"),
		RunE: func(c *cobra.Command, _ []string) error {
			if f.configFile == "" {
				return usageError{errors.New("tunnel: want `tunnel server`, `tunnel client` or `tunnel --config FILE`")}
			}
			load := func() (tunnel.Config, error) { return loadTunnelConfig(f.configFile) }
			return runTunnel(c, f, load)
		},
	}
	c.Flags().StringVar(&f.configFile, "config", "", "tunnels.yaml with one or more services")
	c.Flags().BoolVar(&f.check, "check", false, "with --config: load everything (certificates, CRLs), report, exit")
	addCommonTunnelFlags(c, f)
	c.AddCommand(newTunnelModeCmd(tunnel.ModeServer, f), newTunnelModeCmd(tunnel.ModeClient, f))
	return c
}

func addCommonTunnelFlags(c *cobra.Command, f *tunnelFlags) {
	fl := c.PersistentFlags()
	fl.StringVar(&f.status, "status", "", "status listener address: /healthz /readyz /metrics /status")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fl.DurationVar(&f.timedReload, "timed-reload", 0, "also re-read certificates at this interval (the file watch always runs)")
	fl.BoolVar(&f.syslog, "syslog", false, "send logs (and audit events) to the local syslog instead of stderr")
	fl.BoolVar(&f.pprof, "enable-pprof", false, "serve Go's profiler under /debug/pprof/ on the status listener (it shows internals: keep that listener private)")
}

// newTunnelModeCmd is `tunnel server` or `tunnel client`. Both bind their
// flags to f.svc: only one of them runs.
func newTunnelModeCmd(mode string, f *tunnelFlags) *cobra.Command {
	short := "Terminate mTLS on --listen and forward plaintext to --target"
	if mode == tunnel.ModeClient {
		short = "Accept plaintext on --listen and carry it to --target over mTLS"
	}
	c := &cobra.Command{
		Use:   mode,
		Short: short,
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			f.svc.Mode = mode
			cfg := f.config()
			return runTunnel(c, f, func() (tunnel.Config, error) { return cfg, nil })
		},
	}
	fl := c.Flags()
	s := &f.svc
	fl.StringVar(&s.Listen, "listen", "", "address to listen on: host:port or unix:PATH")
	fl.StringSliceVar(&s.Targets, "target", nil, "target address (repeatable: failover in order)")
	fl.StringVar(&s.Failover, "failover", tunnel.FailoverPriority, "with several targets: priority or round-robin")
	fl.StringVar(&s.Identity.Keystore, "keystore", "", "PEM bundle (chain + key) or PKCS#12 with this side's identity")
	fl.StringVar(&s.Identity.Storepass, "storepass", "", "password of --keystore (visible in ps; prefer --storepass-file)")
	fl.StringVar(&s.Identity.StorepassFile, "storepass-file", "", "file holding the password of --keystore or --key")
	fl.StringVar(&s.Identity.Cert, "cert", "", "certificate chain (PEM)")
	fl.StringVar(&s.Identity.Key, "key", "", "private key (PEM)")
	fl.StringVar(&s.Identity.CACert, "cacert", "", "CA bundle peers are verified against")
	fl.DurationVar((*time.Duration)(&s.ConnectTimeout), "connect-timeout", 10*time.Second, "timeout to connect to a target")
	fl.DurationVar((*time.Duration)(&s.HandshakeTimeout), "handshake-timeout", 10*time.Second, "timeout for a TLS handshake")
	fl.DurationVar((*time.Duration)(&s.CloseTimeout), "close-timeout", time.Second, "after one side closes, how long the other may still send")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 5*time.Minute, "on SIGTERM, how long to drain open connections")
	fl.DurationVar((*time.Duration)(&s.MaxConnLifetime), "max-conn-lifetime", 0, "close connections older than this (0: never)")
	fl.IntVar(&s.MaxConns, "max-concurrent-conns", 0, "refuse connections beyond this many (0: unlimited)")
	fl.BoolVar(&s.UnsafeTarget, "unsafe-target", false, "allow a non-loopback plaintext target (server mode)")
	fl.BoolVar(&s.UnsafeListen, "unsafe-listen", false, "allow a non-loopback plaintext listener (client mode)")
	fl.StringSliceVar(&f.crls, "crl", nil, "CRL file or URL to check peers against (repeatable)")
	fl.BoolVar(&f.ocsp, "ocsp", false, "check peers with the OCSP responder in their certificate")
	fl.StringVar(&f.revocationMode, "revocation", "fail-closed", "without fresh revocation data: fail-open or fail-closed")
	fl.DurationVar(&f.revocationRefresh, "revocation-refresh", 0, "how often CRLs are re-fetched and OCSP answers renewed (default 1h)")
	fl.StringSliceVar(&s.Curves, "curves", nil, "key exchanges to allow (default x25519mlkem768,x25519,p256; leaving out the post-quantum hybrid saves handshake CPU)")
	if mode == tunnel.ModeServer {
		fl.BoolVar(&s.Allow.AllowAll, "allow-all", false, "allow every client with a certificate from --cacert")
		fl.StringSliceVar(&s.Allow.CN, "allow-cn", nil, "allow clients with this subject CN (repeatable)")
		fl.StringSliceVar(&s.Allow.OU, "allow-ou", nil, "allow clients with this subject OU")
		fl.StringSliceVar(&s.Allow.DNS, "allow-dns", nil, "allow clients with this DNS SAN (*.example.com)")
		fl.StringSliceVar(&s.Allow.IP, "allow-ip", nil, "allow clients with this IP SAN or CIDR")
		fl.StringSliceVar(&s.Allow.URI, "allow-uri", nil, "allow clients with this URI SAN (* one segment, ** any)")
		fl.BoolVar(&s.ProxyProtocol, "proxy-protocol", false, "send a PROXY v2 header with the client's address and identity to the target")
	} else {
		fl.StringSliceVar(&s.Verify.CN, "verify-cn", nil, "require this CN in the server certificate")
		fl.StringSliceVar(&s.Verify.OU, "verify-ou", nil, "require this OU in the server certificate")
		fl.StringSliceVar(&s.Verify.DNS, "verify-dns", nil, "require this DNS SAN in the server certificate")
		fl.StringSliceVar(&s.Verify.IP, "verify-ip", nil, "require this IP SAN in the server certificate")
		fl.StringSliceVar(&s.Verify.URI, "verify-uri", nil, "require this URI SAN in the server certificate")
		fl.StringVar(&s.ServerName, "override-server-name", "", "server name to send (SNI) and verify (default: the target's host)")
		fl.BoolVar(&s.DisableAuthentication, "disable-authentication", false, "present no client certificate")
	}
	return c
}

// config turns single-service flags into a Config; New validates it.
func (f *tunnelFlags) config() tunnel.Config {
	s := f.svc
	s.Name = s.Mode
	if s.Mode == tunnel.ModeClient && s.ServerName == "" && len(s.Targets) > 0 {
		if host, _, err := net.SplitHostPort(s.Targets[0]); err == nil {
			s.ServerName = host
		}
	}
	if len(f.crls) > 0 || f.ocsp {
		s.Revocation = &tunnel.Revocation{CRLs: f.crls, OCSP: f.ocsp, Mode: f.revocationMode, Refresh: tunnel.Duration(f.revocationRefresh)}
	}
	cfg := tunnel.Config{Source: tunnel.SourceFlags, Version: tunnel.ConfigVersion, Status: f.status, ShutdownTimeout: tunnel.Duration(f.shutdownTimeout),
		Services: []tunnel.Service{s}}
	return cfg.WithDefaults()
}

func loadTunnelConfig(path string) (tunnel.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return tunnel.Config{}, fmt.Errorf("reading tunnel config: %w", err)
	}
	cfg, err := tunnel.DecodeConfig(data)
	if err != nil {
		return tunnel.Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// tunnelGCPercent replaces Go's default GOGC of 100 when the environment
// does not set GOGC. A proxy's live heap is small next to what handshakes
// allocate, so at 100 the collector runs every few MiB, dozens of times a
// second under a handshake storm: at 200, `make bench` measured ≈12 % less
// CPU per handshake (400 saved little more). The price is a heap goal of
// three times the live heap instead of two while connections keep
// arriving; the trim after each burst (internal/tunnel/trim.go) hands the
// difference back once they stop.
const tunnelGCPercent = 200

func runTunnel(c *cobra.Command, f *tunnelFlags, load func() (tunnel.Config, error)) error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(tunnelGCPercent)
	}
	logOut := c.ErrOrStderr()
	if f.syslog {
		w, err := syslogWriter()
		if err != nil {
			return err
		}
		logOut = w
	}
	log, err := obs.NewLogger(logOut, f.logFormat, f.logLevel)
	if err != nil {
		return usageError{err}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if f.status != "" {
		cfg.Status = f.status
	}
	ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	p, err := tunnel.New(ctx, cfg, tunnel.Options{Logger: log, Audit: obs.NewAuditLogger(logOut), TimedReload: f.timedReload, TrimMemory: true})
	if err != nil {
		return f.configError(err)
	}
	if f.check {
		stop()
		fmt.Fprintf(c.OutOrStdout(), "%s: %d services OK\n", f.configFile, len(cfg.Services))
		return nil
	}
	for name, a := range p.Addrs() {
		log.Info("listening", slog.String("listen", name), slog.String("addr", a.String()))
	}
	if a := p.StatusAddr(); a != (tunnel.Addr{}) {
		h := p.StatusHandler()
		if f.pprof {
			h = withPprof(h)
		}
		if err := serveStatus(ctx, a, h, log, f.pprof); err != nil {
			return err
		}
	}
	go reloadOnHUP(ctx, p, f, load, log)
	return p.Run(ctx)
}

// configError says where an invalid configuration came from: a file is
// named, flags are a usage error.
func (f *tunnelFlags) configError(err error) error {
	switch {
	case !errors.Is(err, tunnel.ErrInvalidConfig):
		return err
	case f.configFile != "":
		return fmt.Errorf("%s: %w", f.configFile, err)
	}
	return usageError{err}
}

// reloadOnHUP re-reads the configuration (and with it every certificate,
// key and CRL) on SIGHUP.
func reloadOnHUP(ctx context.Context, p *tunnel.Proxy, f *tunnelFlags, load func() (tunnel.Config, error), log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			log.Info("SIGHUP: reloading")
			cfg, err := load()
			if err == nil {
				err = f.configError(p.Reload(cfg))
			}
			if err != nil {
				log.Error("reload failed; the previous configuration keeps running", slog.Any("error", err))
			}
		}
	}
}

// withPprof adds /debug/pprof/ (ghostunnel's --enable-pprof) in front of
// the status handler.
func withPprof(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/", h)
	return mux
}

func serveStatus(ctx context.Context, a tunnel.Addr, h http.Handler, log *slog.Logger, long bool) error {
	ln, err := net.Listen(a.Network, a.Address)
	if err != nil {
		return fmt.Errorf("status listener: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	if long {
		// A CPU profile or trace answers after ?seconds=N.
		srv.WriteTimeout = 5 * time.Minute
	}
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("status listener", slog.String("addr", ln.Addr().String()))
	return nil
}
