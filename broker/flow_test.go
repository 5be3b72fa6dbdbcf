package broker

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
)

// drainRecorder is a recorder that is a DrainHandler too: it records each Drain's socket and the
// bytes queued for it during the call.
type drainRecorder struct {
	*recorder
	drains chan drained
}

type drained struct {
	id     uint64
	queued int
}

func (r drainRecorder) Drain(c *Conn) { r.drains <- drained{c.ID(), c.queued()} }

func newDrainRecorder() drainRecorder {
	return drainRecorder{recorder: newRecorder(), drains: make(chan drained, 100)}
}

// awaitDrain waits for Drain of socket id and returns the bytes queued for it then.
func awaitDrain(t *testing.T, drains chan drained, id uint64) int {
	t.Helper()
	d := await(t, drains, fmt.Sprintf("Drain for socket %d", id))
	if d.id != id {
		t.Fatalf("Drain for socket %d, want %d", d.id, id)
	}
	return d.queued
}

// numbered is a binary message of size bytes that starts with n.
func numbered(n uint32, size int) []byte {
	p := make([]byte, size)
	binary.BigEndian.PutUint32(p, n)
	return p
}

// readNumbered reads count binary messages from r, numbered from first on, and fails on a gap.
func readNumbered(t *testing.T, r *rawClient, first, count uint32) {
	t.Helper()
	for want := first; want < first+count; want++ {
		h, p := r.readFrame()
		if h.OpCode != ws.OpBinary || binary.BigEndian.Uint32(p) != want {
			t.Fatalf("got %v %x…, want binary message %d", h.OpCode, p[:min(len(p), 4)], want)
		}
	}
}

// slowClient starts a Broker with BackpressureThreshold threshold and a client that reads nothing
// until the test reads from it.
func slowClient(t *testing.T, threshold int) (*Broker, drainRecorder, *rawClient, uint64) {
	t.Helper()
	rec := newDrainRecorder()
	b, addr := startHandler(t, rec, rec.recorder, Limits{BackpressureThreshold: threshold})
	slow := rawDial(t, addr, nil)
	return b, rec, slow, await(t, rec.opens, "open").id
}

// A client that stops reading: Send reports false once the queue is over BackpressureThreshold
// (through a Cork, so that nothing is written meanwhile), BufferedAmount shows the queue, and once
// the client reads, Drain comes with nothing queued; nothing is lost, and the
// socket stays open.
func TestSendReportsBackpressureUntilDrain(t *testing.T) {
	const threshold = 64 << 10
	b, rec, slow, id := slowClient(t, threshold)
	if n := b.BufferedAmount(id + 1000); n != 0 {
		t.Fatalf("BufferedAmount of an unknown id: %d", n)
	}
	k := b.NewCork()
	var sent uint32
	for room := true; room; sent++ {
		room = k.Send(id, numbered(sent, 16<<10), false)
		if n := b.BufferedAmount(id); room == (n > threshold) {
			t.Fatalf("Send reported %t with %d bytes queued, threshold %d", room, n, threshold)
		}
	}
	k.Flush()
	readNumbered(t, slow, 0, sent)
	if n := awaitDrain(t, rec.drains, id); n != 0 {
		t.Fatalf("%d bytes queued at Drain, want 0", n)
	}
	if !b.Send(id, numbered(sent, 16), false) {
		t.Fatal("Send reported false after Drain")
	}
	readNumbered(t, slow, sent, 1)
	if n := rec.closesOf(id); n != 0 {
		t.Fatalf("%d Close events", n)
	}
}

// A broadcast that takes a subscriber over the threshold leads to Drain for it too.
func TestBroadcastOverThresholdDrains(t *testing.T) {
	const threshold = 64 << 10
	b, rec, slow, id := slowClient(t, threshold)
	b.Subscribe(id, []byte("room"))
	k := b.NewCork()
	var sent uint32
	for ; b.BufferedAmount(id) <= threshold; sent++ {
		k.SendToChannel([]byte("room"), numbered(sent, 16<<10), false, 0)
	}
	k.Flush()
	readNumbered(t, slow, 0, sent)
	awaitDrain(t, rec.drains, id)
}

func TestBackpressureThresholdLimits(t *testing.T) {
	for _, c := range []struct {
		lim  Limits
		want int
	}{
		{Limits{}, 1 << 20},
		{Limits{MaxBackpressure: 256 << 10}, 128 << 10},
		{Limits{MaxBackpressure: 1}, 1},
		{Limits{MaxBackpressure: 256 << 10, BackpressureThreshold: 256 << 10}, 256 << 10},
	} {
		r, err := c.lim.resolve()
		if err != nil || r.BackpressureThreshold != c.want {
			t.Fatalf("%+v resolves to BackpressureThreshold %d (%v), want %d", c.lim, r.BackpressureThreshold, err, c.want)
		}
	}
	_, err := Limits{MaxBackpressure: 256 << 10, BackpressureThreshold: 256<<10 + 1}.resolve()
	if err == nil || !strings.Contains(err.Error(), "BackpressureThreshold (262145) must not exceed MaxBackpressure (262144)") {
		t.Fatalf("a threshold over MaxBackpressure: %v", err)
	}
	if _, err := (Limits{BackpressureThreshold: -1}).resolve(); err == nil || !strings.Contains(err.Error(), "BackpressureThreshold must not be negative") {
		t.Fatalf("a negative threshold: %v", err)
	}
}

// A large message sent to an idle socket is written at once from the sender's memory (writeNow);
// what the socket does not take is copied before Send returns, so the sender may reuse its buffer
// at once. Backpressure, BufferedAmount, Drain and the order of the sends that follow are as for
// any message.
func TestLargeSendLeavesTheSendersBufferFree(t *testing.T) {
	const threshold = 64 << 10
	b, rec, slow, id := slowClient(t, threshold)
	big := make([]byte, 8<<20) // more than a socket that nobody reads takes
	for i := range big {
		big[i] = byte(i * 7)
	}
	want := bytes.Clone(big)
	if b.Send(id, big, false) {
		t.Fatalf("Send reported room with %d bytes queued, threshold %d", b.BufferedAmount(id), threshold)
	}
	if n := b.BufferedAmount(id); n <= threshold || n > len(big)+32 {
		t.Fatalf("%d bytes queued after an 8 MiB send to a client that reads nothing", n)
	}
	clear(big) // the sender's buffer, reused
	b.Send(id, numbered(1, 16), false)
	if h, p := slow.readFrame(); h.OpCode != ws.OpBinary || !bytes.Equal(p, want) {
		t.Fatalf("got %v, %d bytes, not the 8 MiB sent", h.OpCode, len(p))
	}
	readNumbered(t, slow, 1, 1)
	if n := awaitDrain(t, rec.drains, id); n != 0 {
		t.Fatalf("%d bytes queued at Drain, want 0", n)
	}
}

// partsRecorder is a recorder that takes messages in parts (an embedder.PartsHandler, as the Node
// bridge is): it records a copy of each such message's parts and whether it was text.
type partsRecorder struct {
	*recorder
	parts chan [][]byte
}

func (r partsRecorder) MessageParts(c *Conn, text bool, parts [][]byte) {
	got := [][]byte{[]byte(fmt.Sprint(text))}
	for _, part := range parts {
		got = append(got, bytes.Clone(part))
	}
	r.parts <- got
}

// A Handler that takes messages in parts gets a large message in the buffers it was read into,
// not joined (the bridge copies them into JS memory itself), and a message that fits one buffer
// as a Text or Binary call.
func TestMessageInPartsForAPartsHandler(t *testing.T) {
	rec := partsRecorder{recorder: newRecorder(), parts: make(chan [][]byte, 4)}
	_, addr := startHandler(t, rec, rec.recorder, Limits{})
	c, _ := dialOpen(t, rec.recorder, addr)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20/16)
	write(t, c, websocket.MessageBinary, big)
	got := await(t, rec.parts, "the 1 MiB message in parts")
	if string(got[0]) != "false" || len(got) < 3 || !bytes.Equal(bytes.Join(got[1:], nil), big) {
		t.Fatalf("text %s, %d parts, not the 1 MiB sent in several", got[0], len(got)-1)
	}
	write(t, c, websocket.MessageText, []byte("small"))
	if e := await(t, rec.msgs, "the small message"); string(e.data) != "small" {
		t.Fatalf("got %q", e.data)
	}
}
