package broker

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/coder/websocket"
)

// logRelay is a Relay that owns the ids with slot 7 (id>>32) and writes down every call.
type logRelay struct {
	mu    sync.Mutex
	seq   uint64
	calls []string
}

const logRelaySlot = 7

func (r *logRelay) log(format string, args ...any) {
	r.mu.Lock()
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// take returns the calls written down since the last take.
func (r *logRelay) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

func (r *logRelay) NewID() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	return logRelaySlot<<32 | r.seq
}
func (r *logRelay) Local(id uint64) bool { return id>>32 == logRelaySlot || id>>32 == 0 }
func (r *logRelay) Interest(channel string, present bool) {
	r.log("interest %s %v", channel, present)
}
func (r *logRelay) Published(channel, data []byte, text bool, except uint64) {
	r.log("published %s %s %v %d", channel, data, text, except)
}
func (r *logRelay) Send(id uint64, data []byte, text bool) { r.log("send %d %s %v", id, data, text) }
func (r *logRelay) Flush()                                 { r.log("flush") }
func (r *logRelay) CloseSocket(id uint64, code uint16, reason []byte) {
	r.log("close %d %d %s", id, code, reason)
}
func (r *logRelay) SetToken(id uint64, token []byte)      { r.log("token %d %q", id, token) }
func (r *logRelay) Subscribe(id uint64, channel []byte)   { r.log("subscribe %d %s", id, channel) }
func (r *logRelay) Unsubscribe(id uint64, channel []byte) { r.log("unsubscribe %d %s", id, channel) }
func (r *logRelay) CopySubscriptions(from, to []byte)     { r.log("copy %s %s", from, to) }

func expectCalls(t *testing.T, r *logRelay, want ...string) {
	t.Helper()
	if got := r.take(); !slices.Equal(got, want) {
		t.Fatalf("relay calls\n got %q\nwant %q", got, want)
	}
}

// The Broker asks the Relay for ids, tells it of interest and publications, hands it the ids of
// other nodes, and never passes on what DeliverToChannel and CopyLocalSubscriptions bring in.
func TestRelay(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, DefaultLimits())
	before := dial(t, addr, "/", nil)
	early := await(t, rec.opens, "open before the relay").id
	b.Subscribe(early, []byte("old"))

	r := &logRelay{}
	b.SetRelay(r)
	expectCalls(t, r, "interest old true")

	c := dial(t, addr, "/", nil)
	id := await(t, rec.opens, "open").id
	if id != logRelaySlot<<32|1 {
		t.Fatalf("id %d, want the relay's %d", id, uint64(logRelaySlot<<32|1))
	}
	if !b.Subscribe(id, []byte("room")) || b.Subscribe(id, []byte("room")) {
		t.Fatal("subscribe of a local socket: want true, then false")
	}
	b.Subscribe(early, []byte("room"))
	expectCalls(t, r, "interest room true")

	b.SendToChannel([]byte("room"), []byte("hi"), true, 0)
	readText(t, c, "hi")
	readText(t, before, "hi")
	expectCalls(t, r, "published room hi true 0", "flush")

	b.DeliverToChannel([]byte("room"), []byte("from afar"), true, early)
	readText(t, c, "from afar")
	b.CopyLocalSubscriptions([]byte("room"), []byte("copy"))
	expectCalls(t, r, "interest copy true")
	b.CopySubscriptions([]byte("room"), []byte("copy2"))
	expectCalls(t, r, "interest copy2 true", "copy room copy2", "flush")

	other := uint64(9<<32 | 5)
	b.Send(other, []byte("x"), false)
	if closed, err := b.CloseSocket(other, 4000, []byte("bye")); !closed || err != nil {
		t.Fatalf("close of another node's socket: %v %v, want true (requested)", closed, err)
	}
	if _, err := b.CloseSocket(other, 1001, nil); err == nil {
		t.Fatal("an invalid code for another node's socket: want the error here")
	}
	b.SetToken(other, []byte("t"))
	if b.Subscribe(other, []byte("room")) || b.Unsubscribe(other, []byte("room")) {
		t.Fatal("subscribe/unsubscribe of another node's socket: want false (not known here)")
	}
	if len(b.Subscriptions(other)) != 0 {
		t.Fatal("subscriptions of another node's socket: want none")
	}
	expectCalls(t, r, "send 38654705669 x false", "flush", `close 38654705669 4000 bye`, "flush", `token 38654705669 "t"`, "flush",
		"subscribe 38654705669 room", "flush", "unsubscribe 38654705669 room", "flush")

	// A Cork's publications and sends to other nodes are let go together, at its Flush, before
	// its own sockets are written.
	k := b.NewCork()
	k.SendToChannel([]byte("room"), []byte("one"), true, 0)
	k.Send(other, []byte("two"), true)
	k.SendToChannel([]byte("room"), []byte("three"), true, 0)
	expectCalls(t, r, "published room one true 0", "send 38654705669 two true", "published room three true 0")
	k.Flush()
	expectCalls(t, r, "flush")
	for _, sub := range []*websocket.Conn{c, before} {
		readText(t, sub, "one")
		readText(t, sub, "three")
	}
	k.Flush()
	k.DeliverToChannel([]byte("room"), []byte("four"), true, 0)
	k.FlushLater()
	readText(t, c, "four")
	readText(t, before, "four")
	expectCalls(t, r)
	k.Send(other, []byte("five"), false)
	k.FlushLater()
	expectCalls(t, r, "send 38654705669 five false", "flush")

	// Unknown local ids stay no-ops.
	b.Send(logRelaySlot<<32|99, []byte("x"), true)
	b.Send(12345, []byte("x"), true)
	expectCalls(t, r)

	// The last subscribers leaving: unsubscribe, and a socket's end.
	b.Unsubscribe(early, []byte("old"))
	expectCalls(t, r, "interest old false")
	b.Unsubscribe(early, []byte("copy"))
	b.Unsubscribe(early, []byte("copy2"))
	expectCalls(t, r)
	c.Close(websocket.StatusNormalClosure, "")
	await(t, rec.closes, "close")
	got := r.take()
	slices.Sort(got)
	if want := []string{"interest copy false", "interest copy2 false"}; !slices.Equal(got, want) {
		t.Fatalf("relay calls at the socket's end\n got %q\nwant %q", got, want)
	}

	b.SetRelay(nil)
	b.SendToChannel([]byte("room"), []byte("alone"), true, 0)
	readText(t, before, "alone")
	expectCalls(t, r)
}
