//go:build linux

package netpoll

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const waitTimeout = 10 * time.Second

// testConn is a connection read by the pollers of a harness: its turn reads lines (at most
// testBudget bytes a turn) and reports each to the harness, in the order they came.
type testConn struct {
	entry Entry[*testConn]
	id    int
	nc    *net.TCPConn // the accepted side
	rc    syscall.RawConn
	peer  net.Conn      // the client side, which the test writes
	rest  []byte        // the start of a line whose end has not come yet
	ended chan struct{} // closed when the holder removed it (end)
}

// testBudget is what one turn reads at most, as the broker's turnBudget: a connection that sends
// more goes back to its poller's queue (Requeue).
const testBudget = 16 << 10

// line is a complete line that a turn read.
type line struct {
	c    *testConn
	text string
	here bool // read by DispatchReady's caller
}

type harness struct {
	t     *testing.T
	set   *Set[*testConn]
	ln    net.Listener
	lines chan line
	epoch time.Time
	ids   atomic.Int32

	// onLine, if set, is called by the turn for each line before it is reported.
	onLine func(l line)
	// emptyTurns counts the turns that read nothing (wake-ups); lastEmpty is when the last began.
	emptyTurns atomic.Int32
	lastEmpty  atomic.Int64
	// room gets the connections that Config.Writable reports.
	room chan *testConn
}

// newHarness starts n pollers with ReaderLinger linger.
func newHarness(t *testing.T, n int, linger time.Duration) *harness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	h := &harness{t: t, ln: ln, lines: make(chan line, 4096), epoch: time.Now(), room: make(chan *testConn, 16)}
	h.set, err = NewSet(n, Config[*testConn]{
		Entry: func(c *testConn) *Entry[*testConn] { return &c.entry },
		Writable: func(c *testConn) {
			select {
			case h.room <- c:
			default:
			}
		},
		Turn:         h.turn,
		Clock:        h.clock,
		ReaderLinger: linger,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) clock() time.Duration { return time.Since(h.epoch) }

// dial connects a client and adds the accepted side to a poller (Set.Assign, Add), with
// wake-ups due after shortest at the earliest; the connection is idle once dial returns, and is
// ended by its turn once the client is closed (at cleanup, or by the test).
func (h *harness) dial(shortest time.Duration) *testConn { return h.dialOn(-1, shortest) }

// dialOn is dial onto poller i (Set.AssignTo; negative: round robin).
func (h *harness) dialOn(i int, shortest time.Duration) *testConn {
	h.t.Helper()
	peer, err := net.Dial("tcp", h.ln.Addr().String())
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { peer.Close() })
	nc, err := h.ln.Accept()
	if err != nil {
		h.t.Fatal(err)
	}
	c := &testConn{id: int(h.ids.Add(1)), nc: nc.(*net.TCPConn), peer: peer, ended: make(chan struct{})}
	if c.rc, err = c.nc.SyscallConn(); err != nil {
		h.t.Fatal(err)
	}
	h.set.AssignTo(&c.entry, i)
	if err := c.entry.Poller().Add(c, c.rc, shortest); err != nil {
		h.t.Fatal(err)
	}
	if !c.entry.Release() {
		c.entry.Poller().Dispatch(c) // input came already
	}
	return c
}

// end removes c, which the caller holds, from its poller and closes it.
func (h *harness) end(c *testConn) {
	c.entry.Poller().Remove(c, c.rc)
	c.nc.Close()
	close(c.ended)
}

// turn is Config.Turn: it reads what is there, at most testBudget bytes, and sets no wake-up.
func (h *harness) turn(c *testConn, here bool) Result {
	start := h.clock()
	c.entry.SetWakeAt(0)
	var buf [4096]byte
	var n int
	var rerr error
	got := 0
	for got < testBudget {
		if err := c.rc.Read(func(fd uintptr) bool {
			n, rerr = syscall.Read(int(fd), buf[:])
			return true
		}); err != nil {
			rerr = err
		}
		if rerr == syscall.EAGAIN {
			break
		}
		if rerr != nil || n == 0 {
			h.end(c)
			return Ended
		}
		got += n
		c.rest = append(c.rest, buf[:n]...)
		for {
			i := bytes.IndexByte(c.rest, '\n')
			if i < 0 {
				break
			}
			l := line{c: c, text: string(c.rest[:i]), here: here}
			c.rest = c.rest[i+1:]
			if h.onLine != nil {
				h.onLine(l)
			}
			h.lines <- l
		}
	}
	if got == 0 {
		h.lastEmpty.Store(int64(start))
		h.emptyTurns.Add(1)
	}
	if got >= testBudget {
		return Requeue
	}
	return Drained
}

func (h *harness) await(what string) line {
	h.t.Helper()
	select {
	case l := <-h.lines:
		return l
	case <-time.After(waitTimeout):
		h.t.Fatalf("timed out waiting for %s", what)
		return line{}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// closeAndAwaitEnd closes c's client and waits for c's turn to end it.
func closeAndAwaitEnd(t *testing.T, c *testConn) {
	t.Helper()
	c.peer.Close()
	select {
	case <-c.ended:
	case <-time.After(waitTimeout):
		t.Fatalf("connection %d did not end", c.id)
	}
}

func send(t *testing.T, c *testConn, s string) {
	t.Helper()
	if _, err := c.peer.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// blockOn makes turns wait on a line "block" until unblock runs (also at cleanup); blocked
// counts those waiting.
func blockOn(t *testing.T, h *harness) (unblock func(), blocked *atomic.Int32) {
	release := make(chan struct{})
	unblock = sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock)
	blocked = new(atomic.Int32)
	h.onLine = func(l line) {
		if l.text == "block" {
			blocked.Add(1)
			<-release
		}
	}
	return unblock, blocked
}

func TestBlockedTurnStallsOnlyItsConnection(t *testing.T) {
	// One poller: a turn that blocks holds its reader and its connection; input on the other
	// connection gets another reader, and what came for the blocked one during its turn is read
	// once it returns.
	h := newHarness(t, 1, time.Second)
	unblock, blocked := blockOn(t, h)
	a, b := h.dial(time.Minute), h.dial(time.Minute)
	send(t, a, "block\n")
	waitFor(t, "the turn to block", func() bool { return blocked.Load() == 1 })
	send(t, a, "after\n")
	send(t, b, "free\n")
	if l := h.await("free"); l.c != b || l.text != "free" {
		t.Fatalf("got %q from %d while the other connection's turn blocks", l.text, l.c.id)
	}
	unblock()
	for _, want := range []string{"block", "after"} {
		if l := h.await(want); l.c != a || l.text != want {
			t.Fatalf("got %q from %d, want %q from %d", l.text, l.c.id, want, a.id)
		}
	}
}

func TestTurnsBlockingTogether(t *testing.T) {
	// Every connection's turn blocks at once: each still gets a reader, and another connection
	// is still read.
	h := newHarness(t, 1, time.Second)
	unblock, blocked := blockOn(t, h)
	const n = 8
	cs := make([]*testConn, n)
	for i := range cs {
		cs[i] = h.dial(time.Minute)
	}
	free := h.dial(time.Minute)
	for _, c := range cs {
		send(t, c, "block\n")
	}
	waitFor(t, "every turn to block", func() bool { return blocked.Load() == n })
	send(t, free, "free\n")
	if l := h.await("free"); l.c != free {
		t.Fatalf("got %q from %d", l.text, l.c.id)
	}
	unblock()
	for range n {
		if l := h.await("block"); l.text != "block" {
			t.Fatalf("got %q from %d", l.text, l.c.id)
		}
	}
}

func TestSlotReuse(t *testing.T) {
	// Connections come and go while another one sends more than a turn reads at once: a freed
	// slot (and fd) serves a later connection, and every line reaches the turn for the
	// connection that sent it, in order.
	h := newHarness(t, 2, time.Second)
	long := h.dial(time.Minute)
	const rounds, burst = 12, 40
	pad := strings.Repeat(".", 1000) // burst × 1 KB > testBudget
	type place struct {
		p    *Poller[*testConn]
		slot uint32
	}
	used := map[place]bool{}
	reused := 0
	var got []string
	for i := range rounds {
		c := h.dial(time.Minute)
		pl := place{c.entry.Poller(), c.entry.slot}
		send(t, c, fmt.Sprintf("short %d\n", i))
		var b strings.Builder
		for j := range burst {
			fmt.Fprintf(&b, "long %d %d %s\n", i, j, pad)
		}
		send(t, long, b.String())
		for range burst + 1 {
			l := h.await("a line")
			switch l.c {
			case c:
				got = append(got, l.text)
			case long:
				got = append(got, strings.TrimRight(l.text, ". "))
			default:
				t.Fatalf("line %q from connection %d", l.text, l.c.id)
			}
		}
		closeAndAwaitEnd(t, c)
		if used[pl] {
			reused++
		} else {
			used[pl] = true
		}
	}
	if reused == 0 {
		t.Fatal("no slot was reused")
	}
	// Per connection, in order.
	next, shorts := 0, 0
	for _, s := range got {
		var i, j int
		if _, err := fmt.Sscanf(s, "long %d %d", &i, &j); err == nil {
			if i*burst+j != next {
				t.Fatalf("got %q, want long line %d", s, next)
			}
			next++
		} else {
			shorts++
		}
	}
	if next != rounds*burst || shorts != rounds {
		t.Fatalf("%d long and %d short lines", next, shorts)
	}
}

func TestStaleEventsMiss(t *testing.T) {
	// An event taken after its connection was removed names a slot of an older generation: it
	// reaches nobody, not the connection that has the slot now.
	h := newHarness(t, 1, time.Second)
	old := h.dial(time.Minute)
	p, i := old.entry.Poller(), old.entry.slot
	p.mu.Lock()
	stale := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(i), Pad: int32(p.slots[i].gen)}
	p.mu.Unlock()
	if !old.entry.claim() {
		t.Fatal("could not hold the idle connection")
	}
	h.end(old)
	now := h.dial(time.Minute)
	if now.entry.slot != i {
		t.Fatalf("the new connection has slot %d, not the freed %d", now.entry.slot, i)
	}
	if ready := p.resolve([]syscall.EpollEvent{stale}, nil); len(ready) != 0 {
		t.Fatal("a stale event resolved to a connection")
	}
	if now.entry.state.Load() != idle {
		t.Fatal("a stale event claimed the slot's new connection")
	}
}

func TestWakeAt(t *testing.T) {
	// A connection whose wake-up is due gets a turn without input, once.
	h := newHarness(t, 1, time.Second)
	c := h.dial(80 * time.Millisecond) // sweeps every 10 ms
	// The test holds c for its wake-up to be set as a turn would set it.
	if !c.entry.claim() {
		t.Fatal("could not hold c")
	}
	at := h.clock() + 30*time.Millisecond
	c.entry.SetWakeAt(at)
	if !c.entry.Release() {
		t.Fatal("c was woken while held")
	}
	waitFor(t, "a turn at the wake-up", func() bool { return h.emptyTurns.Load() == 1 })
	if woken := time.Duration(h.lastEmpty.Load()); woken < at {
		t.Fatalf("woken %v early", at-woken)
	}
	time.Sleep(50 * time.Millisecond) // five sweeps
	if n := h.emptyTurns.Load(); n != 1 {
		t.Fatalf("%d turns for one wake-up", n)
	}
}

func TestWake(t *testing.T) {
	// Wake gives an idle connection a turn now; a held one gets another turn after its current one.
	h := newHarness(t, 1, time.Second)
	unblock, blocked := blockOn(t, h)
	c := h.dial(time.Minute)
	c.entry.Poller().Wake(c)
	waitFor(t, "a turn", func() bool { return h.emptyTurns.Load() == 1 })
	send(t, c, "block\n")
	waitFor(t, "the turn to block", func() bool { return blocked.Load() == 1 })
	c.entry.Poller().Wake(c)
	unblock()
	h.await("block")
	waitFor(t, "the turn after the wake-up", func() bool { return h.emptyTurns.Load() == 2 })
}

func TestPeerDone(t *testing.T) {
	// The event of the peer's end of input says so, even while the connection is held: its
	// holder's next turn knows that a short read is not all there is to read.
	h := newHarness(t, 1, time.Second)
	unblock, blocked := blockOn(t, h)
	c := h.dial(time.Minute)
	send(t, c, "block\n")
	waitFor(t, "the turn to block", func() bool { return blocked.Load() == 1 })
	if c.entry.PeerDone() {
		t.Fatal("peer done before the peer's end")
	}
	send(t, c, "last\n")
	c.peer.(*net.TCPConn).CloseWrite()
	waitFor(t, "the end's event", c.entry.PeerDone)
	var doneAtLast atomic.Bool
	h.onLine = func(l line) { doneAtLast.Store(l.c.entry.PeerDone()) }
	unblock()
	h.await("block")
	if l := h.await("last"); l.text != "last" || !doneAtLast.Load() {
		t.Fatalf("got %q, peer done %v", l.text, doneAtLast.Load())
	}
	select {
	case <-c.ended:
	case <-time.After(waitTimeout):
		t.Fatal("the end was not read")
	}
}

func TestReadersExit(t *testing.T) {
	// Readers that stayed idle for ReaderLinger exit; input still finds one.
	h := newHarness(t, 1, 20*time.Millisecond)
	unblock, blocked := blockOn(t, h)
	base := runtime.NumGoroutine()
	const n = 20
	cs := make([]*testConn, n)
	for i := range cs {
		cs[i] = h.dial(80 * time.Millisecond) // sweeps every 10 ms
		send(t, cs[i], "block\n")
	}
	// n turns blocked at once: n readers (a count of goroutines would also see other tests' own
	// goroutines come and go).
	waitFor(t, "a reader for each", func() bool { return blocked.Load() == n })
	unblock()
	for range n {
		h.await("block")
	}
	waitFor(t, "the readers to exit", func() bool { return runtime.NumGoroutine() <= base })
	for _, c := range cs {
		send(t, c, "again\n")
	}
	for range n {
		if l := h.await("again"); l.text != "again" {
			t.Fatalf("got %q from %d", l.text, l.c.id)
		}
	}
}

func TestGrowAndAssignTo(t *testing.T) {
	// Pollers are numbered from 0; a Set grows, and a connection goes on the poller it is told
	// (round robin when the Set has no such poller).
	h := newHarness(t, 2, time.Second)
	if a, b := h.set.FD(0), h.set.FD(1); a < 0 || b < 0 || a == b || h.set.FD(2) != -1 || h.set.FD(-1) != -1 {
		t.Fatalf("FD(0), FD(1), FD(2) = %d, %d, %d: want two distinct fds, then none", a, b, h.set.FD(2))
	}
	if err := h.set.Grow(3); err != nil {
		t.Fatal(err)
	}
	if h.set.FD(2) < 0 {
		t.Fatal("no poller 2 after Grow(3)")
	}
	c := h.dialOn(2, time.Minute)
	if c.entry.Poller() != h.set.all()[2] {
		t.Fatal("AssignTo(2) did not put the connection on poller 2")
	}
	send(t, c, "on two\n")
	if l := h.await("a line"); l.text != "on two" {
		t.Fatalf("got %q", l.text)
	}
	if h.dialOn(7, time.Minute).entry.Poller() == nil {
		t.Fatal("AssignTo a poller the Set lacks gave none")
	}
}

func TestDispatchReadyHere(t *testing.T) {
	// A thread that calls DispatchReady(i) takes poller i's events before the pollers' goroutines,
	// or after them: with one P, the test goroutine writes and then calls it before any poller can
	// run. The connections of poller 0 that here picks are read on the caller (their turns get
	// here), the others by readers, and those of poller 1 never there; every line arrives once, in
	// order per connection.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	h := newHarness(t, 2, time.Second)
	const conns, rounds = 8, 50
	cs := make([]*testConn, conns)
	index := map[*testConn]int{}
	for i := range cs {
		cs[i] = h.dialOn(i%2, time.Minute)
		index[cs[i]] = i
	}
	var inDispatch, misplaced atomic.Bool
	h.onLine = func(l line) {
		if l.here && (!inDispatch.Load() || index[l.c]%4 != 0) {
			misplaced.Store(true)
		}
	}
	evens := func(c *testConn) bool {
		if index[c]%2 != 0 {
			misplaced.Store(true) // poller 1's
		}
		return index[c]%4 == 0
	}
	next := make([]int, conns)
	found, servedHere := 0, 0
	for j := range rounds {
		for _, c := range cs {
			send(t, c, fmt.Sprintf("line %d\n", j))
		}
		here := evens
		if j%2 == 0 {
			here = nil
		}
		inDispatch.Store(true)
		if h.set.DispatchReady(0, here) {
			found++
		}
		inDispatch.Store(false)
		for range conns {
			l := h.await("a line")
			i := index[l.c]
			if want := fmt.Sprintf("line %d", next[i]); l.text != want {
				t.Fatalf("connection %d: got %q, want %q", i, l.text, want)
			}
			next[i]++
			if l.here {
				servedHere++
			}
		}
	}
	if found == 0 || servedHere == 0 {
		t.Fatalf("DispatchReady found input %d times, read %d lines itself", found, servedHere)
	}
	if misplaced.Load() {
		t.Fatal("a turn with here outside DispatchReady, or for a connection it did not pick")
	}
	select {
	case l := <-h.lines:
		t.Fatalf("extra line %q from %d", l.text, l.c.id)
	default:
	}
}

// joined reports whether poller i's fd is in Go's netpoller now.
func (h *harness) joined(i int) bool {
	p := h.set.all()[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.joined != nil
}

// awaitJoined waits until poller i's fd is in Go's netpoller, or out of it (Watch is taken up by
// the poller's goroutine).
func (h *harness) awaitJoined(i int, want bool) {
	h.t.Helper()
	for deadline := time.Now().Add(waitTimeout); h.joined(i) != want; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			h.t.Fatalf("poller %d still joined=%v", i, !want)
		}
	}
}

func TestWatchedPollerLeavesItsFd(t *testing.T) {
	// While a thread watches poller 0's fd, the fd is out of Go's netpoller, and input that the
	// thread does not read is still served (the poller looks by itself); then back in, and input
	// is served by a reader as before. Poller 1 is not watched and stays in.
	h := newHarness(t, 2, time.Second)
	c := h.dialOn(0, time.Minute)
	h.set.Watch(0, true)
	h.awaitJoined(0, false)
	if !h.joined(1) {
		t.Fatal("poller 1 left Go's netpoller")
	}
	send(t, c, "unread by the watcher\n")
	if l := h.await("a line while watched"); l.text != "unread by the watcher" || l.here {
		t.Fatalf("got %q (here %v)", l.text, l.here)
	}
	send(t, c, "read by the watcher\n")
	var l line
	for found := false; !found; {
		// The watcher reads the line once it is in, unless the poller looked first.
		if h.set.DispatchReady(0, func(*testConn) bool { return true }) {
			l, found = h.await("a line the watcher found"), true
			continue
		}
		select {
		case l = <-h.lines:
			found = true
		default:
			runtime.Gosched()
		}
	}
	if l.text != "read by the watcher" {
		t.Fatalf("got %q", l.text)
	}
	h.set.Watch(0, false)
	h.awaitJoined(0, true)
	send(t, c, "after the watch\n")
	if l := h.await("a line after the watch"); l.text != "after the watch" || l.here {
		t.Fatalf("got %q (here %v)", l.text, l.here)
	}
}

func TestReportRoom(t *testing.T) {
	// A socket filled until it takes no more: once ReportRoom is asked for, the poller reports
	// room when the peer has read, and not before; input is still read as before.
	h := newHarness(t, 1, time.Second)
	c := h.dialOn(0, time.Minute)
	chunk := make([]byte, 64<<10)
	for full := false; !full; {
		c.rc.Write(func(fd uintptr) bool {
			_, err := syscall.Write(int(fd), chunk)
			full = err == syscall.EAGAIN
			return true
		})
	}
	if err := h.set.all()[0].ReportRoom(c, c.rc); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.room:
		t.Fatal("room reported for a full socket")
	default:
	}
	send(t, c, "input\n")
	if l := h.await("a line"); l.text != "input" {
		t.Fatalf("got %q", l.text)
	}
	go io.Copy(io.Discard, c.peer)
	select {
	case got := <-h.room:
		if got != c {
			t.Fatal("room reported for another connection")
		}
	case <-time.After(waitTimeout):
		t.Fatal("no room reported after the peer read")
	}
}
