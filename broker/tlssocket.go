package broker

import (
	"io"
	"net"
	"sync"
	"syscall"
)

// tlsSocket is the TCP socket under crypto/tls. Until its connection is polled (the handshake,
// an HTTP refusal) it is the plain net.TCPConn, whose reads and writes wait. Once polled, its
// reads and writes never wait, so that a TLS connection is read by its poller and written by
// flushers and batches like a plain one, with no goroutine of its own:
//   - Read returns errWouldBlock when the socket is empty; crypto/tls keeps a partial record and
//     reads on at its next call, as it does after a read deadline.
//   - Write sends what the socket takes and keeps the rest (left): crypto/tls counts a record as
//     written once Write returns, and any error as fatal. Whoever writes then stops feeding it
//     (writeTLS) until a writer goroutine has sent the rest (flushLeft), so left stays within one
//     chunk of frames plus the record overhead.
type tlsSocket struct {
	*net.TCPConn
	rc     syscall.RawConn
	polled bool // set before the connection is registered with its poller, never cleared

	// Read's call: crypto/tls reads under its input lock, from whoever holds the connection.
	rbuf   []byte
	rn     int
	rerr   error
	readFn func(fd uintptr) bool

	// Write's call and what is left, under mu.
	mu       sync.Mutex
	wiov     [1]syscall.Iovec
	wn       int
	werrno   syscall.Errno
	writeFn  func(fd uintptr) bool
	left     []byte // bytes of written records that the socket has not taken yet
	flushing bool   // flushLeft is sending some of them
	werr     error  // a write failed: every later one fails too
}

func newTLSSocket(nc *net.TCPConn, rc syscall.RawConn) *tlsSocket {
	s := &tlsSocket{TCPConn: nc, rc: rc}
	s.readFn, s.writeFn = s.readNow, s.sendNow
	return s
}

// errWouldBlock is Read's "nothing to read now": a temporary net.Error, which crypto/tls does
// not treat as the end of the connection.
var errWouldBlock = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "socket has no input now" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

func (s *tlsSocket) readNow(fd uintptr) bool {
	s.rn, s.rerr = recv(fd, s.rbuf)
	return true // never wait: the poller does
}

func (s *tlsSocket) Read(p []byte) (int, error) {
	if !s.polled {
		return s.TCPConn.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	s.rbuf = p
	err := s.rc.Read(s.readFn)
	s.rbuf = nil
	switch {
	case err != nil:
		return 0, err
	case s.rerr == syscall.EAGAIN:
		return 0, errWouldBlock
	case s.rerr != nil:
		return 0, s.rerr
	case s.rn == 0:
		return 0, io.EOF
	}
	return s.rn, nil
}

func (s *tlsSocket) Write(p []byte) (int, error) {
	if !s.polled {
		return s.TCPConn.Write(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.werr != nil {
		return 0, s.werr
	}
	rest := p
	if len(s.left) == 0 && !s.flushing {
		s.wiov[0].Base = &p[0]
		s.wiov[0].SetLen(len(p))
		err := s.rc.Write(s.writeFn)
		s.wiov[0].Base = nil
		if err == nil && s.werrno != 0 && s.werrno != syscall.EAGAIN {
			err = s.werrno
		}
		if err != nil {
			s.werr = err
			return 0, err
		}
		rest = rest[s.wn:]
	}
	s.left = append(s.left, rest...)
	return len(p), nil
}

func (s *tlsSocket) sendNow(fd uintptr) bool {
	s.wn, s.werrno = sendv(fd, s.wiov[:])
	return true // never wait: the writer goroutine does (flushLeft)
}

// hasLeft reports whether written records wait for room in the socket.
func (s *tlsSocket) hasLeft() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.left) > 0 || s.flushing
}

// flushLeft sends what waits, waiting for the socket (up to its write deadline). Only goroutines
// that may wait call it (the writer, the half-close after a close_notify that waits); Write
// meanwhile adds to what waits.
func (s *tlsSocket) flushLeft() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.left) > 0 && s.werr == nil {
		b := s.left
		s.left, s.flushing = nil, true // an idle connection keeps no buffer
		s.mu.Unlock()
		_, err := s.TCPConn.Write(b)
		s.mu.Lock()
		s.flushing = false
		if err != nil {
			s.werr = err
		}
	}
	return s.werr
}
