// Package writeq is the write side of a connection: a queue of encoded frames per connection
// (Queue), written with one non-blocking writev per socket (Writer), the list of sockets a
// flusher goroutine writes (Flusher), and the non-blocking writes under crypto/tls
// (NonblockingWriter, WriteTLS). It decides nothing about a connection's life: its owner (the
// broker) decides when frames may be queued or written and what a failed write means, under its
// own lock, which guards the Queue too.
package writeq

import (
	"github.com/gobwas/ws"
	"github.com/wsbroker/wsbroker/internal/wsproto"
)

// FrameOverhead is what a queued frame costs beyond its bytes (its slot in the queue and its
// allocation), counted in Queued so that a flood of tiny frames cannot hold many times a limit
// set on the queued bytes.
const FrameOverhead = 32

// maxKeptSlots: larger queue slices are dropped once empty, not kept by idle connections.
const maxKeptSlots = 256

// Queue is one connection's frames on their way to its socket: those waiting (queued) and those
// being written (out). Its owner calls every method under the lock it guards the Queue with,
// with one exception: once Take has made the queued frames out, out belongs to the writer that
// took them (Writer.Write, WriteTLS) until Settle or Fail ends its turn.
//
// A frame is queued by Append (bytes shared, such as a broadcast's) or AppendMessage (encoded
// here), or written at once from its sender's memory by WriteNow. Schedule marks a queue that
// someone must write; Take hands its frames to that writer; Wrote accounts for what the writer
// wrote, and Settle says what comes next.
type Queue struct {
	queue [][]byte // frames waiting for a writer
	out   [][]byte // frames being written (owned by whoever has writing set)
	qbuf  *[]byte  // the queue's own frame buffer (AppendMessage) in queue: its last entry while frames can be added
	obuf  *[]byte  // the own frame buffer in out, pooled again once out is written
	bytes int      // bytes in queue and out, plus FrameOverhead per frame

	scheduled  bool // someone will Take the queue (a flusher, or whoever the owner named)
	writing    bool // a writer owns out
	outPartial bool // out[0] is partly written (owned with out)
	trim       bool // DropQueued while writing: the writer drops out but for a partly written frame
	over       bool // Over saw more than its mark queued, and Drained has not reported it since
}

// Queued returns the bytes queued and not yet written, with FrameOverhead per frame.
func (q *Queue) Queued() int { return q.bytes }

// Over reports whether more than mark bytes are queued (as Queued counts them), and if so marks q
// until Drained reports it: a high-water mark whose crossing the owner hears of once.
func (q *Queue) Over(mark int) bool {
	if q.bytes <= mark {
		return false
	}
	q.over = true
	return true
}

// Drained reports whether q, marked by Over, has been written out, and unmarks it then: true once
// per crossing of the mark.
func (q *Queue) Drained() bool {
	if !q.over || q.bytes > 0 {
		return false
	}
	q.over = false
	return true
}

// Scheduled reports whether q is scheduled (Schedule) and not taken yet.
func (q *Queue) Scheduled() bool { return q.scheduled }

// Writing reports whether a writer owns q's out (from Take until Settle or Fail ends its turn).
func (q *Queue) Writing() bool { return q.writing }

// Last returns the entry queued last, nil if none waits.
func (q *Queue) Last() []byte {
	if len(q.queue) == 0 {
		return nil
	}
	return q.queue[len(q.queue)-1]
}

// HoldsBuffer reports whether q holds an own frame buffer (AppendMessage); an idle queue holds
// none.
func (q *Queue) HoldsBuffer() bool { return q.qbuf != nil || q.obuf != nil }

// Append queues frame, whose bytes q shares and never modifies.
func (q *Queue) Append(frame []byte) {
	q.queue = append(q.queue, frame)
	q.bytes += len(frame) + FrameOverhead
}

// Own buffers: a frame for one connection only is not allocated on its own but encoded into a
// buffer of the queue's, taken from wsproto.Buffers and given back once written, so that an echo
// allocates no frame per message and gives the GC nothing to do. A queue has at most one in
// queue (qbuf, where frames are added while it is the queue's last entry and has room) and one
// being written (obuf); an idle queue has none.
const (
	// OwnFrameMin is the smallest frame encoded into an own buffer: smaller ones cost little to
	// allocate and would waste most of a buffer.
	OwnFrameMin = 512
	// OwnFrameMax is the largest frame encoded into an own buffer (a 1 MiB payload and its
	// header); larger ones are allocated, as a queue holds its buffer while its client is slow.
	OwnFrameMax = 1<<20 + wsproto.BufferSlack
)

// AppendMessage queues a frame of op carrying data, which is copied: encoded into q's own
// buffer when the frame fits one, else allocated.
func (q *Queue) AppendMessage(op ws.OpCode, data []byte) {
	size := wsproto.FrameLen(len(data))
	var frame []byte
	switch {
	case size < OwnFrameMin || size > OwnFrameMax:
		frame = wsproto.EncodeFrame(op, data)
	case q.qbuf == nil:
		b := wsproto.Buffers.Get(size)
		*b = wsproto.AppendFrame(*b, op, data)
		q.qbuf = b
		frame = *b
	default:
		b, last := q.qbuf, len(q.queue)-1
		if last >= 0 && len(q.queue[last]) == len(*b) && &q.queue[last][0] == &(*b)[0] && cap(*b)-len(*b) >= size {
			*b = wsproto.AppendFrame(*b, op, data)
			q.queue[last] = *b
			q.bytes += size // no new entry: no FrameOverhead
			return
		}
		frame = wsproto.EncodeFrame(op, data) // another frame follows it, or it is full
	}
	q.Append(frame)
}

// giveBackOwn returns *own (qbuf of a dropped queue, obuf of an out written or dropped) to
// wsproto.Buffers, if there is one, and clears it.
func giveBackOwn(own **[]byte) {
	if b := *own; b != nil {
		wsproto.Buffers.Put(b)
		*own = nil
	}
}

// Idle reports whether q has nothing queued and nobody on it: no writer, none scheduled.
func (q *Queue) Idle() bool { return !q.scheduled && !q.writing && len(q.queue) == 0 }

// WriteNow makes a frame of header and payload the out of an Idle q, owned by the caller, who
// writes it at once (Writer.Write) from payload's own memory instead of copying it into q, then
// calls KeepUnwritten before it lets payload go.
func (q *Queue) WriteNow(header, payload []byte) {
	q.out = append(q.out[:0], header, payload)
	q.bytes += len(header) + len(payload) + 2*FrameOverhead
	q.writing = true
}

// KeepUnwritten copies what out still holds of WriteNow's frame into an own buffer of q's, for its
// writer to finish once the payload's memory is gone.
func (q *Queue) KeepUnwritten() {
	if len(q.out) == 0 {
		return
	}
	if len(q.out) == 2 { // the header too: one entry from now on
		q.bytes -= FrameOverhead
	}
	n := 0
	for _, part := range q.out {
		n += len(part)
	}
	b := wsproto.Buffers.Get(n)
	for _, part := range q.out {
		*b = append(*b, part...)
	}
	clear(q.out)
	q.out = append(q.out[:0], *b)
	q.obuf = b
}

// Schedule marks q scheduled and reports whether the caller must hand it to a writer (a
// flusher, or one of the owner's): it has frames and nobody is on it already.
func (q *Queue) Schedule() bool {
	if q.scheduled || q.writing || len(q.queue) == 0 {
		return false
	}
	q.scheduled = true
	return true
}

// Unschedule ends q's scheduling without taking it.
func (q *Queue) Unschedule() { q.scheduled = false }

// Take is a scheduled writer's turn: it ends q's scheduling and, if nobody writes q and frames
// wait, makes them out, owned by the caller from now on, and reports true.
func (q *Queue) Take() bool {
	q.scheduled = false
	if q.writing || len(q.queue) == 0 {
		return false
	}
	q.takeQueue()
	q.writing = true
	return true
}

// takeQueue makes the queue the frames to write; out is empty.
func (q *Queue) takeQueue() {
	giveBackOwn(&q.obuf)
	q.out, q.queue = q.queue, q.out[:0]
	q.obuf, q.qbuf = q.qbuf, nil
}

// Step is what a writer does after Settle.
type Step int

const (
	// Done: nothing waits; the writer let go of q.
	Done Step = iota
	// TookMore: the writer goroutine took the frames queued meanwhile: write out again.
	TookMore
	// Rescheduled: frames were queued meanwhile; the flusher let go of q and scheduled it
	// again: hand it to a flusher.
	Rescheduled
)

// Wrote accounts for a write of n bytes that completed frames frames of out and, if DropQueued
// asked for it meanwhile, drops out but for the rest of a partly written frame, which must be
// finished before anything else can follow. It reports whether it trimmed. The caller is the
// writer that owns out.
func (q *Queue) Wrote(n, frames int) (trimmed bool) {
	q.bytes = max(q.bytes-n-frames*FrameOverhead, 0)
	if !q.trim {
		return false
	}
	q.trim = false
	keep := 0
	if q.outPartial && len(q.out) > 0 {
		keep = 1
	}
	out := make([][]byte, keep, keep+1)
	copy(out, q.out[:keep])
	clear(q.out)
	q.out = out
	q.obuf = nil // the kept rest may be in it: the GC takes it
	q.bytes = 0
	for _, f := range q.out {
		q.bytes += len(f) + FrameOverhead
	}
	for _, f := range q.queue {
		q.bytes += len(f) + FrameOverhead
	}
	return true
}

// Unwritten reports whether out still holds bytes (the socket was full): its writer writes on,
// waiting for the socket.
func (q *Queue) Unwritten() bool { return len(q.out) > 0 }

// Settle is the step of the writer that owns out once out is written. inWriter: the caller is
// a writer goroutine, which takes what was queued meanwhile itself; else a flusher's turn, which
// lets go of q and schedules it again.
func (q *Queue) Settle(inWriter bool) Step {
	giveBackOwn(&q.obuf)
	if len(q.queue) > 0 {
		if inWriter {
			q.takeQueue()
			return TookMore
		}
		q.writing = false
		q.scheduled = true
		return Rescheduled
	}
	q.writing = false
	if cap(q.out) > maxKeptSlots {
		q.out = nil
	}
	if cap(q.queue) > maxKeptSlots {
		q.queue = nil
	}
	return Done
}

// DropQueued drops the frames waiting in q but for the first keep, and has whoever writes q
// keep only the rest of a frame it has begun (Wrote).
func (q *Queue) DropQueued(keep int) {
	keep = min(keep, len(q.queue))
	for _, f := range q.queue[keep:] {
		q.bytes -= len(f) + FrameOverhead
	}
	kept := make([][]byte, keep, keep+1)
	copy(kept, q.queue[:keep])
	clear(q.queue)
	q.queue = kept
	giveBackOwn(&q.qbuf) // what is kept must not be in it: the caller keeps only frames Appended before any message
	if q.writing {
		q.trim = true
	}
}

// Trimming reports whether DropQueued asked the writer to trim out and it has not yet.
func (q *Queue) Trimming() bool { return q.trim }

// Drop forgets everything queued; out too unless a writer owns it.
func (q *Queue) Drop() {
	clear(q.queue)
	q.queue = nil
	giveBackOwn(&q.qbuf)
	if !q.writing {
		clear(q.out)
		q.out = nil
		q.outPartial = false
		giveBackOwn(&q.obuf)
	}
	q.bytes = 0
}

// Fail is a writer's end after a failed write: it lets go of q and drops everything.
func (q *Queue) Fail() {
	q.writing = false
	q.Drop()
}

// consume removes n written bytes from the front of out and returns how many frames it
// completed.
func (q *Queue) consume(n int) int {
	i := 0
	cut := false
	for n > 0 && i < len(q.out) {
		if n >= len(q.out[i]) {
			n -= len(q.out[i])
			i++
			continue
		}
		q.out[i] = q.out[i][n:]
		n = 0
		cut = true
	}
	if i > 0 || cut {
		q.outPartial = cut
	}
	if i > 0 {
		k := copy(q.out, q.out[i:])
		clear(q.out[k:])
		q.out = q.out[:k]
	}
	return i
}
