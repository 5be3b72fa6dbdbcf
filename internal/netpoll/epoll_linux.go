//go:build linux

package netpoll

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Supported reports whether this system has pollers (epoll); where it has not, NewSet fails.
const Supported = true

const (
	pollEvents = 128 // events taken per epoll_wait

	// watchedLook is how often a poller whose fd a thread watches looks at it itself: the thread
	// may be busy for longer, and the input of sockets that are not its own would wait.
	watchedLook = 10 * time.Millisecond

	epollET = 1 << 31 // EPOLLET; syscall's constant is negative

	// inputEvents is what a connection is registered for; ReportRoom adds EPOLLOUT.
	inputEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET

	// Events after which the peer's end of input (or an error) is still to be read.
	epollPeerDone = syscall.EPOLLRDHUP | syscall.EPOLLHUP | syscall.EPOLLERR
)

func newPoller[C any](cfg *Config[C]) (*Poller[C], error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil { // so that os.NewFile registers it with the netpoller
		syscall.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	p := &Poller[C]{cfg: cfg, epfd: fd, interval: time.Second, poke: make(chan struct{}, 1)}
	p.readers.cond.L = &p.readers.mu
	if err := p.join(); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	go p.run()
	return p, nil
}

// join registers epfd with Go's netpoller, through a duplicate of it that leave closes; p.mu is
// held, or p not shared yet.
func (p *Poller[C]) join() error {
	dup, err := unix.FcntlInt(uintptr(p.epfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(dup), "epoll")
	rc, err := f.SyscallConn()
	if err == nil {
		err = f.SetReadDeadline(time.Now().Add(time.Second)) // fails if the netpoller did not take it
	}
	if err != nil {
		f.Close()
		return err
	}
	p.joined, p.joinedRC = f, rc
	return nil
}

// leave takes epfd out of Go's netpoller; p.mu is held, and only the run goroutine waits on it.
func (p *Poller[C]) leave() {
	p.joined.Close()
	p.joined, p.joinedRC = nil, nil
}

// run waits for events and hands ready connections to readers; at every sweep interval it looks
// at the connections' wake-ups. While a thread watches epfd (Set.Watch), it leaves the waiting to
// that thread and looks itself only every watchedLook, for what that thread leaves (while busy).
func (p *Poller[C]) run() {
	events := make([]syscall.EpollEvent, pollEvents)
	ready := make([]C, 0, pollEvents)
	wait := func(uintptr) bool {
		// Until an epoll_wait returns fewer than it could: every event that comes after that one
		// wakes the netpoller again.
		for p.dispatchReady(events, ready, nil) == len(events) {
		}
		return false
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var sweepAt time.Time
	for {
		p.mu.Lock()
		if soonest := time.Now().Add(p.interval); sweepAt.IsZero() || soonest.Before(sweepAt) {
			sweepAt = soonest // the first, or Add shortened the interval
		}
		var err error
		switch {
		case p.watched && p.joined != nil:
			p.leave()
		case !p.watched && p.joined == nil:
			err = p.join()
		}
		rc := p.joinedRC
		if rc != nil {
			p.joined.SetReadDeadline(sweepAt) // under p.mu: a later wake's past deadline stands
		}
		p.mu.Unlock()
		if err != nil && !p.failed {
			p.failed = true // logged once; the poller goes on looking every watchedLook
			p.cfg.Logger.LogAttrs(context.Background(), slog.LevelError, "poller could not rejoin Go's netpoller; it looks for input every 10 ms", slog.Any("error", err))
		}
		if rc != nil {
			if err := rc.Read(wait); !errors.Is(err, os.ErrDeadlineExceeded) {
				p.cfg.Logger.LogAttrs(context.Background(), slog.LevelError, "poller stopped", slog.Any("error", err)) // never: only this goroutine closes its file
				return
			}
		} else {
			timer.Reset(min(time.Until(sweepAt), watchedLook))
			select {
			case <-p.poke:
				timer.Stop()
			case <-timer.C:
				wait(0)
			}
		}
		if now := time.Now(); !now.Before(sweepAt) {
			sweepAt = now.Add(p.sweep())
		}
	}
}

// epollReady stores the events of epfd that are there now in events, without waiting, and
// returns how many (an error as 0: the poller looks again at its next wake). It is a raw system
// call, as the broker's socket calls are (broker/rawio_linux.go): it never waits, and told of a
// system call, the runtime wakes sysmon from its sleep whenever an idle process gets input,
// which on one core takes the core from the thread about to answer it.
func epollReady(epfd int, events []syscall.EpollEvent) int {
	for {
		n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		switch e {
		case 0:
			return int(n)
		case syscall.EINTR:
		default:
			return 0
		}
	}
}

// dispatchReady takes the events that are there now (without waiting) and hands their
// connections to readers, or serves those that here (if not nil) picks; ready is scratch space.
// It returns how many events it took.
func (p *Poller[C]) dispatchReady(events []syscall.EpollEvent, ready []C, here func(C) bool) int {
	n := epollReady(p.epfd, events)
	if n <= 0 {
		return 0
	}
	ready = p.resolve(events[:n], ready[:0])
	if here != nil {
		k := 0
		for _, c := range ready {
			if here(c) {
				p.Serve(c, true)
			} else {
				ready[k] = c
				k++
			}
		}
		clear(ready[k:])
		ready = ready[:k]
	}
	p.readers.dispatch(p, ready...)
	clear(ready)
	return n
}

// DispatchReady takes the connections of poller i that have input now, on the caller's thread
// (what the poller's own goroutine does when Go's netpoller wakes it): those for which here (if
// not nil) reports true it serves (Poller.Serve with here); the others it hands to readers. It
// reports whether there were any.
func (s *Set[C]) DispatchReady(i int, here func(C) bool) bool {
	ps := s.all()
	if i < 0 || i >= len(ps) {
		return false
	}
	var events [pollEvents]syscall.EpollEvent
	var ready [pollEvents]C
	return ps[i].dispatchReady(events[:], ready[:0], here) > 0
}

// resolve appends to ready the connections of events that the caller must hand to readers.
func (p *Poller[C]) resolve(events []syscall.EpollEvent, ready []C) []C {
	p.mu.Lock()
	for _, ev := range events {
		i, gen := uint32(ev.Fd), uint32(ev.Pad)
		if int(i) >= len(p.slots) || p.slots[i].gen != gen || !p.slots[i].taken {
			continue // the connection ended since
		}
		c := p.slots[i].c
		e := p.cfg.Entry(c)
		if ev.Events&syscall.EPOLLOUT != 0 && p.cfg.Writable != nil {
			p.cfg.Writable(c)
		}
		if ev.Events&^syscall.EPOLLOUT == 0 {
			continue // room only (ReportRoom), no input
		}
		if ev.Events&epollPeerDone != 0 {
			e.peerDone.Store(true) // before claim: the holder's next turn must see it
		}
		if e.claim() {
			ready = append(ready, c)
		}
	}
	p.mu.Unlock()
	return ready
}

// register adds the socket fd to p's epoll instance as slot i of generation gen.
func (p *Poller[C]) register(fd int, i, gen uint32) error {
	ev := syscall.EpollEvent{Events: inputEvents, Fd: int32(i), Pad: int32(gen)}
	return os.NewSyscallError("epoll_ctl", syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev))
}

// ReportRoom has the poller tell Config.Writable of room in the socket of c (rc), registered
// with it, from now on: at once if it has room now, else when it has again. Only where needed
// (a writer waits), since with it every input's event also reports room.
func (p *Poller[C]) ReportRoom(c C, rc syscall.RawConn) error {
	e := p.cfg.Entry(c)
	p.mu.Lock()
	i := e.slot
	gen := p.slots[i].gen
	p.mu.Unlock()
	ev := syscall.EpollEvent{Events: inputEvents | syscall.EPOLLOUT, Fd: int32(i), Pad: int32(gen)}
	var err error
	if cerr := rc.Control(func(fd uintptr) { err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev) }); cerr != nil {
		return cerr
	}
	return os.NewSyscallError("epoll_ctl", err)
}

// deregister removes the socket fd from p's epoll instance.
func (p *Poller[C]) deregister(fd int) {
	syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
}
