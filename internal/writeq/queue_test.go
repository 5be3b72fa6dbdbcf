package writeq

import (
	"bytes"
	"testing"

	"github.com/gobwas/ws"
	"github.com/wsbroker/wsbroker/internal/wsproto"
)

// contents is what q would write, out first.
func contents(q *Queue) []byte {
	return append(bytes.Join(q.out, nil), bytes.Join(q.queue, nil)...)
}

func TestQueueAccounting(t *testing.T) {
	var q Queue
	shared := []byte("shared frame")
	q.Append(shared)
	if got, want := q.Queued(), len(shared)+FrameOverhead; got != want {
		t.Fatalf("queued %d, want %d", got, want)
	}
	small := []byte("hi")
	q.AppendMessage(ws.OpText, small)
	want := len(shared) + wsproto.FrameLen(len(small)) + 2*FrameOverhead
	if q.Queued() != want || len(q.queue) != 2 || q.HoldsBuffer() {
		t.Fatalf("queued %d (want %d), %d entries, own buffer %v: a small frame is allocated on its own", q.Queued(), want, len(q.queue), q.HoldsBuffer())
	}
	if !bytes.Equal(q.Last(), wsproto.EncodeFrame(ws.OpText, small)) {
		t.Fatalf("last entry %q", q.Last())
	}
}

func TestQueueOwnBuffer(t *testing.T) {
	var q Queue
	msg := bytes.Repeat([]byte{'x'}, OwnFrameMin-4) // a frame of OwnFrameMin: two fill the smallest buffer
	q.AppendMessage(ws.OpBinary, msg)
	q.AppendMessage(ws.OpBinary, msg) // joins the first in the own buffer: one entry
	if len(q.queue) != 1 || !q.HoldsBuffer() {
		t.Fatalf("%d entries, own buffer %v: want both frames in one own buffer", len(q.queue), q.HoldsBuffer())
	}
	f := wsproto.EncodeFrame(ws.OpBinary, msg)
	if want := 2*len(f) + FrameOverhead; q.Queued() != want {
		t.Fatalf("queued %d, want %d: one entry's overhead", q.Queued(), want)
	}
	q.Append([]byte("shared")) // a frame behind the own buffer: the next message cannot join it
	q.AppendMessage(ws.OpBinary, msg)
	if len(q.queue) != 3 || !bytes.Equal(contents(&q), bytes.Join([][]byte{f, f, []byte("shared"), f}, nil)) {
		t.Fatalf("%d entries, contents out of order", len(q.queue))
	}
	if !q.Schedule() || !q.Take() {
		t.Fatal("a queue with frames is not taken")
	}
	n := len(contents(&q))
	q.consume(n)
	q.Wrote(n, 3)
	if q.Unwritten() || q.Settle(false) != Done || q.HoldsBuffer() || q.Queued() != 0 {
		t.Fatalf("written out: unwritten %v, buffer kept %v, queued %d", q.Unwritten(), q.HoldsBuffer(), q.Queued())
	}
	big := bytes.Repeat([]byte{'y'}, OwnFrameMax)
	q.AppendMessage(ws.OpBinary, big)
	if q.HoldsBuffer() {
		t.Fatal("a frame over OwnFrameMax went into an own buffer")
	}
}

func TestQueueScheduleTakeSettle(t *testing.T) {
	var q Queue
	if q.Schedule() {
		t.Fatal("an empty queue was scheduled")
	}
	q.Append([]byte("one"))
	if !q.Schedule() || q.Schedule() || !q.Scheduled() {
		t.Fatal("want one Schedule to succeed")
	}
	if !q.Take() || q.Scheduled() || !q.Writing() || len(q.queue) != 0 {
		t.Fatal("Take: want out owned, nothing waiting")
	}
	q.Append([]byte("two"))
	if q.Schedule() || q.Take() {
		t.Fatal("a queue being written was scheduled or taken again")
	}
	q.consume(3)
	q.Wrote(3, 1)
	if q.Settle(false) != Rescheduled || q.Writing() || !q.Scheduled() {
		t.Fatal("a flusher's turn with frames queued meanwhile: want rescheduled")
	}
	if !q.Take() {
		t.Fatal("not taken after Rescheduled")
	}
	q.Append([]byte("three"))
	q.consume(3)
	q.Wrote(3, 1)
	if q.Settle(true) != TookMore || !q.Writing() || !bytes.Equal(contents(&q), []byte("three")) {
		t.Fatal("a writer goroutine's turn with frames queued meanwhile: want them taken")
	}
	q.consume(5)
	q.Wrote(5, 1)
	if q.Settle(true) != Done || q.Writing() || q.Queued() != 0 {
		t.Fatalf("want done, queued %d", q.Queued())
	}
}

func TestQueueConsumePartial(t *testing.T) {
	var q Queue
	for _, f := range []string{"abc", "defg", "hi"} {
		q.Append([]byte(f))
	}
	q.Take()
	if frames := q.consume(5); frames != 1 || !q.outPartial || string(bytes.Join(q.out, nil)) != "fghi" {
		t.Fatalf("consume 5: %d frames, partial %v, left %q", frames, q.outPartial, bytes.Join(q.out, nil))
	}
	if frames := q.consume(2); frames != 1 || q.outPartial || string(bytes.Join(q.out, nil)) != "hi" {
		t.Fatalf("consume 2 more: %d frames, partial %v, left %q", frames, q.outPartial, bytes.Join(q.out, nil))
	}
}

func TestQueueDropQueuedTrims(t *testing.T) {
	var q Queue
	q.Append([]byte("response"))
	q.Append([]byte("queued"))
	q.DropQueued(1) // nobody writes: nothing to trim
	if q.Trimming() || len(q.queue) != 1 || string(q.Last()) != "response" || q.Queued() != len("response")+FrameOverhead {
		t.Fatalf("drop keeping 1: trimming %v, %d entries, queued %d", q.Trimming(), len(q.queue), q.Queued())
	}
	q.Append([]byte("abcdef"))
	q.Take()
	q.consume(len("response") + 2) // the second frame is begun
	q.Append([]byte("later"))
	q.DropQueued(0)
	q.Append([]byte("close"))
	if !q.Trimming() {
		t.Fatal("a drop while writing does not ask the writer to trim")
	}
	if !q.Wrote(len("response")+2, 1) || q.Trimming() {
		t.Fatal("Wrote did not trim")
	}
	if got := string(contents(&q)); got != "cdefclose" {
		t.Fatalf("after the trim q writes %q, want the rest of the begun frame and the close frame", got)
	}
	if want := len("cdef") + len("close") + 2*FrameOverhead; q.Queued() != want {
		t.Fatalf("queued %d, want %d", q.Queued(), want)
	}
}

func TestQueueDrop(t *testing.T) {
	var q Queue
	q.AppendMessage(ws.OpText, bytes.Repeat([]byte{'z'}, OwnFrameMin))
	q.Take()
	q.AppendMessage(ws.OpText, bytes.Repeat([]byte{'z'}, OwnFrameMin))
	q.Drop() // out belongs to its writer
	if !q.Unwritten() || len(q.queue) != 0 || q.Queued() != 0 {
		t.Fatal("Drop while writing: want out kept, the queue dropped")
	}
	q.Fail()
	if q.Unwritten() || q.Writing() || q.HoldsBuffer() {
		t.Fatal("Fail: want everything dropped and the writer gone")
	}
}

// Over marks a queue that went over its mark; Drained reports it once, when the queue has been
// written out, and not again until Over marks it anew.
func TestQueueHighWaterMark(t *testing.T) {
	var q Queue
	frame := make([]byte, 100-FrameOverhead) // 100 bytes queued each
	q.Append(frame)
	if q.Over(100) || q.Drained() {
		t.Fatal("a queue at its mark is not over it")
	}
	q.Append(frame)
	if !q.Over(100) {
		t.Fatal("200 bytes are over a mark of 100")
	}
	if q.Drained() {
		t.Fatal("drained at 200 bytes")
	}
	q.Take()
	q.Wrote(200, 2)
	if !q.Drained() || q.Drained() {
		t.Fatal("an empty queue, marked, drains once")
	}
	q.Append(frame)
	if q.Over(100) || q.Drained() {
		t.Fatal("unmarked: nothing to report")
	}
}
