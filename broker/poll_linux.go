//go:build linux

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
)

// The reading side of accepted connections on Linux, TLS ones included: no goroutine per
// connection. Each socket is registered (edge-triggered) with one of a few epoll instances, the
// pollers. A poller's epoll fd is itself waited on through Go's netpoller (an epoll fd is
// pollable), so no OS thread blocks in epoll_wait. A ready connection is handed to a goroutine of
// the poller's reader pool, which reads it until EAGAIN and calls the Handler: a call that
// blocks holds that goroutine and that connection only. A TLS connection's socket never blocks
// once accepted (tlssocket.go), so crypto/tls is read the same way.

const (
	pollEvents = 128      // events taken per epoll_wait
	pollBudget = 64 << 10 // bytes one turn reads before the connection goes to the back of the queue
	// pollRecheck: after a short read whose handling took this long, more input has likely come
	// meanwhile (a peer streaming while a broadcast was queued): it is read in the same turn.
	pollRecheck = 20 * time.Microsecond

	epollET = 1 << 31 // EPOLLET; syscall's constant is negative

	// Events after which the peer's end of input (or an error) is still to be read.
	epollPeerDone = syscall.EPOLLRDHUP | syscall.EPOLLHUP | syscall.EPOLLERR
)

// Reading states of a polled connection (Conn.rstate). Input and timers move it from idle to
// running (and hand it to a reader) or from running to more; the holder moves it back to idle
// only from running, so nothing that came during a turn is missed and nothing is ever re-armed.
const (
	rRunning int32 = iota // held by one goroutine: queued for a reader, or being read (the zero value: whoever registers it holds it)
	rIdle                 // waiting for input: nobody holds it
	rMore                 // held, and input or a timer came since its last read
)

// poller is one epoll instance and the goroutines that read its connections.
type poller struct {
	b    *Broker
	epfd int
	f    *os.File // epfd, registered with Go's netpoller
	rc   syscall.RawConn

	mu sync.Mutex
	// slots are the registered connections; an event names one by index and generation, never by
	// fd, which the kernel reuses as soon as it is closed.
	slots    []pollSlot
	free     []uint32
	interval time.Duration // between sweeps (timers); shrinks as connections need
	lastTrim time.Duration

	readers readerPool
}

type pollSlot struct {
	c   *Conn
	gen uint32
}

// pollers returns the broker's pollers, created on first use; none if epoll is unavailable
// (connections then keep a reader goroutine each).
func (b *Broker) pollers() []*poller {
	b.pollOnce.Do(func() {
		for range runtime.GOMAXPROCS(0) {
			p, err := newPoller(b)
			if err != nil {
				b.logAt(slog.LevelWarn, "epoll unavailable; one reader goroutine per connection", slog.Any("error", err))
				b.polls = nil
				return
			}
			b.polls = append(b.polls, p)
		}
	})
	return b.polls
}

// pollerFor picks the poller of a new plain connection (round robin), nil for none.
func (b *Broker) pollerFor() *poller {
	ps := b.pollers()
	if len(ps) == 0 {
		return nil
	}
	return ps[b.pollNext.Add(1)%uint64(len(ps))]
}

func newPoller(b *Broker) (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil { // so that os.NewFile registers it with the netpoller
		syscall.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(fd), "epoll")
	rc, err := f.SyscallConn()
	if err == nil {
		err = f.SetReadDeadline(time.Now().Add(time.Second)) // fails if the netpoller did not take it
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &poller{b: b, epfd: fd, f: f, rc: rc, interval: time.Second}
	p.readers.cond.L = &p.readers.mu
	go p.run()
	return p, nil
}

// run waits for events and hands ready connections to readers; at every sweep interval it
// looks at the connections' timers.
func (p *poller) run() {
	events := make([]syscall.EpollEvent, pollEvents)
	ready := make([]*Conn, 0, pollEvents)
	wait := func(fd uintptr) bool {
		// Until an epoll_wait returns fewer than it could: every event that comes after that one
		// wakes the netpoller again.
		for p.dispatchReady(events, ready, nil) == len(events) {
		}
		return false
	}
	for {
		err := p.rc.Read(wait)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			p.b.logAt(slog.LevelError, "poller stopped", slog.Any("error", err)) // never: the epoll fd is never closed
			return
		}
		p.sweep()
	}
}

// dispatchReady takes the events that are there now (without waiting) and hands their
// connections to readers, or serves those that here (if not nil) picks; ready is scratch space.
// It returns how many events it took.
func (p *poller) dispatchReady(events []syscall.EpollEvent, ready []*Conn, here func(*Conn) bool) int {
	n, err := syscall.EpollWait(p.epfd, events, 0)
	for err == syscall.EINTR {
		n, err = syscall.EpollWait(p.epfd, events, 0)
	}
	if n <= 0 {
		return 0
	}
	ready = p.resolve(events[:n], ready[:0])
	if here != nil {
		k := 0
		for _, c := range ready {
			if here(c) {
				p.serve(c, true)
			} else {
				ready[k] = c
				k++
			}
		}
		clear(ready[k:])
		ready = ready[:k]
	}
	p.readers.dispatch(ready)
	clear(ready)
	return n
}

// pollerFDs is embedder.Hooks.PollerFDs.
func (b *Broker) pollerFDs() []int {
	var fds []int
	for _, p := range b.pollers() {
		fds = append(fds, p.epfd)
	}
	return fds
}

// dispatchReady is embedder.Hooks.DispatchReady (here may be nil): what the pollers' own
// goroutines do when Go's netpoller wakes them, on the caller's thread.
func (b *Broker) dispatchReady(here func(*Conn) bool) bool {
	var events [pollEvents]syscall.EpollEvent
	var ready [pollEvents]*Conn
	found := false
	for _, p := range b.pollers() {
		if p.dispatchReady(events[:], ready[:0], here) > 0 {
			found = true
		}
	}
	return found
}

// resolve appends to ready the connections of events that the caller must hand to readers.
func (p *poller) resolve(events []syscall.EpollEvent, ready []*Conn) []*Conn {
	p.mu.Lock()
	for _, e := range events {
		i, gen := uint32(e.Fd), uint32(e.Pad)
		if int(i) >= len(p.slots) || p.slots[i].gen != gen {
			continue // the connection ended since
		}
		c := p.slots[i].c
		if c == nil {
			continue
		}
		if e.Events&epollPeerDone != 0 {
			c.peerDone.Store(true) // before claim: the holder's next turn must see it
		}
		if c.claim() {
			ready = append(ready, c)
		}
	}
	p.mu.Unlock()
	return ready
}

// sweep hands to readers the connections whose timer is due (idle ping, idle close, drain
// deadline), lets surplus readers go, and sets the next sweep.
func (p *poller) sweep() {
	now := p.b.clock()
	var due []*Conn
	p.mu.Lock()
	for i := range p.slots {
		c := p.slots[i].c
		if c == nil {
			continue
		}
		if at := c.wakeAt.Load(); at != 0 && now >= time.Duration(at) && c.claim() {
			due = append(due, c)
		}
	}
	iv := p.interval
	trim := now-p.lastTrim >= p.b.readerLinger
	if trim {
		p.lastTrim = now
	}
	p.mu.Unlock()
	p.readers.dispatch(due)
	if trim {
		p.readers.trim()
	}
	p.f.SetReadDeadline(time.Now().Add(iv))
}

// add registers c (held by the caller) with the poller.
func (p *poller) add(c *Conn) error {
	// Sweep often enough for c's idle timeout, drain deadline and catch-up: an eighth of the shortest.
	d := min(p.b.drainTimeout, p.b.catchUpTimeout)
	if idle := c.l.lim.IdleTimeout; idle > 0 {
		d = min(d, idle)
	}
	iv := min(max(d/8, 10*time.Millisecond), time.Second)

	p.mu.Lock()
	var i uint32
	if n := len(p.free); n > 0 {
		i = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		i = uint32(len(p.slots))
		p.slots = append(p.slots, pollSlot{})
	}
	p.slots[i].c = c
	c.slot = i
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: int32(i), Pad: int32(p.slots[i].gen)}
	sooner := iv < p.interval
	if sooner {
		p.interval = iv
	}
	p.mu.Unlock()
	if sooner {
		p.f.SetReadDeadline(time.Now().Add(iv))
	}

	var err error
	if cerr := c.rc.Control(func(fd uintptr) {
		err = os.NewSyscallError("epoll_ctl", syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev))
	}); cerr != nil {
		err = cerr
	}
	if err != nil {
		p.release(c)
		return err
	}
	c.polled = true
	return nil
}

// remove deregisters c; the events raised for it and not yet taken are dropped. The socket must still be open.
func (p *poller) remove(c *Conn) {
	if !c.polled {
		return
	}
	c.polled = false
	c.rc.Control(func(fd uintptr) { syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil) })
	p.release(c)
}

// release frees c's slot; the new generation makes stale events miss.
func (p *poller) release(c *Conn) {
	p.mu.Lock()
	s := &p.slots[c.slot]
	s.c = nil
	s.gen++
	p.free = append(p.free, c.slot)
	p.mu.Unlock()
}

// wake makes c's holder (or a reader) look at it: its drain deadline was set.
func (p *poller) wake(c *Conn) {
	if c.claim() {
		p.readers.dispatch([]*Conn{c})
	}
}

// claim records input or a timer for c. It reports whether the caller now holds c and must
// hand it to a reader.
func (c *Conn) claim() bool {
	for {
		switch c.rstate.Load() {
		case rIdle:
			if c.rstate.CompareAndSwap(rIdle, rRunning) {
				return true
			}
		case rRunning:
			if c.rstate.CompareAndSwap(rRunning, rMore) {
				return false
			}
		default:
			return false
		}
	}
}

// poll is the rest of an accepted connection's life on its poller: it handles what came with the
// request and registers c; from then on readers serve it. Unless mayCall, it runs where Handler
// calls must not be made (Accept's caller, which may be the thread they would wait for): what
// needs them, and c's first turn if input came, goes to a goroutine. A TLS connection always has
// a first turn: crypto/tls may hold input that came with the request, which raises no event.
func (p *poller) poll(c *Conn, mayCall bool) {
	if !mayCall && (len(c.pre) > 0 || c.state.Load().ending() || c.tc != nil) {
		go p.poll(c, true)
		return
	}
	c.lastIn = p.b.clock()
	c.draining = c.processPre()
	if err := p.add(c); err != nil {
		c.logAt(slog.LevelWarn, "cannot register with epoll; closing", slog.Any("error", err))
		if mayCall {
			p.end(c)
		} else {
			go p.end(c)
		}
		return
	}
	// No first read: input that came after the request raised an event when c was added (the
	// kernel reports what is already there), so the read would only say EAGAIN. One system call
	// of the twenty a connection's life takes.
	if c.tc == nil && !c.draining && c.settle(0) == turnDone {
		if c.rstate.CompareAndSwap(rRunning, rIdle) {
			return
		}
		c.rstate.Store(rRunning) // input came: read it now
	}
	if mayCall {
		p.serve(c, false)
	} else {
		p.readers.dispatch([]*Conn{c})
	}
}

// end ends an accepted connection that its poller holds.
func (p *poller) end(c *Conn) {
	c.finish()
	p.b.connDone(c, nil)
}

// readerPool runs the turns of a poller's ready connections: a queue, and goroutines that take
// from it. A connection queued finds an idle reader or gets a new one, so a reader blocked in a
// Handler call never delays another connection.
type readerPool struct {
	mu      sync.Mutex
	cond    sync.Cond
	queue   []*Conn
	head    int
	idle    int // readers waiting for work
	minIdle int // the fewest idle readers since the last trim
	quit    int // readers asked to exit
}

// dispatch queues held connections and wakes or starts a reader for each.
func (r *readerPool) dispatch(cs []*Conn) {
	if len(cs) == 0 {
		return
	}
	r.mu.Lock()
	r.queue = append(r.queue, cs...)
	start := 0
	for range cs {
		if r.idle > 0 {
			r.idle--
			r.cond.Signal()
		} else {
			start++
		}
	}
	r.minIdle = min(r.minIdle, r.idle)
	r.mu.Unlock()
	for range start {
		go r.run()
	}
}

// trim lets the readers that stayed idle since the last trim exit.
func (r *readerPool) trim() {
	r.mu.Lock()
	if k := r.minIdle; k > 0 {
		r.idle -= k
		r.quit += k
		for range k {
			r.cond.Signal()
		}
	}
	r.minIdle = r.idle
	r.mu.Unlock()
}

// run is a reader goroutine.
func (r *readerPool) run() {
	for {
		r.mu.Lock()
		for r.head == len(r.queue) {
			if r.quit > 0 {
				r.quit--
				r.mu.Unlock()
				return
			}
			r.idle++
			r.cond.Wait()
		}
		c := r.queue[r.head]
		r.queue[r.head] = nil
		r.head++
		if r.head == len(r.queue) {
			r.queue, r.head = r.queue[:0], 0
		}
		r.mu.Unlock()
		c.pl.serve(c, false)
	}
}

// readState is a reader's scratch space: the read buffer and the read callback, created once so
// that a read allocates nothing. An idle connection holds none.
type readState struct {
	buf []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

var readStates = sync.Pool{New: func() any {
	s := &readState{buf: make([]byte, readBufSize)}
	s.fn = s.read
	return s
}}

func (s *readState) read(fd uintptr) bool {
	s.n, s.err = recv(fd, s.buf)
	return true // never wait: the poller does
}

// readTLSNow reads what c's TLS layer has now into s.buf, setting s.n and s.err as read does.
func (s *readState) readTLSNow(c *Conn) {
	n, err := c.tc.Read(s.buf)
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

// Results of a turn.
const (
	turnDone    = iota // nothing more to read: c may go idle
	turnRequeue        // the budget is spent and there is more: back to the queue
	turnEnd            // the connection ended
)

// serve runs turns on c (held) until it goes idle, goes back to the queue or ends.
func (p *poller) serve(c *Conn, here bool) {
	c.here = here
	s := readStates.Get().(*readState)
	defer func() {
		readStates.Put(s)
		if r := recover(); r != nil {
			p.b.connDone(c, r) // a bug in the broker: end the connection, keep the process
		}
	}()
	for {
		switch c.turn(s) {
		case turnEnd:
			p.end(c)
			return
		case turnRequeue:
			// Back to the end of the queue (not only to this goroutine's next turn: a first turn
			// may run on a goroutine that no queue feeds, or on dispatchReady's caller).
			p.readers.dispatch([]*Conn{c})
			return
		}
		if c.rstate.CompareAndSwap(rRunning, rIdle) {
			return
		}
		c.rstate.Store(rRunning) // more came: another turn
	}
}

// turn reads c until it is drained (at most pollBudget bytes), then sees to its timers: the
// polled form of readLoop.
//
// A read that does not fill the buffer emptied the socket's receive queue, so the turn ends there
// without the read that would only say EAGAIN (a third of the system calls of an echo): with
// edge-triggered epoll, every segment that arrives after it raises a new event. Two exceptions:
//   - an end of input that had already arrived when the event was reported raises no event after
//     it, so after an event with peerDone the turn reads until EAGAIN or the end;
//   - when handling the read took pollRecheck or more, the turn reads again: what came meanwhile
//     is cheaper to read now than through its event, and the writes it causes coalesce with this
//     turn's (fan-out: without it, half as many messages per write).
func (c *Conn) turn(s *readState) int {
	sink := (*connSink)(c)
	got := 0
	for got < pollBudget {
		if c.tc != nil {
			s.readTLSNow(c)
		} else if err := c.rc.Read(s.fn); err != nil {
			c.logAt(slog.LevelDebug, "read ended", slog.Any("error", err))
			return turnEnd
		}
		if s.err == syscall.EAGAIN {
			break
		}
		if s.err != nil {
			c.logAt(slog.LevelDebug, "read failed", slog.Any("error", s.err))
			return turnEnd
		}
		if s.n == 0 {
			return turnEnd // EOF
		}
		got += s.n
		// (crypto/tls returns a record at a time, so a short TLS read says nothing.)
		short := c.tc == nil && s.n < len(s.buf) && !c.peerDone.Load()
		if !c.draining {
			start := c.b.clock()
			c.draining = c.process(s.buf[:s.n], sink)
			short = short && c.b.clock()-start < pollRecheck
		}
		if short {
			break
		}
	}
	return c.settle(got)
}

// settle sees to c's timers at the end of a turn that read got bytes. Only time waiting for
// input counts as idle: the clock restarts when a turn that read something ends, after its
// Handler calls.
func (c *Conn) settle(got int) int {
	if !c.draining && c.state.Load().ending() {
		c.draining = true
	}
	idle := c.l.lim.IdleTimeout
	if !c.draining && idle == 0 {
		return c.turnResult(got)
	}
	now := c.b.clock()
	if c.draining {
		at, passed := c.drainPassed(now) // set with stateClosing (a polled connection is accepted), or by closeAfterCatchUp
		if passed {
			c.logAt(slog.LevelDebug, "drain deadline passed")
			return turnEnd
		}
		c.wakeAt.Store(int64(at))
		return c.turnResult(got)
	}
	switch {
	case got > 0:
		c.lastIn, c.pinged = now, false
	case now-c.lastIn >= idle:
		c.lastIn = now // the ping's wait for an answer starts now
		c.idleTimedOut()
	}
	c.wakeAt.Store(int64(c.lastIn + idle))
	return c.turnResult(got)
}

func (c *Conn) turnResult(got int) int {
	if got >= pollBudget {
		return turnRequeue
	}
	return turnDone
}
