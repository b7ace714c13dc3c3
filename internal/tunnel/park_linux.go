package tunnel

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// parkAfter is how long a direction waits for input on its own goroutine
// before it parks: its goroutine returns and the socket waits in the
// parker's epoll set instead, so an idle connection holds no goroutine
// (two 4 KiB stacks and their bookkeeping, ≈9 KiB per connection). Input
// on a parked socket starts a new goroutine: a few microseconds on the
// first message after the pause, paid at most once per parkAfter.
const parkAfter = 100 * time.Millisecond

// parker is one epoll set with one goroutine waiting on it, for every
// parked direction of the process. Registrations are one-shot: an event
// disarms the socket until the direction parks again.
//
// A socket leaves the set by itself when it is closed, so a parked
// direction would never learn of a close: fusion.cut, the only way a fused
// connection is closed, restarts its parked directions itself.
type parker struct {
	once sync.Once
	epfd int
	err  error

	mu   sync.Mutex
	dirs map[uint64]*direction
	next uint64
}

var theParker parker

// parkReg is a direction's registration with the parker, under d.f.mu.
type parkReg struct {
	registered bool // the socket is in the epoll set (armed or not)
	id         uint64
}

// parks counts directions parked since start (the memory trim watches it).
var parks atomic.Int64

func (p *parker) start() error {
	p.once.Do(func() {
		p.epfd, p.err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if p.err != nil {
			return
		}
		p.dirs = map[uint64]*direction{}
		go p.loop()
	})
	return p.err
}

// add arms d's socket for one readiness event. The caller holds d.f.mu.
func (p *parker) add(d *direction) error {
	if err := p.start(); err != nil {
		return err
	}
	p.mu.Lock()
	if d.id == 0 {
		p.next++
		d.id = p.next
	}
	p.dirs[d.id] = d
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(uint32(d.id)), Pad: int32(uint32(d.id >> 32))}
	var err error
	cerr := d.rc.Control(func(fd uintptr) {
		op := unix.EPOLL_CTL_ADD
		if d.registered {
			op = unix.EPOLL_CTL_MOD
		}
		err = unix.EpollCtl(p.epfd, op, int(fd), &ev)
		switch err {
		case unix.EEXIST:
			err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
		case unix.ENOENT:
			err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		}
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		p.remove(d)
		return err
	}
	d.registered = true
	parks.Add(1)
	return nil
}

// remove forgets d (cut restarts it itself).
func (p *parker) remove(d *direction) {
	p.mu.Lock()
	delete(p.dirs, d.id)
	p.mu.Unlock()
}

func (p *parker) loop() {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if err != unix.EINTR {
				time.Sleep(10 * time.Millisecond) // not expected; do not spin
			}
			continue
		}
		for i := range n {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			p.mu.Lock()
			d := p.dirs[id]
			delete(p.dirs, id)
			p.mu.Unlock()
			if d != nil {
				d.wake()
			}
		}
	}
}

// parkedNow counts directions parked at this moment.
func (p *parker) parkedNow() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.dirs)
}

// wake runs d again (the parker saw input on its source), unless cut
// already did.
func (d *direction) wake() {
	f := d.f
	f.mu.Lock()
	if !d.parked {
		f.mu.Unlock()
		return
	}
	d.parked = false
	f.mu.Unlock()
	go d.run()
}
