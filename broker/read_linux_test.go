//go:build linux

package broker

import (
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wsbroker/wsbroker/internal/embedder"
	"github.com/wsbroker/wsbroker/internal/netpoll"
	"github.com/wsbroker/wsbroker/internal/wstest"
)

// samePoller dials until two accepted connections share a poller and returns them with their
// Open events.
func samePoller(t *testing.T, rec *recorder, addr string) (a, b *rawClient, ea, eb event) {
	t.Helper()
	type conn struct {
		r *rawClient
		e event
	}
	seen := map[*netpoll.Poller[*Conn]]conn{}
	for range 16 {
		r := rawDial(t, addr, nil)
		e := await(t, rec.opens, "open")
		p := e.c.poll.Poller()
		if p == nil {
			t.Fatal("a plain connection is not polled")
		}
		if prev, ok := seen[p]; ok {
			return prev.r, r, prev.e, e
		}
		seen[p] = conn{r, e}
	}
	t.Fatal("no two connections on the same poller")
	return
}

// blockOnText makes rec's Text calls for the message "block" wait until unblock runs (it also
// runs at cleanup, before Broker.Close, which waits for the blocked calls); blocked counts them.
func blockOnText(t *testing.T, rec *recorder) (unblock func(), blocked *atomic.Int32) {
	release := make(chan struct{})
	unblock = sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock)
	blocked = new(atomic.Int32)
	rec.onText = func(c *Conn, p []byte) {
		if string(p) == "block" {
			blocked.Add(1)
			<-release
		}
	}
	return unblock, blocked
}

func TestPolledBlockedHandlerStallsOnlyItsConnection(t *testing.T) {
	rec := newRecorder()
	_, addr := start(t, rec, Limits{}, polled)
	unblock, _ := blockOnText(t, rec)
	a, b, ea, eb := samePoller(t, rec, addr)
	a.send(wstest.Frame(0x81, []byte("block")))
	a.send(wstest.Frame(0x81, []byte("after")))
	b.send(wstest.Frame(0x81, []byte("free")))
	if m := await(t, rec.msgs, "text"); m.id != eb.id || string(m.data) != "free" {
		t.Fatalf("got %q from %d while the other connection's Handler blocks", m.data, m.id)
	}
	unblock()
	for _, want := range []string{"block", "after"} {
		if m := await(t, rec.msgs, "text"); m.id != ea.id || string(m.data) != want {
			t.Fatalf("got %q from %d, want %q from %d", m.data, m.id, want, ea.id)
		}
	}
}

func TestPolledHandlersBlockingTogether(t *testing.T) {
	// Every connection's Handler call blocks at once: each still gets a reader (readers wake or
	// start one another before a turn), and another connection is still read.
	rec := newRecorder()
	_, addr := start(t, rec, Limits{})
	unblock, blocked := blockOnText(t, rec)
	const n = 8
	rs := make([]*rawClient, n)
	for i := range rs {
		rs[i] = rawDial(t, addr, nil)
		await(t, rec.opens, "open")
	}
	free := rawDial(t, addr, nil)
	freeID := await(t, rec.opens, "open").id
	for _, r := range rs {
		r.send(wstest.Frame(0x81, []byte("block")))
	}
	waitFor(t, "every Handler call to block", func() bool { return blocked.Load() == n })
	free.send(wstest.Frame(0x81, []byte("free")))
	if m := await(t, rec.msgs, "text"); m.id != freeID || string(m.data) != "free" {
		t.Fatalf("got %q from %d", m.data, m.id)
	}
	unblock()
	for range n {
		if m := await(t, rec.msgs, "text"); string(m.data) != "block" {
			t.Fatalf("got %q from %d", m.data, m.id)
		}
	}
}

func TestPolledWriteErrorEndsConnection(t *testing.T) {
	// The socket cannot be written any more while its peer stays quiet: nothing comes to read,
	// yet the connection ends and Close is delivered once.
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	rawDial(t, addr, nil)
	e := await(t, rec.opens, "open")
	e.c.rc.Control(func(fd uintptr) { syscall.Shutdown(int(fd), syscall.SHUT_WR) }) // writes fail with EPIPE
	b.Send(e.id, []byte("lost"), true)
	if c := await(t, rec.closes, "close"); c.id != e.id {
		t.Fatalf("close of %d", c.id)
	}
	b.Close()
	if n := rec.closesOf(e.id); n != 1 {
		t.Fatalf("%d Close events", n)
	}
}

func TestPolledIdleConnectionsHoldNoGoroutine(t *testing.T) {
	rec := newRecorder()
	_, addr := start(t, rec, Limits{IdleTimeout: time.Minute}, func(b *Broker) {
		b.readerLinger = 20 * time.Millisecond  // before the pollers are made (polled)
		b.drainTimeout = 100 * time.Millisecond // sweeps every 12.5 ms
	}, polled)
	base := runtime.NumGoroutine() + runtime.GOMAXPROCS(0) // the pollers start with the first connection
	const n = 40
	conns := make([]*rawClient, n)
	ids := map[uint64]bool{}
	for i := range conns {
		conns[i] = rawDial(t, addr, nil)
		ids[await(t, rec.opens, "open").id] = true
		conns[i].send(wstest.Frame(0x81, []byte("hello")))
	}
	for range n {
		await(t, rec.msgs, "text")
	}
	waitFor(t, "the readers to exit", func() bool { return runtime.NumGoroutine() <= base })
	// Input still finds a reader.
	for _, r := range conns {
		r.send(wstest.Frame(0x81, []byte("again")))
	}
	for range n {
		if m := await(t, rec.msgs, "text"); !ids[m.id] || string(m.data) != "again" {
			t.Fatalf("got %q from %d", m.data, m.id)
		}
	}
}

func TestPolledMessageAndEndInOneSegment(t *testing.T) {
	// A message and the TCP end of input that arrive in one segment raise one event: the turn
	// must read past the short read that carries the message, or the end would only be seen at
	// the idle timeout. TCP_CORK holds the frame back so that the FIN rides in its segment.
	rec := newRecorder()
	_, addr := start(t, rec, Limits{IdleTimeout: time.Hour})
	for i := range 20 {
		r := rawDial(t, addr, nil)
		id := await(t, rec.opens, "open").id
		rc, err := r.nc.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		rc.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, 1)
		})
		if err != nil {
			t.Fatal(err)
		}
		r.send(wstest.Frame(0x81, []byte(msgName(i))))
		if err := r.nc.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if m := await(t, rec.msgs, "text"); m.id != id || string(m.data) != msgName(i) {
			t.Fatalf("got %q from %d, want %q from %d", m.data, m.id, msgName(i), id)
		}
		if c := await(t, rec.closes, "close"); c.id != id {
			t.Fatalf("close of %d, want %d", c.id, id)
		}
	}
}

func TestDispatchReadyAlongsideThePollers(t *testing.T) {
	// A thread that calls DispatchReady(0) when it sees input (a JS worker's event loop does)
	// takes poller 0's events before the pollers' goroutines, or after them: with one P, the test
	// goroutine writes and then calls it before any poller can run. The embedder routes the
	// connections accepted in turn onto pollers 0 and 1. Every message reaches the Handler once,
	// in order per connection. Every other round the caller reads poller 0's connections itself:
	// their Handler calls are made inside DispatchReady, where mayBlock is false; poller 1's
	// never get there.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	rec := newRecorder()
	b, addr := start(t, rec, Limits{}, polled)
	hooks := embedder.Of[Broker, Conn]()
	if hooks.PollerFD(b, 1) < 0 {
		t.Fatal("no fd for poller 1")
	}
	var accepted atomic.Int32
	hooks.Route(b, func(*Conn) int { return int(accepted.Add(1)-1) % 2 })
	const conns, rounds = 8, 50
	var clients []*rawClient
	index := map[uint64]int{}
	for i := range conns {
		clients = append(clients, rawDial(t, addr, nil))
		index[await(t, rec.opens, "open").id] = i
	}
	var inDispatch, misplaced atomic.Bool
	var servedHere atomic.Int32
	rec.onText = func(c *Conn, p []byte) {
		if !c.mayBlock() {
			servedHere.Add(1)
			if !inDispatch.Load() || index[c.ID()]%2 != 0 {
				misplaced.Store(true)
			}
		}
	}
	evens := func(c *Conn) bool {
		if index[c.ID()]%2 != 0 {
			misplaced.Store(true) // poller 1's
		}
		return true
	}
	next := make([]int, conns)
	found := 0
	for j := range rounds {
		for _, r := range clients {
			r.send(wstest.Frame(0x81, []byte(msgName(j))))
		}
		here := evens
		if j%2 == 0 {
			here = nil
		}
		inDispatch.Store(true)
		if hooks.DispatchReady(b, 0, here) {
			found++
		}
		inDispatch.Store(false)
		for range conns {
			m := await(t, rec.msgs, "text")
			i := index[m.id]
			if want := msgName(next[i]); string(m.data) != want {
				t.Fatalf("connection %d: got %q, want %q", i, m.data, want)
			}
			next[i]++
		}
	}
	if found == 0 || servedHere.Load() == 0 {
		t.Fatalf("DispatchReady found input %d times, read %d messages itself", found, servedHere.Load())
	}
	if misplaced.Load() {
		t.Fatal("a Handler call with mayBlock false outside DispatchReady, or for a connection it did not pick")
	}
	select {
	case m := <-rec.msgs:
		t.Fatalf("extra message %q from %d", m.data, m.id)
	default:
	}
}
