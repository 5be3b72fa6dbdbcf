package main

import (
	"runtime"
	"sync"
	"time"

	"github.com/wsbroker/wsbroker/broker"
	"github.com/wsbroker/wsbroker/internal/runq"
)

// The schedule: how work passes between Go's threads and the JS threads. Every decision of who
// reads a socket, when a batch goes to JS and on which path, when a batch's sends are written,
// when a JS thread watches its poller, how many Ps Go has and when a P is handed back is made in this file. The
// pool (pool.go) keeps the queues, the exports (exports.go) convert, and the C glue executes what
// these functions return (napi/watch.c follow).
//
// A worker's JS thread calls into the schedule twice: wsb_batch_done after each batch, and, while
// it watches its poller's epoll fd from its event loop, wsb_dispatch_ready when it is readable.
// Both answer with a next: whether to run a batch at once and whether to keep watching.

// The knobs, each the one place its value lives.
const (
	// maxBatchBytes caps what one hand-over to a JS thread carries (a single larger event goes
	// alone), so that one call into JS never holds its thread for long.
	maxBatchBytes = 1 << 20

	// watchWindow is how long after a batch with messages a worker's thread keeps watching the
	// pollers, so that it reads its own sockets instead of waiting for a reader goroutine to get
	// the P.
	watchWindow = 20 * time.Millisecond

	// ownRounds is how many batches in a row a thread runs on its own within one wake-up of its
	// watch, so that its event loop gets its turn (timers, other I/O) while messages keep coming.
	ownRounds = 16

	// minCorkedToDefer is how many sockets a batch must have sent to for its writes to be put off
	// to the end of the next batch: only broadcasts send to the same sockets again soon, and
	// putting off costs replies a batch of latency.
	minCorkedToDefer = 64

	// maxInlineFlush bounds how many sockets a JS thread writes itself when it flushes a cork
	// (broker.Cork.MaxInline), the flushers writing the rest: a longer pass would hold the thread
	// (which then takes no new events) and, with one P, the readers too, so that nothing more
	// arrives to be coalesced meanwhile.
	maxInlineFlush = 64

	// maxUnsettled bounds how long a thread puts off writing its batches' sends while events keep
	// waiting for it.
	maxUnsettled = time.Millisecond

	// readHereRoom is the backlog under which a thread reads its own sockets: a thread reading for
	// itself never waits for room (embedder.Hooks.MayBlock), so it leaves room for a turn's events.
	readHereRoom = maxBacklog / 2

	// yieldEvery is how often a JS thread that keeps running batches lets Go's scheduler run on
	// the P it holds (a Gosched): sysmon preempts a P whose scheduler has not run for 10 ms and,
	// if its thread is out of Go (a JS thread running JavaScript), takes that P and then wakes
	// every 20 µs for a while, each time taking the core from the JS thread that runs.
	yieldEvery = 5 * time.Millisecond

	// readyRunRounds is how many times a thread leaving Go yields its P to runnable goroutines: a
	// goroutine that yields once itself (the flusher does) is behind it in the run queue.
	readyRunRounds = 4
)

// Why the knobs have these values (measurements): BENCHMARKS.md, "Design decisions".

// next is what a worker's JS thread does when its call into the schedule returns.
type next struct {
	watch   bool // watch its poller's fd from its event loop (wsb_dispatch_ready when it is readable)
	runHere bool // run the batch just handed to it (worker.takeToCaller) before anything else
}

// threadSchedule is the schedule's state of one worker's JS thread; only that thread touches it.
type threadSchedule struct {
	watching       bool      // what the thread was last told: watch its poller
	lastMessage    time.Time // when the last batch ended that had messages
	unsettledSince time.Time // when the thread last put off writing its sends; zero when written
	ownRuns        int       // batches run on its own in this wake-up of its watch
	pollerWatched  bool      // its event loop watches its poller's fd (watching)
	lastYield      time.Time // when the thread last let the scheduler run on its P (yieldEvery)
}

// cores is how many Ps Go started with (GOMAXPROCS: the CPUs this process may run on, unless
// the user set it), before the JS threads got Ps of their own (workerJoined).
var cores = runtime.GOMAXPROCS(0)

// threadsRead: each worker's JS thread reads its own sockets, which then live on a poller of
// their worker's (its seat, pool.route), by watching that poller's fd from its event loop. Only
// with one core: with more, the readers have a core of their own and watching costs more than it
// saves.
var threadsRead = cores == 1

// workerJoined: where the JS threads read their sockets (threadsRead), and wherever they outnumber
// the cores, Go gets a P for each on top of its cores (never fewer Ps than it has). A JS thread
// keeps the P it entered Go with while it runs JavaScript or waits in its event loop (in a
// syscall, to Go). With no P left idle, the threads wait for each other's, a hand-over through
// the scheduler each time one calls into Go (a send), and sysmon takes the P of a thread that
// waits more than 20 µs and has Go wake a thread to hold it: a switch or two at every pause of a
// thread that reads its sockets. An idle P has Go wake a thread for every goroutine that becomes
// ready, and its thread waits in Go's netpoller: with more cores than JS threads, where readers
// read, that costs more than it saves; where the threads read, the sockets and the watched
// pollers are out of the netpoller (broker's rawSocket, netpoll.Set.Watch), and it sleeps.
//
// Threads that outnumber the cores also take turns on them rather than interrupt each other
// (SCHED_BATCH): every thread but the main one (shareCores), or on one core, where each JS thread
// reads its own sockets, the JS threads (batch; the threads Go starts from them inherit it): all
// of Go's threads made batch held up a JS thread's wake-ups there (BENCHMARKS.md).
func workerJoined(live int) {
	if live <= cores && !threadsRead {
		return
	}
	if n := cores + live; runtime.GOMAXPROCS(0) < n {
		runtime.GOMAXPROCS(n)
	}
	switch {
	case live > cores && threadsRead:
		for _, w := range *workers.live.Load() {
			batch(w.tid)
		}
	case live > cores:
		shareCores()
	}
}

// watchesPollers reports whether a worker's thread prepares a watch of its poller (which also
// bounds the batches a turn of its event loop runs): not on Bun, whose event loop cannot watch a
// file descriptor for an addon.
func watchesPollers(runtimeIsBun bool) bool { return !runtimeIsBun }

// pollerFD is the epoll fd that worker's thread watches (its seat's poller), -1 if none: where
// threads do not read their sockets (threadsRead), the watch only bounds its turns.
func pollerFD(worker int32) int {
	w := workers.get(worker)
	if !threadsRead || w == nil || w == &workers.parking {
		return -1
	}
	return hooks.PollerFD(brk, w.seat)
}

// watching is called by worker's JS thread when its event loop starts or stops watching its
// poller's fd (as told, next.watch): the poller leaves that fd to the thread meanwhile.
func watching(worker int32, on bool) {
	if w := workers.get(worker); w != nil && w != &workers.parking {
		w.sched.pollerWatched = on
		hooks.Watch(brk, w.seat, on)
	}
}

// dispatchReady is called by worker's JS thread when its event loop sees its poller's fd
// readable: it reads the ready sockets pinned to that worker itself (their events are then that
// thread's next batch, run on return without a hand-over to its event loop) and hands the others
// (those of a worker that had the seat before) to the readers, which it lets run at once: else
// they would wait for sysmon.
func dispatchReady(worker int32) next {
	w := workers.get(worker) // the glue's ids are live workers', never the parking's
	if w == nil {
		return next{} // retired meanwhile: the poller's goroutine reads its sockets
	}
	w.sched.ownRuns = 0
	hooks.DispatchReady(brk, w.seat, readHere(w))
	letReadyRun()
	return next{watch: w.sched.watching, runHere: w.takeToCaller()}
}

// batchDone is called when worker's JS thread has handled its batch; ranHere says it ran the batch
// on its own (next.runHere), not from its event loop's queue. A thread that watches first reads
// what came for it during the batch: those events then wait for it, and the batch's sends wait
// for theirs (pool.batchDone), as for events that readers brought meanwhile, so that a
// broadcast's writes carry more deliveries each.
func batchDone(worker int32, ranHere bool) next {
	if w := workers.watcher(worker); w != nil {
		hooks.DispatchReady(brk, w.seat, readHere(w))
	}
	n, settled := workers.batchDone(worker, ranHere)
	if settled {
		letReadyRun()
	}
	return n
}

// watcher returns worker id if its thread watches its poller, else nil (its own thread only).
func (p *pool) watcher(id int32) *worker {
	if w := p.get(id); w != nil && w != &p.parking && w.sched.watching {
		return w
	}
	return nil
}

// batchDone hands worker id's thread its next batch if events wait, and decides what the thread
// does next, and whether the batch's sends are written now (settled; the caller then lets the
// goroutines it woke run).
//
// The next batch is the calling thread's to run on return (next.runHere) while it runs batches on
// its own, up to ownRounds. The thread watches its poller for watchWindow after a batch with
// messages, and only where threads read their sockets (threadsRead); a thread that only sees opens and closes (a storm of
// connects) does not watch either, as each wake-up would cost switches and save nothing.
//
// Writing is put off while events wait for the thread and the batch sent to at least
// minCorkedToDefer sockets, for at most maxUnsettled: the thread will be back at once with the
// next batch, and a socket sent to in both batches gets one write, what a busy broadcasting
// server gains most from. Without waiting events nothing changes: a quiet server's sends are
// written at the end of their batch.
func (p *pool) batchDone(id int32, ranHere bool) (n next, settled bool) {
	w := p.get(id)
	if w == nil || w == &p.parking {
		return next{}, true
	}
	s := &w.sched
	if ranHere {
		s.ownRuns++
	}
	toCaller := ranHere && s.ownRuns < ownRounds
	now := time.Now()
	if now.Sub(s.lastYield) >= yieldEvery {
		s.lastYield = now
		runtime.Gosched()
	}
	waited, messages, idle := p.finish(w, toCaller)
	if messages {
		s.lastMessage = now
	}
	s.watching = now.Sub(s.lastMessage) < watchWindow && threadsRead
	settled = !waited || w.cork.Len() < minCorkedToDefer
	if !settled {
		if s.unsettledSince.IsZero() {
			s.unsettledSince = now
		}
		settled = now.Sub(s.unsettledSince) >= maxUnsettled
	}
	if settled {
		w.cork.Flush()
		s.unsettledSince = time.Time{}
	}
	if idle || p.awaiting.Load() > 0 {
		p.signalIdle()
	}
	return next{watch: s.watching, runHere: toCaller && w.takeToCaller()}, settled
}

// readHere is what w's JS thread reads itself when it dispatches: the sockets pinned to it,
// while its backlog is under readHereRoom.
func readHere(w *worker) func(*broker.Conn) bool {
	return func(c *broker.Conn) bool {
		return hooks.Pin(c).Load() == w.id && w.waitingBytes() < readHereRoom
	}
}

// readByOwnThread reports whether c is being read by the JS thread of the worker it is pinned to
// (readHere; such a turn may not block): a batch the pool hands that worker meanwhile is then the
// calling thread's to run when its call returns.
func readByOwnThread(c *broker.Conn) bool { return !hooks.MayBlock(c) }

// sendFrom makes send's sends through the cork of worker's batch, if the calling thread is
// handling one (written when the schedule settles it, batchDone); else through a cork of its own,
// written at once on the calling thread, since a flusher would have to wait for the P.
func sendFrom(worker int32, send func(k *broker.Cork)) {
	if k := corkOf(worker); k != nil {
		send(k)
		return
	}
	k := corks.Get().(*broker.Cork)
	send(k)
	k.Flush()
	corks.Put(k)
	letReadyRun()
}

// corkOf is the cork of worker's batch, if the calling thread is handling one (pool.corkOf).
func corkOf(worker int32) *broker.Cork {
	k, _ := workers.corkOf(worker).(*broker.Cork)
	return k
}

// corks are the corks of sends made outside a batch.
var corks = sync.Pool{New: func() any { return newCork() }}

// newCork is a cork for a JS thread's sends.
func newCork() *broker.Cork {
	k := brk.NewCork()
	k.MaxInline = maxInlineFlush
	return k
}

// letReadyRun gives the P to the goroutines that are ready to run (readers handed sockets, a
// flusher) before a JS thread goes back to JS; every export that wakes goroutines calls it. The
// thread leaves Go holding the P it used, as in a system call, and without an idle P nothing else
// runs until sysmon takes it back: after 20 µs, or 10 ms once sysmon has backed off, which it does
// while the thread calls in often. Each round costs two thread switches.
func letReadyRun() { runq.Yield(readyRunRounds) }
