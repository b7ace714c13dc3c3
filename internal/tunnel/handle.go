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

// flow is one accepted connection from its accept to its log line: what
// it holds until it ends (a limit slot, its place in the open gauge, its
// target in p.active, end from serve) and what its line will say.
type flow struct {
	p       *Proxy
	c       net.Conn // as accepted
	src     net.Conn // what the fusion copies from: c, or the tls.Conn over it
	tgt     net.Conn // dialled, until the fusion takes it over
	log     connLog
	slot    *service
	entered *service
	end     func()
}

func (p *Proxy) newFlow(c net.Conn, end func()) *flow {
	return &flow{p: p, c: c, src: c, end: end, log: connLog{peer: c.RemoteAddr().String(), start: time.Now()}}
}

// fail ends a connection that never got fused: it closes what is open,
// logs outcome and releases what the connection held.
func (f *flow) fail(s *service, outcome string, err error) {
	f.src.Close()
	if tc, ok := f.src.(*tls.Conn); ok {
		relay.Release(tc)
	}
	if f.tgt != nil {
		f.tgt.Close()
	}
	f.log.service, f.log.outcome, f.log.err = s.cfg.Name, outcome, err
	f.p.finish(s, &f.log)
	f.drop()
}

// acquire takes a connection slot of s, or fails the connection at its
// limit.
func (f *flow) acquire(s *service) bool {
	if !s.acquire() {
		f.fail(s, outcomeLimit, nil)
		return false
	}
	f.slot = s
	return true
}

func (f *flow) drop() {
	if f.tgt != nil {
		f.p.active.Delete(f.tgt)
	}
	if f.entered != nil {
		f.entered.leave()
	}
	if f.slot != nil {
		f.slot.release()
	}
	f.end()
}

// handleServer terminates mTLS from a client, then forwards plaintext.
// It calls end when the connection is over: on return, or, once the
// fusion took over the copying, when both directions finish.
func (p *Proxy) handleServer(l *listener, r *routes, c net.Conn, end func()) {
	f := p.newFlow(c, end)
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
	if single && !f.acquire(pre) {
		return
	}
	tc := tls.Server(p.engine.Wrap(c), conf)
	f.src = tc
	c.SetDeadline(time.Now().Add(pre.cfg.HandshakeTimeout))
	start := time.Now()
	err := tc.HandshakeContext(p.ctx)
	cs := tc.ConnectionState()
	s := r.pick(cs.ServerName)
	if s == nil {
		s = pre
	}
	if err != nil {
		s.m.handshakeErr.WithLabelValues(s.cfg.Name, handshakeReason(err)).Inc()
		outcome := outcomeHandshake
		if isDenial(err) {
			outcome = outcomeDenied
		}
		f.fail(s, outcome, err)
		return
	}
	c.SetDeadline(time.Time{})
	s.m.handshake.WithLabelValues(s.cfg.Name).Observe(time.Since(start).Seconds())
	leaf := cs.PeerCertificates[0]
	f.log.identity, f.log.resumed = identity(leaf.Subject.CommonName, leaf.URIs), cs.DidResume
	if !single && !f.acquire(s) {
		return
	}
	p.forward(f, s)
}

// handleClient accepts plaintext and carries it to a target over mTLS; end
// as for handleServer.
func (p *Proxy) handleClient(s *service, c net.Conn, end func()) {
	f := p.newFlow(c, end)
	if !f.acquire(s) {
		return
	}
	p.forward(f, s)
}

// forward dials a target of s for an accepted connection (handshaken, in
// server mode) and fuses the two, or ends the connection with why not.
func (p *Proxy) forward(f *flow, s *service) {
	f.log.service = s.cfg.Name
	s.enter()
	f.entered = s
	dstart := time.Now()
	tgt, t, err := s.up.dial(p.ctx, s.cfg.ConnectTimeout, p.dialer(s))
	if err != nil {
		outcome := outcomeUnreachable
		if s.cfg.Mode == ModeClient && isDenial(err) {
			outcome = outcomeDenied
		}
		f.fail(s, outcome, err)
		return
	}
	s.m.connect.WithLabelValues(s.cfg.Name).Observe(time.Since(dstart).Seconds())
	// Shutdown force-closes the target too: closing the client alone does
	// not unblock a write to a target that stopped reading.
	p.active.Store(tgt, struct{}{})
	f.tgt = tgt
	f.log.target = t.addr.String()
	if err := f.ready(s); err != nil {
		f.fail(s, outcomeError, err)
		return
	}
	var fu *relay.Fusion
	fu = p.engine.Fuse(f.src, tgt, func(res relay.Result) {
		f.log.up, f.log.down, f.log.err, f.log.outcome = res.Up, res.Down, res.Err, outcomeOK
		if s.cfg.Mode == ModeClient && res.Err != nil && isDenial(res.Err) {
			// In TLS 1.3 a server refusing our certificate says so after
			// our handshake ended, on the first read: "remote error: tls:
			// bad certificate".
			f.log.outcome = outcomeDenied
		}
		p.finish(s, &f.log)
		p.active.Delete(fu)
		f.drop()
	})
	// Shutdown closes the connection through its fusion from now on
	// (which closes both sockets and restarts parked directions) instead
	// of through the sockets, so it is counted once and nothing stays
	// parked.
	p.active.Store(fu, struct{}{})
	p.active.Delete(f.c)
	p.active.Delete(tgt)
	f.tgt = nil
	fu.Start(relay.Limits{CloseTimeout: s.cfg.CloseTimeout, Lifetime: s.cfg.MaxConnLifetime})
}

// ready readies a dialled target before the fusion: in server mode the
// PROXY header goes first; in client mode the target's certificate names
// the peer on the log line.
func (f *flow) ready(s *service) error {
	if s.cfg.Mode == ModeClient {
		cs := f.tgt.(*tls.Conn).ConnectionState()
		f.log.resumed = cs.DidResume
		if len(cs.PeerCertificates) > 0 {
			f.log.identity = identity(cs.PeerCertificates[0].Subject.CommonName, cs.PeerCertificates[0].URIs)
		}
		return nil
	}
	if !s.cfg.ProxyProtocol {
		return nil
	}
	return writeProxyHeader(f.tgt, f.c, f.src.(*tls.Conn))
}

// dialer connects to a target of s: plainly in server mode, over mTLS,
// handshake included, in client mode.
func (p *Proxy) dialer(s *service) func(ctx context.Context, a Addr) (net.Conn, error) {
	if s.cfg.Mode == ModeServer {
		return func(ctx context.Context, a Addr) (net.Conn, error) {
			return plainDialer.DialContext(ctx, a.Network, a.Address)
		}
	}
	return func(ctx context.Context, a Addr) (net.Conn, error) {
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
	}
}

func writeProxyHeader(tgt net.Conn, c net.Conn, tc *tls.Conn) error {
	cs := tc.ConnectionState()
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
