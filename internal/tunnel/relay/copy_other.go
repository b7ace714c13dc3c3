//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package relay

import (
	"crypto/tls"
	"net"
)

// rawConnOf: elsewhere (Windows) every direction keeps its buffer for its
// whole life (pipeBuffered).
func rawConnOf(net.Conn) rawConn { return nil }

// pipeRaw is never reached here: rawConnOf returns nil.
func pipeRaw(d *direction) (int64, error) { return d.e.pipeBuffered(d.dst, d.src) }

// Wrap: no read-ahead here; crypto/tls reads the socket itself.
func (e *Engine) Wrap(c net.Conn) net.Conn { return c }

// Release: nothing to give back here.
func Release(*tls.Conn) {}
