package writeq

import (
	"crypto/tls"
	"net"
	"sync"
	"syscall"
)

const (
	maxIov        = 1024 // IOV_MAX on Linux
	flushAttempts = 16   // syscalls a non-blocking Writer spends on one socket per write
)

// Writer writes a Queue's out to its socket with one sendmsg (writev) per try: the scratch space
// of one writing goroutine, kept across sockets (and brokers) so that a write allocates nothing.
type Writer struct {
	block bool // wait for the socket (a writer goroutine) or give up when it is full (a flusher)
	iov   []syscall.Iovec
	fn    func(fd uintptr) bool // w.do, created once

	q       *Queue
	written int
	frames  int // frames completed
	calls   int // system calls made
	errno   syscall.Errno
}

// NewWriter returns a Writer that, with block, waits for a full socket (its RawConn's Write
// waits), else stops at the first write the socket does not take whole.
func NewWriter(block bool) *Writer {
	w := &Writer{block: block, iov: make([]syscall.Iovec, 0, 64)}
	w.fn = w.do
	return w
}

// Write writes q's out (owned by the caller: Queue.Take) to the socket of rc; what was written
// is removed from out. It returns the bytes written, the frames completed, the system calls
// made, and a non-nil error when the connection is broken or its write deadline passed.
func (w *Writer) Write(rc syscall.RawConn, q *Queue) (n, frames, calls int, err error) {
	w.q, w.written, w.frames, w.calls, w.errno = q, 0, 0, 0, 0
	err = rc.Write(w.fn)
	n, frames, calls = w.written, w.frames, w.calls
	w.q = nil
	if err == nil && w.errno != 0 {
		err = w.errno
	}
	return n, frames, calls, err
}

// do is the RawConn.Write callback.
func (w *Writer) do(fd uintptr) bool {
	q := w.q
	for attempts := 0; len(q.out) > 0; attempts++ {
		if !w.block && attempts == flushAttempts {
			return true
		}
		iov := w.iov[:0]
		total := 0
		for _, b := range q.out {
			if len(iov) == maxIov {
				break
			}
			v := syscall.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
			total += len(b)
		}
		w.iov = iov
		n, e := sendv(fd, iov)
		clear(iov) // keep no pointers to frames
		w.calls++
		if e == syscall.EAGAIN {
			return !w.block // a writer goroutine waits for room (RawConn.Write), a flusher gives up
		}
		if e != 0 {
			w.errno = e
			return true
		}
		w.written += n
		w.frames += q.consume(n)
		if n < total && !w.block {
			return true // the socket buffer is full
		}
	}
	return true
}

// tlsChunk is how many bytes of small frames WriteTLS gathers into one TLS write: crypto/tls
// makes at least one record and one syscall per Write, so small frames are copied together first.
const tlsChunk = 16 << 10

var tlsChunks = sync.Pool{New: func() any { b := make([]byte, 0, tlsChunk); return &b }}

// WriteTLS writes q's out (owned by the caller) through tc, whose writes to its socket nc go
// through s, with Writer.Write's results but the system calls. With block (a writer goroutine)
// it first sends what s holds, waiting for the socket; else it stops once s holds bytes the
// socket did not take, for a writer goroutine to send first.
func WriteTLS(tc *tls.Conn, nc *net.TCPConn, s *NonblockingWriter, q *Queue, block bool) (n, frames int, err error) {
	bufp := tlsChunks.Get().(*[]byte)
	defer tlsChunks.Put(bufp)
	for err == nil {
		if s.HasLeft() {
			if !block {
				break
			}
			if err = s.FlushLeft(nc); err != nil {
				break
			}
		}
		if len(q.out) == 0 {
			break
		}
		chunk := q.out[0]
		if len(chunk) < tlsChunk {
			chunk = (*bufp)[:0]
			for _, f := range q.out {
				if len(chunk)+len(f) > tlsChunk {
					break
				}
				chunk = append(chunk, f...)
			}
		}
		var k int
		k, err = tc.Write(chunk)
		n += k
		frames += q.consume(k)
	}
	return n, frames, err
}
