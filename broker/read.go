package broker

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/wsbroker/wsbroker/internal/netpoll"
	"github.com/wsbroker/wsbroker/internal/wsproto"
)

// The read side of an accepted connection: what one turn of reading does (read into a pooled
// buffer, parse, the idle ping and close, the drain deadline), on Linux in turns that its poller
// (internal/netpoll) hands to a reader goroutine, TLS connections included (their socket never
// blocks once polled: tlssocket.go); elsewhere, or without epoll, by a goroutine of its own
// (readLoop).

// readBufSize is the size of the pooled read buffers: a turn's budget in one read, so that a large
// message comes in as few system calls as a turn allows.
const readBufSize = turnBudget

// readPool holds read buffers. A connection holds one only while its socket has data to read.
var readPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// pollers returns the broker's pollers, started on first use; nil without epoll (connections
// then keep a reader goroutine each).
func (b *Broker) pollers() *netpoll.Set[*Conn] {
	b.pollOnce.Do(func() {
		if !netpoll.Supported {
			return
		}
		s, err := netpoll.NewSet(runtime.GOMAXPROCS(0), netpoll.Config[*Conn]{
			Entry:        func(c *Conn) *netpoll.Entry[*Conn] { return &c.poll },
			Turn:         (*Conn).pollTurn,
			Writable:     (*Conn).writable,
			Clock:        b.clock,
			ReaderLinger: b.readerLinger,
			Logger:       b.log,
		})
		if err != nil {
			b.logAt(slog.LevelWarn, "epoll unavailable; one reader goroutine per connection", slog.Any("error", err))
			return
		}
		b.polls = s
	})
	return b.polls
}

// start has an accepted connection read from now on: by its poller, or by a goroutine of its own.
func (c *Conn) start() {
	if p := c.poll.Poller(); p != nil {
		if c.tc != nil {
			c.tlsSocket().polled = true // before any write: the flushers write c from now on
		}
		c.startPolled(p, false)
		return
	}
	go c.readToEnd()
}

const (
	turnBudget = 64 << 10 // bytes one turn reads before the connection goes to the back of the queue
	// turnMessageBudget: a turn reads on past turnBudget while a message is in progress, up to
	// this, so that a message a little over the budget costs no hand-over to another goroutine
	// (from a JS thread that reads its own sockets: to a reader, then back through the event loop).
	turnMessageBudget = 1 << 20
	// turnRecheck: after a short read whose handling took this long, more input has likely come
	// meanwhile (a peer streaming while a broadcast was queued): it is read in the same turn.
	turnRecheck = 20 * time.Microsecond
)

// detach takes c's socket out of Go's netpoller (rawSocket) before it goes on its poller, where
// the embedder's threads read the pollers (embedder.Hooks.Route): else the netpoller would wake a
// thread of Go's for every input that such a thread reads. Not while a write is in progress (a
// write uses rc without the lock) or once c is ending.
func (c *Conn) detach() {
	if c.b.route.Load() == nil {
		return
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.q.Writing() || c.state.Load() != stateOpen {
		return
	}
	raw, err := detachSocket(c, c.nc, c.rc)
	if err != nil {
		c.logAt(slog.LevelDebug, "socket left in Go's netpoller", slog.Any("error", err))
		return
	}
	c.rc = raw
}

// writable is c's poller's report of room in its socket (netpoll.Poller.ReportRoom).
func (c *Conn) writable() {
	if r, ok := c.rc.(*rawSocket); ok {
		r.writable()
	}
}

// startPolled is the rest of an accepted connection's life on its poller p: it handles what came
// with the request and adds c to p; from then on p's readers serve it. Unless mayCall, it runs
// where Handler calls must not be made (Accept's caller, which may be the thread they would wait
// for): what needs them, and c's first turn if input came, goes to a goroutine. A TLS connection
// always has a first turn: crypto/tls may hold input that came with the request, which raises no
// event.
func (c *Conn) startPolled(p *netpoll.Poller[*Conn], mayCall bool) {
	if !mayCall && (len(c.pre) > 0 || c.state.Load().ending() || c.tc != nil) {
		go c.startPolled(p, true)
		return
	}
	c.lastIn = c.b.clock()
	c.draining = c.processPre()
	// c's wake-ups: its idle timeout, drain deadline and catch-up deadline.
	shortest := min(c.b.drainTimeout, c.b.catchUpTimeout)
	if idle := c.l.lim.IdleTimeout; idle > 0 {
		shortest = min(shortest, idle)
	}
	if c.tc == nil {
		c.detach()
	}
	if err := p.Add(c, c.rc, shortest); err != nil {
		c.logAt(slog.LevelWarn, "cannot register with epoll; closing", slog.Any("error", err))
		if mayCall {
			c.end()
		} else {
			go c.end()
		}
		return
	}
	// No first read: input that came after the request raised an event when c was added (the
	// kernel reports what is already there), so the read would only say EAGAIN. One system call
	// of the twenty a connection's life takes. If input came meanwhile, Release fails: read it now.
	if c.tc == nil && !c.draining && c.settle(0, false) == netpoll.Drained && c.poll.Release() {
		return
	}
	if mayCall {
		p.Serve(c, false)
	} else {
		p.Dispatch(c)
	}
}

// pollTurn is c's turn on its poller (netpoll.Config.Turn), run by the goroutine that holds c;
// here: by DispatchReady's caller, whose Handler calls must not wait (mayBlock).
func (c *Conn) pollTurn(here bool) (res netpoll.Result) {
	c.here = here
	s := readStates.Get().(*readState)
	defer func() {
		s.into = nil // no hold on the message buffer
		readStates.Put(s)
		if r := recover(); r != nil {
			c.b.connDone(c, r) // a bug in the broker: end the connection, keep the process
			res = netpoll.Ended
		}
	}()
	if res = c.turn(s); res == netpoll.Ended {
		c.end()
	}
	return res
}

// end ends an accepted connection whose reader (the goroutine holding it) saw its end.
func (c *Conn) end() {
	c.finish()
	c.b.connDone(c, nil)
}

// readState is a reader's scratch space: the read buffer and the read callback, created once so
// that a read allocates nothing. An idle connection holds none.
type readState struct {
	buf  []byte
	into []byte // where the next read goes: buf, or the parser's Spare room
	n    int
	err  error
	fn   func(fd uintptr) bool
}

var readStates = sync.Pool{New: func() any {
	s := &readState{buf: make([]byte, readBufSize)}
	s.fn = s.read
	return s
}}

func (s *readState) read(fd uintptr) bool {
	s.n, s.err = recv(fd, s.into)
	return true // never wait: the poller does
}

// readTLSNow reads what c's TLS layer has now into s.into, setting s.n and s.err as read does.
func (s *readState) readTLSNow(c *Conn) {
	n, err := c.tc.Read(s.into)
	s.n, s.err = n, nil
	switch {
	case errors.Is(err, errWouldBlock):
		s.err = syscall.EAGAIN
	case errors.Is(err, io.EOF) && n > 0:
		// The data first; the next read returns the end again.
	case errors.Is(err, io.EOF):
		s.n = 0
	case err != nil:
		s.err = err
	}
}

// turn reads c until it is drained (at most turnBudget bytes, or turnMessageBudget to finish a
// message), then sees to its timers: the polled form of readLoop.
//
// A read that does not fill the buffer emptied the socket's receive queue, so the turn ends there
// without the read that would only say EAGAIN (a third of the system calls of an echo): with
// edge-triggered epoll, every segment that arrives after it raises a new event. Two exceptions:
//   - an end of input that had already arrived when the event was reported raises no event after
//     it, so after an event with PeerDone the turn reads until EAGAIN or the end;
//   - when handling the read took turnRecheck or more, the turn reads again: what came meanwhile
//     is cheaper to read now than through its event, and the writes it causes coalesce with this
//     turn's (fan-out: without it, half as many messages per write).
func (c *Conn) turn(s *readState) netpoll.Result {
	sink := c.sink()
	got := 0
	for {
		if got >= turnBudget && (got >= turnMessageBudget || c.draining || !c.parser.InMessage()) {
			return c.settle(got, true) // to the back of the queue: others' turns first
		}
		// The payload of a large message is read where it is reassembled, not copied there.
		var room []byte
		if !c.draining {
			room = c.parser.Spare(len(s.buf))
		}
		inPlace := room != nil
		s.into = s.buf
		if inPlace {
			s.into = room
		}
		if c.tc != nil {
			s.readTLSNow(c)
		} else if err := c.rc.Read(s.fn); err != nil {
			c.logAt(slog.LevelDebug, "read ended", slog.Any("error", err))
			return netpoll.Ended
		}
		if s.err == syscall.EAGAIN {
			break
		}
		if s.err != nil {
			c.logAt(slog.LevelDebug, "read failed", slog.Any("error", s.err))
			return netpoll.Ended
		}
		if s.n == 0 {
			return netpoll.Ended // EOF
		}
		got += s.n
		// (crypto/tls returns a record at a time, so a short TLS read says nothing.)
		short := c.tc == nil && s.n < len(s.into) && !c.poll.PeerDone()
		if !c.draining {
			start := c.b.clock()
			if inPlace {
				c.draining = c.processed(c.parser.FeedSpare(s.n, sink))
			} else {
				c.draining = c.process(s.buf[:s.n], sink)
			}
			short = short && c.b.clock()-start < turnRecheck
		}
		if short {
			break
		}
	}
	return c.settle(got, false)
}

// settle sees to c's timers at the end of a turn that read got bytes and, with more, stopped at
// its budget: it sets c's next wake-up.
// Only time waiting for input counts as idle: the clock restarts when a turn that read something
// ends, after its Handler calls.
func (c *Conn) settle(got int, more bool) netpoll.Result {
	if !c.draining && c.state.Load().ending() {
		c.draining = true
	}
	idle := c.l.lim.IdleTimeout
	if !c.draining && idle == 0 {
		return turnResult(more)
	}
	now := c.b.clock()
	if c.draining {
		at, passed := c.drainPassed(now) // set with stateClosing (a polled connection is accepted), or by closeAfterCatchUp
		if passed {
			c.logAt(slog.LevelDebug, "drain deadline passed")
			return netpoll.Ended
		}
		c.poll.SetWakeAt(at)
		return turnResult(more)
	}
	switch {
	case got > 0:
		c.lastIn, c.pinged = now, false
	case now-c.lastIn >= idle:
		c.lastIn = now // the ping's wait for an answer starts now
		c.idleTimedOut()
	}
	c.poll.SetWakeAt(c.lastIn + idle)
	return turnResult(more)
}

// turnResult is the result of a turn that did not end the connection and, with more, stopped at
// its budget (else the socket was drained).
func turnResult(more bool) netpoll.Result {
	if more {
		return netpoll.Requeue
	}
	return netpoll.Drained
}

// readToEnd is the reader goroutine of an accepted connection that no poller reads.
func (c *Conn) readToEnd() {
	defer func() { c.b.connDone(c, recover()) }()
	c.readLoop()
	c.finish()
}

// readLoop reads and parses frames until the connection ends. The read buffer comes from readPool
// and goes back whenever the socket has nothing more to read (see readTLS for TLS).
func (c *Conn) readLoop() {
	var (
		bufp *[]byte
		n    int
		rerr error
	)
	read := func(fd uintptr) bool {
		if bufp == nil {
			bufp = readPool.Get().(*[]byte)
		}
		n, rerr = recv(fd, *bufp)
		if rerr == syscall.EAGAIN {
			readPool.Put(bufp)
			bufp = nil
			return false // the netpoller waits; no buffer is held meanwhile
		}
		return true
	}
	defer func() {
		if bufp != nil {
			readPool.Put(bufp)
		}
	}()

	sink := c.sink()
	idle := c.l.lim.IdleTimeout
	c.draining = c.processPre()
	for {
		if !c.draining {
			if c.state.Load().ending() {
				c.draining = true // closeWith set the drain deadline
			} else if idle > 0 {
				// Set before every wait for input, so that only that wait counts as idle time,
				// never the time spent in a Handler call (which may block on purpose).
				c.nc.SetReadDeadline(time.Now().Add(idle))
				if c.state.Load().ending() {
					// closeWith ran meanwhile and its drain deadline may have been overwritten.
					c.draining = true
					c.wmu.Lock()
					at := c.drainAt
					c.wmu.Unlock()
					if at == 0 {
						at = c.b.clock() + c.b.drainTimeout
					}
					c.nc.SetReadDeadline(c.b.epoch.Add(at))
				}
			}
		}
		var err error
		if c.tc == nil {
			err = c.rc.Read(read)
		} else {
			n, err = c.readTLS(&bufp)
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if !c.draining {
					// Else the drain deadline, or the idle one as closeWith ran: the loop's top decides.
					if !c.state.Load().ending() {
						c.idleTimedOut()
					}
					continue
				}
				if _, passed := c.drainPassed(c.b.clock()); !passed {
					continue // not due yet, or the catch-up's time ran out and its close frame went out
				}
			}
			c.logAt(slog.LevelDebug, "read ended", slog.Any("error", err))
			return
		}
		if rerr != nil {
			c.logAt(slog.LevelDebug, "read failed", slog.Any("error", rerr))
			return
		}
		if n <= 0 {
			return // EOF
		}
		c.pinged = false
		if c.draining {
			continue
		}
		c.draining = c.process((*bufp)[:n], sink)
	}
}

// readTLS is the read of a TLS connection: it waits for input with a one-byte read, so that an
// idle connection holds no read buffer (crypto/tls keeps the rest of the record), then takes a
// buffer from readPool (*bufp, given back at the next call) for that byte and whatever else is
// already there. Its results are those of a plain read: n > 0 with data, n == 0 at the end.
func (c *Conn) readTLS(bufp **[]byte) (int, error) {
	if *bufp != nil {
		readPool.Put(*bufp)
		*bufp = nil
	}
	var first [1]byte
	n, err := c.tc.Read(first[:])
	if n == 0 {
		if errors.Is(err, io.EOF) {
			err = nil
		}
		return 0, err
	}
	*bufp = readPool.Get().(*[]byte)
	buf := **bufp
	buf[0] = first[0]
	k, _ := c.tc.Read(buf[1:]) // an error comes again at the next call: the byte read goes first
	return 1 + k, nil
}

// idleTimedOut is what IdleTimeout without input does: the first time a ping, the next time (no
// input since) a close with 1001.
func (c *Conn) idleTimedOut() {
	if !c.pinged {
		c.pinged = true
		c.enqueue(wsproto.PingFrame)
		return
	}
	c.logAt(slog.LevelDebug, "idle: no answer to the ping; closing with 1001", slog.Duration("idle_timeout", c.l.lim.IdleTimeout))
	c.closeWith(ws.StatusGoingAway, nil) // wakes a polled c: its next turn drains
}

// processPre processes the bytes that came with the upgrade request and reports whether the
// reader drains from now on (c.draining).
func (c *Conn) processPre() bool {
	pre := c.pre
	c.pre = nil
	return len(pre) > 0 && c.process(pre, c.sink())
}

// process parses data and reports whether the reader drains from now on (c.draining).
func (c *Conn) process(data []byte, sink wsproto.FrameSink) bool {
	return c.processed(c.parser.Feed(data, sink))
}

// processed ends the parse of a read, given what the parser returned, and reports whether the
// reader drains from now on (c.draining).
func (c *Conn) processed(code ws.StatusCode, stop bool) bool {
	c.b.h.ReadDone(c)
	if code != 0 {
		c.logAt(slog.LevelDebug, "protocol error", slog.Int("code", int(code)))
		c.closeAfterCatchUp(code, nil)
		return true
	}
	return stop || c.state.Load().ending()
}
