package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsbroker/wsbroker/broker"
	"github.com/wsbroker/wsbroker/internal/protocol"
)

const allHandlers = 15

// fakeJS stands in for the JS threads: it records the batches each worker receives, and
// refuses deliveries to workers marked gone, as the glue does for a finished thread.
type fakeJS struct {
	mu       sync.Mutex
	batches  map[int32][][]byte // every batch handed over, per worker
	toCaller map[int32][]bool   // for each of those: handed to the calling thread itself
	queued   map[int32][]byte   // handed over, not yet run
	log      [][]byte           // every batch run, in order
	gone     map[int32]bool
	accepted []uint64
	caughtUp []uint64 // catch-ups answered without JS
}

func newFakeJS() *fakeJS {
	return &fakeJS{batches: map[int32][][]byte{}, toCaller: map[int32][]bool{}, queued: map[int32][]byte{}, gone: map[int32]bool{}}
}

func (f *fakeJS) deliver(id int32, batch []byte, toCaller bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone[id] {
		return false
	}
	b := append([]byte(nil), batch...)
	f.batches[id] = append(f.batches[id], b)
	f.toCaller[id] = append(f.toCaller[id], toCaller)
	if _, dup := f.queued[id]; dup { // the pool keeps one batch in flight per worker
		panic(fmt.Sprintf("worker %d: second batch before the first ran", id))
	}
	f.queued[id] = b
	return true
}

// run has worker id's thread handle the batch handed to it, if any, as one from its event loop's
// queue, and returns what the schedule decides for it (pool.batchDone): watch its poller, settle.
func (f *fakeJS) run(p *pool, id int32) (watch, settle bool) {
	n, settle := f.runAs(p, id, false)
	return n.watch, settle
}

// runAs has worker id's thread handle the batch handed to it, if any, ranHere as in batchDone.
func (f *fakeJS) runAs(p *pool, id int32, ranHere bool) (n next, settle bool) {
	f.mu.Lock()
	b, ok := f.queued[id]
	if ok {
		f.log = append(f.log, b)
		delete(f.queued, id)
	}
	f.mu.Unlock()
	if !ok {
		return next{}, false
	}
	return p.batchDone(id, ranHere)
}

// kill ends worker id's thread as the glue's finalizer reports it.
func (f *fakeJS) kill(p *pool, id int32) {
	f.mu.Lock()
	f.gone[id] = true
	_, undelivered := f.queued[id]
	delete(f.queued, id)
	f.mu.Unlock()
	handled := -1
	if undelivered {
		handled = 0
	}
	p.retire(id, handled)
}

// countCork stands in for a worker's broker.Cork: n sockets wait for Flush, which records n.
type countCork struct {
	n       int
	flushed []int
}

func newCountCork() corker { return new(countCork) }

func (k *countCork) Len() int { return k.n }

func (k *countCork) Flush() {
	if k.n > 0 {
		k.flushed = append(k.flushed, k.n)
		k.n = 0
	}
}

func (f *fakeJS) answer(id uint64, kind byte) {
	f.mu.Lock()
	if kind == kindOpen {
		f.accepted = append(f.accepted, id)
	} else {
		f.caughtUp = append(f.caughtUp, id)
	}
	f.mu.Unlock()
}

// texts returns the text payloads worker id received, batch by batch.
func (f *fakeJS) texts(t *testing.T, id int32) [][]string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]string
	for _, b := range f.batches[id] {
		out = append(out, decodeTexts(t, b))
	}
	return out
}

func flat(batches [][]string) []string {
	var all []string
	for _, b := range batches {
		all = append(all, b...)
	}
	return all
}

// parcelBytes returns the data of parcel id, which stays held (a batch may be decoded again).
func parcelBytes(t *testing.T, id uint64) []byte {
	t.Helper()
	parcels.mu.Lock()
	p, ok := parcels.held[id]
	parcels.mu.Unlock()
	if !ok {
		t.Fatalf("no parcel %d", id)
	}
	data, _ := p.joined()
	return data
}

// decodeTexts reads a batch (format: package protocol) and returns each event as "kind:payload".
func decodeTexts(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	field := func() []byte {
		n := int(binary.LittleEndian.Uint32(b))
		v := b[protocol.LenSize : protocol.LenSize+n]
		b = b[protocol.LenSize+n:]
		return v
	}
	data := func() []byte { // a message's data: in the batch, or in a parcel, left there
		if binary.LittleEndian.Uint32(b) != protocol.InParcel {
			return field()
		}
		id := uint64(math.Float64frombits(binary.LittleEndian.Uint64(b[protocol.LenSize:])))
		b = b[protocol.LenSize+8:]
		return parcelBytes(t, id)
	}
	for len(b) > 0 {
		kind := b[0]
		if id := math.Float64frombits(binary.LittleEndian.Uint64(b[1:])); id != 0 {
			t.Fatalf("unexpected id %v", id)
		}
		b = b[protocol.HeadSize-protocol.LenSize:]
		if binary.LittleEndian.Uint32(b) == noToken {
			b = b[protocol.LenSize:]
		} else {
			field()
		}
		switch kind {
		case kindOpen:
			ip, url := field(), field()
			n := int(binary.LittleEndian.Uint32(b))
			b = b[protocol.LenSize:]
			for i := 0; i < n; i++ {
				field()
				field()
			}
			out = append(out, fmt.Sprintf("open:%s%s", ip, url))
		case kindText, kindBinary:
			out = append(out, fmt.Sprintf("%d:%s", kind, data()))
		case kindClose:
			b = b[protocol.LenSize:]
			out = append(out, fmt.Sprintf("close:%s", field()))
		case kindCatchUp:
			out = append(out, "catchUp")
		default:
			t.Fatalf("bad kind %d", kind)
		}
	}
	return out
}

// text pushes a message that came alone in its read.
func text(p *pool, c *broker.Conn, s string) {
	p.push(c, kindText, []byte(s), nil)
	p.readDone(c)
}

func TestMessagesOfOneReadGoInOneBatch(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers, threadID())
	c := &broker.Conn{}
	for _, s := range []string{"a", "b", "c"} {
		p.push(c, kindText, []byte(s), nil)
	}
	if got := js.texts(t, 1); len(got) != 0 {
		t.Fatalf("handed over before the read was done: %v", got)
	}
	p.readDone(c)
	if got := js.texts(t, 1); len(got) != 1 || strings.Join(got[0], ",") != "2:a,2:b,2:c" {
		t.Fatalf("want one batch of the three: %v", got)
	}
}

// A read that alone fills the backlog of an idle worker hands it over before waiting for room:
// otherwise nothing would ever make room.
func TestAReadThatFillsTheBacklogIsHandedOver(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers, threadID())
	c := &broker.Conn{}
	chunk := []byte(strings.Repeat("x", 64<<10))
	for range maxBacklog / len(chunk) {
		p.push(c, kindText, chunk, nil)
	}
	pushed := make(chan struct{})
	go func() {
		p.push(c, kindText, []byte("one more"), nil)
		p.readDone(c)
		close(pushed)
	}()
	select {
	case <-pushed:
	case <-time.After(5 * time.Second):
		t.Fatal("the reader waits for room that only handing over its read can make")
	}
	if len(js.texts(t, 1)) != 1 {
		t.Fatal("the read was not handed over")
	}
}

func TestEventsAccumulateWhileABatchIsInFlight(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers, threadID())
	c := &broker.Conn{}
	text(p, c, "a") // worker idle: handed over at once
	text(p, c, "b")
	text(p, c, "c")
	if got := js.texts(t, 1); len(got) != 1 {
		t.Fatalf("batches before done: %v", got)
	}
	js.run(p, 1)
	got := js.texts(t, 1)
	if len(got) != 2 || strings.Join(got[1], ",") != "2:b,2:c" {
		t.Fatalf("second batch should carry both waiting events: %v", got)
	}
}

func TestBatchesAreCapped(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers, threadID())
	c := &broker.Conn{}
	big := strings.Repeat("x", maxBatchBytes/4)
	text(p, c, "first")
	for i := 0; i < 8; i++ {
		text(p, c, big)
	}
	for i := 0; i < 10; i++ {
		js.run(p, 1)
	}
	js.mu.Lock()
	defer js.mu.Unlock()
	total := 0
	for _, b := range js.batches[1] {
		if len(b) > maxBatchBytes {
			t.Fatalf("batch of %d bytes exceeds the cap", len(b))
		}
		total += len(decodeTexts(t, b))
	}
	if total != 9 || len(js.batches[1]) < 3 {
		t.Fatalf("got %d events in %d batches", total, len(js.batches[1]))
	}
}

func TestSocketsArePinnedRoundRobin(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers, threadID())
	p.register(2, allHandlers, threadID())
	conns := []*broker.Conn{{}, {}, {}, {}}
	for round := 0; round < 3; round++ {
		for i, c := range conns {
			text(p, c, fmt.Sprintf("c%d-%d", i, round))
			js.run(p, 1)
			js.run(p, 2)
		}
	}
	w1, w2 := flat(js.texts(t, 1)), flat(js.texts(t, 2))
	if len(w1) != 6 || len(w2) != 6 {
		t.Fatalf("not spread evenly: %v / %v", w1, w2)
	}
	for i, c := range conns {
		want := hooks.Pin(c).Load()
		got := flat(js.texts(t, want))
		n := 0
		for _, s := range got {
			if strings.HasPrefix(s, fmt.Sprintf("2:c%d-", i)) {
				n++
			}
		}
		if n != 3 {
			t.Fatalf("conn %d: %d of its 3 events on its worker %d", i, n, want)
		}
	}
}

func TestRetiredWorkerEventsMoveInOrder(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers, threadID())
	c := &broker.Conn{}
	text(p, c, "1") // in flight on worker 1
	text(p, c, "2") // waiting for worker 1
	p.register(2, allHandlers, threadID())
	js.mu.Lock()
	js.gone[1] = true
	js.mu.Unlock()
	p.retire(1, 0) // the thread never saw batch "1"
	text(p, c, "3")
	js.run(p, 2)
	js.run(p, 2)
	if got := strings.Join(flat(js.texts(t, 2)), ","); got != "2:1,2:2,2:3" {
		t.Fatalf("worker 2 got %q", got)
	}
	if hooks.Pin(c).Load() != 2 {
		t.Fatalf("socket pinned to %d", hooks.Pin(c).Load())
	}
}

func TestHandedBatchIsNotRepeated(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers, threadID())
	p.register(2, allHandlers, threadID())
	c := &broker.Conn{}
	text(p, c, "1")
	first := hooks.Pin(c).Load()
	other := 3 - first
	text(p, c, "2")
	p.retire(first, -1) // "1" reached JS; "2" did not
	js.run(p, other)
	if got := strings.Join(flat(js.texts(t, other)), ","); got != "2:2" {
		t.Fatalf("worker %d got %q", other, got)
	}
}

// A thread terminated in the middle of a batch handled the events up to the one it was in; the
// rest of the batch, and what waited behind it, go to the live workers in order.
func TestEventsAfterTheFatalOneMoveOn(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers, threadID())
	c1, c2 := &broker.Conn{}, &broker.Conn{}
	text(p, c1, "first") // in flight alone
	text(p, c1, "fatal")
	text(p, c2, "other")
	text(p, c1, "after")
	js.run(p, 1) // "first" done; the next batch is fatal, other, after
	p.register(2, allHandlers, threadID())
	text(p, c2, "waiting")
	js.mu.Lock()
	batch := js.queued[1]
	delete(js.queued, 1)
	js.gone[1] = true
	js.mu.Unlock()
	fatalEnd := len(appendMessage(nil, kindText, c1, []byte("fatal")))
	if got := decodeTexts(t, batch); strings.Join(got, ",") != "2:fatal,2:other,2:after" {
		t.Fatalf("batch in flight: %v", got)
	}
	p.retire(1, fatalEnd)
	js.run(p, 2)
	js.run(p, 2)
	if got := strings.Join(flat(js.texts(t, 2)), ","); got != "2:other,2:after,2:waiting" {
		t.Fatalf("worker 2 got %q", got)
	}
}

func TestEventsWaitForAWorker(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	c := &broker.Conn{}
	p.push(c, kindOpen, nil, &broker.Request{IP: "127.0.0.1", URL: "/x"})
	text(p, c, "early")
	p.register(7, allHandlers, threadID())
	js.run(p, 7)
	if got := strings.Join(flat(js.texts(t, 7)), ","); got != "open:127.0.0.1/x,2:early" {
		t.Fatalf("got %q", got)
	}
}

func TestHandlerMask(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, 2, threadID()) // text only
	c := &broker.Conn{}
	p.push(c, kindOpen, nil, &broker.Request{})
	p.push(c, kindBinary, []byte("b"), nil)
	text(p, c, "t")
	p.push(c, kindClose, nil, nil)
	js.run(p, 1)
	if got := strings.Join(flat(js.texts(t, 1)), ","); got != "2:t" { // binary, open, close: no handler
		t.Fatalf("got %q", got)
	}
	if len(js.accepted) != 1 {
		t.Fatalf("an open with no handleOpen must be accepted at once: %v", js.accepted)
	}
}

// A catch-up is handed to JS behind the socket's messages at once (with them, if they are still
// waiting), and moves with them when their worker dies; with none of them left to handle, it is
// answered without JS, unless the worker awaits its handlers' promises.
func TestCatchUpFollowsTheMessages(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers, threadID())
	c := &broker.Conn{}
	p.push(c, kindText, []byte("a"), nil)
	p.push(c, kindBinary, []byte("b"), nil)
	p.push(c, kindCatchUp, nil, nil) // no readDone: the catch-up hands the read over itself
	if got := js.texts(t, 1); len(got) != 1 || strings.Join(got[0], ",") != "2:a,3:b,catchUp" {
		t.Fatalf("got %v", got)
	}

	js.run(p, 1)
	text(p, c, "in flight")
	p.register(2, allHandlers, threadID())
	p.push(c, kindText, []byte("waiting"), nil)
	p.push(c, kindCatchUp, nil, nil)
	js.kill(p, 1)
	js.run(p, 2)
	if got := strings.Join(flat(js.texts(t, 2)), ","); got != "2:in flight,2:waiting,catchUp" {
		t.Fatalf("worker 2 got %q", got)
	}
	if len(js.caughtUp) != 0 {
		t.Fatalf("answered without JS: %v", js.caughtUp)
	}

	// Nothing of the socket waits or is in flight: its handlers have returned, the catch-up is
	// answered at once; unless the worker awaits their promises (ordered delivery).
	js.run(p, 2)
	p.push(c, kindCatchUp, nil, nil)
	if len(js.caughtUp) != 1 || len(js.texts(t, 2)) != 2 {
		t.Fatalf("caught up without JS %v, batches %v", js.caughtUp, js.texts(t, 2))
	}
	p.register(3, allHandlers|protocol.HandlerBit(kindCatchUp), threadID())
	d := &broker.Conn{}
	hooks.Pin(d).Store(3)
	p.push(d, kindCatchUp, nil, nil)
	if got := strings.Join(flat(js.texts(t, 3)), ","); got != "catchUp" || len(js.caughtUp) != 1 {
		t.Fatalf("an ordered worker got %q, caught up without JS %v", got, js.caughtUp)
	}
}

// Many sockets sending while workers come and go: every event arrives exactly once, and each
// socket's events arrive in order.
func TestChurnKeepsOrderAndLosesNothing(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers, threadID())
	const sockets, perSocket = 16, 300
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for s := 0; s < sockets; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			c := &broker.Conn{}
			for i := 0; i < perSocket; i++ {
				text(p, c, fmt.Sprintf("%d/%d", s, i))
				runtime.Gosched()
			}
		}(s)
	}
	var jsWG sync.WaitGroup
	jsWG.Add(1)
	go func() { // the JS side: finish batches, and replace workers now and then
		defer jsWG.Done()
		next := int32(2)
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			for id := int32(1); id < next; id++ {
				js.run(p, id)
			}
			if n%5 == 4 {
				p.register(next, allHandlers, threadID())
				js.kill(p, next-1)
				next++
			}
		}
	}()
	wg.Wait()
	close(stop)
	jsWG.Wait()
	for more := true; more; {
		js.mu.Lock()
		more = len(js.queued) > 0
		js.mu.Unlock()
		for id := int32(1); id < 1000; id++ {
			js.run(p, id)
		}
	}

	seen := map[int]int{}
	js.mu.Lock()
	defer js.mu.Unlock()
	if len(js.batches) < 3 {
		t.Fatalf("only %d workers received events: the test did not exercise retirement", len(js.batches))
	}
	for _, b := range js.log {
		{
			for _, ev := range decodeTexts(t, b) {
				var s, i int
				if _, err := fmt.Sscanf(ev, "2:%d/%d", &s, &i); err != nil {
					t.Fatal(err)
				}
				if i < seen[s] {
					t.Fatalf("socket %d: event %d after %d", s, i, seen[s])
				}
				if i != seen[s] {
					t.Fatalf("socket %d: event %d out of order or missing (got %d)", s, seen[s], i)
				}
				seen[s] = i + 1
			}
		}
	}
	for s := 0; s < sockets; s++ {
		if seen[s] != perSocket {
			t.Fatalf("socket %d: %d of %d events", s, seen[s], perSocket)
		}
	}
}

// behindWorker returns a pool whose only worker has a batch in flight and a full backlog, and a
// goroutine pushing one more event of the same socket, which reports on the channel when done.
func behindWorker(kind byte) (*fakeJS, *pool, <-chan struct{}) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers, threadID())
	c := &broker.Conn{}
	text(p, c, "in flight")
	chunk := strings.Repeat("x", 64<<10)
	for {
		w := p.get(hooks.Pin(c).Load())
		w.mu.Lock()
		full := w.backlog() >= maxBacklog
		w.mu.Unlock()
		if full {
			break
		}
		text(p, c, chunk)
	}
	pushed := make(chan struct{})
	go func() {
		p.push(c, kind, []byte("one more"), nil)
		close(pushed)
	}()
	return js, p, pushed
}

// A reader that brings an event for a worker that is too far behind waits (its socket is not
// read meanwhile) until the worker catches up.
func TestReaderWaitsWhileItsWorkerIsBehind(t *testing.T) {
	js, p, pushed := behindWorker(kindText)
	select {
	case <-pushed:
		t.Fatal("the reader did not wait for the backlog to shrink")
	case <-time.After(100 * time.Millisecond):
	}
	js.run(p, 1)
	select {
	case <-pushed:
	case <-time.After(5 * time.Second):
		t.Fatal("the reader was not released when the worker caught up")
	}
}

// While stopping, nothing waits: every socket's last events must reach the queues.
func TestStoppingReleasesWaitingReaders(t *testing.T) {
	_, p, pushed := behindWorker(kindClose)
	p.setStopping(true)
	select {
	case <-pushed:
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting reader was not released by stop")
	}
}

// drain returns once every worker has run every event it was given.
func TestDrainWaitsForEveryEvent(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers, threadID())
	p.register(2, allHandlers, threadID())
	for i := 0; i < 10; i++ {
		text(p, &broker.Conn{}, fmt.Sprint(i))
	}
	drained := make(chan struct{})
	go func() {
		p.drain()
		close(drained)
	}()
	for n := 0; ; n++ {
		select {
		case <-drained:
			js.mu.Lock()
			defer js.mu.Unlock()
			if got := len(js.log); got < 2 {
				t.Fatalf("drained after %d batches", got)
			}
			if len(js.queued) != 0 {
				t.Fatalf("drained with batches still queued: %v", js.queued)
			}
			return
		default:
		}
		js.run(p, 1)
		js.run(p, 2)
		if n > 1e6 {
			t.Fatal("drain never returned")
		}
	}
}

func TestQueues(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	if j, _ := json.Marshal(p.queues()); string(j) != "[]" {
		t.Fatalf("no worker and nothing parked: %s, want []", j)
	}
	c := &broker.Conn{}
	text(p, c, "parked")
	if q := p.queues(); len(q) != 1 || q[0].ID != parkedID || q[0].Waiting != 1 {
		t.Fatalf("no worker: %+v", q)
	}
	p.register(1, allHandlers, threadID())
	text(p, c, "waiting")
	q := p.queues()
	if len(q) != 1 || q[0].ID != 1 || q[0].InFlight != 1 || q[0].Waiting != 1 || q[0].WaitingBytes == 0 {
		t.Fatalf("one worker: %+v", q)
	}
}

// A message of parcelMin bytes or more travels as a parcel: its event names it, JS takes it once,
// its bytes count towards the backlog, and a parcel whose event no worker wants any more is freed.
func TestLargeMessagesTravelAsParcels(t *testing.T) {
	js := newFakeJS()
	p := newPool(js.deliver, js.answer, newCountCork)
	p.register(1, allHandlers, threadID())
	c := &broker.Conn{}
	small, large := strings.Repeat("s", parcelMin-1), strings.Repeat("L", parcelMin)
	text(p, c, small) // in flight
	p.push(c, kindBinary, []byte(large), nil)
	p.push(c, kindText, []byte(large+"!"), nil)
	p.readDone(c)
	if q := p.queues()[0]; q.Waiting != 2 || q.WaitingBytes < 2*parcelMin {
		t.Fatalf("two parcels wait: %+v, want their bytes counted", q)
	}
	js.run(p, 1)
	got := js.texts(t, 1)
	if len(got) != 2 || strings.Join(got[0], ",") != "2:"+small || strings.Join(got[1], ",") != "3:"+large+",2:"+large+"!" {
		t.Fatalf("batches of %d events, want the small message, then both large ones in order", len(got))
	}
	js.mu.Lock()
	batch := js.batches[1][1]
	js.mu.Unlock()
	evLen := protocol.HeadSize + protocol.LenSize + 8
	if len(batch) != 2*evLen {
		t.Fatalf("the large messages' batch holds %d bytes, want two events of %d naming parcels", len(batch), evLen)
	}
	for i, want := range []string{large, large + "!"} {
		id, ok := parcelOf(batch[i*evLen : (i+1)*evLen])
		if !ok {
			t.Fatalf("event %d names no parcel", i)
		}
		pc, ok := takeParcel(id)
		if data, _ := pc.joined(); !ok || string(data) != want {
			t.Fatalf("parcel %d: taken %v, want its message", id, ok)
		}
		pc.free()
		if _, again := takeParcel(id); again {
			t.Fatalf("parcel %d taken twice", id)
		}
	}

	// Worker 1 dies before its thread runs the next batch; worker 2 has no binary handler: the
	// binary message's event is dropped, and its parcel freed.
	p.push(c, kindBinary, []byte(large), nil)
	p.readDone(c)
	js.run(p, 1)
	js.mu.Lock()
	batch = js.batches[1][2]
	js.mu.Unlock()
	id, ok := parcelOf(batch)
	if !ok {
		t.Fatal("the third batch names no parcel")
	}
	p.register(2, allHandlers&^protocol.HandlerBit(kindBinary), threadID())
	js.kill(p, 1)
	parcels.mu.Lock()
	_, held := parcels.held[id]
	parcels.mu.Unlock()
	if held {
		t.Fatal("the parcel of a dropped event is still held")
	}
}
