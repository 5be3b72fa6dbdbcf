package broker

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// Connection phases (Conn.phase, under wmu).
const (
	phaseHandshake uint8 = iota // reading the upgrade request
	phasePending                // Open called, verdict not given: frames queue, nothing is written
	phaseOpen                   // accepted: the queue is written
)

// Verdicts (Conn.verdict).
const (
	verdictPending int32 = iota
	verdictAccepted
	verdictRejected
	verdictRefused // Broker.Close came first
)

// readBufSize is the size of the pooled read buffers.
const readBufSize = 8 << 10

// readPool holds read buffers. A connection holds one only while its socket has data to read.
var readPool = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// Conn is one WebSocket connection.
type Conn struct {
	// Pin is owned by the Handler (the bridge stores the worker the socket is pinned to); the
	// broker never writes it and reads it only to name the worker in its log lines.
	Pin atomic.Int32
	// verdict is verdictPending until Accept (or a refusal) settles it, once.
	verdict atomic.Int32

	member // id, token and channels: the hub's record (hub.go)

	b  *Broker
	l  *listener // the listener that accepted it: its limits
	nc *net.TCPConn
	rc syscall.RawConn
	// tc is the TLS layer over nc on a TLS listener, else nil: its reads and writes block, so
	// they have their own path (readLoop, writeTLS); sc is the byte stream, tc or nc.
	tc   *tls.Conn
	sc   net.Conn
	stop <-chan struct{} // closed by Broker.Close

	openTimer *time.Timer // the open timeout while the verdict is pending (under wmu)

	// closing is set once nothing more may be queued: a close frame is queued, the socket was
	// rejected or refused, or the connection ended.
	closing atomic.Bool

	// Write side, under wmu (see write.go).
	wmu            sync.Mutex
	phase          uint8
	scheduled      bool   // in a flusher's list, or in a cork's (cork)
	writing        bool   // a flusher or the writer goroutine owns out
	wdead          bool   // the socket cannot be written any more
	shutAfterFlush bool   // half-close once the queue (ending with a close frame) is written
	shutDone       bool   // the half-close is done
	catchingUp     bool   // the close frame waits for the Handler to catch up (closeAfterCatchUp)
	outPartial     bool   // out[0] is partly written (owned with out)
	trim           bool   // backpressure: whoever owns out drops it but for a partly written frame
	causeCode      uint16 // why the connection ends (CloseCause); 0 while unknown
	causeReason    []byte
	queue          [][]byte      // frames waiting for a writer
	out            [][]byte      // frames being written (owned by whoever has writing set)
	qbuf           *[]byte       // c's own frame buffer (ownBuffers) in queue: its last entry while frames can be added
	obuf           *[]byte       // c's own frame buffer in out, pooled again once out is written
	cork           *Cork         // scheduled, and written by this cork's Flush
	pending        int           // bytes in queue and out, plus frameOverhead per frame
	drainAt        time.Duration // the drain deadline on the broker's clock (Broker.clock); 0: none
	history        *[]byte       // deflateTakeover: the last bytes sent compressed (contextFrameLocked)

	// pl is the poller that reads c once accepted (poll_linux.go), nil for a reader goroutine
	// (no epoll); set before the first goroutine starts, never changed.
	pl     *poller
	rstate atomic.Int32 // rRunning, rIdle or rMore
	// peerDone: an event reported the peer's end of input (or an error), so a short read does not
	// mean the socket is drained: the end is still to be read.
	peerDone atomic.Bool
	wakeAt   atomic.Int64 // when the poller must look at c (its clock), 0: never

	// Whoever reads c (its goroutine, or the reader holding it).
	pre      []byte // bytes that followed the upgrade request in the same read
	parser   frameParser
	lastIn   time.Duration // polled: the clock when input (or the idle ping) last came
	slot     uint32        // polled: c's slot in its poller
	polled   bool          // registered with the poller
	here     bool          // polled: this turn runs on DispatchReady's caller (MayBlock)
	draining bool          // a close frame is queued; input is only read to see the peer close
	pinged   bool          // the idle ping is out and no input came since
	finished bool          // finish ran
	counted  bool          // counts in l.conns
	busy     bool          // over the listener's MaxConnections: refused with 503

	// deflate: permessage-deflate as negotiated (deflateTakeover); set before Open, never changed,
	// read without a lock. (Last, where it fills the padding the bools above leave: every byte
	// counts for an idle connection.)
	deflate uint8
}

// pastDeadline is a deadline that has already passed: setting it wakes a goroutine waiting for
// the socket.
var pastDeadline = time.Unix(1, 0)

// MayBlock reports whether the Handler call being made for c may wait (for room in a queue):
// not when DispatchReady's caller reads c, since that caller may be what would make the room.
func (c *Conn) MayBlock() bool { return !c.here }

// ID returns the socket id: unique for the life of the Broker (and so of the process, which has
// one), the first is 1. The zero Conn has id 0.
func (c *Conn) ID() uint64 { return c.id }

// Token returns the current token, nil if none. The slice must not be modified: SetToken stores a
// fresh copy, so a returned slice never changes.
func (c *Conn) Token() []byte {
	if p := c.token.Load(); p != nil {
		return *p
	}
	return nil
}

// stopped reports whether ch is closed.
func stopped(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// serve is the connection's first goroutine: the handshake and the Open call. It ends there;
// the verdict (Accept, the open timeout or Broker.Close) decides the rest, on the goroutine or
// thread that gives it, so that accepting a socket wakes nobody.
func (c *Conn) serve() {
	defer c.b.connWG.Done() // this goroutine's own count (acceptLoop)
	pending := false
	defer func() {
		if r := recover(); r != nil || !pending {
			c.b.connDone(c, r)
		}
	}()
	up, ok := c.handshake()
	if !ok {
		return
	}
	if c.busy {
		// Answered once the request is in, not before: an HTTP client that gets a response
		// before it has sent its request (Go's net/http) treats it as a broken connection.
		c.b.log.Debug().Stringer("peer", c.nc.RemoteAddr()).Msg("too many connections; refused with 503")
		c.refuse(errBusy)
		return
	}
	pending = c.open(up)
}

// handshake reads and checks the upgrade request. On failure it has answered and closed.
func (c *Conn) handshake() (*upgradeRequest, bool) {
	b := c.b
	lim := &c.l.lim
	c.nc.SetDeadline(time.Now().Add(lim.HandshakeTimeout))
	if stopped(c.stop) {
		c.nc.Close()
		return nil, false
	}
	if c.tc != nil {
		// The TLS handshake runs on a goroutine of its own: the deep stack it needs goes away
		// with it instead of staying with this goroutine's stack until the verdict.
		done := make(chan error, 1)
		go func() { done <- c.tc.Handshake() }()
		if err := <-done; err != nil {
			var plain tls.RecordHeaderError
			if errors.As(err, &plain) && plain.Conn != nil {
				// Plain HTTP (or anything not TLS) on a TLS listener: say so in plain HTTP.
				c.tc, c.sc = nil, c.nc
				c.refuse(errPlainHTTP)
				return nil, false
			}
			b.log.Debug().Err(err).Stringer("peer", c.nc.RemoteAddr()).Msg("TLS handshake failed")
			c.nc.Close()
			return nil, false
		}
	}
	limit := lim.MaxHeaderBytes + len(crlfcrlf) // the head and its terminator
	bufp := readPool.Get().(*[]byte)
	buf := *bufp
	giveBack := func() {
		if bufp != nil {
			readPool.Put(bufp)
			bufp = nil
		}
	}
	n, end := 0, -1
	var herr *httpError
	for {
		if n == len(buf) {
			if len(buf) >= limit {
				herr = errTooLarge
				break
			}
			big := make([]byte, min(2*len(buf), limit))
			copy(big, buf[:n])
			giveBack()
			buf = big
		}
		k, err := c.sc.Read(buf[n:])
		n += k
		if k > 0 {
			if end = headEnd(buf[:n], n-k); end >= 0 {
				break
			}
			if n >= limit { // no terminator within the limit
				herr = errTooLarge
				break
			}
		}
		if err != nil {
			giveBack()
			b.log.Debug().Err(err).Stringer("peer", c.nc.RemoteAddr()).Msg("handshake not completed")
			c.nc.Close()
			return nil, false
		}
	}
	var up *upgradeRequest
	if herr == nil {
		up, herr = parseUpgrade(buf[:end], lim.MaxHeaderBytes)
	}
	if herr == nil && end+4 < n {
		c.pre = bytes.Clone(buf[end+4 : n])
	}
	giveBack()
	if herr != nil {
		b.log.Debug().Int("status", herr.status).Stringer("peer", c.nc.RemoteAddr()).Msg("upgrade refused")
		c.refuse(herr)
		return nil, false
	}
	c.nc.SetDeadline(time.Time{})
	return up, true
}

// release takes the connection out of its listener's count (once).
func (c *Conn) release() {
	if c.counted {
		c.counted = false
		c.l.conns.Add(-1)
	}
}

// refuse answers with an HTTP error and closes the connection.
func (c *Conn) refuse(e *httpError) {
	c.release()
	c.nc.SetWriteDeadline(time.Now().Add(c.b.drainTimeout))
	c.sc.Write(e.response())
	c.lingerClose()
}

// lingerClose half-closes, reads what the peer still sends for a short while, then closes: closing
// with unread input would reset the connection and could destroy the response before the peer
// reads it.
func (c *Conn) lingerClose() {
	c.closeWrite()
	c.nc.SetReadDeadline(time.Now().Add(c.b.lingerTimeout))
	bufp := readPool.Get().(*[]byte)
	for total := 0; total < 256<<10; {
		k, err := c.sc.Read(*bufp)
		total += k
		if err != nil {
			break
		}
	}
	readPool.Put(bufp)
	c.nc.Close()
}

// closeWrite half-closes the connection: after a TLS close_notify on a TLS listener.
func (c *Conn) closeWrite() {
	if c.tc != nil {
		c.tc.CloseWrite()
		if s := c.tlsSocket(); s.hasLeft() {
			// The close_notify waits for room in the socket: half-close once it is out, by the
			// drain deadline (crypto/tls has just set the write deadline to now).
			go func() {
				c.wmu.Lock()
				deadline := c.drainDeadline()
				c.wmu.Unlock()
				c.nc.SetWriteDeadline(deadline)
				if s.flushLeft() == nil {
					c.nc.CloseWrite()
				}
			}()
			return
		}
	}
	c.nc.CloseWrite()
}

// tlsSocket is the socket under c's TLS layer.
func (c *Conn) tlsSocket() *tlsSocket { return c.tc.NetConn().(*tlsSocket) }

// open registers the connection, calls Handler.Open and starts the open timeout unless the
// verdict came meanwhile. It reports whether the connection was opened; if not (Broker.Close came
// first), it has answered and closed.
func (c *Conn) open(up *upgradeRequest) bool {
	b := c.b
	var ext string
	if c.l.lim.Compression {
		ext, c.deflate = negotiateDeflate(up.headers, c.l.lim.CompressionContextTakeover)
		c.parser.deflate = c.deflate != 0
	}
	resp := switchingResponse(up.accept, chooseProtocol(up.headers, c.l.lim.Protocols), ext)
	c.wmu.Lock()
	if stopped(c.stop) {
		c.wmu.Unlock()
		c.refuse(errShutdown)
		return false
	}
	c.id = b.hub.newID()
	c.phase = phasePending
	c.queue = append(c.queue, resp)
	c.pending = len(resp) + frameOverhead
	c.wmu.Unlock()
	b.hub.register(c)

	req := &Request{IP: peerIP(c.nc), URL: up.url, Headers: up.headers}
	b.callOpen(c, req)
	// After Open: a Handler that pins the socket to a worker (the bridge does) is named in it.
	b.log.Debug().EmbedObject(c).Str("ip", req.IP).Str("url", req.URL).Msg("open")

	c.wmu.Lock()
	if c.verdict.Load() == verdictPending { // else Accept came during Open
		c.openTimer = time.AfterFunc(c.l.lim.OpenTimeout, c.openTimedOut)
	}
	c.wmu.Unlock()
	if stopped(c.stop) { // Broker.Close may have looked at c before it was pending
		c.refusePending(errShutdown)
	}
	return true
}

// openTimedOut refuses c with 503 if its verdict has not come within OpenTimeout.
func (c *Conn) openTimedOut() {
	if c.refusePending(errOpenTimeout) {
		c.b.log.Warn().EmbedObject(c).Dur("open_timeout", c.l.lim.OpenTimeout).Msg("no verdict on the upgrade in time; refused with 503")
	}
}

// stopOpenTimer stops the open timeout of c, whose verdict was given.
func (c *Conn) stopOpenTimer() {
	c.wmu.Lock()
	t := c.openTimer
	c.openTimer = nil // an idle connection keeps nothing it no longer needs
	c.wmu.Unlock()
	if t != nil {
		t.Stop()
	}
}

// refusePending refuses a connection whose verdict has not come, unless Accept comes first, and
// ends it. It reports whether it did.
func (c *Conn) refusePending(e *httpError) bool {
	if !c.verdict.CompareAndSwap(verdictPending, verdictRefused) {
		return false
	}
	c.stopOpenTimer()
	c.discard()
	c.refuse(e)
	c.b.connDone(c, nil)
	return true
}

// reject answers a connection that Accept rejected with 403 and ends it.
func (c *Conn) reject() {
	c.b.log.Debug().EmbedObject(c).Msg("rejected")
	c.refuse(errRejected)
	c.b.connDone(c, nil)
}

// start has an accepted connection read from now on: by its poller, or by a goroutine of its own.
func (c *Conn) start() {
	if c.pl != nil {
		if c.tc != nil {
			c.tlsSocket().polled = true // before any write: the flushers write c from now on
		}
		c.pl.poll(c, false)
		return
	}
	go c.readToEnd()
}

// readToEnd is the reader goroutine of an accepted connection that no poller reads.
func (c *Conn) readToEnd() {
	defer func() { c.b.connDone(c, recover()) }()
	c.readLoop()
	c.finish()
}

// discard unregisters a connection that was never accepted and drops what it queued.
func (c *Conn) discard() {
	c.b.hub.unregister(c)
	c.b.hub.dropSubs(c)
	c.closing.Store(true)
	c.wmu.Lock()
	c.wdead = true
	c.dropLocked()
	c.wmu.Unlock()
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

	sink := (*connSink)(c)
	idle := c.l.lim.IdleTimeout
	c.draining = c.processPre()
	for {
		if !c.draining {
			if c.closing.Load() {
				c.draining = true // closeWith set the drain deadline
			} else if idle > 0 {
				// Set before every wait for input, so that only that wait counts as idle time,
				// never the time spent in a Handler call (which may block on purpose).
				c.nc.SetReadDeadline(time.Now().Add(idle))
				if c.closing.Load() {
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
					if !c.closing.Load() {
						c.idleTimedOut()
					}
					continue
				}
				if _, passed := c.drainPassed(c.b.clock()); !passed {
					continue // not due yet, or the catch-up's time ran out and its close frame went out
				}
			}
			c.b.log.Debug().EmbedObject(c).Err(err).Msg("read ended")
			return
		}
		if rerr != nil {
			c.b.log.Debug().EmbedObject(c).Err(rerr).Msg("read failed")
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
		c.enqueue(pingFrame)
		return
	}
	c.b.log.Debug().EmbedObject(c).Dur("idle_timeout", c.l.lim.IdleTimeout).Msg("idle: no answer to the ping; closing with 1001")
	c.closeWith(ws.StatusGoingAway, nil) // wakes a polled c: its next turn drains
}

// processPre processes the bytes that came with the upgrade request and reports whether the
// connection is closing.
func (c *Conn) processPre() bool {
	pre := c.pre
	c.pre = nil
	return len(pre) > 0 && c.process(pre, (*connSink)(c))
}

// process parses data and reports whether the connection is closing.
func (c *Conn) process(data []byte, sink *connSink) bool {
	code, stop := c.parser.feed(data, sink)
	c.b.h.ReadDone(c)
	if code != 0 {
		c.b.log.Debug().EmbedObject(c).Int("code", int(code)).Msg("protocol error")
		c.closeAfterCatchUp(code, nil)
		return true
	}
	return stop || c.closing.Load()
}

// closeAfterCatchUp closes c with code (0: an empty close payload) as closeWith does, for the
// peer's close frame or protocol error, whose code and reason are the cause; with a
// CatchUpHandler, only once it has caught up with the messages that came before (CaughtUp), or
// when catchUpTimeout has passed (drainPassed). The caller is c's reader, which reads nothing
// more from c but to see its end.
func (c *Conn) closeAfterCatchUp(code ws.StatusCode, reason []byte) {
	h, late := c.b.h.(CatchUpHandler)
	c.wmu.Lock()
	c.causeLocked(code, reason)
	wait := late && !c.closing.Load() && !c.wdead && !c.catchingUp
	if wait {
		c.catchingUp = true
		c.drainAt = c.b.clock() + c.b.catchUpTimeout // the reader looks again then
		if c.pl == nil {
			c.nc.SetReadDeadline(c.drainDeadline())
		}
	}
	c.wmu.Unlock()
	if wait {
		c.b.callCatchUp(h, c)
	} else if !late {
		c.closeWith(code, nil)
	}
}

// caughtUp sends the close frame that waited for the Handler to catch up (closeAfterCatchUp),
// with the cause's code. It reports whether this call sent it.
func (c *Conn) caughtUp() bool {
	c.wmu.Lock()
	waiting := c.catchingUp
	c.catchingUp = false
	code := ws.StatusCode(c.causeCode)
	c.wmu.Unlock()
	if !waiting {
		return false
	}
	if code == ws.StatusNoStatusRcvd {
		code = 0 // the peer's close frame had no code: so has the echo
	}
	return c.closeWith(code, nil)
}

// drainPassed returns c's drain deadline and whether it has passed at now. A close frame that
// still waits for the Handler to catch up then goes out without it, and its drain starts.
func (c *Conn) drainPassed(now time.Duration) (time.Duration, bool) {
	c.wmu.Lock()
	at, waiting := c.drainAt, c.catchingUp
	c.wmu.Unlock()
	if now < at {
		return at, false
	}
	if waiting && c.caughtUp() {
		c.b.log.Warn().EmbedObject(c).Dur("catch_up_timeout", c.b.catchUpTimeout).
			Msg("the handler did not catch up with the messages before the close in time; closing without them")
		c.wmu.Lock()
		at = c.drainAt
		c.wmu.Unlock()
	}
	return at, now >= at
}

// closeWith queues a close frame with code (0: empty payload) and reason (at most
// maxCloseReason bytes). Once it is written the socket is half-closed; the peer has drainTimeout
// to read it and to close its side, else the connection is ended. It reports whether this call
// started the close (false: already closing, or the socket is dead).
func (c *Conn) closeWith(code ws.StatusCode, reason []byte) bool {
	c.wmu.Lock()
	c.causeLocked(code, reason)
	ok := c.closeLocked(closeFrame(code, reason), false)
	sched := ok && c.scheduleLocked(nil)
	c.wmu.Unlock()
	if sched {
		c.flushBy(nil)
	}
	return ok
}

// causeLocked records why the connection ends, unless a cause is known already: the first close
// frame, sent or received, says it. A close frame without a code counts as 1005.
func (c *Conn) causeLocked(code ws.StatusCode, reason []byte) {
	if c.causeCode != 0 {
		return
	}
	if code == 0 {
		code = ws.StatusNoStatusRcvd
	}
	c.causeCode, c.causeReason = uint16(code), bytes.Clone(reason)
}

// CloseCause returns why the connection ended: the code and reason of the first close frame sent
// or received (1005 for one without a code), or 1006 if it ended without one. Meant for
// Handler.Close.
func (c *Conn) CloseCause() (code uint16, reason []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.causeCode == 0 {
		return uint16(ws.StatusAbnormalClosure), nil
	}
	return c.causeCode, c.causeReason
}

// closeLocked queues the close frame f and marks the connection closing. With drop, everything
// not written yet is dropped first (backpressure): the queue at once, and whoever is writing
// keeps only the rest of a partly written frame. Nothing more can be queued afterwards.
func (c *Conn) closeLocked(f []byte, drop bool) bool {
	if c.closing.Load() || c.wdead {
		return false
	}
	c.closing.Store(true)
	c.catchingUp = false // this close frame goes first
	if drop {
		keep := 0
		if c.phase == phasePending && len(c.queue) > 0 {
			keep = 1 // the 101 response, written if the socket is accepted
		}
		for _, q := range c.queue[keep:] {
			c.pending -= len(q) + frameOverhead
		}
		q := make([][]byte, keep, keep+1)
		copy(q, c.queue[:keep])
		clear(c.queue)
		c.queue = q
		giveBackOwn(&c.qbuf) // kept is at most the 101 response, queued before any frame
		if c.writing {
			c.trim = true
		}
	}
	c.queue = append(c.queue, f)
	c.pending += len(f) + frameOverhead
	c.shutAfterFlush = true
	if c.phase == phaseOpen {
		c.startDrainLocked()
	}
	// A pending socket starts its drain once accepted (Accept).
	return true
}

// startDrainLocked gives the peer drainTimeout from now to read what is queued (the close frame
// last) and to close its side: past it, the writer and the reader both fail, which ends the
// connection even if the reader is held in a Handler call.
func (c *Conn) startDrainLocked() {
	c.drainAt = c.b.clock() + c.b.drainTimeout
	if c.pl != nil {
		c.pl.wake(c) // its turn sees the deadline
	} else {
		c.nc.SetReadDeadline(c.drainDeadline())
	}
	if c.trim {
		// Wake the writer (it may be waiting for a peer that does not read): it trims what it
		// holds and sets the drain deadline itself (afterWrite).
		c.nc.SetWriteDeadline(pastDeadline)
	} else {
		c.nc.SetWriteDeadline(c.drainDeadline())
	}
}

// drainDeadline is the drain deadline (set with closing) as a time.
func (c *Conn) drainDeadline() time.Time { return c.b.epoch.Add(c.drainAt) }

// goAway is Broker.Close's request to end the connection.
func (c *Conn) goAway() {
	c.wmu.Lock()
	phase := c.phase
	c.wmu.Unlock()
	switch phase {
	case phaseHandshake:
		c.nc.SetReadDeadline(pastDeadline) // interrupts the request read (or the linger)
	case phasePending:
		go c.refusePending(errShutdown) // unless Accept wins: it then sees c.stop and closes
	case phaseOpen:
		c.closeWith(ws.StatusGoingAway, nil)
	}
}

// finish ends an accepted connection: close, unregister, leave every channel, then Handler.Close.
func (c *Conn) finish() {
	c.finished = true
	c.closeSocket()
	c.closing.Store(true)
	c.wmu.Lock()
	c.wdead = true
	c.dropLocked()
	c.history = nil
	c.wmu.Unlock()
	c.parser.reset()
	c.b.hub.unregister(c)
	c.b.hub.dropSubs(c)
	c.release() // before Handler.Close: a client told of the close may connect again at once
	code, _ := c.CloseCause()
	c.b.counters.open.Add(-1)
	c.b.counters.closedWith(code)
	c.b.log.Debug().EmbedObject(c).Msg("close")
	c.b.callClose(c)
}

// closeSocket closes the TCP connection, deregistering it from its poller first.
func (c *Conn) closeSocket() {
	if c.pl != nil {
		c.pl.remove(c)
	}
	c.nc.Close()
}

// peerIP is the peer address without port, IPv4-mapped addresses as dotted quads.
func peerIP(nc net.Conn) string {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap().WithZone("").String()
	}
	return ""
}

// connSink is the frameSink of a connection.
type connSink Conn

func (s *connSink) message(op ws.OpCode, p []byte) bool {
	c := (*Conn)(s)
	c.b.counters.messagesIn.Add(1)
	c.b.counters.bytesIn.Add(uint64(len(p)))
	if op == ws.OpText {
		c.b.callText(c, p)
	} else {
		c.b.callBinary(c, p)
	}
	return !c.closing.Load()
}

func (s *connSink) ping(p []byte) {
	(*Conn)(s).enqueue(encodeFrame(ws.OpPong, p))
}

func (s *connSink) close(p []byte) {
	c := (*Conn)(s)
	var code ws.StatusCode
	var reason []byte
	if len(p) >= 2 {
		code, reason = ws.StatusCode(binary.BigEndian.Uint16(p)), p[2:]
	}
	c.b.log.Debug().EmbedObject(c).Int("code", int(code)).Msg("close frame received")
	c.closeAfterCatchUp(code, reason) // echo the peer's code
}
