package broker

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/wsbroker/wsbroker/internal/netpoll"
	"github.com/wsbroker/wsbroker/internal/writeq"
	"github.com/wsbroker/wsbroker/internal/wsproto"
)

// connState is where a connection is in its life. It is stored only under Conn.wmu and loaded
// anywhere (connStateVar), so that the read path checks it without a lock.
//
//	handshake ─open─► pending ──Accept(true)──► open ──peer's close, protocol error─► catchingUp
//	                     │                       │                                       │
//	         close frame │                       │ close frame queued                    │
//	              queued ▼                       ▼                                       │
//	               pendingClose ─Accept(true)─► closing ◄── close frame queued: CaughtUp,┘
//	                                             │          its timeout or any other close
//	                                             │ close frame written: write side shut
//	                                             ▼
//	                                         halfClosed
//
//	refused: pending, pendingClose ─Accept(false), Refuse, OpenTimeout, Broker.Close─► refused
//	         (handshake ─► refused only after a panic: discard)
//	a write fails: open, catchingUp ─► writeFailed; closing, halfClosed ─► closingWriteFailed
//	finish (the reader saw the end, or the drain deadline passed): accepted states ─► ended
//
// Who moves it, always under wmu: open (handshake to pending), closeLocked (a close frame
// queued), giveVerdictLocked (Accept, Refuse, refusePending), closeAfterCatchUp and caughtUp (open to
// catchingUp and back, closeWith following), afterWrite (half-close, write failures), discard
// (refused) and finish (ended). A request refused with an HTTP error in the handshake (or over
// MaxConnections) ends in handshake: it was never registered. The order makes mayQueue and
// ending ranges.
type connState uint32

const (
	// stateHandshake: the upgrade request is being read.
	stateHandshake connState = iota
	// statePending: Open was called and no verdict came yet; frames queue behind the 101
	// response, nothing is written.
	statePending
	// stateOpen: accepted; read by its reader, its queue written.
	stateOpen
	// stateCatchingUp: open; after the peer's close frame (or protocol error) our close frame
	// waits for the Handler to catch up (closeAfterCatchUp).
	stateCatchingUp
	// stateWriteFailed: accepted, and a write failed: nothing more is queued or written; the
	// reader delivers input until the end of input that CloseRead makes.
	stateWriteFailed
	// statePendingClose: pending with a close frame queued: written once accepted, the drain
	// deadline starting then.
	statePendingClose
	// stateRefused: never accepted: rejected (Accept: 403; Refuse: its status) or refused (open
	// timeout, Broker.Close: 503); its queue is dropped.
	stateRefused
	// stateClosing: accepted, a close frame queued last: nothing more is queued; the drain
	// deadline runs.
	stateClosing
	// stateHalfClosed: the close frame is written and the write side shut; the peer has until
	// the drain deadline to close its side.
	stateHalfClosed
	// stateClosingWriteFailed: a write failed after the close frame was queued.
	stateClosingWriteFailed
	// stateEnded: finish ran: the socket is closed and Handler.Close called.
	stateEnded
)

// mayQueue reports whether frames, a close frame included, may be queued (else they are dropped).
func (s connState) mayQueue() bool { return s <= stateCatchingUp }

// ending reports whether the connection is on its way out: a close frame is queued, or it was
// refused or ended. Its reader then delivers no more messages.
func (s connState) ending() bool { return s >= statePendingClose }

// writable reports whether the queue is written to the socket: accepted, and no write failed.
func (s connState) writable() bool {
	switch s {
	case stateOpen, stateCatchingUp, stateClosing, stateHalfClosed:
		return true
	}
	return false
}

// accepted reports whether the verdict accepted the connection (whatever happened since).
func (s connState) accepted() bool {
	switch s {
	case stateOpen, stateCatchingUp, stateWriteFailed, stateClosing, stateHalfClosed, stateClosingWriteFailed, stateEnded:
		return true
	}
	return false
}

// awaitingVerdict reports whether Open was called and neither Accept nor a refusal came yet.
func (s connState) awaitingVerdict() bool { return s == statePending || s == statePendingClose }

// afterWriteFailure is the state a failed write leaves s in.
func (s connState) afterWriteFailure() connState {
	switch s {
	case stateOpen, stateCatchingUp:
		return stateWriteFailed
	case stateClosing, stateHalfClosed:
		return stateClosingWriteFailed
	}
	return s
}

// connStateVar holds a connState: Store only under Conn.wmu; Load anywhere.
type connStateVar struct{ v atomic.Uint32 }

func (v *connStateVar) Load() connState   { return connState(v.v.Load()) }
func (v *connStateVar) Store(s connState) { v.v.Store(uint32(s)) }

// tcp is c's TCP socket once open, as its life uses it: nc, or its rawSocket (detach).
func (c *Conn) tcp() tcpSocket {
	if r, ok := c.rc.(*rawSocket); ok {
		return r
	}
	return c.nc
}

// tcpSocket is the part of a TCP socket's API that a connection uses once open (net.TCPConn's).
type tcpSocket interface {
	SetWriteDeadline(time.Time) error
	CloseWrite() error
	CloseRead() error
	Close() error
}

// Conn is one WebSocket connection.
type Conn struct {
	// pin is the embedder's (embedder.Hooks.Pin): the broker never writes it and reads it only
	// to name the worker in its log lines.
	pin atomic.Int32
	// state is where c is in its life (connState); stored under wmu.
	state connStateVar

	member // id, token and channels: the hub's record (hub.go)

	b  *Broker
	l  *listener // the listener that accepted it: its limits
	nc *net.TCPConn
	// rc is nc's, or a rawSocket once a plain connection is taken out of Go's netpoller as it
	// goes on its poller (detach: under wmu, before the poller sees c); never changed after.
	rc syscall.RawConn
	// tc is the TLS layer over nc on a TLS listener, else nil: its socket blocks until the
	// connection is polled (tlssocket.go), and unpolled it has its own path (readLoop, the writer
	// goroutine); sc is the byte stream, tc or nc.
	tc *tls.Conn
	sc net.Conn

	openTimer *time.Timer // the open timeout while the verdict is awaited (under wmu)

	// Write side, under wmu (see write.go). wmu guards state too: what may be queued or written
	// is decided on the state in the same critical section as the queue changes.
	wmu         sync.Mutex
	causeReason []byte          // why the connection ends, with causeCode (at the end)
	q           writeq.Queue    // the frames on their way to the socket
	cork        *Cork           // q is scheduled, and written by this cork's Flush
	drainAt     time.Duration   // the drain deadline (catchingUp: the catch-up deadline) on Broker.clock; 0: none
	history     wsproto.History // wsproto.DeflateTakeover: what was sent compressed lately

	// poll is c's place in the poller that reads it once accepted (read.go); its poller is nil
	// for a reader goroutine (no epoll). Assigned before the first goroutine starts.
	poll netpoll.Entry[*Conn]

	// flood is what the listener's MaxMessagesPerSecond and MaxConnectionsPerIP need of c; nil
	// when both are off, so that they cost a connection nothing then.
	flood *floodState

	// Whoever reads c (its goroutine, or the reader holding it).
	pre      []byte // read already: an Attachment's server's (before the handshake), or what followed the upgrade request
	parser   wsproto.Parser
	lastIn   time.Duration // polled: the clock when input (or the idle ping) last came
	here     bool          // polled: this turn runs on DispatchReady's caller (mayBlock)
	draining bool          // the reader delivers no more input: it reads only to see the peer's end
	pinged   bool          // the idle ping is out and no input came since
	counted  bool          // counts in l.conns
	// overLimit: the listener was over MaxConnections when c came; its request is refused with 503.
	overLimit bool

	// deflate: permessage-deflate as negotiated (wsproto.DeflateTakeover); set before Open, never
	// changed, read without a lock. (Last, with causeCode, where they fill the padding the bools
	// above leave: every byte counts for an idle connection.)
	deflate uint8
	// causeCode is why the connection ends (CloseCause), 0 while unknown; under wmu.
	causeCode uint16
}

// pastDeadline is a deadline that has already passed: setting it wakes a goroutine waiting for
// the socket.
var pastDeadline = time.Unix(1, 0)

// mayBlock is embedder.Hooks.MayBlock.
func (c *Conn) mayBlock() bool { return !c.here }

// ID returns the socket id: unique for the life of the Broker (and so of the process, which has
// one), the first is 1. The zero Conn has id 0.
func (c *Conn) ID() uint64 { return c.id }

// Closing reports whether c is on its way out: a close frame is queued, or it was refused or has
// ended. It never goes back to false.
func (c *Conn) Closing() bool { return c.state.Load().ending() }

// Listeners returns the Listen call's listeners that accepted c.
func (c *Conn) Listeners() *Listeners { return c.l.group }

// closingGroup reports whether c's Listeners are closing (Listeners.Close, Broker.Close).
func (c *Conn) closingGroup() bool { return stopped(c.l.group.stop) }

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
	defer c.l.group.connWG.Done() // this goroutine's own count (acceptLoop)
	opened := false
	defer func() {
		if r := recover(); r != nil || !opened {
			c.b.connDone(c, r)
		}
	}()
	up, ok := c.handshake()
	if !ok {
		return
	}
	if c.overLimit {
		// Answered once the request is in, not before: an HTTP client that gets a response
		// before it has sent its request (Go's net/http) treats it as a broken connection.
		c.b.logAt(slog.LevelDebug, "too many connections; refused with 503", slog.Any("peer", c.nc.RemoteAddr()))
		c.refuse(errBusy)
		return
	}
	ip := c.l.clientIP(c.nc, up.Headers)
	if limit := c.l.lim.MaxConnectionsPerIP; limit > 0 {
		if c.flood.perIP = c.b.perIP.take(ip, limit); c.flood.perIP == nil {
			c.b.counters.refusedPerIP.Add(1)
			c.b.logAt(slog.LevelDebug, "too many connections from this address; refused with 429", slog.String("ip", ip), slog.Int("max_connections_per_ip", limit))
			c.refuse(errBusyAddress)
			return
		}
	}
	opened = c.open(up, ip)
}

// handshake reads and checks the upgrade request. On failure it has answered and closed.
func (c *Conn) handshake() (*wsproto.UpgradeRequest, bool) {
	b := c.b
	lim := &c.l.lim
	c.nc.SetDeadline(time.Now().Add(lim.HandshakeTimeout))
	if c.closingGroup() {
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
			b.logAt(slog.LevelDebug, "TLS handshake failed", slog.Any("error", err), slog.Any("peer", c.nc.RemoteAddr()))
			c.nc.Close()
			return nil, false
		}
	}
	limit := lim.MaxHeaderBytes + len(wsproto.EndOfHead) // the head and its terminator
	bufp := readPool.Get().(*[]byte)
	buf := *bufp
	giveBack := func() {
		if bufp != nil {
			readPool.Put(bufp)
			bufp = nil
		}
	}
	n, end := 0, -1
	var herr *wsproto.HTTPError
	if len(c.pre) > 0 { // an Attachment's connection: what its server read comes first
		if len(c.pre) > len(buf) {
			giveBack()
			buf = make([]byte, len(c.pre))
		}
		n = copy(buf, c.pre)
		c.pre = nil
		if end = wsproto.HeadEnd(buf[:n], 0); end < 0 && n >= limit {
			herr = wsproto.ErrTooLarge
		}
	}
	for end < 0 && herr == nil {
		if n == len(buf) {
			if len(buf) >= limit {
				herr = wsproto.ErrTooLarge
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
			if end = wsproto.HeadEnd(buf[:n], n-k); end >= 0 {
				break
			}
			if n >= limit { // no terminator within the limit
				herr = wsproto.ErrTooLarge
				break
			}
		}
		if err != nil {
			giveBack()
			b.logAt(slog.LevelDebug, "handshake not completed", slog.Any("error", err), slog.Any("peer", c.nc.RemoteAddr()))
			c.nc.Close()
			return nil, false
		}
	}
	var up *wsproto.UpgradeRequest
	if herr == nil {
		up, herr = wsproto.ParseUpgrade(buf[:end], lim.MaxHeaderBytes)
	}
	if herr == nil && end+4 < n {
		c.pre = bytes.Clone(buf[end+4 : n])
	}
	giveBack()
	if herr != nil {
		b.logAt(slog.LevelDebug, "upgrade refused", slog.Int("status", herr.Status), slog.Any("peer", c.nc.RemoteAddr()))
		c.refuse(herr)
		return nil, false
	}
	c.nc.SetDeadline(time.Time{})
	return up, true
}

// release takes the connection out of its listener's count and its address's (once).
func (c *Conn) release() {
	if c.counted {
		c.counted = false
		c.l.conns.Add(-1)
	}
	if c.flood != nil && c.flood.perIP != nil {
		c.b.perIP.give(c.flood.perIP)
		c.flood.perIP = nil
	}
}

// The refusals the broker decides on (those of a malformed request come from wsproto).
var (
	errRejected    = &wsproto.HTTPError{Status: 403, Body: "Connection rejected"}
	errShutdown    = &wsproto.HTTPError{Status: 503, Body: "Server shutting down"}
	errOpenTimeout = &wsproto.HTTPError{Status: 503, Body: "The server did not accept the connection in time"}
	errBusy        = &wsproto.HTTPError{Status: 503, Body: "Too many connections"}
	errBusyAddress = &wsproto.HTTPError{Status: 429, Body: "Too many connections from this address"}
	errPlainHTTP   = &wsproto.HTTPError{Status: 400, Body: "Bad Request: this is a TLS (wss://) server"}
)

// refuse answers with an HTTP error and closes the connection.
func (c *Conn) refuse(e *wsproto.HTTPError) {
	c.release()
	c.nc.SetWriteDeadline(time.Now().Add(c.b.drainTimeout))
	c.sc.Write(e.Response())
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
		if s := c.tlsSocket(); s.w.HasLeft() {
			// The close_notify waits for room in the socket: half-close once it is out, by the
			// drain deadline (crypto/tls has just set the write deadline to now).
			go func() {
				c.wmu.Lock()
				deadline := c.drainDeadline()
				c.wmu.Unlock()
				c.nc.SetWriteDeadline(deadline)
				if s.w.FlushLeft(c.nc) == nil {
					c.nc.CloseWrite()
				}
			}()
			return
		}
	}
	c.tcp().CloseWrite()
}

// tlsSocket is the socket under c's TLS layer.
func (c *Conn) tlsSocket() *tlsSocket { return c.tc.NetConn().(*tlsSocket) }

// open registers the connection from the client address ip, calls Handler.Open and starts the
// open timeout unless the verdict came meanwhile. It reports whether the connection was opened;
// if not (Broker.Close came first), it has answered and closed.
func (c *Conn) open(up *wsproto.UpgradeRequest, ip string) bool {
	b := c.b
	var ext string
	if c.l.lim.Compression {
		ext, c.deflate = wsproto.NegotiateDeflate(up.Headers, c.l.lim.CompressionContextTakeover)
		c.parser.Deflate = c.deflate != 0
	}
	resp := wsproto.SwitchingResponse(up.Accept, wsproto.ChooseProtocol(up.Headers, c.l.lim.Protocols), ext)
	c.wmu.Lock()
	if c.closingGroup() {
		c.wmu.Unlock()
		c.refuse(errShutdown)
		return false
	}
	c.id = b.hub.newID()
	c.state.Store(statePending)
	c.q.Append(resp)
	c.wmu.Unlock()
	b.hub.register(c)

	req := &Request{IP: ip, URL: up.URL, Headers: up.Headers}
	b.callOpen(c, req)
	// After Open: a Handler that pins the socket to a worker (the bridge does) is named in it.
	c.logAt(slog.LevelDebug, "open", slog.String("ip", req.IP), slog.String("url", req.URL))

	c.wmu.Lock()
	if c.state.Load().awaitingVerdict() { // else Accept came during Open
		c.openTimer = time.AfterFunc(c.l.lim.OpenTimeout, c.openTimedOut)
	}
	c.wmu.Unlock()
	if c.closingGroup() { // its group's close may have looked at c before it was pending
		c.refusePending(errShutdown)
	}
	return true
}

// openTimedOut refuses c with 503 if its verdict has not come within OpenTimeout.
func (c *Conn) openTimedOut() {
	if c.refusePending(errOpenTimeout) {
		c.logAt(slog.LevelWarn, "no verdict on the upgrade in time; refused with 503", slog.Duration("open_timeout", c.l.lim.OpenTimeout))
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
func (c *Conn) refusePending(e *wsproto.HTTPError) bool {
	c.wmu.Lock()
	given := c.giveVerdictLocked(false)
	c.wmu.Unlock()
	if !given {
		return false
	}
	c.stopOpenTimer()
	c.discard()
	c.refuse(e)
	c.b.connDone(c, nil)
	return true
}

// giveVerdictLocked settles the verdict on c if it awaits one, and reports whether it did: ok
// accepts c (open, or closing if a close frame is queued: its drain starts now), else c is
// refused.
func (c *Conn) giveVerdictLocked(ok bool) bool {
	switch s := c.state.Load(); {
	case !s.awaitingVerdict():
		return false
	case !ok:
		c.state.Store(stateRefused)
	case s == statePendingClose:
		c.state.Store(stateClosing)
		c.startDrainLocked()
	default:
		c.state.Store(stateOpen)
	}
	return true
}

// reject answers a connection that Accept or Refuse rejected with e and ends it.
func (c *Conn) reject(e *wsproto.HTTPError) {
	c.logAt(slog.LevelDebug, "rejected", slog.Int("status", e.Status))
	c.refuse(e)
	c.b.connDone(c, nil)
}

// discard unregisters a connection that was never accepted (or, after a panic, has ended) and
// drops what it queued.
func (c *Conn) discard() {
	c.b.hub.unregister(c)
	c.b.hub.dropSubs(c)
	c.wmu.Lock()
	if c.state.Load() != stateEnded {
		c.state.Store(stateRefused)
	}
	c.q.Drop()
	c.wmu.Unlock()
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
	wait := late && c.state.Load() == stateOpen
	if wait {
		c.state.Store(stateCatchingUp)
		c.drainAt = c.b.clock() + c.b.catchUpTimeout // the reader looks again then
		if c.poll.Poller() == nil {
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
	waiting := c.state.Load() == stateCatchingUp
	if waiting {
		c.state.Store(stateOpen) // for closeWith, unless another close comes first
	}
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
	at, waiting := c.drainAt, c.state.Load() == stateCatchingUp
	c.wmu.Unlock()
	if now < at {
		return at, false
	}
	if waiting && c.caughtUp() {
		c.logAt(slog.LevelWarn, "the handler did not catch up with the messages before the close in time; closing without them",
			slog.Duration("catch_up_timeout", c.b.catchUpTimeout))
		c.wmu.Lock()
		at = c.drainAt
		c.wmu.Unlock()
	}
	return at, now >= at
}

// closeWith queues a close frame with code (0: empty payload) and reason (at most
// wsproto.MaxCloseReason bytes). Once it is written the socket is half-closed; the peer has drainTimeout
// to read it and to close its side, else the connection is ended. It reports whether this call
// started the close (false: c may queue nothing more, see connState.mayQueue).
func (c *Conn) closeWith(code ws.StatusCode, reason []byte) bool {
	c.wmu.Lock()
	c.causeLocked(code, reason)
	ok := c.closeLocked(wsproto.CloseFrame(code, reason), false)
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

// closeLocked queues the close frame f and moves c to stateClosing (statePendingClose while the
// verdict is awaited). With drop, everything not written yet is dropped first (backpressure):
// the queue at once, and whoever is writing keeps only the rest of a partly written frame.
// Nothing more can be queued afterwards.
func (c *Conn) closeLocked(f []byte, drop bool) bool {
	s := c.state.Load()
	if !s.mayQueue() {
		return false
	}
	if drop {
		keep := 0
		if s == statePending {
			keep = 1 // the 101 response, written if the socket is accepted
		}
		c.q.DropQueued(keep)
	}
	c.q.Append(f)
	if s.accepted() {
		c.state.Store(stateClosing) // a catching up socket's close frame goes now
		c.startDrainLocked()
	} else {
		c.state.Store(statePendingClose) // its drain starts once accepted (giveVerdict)
	}
	return true
}

// startDrainLocked gives the peer drainTimeout from now to read what is queued (the close frame
// last) and to close its side: past it, the writer and the reader both fail, which ends the
// connection even if the reader is held in a Handler call.
func (c *Conn) startDrainLocked() {
	c.drainAt = c.b.clock() + c.b.drainTimeout
	if p := c.poll.Poller(); p != nil {
		p.Wake(c) // its turn sees the deadline
	} else {
		c.nc.SetReadDeadline(c.drainDeadline())
	}
	if c.q.Trimming() {
		// Wake the writer (it may be waiting for a peer that does not read): it trims what it
		// holds and sets the drain deadline itself (afterWrite).
		c.tcp().SetWriteDeadline(pastDeadline)
	} else {
		c.tcp().SetWriteDeadline(c.drainDeadline())
	}
}

// drainDeadline is the drain deadline (set with stateClosing) as a time.
func (c *Conn) drainDeadline() time.Time { return c.b.epoch.Add(c.drainAt) }

// goAway is Close's request (Broker's or its Listeners') to end the connection.
func (c *Conn) goAway() {
	switch s := c.state.Load(); {
	case s == stateHandshake:
		c.nc.SetReadDeadline(pastDeadline) // interrupts the request read (or the linger)
	case s.accepted():
		c.closeWith(ws.StatusGoingAway, nil)
	default: // awaiting the verdict, or refused
		go c.refusePending(errShutdown) // unless Accept wins: it then sees its group closing and closes
	}
}

// finish ends an accepted connection: close, unregister, leave every channel, then Handler.Close.
func (c *Conn) finish() {
	c.closeSocket()
	c.wmu.Lock()
	c.state.Store(stateEnded)
	c.q.Drop()
	c.history = wsproto.History{}
	c.wmu.Unlock()
	c.parser.Reset()
	c.b.hub.unregister(c)
	c.b.hub.dropSubs(c)
	c.release() // before Handler.Close: a client told of the close may connect again at once
	code, _ := c.CloseCause()
	c.b.counters.open.Add(-1)
	c.b.counters.closedWith(code)
	c.logAt(slog.LevelDebug, "close")
	c.b.callClose(c)
}

// closeSocket closes the TCP connection, deregistering it from its poller first.
func (c *Conn) closeSocket() {
	if p := c.poll.Poller(); p != nil {
		p.Remove(c, c.rc)
	}
	c.tcp().Close()
}

// floodState is a connection's part in its listener's MaxMessagesPerSecond and
// MaxConnectionsPerIP.
type floodState struct {
	// rateAt is when the MaxMessagesPerSecond bucket would be full again, on Broker.clock
	// (withinRate); its reader's.
	rateAt time.Duration
	// perIP is c's address's count of connections while c counts in it (MaxConnectionsPerIP).
	perIP *addrConns
}

// reasonRate is the close reason of a socket over MaxMessagesPerSecond.
var reasonRate = []byte("message rate limit exceeded")

// withinRate takes a message from c's MaxMessagesPerSecond bucket (rate messages, refilled at
// rate per second) and reports whether there was one. The bucket is one time, rateAt (the
// generic cell rate algorithm): each message moves it on by 1/rate s, and a message that would
// move it more than a second past now finds the bucket empty.
func (c *Conn) withinRate(rate int) bool {
	now := c.b.clock()
	interval := time.Second / time.Duration(rate)
	at := max(c.flood.rateAt, now) + interval
	if at-now > time.Second {
		return false
	}
	c.flood.rateAt = at
	return true
}

// connSink is the wsproto.FrameSink of a connection.
type connSink Conn

// sink returns c's wsproto.FrameSink: a PartsSink if its Handler takes messages in parts.
func (c *Conn) sink() wsproto.FrameSink {
	if c.b.parts != nil {
		return (*partsSink)(c)
	}
	return (*connSink)(c)
}

func (s *connSink) Message(op ws.OpCode, p []byte) bool {
	c := (*Conn)(s)
	if !c.admit(len(p)) {
		return false
	}
	if op == ws.OpText {
		c.b.callText(c, p)
	} else {
		c.b.callBinary(c, p)
	}
	return !c.state.Load().ending()
}

// admit counts a message of n bytes from c's client, or closes c with 1008 when it is over
// MaxMessagesPerSecond and reports false.
func (c *Conn) admit(n int) bool {
	if rate := c.l.lim.MaxMessagesPerSecond; rate > 0 && !c.withinRate(rate) {
		c.b.counters.closedForRate.Add(1)
		c.logAt(slog.LevelInfo, "the client sends too many messages: closing with 1008", slog.Int("max_messages_per_second", rate))
		c.closeWith(ws.StatusPolicyViolation, reasonRate)
		return false
	}
	c.b.counters.messagesIn.Add(1)
	c.b.counters.bytesIn.Add(uint64(n))
	return true
}

// partsSink is the wsproto.PartsSink of a connection whose Handler is an embedder.PartsHandler.
type partsSink Conn

func (s *partsSink) Message(op ws.OpCode, p []byte) bool { return (*connSink)(s).Message(op, p) }
func (s *partsSink) Ping(p []byte)                       { (*connSink)(s).Ping(p) }
func (s *partsSink) Close(p []byte)                      { (*connSink)(s).Close(p) }

func (s *partsSink) MessageParts(op ws.OpCode, parts [][]byte) bool {
	c := (*Conn)(s)
	n := 0
	for _, part := range parts {
		n += len(part)
	}
	if !c.admit(n) {
		return false
	}
	c.b.callParts(c, op, parts)
	return !c.state.Load().ending()
}

func (s *connSink) Ping(p []byte) {
	(*Conn)(s).enqueue(wsproto.EncodeFrame(ws.OpPong, p))
}

func (s *connSink) Close(p []byte) {
	c := (*Conn)(s)
	var code ws.StatusCode
	var reason []byte
	if len(p) >= 2 {
		code, reason = ws.StatusCode(binary.BigEndian.Uint16(p)), p[2:]
	}
	c.logAt(slog.LevelDebug, "close frame received", slog.Int("code", int(code)))
	c.closeAfterCatchUp(code, reason) // echo the peer's code
}
