//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package tunnel

import "net"

// rawConnOf: elsewhere (Windows) every direction keeps its buffer for its
// whole life (pipeBuffered).
func rawConnOf(net.Conn) rawConn { return nil }

// waiter and pipeRaw are never reached here: rawConnOf returns nil.
type waiter struct{ bp *[]byte }

func newWaiter(rawConn) *waiter  { return &waiter{} }
func (w *waiter) wait() error    { return nil }
func (w *waiter) readable() bool { return true }

func pipeRaw(dst, src net.Conn, _ rawConn) (int64, error) { return pipeBuffered(dst, src) }
