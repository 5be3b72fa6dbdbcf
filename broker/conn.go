package broker

import (
	"bytes"
	"encoding/binary"
	"net"
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
	// broker never reads or writes it.
	Pin atomic.Int32

	id    uint64
	token atomic.Pointer[[]byte]

	b    *Broker
	nc   *net.TCPConn
	rc   syscall.RawConn
	stop <-chan struct{} // closed by Broker.Close

	verdict   atomic.Int32
	verdictCh chan bool // receives the verdict once, from Accept

	// closing is set once nothing more may be queued: a close frame is queued, the socket was
	// rejected or refused, or the connection ended.
	closing atomic.Bool

	// Write side, under wmu (see write.go).
	wmu            sync.Mutex
	phase          uint8
	scheduled      bool     // in a flusher's list
	writing        bool     // a flusher or the writer goroutine owns out
	wdead          bool     // the socket cannot be written any more
	shutAfterFlush bool     // half-close once the queue (ending with a close frame) is written
	shutDone       bool     //
	queue          [][]byte // frames waiting for a writer
	out            [][]byte // frames being written (owned by whoever has writing set)
	pending        int      // bytes in queue and out

	// Channels, under subMu (taken after a channel shard's lock, see broker.go).
	subMu sync.Mutex
	dead  bool // unregistered: subscribing is refused
	chans map[string]struct{}

	// Reader goroutine only.
	pre      []byte // bytes that followed the upgrade request in the same read
	parser   frameParser
	finished bool // finish ran
}

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

// serve is the connection's reader goroutine: handshake, Open, frames, end. It is the only place
// where the connection's life ends and Handler.Close is called.
func (c *Conn) serve() {
	defer c.b.connDone(c)
	up, ok := c.handshake()
	if !ok {
		return
	}
	if !c.open(up) {
		return
	}
	c.readLoop()
	c.finish()
}

// handshake reads and checks the upgrade request. On failure it has answered and closed.
func (c *Conn) handshake() (*upgradeRequest, bool) {
	b := c.b
	c.nc.SetDeadline(time.Now().Add(b.handshakeTimeout))
	if stopped(c.stop) {
		c.nc.Close()
		return nil, false
	}
	bufp := readPool.Get().(*[]byte)
	buf := *bufp
	n, end := 0, -1
	var herr *httpError
	for {
		if n == len(buf) {
			if len(buf) >= maxHeadBytes+4 {
				herr = errTooLarge
				break
			}
			big := make([]byte, maxHeadBytes+4)
			copy(big, buf[:n])
			readPool.Put(bufp)
			bufp, buf = nil, big
		}
		k, err := c.nc.Read(buf[n:])
		n += k
		if k > 0 {
			if end = headEnd(buf[:n], n-k); end >= 0 {
				break
			}
		}
		if err != nil {
			if bufp != nil {
				readPool.Put(bufp)
			}
			b.log.Debug().Err(err).Stringer("peer", c.nc.RemoteAddr()).Msg("handshake not completed")
			c.nc.Close()
			return nil, false
		}
	}
	var up *upgradeRequest
	if herr == nil {
		up, herr = parseUpgrade(buf[:end])
	}
	if herr == nil && end+4 < n {
		c.pre = bytes.Clone(buf[end+4 : n])
	}
	if bufp != nil {
		readPool.Put(bufp)
	}
	if herr != nil {
		b.log.Debug().Int("status", herr.status).Stringer("peer", c.nc.RemoteAddr()).Msg("upgrade refused")
		c.refuse(herr)
		return nil, false
	}
	c.nc.SetDeadline(time.Time{})
	return up, true
}

// refuse answers with an HTTP error and closes the connection.
func (c *Conn) refuse(e *httpError) {
	c.nc.SetWriteDeadline(time.Now().Add(c.b.drainTimeout))
	c.nc.Write(e.response())
	c.lingerClose()
}

// lingerClose half-closes, reads what the peer still sends for a short while, then closes: closing
// with unread input would reset the connection and could destroy the response before the peer
// reads it.
func (c *Conn) lingerClose() {
	c.nc.CloseWrite()
	c.nc.SetReadDeadline(time.Now().Add(c.b.lingerTimeout))
	bufp := readPool.Get().(*[]byte)
	for total := 0; total < 256<<10; {
		k, err := c.nc.Read(*bufp)
		total += k
		if err != nil {
			break
		}
	}
	readPool.Put(bufp)
	c.nc.Close()
}

// open registers the connection, calls Handler.Open and waits for the verdict. It reports whether
// the connection was accepted; if not, it has answered and closed.
func (c *Conn) open(up *upgradeRequest) bool {
	b := c.b
	c.verdictCh = make(chan bool, 1)
	resp := switchingResponse(up.accept)
	c.wmu.Lock()
	if stopped(c.stop) {
		c.wmu.Unlock()
		c.refuse(errShutdown)
		return false
	}
	c.id = b.nextID.Add(1)
	c.phase = phasePending
	c.queue = append(c.queue, resp)
	c.pending = len(resp)
	c.wmu.Unlock()
	b.register(c)

	req := &Request{IP: peerIP(c.nc), URL: up.url, Headers: up.headers}
	b.log.Debug().Uint64("id", c.id).Str("ip", req.IP).Str("url", req.URL).Msg("open")
	b.callOpen(c, req)

	timeout := time.NewTimer(b.openTimeout)
	defer timeout.Stop()
	var ok bool
	select {
	case ok = <-c.verdictCh:
	case <-c.stop:
		if c.refuseUnanswered(errShutdown) {
			return false
		}
		ok = <-c.verdictCh // Accept won the race and is about to deliver
	case <-timeout.C:
		if c.refuseUnanswered(errOpenTimeout) {
			b.log.Warn().Uint64("id", c.id).Dur("open_timeout", b.openTimeout).Msg("no verdict on the upgrade in time; refused with 503")
			return false
		}
		ok = <-c.verdictCh
	}
	if !ok {
		b.log.Debug().Uint64("id", c.id).Msg("rejected")
		c.refuse(errRejected)
		return false
	}
	if stopped(c.stop) {
		c.closeWith(ws.StatusGoingAway)
	}
	return true
}

// refuseUnanswered refuses a connection whose verdict has not come, unless Accept comes first.
func (c *Conn) refuseUnanswered(e *httpError) bool {
	if !c.verdict.CompareAndSwap(verdictPending, verdictRefused) {
		return false
	}
	c.discard()
	c.refuse(e)
	return true
}

// discard unregisters a connection that was never accepted and drops what it queued.
func (c *Conn) discard() {
	c.b.unregister(c)
	c.b.dropSubs(c)
	c.closing.Store(true)
	c.wmu.Lock()
	c.wdead = true
	c.dropLocked()
	c.wmu.Unlock()
}

// readLoop reads and parses frames until the connection ends. The read buffer comes from readPool
// and goes back whenever the socket has nothing more to read.
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
		for {
			n, rerr = syscall.Read(int(fd), *bufp)
			if rerr != syscall.EINTR {
				break
			}
		}
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
	draining := false
	if len(c.pre) > 0 {
		pre := c.pre
		c.pre = nil
		draining = c.process(pre, sink)
	}
	for {
		if !draining && c.closing.Load() {
			draining = true
		}
		if err := c.rc.Read(read); err != nil {
			c.b.log.Debug().Uint64("id", c.id).Err(err).Msg("read ended")
			return
		}
		if rerr != nil {
			c.b.log.Debug().Uint64("id", c.id).Err(rerr).Msg("read failed")
			return
		}
		if n <= 0 {
			return // EOF
		}
		if draining {
			continue // after a close frame, input is read only to see the peer close
		}
		draining = c.process((*bufp)[:n], sink)
	}
}

// process parses data and reports whether the connection is closing.
func (c *Conn) process(data []byte, sink *connSink) bool {
	code, stop := c.parser.feed(data, sink)
	if code != 0 {
		c.b.log.Debug().Uint64("id", c.id).Int("code", int(code)).Msg("protocol error")
		c.closeWith(code)
		return true
	}
	return stop || c.closing.Load()
}

// closeWith queues a close frame with code (0: empty payload); the socket is half-closed once it
// is written, and the reader gives the peer drainTimeout to close its side.
func (c *Conn) closeWith(code ws.StatusCode) {
	c.wmu.Lock()
	if c.closing.Load() || c.wdead {
		c.wmu.Unlock()
		return
	}
	c.closing.Store(true)
	f := closeFrame(code)
	c.queue = append(c.queue, f)
	c.pending += len(f)
	c.shutAfterFlush = true
	sched := c.scheduleLocked()
	c.wmu.Unlock()
	if sched {
		c.b.flusherFor(c).add(c)
	}
	c.nc.SetReadDeadline(time.Now().Add(c.b.drainTimeout))
}

// goAway is Broker.Close's request to end the connection.
func (c *Conn) goAway() {
	c.wmu.Lock()
	phase := c.phase
	c.wmu.Unlock()
	switch phase {
	case phaseHandshake:
		c.nc.SetReadDeadline(time.Now()) // interrupts the request read
	case phaseOpen:
		c.closeWith(ws.StatusGoingAway)
	}
	// phasePending: the reader waits on c.stop as well as on the verdict.
}

// finish ends an accepted connection: close, unregister, leave every channel, then Handler.Close.
func (c *Conn) finish() {
	c.finished = true
	c.nc.Close()
	c.closing.Store(true)
	c.wmu.Lock()
	c.wdead = true
	c.dropLocked()
	c.wmu.Unlock()
	c.parser.reset()
	c.b.unregister(c)
	c.b.dropSubs(c)
	c.b.log.Debug().Uint64("id", c.id).Msg("close")
	c.b.callClose(c)
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
	if len(p) >= 2 {
		code = ws.StatusCode(binary.BigEndian.Uint16(p))
	}
	c.b.log.Debug().Uint64("id", c.id).Int("code", int(code)).Msg("close frame received")
	c.closeWith(code) // echo the peer's code
}
