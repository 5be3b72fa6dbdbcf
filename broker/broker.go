package broker

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/wsbroker/wsbroker/internal/embedder"
	"github.com/wsbroker/wsbroker/internal/netpoll"
	"github.com/wsbroker/wsbroker/internal/writeq"
	"github.com/wsbroker/wsbroker/internal/wsproto"
)

// Options configures a Broker. Limits are per listener: see Listen.
type Options struct {
	// Logger is where the broker logs: connection events at debug, refusals and failures at warn,
	// recovered panics at error. Nil discards.
	Logger *slog.Logger
}

// listener is one address of a Listen call (or an Attachment): its socket, its limits and its
// connection count.
type listener struct {
	ln       net.Listener
	group    *Listeners
	lim      Limits // resolved: no zero value where a default applies
	conns    atomic.Int64
	lastBusy atomic.Int64 // unix nanoseconds of the last "too many connections" warning
}

// Listeners are what one Listen call (or Attach) opened: its listeners and the connections
// accepted on them, which Close ends together while the Broker's other listeners and connections
// go on.
type Listeners struct {
	b        *Broker
	lns      []*listener
	addrs    []net.Addr
	stop     chan struct{} // closed when its connections are told to go away
	stopOnce sync.Once
	acceptWG sync.WaitGroup
	allMu    sync.Mutex
	all      map[*Conn]struct{} // its connections not ended yet
	connWG   sync.WaitGroup
}

// newListeners returns the group of lns, accepting, and registers it with b (b.life held).
func (b *Broker) newListeners(lns []net.Listener, lim Limits) *Listeners {
	g := &Listeners{b: b, stop: make(chan struct{}), all: make(map[*Conn]struct{})}
	for _, ln := range lns {
		l := &listener{ln: ln, group: g, lim: lim}
		g.lns = append(g.lns, l)
		g.addrs = append(g.addrs, ln.Addr())
		g.acceptWG.Add(1)
		go b.acceptLoop(l)
		b.logAt(slog.LevelDebug, "listening", slog.Any("addr", ln.Addr()))
	}
	b.groups = append(b.groups, g)
	return g
}

// Addrs returns the addresses actually listened on, one per address given to Listen, in order:
// a port 0 there is the port the system chose here.
func (g *Listeners) Addrs() []net.Addr { return g.addrs }

// Close stops accepting on these listeners at once, gives their connections grace to end by
// themselves (none with 0), then closes those still open with close code 1001 as Broker.Close
// does (pending opens refused with 503), and returns when every Close event of its connections
// has been delivered. Calls after the first, and after Broker.Close, wait for the same end. The
// Broker's other listeners and connections are not touched. Close must not be called from a
// Handler method.
func (g *Listeners) Close(grace time.Duration) {
	b := g.b
	b.life.Lock()
	g.stopAccepting()
	b.life.Unlock()
	g.acceptWG.Wait()
	if grace > 0 {
		ended := make(chan struct{})
		go func() {
			g.connWG.Wait()
			close(ended)
		}()
		timer := time.NewTimer(grace)
		select {
		case <-ended:
		case <-timer.C:
		}
		timer.Stop()
	}
	g.goAway()
	g.connWG.Wait()
	b.life.Lock()
	b.groups = slices.DeleteFunc(b.groups, func(other *Listeners) bool { return other == g }) // Broker.Close ends it until here, grace or not
	b.life.Unlock()
}

// stopAccepting closes the listeners; their accept loops then end (acceptWG).
func (g *Listeners) stopAccepting() {
	for _, l := range g.lns {
		l.ln.Close()
	}
}

// goAway asks every connection of g to end (Conn.goAway), once; the accept loops have ended.
func (g *Listeners) goAway() {
	g.stopOnce.Do(func() {
		close(g.stop)
		g.allMu.Lock()
		conns := make([]*Conn, 0, len(g.all))
		for c := range g.all {
			conns = append(conns, c)
		}
		g.allMu.Unlock()
		for _, c := range conns {
			c.goAway()
		}
	})
}

// Broker accepts WebSocket connections on any number of listeners and routes frames to them.
type Broker struct {
	h     Handler
	parts embedder.PartsHandler[Conn] // h, if it takes messages in parts
	log   *slog.Logger

	// Timeouts; fields so that tests can shorten them.
	drainTimeout   time.Duration // for a peer to read our close frame and close its side
	catchUpTimeout time.Duration // CatchUpTimeout
	lingerTimeout  time.Duration // after an HTTP error response
	readerLinger   time.Duration // a poller's readers idle through a whole period of this length exit

	hub   hub[*Conn] // the sockets, channels and tokens
	perIP addrCounts // the connections of each client address, on listeners with MaxConnectionsPerIP

	flushers   []*writeq.Flusher[*Conn] // Conn.flush writes their sockets (runFlusher)
	writeCalls atomic.Uint64            // write syscalls made (tests check coalescing with it)
	counters   counters

	life   sync.Mutex   // serialises Listen and Close
	groups []*Listeners // those not closed yet, under life

	epoch    time.Time // the origin of clock
	pollOnce sync.Once
	polls    *netpoll.Set[*Conn]             // readers of the connections, TLS ones included (read.go); nil: a goroutine each
	route    atomic.Pointer[func(*Conn) int] // which poller reads a new connection (embedder.Hooks.Route); nil: each in turn
}

// New returns a Broker that reports events to h. It listens on nothing until Listen.
func New(h Handler, opts Options) *Broker {
	b := &Broker{
		h:              h,
		log:            cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		drainTimeout:   5 * time.Second,
		catchUpTimeout: CatchUpTimeout,
		lingerTimeout:  2 * time.Second,
		readerLinger:   time.Second,
		epoch:          time.Now(),
	}
	b.parts, _ = h.(embedder.PartsHandler[Conn])
	b.hub.init()
	b.flushers = make([]*writeq.Flusher[*Conn], runtime.GOMAXPROCS(0))
	for i := range b.flushers {
		b.flushers[i] = writeq.NewFlusher[*Conn]()
		go b.runFlusher(b.flushers[i])
	}
	return b
}

// Listen starts accepting on every address of addrs (each as net.Listen("tcp", addr)) with the
// same limits, in the background, and returns once all listen. If one cannot listen, none is
// left listening and the error names that address and the OS reason. Listeners started by
// several calls share all state (sockets, channels, tokens); each call's can be closed alone.
func (b *Broker) Listen(addrs []string, lim Limits) (*Listeners, error) {
	lim, err := lim.resolve()
	if err != nil {
		return nil, err
	}
	b.life.Lock()
	defer b.life.Unlock()
	lns := make([]net.Listener, 0, len(addrs))
	for _, addr := range addrs {
		ln, err := listenTCP(addr, tcpKeepAlive(lim))
		if err != nil {
			for _, opened := range lns {
				opened.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
	}
	return b.newListeners(lns, lim), nil
}

func (b *Broker) acceptLoop(l *listener) {
	defer l.group.acceptWG.Done()
	var delay time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: wait and retry.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			b.logAt(slog.LevelWarn, "accept failed", slog.Any("error", err), slog.Duration("retry_in", delay))
			select {
			case <-time.After(delay):
			case <-l.group.stop:
				return
			}
			continue
		}
		delay = 0
		switch nc := nc.(type) {
		case *net.TCPConn:
			b.serveNew(l, nc, nil)
		case handedOver:
			setTCPOptions(nc.TCPConn, l.lim)
			b.serveNew(l, nc.TCPConn, nc.pre)
		default:
			nc.Close()
		}
	}
}

// serveNew starts serving tc, a connection of l whose first bytes pre (the upgrade request, or
// part of it) were already read from it elsewhere.
func (b *Broker) serveNew(l *listener, tc *net.TCPConn, pre []byte) {
	g := l.group
	rc, err := tc.SyscallConn()
	if err != nil {
		tc.Close()
		return
	}
	c := &Conn{b: b, l: l, nc: tc, rc: rc, sc: tc, counted: true, pre: pre}
	if l.lim.TLS != nil {
		c.tc = tls.Server(newTLSSocket(tc, rc), l.lim.TLS)
		c.sc = c.tc
	}
	if n := l.conns.Add(1); l.lim.MaxConnections > 0 && n > int64(l.lim.MaxConnections) {
		l.conns.Add(-1)
		c.counted, c.overLimit = false, true
		now, last := time.Now().UnixNano(), l.lastBusy.Load()
		if now-last > int64(10*time.Second) && l.lastBusy.CompareAndSwap(last, now) {
			b.logAt(slog.LevelWarn, "connection limit reached; refusing upgrades with 503 (logged at most every 10 s)",
				slog.Any("addr", l.ln.Addr()), slog.Int("max_connections", l.lim.MaxConnections))
		}
	}
	c.parser.Max = l.lim.MaxPayload
	if l.lim.MaxMessagesPerSecond > 0 || l.lim.MaxConnectionsPerIP > 0 {
		c.flood = &floodState{}
	}
	if of := b.route.Load(); of != nil {
		b.pollers().AssignTo(&c.poll, (*of)(c))
	} else {
		b.pollers().Assign(&c.poll)
	}
	g.allMu.Lock()
	g.all[c] = struct{}{}
	g.connWG.Add(2) // the connection, and its first goroutine (serve)
	g.allMu.Unlock()
	go c.serve()
}

// connDone is the last thing done for a connection; r is what its goroutine recovered from a
// panic, if anything.
func (b *Broker) connDone(c *Conn, r any) {
	if r != nil {
		// A bug in the broker: never take the process down for it.
		b.logPanic(c, "connection goroutine panicked", r)
		c.closeSocket()
		if s := c.state.Load(); s.accepted() && s != stateEnded {
			c.finish()
		} else {
			c.discard()
		}
	}
	c.release()
	g := c.l.group
	g.allMu.Lock()
	delete(g.all, c)
	g.allMu.Unlock()
	g.connWG.Done()
}

// clock is the monotonic time since the broker was created: a connection's timers in 8 bytes.
func (b *Broker) clock() time.Duration { return time.Since(b.epoch) }

// Close stops every listener, closes every connection with close code 1001
// and returns when every Close event has been delivered. Pending opens are refused with 503. Close frames go out at
// once, even to connections whose reader is blocked in a Handler call; Close waits for such calls
// to return (and for peers to answer, at most the drain timeout, 5 s). The Broker may be used
// again with Listen afterwards; ids continue. Close must not be called from a Handler method.
func (b *Broker) Close() {
	b.life.Lock()
	defer b.life.Unlock()
	groups := b.groups
	b.groups = nil
	for _, g := range groups {
		g.stopAccepting()
	}
	for _, g := range groups {
		g.acceptWG.Wait()
		g.goAway()
	}
	for _, g := range groups {
		g.connWG.Wait()
	}
}

// Accept gives the verdict for a connection whose Open is pending. true writes the 101 response
// and then the frames queued meanwhile; false refuses it with 403 (see Refuse). It returns false
// if id is not pending.
func (b *Broker) Accept(id uint64, ok bool) bool { return b.accept(id, ok, nil) }

// accept is Accept, corked by k when k is not nil.
func (b *Broker) accept(id uint64, ok bool, k *Cork) bool {
	if ok {
		return b.verdict(id, nil, k)
	}
	return b.verdict(id, errRejected, k)
}

// Refusal is the HTTP response with which a Handler refuses an upgrade, for instance 401 with a
// WWW-Authenticate header, or 429 with Retry-After.
type Refusal struct {
	// Status is from 400 to 599.
	Status int
	// Headers are written in order (a name may repeat: Set-Cookie). Each name must be an HTTP
	// token, and not one the broker writes itself or that would contradict a response that ends
	// the connection after its body: Content-Length, Connection, Transfer-Encoding, Keep-Alive,
	// Upgrade. Each value must hold no control character but tab (no CR or LF). Content-Type may
	// be given once; by default it is text/plain; charset=utf-8.
	Headers []Header
	// Body follows the headers; empty, without a Content-Type, it is the status's reason phrase.
	Body []byte
}

// MaxRefusalBytes bounds the names and values of a Refusal's headers and its body, together.
const MaxRefusalBytes = wsproto.MaxRefusalBytes

// Refuse gives the verdict for a connection whose Open is pending: it answers with r, closes,
// unregisters the id and drops its subscriptions and queued frames (no Close event follows). It
// returns false if id is not pending, and an error, doing nothing, if r breaks a rule of Refusal.
func (b *Broker) Refuse(id uint64, r Refusal) (bool, error) {
	e, err := wsproto.NewRefusal(r.Status, r.Headers, r.Body)
	if err != nil {
		return false, fmt.Errorf("invalid refusal: %w", err)
	}
	return b.verdict(id, e, nil), nil
}

// verdict accepts the pending connection id (refusal nil, corked by k when k is not nil) or
// refuses it with refusal; it reports whether id was pending.
func (b *Broker) verdict(id uint64, refusal *wsproto.HTTPError, k *Cork) bool {
	c := b.hub.lookup(id)
	if c == nil {
		return false
	}
	c.wmu.Lock()
	if !c.giveVerdictLocked(refusal == nil) {
		c.wmu.Unlock()
		return false
	}
	sched := c.scheduleLocked(k)
	c.wmu.Unlock()
	c.stopOpenTimer()
	if refusal != nil {
		c.discard()
		go c.reject(refusal) // the answer lingers: not on the caller's time
		return true
	}
	b.counters.accepted.Add(1)
	b.counters.open.Add(1)
	if c.closingGroup() {
		c.closeWith(ws.StatusGoingAway, nil) // its group's close saw c pending and lost to this call
	}
	c.start()
	if sched {
		c.flushBy(k)
	}
	return true
}

// Send queues one frame for socket id; data is copied. Unknown or closed id: no-op. If the
// socket's queue is already over its listener's MaxBackpressure, the socket is closed with 1008
// instead and its queue dropped. The id of another node's socket goes to the Relay.
//
// It reports false when the frame was queued and left the queue of the socket, accepted, over its
// listener's BackpressureThreshold: the sender should wait for DrainHandler.Drain before sending
// more. Otherwise (an unknown, closed or closing socket, one not accepted yet, another node's) it
// reports true.
func (b *Broker) Send(id uint64, data []byte, text bool) bool { return b.send(id, data, text, nil) }

// send is Send, corked by k when k is not nil.
func (b *Broker) send(id uint64, data []byte, text bool, k *Cork) bool {
	c := b.hub.lookup(id)
	if c == nil {
		if r := b.remote(id); r != nil {
			r.Send(id, data, text)
			relayed(r, k)
		}
		return true
	}
	op := opFor(text)
	var f []byte
	if c.deflate != 0 && len(data) >= wsproto.CompressMin && c.deflate&wsproto.DeflateTakeover == 0 {
		f = wsproto.CompressedFrame(op, data, c.deflate, nil)
	}
	full := c.queueFrame(f, op, data, k) // f nil: data is encoded (or compressed with c's context) into c's queue
	b.counters.messagesOut.Add(1)
	return !full
}

// BufferedAmount returns the bytes queued for socket id and not yet written, counted as
// MaxBackpressure counts them (writeq.FrameOverhead more per frame); 0 for an unknown id or
// another node's socket.
func (b *Broker) BufferedAmount(id uint64) int {
	if c := b.hub.lookup(id); c != nil {
		return c.queued()
	}
	return 0
}

// CloseSocket closes socket id with a close frame carrying code and reason; Handler.Close
// follows as for any close, once the peer answers with its close frame or the drain timeout
// passes. code must be 1000, 1011 (a handler failed: the bridge's ordered mode uses it) or in
// 3000..4999, and reason at most 123 bytes of valid UTF-8, else
// an error says what is allowed. It returns false (nil error) if the id is unknown or the socket
// already closing. On a pending socket (Open not answered yet) the close frame is queued behind
// what was sent: written once accepted, dropped if rejected. The id of another node's socket
// goes to the Relay, and CloseSocket returns true: the close is requested.
func (b *Broker) CloseSocket(id uint64, code uint16, reason []byte) (bool, error) {
	if code != 1000 && code != 1011 && (code < 3000 || code > 4999) {
		return false, fmt.Errorf("invalid close code %d: it must be 1000, 1011 or in the range 3000 to 4999", code)
	}
	if len(reason) > wsproto.MaxCloseReason {
		return false, fmt.Errorf("close reason too long: %d bytes, at most %d bytes of UTF-8 are allowed", len(reason), wsproto.MaxCloseReason)
	}
	if !utf8.Valid(reason) {
		return false, errors.New("invalid close reason: it must be valid UTF-8")
	}
	c := b.hub.lookup(id)
	if c == nil {
		if r := b.remote(id); r != nil {
			r.CloseSocket(id, code, reason)
			r.Flush()
			return true, nil
		}
		return false, nil
	}
	return c.closeWith(ws.StatusCode(code), reason), nil
}

// CaughtUp answers CatchUpHandler.CatchUp: the handler has handled every message of socket id that
// came before its peer's close frame or protocol error, and queued their replies; the close frame
// follows them now. Unknown id, or a socket not waiting for it: no-op.
func (b *Broker) CaughtUp(id uint64) {
	if c := b.hub.lookup(id); c != nil {
		c.caughtUp()
	}
}

// SendToChannel encodes the frame once (and compresses it once per window size among the
// subscribers that have compression without context takeover, if the message is large enough;
// once per subscriber that keeps its context) and queues it for every current subscriber of
// channel except the socket whose id is except (0: none); then it passes the message on to the
// Relay, if one is attached, for the other nodes' subscribers.
func (b *Broker) SendToChannel(channel, data []byte, text bool, except uint64) {
	b.sendToChannel(channel, data, text, except, nil)
	b.published(channel, data, text, except, nil)
}

// sendToChannel is SendToChannel, corked by k when k is not nil.
func (b *Broker) sendToChannel(channel, data []byte, text bool, except uint64, k *Cork) {
	s := b.hub.chanShard(channel)
	s.mu.RLock()
	set := s.m[string(channel)]
	if len(set) == 0 {
		s.mu.RUnlock()
		return
	}
	op := opFor(text)
	var plain []byte
	var packed [wsproto.MaxWindowBits + 1][]byte // by window bits, compressed on first need
	var useless uint16                           // window bits for which compressing did not make it smaller
	compress := len(data) >= wsproto.CompressMin
	sent := 0
	for c := range set {
		if c.id == except {
			continue
		}
		if c.deflate != 0 && compress {
			if c.deflate&wsproto.DeflateTakeover != 0 {
				c.queueFrame(nil, op, data, k) // compressed with c's own context
				sent++
				continue
			}
			bits := c.deflate
			if packed[bits] == nil && useless&(1<<bits) == 0 {
				if packed[bits] = wsproto.CompressedFrame(op, data, bits, nil); packed[bits] == nil {
					useless |= 1 << bits
				}
			}
			if packed[bits] != nil {
				c.enqueueCorked(packed[bits], k)
				sent++
				continue
			}
		}
		if plain == nil {
			plain = wsproto.EncodeFrame(op, data)
		}
		c.enqueueCorked(plain, k)
		sent++
	}
	s.mu.RUnlock()
	b.counters.messagesOut.Add(uint64(sent))
}

func opFor(text bool) ws.OpCode {
	if text {
		return ws.OpText
	}
	return ws.OpBinary
}

// Handler calls. A panicking Handler is logged and never takes the process down.

func (b *Broker) callOpen(c *Conn, req *Request) {
	defer func() {
		if r := recover(); r != nil {
			b.logPanic(c, "Handler.Open panicked; rejecting", r)
			b.Accept(c.id, false)
		}
	}()
	b.h.Open(c, req)
}

func (b *Broker) callText(c *Conn, p []byte) {
	defer b.recoverMessage(c)
	b.h.Text(c, p)
}

func (b *Broker) callBinary(c *Conn, p []byte) {
	defer b.recoverMessage(c)
	b.h.Binary(c, p)
}

func (b *Broker) callParts(c *Conn, op ws.OpCode, parts [][]byte) {
	defer b.recoverMessage(c)
	b.parts.MessageParts(c, op == ws.OpText, parts)
}

func (b *Broker) recoverMessage(c *Conn) {
	if r := recover(); r != nil {
		b.logPanic(c, "Handler panicked; closing with 1011", r)
		c.closeWith(ws.StatusInternalServerError, nil)
	}
}

// callCatchUp asks a CatchUpHandler to catch up with c; a panic there is logged and the close
// goes ahead at once.
func (b *Broker) callCatchUp(h CatchUpHandler, c *Conn) {
	defer func() {
		if r := recover(); r != nil {
			b.logPanic(c, "Handler.CatchUp panicked", r)
			c.caughtUp()
		}
	}()
	h.CatchUp(c)
}

// callDrain tells a DrainHandler that c's queue has drained; a panic there is logged.
func (b *Broker) callDrain(c *Conn) {
	h, ok := b.h.(DrainHandler)
	if !ok {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			b.logPanic(c, "Handler.Drain panicked", r)
		}
	}()
	h.Drain(c)
}

func (b *Broker) callClose(c *Conn) {
	defer func() {
		if r := recover(); r != nil {
			b.logPanic(c, "Handler.Close panicked", r)
		}
	}()
	b.h.Close(c)
}

// addrCounts counts the connections of each client address (MaxConnectionsPerIP).
type addrCounts struct {
	mu sync.Mutex
	m  map[string]*addrConns
}

// addrConns is one address's count; its record goes once the count is back to 0.
type addrConns struct {
	ip string
	n  int
}

// take counts one more connection from ip and returns its address's record, or nil, counting
// nothing, when ip has limit connections already.
func (a *addrCounts) take(ip string, limit int) *addrConns {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.m[ip]
	if e == nil {
		if a.m == nil {
			a.m = make(map[string]*addrConns)
		}
		e = &addrConns{ip: ip}
		a.m[ip] = e
	}
	if e.n >= limit {
		return nil // e.n > 0: a record is never left empty
	}
	e.n++
	return e
}

// give takes a connection counted by take out of its address's count.
func (a *addrCounts) give(e *addrConns) {
	a.mu.Lock()
	if e.n--; e.n == 0 {
		delete(a.m, e.ip)
	}
	a.mu.Unlock()
}

// counters are the broker's running totals (Stats).
type counters struct {
	accepted, messagesIn, bytesIn, messagesOut, bytesOut atomic.Uint64
	closedForRate, refusedPerIP                          atomic.Uint64
	open                                                 atomic.Int64
	closedMu                                             sync.Mutex
	closed                                               map[uint16]uint64
}

func (k *counters) closedWith(code uint16) {
	k.closedMu.Lock()
	if k.closed == nil {
		k.closed = make(map[uint16]uint64)
	}
	k.closed[code]++
	k.closedMu.Unlock()
}

// Stats are the broker's live figures.
type Stats struct {
	Connections int64             `json:"connections"` // accepted and not yet ended
	Accepted    uint64            `json:"accepted"`    // connections accepted since the process started
	Channels    int               `json:"channels"`    // channels with at least one subscriber
	MessagesIn  uint64            `json:"messagesIn"`  // messages received from clients
	BytesIn     uint64            `json:"bytesIn"`     // their payload bytes
	MessagesOut uint64            `json:"messagesOut"` // messages queued to clients (a broadcast counts once per recipient)
	BytesOut    uint64            `json:"bytesOut"`    // bytes written to sockets (frames and handshakes)
	QueuedBytes int64             `json:"queuedBytes"` // bytes queued for sockets, not yet written (32 more per frame, as MaxBackpressure counts)
	Closed      map[uint16]uint64 `json:"closed"`      // connections ended, by close code (Conn.CloseCause)
	// ClosedForRate counts the sockets closed with 1008 for sending over MaxMessagesPerSecond.
	ClosedForRate uint64 `json:"closedForRate"`
	// RefusedPerIP counts the upgrades refused with 429 for MaxConnectionsPerIP.
	RefusedPerIP uint64 `json:"refusedPerIp"`
}

// Stats returns the live figures. It walks the registry and the channel table (for the queued
// bytes and the channel count), so it costs time in proportion to the connections.
func (b *Broker) Stats() Stats {
	k := &b.counters
	st := Stats{
		Connections: k.open.Load(),
		Accepted:    k.accepted.Load(),
		MessagesIn:  k.messagesIn.Load(),
		BytesIn:     k.bytesIn.Load(),
		MessagesOut: k.messagesOut.Load(),
		BytesOut:    k.bytesOut.Load(),
		Closed:      map[uint16]uint64{},

		ClosedForRate: k.closedForRate.Load(),
		RefusedPerIP:  k.refusedPerIP.Load(),
	}
	k.closedMu.Lock()
	for code, n := range k.closed {
		st.Closed[code] = n
	}
	k.closedMu.Unlock()
	st.Channels = b.hub.channelCount()
	for c := range b.hub.all() {
		st.QueuedBytes += int64(c.queued())
	}
	return st
}

// tcpKeepAlive is the TCP keep-alive of a listener's connections (net.ListenConfig.KeepAlive):
// none while IdleTimeout pings idle sockets, else Go's default. Go's probes every 15 s on an idle
// connection would wake each client (a phone's radio) eight times between two of our pings;
// neither ws (Node's http server) nor uWebSockets turns keep-alive on.
func tcpKeepAlive(lim Limits) time.Duration {
	if lim.IdleTimeout > 0 {
		return -1
	}
	return 0
}

// listenTCP listens on addr with TCP keep-alive keepAlive (as net.ListenConfig.KeepAlive); its
// error says "cannot listen on <addr>: <the OS reason>".
func listenTCP(addr string, keepAlive time.Duration) (net.Listener, error) {
	lc := net.ListenConfig{Control: deferAccept, KeepAlive: keepAlive}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err // "bind: address already in use" without "listen tcp <addr>: "
		}
		return nil, fmt.Errorf("cannot listen on %q: %w", addr, err)
	}
	return ln, nil
}
