package broker

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/wsbroker/wsbroker/internal/wstest"
)

// lateEchoer is a CatchUpHandler that, like the bridge, handles messages later: it keeps them
// until CatchUp, then, on a goroutine of its own, echoes them and answers with CaughtUp (unless
// silent). So an echo can only come before the close frame if the close waits for CaughtUp.
type lateEchoer struct {
	*recorder
	silent   bool
	catchUps chan event

	mu   sync.Mutex
	kept map[uint64][][]byte
}

func newLateEchoer() *lateEchoer {
	return &lateEchoer{recorder: newRecorder(), catchUps: make(chan event, 1000), kept: map[uint64][][]byte{}}
}

func (h *lateEchoer) Text(c *Conn, data []byte) {
	h.mu.Lock()
	h.kept[c.ID()] = append(h.kept[c.ID()], bytes.Clone(data))
	h.mu.Unlock()
	h.recorder.Text(c, data)
}

func (h *lateEchoer) CatchUp(c *Conn) {
	id := c.ID()
	h.catchUps <- event{c: c, id: id}
	if h.silent {
		return
	}
	go func() {
		h.mu.Lock()
		msgs := h.kept[id]
		delete(h.kept, id)
		h.mu.Unlock()
		for _, m := range msgs {
			h.b.Send(id, m, true)
		}
		h.b.CaughtUp(id)
	}()
}

// readers are the two ways a connection is read: by a poller, and by a goroutine of its own.
var readers = []struct {
	name      string
	configure []func(*Broker)
}{{"polled", []func(*Broker){polled}}, {"goroutine", []func(*Broker){unpolled}}}

func TestCloseWaitsForTheHandlerToCatchUp(t *testing.T) {
	for _, rd := range readers {
		for _, tc := range []struct {
			name      string
			last      []byte // after two messages, in the same write; then one more message
			close     []byte // the close frame expected after the two echoes
			causeCode uint16
			reason    string
		}{
			{"protocol error", wstest.Frame(0x83, nil), wstest.ClosePayload(1002, ""), 1002, ""},
			{"invalid UTF-8", wstest.Frame(0x81, []byte{0xff}), wstest.ClosePayload(1007, ""), 1007, ""},
			{"close frame", wstest.Frame(0x88, wstest.ClosePayload(4000, "bye")), wstest.ClosePayload(4000, ""), 4000, "bye"},
			{"empty close frame", wstest.Frame(0x88, nil), nil, 1005, ""},
		} {
			t.Run(rd.name+"/"+tc.name, func(t *testing.T) {
				h := newLateEchoer()
				_, addr := startHandler(t, h, h.recorder, Limits{}, rd.configure...)
				for i := range 20 {
					r := rawDial(t, addr, nil)
					e := await(t, h.opens, "open")
					if polled := e.c.poll.Poller() != nil; polled != (rd.name == "polled") {
						t.Fatalf("polled: %v", polled)
					}
					r.send(wstest.Cat(wstest.Frame(0x81, []byte("first")), wstest.Frame(0x81, []byte("second")), tc.last, wstest.Frame(0x81, []byte("after"))))
					for _, want := range []string{"first", "second"} {
						if hd, p := r.readFrame(); hd.OpCode != ws.OpText || string(p) != want {
							t.Fatalf("round %d: got %v %q, want the echo %q before the close", i, hd.OpCode, p, want)
						}
					}
					r.expectClose(tc.close)
					c := await(t, h.closes, "close")
					if c.id != e.id || c.code != tc.causeCode || string(c.reason) != tc.reason {
						t.Fatalf("round %d: Close of %d with %d %q", i, c.id, c.code, c.reason)
					}
					if n := len(h.msgs); n != 2 {
						t.Fatalf("round %d: %d messages reached the handler, want 2 (none after the close or violation)", i, n)
					}
					for range 2 {
						<-h.msgs
					}
				}
			})
		}
	}
}

func TestCloseGoesOutWhenTheHandlerDoesNotCatchUp(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			h := newLateEchoer()
			h.silent = true
			configure := append([]func(*Broker){func(b *Broker) { b.catchUpTimeout = timeout }}, rd.configure...)
			b, addr := startHandler(t, h, h.recorder, Limits{}, configure...)
			r := rawDial(t, addr, nil)
			await(t, h.opens, "open")
			r.send(wstest.Cat(wstest.Frame(0x81, []byte("m")), wstest.Frame(0x83, nil)))
			e := await(t, h.catchUps, "CatchUp")
			asked := time.Now()
			// Until the close frame goes out, what the handler sends still reaches the client.
			b.Send(e.id, []byte("late echo"), true)
			if hd, p := r.readFrame(); hd.OpCode != ws.OpText || string(p) != "late echo" {
				t.Fatalf("got %v %q", hd.OpCode, p)
			}
			r.expectClose(wstest.ClosePayload(1002, ""))
			if waited := time.Since(asked); waited < timeout-20*time.Millisecond {
				t.Fatalf("the close frame came %v after CatchUp, before the %v catch-up timeout", waited, timeout)
			}
			if c := await(t, h.closes, "close"); c.id != e.id || c.code != 1002 {
				t.Fatalf("Close of %d with %d", c.id, c.code)
			}
			b.CaughtUp(e.id) // too late: a no-op
		})
	}
}

// TestBrokerCloseWhileCatchingUp: a close that comes while the close frame waits for the handler
// (here Broker.Close's 1001) goes out at once; the peer's close frame stays the cause.
func TestBrokerCloseWhileCatchingUp(t *testing.T) {
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			h := newLateEchoer()
			h.silent = true
			b, addr := startHandler(t, h, h.recorder, Limits{}, rd.configure...)
			r := rawDial(t, addr, nil)
			await(t, h.opens, "open")
			r.send(wstest.Frame(0x88, wstest.ClosePayload(4000, "bye")))
			e := await(t, h.catchUps, "CatchUp")
			closed := make(chan struct{})
			go func() {
				b.Close()
				close(closed)
			}()
			r.expectClose(wstest.ClosePayload(1001, ""))
			r.expectEOF()
			if c := await(t, h.closes, "close"); c.id != e.id || c.code != 4000 || string(c.reason) != "bye" {
				t.Fatalf("Close of %d with %d %q", c.id, c.code, c.reason)
			}
			select {
			case <-closed:
			case <-time.After(waitTimeout):
				t.Fatal("Broker.Close did not return")
			}
			b.CaughtUp(e.id) // too late: a no-op
		})
	}
}
