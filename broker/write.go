package broker

import (
	"errors"
	"log/slog"
	"os"
	"sync"

	"github.com/gobwas/ws"
	"github.com/wsbroker/wsbroker/internal/writeq"
	"github.com/wsbroker/wsbroker/internal/wsproto"
)

// The write path's policy; the mechanism (the queue, the writes, the flushers' lists) is
// internal/writeq's. Every frame is encoded once and queued as one []byte (a broadcast frame is
// shared by all its subscribers). A socket with something to write is handed to the flusher of
// its shard, which takes the whole queue and writes it with one non-blocking sendmsg/writev. Only
// when the kernel buffer is full does the socket get a writer goroutine of its own, which waits
// for the socket through the netpoller and exits once the queue is empty. A large message to an
// idle socket is written by its sender, without copying what the socket takes (writeNow). The
// connection's state decides what may be queued (mayQueue) and written (writable), under the same
// lock (wmu) as its queue.
//
// Flow control: a send that leaves a socket's queue over BackpressureThreshold marks it
// (writeq.Queue.Over) and tells its sender (Send's result); the write that brings that queue down to
// nothing tells the DrainHandler, from the writer's goroutine (afterWrite), so that a
// sender can wait for room instead of polling.
//
// Backpressure: a send to a socket whose queue is already over MaxBackpressure closes it with
// 1008 (a message into a queue under the limit is taken whole, so a message of MaxPayload can be
// echoed with the limits equal). Its queue is dropped at once; whoever is writing (woken by a
// past write deadline if it waits for the peer) keeps only the rest of a frame it has begun, then
// writes the close frame. The write deadline is then the drain deadline: a peer that does not
// read by then loses the connection.

// enqueue queues frame for c. It never blocks on the socket. If c's queue is already over the
// listener's MaxBackpressure the socket is closed with 1008 instead: the queue is dropped
// (closeLocked).
func (c *Conn) enqueue(frame []byte) { c.enqueueCorked(frame, nil) }

// enqueueCorked is enqueue, except that a socket that needs a flush is left to k (when not nil)
// instead of being handed to a flusher goroutine.
func (c *Conn) enqueueCorked(frame []byte, k *Cork) { c.queueFrame(frame, 0, nil, k) }

// queueFrame is enqueueCorked of frame, or when frame is nil, of a frame of op carrying data, which
// is copied: into c's own frame buffer when it fits one (writeq.Queue.AppendMessage), or
// compressed here when c keeps its deflate context. It reports whether the frame was queued and
// left the queue of c, accepted, over BackpressureThreshold (before the verdict nothing is
// written, so the queue says nothing of the client).
func (c *Conn) queueFrame(frame []byte, op ws.OpCode, data []byte, k *Cork) (full bool) {
	c.wmu.Lock()
	s := c.state.Load()
	if !s.mayQueue() {
		c.wmu.Unlock()
		return false
	}
	var sched bool
	if c.q.Queued() > c.l.lim.MaxBackpressure {
		c.causeLocked(ws.StatusPolicyViolation, nil)
		sched = c.closeLocked(wsproto.CloseFrame(ws.StatusPolicyViolation, nil), true) && c.scheduleLocked(k)
		c.wmu.Unlock()
		c.logAt(slog.LevelInfo, "the client does not read fast enough: queue dropped, closing with 1008",
			slog.Int("max_backpressure", c.l.lim.MaxBackpressure))
	} else {
		if frame == nil && c.deflate&wsproto.DeflateTakeover != 0 && len(data) >= wsproto.CompressMin {
			frame = c.history.Frame(op, data) // under wmu, in queue order; nil: not smaller
		}
		if frame == nil && len(data) >= writeNowMin && c.tc == nil && s.writable() && c.q.Idle() {
			return c.writeNow(op, data, s.accepted()) // unlocks wmu
		}
		if frame != nil {
			c.q.Append(frame)
		} else {
			c.q.AppendMessage(op, data)
		}
		full = s.accepted() && c.q.Over(c.l.lim.BackpressureThreshold)
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
	return full
}

// writeNowMin is the smallest message that a send to an idle socket writes at once from the
// sender's memory (writeNow) instead of copying it into the queue: past it the copy costs more than
// the system call of its own (and a writer's wake-up) that writing it apart from the other sends
// of a batch takes.
const writeNowMin = 64 << 10

// writeNow is queueFrame's send of a large message to an idle, writable socket: its frame is
// written on the calling goroutine, from data, without waiting for room, and what the socket does
// not take is copied for a writer goroutine to finish. Called with wmu held; it unlocks it. It
// reports what queueFrame does.
func (c *Conn) writeNow(op ws.OpCode, data []byte, accepted bool) (full bool) {
	c.q.WriteNow(wsproto.FrameHeader(op, len(data)), data)
	c.wmu.Unlock()
	w := callerWriters.Get().(*writeq.Writer)
	n, frames, err := c.writeOut(w, false)
	callerWriters.Put(w)
	c.wmu.Lock()
	c.q.KeepUnwritten()
	full = accepted && c.q.Over(c.l.lim.BackpressureThreshold)
	c.wmu.Unlock()
	c.afterWrite(n, frames, err, false)
	return full
}

// callerWriters are the non-blocking Writers of writes made on a caller's goroutine (Cork.Flush,
// writeNow), which has none of its own.
var callerWriters = sync.Pool{New: func() any { return writeq.NewWriter(false) }}

// flushBy hands c, just scheduled (scheduleLocked), to whoever writes it: k, or, when k is nil,
// its flusher.
func (c *Conn) flushBy(k *Cork) {
	if k != nil {
		k.conns = append(k.conns, c)
		return
	}
	c.b.flusherFor(c).Add(c)
}

// queued returns the bytes queued for c and not yet written, with writeq.FrameOverhead per frame.
func (c *Conn) queued() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.q.Queued()
}

// scheduleLocked marks c scheduled, to be written by k's Flush (k nil: by its flusher), and
// reports whether the caller must hand it over (flushBy, after unlocking): it is writable, has
// something queued and nobody is on it already.
func (c *Conn) scheduleLocked(k *Cork) bool {
	if !c.state.Load().writable() || !c.q.Schedule() {
		return false
	}
	c.cork = k
	return true
}

// flusherFor returns the flusher that writes c.
func (b *Broker) flusherFor(c *Conn) *writeq.Flusher[*Conn] {
	return b.flushers[c.id%uint64(len(b.flushers))]
}

// flushLater hands cs to their flushers, each flusher's in one call; it reorders cs.
func (b *Broker) flushLater(cs []*Conn) {
	if len(cs) == 0 {
		return
	}
	for _, f := range b.flushers {
		mine := 0
		for j, c := range cs {
			if b.flusherFor(c) == f {
				cs[mine], cs[j] = cs[j], cs[mine]
				mine++
			}
		}
		f.AddAll(cs[:mine])
		cs = cs[mine:]
	}
}

// runFlusher is the goroutine of flusher f: it writes each socket handed to it.
func (b *Broker) runFlusher(f *writeq.Flusher[*Conn]) {
	w := writeq.NewWriter(false)
	var batch []*Conn
	for {
		batch = f.Next(batch)
		for _, c := range batch {
			c.flush(w)
		}
	}
}

// flush is a flusher's turn on c: take the queue, write what the socket accepts without waiting,
// and leave the rest to a writer goroutine.
func (c *Conn) flush(w *writeq.Writer) {
	c.wmu.Lock()
	c.cork = nil
	if !c.state.Load().writable() || !c.q.Take() {
		c.q.Unschedule()
		c.wmu.Unlock()
		return
	}
	c.wmu.Unlock()
	if c.tc != nil && c.poll.Poller() == nil {
		go c.writer() // TLS writes to an unpolled socket block: never on a flusher's (or a batch's) thread
		return
	}
	n, frames, err := c.writeOut(w, false)
	c.afterWrite(n, frames, err, false)
}

// writeOut writes c's out (owned by the caller) to a plain socket with w, or through crypto/tls;
// with block it waits for the socket. Its results are writeq.Writer.Write's.
func (c *Conn) writeOut(w *writeq.Writer, block bool) (n, frames int, err error) {
	if c.tc == nil {
		var calls int
		n, frames, calls, err = w.Write(c.rc, &c.q)
		c.b.writeCalls.Add(uint64(calls))
	} else {
		n, frames, err = writeq.WriteTLS(c.tc, c.nc, &c.tlsSocket().w, &c.q, block)
	}
	c.b.counters.bytesOut.Add(uint64(n))
	return n, frames, err
}

// writer runs while c's socket is full: it waits for it to drain and writes until the queue is
// empty. c's queue is Writing while it runs.
func (c *Conn) writer() {
	var w *writeq.Writer
	if c.tc == nil {
		w = writeq.NewWriter(true)
	}
	for {
		n, frames, err := c.writeOut(w, true)
		if !c.afterWrite(n, frames, err, true) {
			return
		}
	}
}

// afterWrite settles the state after a write of n bytes (completing frames frames) from c's out,
// then tells the DrainHandler if that write drained c (settleWrite). It reports whether the
// caller (a writer goroutine) must write again.
func (c *Conn) afterWrite(n, frames int, err error, inWriter bool) bool {
	again, drained := c.settleWrite(n, frames, err, inWriter)
	if drained {
		c.b.callDrain(c)
	}
	return again
}

// settleWrite is afterWrite but for the DrainHandler's call: it also reports whether c, open, had
// gone over BackpressureThreshold and this write emptied its queue.
func (c *Conn) settleWrite(n, frames int, err error, inWriter bool) (again, drained bool) {
	c.wmu.Lock()
	if c.q.Wrote(n, frames) {
		// Backpressure: closeLocked dropped the queue and woke us with a past write deadline.
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = nil
		}
		c.tcp().SetWriteDeadline(c.drainDeadline())
	}
	if err != nil {
		c.q.Fail()
		c.state.Store(c.state.Load().afterWriteFailure())
		c.wmu.Unlock()
		c.logAt(slog.LevelDebug, "write failed, closing connection", slog.Any("error", err))
		// Shutting the read side ends the reader (goroutine or poller, which reads EOF), and it
		// delivers Close; closing the socket here would leave a poller unaware.
		c.tcp().CloseRead()
		return false, false
	}
	drained = c.q.Drained() && c.state.Load() == stateOpen
	if c.q.Unwritten() || c.tc != nil && c.tlsSocket().w.HasLeft() {
		c.wmu.Unlock()
		if inWriter {
			return true, drained
		}
		go c.writer() // the queue stays Writing: the writer goroutine owns out now
		return false, drained
	}
	switch c.q.Settle(inWriter) {
	case writeq.TookMore:
		c.wmu.Unlock()
		return true, drained
	case writeq.Rescheduled:
		// More arrived during the write: back to the end of the flusher's list.
		c.wmu.Unlock()
		c.b.flusherFor(c).Add(c)
		return false, drained
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
	return false, drained
}
