//go:build !linux

package tunnel

import (
	"errors"
	"sync/atomic"
)

// parkAfter 0: directions never park here (no epoll); an idle connection
// keeps its two goroutines.
const parkAfter = 0

type parker struct{}

var theParker parker

type parkReg struct{}

func (parker) add(d *direction) error {
	_ = d.parkReg // nothing to register here
	return errors.New("parking: not on this system")
}
func (parker) remove(*direction) {}

// parks counts directions parked (none here).
var parks atomic.Int64

func (parker) parkedNow() int { return 0 }
