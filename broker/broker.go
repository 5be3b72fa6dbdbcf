// Package broker is the Go core of WSBroker: it accepts WebSocket connections (its own upgrade
// parser and connection layer, github.com/gobwas/ws as the frame codec), keeps the socket
// registry, the channel table and the tokens, and reports every connection's events to a Handler.
// Every method is safe for concurrent use.
package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/rs/zerolog"
)

const (
	defaultMaxPayload       = 16 << 20
	defaultIdleTimeout      = 120 * time.Second
	defaultHandshakeTimeout = 10 * time.Second
	defaultMaxHeaderBytes   = 16 << 10
	defaultMaxBackpressure  = 16 << 20
	defaultOpenTimeout      = 10 * time.Second
	regShards               = 64
	chanShards              = 32
)

// Limits are the settings of a listener (each Listen call has its own). The zero value of a field selects its
// default, given with the field; DefaultLimits returns them all (IdleTimeout included).
type Limits struct {
	// MaxPayload is the largest message accepted, after reassembly of its fragments; a larger one
	// closes the socket with 1009. 0: 16 MiB.
	MaxPayload int64
	// IdleTimeout: after this long without input the socket is pinged; with still no input (a pong
	// or anything else) after as long again it is closed with 1001. Only time spent waiting for
	// input counts: not time the reader spends blocked in a Handler call. 0 disables (DefaultLimits
	// has 120 s). While it is on, the connections have no TCP keep-alive (the ping finds a dead
	// peer); with 0 they keep Go's (a probe after 15 s without traffic, then every 15 s).
	IdleTimeout time.Duration
	// HandshakeTimeout bounds the time to receive the whole upgrade request (slowloris); past it
	// the TCP connection is closed without a response. On Linux the kernel hands a connection
	// over only once it has sent something, or after about a second (deferAccept): the timeout
	// runs from then. 0: 10 s.
	HandshakeTimeout time.Duration
	// MaxHeaderBytes bounds the upgrade request head (request line and headers); a larger one is
	// answered with HTTP 431. 0: 16 KiB.
	MaxHeaderBytes int
	// MaxConnections bounds the connections of this listener, from TCP accept to their end
	// (requests being read and pending opens included); one more is answered with HTTP 503 as
	// soon as its upgrade request is in (HandshakeTimeout and MaxHeaderBytes apply to it), without
	// Handler.Open. 0: unlimited.
	MaxConnections int
	// MaxBackpressure bounds the bytes queued for one socket and not yet written (every queued
	// frame counts frameOverhead bytes more, its bookkeeping, so that a flood of tiny frames cannot
	// hold many times the limit). A send to a socket whose queue is already over it closes the
	// socket with 1008, its queue freed at once, and the TCP connection ended if the peer does not
	// read the close frame within the drain timeout. A message sent into a queue under the limit
	// is taken whole, whatever its size: a queue holds at most the limit plus one message (so a
	// message of MaxPayload can be echoed with both limits equal). 0: 16 MiB.
	MaxBackpressure int
	// OpenTimeout bounds the wait for Accept after Handler.Open returns; past it the upgrade is
	// refused with HTTP 503 (a handler that never answers, or whose thread died, must not hold the
	// client forever). 0: 10 s.
	OpenTimeout time.Duration
	// Protocols are the subprotocols the server speaks: the first one the client offers
	// (Sec-WebSocket-Protocol) that is listed is chosen in the 101 response. None: no subprotocol
	// is ever chosen.
	Protocols []string
	// Compression negotiates permessage-deflate (RFC 7692) with clients that offer it (the first
	// valid offer of the header; server_max_window_bits from 8 to 15 is honoured exactly).
	// Without CompressionContextTakeover, without context takeover in either direction: no
	// compressor or window is kept per connection between messages. Messages of at least 256
	// bytes are sent compressed when that makes them smaller; a compressed message that inflates
	// past MaxPayload closes the socket with 1009, an invalid one with 1007. Clients that do not
	// offer it are served uncompressed.
	Compression bool
	// CompressionContextTakeover (with Compression) keeps the server's context between the
	// messages of a socket whose client allows it (its offer has no server_no_context_takeover
	// and allows a 15-bit window): a message may refer back to the last 8 KiB sent compressed to
	// that socket, which then holds those 8 KiB from its first compressed message to its end.
	// Such a socket's messages, broadcasts included, are compressed for it alone. Clients are
	// still asked not to take over theirs.
	CompressionContextTakeover bool
	// TLS, when not nil, serves wss:// (TLS, then HTTP/1.1): a plain HTTP request is answered
	// with 400. Its NextProtos is replaced by "http/1.1".
	TLS *tls.Config
}

// DefaultLimits returns the documented defaults: MaxPayload 16 MiB, IdleTimeout 120 s,
// HandshakeTimeout 10 s, MaxHeaderBytes 16 KiB, MaxConnections unlimited, MaxBackpressure 16 MiB,
// OpenTimeout 10 s.
func DefaultLimits() Limits {
	return Limits{
		MaxPayload:       defaultMaxPayload,
		IdleTimeout:      defaultIdleTimeout,
		HandshakeTimeout: defaultHandshakeTimeout,
		MaxHeaderBytes:   defaultMaxHeaderBytes,
		MaxBackpressure:  defaultMaxBackpressure,
		OpenTimeout:      defaultOpenTimeout,
	}
}

// resolve checks lim and replaces zero values with defaults.
func (lim Limits) resolve() (Limits, error) {
	for _, f := range []struct {
		name string
		neg  bool
		v    any
	}{
		{"MaxPayload", lim.MaxPayload < 0, lim.MaxPayload},
		{"IdleTimeout", lim.IdleTimeout < 0, lim.IdleTimeout},
		{"HandshakeTimeout", lim.HandshakeTimeout < 0, lim.HandshakeTimeout},
		{"MaxHeaderBytes", lim.MaxHeaderBytes < 0, lim.MaxHeaderBytes},
		{"MaxConnections", lim.MaxConnections < 0, lim.MaxConnections},
		{"MaxBackpressure", lim.MaxBackpressure < 0, lim.MaxBackpressure},
		{"OpenTimeout", lim.OpenTimeout < 0, lim.OpenTimeout},
	} {
		if f.neg {
			return lim, fmt.Errorf("invalid limits: %s must not be negative, got %v", f.name, f.v)
		}
	}
	d := DefaultLimits()
	if lim.MaxPayload == 0 {
		lim.MaxPayload = d.MaxPayload
	}
	if lim.HandshakeTimeout == 0 {
		lim.HandshakeTimeout = d.HandshakeTimeout
	}
	if lim.MaxHeaderBytes == 0 {
		lim.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if lim.MaxBackpressure == 0 {
		lim.MaxBackpressure = d.MaxBackpressure
	}
	if lim.OpenTimeout == 0 {
		lim.OpenTimeout = d.OpenTimeout
	}
	if lim.TLS != nil {
		lim.TLS = lim.TLS.Clone()
		lim.TLS.NextProtos = []string{"http/1.1"} // no h2: the upgrade is HTTP/1.1
	}
	return lim, nil
}

// Options configures a Broker. Limits are per listener: see Listen.
type Options struct {
	Logger zerolog.Logger // where the broker logs
}

// listener is one Listen call: its socket, its limits and its connection count.
type listener struct {
	ln       net.Listener
	lim      Limits // resolved: no zero value where a default applies
	conns    atomic.Int64
	lastBusy atomic.Int64 // unix nanoseconds of the last "too many connections" warning
}

// Broker accepts WebSocket connections on any number of listeners and routes frames to them.
type Broker struct {
	h   Handler
	log zerolog.Logger

	// Timeouts; fields so that tests can shorten them.
	drainTimeout   time.Duration // for a peer to read our close frame and close its side
	catchUpTimeout time.Duration // CatchUpTimeout
	lingerTimeout  time.Duration // after an HTTP error response
	readerLinger   time.Duration // a poller's readers idle through a whole period of this length exit

	nextID atomic.Uint64
	reg    [regShards]regShard
	seed   maphash.Seed
	chans  [chanShards]chanShard

	flushers   []*flusher
	writeCalls atomic.Uint64 // write syscalls made (tests check coalescing with it)
	counters   counters

	life           sync.Mutex    // serialises Listen and Close
	stop           chan struct{} // closed by Close; replaced after it
	lmu            sync.Mutex
	listeners      []*listener
	metricsServers []*http.Server
	acceptWG       sync.WaitGroup
	allMu          sync.Mutex
	all            map[*Conn]struct{} // every connection not ended yet
	connWG         sync.WaitGroup

	epoch    time.Time // the origin of clock
	pollOnce sync.Once
	polls    []*poller // readers of plain connections (poll_linux.go); none: a goroutine each
	pollNext atomic.Uint64
}

type regShard struct {
	mu sync.RWMutex
	m  map[uint64]*Conn
}

type chanShard struct {
	mu sync.RWMutex
	m  map[string]map[*Conn]struct{}
}

// New returns a Broker that reports events to h. It listens on nothing until Listen.
func New(h Handler, opts Options) *Broker {
	b := &Broker{
		h:              h,
		log:            opts.Logger,
		drainTimeout:   5 * time.Second,
		catchUpTimeout: CatchUpTimeout,
		lingerTimeout:  2 * time.Second,
		readerLinger:   time.Second,
		seed:           maphash.MakeSeed(),
		stop:           make(chan struct{}),
		all:            make(map[*Conn]struct{}),
		epoch:          time.Now(),
	}
	for i := range b.reg {
		b.reg[i].m = make(map[uint64]*Conn)
	}
	for i := range b.chans {
		b.chans[i].m = make(map[string]map[*Conn]struct{})
	}
	b.flushers = make([]*flusher, runtime.GOMAXPROCS(0))
	for i := range b.flushers {
		b.flushers[i] = newFlusher(b)
		go b.flushers[i].run()
	}
	return b
}

// Listen starts accepting on every address of addrs (each as net.Listen("tcp", addr)) with the
// same limits, in the background, and returns once all listen. If one cannot listen, none is
// left listening and the error names that address and the OS reason. Listeners started by
// several calls share all state.
func (b *Broker) Listen(addrs []string, lim Limits) ([]net.Addr, error) {
	lim, err := lim.resolve()
	if err != nil {
		return nil, err
	}
	b.life.Lock()
	defer b.life.Unlock()
	lns := make([]net.Listener, 0, len(addrs))
	for _, addr := range addrs {
		ln, err := listenTCP(addr, "listen on", tcpKeepAlive(lim))
		if err != nil {
			for _, opened := range lns {
				opened.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
	}
	bound := make([]net.Addr, len(lns))
	for i, ln := range lns {
		l := &listener{ln: ln, lim: lim}
		b.lmu.Lock()
		b.listeners = append(b.listeners, l)
		b.lmu.Unlock()
		b.acceptWG.Add(1)
		go b.acceptLoop(l, b.stop)
		b.log.Debug().Stringer("addr", ln.Addr()).Msg("listening")
		bound[i] = ln.Addr()
	}
	return bound, nil
}

func (b *Broker) acceptLoop(l *listener, stop chan struct{}) {
	defer b.acceptWG.Done()
	var delay time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: wait and retry.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			b.log.Warn().Err(err).Dur("retry_in", delay).Msg("accept failed")
			select {
			case <-time.After(delay):
			case <-stop:
				return
			}
			continue
		}
		delay = 0
		tc, ok := nc.(*net.TCPConn)
		if !ok {
			nc.Close()
			continue
		}
		rc, err := tc.SyscallConn()
		if err != nil {
			tc.Close()
			continue
		}
		c := &Conn{b: b, l: l, nc: tc, rc: rc, sc: tc, stop: stop, counted: true}
		if l.lim.TLS != nil {
			c.tc = tls.Server(newTLSSocket(tc, rc), l.lim.TLS)
			c.sc = c.tc
		}
		if n := l.conns.Add(1); l.lim.MaxConnections > 0 && n > int64(l.lim.MaxConnections) {
			l.conns.Add(-1)
			c.counted, c.busy = false, true
			now, last := time.Now().UnixNano(), l.lastBusy.Load()
			if now-last > int64(10*time.Second) && l.lastBusy.CompareAndSwap(last, now) {
				b.log.Warn().Stringer("addr", l.ln.Addr()).Int("max_connections", l.lim.MaxConnections).
					Msg("connection limit reached; refusing upgrades with 503 (logged at most every 10 s)")
			}
		}
		c.parser.max = l.lim.MaxPayload
		c.pl = b.pollerFor()
		b.allMu.Lock()
		b.all[c] = struct{}{}
		b.connWG.Add(2) // the connection, and its first goroutine (serve)
		b.allMu.Unlock()
		go c.serve()
	}
}

// connDone is the last thing done for a connection; r is what its goroutine recovered from a
// panic, if anything.
func (b *Broker) connDone(c *Conn, r any) {
	if r != nil {
		// A bug in the broker: never take the process down for it.
		b.log.Error().Interface("panic", r).Bytes("stack", debug.Stack()).EmbedObject(c).Msg("connection goroutine panicked")
		c.closeSocket()
		if c.verdict.Load() == verdictAccepted && !c.finished {
			c.finish()
		} else {
			c.discard()
		}
	}
	c.release()
	b.allMu.Lock()
	delete(b.all, c)
	b.allMu.Unlock()
	b.connWG.Done()
}

// clock is the monotonic time since the broker was created: a connection's timers in 8 bytes.
func (b *Broker) clock() time.Duration { return time.Since(b.epoch) }

// Close stops every listener and metrics server, closes every connection with close code 1001
// and returns when every Close event has been delivered. Pending opens are refused with 503. Close frames go out at
// once, even to connections whose reader is blocked in a Handler call; Close waits for such calls
// to return (and for peers to answer, at most the drain timeout, 5 s). The Broker may be used
// again with Listen afterwards; ids continue. Close must not be called from a Handler method.
func (b *Broker) Close() {
	b.life.Lock()
	defer b.life.Unlock()
	b.lmu.Lock()
	lns, servers := b.listeners, b.metricsServers
	b.listeners, b.metricsServers = nil, nil
	b.lmu.Unlock()
	for _, l := range lns {
		l.ln.Close()
	}
	for _, srv := range servers {
		srv.Close()
	}
	b.acceptWG.Wait()

	close(b.stop)
	b.allMu.Lock()
	conns := make([]*Conn, 0, len(b.all))
	for c := range b.all {
		conns = append(conns, c)
	}
	b.allMu.Unlock()
	for _, c := range conns {
		c.goAway()
	}
	b.connWG.Wait()
	b.stop = make(chan struct{})
}

// Accept gives the verdict for a connection whose Open is pending. true writes the 101 response
// and then the frames queued meanwhile; false answers 403, closes, unregisters the id and drops
// its subscriptions and queued frames (no Close event follows). It returns false if id is not
// pending.
func (b *Broker) Accept(id uint64, ok bool) bool { return b.AcceptHeld(id, ok, nil) }

// AcceptHeld is Accept, except that when held is not nil the response is written by whoever
// holds held, as with SendHeld (the bridge: with a batch's sends, on the JS thread; a flusher
// would have to be woken).
func (b *Broker) AcceptHeld(id uint64, ok bool, held *[]*Conn) bool {
	c := b.lookup(id)
	if c == nil {
		return false
	}
	v := verdictRejected
	if ok {
		v = verdictAccepted
	}
	if !c.verdict.CompareAndSwap(verdictPending, v) {
		return false
	}
	c.stopOpenTimer()
	if !ok {
		c.discard()
		go c.reject() // the answer lingers: not on the caller's time
		return true
	}
	b.counters.accepted.Add(1)
	b.counters.open.Add(1)
	c.wmu.Lock()
	c.phase = phaseOpen
	if c.shutAfterFlush {
		c.startDrainLocked() // CloseSocket while pending: the drain starts now
	}
	sched := c.scheduleLocked(held)
	c.wmu.Unlock()
	if stopped(c.stop) {
		c.closeWith(ws.StatusGoingAway, nil) // Broker.Close saw c pending and lost to this call
	}
	c.start()
	if sched {
		c.flushBy(held)
	}
	return true
}

// Send queues one frame for socket id; data is copied. Unknown or closed id: no-op. If the
// socket's queue is already over its listener's MaxBackpressure, the socket is closed with 1008
// instead and its queue dropped.
func (b *Broker) Send(id uint64, data []byte, text bool) { b.SendHeld(id, data, text, nil) }

// SendHeld is Send, except that when held is not nil the socket is not handed to a flusher: it is
// appended to held, and the caller must pass held to FlushHeld soon (the bridge does at the end
// of a batch of events: one thread switch fewer per message, and one write per socket per batch).
func (b *Broker) SendHeld(id uint64, data []byte, text bool, held *[]*Conn) {
	c := b.lookup(id)
	if c == nil {
		return
	}
	op := opFor(text)
	var f []byte
	if c.deflate != 0 && len(data) >= compressMin && c.deflate&deflateTakeover == 0 {
		f = compressedFrame(op, data, c.deflate, nil)
	}
	c.queueFrame(f, op, data, held) // f nil: data is encoded (or compressed with c's context) into c's queue
	b.counters.messagesOut.Add(1)
}

// CloseSocket closes socket id with a close frame carrying code and reason; Handler.Close
// follows as for any close, once the peer answers with its close frame or the drain timeout
// passes. code must be 1000, 1011 (a handler failed: the bridge's ordered mode uses it) or in
// 3000..4999, and reason at most 123 bytes of valid UTF-8, else
// an error says what is allowed. It returns false (nil error) if the id is unknown or the socket
// already closing. On a pending socket (Open not answered yet) the close frame is queued behind
// what was sent: written once accepted, dropped if rejected.
func (b *Broker) CloseSocket(id uint64, code uint16, reason []byte) (bool, error) {
	if code != 1000 && code != 1011 && (code < 3000 || code > 4999) {
		return false, fmt.Errorf("invalid close code %d: it must be 1000, 1011 or in the range 3000 to 4999", code)
	}
	if len(reason) > maxCloseReason {
		return false, fmt.Errorf("close reason too long: %d bytes, at most %d bytes of UTF-8 are allowed", len(reason), maxCloseReason)
	}
	if !utf8.Valid(reason) {
		return false, errors.New("invalid close reason: it must be valid UTF-8")
	}
	c := b.lookup(id)
	if c == nil {
		return false, nil
	}
	return c.closeWith(ws.StatusCode(code), reason), nil
}

// CaughtUp answers CatchUpHandler.CatchUp: the handler has handled every message of socket id that
// came before its peer's close frame or protocol error, and queued their replies; the close frame
// follows them now. Unknown id, or a socket not waiting for it: no-op.
func (b *Broker) CaughtUp(id uint64) {
	if c := b.lookup(id); c != nil {
		c.caughtUp()
	}
}

// SendToChannel encodes the frame once (and compresses it once per window size among the
// subscribers that have compression without context takeover, if the message is large enough;
// once per subscriber that keeps its context) and queues it for every current subscriber of
// channel except the socket whose id is except (0: none).
func (b *Broker) SendToChannel(channel, data []byte, text bool, except uint64) {
	b.SendToChannelHeld(channel, data, text, except, nil)
}

// SendToChannelHeld is SendToChannel, except that when held is not nil the subscribers are held
// as SendHeld holds a socket: a batch that broadcasts to the same sockets many times writes each
// of them once, at its end (FlushHeld).
func (b *Broker) SendToChannelHeld(channel, data []byte, text bool, except uint64, held *[]*Conn) {
	s := b.chanShard(channel)
	s.mu.RLock()
	set := s.m[string(channel)]
	if len(set) == 0 {
		s.mu.RUnlock()
		return
	}
	op := opFor(text)
	var plain []byte
	var packed [maxWindowBits + 1][]byte // by window bits, compressed on first need
	var useless uint16                   // window bits for which compressing did not make it smaller
	compress := len(data) >= compressMin
	sent := 0
	for c := range set {
		if c.id == except {
			continue
		}
		if c.deflate != 0 && compress {
			if c.deflate&deflateTakeover != 0 {
				c.queueFrame(nil, op, data, held) // compressed with c's own context
				sent++
				continue
			}
			bits := c.deflate
			if packed[bits] == nil && useless&(1<<bits) == 0 {
				if packed[bits] = compressedFrame(op, data, bits, nil); packed[bits] == nil {
					useless |= 1 << bits
				}
			}
			if packed[bits] != nil {
				c.enqueueHeld(packed[bits], held)
				sent++
				continue
			}
		}
		if plain == nil {
			plain = encodeFrame(op, data)
		}
		c.enqueueHeld(plain, held)
		sent++
	}
	s.mu.RUnlock()
	b.counters.messagesOut.Add(uint64(sent))
}

// SubscriberCount returns how many sockets are subscribed to channel.
func (b *Broker) SubscriberCount(channel []byte) int {
	s := b.chanShard(channel)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m[string(channel)])
}

// Subscriptions returns the channels socket id is subscribed to (none if it is unknown or closed).
func (b *Broker) Subscriptions(id uint64) [][]byte {
	c := b.lookup(id)
	if c == nil {
		return nil
	}
	c.subMu.Lock()
	defer c.subMu.Unlock()
	out := make([][]byte, 0, len(c.chans))
	for name := range c.chans {
		out = append(out, []byte(name))
	}
	return out
}

// Subscribe adds socket id to channel. It returns true if added; false if already subscribed or
// if the socket is unknown or closed (then nothing is stored).
func (b *Broker) Subscribe(id uint64, channel []byte) bool {
	c := b.lookup(id)
	if c == nil {
		return false
	}
	s := b.chanShard(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	return b.addLocked(s, string(channel), c)
}

// addLocked subscribes c to name in s (locked).
func (b *Broker) addLocked(s *chanShard, name string, c *Conn) bool {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	if c.dead {
		return false
	}
	set := s.m[name]
	if _, ok := set[c]; ok {
		return false
	}
	if set == nil {
		set = make(map[*Conn]struct{})
		s.m[name] = set
	}
	set[c] = struct{}{}
	if c.chans == nil {
		c.chans = make(map[string]struct{})
	}
	c.chans[name] = struct{}{}
	return true
}

// Unsubscribe removes socket id from channel. It returns true if it was subscribed.
func (b *Broker) Unsubscribe(id uint64, channel []byte) bool {
	c := b.lookup(id)
	if c == nil {
		return false
	}
	s := b.chanShard(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	c.subMu.Lock()
	defer c.subMu.Unlock()
	set := s.m[string(channel)]
	if _, ok := set[c]; !ok {
		return false
	}
	delete(set, c)
	if len(set) == 0 {
		delete(s.m, string(channel))
	}
	delete(c.chans, string(channel))
	return true
}

// CopySubscriptions subscribes every socket subscribed to from (at call time) to to.
func (b *Broker) CopySubscriptions(from, to []byte) {
	if bytes.Equal(from, to) {
		return
	}
	fi, ti := b.chanIndex(from), b.chanIndex(to)
	sf, st := &b.chans[fi], &b.chans[ti]
	switch {
	case fi == ti:
		sf.mu.Lock()
		defer sf.mu.Unlock()
	case fi < ti:
		sf.mu.RLock()
		defer sf.mu.RUnlock()
		st.mu.Lock()
		defer st.mu.Unlock()
	default:
		st.mu.Lock()
		defer st.mu.Unlock()
		sf.mu.RLock()
		defer sf.mu.RUnlock()
	}
	set := sf.m[string(from)]
	if len(set) == 0 {
		return
	}
	name := string(to)
	for c := range set {
		b.addLocked(st, name, c)
	}
}

// SetToken stores a copy of token for socket id (nil clears it). Unknown id: no-op.
func (b *Broker) SetToken(id uint64, token []byte) {
	c := b.lookup(id)
	if c == nil {
		return
	}
	if token == nil {
		c.token.Store(nil)
		return
	}
	t := bytes.Clone(token)
	c.token.Store(&t)
}

func opFor(text bool) ws.OpCode {
	if text {
		return ws.OpText
	}
	return ws.OpBinary
}

// Registry.

func (b *Broker) lookup(id uint64) *Conn {
	s := &b.reg[id%regShards]
	s.mu.RLock()
	c := s.m[id]
	s.mu.RUnlock()
	return c
}

func (b *Broker) register(c *Conn) {
	s := &b.reg[c.id%regShards]
	s.mu.Lock()
	s.m[c.id] = c
	s.mu.Unlock()
}

func (b *Broker) unregister(c *Conn) {
	s := &b.reg[c.id%regShards]
	s.mu.Lock()
	if s.m[c.id] == c {
		delete(s.m, c.id)
	}
	s.mu.Unlock()
}

// Channels. Lock order: channel shard(s), then Conn.subMu.

func (b *Broker) chanIndex(name []byte) uint64 { return maphash.Bytes(b.seed, name) % chanShards }

func (b *Broker) chanShard(name []byte) *chanShard { return &b.chans[b.chanIndex(name)] }

// dropSubs removes c from every channel and refuses later subscriptions.
func (b *Broker) dropSubs(c *Conn) {
	c.subMu.Lock()
	c.dead = true
	names := c.chans
	c.chans = nil
	c.subMu.Unlock()
	for name := range names {
		s := &b.chans[maphash.String(b.seed, name)%chanShards]
		s.mu.Lock()
		if set := s.m[name]; set != nil {
			delete(set, c)
			if len(set) == 0 {
				delete(s.m, name)
			}
		}
		s.mu.Unlock()
	}
}

func (b *Broker) flusherFor(c *Conn) *flusher { return b.flushers[c.id%uint64(len(b.flushers))] }

// Handler calls. A panicking Handler is logged and never takes the process down.

func (b *Broker) callOpen(c *Conn, req *Request) {
	defer func() {
		if r := recover(); r != nil {
			b.log.Error().Interface("panic", r).Bytes("stack", debug.Stack()).EmbedObject(c).Msg("Handler.Open panicked; rejecting")
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

func (b *Broker) recoverMessage(c *Conn) {
	if r := recover(); r != nil {
		b.log.Error().Interface("panic", r).Bytes("stack", debug.Stack()).EmbedObject(c).Msg("Handler panicked; closing with 1011")
		c.closeWith(ws.StatusInternalServerError, nil)
	}
}

// callCatchUp asks a CatchUpHandler to catch up with c; a panic there is logged and the close
// goes ahead at once.
func (b *Broker) callCatchUp(h CatchUpHandler, c *Conn) {
	defer func() {
		if r := recover(); r != nil {
			b.log.Error().Interface("panic", r).Bytes("stack", debug.Stack()).EmbedObject(c).Msg("Handler.CatchUp panicked")
			c.caughtUp()
		}
	}()
	h.CatchUp(c)
}

func (b *Broker) callClose(c *Conn) {
	defer func() {
		if r := recover(); r != nil {
			b.log.Error().Interface("panic", r).Bytes("stack", debug.Stack()).EmbedObject(c).Msg("Handler.Close panicked")
		}
	}()
	b.h.Close(c)
}

// counters are the broker's running totals (Stats).
type counters struct {
	accepted, messagesIn, bytesIn, messagesOut, bytesOut atomic.Uint64
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
	}
	k.closedMu.Lock()
	for code, n := range k.closed {
		st.Closed[code] = n
	}
	k.closedMu.Unlock()
	for i := range b.chans {
		s := &b.chans[i]
		s.mu.RLock()
		st.Channels += len(s.m)
		s.mu.RUnlock()
	}
	for i := range b.reg {
		s := &b.reg[i]
		s.mu.RLock()
		for _, c := range s.m {
			st.QueuedBytes += int64(c.queued())
		}
		s.mu.RUnlock()
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
// error says "cannot <what> <addr>: <the OS reason>".
func listenTCP(addr, what string, keepAlive time.Duration) (net.Listener, error) {
	lc := net.ListenConfig{Control: deferAccept, KeepAlive: keepAlive}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err // "bind: address already in use" without "listen tcp <addr>: "
		}
		return nil, fmt.Errorf("cannot %s %q: %w", what, addr, err)
	}
	return ln, nil
}
