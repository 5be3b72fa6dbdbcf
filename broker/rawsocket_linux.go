//go:build linux

package broker

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// rawSocket is a polled connection's TCP socket out of Go's netpoller: a duplicate of its
// net.TCPConn's descriptor, which is then closed. Go's netpoller holds every net.Conn's descriptor
// and wakes a thread of its own for each input, which the connection's poller reads anyway; with
// a P left idle for a JS thread (cmd/libwsbroker/schedule.go) that thread takes the core from the
// JS thread at every message. Reads and writes never wait, but a writer goroutine's for room in a
// full socket, which the poller reports (writable, from EPOLLOUT) and the write deadline bounds,
// as the netpoller's wait did.
type rawSocket struct {
	c       *Conn // whose poller reports room (ReportRoom) once a writer first waits
	mu      sync.Mutex
	fd      int
	calls   int32         // system calls on fd in progress: fd is closed when none is (never reused under one)
	closing bool          // Close was called
	reports bool          // the poller reports room
	waiting atomic.Bool   // a writer waits for room: the poller's reports wake it (writable)
	wdl     int64         // the write deadline (SetWriteDeadline) in Unix nanoseconds; 0: none
	wake    chan struct{} // made when a writer first waits: room came, the deadline changed, or Close
}

// detachSocket takes c's socket, tc, out of Go's netpoller: it returns a rawSocket on a duplicate
// of its descriptor and closes tc.
func detachSocket(c *Conn, tc *net.TCPConn, rc syscall.RawConn) (*rawSocket, error) {
	var dup int
	var err error
	if cerr := rc.Control(func(fd uintptr) { dup, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	tc.Close() // its descriptor only: the socket stays open through dup, non-blocking as it was
	return &rawSocket{c: c, fd: dup}, nil
}

// acquire returns fd for a system call, which release ends; false once Close was called.
func (s *rawSocket) acquire() (uintptr, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return 0, false
	}
	s.calls++
	return uintptr(s.fd), true
}

func (s *rawSocket) release() {
	s.mu.Lock()
	s.calls--
	if s.calls == 0 && s.closing {
		syscall.Close(s.fd)
	}
	s.mu.Unlock()
}

// poke has a waiting writer look again (a send that finds the channel full is not needed).
func (s *rawSocket) poke() {
	s.mu.Lock()
	wake := s.wake
	s.mu.Unlock()
	select {
	case wake <- struct{}{}:
	default: // no writer ever waited (nil), or a wake is pending
	}
}

// writable is the poller's report that the socket has room (EPOLLOUT).
func (s *rawSocket) writable() {
	if s.waiting.Load() {
		s.poke()
	}
}

// Control calls f with the descriptor (syscall.RawConn).
func (s *rawSocket) Control(f func(fd uintptr)) error {
	fd, ok := s.acquire()
	if !ok {
		return net.ErrClosed
	}
	defer s.release()
	f(fd)
	return nil
}

// Read calls f once (syscall.RawConn): the poller waits for input, never a reader.
func (s *rawSocket) Read(f func(fd uintptr) bool) error {
	fd, ok := s.acquire()
	if !ok {
		return net.ErrClosed
	}
	defer s.release()
	if !f(fd) {
		return errWouldBlock
	}
	return nil
}

// Write calls f until it reports done (syscall.RawConn), waiting for room in between, until the
// write deadline.
func (s *rawSocket) Write(f func(fd uintptr) bool) error {
	armed := false
	defer func() {
		if armed {
			s.waiting.Store(false)
		}
	}()
	for {
		fd, ok := s.acquire()
		if !ok {
			return net.ErrClosed
		}
		done := f(fd)
		s.release()
		if done {
			return nil
		}
		if !armed {
			// Room that came before the poller could see a writer waiting raised no wake: try
			// once more before waiting.
			if err := s.arm(); err != nil {
				return err
			}
			armed = true
			continue
		}
		if err := s.waitRoom(); err != nil {
			return err
		}
	}
}

// arm readies the writer's wait: the wake channel, the poller's reports of room, and the flag
// that has them wake it.
func (s *rawSocket) arm() error {
	s.mu.Lock()
	if s.wake == nil {
		s.wake = make(chan struct{}, 1)
	}
	report := !s.reports
	s.reports = true
	s.mu.Unlock()
	s.waiting.Store(true)
	if report {
		return s.c.poll.Poller().ReportRoom(s.c, s)
	}
	return nil
}

// waitRoom waits for a wake (room, most likely), the write deadline or Close.
func (s *rawSocket) waitRoom() error {
	s.mu.Lock()
	closing, deadline, wake := s.closing, s.wdl, s.wake
	s.mu.Unlock()
	if closing {
		return net.ErrClosed
	}
	if deadline == 0 {
		<-wake
		return nil
	}
	d := time.Until(time.Unix(0, deadline))
	if d <= 0 {
		return os.ErrDeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-wake:
	case <-t.C:
	}
	return nil // the caller writes again, and comes back here to see the deadline passed
}

// SetWriteDeadline bounds a writer's wait for room; a past one ends it at once.
func (s *rawSocket) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	s.wdl = 0
	if !t.IsZero() {
		s.wdl = t.UnixNano()
	}
	s.mu.Unlock()
	s.poke()
	return nil
}

// CloseWrite shuts the socket's sending side.
func (s *rawSocket) CloseWrite() error { return s.shutdown(syscall.SHUT_WR) }

// CloseRead shuts the socket's receiving side: the poller sees its end.
func (s *rawSocket) CloseRead() error { return s.shutdown(syscall.SHUT_RD) }

func (s *rawSocket) shutdown(how int) error {
	fd, ok := s.acquire()
	if !ok {
		return net.ErrClosed
	}
	defer s.release()
	return os.NewSyscallError("shutdown", syscall.Shutdown(int(fd), how))
}

// Close closes the descriptor once no system call uses it, and ends a writer's wait.
func (s *rawSocket) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.closing = true
	if s.calls == 0 {
		syscall.Close(s.fd)
	}
	s.mu.Unlock()
	s.poke()
	return nil
}
