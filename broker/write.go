package broker

import (
	"errors"
	"log/slog"
	"math/bits"
	"os"
	"runtime"
	"sync"
	"syscall"

	"github.com/gobwas/ws"
	"github.com/wsbroker/wsbroker/internal/wsproto"
)

// The write path. Every frame is encoded once and queued as one []byte (a broadcast frame is
// shared by all its subscribers). A socket with something to write is handed to the flusher of
// its shard, which takes the whole queue and writes it with one non-blocking sendmsg/writev. Only
// when the kernel buffer is full does the socket get a writer goroutine of its own, which waits
// for the socket through the netpoller and exits once the queue is empty.
//
// Backpressure: a send to a socket whose queue is already over MaxBackpressure closes it with
// 1008 (a message into a queue under the limit is taken whole, so a message of MaxPayload can be
// echoed with the limits equal). Its queue is dropped at once; whoever is writing (woken by a
// past write deadline if it waits for the peer) keeps only the rest of a frame it has begun, then
// writes the close frame. The write deadline
// is then the drain deadline: a peer that does not read by then loses the connection.

const (
	maxIov        = 1024 // IOV_MAX on Linux
	flushAttempts = 16   // syscalls a flusher spends on one socket per turn
	maxKeptSlots  = 256  // larger queue slices are dropped once empty, not kept by idle sockets

	// frameOverhead is what a queued frame costs beyond its bytes (its slot in the queue and its
	// allocation), counted against MaxBackpressure so that a flood of tiny frames (pongs to a
	// client that pings without reading) cannot hold many times the limit.
	frameOverhead = 32
)

// enqueue queues frame for c. It never blocks on the socket. If c's queue is already over the
// listener's MaxBackpressure the socket is closed with 1008 instead: the queue is dropped
// (closeLocked).
func (c *Conn) enqueue(frame []byte) { c.enqueueCorked(frame, nil) }

// enqueueCorked is enqueue, except that a socket that needs a flush is left to k (when not nil)
// instead of being handed to a flusher goroutine.
func (c *Conn) enqueueCorked(frame []byte, k *Cork) { c.queueFrame(frame, 0, nil, k) }

// queueFrame is enqueueCorked of frame, or when frame is nil, of a frame of op carrying data, which
// is copied: into c's own frame buffer when it fits one (see ownBuffers), or compressed here when
// c keeps its deflate context.
func (c *Conn) queueFrame(frame []byte, op ws.OpCode, data []byte, k *Cork) {
	size := len(frame)
	if frame == nil {
		size = wsproto.FrameLen(len(data))
	}
	c.wmu.Lock()
	if !c.state.Load().mayQueue() {
		c.wmu.Unlock()
		return
	}
	var sched bool
	if c.queuedBytes > c.l.lim.MaxBackpressure {
		c.causeLocked(ws.StatusPolicyViolation, nil)
		sched = c.closeLocked(wsproto.CloseFrame(ws.StatusPolicyViolation, nil), true) && c.scheduleLocked(k)
		c.wmu.Unlock()
		c.logAt(slog.LevelInfo, "the client does not read fast enough: queue dropped, closing with 1008",
			slog.Int("max_backpressure", c.l.lim.MaxBackpressure))
	} else {
		if frame == nil && c.deflate&wsproto.DeflateTakeover != 0 && len(data) >= wsproto.CompressMin {
			if frame = c.history.Frame(op, data); frame != nil { // under wmu, in queue order
				size = len(frame)
			}
		}
		c.queuedBytes += size + c.appendLocked(frame, op, data, size)
		sched = c.scheduleLocked(k)
		if !sched && c.cork != nil && c.cork != k {
			// A frame from elsewhere (a pong, a ping, another cork's send) for a socket that a
			// cork holds: write it now rather than when that cork is flushed.
			c.cork = nil
			sched, k = true, nil
		}
		c.wmu.Unlock()
	}
	if sched {
		c.flushBy(k)
	}
}

// flushBy hands c, just scheduled (scheduleLocked), to whoever writes it: k, or, when k is nil,
// its flusher.
func (c *Conn) flushBy(k *Cork) {
	if k != nil {
		k.conns = append(k.conns, c)
		return
	}
	c.b.flusherFor(c).add(c)
}

// ownBuffers: a frame for one socket only (Send) is not allocated on its own but encoded into a
// buffer of that socket's, taken from a pool and given back once written, so that an echo
// allocates no frame per message and gives the GC nothing to do. A socket has at most
// one in its queue (qbuf, where frames are added while it is the queue's last entry and has
// room) and one being written (obuf); an idle socket has none. Frames below ownFrameMin cost
// little to allocate and would waste most of a buffer; above ownFrameMax they are allocated.
const (
	ownFrameMin   = 512
	ownFrameMax   = 64 << 10
	ownBufMinBits = 10 // the smallest buffer: 1 KiB; each class doubles
)

var ownBuffers [7]sync.Pool // 1 KiB << i

func ownBufClass(size int) int { return max(bits.Len(uint(size-1))-ownBufMinBits, 0) }

// appendLocked queues frame, or (frame nil) data as a frame of op, encoded into c's own buffer
// when size fits one. It returns the overhead to count: frameOverhead for a new queue entry, 0
// for a frame added to the own buffer that ends the queue.
func (c *Conn) appendLocked(frame []byte, op ws.OpCode, data []byte, size int) int {
	switch {
	case frame != nil:
	case size < ownFrameMin || size > ownFrameMax:
		frame = wsproto.EncodeFrame(op, data)
	case c.qbuf == nil:
		i := ownBufClass(size)
		b, _ := ownBuffers[i].Get().(*[]byte)
		if b == nil {
			s := make([]byte, 0, 1<<(ownBufMinBits+i))
			b = &s
		}
		*b = wsproto.AppendFrame((*b)[:0], op, data)
		c.qbuf = b
		frame = *b
	default:
		b, last := c.qbuf, len(c.queue)-1
		if last >= 0 && len(c.queue[last]) == len(*b) && &c.queue[last][0] == &(*b)[0] && cap(*b)-len(*b) >= size {
			*b = wsproto.AppendFrame(*b, op, data)
			c.queue[last] = *b
			return 0
		}
		frame = wsproto.EncodeFrame(op, data) // another frame follows it, or it is full
	}
	c.queue = append(c.queue, frame)
	return frameOverhead
}

// giveBackOwn returns *own (c.qbuf of a dropped queue, c.obuf of an out written or dropped) to
// its pool, if there is one, and clears it.
func giveBackOwn(own **[]byte) {
	if b := *own; b != nil {
		*b = (*b)[:0]
		ownBuffers[ownBufClass(cap(*b))].Put(b)
		*own = nil
	}
}

// takeQueueLocked makes the queue the frames to write; out is empty.
func (c *Conn) takeQueueLocked() {
	giveBackOwn(&c.obuf)
	c.out, c.queue = c.queue, c.out[:0]
	c.obuf, c.qbuf = c.qbuf, nil
}

// queued returns the bytes queued for c and not yet written, with frameOverhead per frame.
func (c *Conn) queued() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.queuedBytes
}

// scheduleLocked marks c scheduled, to be written by k's Flush (k nil: by its flusher), and
// reports whether the caller must hand it over (flushBy, after unlocking): it is writable, has
// something queued and nobody is on it already.
func (c *Conn) scheduleLocked(k *Cork) bool {
	if !c.state.Load().writable() || c.scheduled || c.writing || len(c.queue) == 0 {
		return false
	}
	c.scheduled = true
	c.cork = k
	return true
}

// flusher writes the sockets of one shard.
type flusher struct {
	b    *Broker
	mu   sync.Mutex
	list []*Conn
	wake chan struct{}
	w    *writeState
}

func newFlusher(b *Broker) *flusher {
	f := &flusher{b: b, wake: make(chan struct{}, 1)}
	f.w = newWriteState(false)
	return f
}

// add puts c, one of f's sockets (Broker.flusherFor), on f's list.
func (f *flusher) add(c *Conn) { f.addMine([]*Conn{c}) }

// addMine puts the sockets of cs that are f's (Broker.flusherFor) on its list, and wakes it.
func (f *flusher) addMine(cs []*Conn) {
	f.mu.Lock()
	k := len(f.list)
	for _, c := range cs {
		if f.b.flusherFor(c) == f {
			f.list = append(f.list, c)
		}
	}
	added := len(f.list) > k
	f.mu.Unlock()
	if added {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

func (f *flusher) run() {
	var batch []*Conn
	for range f.wake {
		// Let the goroutines that are ready run first (the readers that one netpoll woke): what
		// they queue for the same sockets then leaves in the same write. Without this the flusher,
		// woken by the first of them, runs right after it (runnext) and writes about one frame per
		// syscall; with it, one write per socket per round of reads, as uWS corks its sockets for
		// an event-loop iteration.
		runtime.Gosched()
		f.mu.Lock()
		batch, f.list = f.list, batch[:0]
		f.mu.Unlock()
		for i, c := range batch {
			batch[i] = nil
			c.flush(f.w)
		}
		if cap(batch) > 4096 {
			batch = nil
		}
	}
}

// flush is a flusher's turn on c: take the queue, write what the socket accepts without waiting,
// and leave the rest to a writer goroutine.
func (c *Conn) flush(w *writeState) {
	c.wmu.Lock()
	c.scheduled = false
	c.cork = nil
	if c.writing || !c.state.Load().writable() || len(c.queue) == 0 {
		c.wmu.Unlock()
		return
	}
	c.takeQueueLocked()
	c.writing = true
	c.wmu.Unlock()
	var n, frames int
	var err error
	switch {
	case c.tc == nil:
		n, frames, err = w.write(c)
	case c.poll.Poller() != nil:
		n, frames, err = writeTLS(c, false)
	default:
		go c.writer() // TLS writes to an unpolled socket block: never on a flusher's (or a batch's) thread
		return
	}
	c.afterWrite(n, frames, err, false)
}

// writer runs while c's socket is full: it waits for it to drain and writes until the queue is
// empty. c.writing is true while it runs.
func (c *Conn) writer() {
	write := func(c *Conn) (int, int, error) { return writeTLS(c, true) }
	if c.tc == nil {
		write = newWriteState(true).write
	}
	for {
		n, frames, err := write(c)
		if !c.afterWrite(n, frames, err, true) {
			return
		}
	}
}

// afterWrite settles the state after a write of n bytes (completing frames frames) from c.out.
// It reports whether the caller (a writer goroutine) must write c.out again.
func (c *Conn) afterWrite(n, frames int, err error, inWriter bool) bool {
	c.wmu.Lock()
	c.queuedBytes = max(c.queuedBytes-n-frames*frameOverhead, 0)
	if c.trim {
		// Backpressure: closeLocked dropped the queue and woke us with a past write deadline.
		c.trim = false
		c.trimLocked()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = nil
		}
		c.nc.SetWriteDeadline(c.drainDeadline())
	}
	if err != nil {
		c.writing = false
		c.state.Store(c.state.Load().afterWriteFailure())
		c.dropLocked()
		c.wmu.Unlock()
		c.logAt(slog.LevelDebug, "write failed, closing connection", slog.Any("error", err))
		// Shutting the read side ends the reader (goroutine or poller, which reads EOF), and it
		// delivers Close; closing the socket here would leave a poller unaware.
		c.nc.CloseRead()
		return false
	}
	if len(c.out) > 0 || c.tc != nil && c.tlsSocket().hasLeft() {
		c.wmu.Unlock()
		if inWriter {
			return true
		}
		go c.writer() // c.writing stays true: the writer owns c.out now
		return false
	}
	giveBackOwn(&c.obuf)
	if len(c.queue) > 0 {
		if inWriter {
			c.takeQueueLocked()
			c.wmu.Unlock()
			return true
		}
		// More arrived during the write: back to the end of the flusher's list.
		c.writing = false
		c.scheduled = true
		c.wmu.Unlock()
		c.b.flusherFor(c).add(c)
		return false
	}
	c.writing = false
	if cap(c.out) > maxKeptSlots {
		c.out = nil
	}
	if cap(c.queue) > maxKeptSlots {
		c.queue = nil
	}
	shut := c.state.Load() == stateClosing // its close frame is out
	if shut {
		c.state.Store(stateHalfClosed)
	}
	c.wmu.Unlock()
	if shut {
		// The close frame is out: half-close so the peer sees EOF; the reader drains what the
		// peer still sends until it closes too (or the drain deadline passes).
		c.closeWrite()
	}
	return false
}

// trimLocked drops c.out (its caller owns it) but for the rest of a partly written frame, which
// must be finished before the close frame can follow.
func (c *Conn) trimLocked() {
	keep := 0
	if c.outPartial && len(c.out) > 0 {
		keep = 1
	}
	out := make([][]byte, keep, keep+1)
	copy(out, c.out[:keep])
	clear(c.out)
	c.out = out
	c.obuf = nil // the kept rest may be in it: the GC takes it
	c.queuedBytes = 0
	for _, f := range c.out {
		c.queuedBytes += len(f) + frameOverhead
	}
	for _, f := range c.queue {
		c.queuedBytes += len(f) + frameOverhead
	}
}

// dropLocked forgets everything queued. Only when nobody is writing: c.out belongs to the writer.
func (c *Conn) dropLocked() {
	clear(c.queue)
	c.queue = nil
	giveBackOwn(&c.qbuf)
	if !c.writing {
		clear(c.out)
		c.out = nil
		c.outPartial = false
		giveBackOwn(&c.obuf)
	}
	c.queuedBytes = 0
}

// writeState is the scratch space of one writing goroutine (Cork.Flush's are pooled across
// brokers: it keeps no broker of its own); fn is created once so that a write allocates nothing.
type writeState struct {
	block bool // wait for the socket (writer goroutine) or give up at EAGAIN (flusher)
	iov   []syscall.Iovec
	fn    func(fd uintptr) bool

	c       *Conn
	written int
	frames  int // frames completed
	errno   syscall.Errno
}

func newWriteState(block bool) *writeState {
	w := &writeState{block: block, iov: make([]syscall.Iovec, 0, 64)}
	w.fn = w.do
	return w
}

// write writes c.out (owned by the caller, c.writing is set). It returns the bytes written, the
// frames completed, and a non-nil error when the connection is broken or the write deadline
// passed. What was written is removed from c.out.
func (w *writeState) write(c *Conn) (int, int, error) {
	w.c, w.written, w.frames, w.errno = c, 0, 0, 0
	err := c.rc.Write(w.fn)
	n, frames := w.written, w.frames
	c.b.counters.bytesOut.Add(uint64(n))
	w.c = nil
	if err == nil && w.errno != 0 {
		err = w.errno
	}
	return n, frames, err
}

// do is the RawConn.Write callback.
func (w *writeState) do(fd uintptr) bool {
	c := w.c
	for attempts := 0; len(c.out) > 0; attempts++ {
		if !w.block && attempts == flushAttempts {
			return true
		}
		iov := w.iov[:0]
		total := 0
		for _, b := range c.out {
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
		c.b.writeCalls.Add(1)
		if e == syscall.EAGAIN {
			return !w.block // the writer waits for the netpoller, a flusher gives up
		}
		if e != 0 {
			w.errno = e
			return true
		}
		w.written += n
		w.frames += c.consume(n)
		if n < total && !w.block {
			return true // the socket buffer is full
		}
	}
	return true
}

// consume removes n written bytes from the front of c.out and returns how many frames it
// completed.
func (c *Conn) consume(n int) int {
	i := 0
	cut := false
	for n > 0 && i < len(c.out) {
		if n >= len(c.out[i]) {
			n -= len(c.out[i])
			i++
			continue
		}
		c.out[i] = c.out[i][n:]
		n = 0
		cut = true
	}
	if i > 0 || cut {
		c.outPartial = cut
	}
	if i > 0 {
		k := copy(c.out, c.out[i:])
		clear(c.out[k:])
		c.out = c.out[:k]
	}
	return i
}

// tlsChunk is how many bytes of small frames writeTLS gathers into one TLS write: crypto/tls
// makes at least one record and one syscall per Write, so small frames are copied together first.
const tlsChunk = 16 << 10

var tlsChunks = sync.Pool{New: func() any { b := make([]byte, 0, tlsChunk); return &b }}

// writeTLS writes c.out through crypto/tls, with write's results. With block (the writer
// goroutine) it waits for the socket; else it stops once the socket is full (its tlsSocket keeps
// what the socket did not take, for the writer goroutine to send first).
func writeTLS(c *Conn, block bool) (int, int, error) {
	s := c.tlsSocket()
	bufp := tlsChunks.Get().(*[]byte)
	defer tlsChunks.Put(bufp)
	written, frames := 0, 0
	var err error
	for err == nil {
		if s.hasLeft() {
			if !block {
				break
			}
			if err = s.flushLeft(); err != nil {
				break
			}
		}
		if len(c.out) == 0 {
			break
		}
		chunk := c.out[0]
		if len(chunk) < tlsChunk {
			chunk = (*bufp)[:0]
			for _, f := range c.out {
				if len(chunk)+len(f) > tlsChunk {
					break
				}
				chunk = append(chunk, f...)
			}
		}
		var n int
		n, err = c.tc.Write(chunk)
		written += n
		frames += c.consume(n)
	}
	c.b.counters.bytesOut.Add(uint64(written))
	return written, frames, err
}
