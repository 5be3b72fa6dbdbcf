package main

import (
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/wsbroker/wsbroker/broker"
	"golang.org/x/sys/unix"
)

// The sends of a batch to minCorkedToDefer sockets or more (a broadcast) wait for the next batch
// while events wait for it (one write per socket for both), but not for longer than
// maxUnsettled; a batch that sent to fewer settles at once.
func TestBroadcastsWaitForTheNextBatchWhileEventsWait(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers, threadID())
	cork := p.corkOf(1).(*countCork)
	flushes := func() int { return len(cork.flushed) }
	c := &broker.Conn{}
	handle := func(sentTo int) (settle bool) { // the batch in flight sends to that many sockets
		cork.n += sentTo
		_, settle = js.run(p, 1)
		return settle
	}
	text(p, c, "a") // handed over at once
	text(p, c, "b") // waits
	if !handle(1) || flushes() != 1 {
		t.Fatal("a reply waited for the next batch")
	}
	text(p, c, "c") // waits
	if handle(minCorkedToDefer) || flushes() != 1 {
		t.Fatal("a broadcast settled while an event waited")
	}
	if !handle(minCorkedToDefer) || flushes() != 2 || cork.flushed[1] != 2*minCorkedToDefer {
		t.Fatalf("the last batch must settle, with both batches' sends: %d flushes", flushes())
	}
	// Events that never stop coming: settled within maxUnsettled all the same.
	text(p, c, "d") // handed over at once
	start := time.Now()
	for flushes() == 2 {
		if time.Since(start) > 5*time.Second {
			t.Fatal("never settled while events kept coming")
		}
		text(p, c, "more")
		handle(minCorkedToDefer)
	}
	if waited := time.Since(start); waited < maxUnsettled {
		t.Fatalf("settled after %v, before maxUnsettled", waited)
	}
}

// After a batch with messages, and only where threads read their sockets (one core), a worker's
// thread is told to watch its poller (wsb_dispatch_ready); not after opens and closes alone, nor
// with more cores.
func TestThreadWatchesItsPollerForMessagesWithOneCore(t *testing.T) {
	defer func(was bool) { threadsRead = was }(threadsRead)
	threadsRead = true
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers, threadID())
	c := &broker.Conn{}
	p.push(c, kindClose, nil, nil)
	if watch, _ := js.run(p, 1); watch {
		t.Fatal("told to watch after a batch with a close only")
	}
	text(p, c, "a")
	if watch, _ := js.run(p, 1); !watch {
		t.Fatal("not told to watch after a batch with a message")
	}
	threadsRead = false
	text(p, c, "b")
	if watch, _ := js.run(p, 1); watch {
		t.Fatal("told to watch with more cores")
	}
}

// Each live worker has a seat of its own, the lowest free when it registered (a replacement takes
// the seat of the worker it replaces); a socket being accepted is pinned to a live worker in turn
// and lives on that worker's seat's poller, or on any while no worker is alive.
func TestSocketsLiveOnTheirWorkersSeat(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	if seat := p.route(&broker.Conn{}); seat != -1 {
		t.Fatalf("seat %d with no worker alive", seat)
	}
	for id := int32(1); id <= 3; id++ {
		if live := p.register(id, allHandlers, threadID()); live != int(id) {
			t.Fatalf("register(%d) reports %d live", id, live)
		}
	}
	p.retire(2, -1)
	p.register(4, allHandlers, threadID())
	seats := map[int32]int{}
	for _, id := range []int32{1, 3, 4} {
		seats[id] = p.get(id).seat
	}
	if seats[1] != 0 || seats[3] != 2 || seats[4] != 1 {
		t.Fatalf("seats %v, want 1:0 3:2 4:1", seats)
	}
	pinned := map[int32]int{}
	for range 6 {
		c := &broker.Conn{}
		seat := p.route(c)
		id := hooks.Pin(c).Load()
		if seats[id] != seat || p.get(id).dead {
			t.Fatalf("pinned to worker %d, given seat %d", id, seat)
		}
		pinned[id]++
	}
	if pinned[1] != 2 || pinned[3] != 2 || pinned[4] != 2 {
		t.Fatalf("not in turn: %v", pinned)
	}
}

// Once the JS threads outnumber the cores (or on one core, where they read their sockets), Go
// gets a P for each on top of its cores, and never loses one; with more than one core, once they
// outnumber the cores, every thread but the main one becomes SCHED_BATCH, keeping its nice value
// (on one core only the live JS threads do, and this test registers none).
func TestWorkerJoinedWhenThreadsOutnumberCores(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	defer setPolicies(t, unix.SCHED_NORMAL)
	workerJoined(cores)
	want := cores
	if threadsRead {
		want = 2 * cores
	}
	if n := runtime.GOMAXPROCS(0); n != want {
		t.Fatalf("GOMAXPROCS %d with %d cores and as many threads", n, cores)
	}
	if p := policies(t); p[unix.SCHED_BATCH] != 0 {
		t.Fatalf("threads made SCHED_BATCH with as many JS threads as cores: %v", p)
	}
	runtime.LockOSThread() // a thread of this test, with a nice value of its own
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	if err := unix.Setpriority(unix.PRIO_PROCESS, tid, 5); err != nil {
		t.Fatal(err)
	}
	workerJoined(cores + 3)
	if n := runtime.GOMAXPROCS(0); n != 2*cores+3 {
		t.Fatalf("GOMAXPROCS %d with %d cores and %d threads", n, cores, cores+3)
	}
	if p := policies(t); threadsRead && p[unix.SCHED_BATCH] != 0 {
		t.Fatalf("policies %v: threads made SCHED_BATCH on one core", p)
	} else if !threadsRead && (p[unix.SCHED_NORMAL] != 1 || p[unix.SCHED_BATCH] == 0) {
		t.Fatalf("policies %v: want the main thread SCHED_NORMAL, every other SCHED_BATCH", p)
	}
	if nice, err := unix.Getpriority(unix.PRIO_PROCESS, tid); err != nil || 20-nice != 5 {
		t.Fatalf("nice value %d (%v), want 5 kept", 20-nice, err)
	}
	workerJoined(1)
	if n := runtime.GOMAXPROCS(0); n != 2*cores+3 {
		t.Fatalf("GOMAXPROCS went down to %d", n)
	}
}

// policies counts the process's threads by scheduling policy.
func policies(t *testing.T) map[uint32]int {
	t.Helper()
	counts := map[uint32]int{}
	for _, tid := range threads(t) {
		if attr, err := unix.SchedGetAttr(tid, 0); err == nil {
			counts[attr.Policy]++
		}
	}
	return counts
}

// setPolicies gives every thread of the process that policy.
func setPolicies(t *testing.T, policy uint32) {
	for _, tid := range threads(t) {
		if attr, err := unix.SchedGetAttr(tid, 0); err == nil {
			attr.Policy = policy
			unix.SchedSetAttr(tid, attr, 0)
		}
	}
}

func threads(t *testing.T) []int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var tids []int
	for _, task := range tasks {
		if tid, err := strconv.Atoi(task.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids
}

// A thread that runs its batches on its own (a wake-up of its watch) is handed the next one to
// run on return, ownRounds in a row at most; then the next goes through its event loop's queue.
// A batch from the queue never hands the next to the caller.
func TestThreadRunsItsOwnBatchesForOwnRounds(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers, threadID())
	c := &broker.Conn{}
	text(p, c, "from the queue") // handed over at once, through the queue
	text(p, c, "waits")
	if n, _ := js.runAs(p, 1, false); n.runHere || js.toCaller[1][1] {
		t.Fatal("a batch from the queue handed the next to the caller")
	}
	p.get(1).sched.ownRuns = 0 // a wake-up of the watch (dispatchReady)
	for round := 1; round <= ownRounds; round++ {
		text(p, c, "more")
		n, _ := js.runAs(p, 1, true)
		last := js.toCaller[1][len(js.toCaller[1])-1]
		if want := round < ownRounds; n.runHere != want || last != want {
			t.Fatalf("round %d: runHere %v, handed to the caller %v; want %v", round, n.runHere, last, want)
		}
	}
}
