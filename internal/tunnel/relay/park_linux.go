package relay

import (
	"encoding/binary"
	"errors"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// parkAfter is how long a direction waits for input on its own goroutine
// before it parks: its goroutine returns and the socket waits in the
// parker's epoll set instead, so an idle connection holds no goroutine
// (two 4 KiB stacks and their bookkeeping, ≈9 KiB per connection). Input
// on a parked socket starts a new goroutine: ≈0.1–0.2 ms on the first
// message after the pause (mostly the runtime waking from idle), paid at
// most once per parkAfter.
const parkAfter = 100 * time.Millisecond

// parker is one epoll set with one goroutine waiting on it, for every
// parked direction of an engine. Registrations are one-shot: an event
// disarms the socket until the direction parks again. The set and its
// goroutine are made when a direction first parks and go away on close.
//
// A socket leaves the set by itself when it is closed, so a parked
// direction would never learn of a close: Fusion.cut, the only way a fused
// connection is closed, restarts its parked directions itself.
type parker struct {
	e    *Engine
	once sync.Once
	epfd int
	file *os.File // epfd, registered with Go's poller
	ep   rawConn  // file's: loop waits on it as on a socket
	stop int      // an eventfd in the set: close ends loop through it
	err  error
	done chan struct{} // closed when loop returned

	// life is held for reading while a socket is added to the set, and
	// for writing by close to mark it closed: after that nobody touches
	// epfd but close.
	life   sync.RWMutex
	closed bool

	mu   sync.Mutex
	dirs map[uint64]*direction
	next uint64
}

// parkReg is a direction's registration with the parker, under d.f.mu.
type parkReg struct {
	registered bool // the socket is in the epoll set (armed or not)
	id         uint64
}

// stopID is the event of the stop eventfd; directions count from 1.
const stopID = 0

var errParkerClosed = errors.New("parking: engine closed")

// start makes the epoll set and its goroutine, once. The caller holds
// p.life for reading and has seen p.closed false.
func (p *parker) start() error {
	p.once.Do(func() {
		p.epfd, p.err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if p.err != nil {
			return
		}
		p.stop, p.err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if p.err == nil {
			p.err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, p.stop, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: stopID})
		}
		// The epoll set is itself pollable. Non-blocking, os.NewFile
		// registers it with Go's poller, and loop waits on it as on a
		// socket: no thread blocks in epoll_wait, and a direction it wakes
		// runs next on loop's thread, instead of waiting for another
		// thread to be woken to take it (or for sysmon to retake the
		// processor loop's blocking system call held).
		if p.err == nil {
			p.err = unix.SetNonblock(p.epfd, true)
		}
		if p.err != nil {
			unix.Close(p.epfd)
			if p.stop > 0 {
				unix.Close(p.stop)
			}
			return
		}
		p.file = os.NewFile(uintptr(p.epfd), "parker")
		if p.ep, p.err = p.file.SyscallConn(); p.err != nil {
			p.file.Close()
			unix.Close(p.stop)
			return
		}
		p.mu.Lock()
		p.dirs = map[uint64]*direction{}
		p.mu.Unlock()
		p.done = make(chan struct{})
		go p.loop()
	})
	return p.err
}

// add arms d's socket for one readiness event. The caller holds d.f.mu.
func (p *parker) add(d *direction) error {
	p.life.RLock()
	defer p.life.RUnlock()
	if p.closed {
		return errParkerClosed
	}
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
	p.e.parks.Add(1)
	return nil
}

// remove forgets d (cut restarts it itself).
func (p *parker) remove(d *direction) {
	p.mu.Lock()
	delete(p.dirs, d.id)
	p.mu.Unlock()
}

func (p *parker) loop() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	for {
		var n int
		var err error
		rerr := p.ep.Read(func(fd uintptr) bool {
			n, err = unix.EpollWait(int(fd), events, 0)
			if err == unix.EINTR {
				n, err = 0, nil
			}
			return n > 0 || err != nil
		})
		if rerr != nil || err != nil {
			time.Sleep(10 * time.Millisecond) // not expected; do not spin
			continue
		}
		for i := range n {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			if id == stopID {
				return
			}
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

// close ends parking: no socket joins the set any more, the goroutine
// returns, and every parked direction runs again (and, parking failing,
// keeps its goroutine). close must not hold life while it waits for loop:
// loop may be waking a direction whose fusion's lock is held by an add
// waiting for life.
func (p *parker) close() {
	p.life.Lock()
	already := p.closed
	p.closed = true
	started := p.done != nil
	p.life.Unlock()
	if already || !started {
		return
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1) // an eventfd counts in native order
	unix.Write(p.stop, one[:])
	<-p.done
	p.file.Close() // epfd, through the poller that holds it
	unix.Close(p.stop)
	p.mu.Lock()
	dirs := p.dirs
	p.dirs = map[uint64]*direction{}
	p.mu.Unlock()
	for _, d := range dirs {
		d.wake()
	}
}

// parkedNow counts directions parked at this moment.
func (p *parker) parkedNow() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.dirs)
}

// wake runs d again (the parker saw input on its source, or closed),
// unless cut already did.
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
