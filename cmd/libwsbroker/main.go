// Command libwsbroker is built with -buildmode=c-shared into libwsbroker.so: the C ABI that the
// N-API glue (napi/) calls, over one process-wide broker whose events go to JS worker threads.
package main

/*
#include <stdint.h>
#include <stdlib.h>

// Set by the glue at init: queues a batch for a worker's JS thread, copying it during the call.
// Returns 0 when queued, non-zero when that thread is gone.
typedef int (*wsb_deliver_fn)(int32_t worker, const uint8_t *batch, size_t len);

static inline int wsb_call_deliver(wsb_deliver_fn f, int32_t worker, const uint8_t *batch, size_t len) {
	return f(worker, batch, len);
}

// Set by the glue at init: reports the end of an asynchronous call (wsb_stop) to its caller.
typedef void (*wsb_notify_fn)(void *ctx);

static inline void wsb_call_notify(wsb_notify_fn f, void *ctx) { f(ctx); }
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
	"github.com/wsbroker/wsbroker/broker"
)

var (
	logger    = newLogger()
	deliverFn atomic.Pointer[C.wsb_deliver_fn]
	notifyFn  atomic.Pointer[C.wsb_notify_fn]
	workers   *pool
	brk       *broker.Broker
)

func init() {
	// Go would otherwise turn a write to a closed socket into a fatal SIGPIPE for node.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	workers = newPool(deliverToC, func(id uint64) { brk.Accept(id, true) }, func(held []*broker.Conn) { brk.FlushHeld(held) })
	brk = broker.New(bridge{workers}, broker.Options{Logger: logger})
}

// newLogger logs JSON lines to stderr at the level named by WSBROKER_LOG (default warn).
func newLogger() zerolog.Logger {
	level := zerolog.WarnLevel
	if name := strings.TrimSpace(os.Getenv("WSBROKER_LOG")); name != "" {
		if l, err := zerolog.ParseLevel(strings.ToLower(name)); err == nil && l != zerolog.NoLevel {
			level = l
		}
	}
	return zerolog.New(os.Stderr).Level(level).With().Timestamp().Logger()
}

// bridge turns broker events into queued events of the socket's JS worker.
type bridge struct{ pool *pool }

func (b bridge) Open(c *broker.Conn, req *broker.Request) { b.pool.push(c, kindOpen, nil, req) }
func (b bridge) Text(c *broker.Conn, data []byte)         { b.pool.push(c, kindText, data, nil) }
func (b bridge) Binary(c *broker.Conn, data []byte)       { b.pool.push(c, kindBinary, data, nil) }
func (b bridge) Close(c *broker.Conn)                     { b.pool.push(c, kindClose, nil, nil) }

func deliverToC(id int32, batch []byte) bool {
	f := deliverFn.Load()
	if f == nil {
		return false
	}
	// The glue copies the batch before it returns, so Go memory may be passed (it holds no pointers).
	// A batch is never empty: it is only handed over with events in it.
	return C.wsb_call_deliver(*f, C.int32_t(id), (*C.uint8_t)(unsafe.Pointer(&batch[0])), C.size_t(len(batch))) == 0
}

// bytesOf views C memory, valid only during the call that passed it.
func bytesOf(p *C.uint8_t, n C.size_t) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))
}

// cError runs call and returns its error as a malloc'd message for the glue to throw and free
// (NULL when it succeeded); a panic becomes an error too.
func cError(call func() error) (msg *C.char) {
	defer func() {
		if r := recover(); r != nil {
			msg = C.CString(fmt.Sprint("internal error: ", r))
		}
	}()
	if err := call(); err != nil {
		return C.CString(err.Error())
	}
	return nil
}

// Every export recovers: a Go panic would take node down with it.
func recoverInto(what string) {
	if r := recover(); r != nil {
		logger.Error().Str("call", what).Interface("panic", r).Msg("internal error")
	}
}

//export wsb_init
func wsb_init(deliver C.wsb_deliver_fn, notify C.wsb_notify_fn) {
	deliverFn.Store(&deliver)
	notifyFn.Store(&notify)
}

// wsb_worker_register makes worker id live; the glue must be ready to deliver to it.
//
//export wsb_worker_register
func wsb_worker_register(id C.int32_t, mask C.uint32_t) {
	defer recoverInto("registerWorker")
	workers.register(int32(id), uint32(mask))
	logger.Debug().Int32("worker", int32(id)).Uint32("handlers", uint32(mask)).Msg("worker registered")
}

//export wsb_worker_set_mask
func wsb_worker_set_mask(worker C.int32_t, mask C.uint32_t) {
	defer recoverInto("registerWorker")
	workers.setMask(int32(worker), uint32(mask))
}

// wsb_worker_gone retires a worker whose thread has ended. handled is how many bytes of the batch
// in flight its JS thread handled: -1 all of it (or none was in flight), else the events after
// that offset never ran and go to the live workers with everything else that waited.
//
//export wsb_worker_gone
func wsb_worker_gone(worker C.int32_t, handled C.int64_t) {
	defer recoverInto("workerGone")
	logger.Debug().Int32("worker", int32(worker)).Int64("handled", int64(handled)).Msg("worker gone")
	workers.retire(int32(worker), int(handled))
}

//export wsb_batch_done
func wsb_batch_done(worker C.int32_t) {
	defer recoverInto("batchDone")
	workers.done(int32(worker))
}

// The limits of a listener, in the order of the doubles that wsb_listen takes (js/native.cts).
const (
	limMaxPayload = iota
	limIdleTimeout
	limHandshakeTimeout
	limMaxHeaderBytes
	limMaxConnections
	limMaxBackpressure
	limOpenTimeout
	limCount
)

// wsb_listen starts a listener with the given limits (sizes in bytes, times in milliseconds) and
// subprotocols (comma-separated). It returns NULL once listening, else a malloc'd message for the
// caller to free.
//
//export wsb_listen
func wsb_listen(addr *C.uint8_t, n C.size_t, limits *C.double, count C.size_t, protocols *C.uint8_t, pn C.size_t) *C.char {
	return cError(func() error {
		if count != limCount {
			return fmt.Errorf("expected %d limits, got %d", limCount, count)
		}
		v := unsafe.Slice((*float64)(unsafe.Pointer(limits)), limCount)
		ms := func(i int) time.Duration { return time.Duration(v[i] * float64(time.Millisecond)) }
		lim := broker.Limits{
			MaxPayload:       int64(v[limMaxPayload]),
			IdleTimeout:      ms(limIdleTimeout),
			HandshakeTimeout: ms(limHandshakeTimeout),
			MaxHeaderBytes:   int(v[limMaxHeaderBytes]),
			MaxConnections:   int(v[limMaxConnections]),
			MaxBackpressure:  int(v[limMaxBackpressure]),
			OpenTimeout:      ms(limOpenTimeout),
		}
		if pn > 0 {
			lim.Protocols = strings.Split(string(bytesOf(protocols, pn)), ",")
		}
		_, err := brk.Listen(strings.Split(string(bytesOf(addr, n)), "\n"), lim)
		return err
	})
}

// wsb_close closes a socket with a close frame. It returns 1 if the socket was open, 0 if not;
// an invalid code or reason sets *errMsg to a malloc'd message for the caller to free.
//
//export wsb_close
func wsb_close(id C.uint64_t, code C.int, reason *C.uint8_t, n C.size_t, errMsg **C.char) C.int {
	defer recoverInto("close")
	if code < 0 || code > 0xffff {
		*errMsg = C.CString(fmt.Sprintf("invalid close code %d", int(code)))
		return 0
	}
	closed, err := brk.CloseSocket(uint64(id), uint16(code), bytesOf(reason, n))
	if err != nil {
		*errMsg = C.CString(err.Error())
		return 0
	}
	return cBool(closed)
}

// wsb_stop stops every listener, closes every socket with 1001 and waits until every worker has
// handled every event, handleClose included; then it calls the notify function with ctx. It
// returns at once: the JS threads must keep running meanwhile.
//
//export wsb_stop
func wsb_stop(ctx unsafe.Pointer) {
	defer recoverInto("stop")
	go func() {
		defer recoverInto("stop")
		workers.setStopping(true)
		brk.Close()
		workers.drain()
		workers.setStopping(false)
		if f := notifyFn.Load(); f != nil {
			C.wsb_call_notify(*f, ctx)
		}
	}()
}

//export wsb_accept_open
func wsb_accept_open(id C.uint64_t, accept C.int) {
	defer recoverInto("acceptOpen")
	brk.Accept(uint64(id), accept != 0)
}

// wsb_send sends to one socket. worker is the worker whose batch the calling thread is handling
// (0: none); its sends are written when the batch is done.
//
//export wsb_send
func wsb_send(id C.uint64_t, text C.int, data *C.uint8_t, n C.size_t, worker C.int32_t) {
	defer recoverInto("send")
	brk.SendHeld(uint64(id), bytesOf(data, n), text != 0, workers.heldOf(int32(worker)))
}

// wsb_send_to_channel broadcasts to a channel, except to socket `except` (0: none).
//
//export wsb_send_to_channel
func wsb_send_to_channel(ch *C.uint8_t, chLen C.size_t, text C.int, data *C.uint8_t, n C.size_t, except C.uint64_t) {
	defer recoverInto("sendToChannel")
	brk.SendToChannel(bytesOf(ch, chLen), bytesOf(data, n), text != 0, uint64(except))
}

//export wsb_subscriber_count
func wsb_subscriber_count(ch *C.uint8_t, chLen C.size_t) C.int64_t {
	defer recoverInto("subscriberCount")
	return C.int64_t(brk.SubscriberCount(bytesOf(ch, chLen)))
}

// wsb_subscriptions returns the channels of a socket packed as (len:u32 LE, bytes)*, in malloc'd
// memory the caller frees (NULL when there are none), and their total size in *n.
//
//export wsb_subscriptions
func wsb_subscriptions(id C.uint64_t, n *C.size_t) (packed *C.uint8_t) {
	defer recoverInto("subscriptions")
	*n = 0
	var b []byte
	for _, name := range brk.Subscriptions(uint64(id)) {
		b = appendBytes(b, name)
	}
	if len(b) == 0 {
		return nil
	}
	*n = C.size_t(len(b))
	return (*C.uint8_t)(C.CBytes(b))
}

//export wsb_subscribe
func wsb_subscribe(id C.uint64_t, ch *C.uint8_t, chLen C.size_t) C.int {
	defer recoverInto("subscribe")
	return cBool(brk.Subscribe(uint64(id), bytesOf(ch, chLen)))
}

//export wsb_unsubscribe
func wsb_unsubscribe(id C.uint64_t, ch *C.uint8_t, chLen C.size_t) C.int {
	defer recoverInto("unsubscribe")
	return cBool(brk.Unsubscribe(uint64(id), bytesOf(ch, chLen)))
}

//export wsb_set_token
func wsb_set_token(id C.uint64_t, token *C.uint8_t, n C.size_t) {
	defer recoverInto("setToken")
	tok := bytesOf(token, n)
	if tok == nil {
		tok = []byte{} // an empty token is still a token
	}
	brk.SetToken(uint64(id), tok)
}

//export wsb_copy_subscriptions
func wsb_copy_subscriptions(from *C.uint8_t, fromLen C.size_t, to *C.uint8_t, toLen C.size_t) {
	defer recoverInto("copySubscriptions")
	brk.CopySubscriptions(bytesOf(from, fromLen), bytesOf(to, toLen))
}

// wsb_serve_metrics serves the Prometheus metrics on addr (see broker.ServeMetrics), with the
// workers' queues. It returns NULL once listening, else a malloc'd message for the caller to free.
//
//export wsb_serve_metrics
func wsb_serve_metrics(addr *C.uint8_t, n C.size_t) *C.char {
	return cError(func() error {
		_, err := brk.ServeMetrics(string(bytesOf(addr, n)), queueCollector{workers})
		return err
	})
}

// wsb_stats returns the broker's figures and the workers' queues as JSON, in malloc'd memory the
// caller frees.
//
//export wsb_stats
func wsb_stats() (out *C.char) {
	defer recoverInto("stats")
	js, err := json.Marshal(struct {
		broker.Stats
		Workers []WorkerQueue `json:"workers"`
	}{brk.Stats(), workers.queues()})
	if err != nil {
		js = []byte("{}")
	}
	return C.CString(string(js))
}

// wsb_log writes a line from JS: level 0 debug, 1 info, 2 warn, 3 error.
//
//export wsb_log
func wsb_log(level C.int, msg *C.uint8_t, n C.size_t) {
	defer recoverInto("log")
	var ev *zerolog.Event
	switch level {
	case 0:
		ev = logger.Debug()
	case 1:
		ev = logger.Info()
	case 2:
		ev = logger.Warn()
	default:
		ev = logger.Error()
	}
	ev.Str("from", "js").Msg(string(bytesOf(msg, n)))
}

func cBool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func main() {}
