//go:build linux

package netpoll

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"syscall"
	"time"
)

// Supported reports whether this system has pollers (epoll); where it has not, NewSet fails.
const Supported = true

const (
	pollEvents = 128 // events taken per epoll_wait

	epollET = 1 << 31 // EPOLLET; syscall's constant is negative

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
	f := os.NewFile(uintptr(fd), "epoll")
	rc, err := f.SyscallConn()
	if err == nil {
		err = f.SetReadDeadline(time.Now().Add(time.Second)) // fails if the netpoller did not take it
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &Poller[C]{cfg: cfg, epfd: fd, f: f, rc: rc, interval: time.Second}
	p.readers.cond.L = &p.readers.mu
	go p.run()
	return p, nil
}

// run waits for events and hands ready connections to readers; at every sweep interval it
// looks at the connections' wake-ups.
func (p *Poller[C]) run() {
	events := make([]syscall.EpollEvent, pollEvents)
	ready := make([]C, 0, pollEvents)
	wait := func(fd uintptr) bool {
		// Until an epoll_wait returns fewer than it could: every event that comes after that one
		// wakes the netpoller again.
		for p.dispatchReady(events, ready, nil) == len(events) {
		}
		return false
	}
	for {
		err := p.rc.Read(wait)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			p.cfg.Logger.LogAttrs(context.Background(), slog.LevelError, "poller stopped", slog.Any("error", err)) // never: the epoll fd is never closed
			return
		}
		p.sweep()
	}
}

// dispatchReady takes the events that are there now (without waiting) and hands their
// connections to readers, or serves those that here (if not nil) picks; ready is scratch space.
// It returns how many events it took.
func (p *Poller[C]) dispatchReady(events []syscall.EpollEvent, ready []C, here func(C) bool) int {
	n, err := syscall.EpollWait(p.epfd, events, 0)
	for err == syscall.EINTR {
		n, err = syscall.EpollWait(p.epfd, events, 0)
	}
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
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: int32(i), Pad: int32(gen)}
	return os.NewSyscallError("epoll_ctl", syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev))
}

// deregister removes the socket fd from p's epoll instance.
func (p *Poller[C]) deregister(fd int) {
	syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
}
