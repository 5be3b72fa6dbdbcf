// Command libwsbroker is built with -buildmode=c-shared into libwsbroker.so: the C ABI that the
// N-API glue (napi/) calls (exports.go), over one process-wide broker whose events the pool
// (pool.go) batches for the JS worker threads, handing work between Go's threads and the JS
// threads as the schedule (schedule.go) decides.
package main

import (
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/wsbroker/wsbroker/broker"
	"github.com/wsbroker/wsbroker/internal/embedder"
)

// The process's one logger, pool and broker: the Go runtime loads once per process, while the
// addon's module init runs once per JS thread.
var (
	logger  = stderrLogger()
	workers *pool
	brk     *broker.Broker
	// hooks reach what the broker offers an embedder that runs its own event loop and threads.
	hooks = embedder.Of[broker.Broker, broker.Conn]()
	// servers are the start() calls since the last stop, by id.
	servers struct {
		sync.Mutex
		byID map[uint32]server
		last uint32 // the last id given; ids are never reused
	}
)

// server is what one start() call opened: its listeners (and its Attachment's), its Attachment
// (nil: none) and its metrics server.
type server struct {
	groups      []*broker.Listeners
	attachment  *broker.Attachment
	stopMetrics func()
}

// addServer registers s and returns its id.
func addServer(s server) uint32 {
	servers.Lock()
	defer servers.Unlock()
	if servers.byID == nil {
		servers.byID = map[uint32]server{}
	}
	servers.last++
	servers.byID[servers.last] = s
	return servers.last
}

// close stops s taking connections, lets them go on for grace, closes those left with 1001 and
// waits until the workers have handled their events, handleClose included.
func (s server) close(grace time.Duration) {
	s.stopMetrics()
	var wg sync.WaitGroup
	for _, g := range s.groups {
		wg.Go(func() { g.Close(grace) })
	}
	wg.Wait()
	workers.awaitHandled(func(c *broker.Conn) bool { return slices.Contains(s.groups, c.Listeners()) })
}

func init() {
	// Go would otherwise turn a write to a closed socket into a fatal SIGPIPE for node.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	workers = newPool(deliverToC, answerUnwanted, func() corker { return newCork() })
	brk = broker.New(bridge{workers}, broker.Options{Logger: slog.New(zerologHandler{l: logger})})
	if threadsRead {
		hooks.Route(brk, workers.route)
	}
}

// answerUnwanted answers an event of socket id that its worker has no handler for: an open is
// accepted, a catch-up is caught up with at once.
func answerUnwanted(id uint64, kind byte) {
	if kind == kindOpen {
		brk.Accept(id, true)
	} else {
		brk.CaughtUp(id)
	}
}

// bridge turns broker events into queued events of the socket's JS worker. It is a
// broker.CatchUpHandler: a socket's close waits for its worker to handle the messages before it;
// a broker.DrainHandler; and an embedder.PartsHandler: a message that arrived in several buffers
// is copied from them into JS memory, not joined first.
type bridge struct{ pool *pool }

func (b bridge) Open(c *broker.Conn, req *broker.Request) { b.pool.push(c, kindOpen, nil, req) }
func (b bridge) Text(c *broker.Conn, data []byte)         { b.pool.push(c, kindText, data, nil) }
func (b bridge) Binary(c *broker.Conn, data []byte)       { b.pool.push(c, kindBinary, data, nil) }
func (b bridge) MessageParts(c *broker.Conn, text bool, parts [][]byte) {
	kind := kindBinary
	if text {
		kind = kindText
	}
	b.pool.queue(c, kind, nil, parts, nil)
}
func (b bridge) ReadDone(c *broker.Conn) { b.pool.readDone(c) }
func (b bridge) Close(c *broker.Conn)    { b.pool.push(c, kindClose, nil, nil) }
func (b bridge) CatchUp(c *broker.Conn)  { b.pool.push(c, kindCatchUp, nil, nil) }
func (b bridge) Drain(c *broker.Conn)    { b.pool.pushDrain(c) }

func main() {}
