//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package tunnel

import (
	"crypto/tls"
	"net"
)

// rawConnOf: elsewhere (Windows) every direction keeps its buffer for its
// whole life (pipeBuffered).
func rawConnOf(net.Conn) rawConn { return nil }

// pipeRaw is never reached here: rawConnOf returns nil.
func pipeRaw(d *direction) (int64, error) { return pipeBuffered(d.dst, d.src) }

// newFlowConn: no read-ahead here; crypto/tls reads the socket itself.
func newFlowConn(c net.Conn) net.Conn { return c }

func releaseFlow(*tls.Conn) {}
