package tunnel

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readyMargin: a certificate this close to expiry makes the process not
// ready, so an orchestrator stops routing to it before peers start failing.
const readyMargin = time.Hour

// ServiceStatus is one service in /status.
type ServiceStatus struct {
	Name       string         `json:"name"`
	Mode       string         `json:"mode"`
	Listen     string         `json:"listen"`
	SNI        []string       `json:"sni,omitempty"`
	Subject    string         `json:"certificate_subject"`
	NotAfter   time.Time      `json:"certificate_not_after"`
	Open       int64          `json:"connections_open"`
	Targets    []TargetStatus `json:"targets"`
	Policy     string         `json:"policy,omitempty"`
	Revocation any            `json:"revocation,omitempty"`
	Problems   []string       `json:"problems,omitempty"`
}

// Status is the /status document.
type Status struct {
	Ready      bool            `json:"ready"`
	LastReload time.Time       `json:"last_reload"`
	ReloadErr  string          `json:"last_reload_error,omitempty"`
	Services   []ServiceStatus `json:"services"`
}

// StatusAddr is the configured address of the status listener; the zero
// Addr when there is none. The caller serves StatusHandler there.
func (p *Proxy) StatusAddr() Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg.status
}

// Status reports every service; Ready is false when a service's own
// certificate is expired or about to, or none of its targets is reachable.
func (p *Proxy) Status() Status {
	p.mu.Lock()
	svcs := make([]*service, 0, len(p.services))
	for _, s := range p.services {
		svcs = append(svcs, s)
	}
	p.mu.Unlock()
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].cfg.Name < svcs[j].cfg.Name })
	st := Status{Ready: true}
	if r := p.lastReload.Load(); r != nil {
		st.LastReload = r.at
		if r.err != nil {
			st.ReloadErr = r.err.Error()
		}
	}
	now := time.Now()
	for _, s := range svcs {
		ss := ServiceStatus{Name: s.cfg.Name, Mode: s.cfg.Mode, Listen: s.cfg.Listen.String(), SNI: s.cfg.SNI,
			NotAfter: s.id.NotAfter(), Open: s.open.Load(), Targets: s.up.status()}
		if c := s.id.Certificate(); c != nil && c.Leaf != nil {
			ss.Subject = c.Leaf.Subject.String()
		}
		if s.rules != nil {
			ss.Policy = s.rules.String()
		}
		if s.rev != nil {
			ss.Revocation = s.rev.Status()
		}
		if !ss.NotAfter.IsZero() && ss.NotAfter.Sub(now) < readyMargin {
			ss.Problems = append(ss.Problems, fmt.Sprintf("certificate expires %s", ss.NotAfter.Format(time.RFC3339)))
		}
		if !s.up.anyHealthy() {
			ss.Problems = append(ss.Problems, "no target reachable")
		}
		if len(ss.Problems) > 0 {
			st.Ready = false
		}
		st.Services = append(st.Services, ss)
	}
	return st
}

// StatusHandler serves /healthz (the process runs), /readyz (Status.Ready),
// /metrics (Prometheus) and /status (JSON).
func (p *Proxy) StatusHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		p.probeTargets(r.Context())
		st := p.Status()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !st.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			for _, s := range st.Services {
				for _, pr := range s.Problems {
					fmt.Fprintf(w, "%s: %s\n", s.Name, pr)
				}
			}
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.opts.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(p.Status())
	})
	return mux
}

// probeTargets checks the plaintext targets of server-mode services.
func (p *Proxy) probeTargets(ctx context.Context) {
	p.mu.Lock()
	var ups []*upstream
	for _, s := range p.services {
		if s.cfg.Mode == ModeServer {
			ups = append(ups, s.up)
		}
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, u := range ups {
		wg.Add(1)
		go func() { defer wg.Done(); u.probe(ctx, probeTimeout) }()
	}
	wg.Wait()
}

// probeTimeout bounds a readiness probe of one target.
const probeTimeout = time.Second
