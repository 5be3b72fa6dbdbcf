package main

import (
	"runtime"
	"testing"
	"time"

	"github.com/wsbroker/wsbroker/broker"
)

// The sends of a batch to minCorkedToDefer sockets or more (a broadcast) wait for the next batch
// while events wait for it (one write per socket for both), but not for longer than
// maxUnsettled; a batch that sent to fewer settles at once.
func TestBroadcastsWaitForTheNextBatchWhileEventsWait(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers)
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

// After a batch with messages, and only while Go has one P, a worker's thread is told to watch
// the pollers (wsb_dispatch_ready); not after opens and closes alone, nor with two Ps.
func TestThreadWatchesPollersForMessagesWithOneP(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers)
	c := &broker.Conn{}
	p.push(c, kindClose, nil, nil)
	if watch, _ := js.run(p, 1); watch {
		t.Fatal("told to watch after a batch with a close only")
	}
	text(p, c, "a")
	if watch, _ := js.run(p, 1); !watch {
		t.Fatal("not told to watch after a batch with a message")
	}
	runtime.GOMAXPROCS(2)
	text(p, c, "b")
	if watch, _ := js.run(p, 1); watch {
		t.Fatal("told to watch with two Ps")
	}
}

// A thread that runs its batches on its own (a wake-up of its watch) is handed the next one to
// run on return, ownRounds in a row at most; then the next goes through its event loop's queue.
// A batch from the queue never hands the next to the caller.
func TestThreadRunsItsOwnBatchesForOwnRounds(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers)
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
