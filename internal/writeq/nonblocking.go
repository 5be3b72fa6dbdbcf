package writeq

import (
	"net"
	"sync"
	"syscall"
)

// NonblockingWriter is the write half of a socket under crypto/tls once its connection is
// polled: Write never waits, so that TLS connections are written by flushers and batches like
// plain ones. crypto/tls counts a record as written once Write returns, and any error as fatal,
// so Write sends what the socket takes and keeps the rest (left); whoever writes then stops
// feeding it (WriteTLS) until a writer goroutine has sent the rest (FlushLeft), so left stays
// within one chunk of frames plus the record overhead. The zero value is ready to use.
type NonblockingWriter struct {
	mu       sync.Mutex
	iov      [1]syscall.Iovec
	sent     int
	errno    syscall.Errno
	sendFn   func(fd uintptr) bool // w.sendNow, created once
	left     []byte                // bytes of written records that the socket has not taken yet
	flushing bool                  // FlushLeft is sending some of them
	err      error                 // a write failed: every later one fails too
}

// Write sends p to the socket of rc without waiting, keeping what the socket does not take now.
func (w *NonblockingWriter) Write(rc syscall.RawConn, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	rest := p
	if len(w.left) == 0 && !w.flushing {
		if w.sendFn == nil {
			w.sendFn = w.sendNow
		}
		w.iov[0].Base = &p[0]
		w.iov[0].SetLen(len(p))
		err := rc.Write(w.sendFn)
		w.iov[0].Base = nil
		if err == nil && w.errno != 0 && w.errno != syscall.EAGAIN {
			err = w.errno
		}
		if err != nil {
			w.err = err
			return 0, err
		}
		rest = rest[w.sent:]
	}
	w.left = append(w.left, rest...)
	return len(p), nil
}

func (w *NonblockingWriter) sendNow(fd uintptr) bool {
	w.sent, w.errno = sendv(fd, w.iov[:])
	return true // never wait: the writer goroutine does (FlushLeft)
}

// HasLeft reports whether written records wait for room in the socket.
func (w *NonblockingWriter) HasLeft() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.left) > 0 || w.flushing
}

// FlushLeft sends what waits to nc (the socket itself, whose writes wait, up to its write
// deadline). Only goroutines that may wait call it; Write meanwhile adds to what waits.
func (w *NonblockingWriter) FlushLeft(nc *net.TCPConn) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.left) > 0 && w.err == nil {
		b := w.left
		w.left, w.flushing = nil, true // an idle connection keeps no buffer
		w.mu.Unlock()
		_, err := nc.Write(b)
		w.mu.Lock()
		w.flushing = false
		if err != nil {
			w.err = err
		}
	}
	return w.err
}
