package main

import (
	"bytes"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/wsbroker/wsbroker/broker"
	"github.com/wsbroker/wsbroker/internal/protocol"
)

// maxBacklog is how many bytes of events (their parcels included) may wait for one worker. Past
// it, the goroutine reading the socket that brings the next event waits (so its socket is not
// read and TCP pushes back on the client) until the worker catches up. Each waiting reader may add
// one event beyond the bound when it resumes.
const maxBacklog = 8 << 20

// parkedID pins sockets to the parking worker: it holds events while no JS worker is alive and
// hands them on when one registers.
const parkedID int32 = -1

// A queued event: the socket it belongs to (for re-pinning), where its bytes end in the batch,
// and the bytes that the events up to it stand for: theirs and their parcels'.
type queued struct {
	conn   *broker.Conn
	end    int
	weight int
}

// queuedAt is the entry of an event whose bytes end at end and that holds a parcel of parcelLen
// bytes (0 if none), after the entries evs.
func queuedAt(evs []queued, c *broker.Conn, end, parcelLen int) queued {
	prevEnd, prevWeight := 0, 0
	if n := len(evs); n > 0 {
		prevEnd, prevWeight = evs[n-1].end, evs[n-1].weight
	}
	return queued{conn: c, end: end, weight: prevWeight + end - prevEnd + parcelLen}
}

// backlog is how many bytes the events waiting for w stand for (w locked).
func (w *worker) backlog() int {
	if n := len(w.waitingEv); n > 0 {
		return w.waitingEv[n-1].weight
	}
	return 0
}

// worker is one JS thread's event queue. At most one batch is in flight per worker; events that
// arrive meanwhile accumulate, so batches grow exactly when JS falls behind.
type worker struct {
	id   int32
	seat int // the lowest not taken by a live worker when it registered: its poller's number (threadsRead)
	tid  int // its JS thread's id
	mu   sync.Mutex
	room sync.Cond // signalled when the backlog shrinks or the worker dies; uses mu
	mask uint32    // protocol.HandlerBit of each handler the thread registered
	dead bool

	waiting   []byte   // events not handed to JS yet, encoded as in a batch
	waitingEv []queued // where each of them ends in waiting
	// awaitingDone: a batch is in flight (handed over, its batchDone not come).
	awaitingDone bool
	handed       bool     // the batch in flight reached the JS thread's queue
	inflight     []byte   // kept until JS is done with it, in case it never arrives
	inflEv       []queued //
	spare        []byte   // the previous in-flight buffer, reused for the next batch
	spareEv      []queued

	// toCaller: the batch in flight was handed to the thread that made the call handing it over,
	// which runs it when that call returns (deliverFunc). Only the worker's own thread sets and
	// clears it.
	toCaller bool
	messages int // messages queued since the last batch ended (the schedule's watch decision)

	// cork holds the sends of this worker's handlers during the batch being handled, flushed when
	// the schedule says (pool.batchDone). Only the worker's own JS thread touches it and sched.
	cork  corker
	sched threadSchedule
}

// corker is what the pool needs of a worker's *broker.Cork (the pool's tests give it their own).
type corker interface {
	Len() int
	Flush()
}

// corkOf returns the cork in which sends made by worker id's handlers wait for the end of their
// batch, or nil for a call made outside a batch.
func (p *pool) corkOf(id int32) corker {
	if w := p.get(id); w != nil && w != &p.parking {
		return w.cork
	}
	return nil
}

// deliverFunc hands a batch to worker id's JS thread; false means that thread is gone. The bytes
// are copied before it returns. With toCaller the calling thread is that worker's own and runs
// the batch when its call into Go returns; else the batch is queued on the thread's event loop.
type deliverFunc func(id int32, batch []byte, toCaller bool) bool

// pool routes every socket's events to the worker the socket is pinned to (embedder.Hooks.Pin).
// Lock order: pool.mu, then a dead or parking worker's mu, then a live worker's mu; idleMu before
// any worker's mu.
type pool struct {
	deliver deliverFunc
	answer  func(id uint64, kind byte) // answers an open or a catch-up without JS (no handler there for it)
	newCork func() corker              // a worker's cork (Broker.NewCork)

	mu      sync.Mutex // serialises registration and retirement
	byID    atomic.Pointer[map[int32]*worker]
	live    atomic.Pointer[[]*worker]
	rr      atomic.Uint32
	parking worker

	stopping atomic.Bool // while stopping, readers never wait for a backlog to shrink
	idleMu   sync.Mutex  // with idle: drain and awaitHandled wait for workers to handle events
	idle     sync.Cond
	awaiting atomic.Int32 // awaitHandled calls waiting: every batch done signals idle meanwhile
}

func newPool(deliver deliverFunc, answer func(id uint64, kind byte), newCork func() corker) *pool {
	p := &pool{deliver: deliver, answer: answer, newCork: newCork}
	p.idle.L = &p.idleMu
	p.parking.room.L = &p.parking.mu
	p.parking.id = parkedID
	p.parking.mask = ^uint32(0)
	m := map[int32]*worker{parkedID: &p.parking}
	p.byID.Store(&m)
	p.live.Store(&[]*worker{})
	return p
}

func (p *pool) get(id int32) *worker { return (*p.byID.Load())[id] }

// pick chooses a live worker round-robin, or the parking worker when none is alive.
func (p *pool) pick() *worker {
	live := *p.live.Load()
	if len(live) == 0 {
		return &p.parking
	}
	return live[int(p.rr.Add(1)-1)%len(live)]
}

// closedTo reports that w takes no events (dead, or parking while a worker is alive). w is locked.
func (p *pool) closedTo(w *worker) bool {
	return w.dead || (w == &p.parking && len(*p.live.Load()) > 0)
}

// register adds worker id (chosen by the glue, never reused) and hands it, and the other live
// workers, whatever was parked. It returns how many workers are live.
func (p *pool) register(id int32, mask uint32, tid int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := &worker{id: id, seat: p.freeSeat(), mask: mask, tid: tid, cork: p.newCork()}
	w.room.L = &w.mu
	m := make(map[int32]*worker, len(*p.byID.Load())+1)
	for k, v := range *p.byID.Load() {
		m[k] = v
	}
	m[w.id] = w
	p.byID.Store(&m)

	// The parking lock is taken before the worker goes live: a reader that then finds parking
	// closed waits until the parked events, older than its own, are on their way.
	p.parking.mu.Lock()
	p.setLive(append(append([]*worker{}, *p.live.Load()...), w))
	p.rerouteLocked(&p.parking, events{p.parking.waiting, p.parking.waitingEv, 0, 0})
	p.parking.waiting, p.parking.waitingEv = p.parking.waiting[:0], p.parking.waitingEv[:0]
	p.parking.room.Broadcast()
	p.parking.mu.Unlock()
	return len(*p.live.Load())
}

// freeSeat is the lowest seat that no live worker holds. p.mu is held.
func (p *pool) freeSeat() int {
	taken := map[int]bool{}
	for _, w := range *p.live.Load() {
		taken[w.seat] = true
	}
	seat := 0
	for taken[seat] {
		seat++
	}
	return seat
}

// route pins a socket being accepted to a live worker, round robin, and returns that worker's
// seat, the poller the socket is to live on; -1 while no worker is alive (it is pinned when one
// is, and lives on any poller).
func (p *pool) route(c *broker.Conn) int {
	w := p.pick()
	if w == &p.parking {
		return -1
	}
	hooks.Pin(c).Store(w.id)
	return w.seat
}

func (p *pool) setLive(live []*worker) { p.live.Store(&live) }

func (p *pool) setMask(id int32, mask uint32) {
	if w := p.get(id); w != nil && w != &p.parking {
		w.mu.Lock()
		w.mask = mask
		w.mu.Unlock()
	}
}

// retire marks worker id dead and moves its events, oldest first, to live workers: those of the
// batch in flight after the first `handled` bytes (all of them if the thread never received it;
// none if handled < 0), then those that waited.
func (p *pool) retire(id int32, handled int) {
	w := p.get(id)
	if w == nil || w == &p.parking {
		return
	}
	w.cork.Flush() // the finalizer runs on the worker's thread: sends of a batch cut short
	if w.sched.pollerWatched {
		watching(id, false) // its poller's fd goes back to Go's netpoller
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	live := make([]*worker, 0, len(*p.live.Load()))
	for _, l := range *p.live.Load() {
		if l != w {
			live = append(live, l)
		}
	}
	p.setLive(live)

	w.mu.Lock()
	if w.dead {
		w.mu.Unlock()
		return
	}
	w.dead = true
	runs := []events{{w.waiting, w.waitingEv, 0, 0}}
	if !w.handed {
		handled = 0
	}
	if w.awaitingDone && handled >= 0 {
		n := 0
		for n < len(w.inflEv) && w.inflEv[n].end <= handled {
			n++
		}
		start, weight := 0, 0
		if n > 0 {
			start, weight = w.inflEv[n-1].end, w.inflEv[n-1].weight
		}
		runs = []events{{w.inflight, w.inflEv[n:], start, weight}, runs[0]}
	}
	p.rerouteLocked(w, runs...)
	w.waiting, w.waitingEv, w.inflight, w.inflEv, w.spare, w.spareEv = nil, nil, nil, nil, nil, nil
	w.awaitingDone = false
	w.room.Broadcast()
	w.mu.Unlock()
	p.signalIdle()
}

// events is a run of encoded events in bytes, from offset start, and where each ends; weight is
// the weight of the event before start (queued.weight).
type events struct {
	bytes  []byte
	evs    []queued
	start  int
	weight int
}

// rerouteLocked queues the events held by from (locked, taking no more events) on live workers,
// oldest first, each socket's events together and in order, then re-pins those sockets. Until the
// re-pinning, readers of those sockets find them pinned to from and wait on its lock, so no newer
// event overtakes the moved ones.
func (p *pool) rerouteLocked(from *worker, runs ...events) {
	dest := map[*broker.Conn]*worker{}
	for _, run := range runs {
		start, weight := run.start, run.weight
		for _, ev := range run.evs {
			to, ok := dest[ev.conn]
			if !ok {
				to = p.pick()
				dest[ev.conn] = to
			}
			to.mu.Lock()
			if p.wants(to, ev.conn, run.bytes[start]) {
				to.waiting = append(to.waiting, run.bytes[start:ev.end]...)
				parcelLen := ev.weight - weight - (ev.end - start)
				to.waitingEv = append(to.waitingEv, queuedAt(to.waitingEv, ev.conn, len(to.waiting), parcelLen))
				p.flushLocked(to, false)
			} else {
				dropParcelOf(run.bytes[start:ev.end])
			}
			to.mu.Unlock()
			start, weight = ev.end, ev.weight
		}
	}
	for c, to := range dest {
		hooks.Pin(c).CompareAndSwap(from.id, to.id)
	}
}

// repin moves conn off worker `from` to a live one, unless something else moved it already.
func (p *pool) repin(c *broker.Conn, from int32) {
	hooks.Pin(c).CompareAndSwap(from, p.pick().id)
}

// lockPinned returns the socket's worker, locked and taking events; a socket that is new, or whose
// worker died, is pinned to a live worker first.
func (p *pool) lockPinned(c *broker.Conn) *worker {
	for {
		id := hooks.Pin(c).Load()
		w := p.get(id)
		if w == nil { // a new socket
			p.repin(c, id)
			continue
		}
		w.mu.Lock()
		if p.closedTo(w) {
			w.mu.Unlock()
			p.repin(c, id)
			continue
		}
		return w
	}
}

// push queues one event of socket c on its worker, first waiting while that worker is too far
// behind. Opens, closes and catch-ups are handed to JS at once if the worker is idle; messages
// wait for the end of their read (readDone), so that those that came together go in one batch.
func (p *pool) push(c *broker.Conn, kind byte, data []byte, req *broker.Request) {
	p.queue(c, kind, data, nil, req)
}

// queue is push of a message that is data, or, when parts is not nil, parts one after the other.
func (p *pool) queue(c *broker.Conn, kind byte, data []byte, parts [][]byte, req *broker.Request) {
	w := p.lockPinned(c)
	for w.backlog() >= maxBacklog && !p.stopping.Load() && hooks.MayBlock(c) {
		if p.flushLocked(w, false) { // the messages of this read may be all that waits
			continue
		}
		w.room.Wait()
		if p.closedTo(w) {
			w.mu.Unlock()
			w = p.lockPinned(c)
		}
	}
	defer w.mu.Unlock()
	if !p.wants(w, c, kind) {
		return
	}
	parcelLen := 0
	switch kind {
	case kindOpen:
		w.waiting = appendOpen(w.waiting, c, req)
	case kindClose:
		w.waiting = appendClose(w.waiting, c)
	case kindCatchUp:
		w.waiting = appendCatchUp(w.waiting, c)
	default:
		n := len(data)
		for _, part := range parts {
			n += len(part)
		}
		if n >= parcelMin {
			w.waiting = appendParcel(w.waiting, kind, c, newParcel(c, data))
			parcelLen = n
		} else {
			if parts != nil {
				data = bytes.Join(parts, nil)
			}
			w.waiting = appendMessage(w.waiting, kind, c, data)
		}
		w.messages++
	}
	w.waitingEv = append(w.waitingEv, queuedAt(w.waitingEv, c, len(w.waiting), parcelLen))
	if kind != kindText && kind != kindBinary {
		p.flushLocked(w, readByOwnThread(c))
	}
}

// pushDrain queues the drain event of socket c on its worker and hands it to JS at once if the
// worker is idle. It comes from c's writer, not its reader, so it never waits for room (writers
// never wait for JS). A drain of a socket that is closing is dropped: checked under the worker's
// lock, it cannot follow the socket's close event, which is queued after Closing reports true.
func (p *pool) pushDrain(c *broker.Conn) {
	w := p.lockPinned(c)
	defer w.mu.Unlock()
	if c.Closing() || !p.wants(w, c, kindDrain) {
		return
	}
	w.waiting = appendDrain(w.waiting, c)
	w.waitingEv = append(w.waitingEv, queuedAt(w.waitingEv, c, len(w.waiting), 0))
	p.flushLocked(w, false)
}

// waitingBytes is how many bytes of events (their parcels included) wait for w.
func (w *worker) waitingBytes() int {
	w.mu.Lock()
	n := w.backlog()
	w.mu.Unlock()
	return n
}

// readDone hands the messages of socket c's last read to JS if its worker is idle.
func (p *pool) readDone(c *broker.Conn) {
	w := p.lockPinned(c)
	p.flushLocked(w, readByOwnThread(c))
	w.mu.Unlock()
}

// wants reports whether w (locked) takes events of kind for c. An open that no handler will
// judge is accepted at once. A catch-up is answered at once unless w's thread may still be
// handling c's messages: an event of c waits for it or is in flight, or it awaits its message
// handlers' promises (ordered delivery: its mask has protocol.HandlerBit(kindCatchUp)).
func (p *pool) wants(w *worker, c *broker.Conn, kind byte) bool {
	switch {
	case kind == kindCatchUp:
		awaits := w.mask&protocol.HandlerBit(kindCatchUp) != 0 && w.mask&(protocol.HandlerBit(kindText)|protocol.HandlerBit(kindBinary)) != 0
		if awaits || w.holds(c) {
			return true
		}
	case w.mask&protocol.HandlerBit(kind) != 0:
		return true
	}
	if kind == kindOpen || kind == kindCatchUp {
		p.answer(c.ID(), kind)
	}
	return false
}

// holds reports whether an event of c waits for w or is in flight to its thread (w locked).
func (w *worker) holds(c *broker.Conn) bool {
	return w.holdsAny(func(other *broker.Conn) bool { return other == c })
}

// holdsAny reports whether an event of a socket for which of is true waits for w or is in flight
// to its thread (w locked).
func (w *worker) holdsAny(of func(*broker.Conn) bool) bool {
	for _, ev := range w.waitingEv {
		if of(ev.conn) {
			return true
		}
	}
	for _, ev := range w.inflEv { // empty unless awaitingDone
		if of(ev.conn) {
			return true
		}
	}
	return false
}

// flushLocked hands the oldest waiting events to JS when no batch is in flight, and reports
// whether it did; toCaller is as in deliverFunc. If the thread is gone, the batch stays in flight
// until retire moves it on (the thread's finalizer calls retire).
func (p *pool) flushLocked(w *worker, toCaller bool) bool {
	if w.awaitingDone || w.dead || w == &p.parking || len(w.waitingEv) == 0 {
		return false
	}
	n := 1
	for n < len(w.waitingEv) && w.waitingEv[n].weight <= maxBatchBytes {
		n++
	}
	end, weight := w.waitingEv[n-1].end, w.waitingEv[n-1].weight
	w.inflight, w.inflEv = w.waiting[:end], w.waitingEv[:n]
	w.waiting = append(w.spare[:0], w.waiting[end:]...)
	rest := w.spareEv[:0]
	for _, ev := range w.waitingEv[n:] {
		rest = append(rest, queued{conn: ev.conn, end: ev.end - end, weight: ev.weight - weight})
	}
	w.waitingEv = rest
	w.spare, w.spareEv = nil, nil
	w.awaitingDone = true
	w.handed = p.deliver(w.id, w.inflight, toCaller)
	if w.handed && toCaller {
		w.toCaller = true // written by the worker's own thread only, like its clearing
	}
	return true
}

// finish is called when worker w's JS thread has handled the batch in flight: it hands the
// thread the next batch if events wait (toCaller as in deliverFunc), and reports whether events
// waited and whether messages came since the last batch ended. When it reports idle (nothing left
// for w), the caller calls signalIdle once the batch's sends are settled, so that drain returns
// after them.
func (p *pool) finish(w *worker, toCaller bool) (waited, messages, idle bool) {
	w.mu.Lock()
	waited = len(w.waitingEv) > 0
	messages = w.messages > 0
	w.messages = 0
	if w.awaitingDone {
		w.awaitingDone = false
		clear(w.inflEv) // drop the conn pointers
		w.spare, w.spareEv = w.inflight[:0], w.inflEv[:0]
		w.inflight, w.inflEv = nil, nil
		p.flushLocked(w, toCaller)
		if w.backlog() < maxBacklog {
			w.room.Broadcast()
		}
		idle = !w.awaitingDone
	}
	w.mu.Unlock()
	return waited, messages, idle
}

// takeToCaller reports whether a batch was handed to w's thread during its call into Go for it to
// run on return, and forgets it (w's own thread only).
func (w *worker) takeToCaller() bool {
	if !w.toCaller {
		return false
	}
	w.toCaller = false
	return true
}

func (p *pool) signalIdle() {
	p.idleMu.Lock()
	p.idle.Broadcast()
	p.idleMu.Unlock()
}

// setStopping makes readers stop waiting for backlogs (stop must not depend on JS keeping up
// with every socket) and wakes those that wait.
func (p *pool) setStopping(on bool) {
	p.stopping.Store(on)
	if !on {
		return
	}
	for _, w := range append(*p.live.Load(), &p.parking) {
		w.mu.Lock()
		w.room.Broadcast()
		w.mu.Unlock()
	}
}

// drain waits until every live worker has handled all its events.
func (p *pool) drain() { p.awaitHandled(func(*broker.Conn) bool { return true }) }

// awaitHandled waits until no live worker holds an event of a socket for which of is true: the
// events of those sockets queued before the call have been handled.
func (p *pool) awaitHandled(of func(*broker.Conn) bool) {
	p.awaiting.Add(1)
	defer p.awaiting.Add(-1)
	p.idleMu.Lock()
	defer p.idleMu.Unlock()
	for p.anyHolds(of) {
		p.idle.Wait()
	}
}

func (p *pool) anyHolds(of func(*broker.Conn) bool) bool {
	for _, w := range *p.live.Load() {
		w.mu.Lock()
		holds := !w.dead && w.holdsAny(of)
		w.mu.Unlock()
		if holds {
			return true
		}
	}
	return false
}

// WorkerQueue is how far one worker is behind: events handed to it and not yet handled, and
// events waiting for it (with their bytes, their parcels' included). The parking worker has id -1.
type WorkerQueue struct {
	ID           int32 `json:"id"`
	InFlight     int   `json:"inFlight"`
	Waiting      int   `json:"waiting"`
	WaitingBytes int   `json:"waitingBytes"`
}

// queues returns the queue of every live worker, and of the parking worker if it holds events;
// never nil, so that stats() shows none as an empty list.
func (p *pool) queues() []WorkerQueue {
	out := []WorkerQueue{}
	for _, w := range append(append([]*worker{}, *p.live.Load()...), &p.parking) {
		w.mu.Lock()
		q := WorkerQueue{ID: w.id, Waiting: len(w.waitingEv), WaitingBytes: w.backlog()}
		if w.awaitingDone {
			q.InFlight = len(w.inflEv)
		}
		w.mu.Unlock()
		if w != &p.parking || q.Waiting > 0 {
			out = append(out, q)
		}
	}
	return out
}

var (
	descInFlight = prometheus.NewDesc("wsbroker_worker_events_in_flight", "Events handed to a JS worker and not yet handled.", []string{"worker"}, nil)
	descWaiting  = prometheus.NewDesc("wsbroker_worker_events_waiting", "Events waiting for a JS worker (worker -1: none alive).", []string{"worker"}, nil)
	descWaitingB = prometheus.NewDesc("wsbroker_worker_waiting_bytes", "Bytes of the events waiting for a JS worker, large messages' data included.", []string{"worker"}, nil)
)

// queueCollector exposes the workers' queues as Prometheus gauges.
type queueCollector struct{ p *pool }

func (queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descInFlight
	ch <- descWaiting
	ch <- descWaitingB
}

func (q queueCollector) Collect(ch chan<- prometheus.Metric) {
	for _, w := range q.p.queues() {
		id := strconv.Itoa(int(w.ID))
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(w.InFlight), id)
		ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(w.Waiting), id)
		ch <- prometheus.MustNewConstMetric(descWaitingB, prometheus.GaugeValue, float64(w.WaitingBytes), id)
	}
}
