package broker

import (
	"io"
	"net"
	"syscall"

	"github.com/wsbroker/wsbroker/internal/writeq"
)

// tlsSocket is the TCP socket under crypto/tls. Until its connection is polled (the handshake,
// an HTTP refusal) it is the plain net.TCPConn, whose reads and writes wait. Once polled, its
// reads and writes never wait, so that a TLS connection is read by its poller and written by
// flushers and batches like a plain one, with no goroutine of its own:
//   - Read returns errWouldBlock when the socket is empty; crypto/tls keeps a partial record and
//     reads on at its next call, as it does after a read deadline.
//   - Write sends what the socket takes and keeps the rest (writeq.NonblockingWriter).
type tlsSocket struct {
	*net.TCPConn
	rc     syscall.RawConn
	polled bool // set before the connection is registered with its poller, never cleared

	// Read's call: crypto/tls reads under its input lock, from whoever holds the connection.
	rbuf   []byte
	rn     int
	rerr   error
	readFn func(fd uintptr) bool

	w writeq.NonblockingWriter // the writes once polled
}

func newTLSSocket(nc *net.TCPConn, rc syscall.RawConn) *tlsSocket {
	s := &tlsSocket{TCPConn: nc, rc: rc}
	s.readFn = s.readNow
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
	return s.w.Write(s.rc, p)
}
