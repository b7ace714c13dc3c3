// Package tunnel is the L4 mTLS proxy: in server mode it terminates mutual
// TLS and forwards plaintext to a backend; in client mode it lets a legacy
// app speak plain TCP to a local port while it dials the backend over mTLS.
// Many services per process, SNI routing on shared ports, failover over
// several targets, PROXY v2 towards backends, hot reload and graceful
// shutdown. Identity comes from tlsconf, access rules from policy,
// revocation from revocation. Once a connection is accepted, handshaken
// and its target dialled, the copying is the copy engine's (package relay,
// one relay.Engine per Proxy; docs/architecture.md ADR-15).
package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/tunnel/relay"
)

// Options are what the caller injects into a Proxy.
type Options struct {
	Logger   *slog.Logger
	Audit    *slog.Logger
	Registry *prometheus.Registry
	// TimedReload re-reads certificates at this interval on top of the
	// file watch (ghostunnel --timed-reload); zero for the watch alone.
	TimedReload time.Duration
	// HTTPClient fetches CRLs and OCSP answers.
	HTTPClient *http.Client
	// TrimMemory returns free memory to the system after each burst of
	// new connections (relay.Options.Trim): for the process that runs the
	// proxy, not for tests that run several.
	TrimMemory bool
}

// Proxy runs every service of a Config.
type Proxy struct {
	opts   Options
	m      *metrics
	ctx    context.Context
	engine *relay.Engine // copies fused connections; Run runs it, then closes it

	mu        sync.Mutex
	cfg       compiled
	services  map[string]*service
	listeners map[Addr]*listener
	conns     sync.WaitGroup
	active    sync.Map // io.Closer (a conn, a fusion) → struct{}: what shutdown force-closes
	tickets   *ticketKeys
	// closing is set by Run, under mu, when it closes the listeners: a
	// connection accepted just before is dropped rather than counted in
	// conns after Run started waiting on it.
	closing bool
	// serving is set by Run: listeners opened before (New, a reload before
	// Run, --check) are bound but accept nothing until then.
	serving bool

	lastReload atomic.Pointer[reloadState]
}

type reloadState struct {
	at  time.Time
	err error
}

// routes maps server names to services for one listen address.
type routes struct {
	bySNI map[string]*service
	def   *service
}

func (r *routes) pick(sni string) *service {
	if s, ok := r.bySNI[strings.ToLower(sni)]; ok {
		return s
	}
	return r.def
}

// listener is one listen address and the services behind it.
type listener struct {
	addr   Addr
	ln     net.Listener
	routes atomic.Pointer[routes]
	// sniConf picks the service's TLS config by SNI when the address is
	// shared; built once per listener, it reads routes at each hello.
	sniConf *tls.Config
}

// New checks and loads cfg (certificates, CRLs) and opens every listener.
// Nothing is served until Run.
func New(ctx context.Context, cfg Config, opts Options) (*Proxy, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Audit == nil {
		opts.Audit = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	eng := relay.New(relay.Options{Logger: opts.Logger, Trim: opts.TrimMemory})
	p := &Proxy{opts: opts, m: newMetrics(opts.Registry, eng), ctx: ctx, engine: eng,
		services: map[string]*service{}, listeners: map[Addr]*listener{}, tickets: newTicketKeys()}
	if err := p.apply(cfg); err != nil {
		p.closeAll()
		return nil, err
	}
	// The configuration is loaded now, not when Run starts: a reload
	// failing in between must stay reported.
	p.m.reloadOK.Set(1)
	p.m.reloadTime.SetToCurrentTime()
	p.lastReload.Store(&reloadState{at: time.Now()})
	return p, nil
}

// apply builds the services of cfg and swaps them in. On any error the
// running state is untouched: the new services are discarded.
func (p *Proxy) apply(raw Config) (err error) {
	cfg, err := raw.compile()
	if err != nil {
		return err
	}
	d := deps{log: p.opts.Logger, audit: p.opts.Audit, m: p.m, reg: p.opts.Registry,
		client: p.opts.HTTPClient, reload: p.opts.TimedReload, tickets: p.tickets}
	built := map[string]*service{}
	defer func() {
		if err != nil {
			for _, s := range built {
				s.stop()
			}
		}
	}()
	for _, sc := range cfg.services {
		s, err := newService(p.ctx, sc, d)
		if err != nil {
			return err
		}
		built[sc.Name] = s
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	opened := map[Addr]*listener{}
	for _, sc := range cfg.services {
		if _, ok := p.listeners[sc.Listen]; ok || opened[sc.Listen] != nil {
			continue
		}
		l, err := listen(sc.Listen)
		if err != nil {
			for _, o := range opened {
				o.ln.Close()
			}
			return fmt.Errorf("service %q: %w", sc.Name, err)
		}
		opened[sc.Listen] = l
	}
	old := p.services
	p.services, p.cfg = built, cfg
	for addr, l := range opened {
		p.listeners[addr] = l
	}
	for addr, l := range p.listeners {
		r := &routes{bySNI: map[string]*service{}}
		for _, sc := range cfg.services {
			if sc.Listen != addr {
				continue
			}
			s := built[sc.Name]
			if len(sc.SNI) == 0 {
				r.def = s
			}
			for _, n := range sc.SNI {
				r.bySNI[strings.ToLower(n)] = s
			}
		}
		if r.def == nil && len(r.bySNI) == 0 {
			// Address no longer configured: stop accepting; open
			// connections drain on their own.
			l.ln.Close()
			delete(p.listeners, addr)
			continue
		}
		l.routes.Store(r)
		if _, fresh := opened[addr]; fresh && p.serving {
			go p.serve(l)
		}
	}
	for name, s := range old {
		s.stop()
		if _, kept := built[name]; !kept {
			// A removed service's gauges would otherwise report a
			// certificate and connections that no longer exist.
			p.m.notAfter.DeleteLabelValues(name)
			if s.open.Load() == 0 {
				p.m.open.DeleteLabelValues(name)
			}
		}
	}
	return nil
}

func listen(a Addr) (*listener, error) {
	if a.Network == "unix" {
		// A stale socket from a crashed run would make Listen fail; a
		// socket something still answers on is another process's.
		if fi, err := os.Lstat(a.Address); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if c, err := net.DialTimeout("unix", a.Address, time.Second); err == nil {
				c.Close()
				return nil, fmt.Errorf("listening on %s: another process is serving this socket", a)
			}
			os.Remove(a.Address)
		}
	}
	ln, err := net.Listen(a.Network, a.Address)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", a, err)
	}
	l := &listener{addr: a, ln: ln}
	l.sniConf = &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		s := l.routes.Load().pick(h.ServerName)
		if s == nil {
			return nil, fmt.Errorf("no service for server name %q", h.ServerName)
		}
		return s.tlsConf, nil
	}}
	return l, nil
}

// Addrs returns the bound address of every listener, by configured listen
// string (tests listen on port 0).
func (p *Proxy) Addrs() map[string]net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]net.Addr{}
	for k, l := range p.listeners {
		out[k.String()] = l.ln.Addr()
	}
	return out
}

// Reload applies a new configuration (SIGHUP): services added, removed or
// changed, certificates and CRLs re-read. A failed reload keeps the old
// state and returns why.
func (p *Proxy) Reload(cfg Config) error {
	err := p.apply(cfg)
	p.lastReload.Store(&reloadState{at: time.Now(), err: err})
	if err != nil {
		p.m.reloadOK.Set(0)
		p.opts.Logger.Error("reload failed; keeping the running configuration", slog.Any("error", err))
		return err
	}
	p.m.reloadOK.Set(1)
	p.m.reloadTime.SetToCurrentTime()
	p.opts.Logger.Info("reloaded", slog.Int("services", len(cfg.Services)))
	return nil
}

// Run serves until ctx ends, then stops accepting and drains open
// connections for up to the shutdown timeout before closing them.
func (p *Proxy) Run(ctx context.Context) error {
	p.mu.Lock()
	p.serving = true
	for _, l := range p.listeners {
		go p.serve(l)
	}
	p.mu.Unlock()
	engineDone := make(chan struct{})
	go func() { p.engine.Run(ctx); close(engineDone) }()
	<-ctx.Done()
	p.mu.Lock()
	p.closing = true
	timeout := p.cfg.shutdownTimeout
	for _, l := range p.listeners {
		l.ln.Close()
	}
	p.mu.Unlock()
	drained := make(chan struct{})
	go func() { p.conns.Wait(); close(drained) }()
	p.opts.Logger.Info("shutting down: draining connections", slog.Duration("timeout", timeout))
	select {
	case <-drained:
	case <-time.After(timeout):
		n := 0
		p.active.Range(func(k, _ any) bool { k.(io.Closer).Close(); n++; return true })
		p.opts.Logger.Warn("shutdown timeout: closed connections still open", slog.Int("closed", n))
		<-drained
	}
	p.closeAll()
	// Every fusion has ended: nothing is parked any more.
	<-engineDone
	p.engine.Close()
	return nil
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.listeners {
		l.ln.Close()
	}
	for _, s := range p.services {
		s.stop()
	}
}

// serve accepts until the listener closes.
func (p *Proxy) serve(l *listener) {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: back off instead of spinning (as
			// net/http does).
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			p.opts.Logger.Warn("accept failed", slog.String("listen", l.addr.String()), slog.Any("error", err), slog.Duration("retry_in", delay))
			time.Sleep(delay)
			continue
		}
		delay = 0
		r := l.routes.Load()
		p.mu.Lock()
		if p.closing {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.conns.Add(1)
		p.mu.Unlock()
		p.engine.Accepted()
		p.active.Store(c, struct{}{})
		go func() {
			end := func() {
				p.active.Delete(c)
				p.conns.Done()
			}
			if r.def != nil && len(r.bySNI) == 0 && r.def.cfg.Mode == ModeClient {
				p.handleClient(r.def, c, end)
				return
			}
			p.handleServer(l, r, c, end)
		}()
	}
}
