package tunnel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/tunnel/relay"
)

// connLog is the one wide line logged when a connection ends.
type connLog struct {
	service, peer, target, identity, outcome string
	up, down                                 int64
	start                                    time.Time
	resumed                                  bool
	err                                      error
}

func (p *Proxy) finish(s *service, l *connLog) {
	s.m.total.WithLabelValues(s.cfg.Name, l.outcome).Inc()
	if l.up > 0 {
		s.m.bytes.WithLabelValues(s.cfg.Name, "up").Add(float64(l.up))
	}
	if l.down > 0 {
		s.m.bytes.WithLabelValues(s.cfg.Name, "down").Add(float64(l.down))
	}
	level := slog.LevelInfo
	if l.outcome != outcomeOK {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("service", l.service), slog.String("peer", l.peer), slog.String("identity", l.identity),
		slog.String("target", l.target), slog.Int64("bytes_up", l.up), slog.Int64("bytes_down", l.down),
		slog.Duration("duration", time.Since(l.start)), slog.String("outcome", l.outcome), slog.Bool("resumed", l.resumed),
	}
	if l.err != nil {
		attrs = append(attrs, slog.String("error", l.err.Error()))
	}
	p.opts.Logger.LogAttrs(context.Background(), level, "connection", attrs...)
}

// held is what a connection holds until it ends: a limit slot, its place
// in the open gauge, its target in p.active, and end (from serve).
type held struct {
	p       *Proxy
	slot    *service
	entered *service
	tgt     net.Conn
	fu      *relay.Fusion
	end     func()
}

func (h *held) drop() {
	if h.tgt != nil {
		h.p.active.Delete(h.tgt)
	}
	if h.fu != nil {
		h.p.active.Delete(h.fu)
	}
	if h.entered != nil {
		h.entered.leave()
	}
	if h.slot != nil {
		h.slot.release()
	}
	h.end()
}

// handleServer terminates mTLS from a client and forwards plaintext. It
// calls end when the connection is over: on return, or, once the fusion
// took over the copying, when both directions finish.
func (p *Proxy) handleServer(l *listener, r *routes, c net.Conn, end func()) {
	h := &held{p: p, end: end}
	handed := false
	defer func() {
		if !handed {
			h.drop()
		}
	}()
	cl := &connLog{peer: c.RemoteAddr().String(), start: time.Now()}
	conf := l.sniConf
	if len(r.bySNI) == 0 && r.def != nil {
		conf = r.def.tlsConf
	}
	// The service is known for sure only after the hello (SNI); until then
	// limits and timeouts use the default or the only one.
	pre := r.def
	if pre == nil {
		for _, s := range r.bySNI {
			pre = s
			break
		}
	}
	// With one service on the address, its connection limit applies
	// before the handshake, as ghostunnel's does, so a flood of clients
	// cannot buy handshake CPU past it. With SNI routing the service is
	// known only after the hello; the limit then applies after it.
	single := len(r.bySNI) == 0 && r.def != nil
	if single {
		if !pre.acquire() {
			cl.service, cl.outcome = pre.cfg.Name, outcomeLimit
			c.Close()
			p.finish(pre, cl)
			return
		}
		h.slot = pre
	}
	tc := tls.Server(p.engine.Wrap(c), conf)
	c.SetDeadline(time.Now().Add(time.Duration(pre.cfg.HandshakeTimeout)))
	start := time.Now()
	err := tc.HandshakeContext(p.ctx)
	cs := tc.ConnectionState()
	s := r.pick(cs.ServerName)
	if s == nil {
		s = pre
	}
	cl.service = s.cfg.Name
	if err != nil {
		cl.outcome, cl.err = outcomeHandshake, err
		if isDenial(err) {
			cl.outcome = outcomeDenied
		}
		s.m.handshakeErr.WithLabelValues(s.cfg.Name, handshakeReason(err)).Inc()
		tc.Close()
		relay.Release(tc)
		p.finish(s, cl)
		return
	}
	c.SetDeadline(time.Time{})
	s.m.handshake.WithLabelValues(s.cfg.Name).Observe(time.Since(start).Seconds())
	leaf := cs.PeerCertificates[0]
	cl.identity, cl.resumed = identity(leaf.Subject.CommonName, leaf.URIs), cs.DidResume
	if !single {
		if !s.acquire() {
			cl.outcome = outcomeLimit
			tc.Close()
			p.finish(s, cl)
			return
		}
		h.slot = s
	}
	s.enter()
	h.entered = s

	dstart := time.Now()
	tgt, t, err := s.up.dial(p.ctx, time.Duration(s.cfg.ConnectTimeout), func(ctx context.Context, a Addr) (net.Conn, error) {
		return plainDialer.DialContext(ctx, a.Network, a.Address)
	})
	if err != nil {
		cl.outcome, cl.err = outcomeUnreachable, err
		tc.Close()
		p.finish(s, cl)
		return
	}
	s.m.connect.WithLabelValues(s.cfg.Name).Observe(time.Since(dstart).Seconds())
	// Shutdown force-closes the target too: closing the client alone does
	// not unblock a write to a target that stopped reading.
	p.active.Store(tgt, struct{}{})
	h.tgt = tgt
	cl.target = t.addr.String()
	if s.cfg.ProxyProtocol {
		if err := writeProxyHeader(tgt, c, &cs); err != nil {
			cl.outcome, cl.err = outcomeError, err
			tc.Close()
			tgt.Close()
			p.finish(s, cl)
			return
		}
	}
	handed = true
	h.fu = p.engine.Fuse(tc, tgt, func(res relay.Result) {
		cl.up, cl.down, cl.err, cl.outcome = res.Up, res.Down, res.Err, outcomeOK
		p.finish(s, cl)
		h.drop()
	})
	p.handOff(h, c, tgt)
	h.fu.Start(relay.Limits{CloseTimeout: time.Duration(s.cfg.CloseTimeout), Lifetime: time.Duration(s.cfg.MaxConnLifetime)})
}

// handOff makes shutdown close the connection through its fusion (which
// closes both sockets and restarts parked directions) instead of through
// the sockets, so it is counted once and nothing stays parked.
func (p *Proxy) handOff(h *held, c, tgt net.Conn) {
	p.active.Store(h.fu, struct{}{})
	p.active.Delete(c)
	p.active.Delete(tgt)
	h.tgt = nil
}

// handleClient accepts plaintext and carries it to a target over mTLS; end
// as for handleServer.
func (p *Proxy) handleClient(s *service, c net.Conn, end func()) {
	h := &held{p: p, end: end}
	handed := false
	defer func() {
		if !handed {
			h.drop()
		}
	}()
	cl := &connLog{service: s.cfg.Name, peer: c.RemoteAddr().String(), start: time.Now()}
	if !s.acquire() {
		cl.outcome = outcomeLimit
		c.Close()
		p.finish(s, cl)
		return
	}
	h.slot = s
	s.enter()
	h.entered = s
	dstart := time.Now()
	tgt, t, err := s.up.dial(p.ctx, time.Duration(s.cfg.ConnectTimeout), func(ctx context.Context, a Addr) (net.Conn, error) {
		raw, err := plainDialer.DialContext(ctx, a.Network, a.Address)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(p.engine.Wrap(raw), s.tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			relay.Release(tc)
			s.m.handshakeErr.WithLabelValues(s.cfg.Name, handshakeReason(err)).Inc()
			return nil, err
		}
		return tc, nil
	})
	if err != nil {
		cl.outcome, cl.err = outcomeUnreachable, err
		if isDenial(err) {
			cl.outcome = outcomeDenied
		}
		c.Close()
		p.finish(s, cl)
		return
	}
	s.m.connect.WithLabelValues(s.cfg.Name).Observe(time.Since(dstart).Seconds())
	p.active.Store(tgt, struct{}{}) // for shutdown, as in handleServer
	h.tgt = tgt
	tc := tgt.(*tls.Conn)
	cs := tc.ConnectionState()
	cl.target, cl.resumed = t.addr.String(), cs.DidResume
	if len(cs.PeerCertificates) > 0 {
		cl.identity = identity(cs.PeerCertificates[0].Subject.CommonName, cs.PeerCertificates[0].URIs)
	}
	handed = true
	h.fu = p.engine.Fuse(c, tgt, func(res relay.Result) {
		cl.up, cl.down, cl.err, cl.outcome = res.Up, res.Down, res.Err, outcomeOK
		if res.Err != nil && isDenial(res.Err) {
			// In TLS 1.3 a server refusing our certificate says so after
			// our handshake ended, on the first read: "remote error: tls:
			// bad certificate".
			cl.outcome = outcomeDenied
		}
		p.finish(s, cl)
		h.drop()
	})
	p.handOff(h, c, tgt)
	h.fu.Start(relay.Limits{CloseTimeout: time.Duration(s.cfg.CloseTimeout), Lifetime: time.Duration(s.cfg.MaxConnLifetime)})
}

func writeProxyHeader(tgt net.Conn, c net.Conn, cs *tls.ConnectionState) error {
	h := &ProxyHeader{
		Src: addrPort(c.RemoteAddr()), Dst: addrPort(c.LocalAddr()),
		TLSVersion: tls.VersionName(cs.Version), Cipher: tls.CipherSuiteName(cs.CipherSuite),
		SNI: cs.ServerName, ALPN: cs.NegotiatedProtocol, Resumed: cs.DidResume,
	}
	if len(cs.PeerCertificates) > 0 {
		leaf := cs.PeerCertificates[0]
		h.CN, h.Serial = leaf.Subject.CommonName, leaf.SerialNumber.Text(16)
		for _, u := range leaf.URIs {
			h.URIs = append(h.URIs, u.String())
		}
	}
	buf, err := AppendProxyHeader(make([]byte, 0, 256), h)
	if err != nil {
		return err
	}
	_, err = tgt.Write(buf)
	return err
}

// addrPort converts a TCP address; UNIX peers get the unspecified address
// (the header still carries the TLS identity).
func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	return netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
}

func identity(cn string, uris []*url.URL) string {
	if len(uris) > 0 {
		return uris[0].String()
	}
	return "CN=" + cn
}

// isDenial tells a refused identity (policy, revocation, unknown CA) from a
// broken handshake. tlsconf verifies chains in VerifyConnection, so their
// errors arrive as x509 errors, not wrapped in CertificateVerificationError.
func isDenial(err error) bool {
	var ce *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var he x509.HostnameError
	if errors.As(err, &ce) || errors.As(err, &ua) || errors.As(err, &ci) || errors.As(err, &he) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "denied") || strings.Contains(msg, "revoked") || strings.Contains(msg, "bad certificate") || strings.Contains(msg, "unknown certificate authority")
}

// handshakeReason maps a handshake error to a bounded label value.
func handshakeReason(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded), strings.Contains(msg, "timeout"):
		return "timeout"
	case strings.Contains(msg, "revoked"):
		return "revoked"
	case strings.Contains(msg, "denied"):
		return "denied"
	case strings.Contains(msg, "unknown authority"), strings.Contains(msg, "unknown certificate authority"):
		return "unknown_ca"
	case strings.Contains(msg, "expired"):
		return "expired"
	case strings.Contains(msg, "certificate required"), strings.Contains(msg, "didn't provide a certificate"):
		return "no_certificate"
	case strings.Contains(msg, "EOF"), strings.Contains(msg, "reset"):
		return "eof"
	case strings.Contains(msg, "protocol version"):
		return "protocol_version"
	}
	return "other"
}
