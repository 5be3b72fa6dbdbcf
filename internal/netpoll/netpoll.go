// Package netpoll reads many non-blocking connections with few goroutines. Each connection is
// registered (edge-triggered) with one of a few epoll instances, the pollers; a poller's epoll fd
// is itself waited on through Go's netpoller (an epoll fd is pollable), so no OS thread blocks in
// epoll_wait, unless a thread of the caller's watches it (Set.Watch). A ready connection is handed to a goroutine of the poller's reader pool, which
// calls its turn (Config.Turn): a turn that blocks holds that goroutine and that connection only.
//
// What a turn does (read until EAGAIN, parse, time out) is the caller's; this package owns who
// may run a connection's turn and when: the slot table that names a connection by index and
// generation (never by fd, which the kernel reuses as soon as it is closed), the hold that lets
// one goroutine at a time run a connection's turns, wake-ups at a time (Entry.SetWakeAt), the
// reader pool, and reading on a caller's thread (Set.DispatchReady). Linux only (Supported);
// elsewhere the caller reads each connection with a goroutine of its own.
package netpoll

import (
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Result is what a turn reports.
type Result int

const (
	// Drained: the turn read all there was; the connection may go idle.
	Drained Result = iota
	// Requeue: the turn's budget is spent and there is more to read; the connection goes to the
	// back of its poller's queue.
	Requeue
	// Ended: the turn ended the connection (and removed it: Poller.Remove); nobody holds it now.
	Ended
)

// Config is what a Set's pollers call on the connections they read, of type C.
type Config[C any] struct {
	// Entry returns c's Entry, kept in c.
	Entry func(c C) *Entry[C]
	// Turn reads c once (at most a budget, then Requeue) and sets its next wake-up
	// (Entry.SetWakeAt). It is called by the goroutine that holds c: a reader, or with here the
	// caller of Set.DispatchReady.
	Turn func(c C, here bool) Result
	// Writable, if not nil, is told of room in c's socket once ReportRoom asked for it. It is
	// called with the poller's lock held, and must not wait.
	Writable func(c C)
	// Clock is the time that wake-ups are set on.
	Clock func() time.Duration
	// ReaderLinger: the readers that stay idle through a whole period of this length exit.
	ReaderLinger time.Duration
	// Logger gets the one error a poller can meet: its epoll fd failing. Nil discards.
	Logger *slog.Logger
}

// Reading states of a connection (Entry.state). Input and wake-ups move it from idle to running
// (and hand it to a reader) or from running to more; the holder moves it back to idle only from
// running (Entry.Release), so nothing that came during a turn is missed and nothing is ever
// re-armed.
const (
	running int32 = iota // held by one goroutine: queued for a reader, or being read (the zero value: whoever registers it holds it)
	idle                 // waiting for input: nobody holds it
	more                 // held, and input or a wake-up came since its last read
)

// Entry is a connection's state in the poller that reads it; it lives in the connection
// (Config.Entry), so that polling allocates nothing per connection.
type Entry[C any] struct {
	wakeAt atomic.Int64 // when the poller hands c to a reader (Config.Clock), 0: never
	poller *Poller[C]   // set by Set.Assign before c is shared, never changed; nil: not polled
	slot   uint32       // c's index in poller.slots while registered
	state  atomic.Int32 // running, idle or more
	// peerDone: an event reported the peer's end of input (or an error).
	peerDone   atomic.Bool
	registered bool // with poller's epoll instance (Add, Remove)
}

// Poller returns the poller that reads the connection, nil if none does (Set.Assign).
func (e *Entry[C]) Poller() *Poller[C] { return e.poller }

// PeerDone reports whether an event reported the peer's end of input (or an error): a short read
// then does not mean that the socket is drained, as the end is still to be read.
func (e *Entry[C]) PeerDone() bool { return e.peerDone.Load() }

// SetWakeAt has the poller hand the connection to a reader at at (on Config.Clock) or soon after
// (within the interval Add was told), whether or not input came; 0: never.
func (e *Entry[C]) SetWakeAt(at time.Duration) { e.wakeAt.Store(int64(at)) }

// Release ends the caller's hold on the connection. It reports false if input or a wake-up came
// since the hold's last turn: the caller then holds it still, for another turn.
func (e *Entry[C]) Release() bool {
	if e.state.CompareAndSwap(running, idle) {
		return true
	}
	e.state.Store(running)
	return false
}

// claim records input or a wake-up for the connection. It reports whether the caller now holds
// it and must hand it to a reader.
func (e *Entry[C]) claim() bool {
	for {
		switch e.state.Load() {
		case idle:
			if e.state.CompareAndSwap(idle, running) {
				return true
			}
		case running:
			if e.state.CompareAndSwap(running, more) {
				return false
			}
		default:
			return false
		}
	}
}

// Set is the pollers of one kind of connection, numbered from 0: a new connection goes on each in
// turn, or on the one its caller names. A nil Set has none: its connections are read another way.
type Set[C any] struct {
	cfg     Config[C]
	growMu  sync.Mutex
	pollers atomic.Pointer[[]*Poller[C]] // replaced, never changed, as the Set grows
	next    atomic.Uint64
}

// NewSet starts n pollers; see Supported.
func NewSet[C any](n int, cfg Config[C]) (*Set[C], error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Set[C]{cfg: cfg}
	s.pollers.Store(&[]*Poller[C]{})
	if err := s.Grow(n); err != nil {
		return nil, err
	}
	return s, nil
}

// Grow starts pollers until the Set has at least n (none in a nil Set: ErrUnsupported).
func (s *Set[C]) Grow(n int) error {
	if s == nil {
		return errors.ErrUnsupported
	}
	s.growMu.Lock()
	defer s.growMu.Unlock()
	ps := *s.pollers.Load()
	for len(ps) < n {
		p, err := newPoller(&s.cfg)
		if err != nil {
			return err // the pollers started keep their goroutine and fd: as every poller does, for the life of the process
		}
		ps = append(ps[:len(ps):len(ps)], p)
		s.pollers.Store(&ps)
	}
	return nil
}

// Assign gives a new connection's entry e its poller, round robin (none from a nil Set); the
// connection is added to it with Poller.Add.
func (s *Set[C]) Assign(e *Entry[C]) {
	if s != nil {
		ps := *s.pollers.Load()
		e.poller = ps[s.next.Add(1)%uint64(len(ps))]
	}
}

// AssignTo gives e poller i if the Set has it (Grow), else one round robin (Assign).
func (s *Set[C]) AssignTo(e *Entry[C], i int) {
	if ps := s.all(); i >= 0 && i < len(ps) {
		e.poller = ps[i]
		return
	}
	s.Assign(e)
}

// FD returns poller i's epoll fd, -1 if the Set has no poller i. It is readable while
// connections on that poller have input that no reader was handed yet; it stays open as long as
// the process.
func (s *Set[C]) FD(i int) int {
	if ps := s.all(); i >= 0 && i < len(ps) {
		return ps[i].epfd
	}
	return -1
}

// Watch tells poller i that a thread watches its epoll fd (FD) from now on and reads what it
// finds (DispatchReady), or that it no longer does. While one does, the fd is out of Go's
// netpoller, which would wake a thread of Go's for every event that the watching thread takes
// anyway, and the poller looks at it itself only every watchedLook. Does nothing for a poller
// that the Set does not have.
func (s *Set[C]) Watch(i int, on bool) {
	if ps := s.all(); i >= 0 && i < len(ps) {
		p := ps[i]
		p.mu.Lock()
		p.watched = on
		p.wakeLocked()
		p.mu.Unlock()
	}
}

// wakeLocked has the run goroutine look at the poller's state again; p.mu is held.
func (p *Poller[C]) wakeLocked() {
	if p.joined != nil {
		p.joined.SetReadDeadline(time.Unix(1, 0))
		return
	}
	select {
	case p.poke <- struct{}{}:
	default:
	}
}

// all returns the Set's pollers (none from a nil Set).
func (s *Set[C]) all() []*Poller[C] {
	if s == nil {
		return nil
	}
	return *s.pollers.Load()
}

// Poller is one epoll instance and the goroutines that read its connections.
type Poller[C any] struct {
	cfg  *Config[C]
	epfd int

	mu sync.Mutex
	// joined is epfd's registration with Go's netpoller (a duplicate of it, so that closing it
	// takes epfd out), which the run goroutine waits on; nil while a thread watches epfd
	// (watched, Set.Watch). Only the run goroutine opens and closes it; the others wake that
	// goroutine by setting a past deadline on it (wakeLocked).
	joined   *os.File
	joinedRC syscall.RawConn
	watched  bool
	poke     chan struct{} // wakes the run goroutine while epfd is out of the netpoller
	failed   bool          // the run goroutine could not rejoin the netpoller once (logged)
	// slots are the registered connections; an event names one by index and generation.
	slots    []slot[C]
	free     []uint32
	interval time.Duration // between sweeps (wake-ups); shrinks as connections need
	lastTrim time.Duration

	readers readerPool[C]
}

type slot[C any] struct {
	c     C
	gen   uint32
	taken bool
}

// Add registers c, which the caller holds (as a new connection's first holder), with p, whose
// Entry p is (Set.Assign). rc is c's socket. Its wake-ups come at most about an eighth of
// shortest late: the shortest delay after which one is due.
func (p *Poller[C]) Add(c C, rc syscall.RawConn, shortest time.Duration) error {
	e := p.cfg.Entry(c)
	iv := min(max(shortest/8, 10*time.Millisecond), time.Second)

	p.mu.Lock()
	var i uint32
	if n := len(p.free); n > 0 {
		i = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		i = uint32(len(p.slots))
		p.slots = append(p.slots, slot[C]{})
	}
	p.slots[i].c, p.slots[i].taken = c, true
	e.slot = i
	gen := p.slots[i].gen
	if iv < p.interval {
		p.interval = iv
		p.wakeLocked() // it sweeps sooner
	}
	p.mu.Unlock()

	var err error
	if cerr := rc.Control(func(fd uintptr) { err = p.register(int(fd), i, gen) }); cerr != nil {
		err = cerr
	}
	if err != nil {
		p.release(e)
		return err
	}
	e.registered = true
	return nil
}

// Remove deregisters c, whose socket rc must still be open; the events raised for it and not yet
// taken are dropped. It does nothing if c is not registered.
func (p *Poller[C]) Remove(c C, rc syscall.RawConn) {
	e := p.cfg.Entry(c)
	if !e.registered {
		return
	}
	e.registered = false
	rc.Control(func(fd uintptr) { p.deregister(int(fd)) })
	p.release(e)
}

// release frees e's slot; the new generation makes stale events miss.
func (p *Poller[C]) release(e *Entry[C]) {
	p.mu.Lock()
	s := &p.slots[e.slot]
	var none C
	s.c, s.taken = none, false
	s.gen++
	p.free = append(p.free, e.slot)
	p.mu.Unlock()
}

// Wake gives c a turn soon, as a wake-up due now would: on a reader, or if c is held, after the
// turn its holder runs (for a wake-up that became due sooner than its last turn set).
func (p *Poller[C]) Wake(c C) {
	if p.cfg.Entry(c).claim() {
		p.readers.dispatch(p, c)
	}
}

// Dispatch hands c, which the caller holds, to a reader.
func (p *Poller[C]) Dispatch(c C) { p.readers.dispatch(p, c) }

// Serve runs turns on c, which the caller holds, until it goes idle, goes back to the queue or
// ends; here is passed on to Config.Turn.
func (p *Poller[C]) Serve(c C, here bool) {
	for {
		switch p.cfg.Turn(c, here) {
		case Ended:
			return
		case Requeue:
			// Back to the end of the queue (not only to this goroutine's next turn: a first turn
			// may run on a goroutine that no queue feeds, or on DispatchReady's caller).
			p.readers.dispatch(p, c)
			return
		}
		if p.cfg.Entry(c).Release() {
			return
		}
	}
}

// sweep hands to readers the connections whose wake-up is due and lets surplus readers go; it
// returns the time until the next sweep.
func (p *Poller[C]) sweep() time.Duration {
	now := p.cfg.Clock()
	var due []C
	p.mu.Lock()
	for i := range p.slots {
		s := &p.slots[i]
		if !s.taken {
			continue
		}
		e := p.cfg.Entry(s.c)
		if at := e.wakeAt.Load(); at != 0 && now >= time.Duration(at) && e.claim() {
			due = append(due, s.c)
		}
	}
	iv := p.interval
	trim := now-p.lastTrim >= p.cfg.ReaderLinger
	if trim {
		p.lastTrim = now
	}
	p.mu.Unlock()
	p.readers.dispatch(p, due...)
	if trim {
		p.readers.trim()
	}
	return iv
}

// readerPool runs the turns of a poller's ready connections: a queue, and goroutines that take
// from it. A connection queued finds an idle reader or gets a new one, so a reader blocked in a
// turn never delays another connection.
type readerPool[C any] struct {
	mu      sync.Mutex
	cond    sync.Cond
	queue   []C
	head    int
	idle    int // readers waiting for work
	minIdle int // the fewest idle readers since the last trim
	quit    int // readers asked to exit
}

// dispatch queues held connections of p and wakes or starts a reader for each.
func (r *readerPool[C]) dispatch(p *Poller[C], cs ...C) {
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
		go p.read()
	}
}

// trim lets the readers that stayed idle since the last trim exit.
func (r *readerPool[C]) trim() {
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

// read is a reader goroutine of p.
func (p *Poller[C]) read() {
	r := &p.readers
	var none C
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
		r.queue[r.head] = none
		r.head++
		if r.head == len(r.queue) {
			r.queue, r.head = r.queue[:0], 0
		}
		r.mu.Unlock()
		p.Serve(c, false)
	}
}
