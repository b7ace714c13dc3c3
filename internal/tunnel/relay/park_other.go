//go:build !linux

package relay

import "errors"

// parkAfter 0: directions never park here (no epoll); an idle connection
// keeps its two goroutines.
const parkAfter = 0

type parker struct{ e *Engine }

type parkReg struct{}

func (parker) add(d *direction) error {
	_ = d.parkReg // nothing to register here
	return errors.New("parking: not on this system")
}
func (parker) remove(*direction) {}
func (parker) close()            {}
func (parker) parkedNow() int    { return 0 }
