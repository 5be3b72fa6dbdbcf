package main

// The C ABI that the N-API glue (napi/) calls: each export converts its arguments, recovers from
// a panic, and calls the pool, the schedule or the broker.

/*
#include <stdint.h>
#include <stdlib.h>

// Set by the glue at init: copies a batch into a worker's batch memory during the call and, unless
// to_caller, queues it on that worker's JS thread; with to_caller the calling thread is that
// worker's own and runs it when its call into Go returns (WSB_RUN_BATCH). Returns 0 when done,
// non-zero when that thread is gone.
typedef int (*wsb_deliver_fn)(int32_t worker, const uint8_t *batch, size_t len, int to_caller);

static inline int wsb_call_deliver(wsb_deliver_fn f, int32_t worker, const uint8_t *batch, size_t len, int to_caller) {
	return f(worker, batch, len, to_caller);
}

// What a worker's JS thread does next, as wsb_dispatch_ready and wsb_batch_done answer (bits):
// watch its poller's fd from its event loop (else stop watching), and run the batch just put in
// its batch memory at once (else none waits for it there).
enum { WSB_WATCH_POLLERS = 1, WSB_RUN_BATCH = 2 };

// Set by the glue at init: reports the end of an asynchronous call (wsb_stop, wsb_server_close,
// wsb_cluster_join, wsb_cluster_subscriber_count) and its result to its caller.
typedef void (*wsb_notify_fn)(void *ctx, double result);

static inline void wsb_call_notify(wsb_notify_fn f, void *ctx, double result) { f(ctx, result); }

// Passed by the glue to wsb_take_parcel: makes the JS value of a parcel's data into ctx during the
// call. Given text, a string of its len bytes of UTF-8, returning text; given NULL, a Buffer of
// len bytes, returning its memory, which the caller fills. NULL if it could not.
typedef uint8_t *(*wsb_make_fn)(void *ctx, const uint8_t *text, size_t len);

static inline uint8_t *wsb_call_make(wsb_make_fn f, void *ctx, const uint8_t *text, size_t len) {
	return f(ctx, text, len);
}
*/
import "C"

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/wsbroker/wsbroker/broker"
	"github.com/wsbroker/wsbroker/brokermetrics"
	"github.com/wsbroker/wsbroker/cluster"
	"github.com/wsbroker/wsbroker/internal/wsproto"
)

var (
	deliverFn atomic.Pointer[C.wsb_deliver_fn]
	notifyFn  atomic.Pointer[C.wsb_notify_fn]
)

// deliverToC is the pool's deliverFunc: the glue's deliver function.
func deliverToC(id int32, batch []byte, toCaller bool) bool {
	f := deliverFn.Load()
	if f == nil {
		return false
	}
	// The glue copies the batch before it returns, so Go memory may be passed (it holds no pointers).
	// A batch is never empty: it is only handed over with events in it.
	return C.wsb_call_deliver(*f, C.int32_t(id), (*C.uint8_t)(unsafe.Pointer(&batch[0])), C.size_t(len(batch)), cBool(toCaller)) == 0
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

// wsb_init registers the glue's functions. It returns the size of a batch that carries no event
// larger than itself (maxBatchBytes): the glue keeps its batch memory at that size.
//
//export wsb_init
func wsb_init(deliver C.wsb_deliver_fn, notify C.wsb_notify_fn) (batchBytes C.size_t) {
	deliverFn.Store(&deliver)
	notifyFn.Store(&notify)
	return maxBatchBytes
}

// wsb_worker_register makes worker id live; the glue must be ready to deliver to it. runtimeIsBun
// is non-zero when the thread runs in Bun. It returns non-zero when the thread is to prepare a
// watch of its poller (watchesPollers).
//
//export wsb_worker_register
func wsb_worker_register(id C.int32_t, mask C.uint32_t, runtimeIsBun C.int) (watch C.int) {
	defer recoverInto("registerWorker")
	workerJoined(workers.register(int32(id), uint32(mask), threadID()))
	return cBool(watchesPollers(runtimeIsBun != 0))
}

//export wsb_worker_set_mask
func wsb_worker_set_mask(worker C.int32_t, mask C.uint32_t) {
	defer recoverInto("setWorkerMask")
	workers.setMask(int32(worker), uint32(mask))
}

// wsb_worker_gone retires a worker whose thread has ended. handled is how many bytes of the batch
// in flight its JS thread handled: -1 all of it (or none was in flight), else the events after
// that offset never ran and go to the live workers with everything else that waited.
//
//export wsb_worker_gone
func wsb_worker_gone(worker C.int32_t, handled C.int64_t) {
	defer recoverInto("workerGone")
	defer letReadyRun() // readers waiting for room in its backlog
	logger.Debug().Int32("worker", int32(worker)).Int64("handled", int64(handled)).Msg("worker gone")
	workers.retire(int32(worker), int(handled))
}

// wsb_batch_done is called when worker's JS thread has handled its batch (batchDone); ranHere is
// non-zero when the thread ran it at once as told (WSB_RUN_BATCH). It returns what the thread
// does next (WSB_* bits).
//
//export wsb_batch_done
func wsb_batch_done(worker C.int32_t, ranHere C.int) (next C.int) {
	defer recoverInto("batchDone")
	return nextToC(batchDone(int32(worker), ranHere != 0))
}

// wsb_poller_fd returns the epoll fd that worker's thread watches, -1 if none (pollerFD).
//
//export wsb_poller_fd
func wsb_poller_fd(worker C.int32_t) (fd C.int) {
	defer recoverInto("pollerFD")
	fd = -1
	return C.int(pollerFD(int32(worker)))
}

// wsb_dispatch_ready is called by worker's JS thread when its event loop sees a poller's fd
// readable (dispatchReady). It returns what the thread does next (WSB_* bits).
//
//export wsb_dispatch_ready
func wsb_dispatch_ready(worker C.int32_t) (next C.int) {
	defer recoverInto("dispatchReady")
	return nextToC(dispatchReady(int32(worker)))
}

// wsb_watching is called by worker's JS thread when its event loop starts or stops watching its
// poller's fd (watching).
//
//export wsb_watching
func wsb_watching(worker C.int32_t, on C.int) {
	defer recoverInto("watching")
	watching(int32(worker), on != 0)
}

// nextToC converts a next into its WSB_* bits.
func nextToC(n next) C.int {
	var bits C.int
	if n.watch {
		bits |= C.WSB_WATCH_POLLERS
	}
	if n.runHere {
		bits |= C.WSB_RUN_BATCH
	}
	return bits
}

// listenConfig is what wsb_listen takes, as JSON (js/options.cts builds it): sizes in bytes, times
// in milliseconds, zero for a default; PEM text for TLS.
type listenConfig struct {
	Bind             []string `json:"bind"`
	MaxPayload       int64    `json:"maxPayload"`
	IdleTimeout      float64  `json:"idleTimeout"`
	HandshakeTimeout float64  `json:"handshakeTimeout"`
	MaxHeaderBytes   int      `json:"maxHeaderBytes"`
	MaxConnections   int      `json:"maxConnections"`
	MaxBackpressure  int      `json:"maxBackpressure"`
	// BackpressureThreshold 0: the broker's default, derived from MaxBackpressure.
	BackpressureThreshold int      `json:"backpressureThreshold"`
	MaxMessagesPerSecond  int      `json:"maxMessagesPerSecond"`
	MaxConnectionsPerIP   int      `json:"maxConnectionsPerIp"`
	OpenTimeout           float64  `json:"openTimeout"`
	Protocols             []string `json:"protocols"`
	Compression           bool     `json:"compression"`
	// CompressionContextTakeover is compression: { serverContextTakeover: true }.
	CompressionContextTakeover bool `json:"compressionContextTakeover"`
	TLS                        *struct {
		Cert string `json:"cert"`
		Key  string `json:"key"`
	} `json:"tls"`
	Metrics string `json:"metrics"`
	// Attach, when not empty, names a Node server whose upgrades this call takes (an Attachment
	// with the same limits, without TLS).
	Attach string `json:"attach"`
	// TrustProxy holds addresses and CIDRs (js/options.cts has checked them and expanded names).
	TrustProxy []string `json:"trustProxy"`
}

// limits are the broker's Limits that cfg describes.
func (cfg *listenConfig) limits() (broker.Limits, error) {
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	lim := broker.Limits{
		MaxPayload:                 cfg.MaxPayload,
		IdleTimeout:                ms(cfg.IdleTimeout),
		HandshakeTimeout:           ms(cfg.HandshakeTimeout),
		MaxHeaderBytes:             cfg.MaxHeaderBytes,
		MaxConnections:             cfg.MaxConnections,
		MaxBackpressure:            cfg.MaxBackpressure,
		BackpressureThreshold:      cfg.BackpressureThreshold,
		MaxMessagesPerSecond:       cfg.MaxMessagesPerSecond,
		MaxConnectionsPerIP:        cfg.MaxConnectionsPerIP,
		OpenTimeout:                ms(cfg.OpenTimeout),
		Protocols:                  cfg.Protocols,
		Compression:                cfg.Compression,
		CompressionContextTakeover: cfg.CompressionContextTakeover,
	}
	if cfg.TLS != nil {
		cert, err := tls.X509KeyPair([]byte(cfg.TLS.Cert), []byte(cfg.TLS.Key))
		if err != nil {
			return lim, fmt.Errorf("options.tls: invalid certificate or key: %w", err)
		}
		lim.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	for _, entry := range cfg.TrustProxy {
		p, err := prefixOf(entry)
		if err != nil {
			return lim, fmt.Errorf("options.trustProxy: %w", err)
		}
		lim.TrustProxy = append(lim.TrustProxy, p)
	}
	return lim, nil
}

// wsb_listen starts the listeners of one start() call (a JSON listenConfig), its Attachment and
// the metrics server if it names them: all of them or, on error, none (nothing stays bound). Once
// listening it sets *bound to a malloc'd JSON listenResult for the caller to free and returns
// NULL, else it returns a malloc'd message for the caller to free.
//
//export wsb_listen
func wsb_listen(config *C.uint8_t, n C.size_t, bound **C.char) *C.char {
	return cError(func() error {
		var cfg listenConfig
		if err := json.Unmarshal(bytesOf(config, n), &cfg); err != nil {
			return fmt.Errorf("invalid listen configuration: %w", err)
		}
		lim, err := cfg.limits()
		if err != nil {
			return err
		}
		stopMetrics := func() {}
		if cfg.Metrics != "" {
			_, stop, err := brokermetrics.Serve(brk, cfg.Metrics, queueCollector{workers}, brokermetrics.ClusterCollector(clusterStats))
			if err != nil {
				return err
			}
			stopMetrics = stop
		}
		listeners, err := brk.Listen(cfg.Bind, lim)
		if err != nil {
			stopMetrics()
			return err
		}
		s := server{groups: []*broker.Listeners{listeners}, stopMetrics: stopMetrics}
		result := listenResult{Addresses: hostPorts(listeners.Addrs())}
		if cfg.Attach != "" {
			attached := lim
			attached.TLS = nil
			a, err := brk.Attach(cfg.Attach, attached)
			if err != nil { // not reached: Listen has checked these limits
				listeners.Close(0)
				stopMetrics()
				return err
			}
			s.groups = append(s.groups, a.Listeners())
			s.attachment = a
		}
		result.Server = addServer(s)
		out, _ := json.Marshal(result) // numbers and strings: it cannot fail
		*bound = C.CString(string(out))
		letReadyRun() // the accept loops
		return nil
	})
}

// listenResult is what wsb_listen reports: the server's id (for wsb_server_close and, when it is
// attached to a Node server, wsb_adopt) and the addresses listened on, in the order of
// listenConfig.Bind.
type listenResult struct {
	Server    uint32     `json:"server"`
	Addresses []hostPort `json:"addresses"`
}

// hostPort is an address as Node's server.address() gives it: an IPv6 host without brackets.
type hostPort struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

func hostPorts(addrs []net.Addr) []hostPort {
	out := make([]hostPort, len(addrs))
	for i, a := range addrs {
		ap := a.(*net.TCPAddr).AddrPort()
		out[i] = hostPort{Host: ap.Addr().String(), Port: int(ap.Port())}
	}
	return out
}

// wsb_adopt hands the TCP connection of fd, whose upgrade request a Node server has read (pre:
// that request, re-serialised, and the bytes that followed it), over to the Attachment of server
// (wsb_listen's id); fd stays the caller's to close. It returns NULL once the broker has it, else
// a malloc'd message for the caller to free.
//
//export wsb_adopt
func wsb_adopt(server C.uint32_t, fd C.int, pre *C.uint8_t, n C.size_t) *C.char {
	defer letReadyRun() // the accept loop, then the handshake
	return cError(func() error {
		return adopt(uint32(server), int(fd), bytes.Clone(bytesOf(pre, n)))
	})
}

// prefixOf parses a CIDR, or an address as the prefix of all its bits.
func prefixOf(entry string) (netip.Prefix, error) {
	if strings.Contains(entry, "/") {
		return netip.ParsePrefix(entry)
	}
	a, err := netip.ParseAddr(entry)
	if err != nil {
		return netip.Prefix{}, err
	}
	return a.Prefix(a.BitLen())
}

// wsb_close closes a socket with a close frame. It returns 1 if the socket was open, 0 if not;
// an invalid code or reason sets *errMsg to a malloc'd message for the caller to free.
//
//export wsb_close
func wsb_close(id C.uint64_t, code C.int, reason *C.uint8_t, n C.size_t, errMsg **C.char) C.int {
	defer recoverInto("close")
	defer letReadyRun() // the flusher that writes the close frame
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
		servers.Lock()
		all := servers.byID
		servers.byID = nil
		servers.Unlock()
		for _, s := range all {
			s.stopMetrics()
		}
		brk.Close()
		leaveCluster()
		workers.drain()
		workers.setStopping(false)
		notifyC(ctx, 0)
	}()
	letReadyRun()
}

// wsb_server_close stops the listeners, the Attachment and the metrics server of the start() call
// whose id wsb_listen gave, lets its connections go on for graceMs, closes those still open with
// 1001, and calls the notify function with ctx once their close events have been handled by the
// workers (at once if that server is closed already, or stop came).
//
//export wsb_server_close
func wsb_server_close(id C.uint32_t, graceMs C.double, ctx unsafe.Pointer) {
	defer recoverInto("closeServer")
	go func() {
		defer recoverInto("closeServer")
		servers.Lock()
		s, ok := servers.byID[uint32(id)]
		delete(servers.byID, uint32(id))
		servers.Unlock()
		if ok {
			s.close(time.Duration(float64(graceMs) * float64(time.Millisecond)))
		}
		notifyC(ctx, 0)
	}()
	letReadyRun()
}

// notifyC reports the end of an asynchronous call, with its result, to the glue.
func notifyC(ctx unsafe.Pointer, result float64) {
	if f := notifyFn.Load(); f != nil {
		C.wsb_call_notify(*f, ctx, C.double(result))
	}
}

// wsb_cluster_join joins the cluster that config (JSON, a clusterConfig) describes: it returns
// NULL and then reports 1 to ctx once the engine is connected, or 0 if it is not within
// joinWait (the node keeps trying); else a malloc'd message for the caller to free.
//
//export wsb_cluster_join
func wsb_cluster_join(config *C.uint8_t, n C.size_t, ctx unsafe.Pointer) *C.char {
	return cError(func() error {
		var cfg clusterConfig
		if err := json.Unmarshal(bytesOf(config, n), &cfg); err != nil {
			return fmt.Errorf("invalid cluster configuration: %w", err)
		}
		return joinCluster(cfg, func(connected bool) { notifyC(ctx, float64(cBool(connected))) })
	})
}

// wsb_cluster_subscriber_count reports to ctx how many sockets are subscribed to the channel on
// every node of the cluster (on this one without a cluster).
//
//export wsb_cluster_subscriber_count
func wsb_cluster_subscriber_count(ch *C.uint8_t, chLen C.size_t, ctx unsafe.Pointer) {
	defer recoverInto("clusterSubscriberCount")
	clusterSubscriberCount(bytes.Clone(bytesOf(ch, chLen)), func(count int) { notifyC(ctx, float64(count)) })
}

// wsb_caught_up answers a catch-up event (kindCatchUp): the socket's worker has handled its
// earlier events, and their sends are queued (with the worker's batch, when it is handling one);
// the close frame that waited for them follows them.
//
//export wsb_caught_up
func wsb_caught_up(id C.uint64_t) {
	defer recoverInto("caughtUp")
	defer letReadyRun() // the flusher that writes the close frame, unless a batch holds the socket
	brk.CaughtUp(uint64(id))
}

// wsb_accept_open gives the verdict on an open; worker is as in wsb_send: in a batch, the
// response is written with its sends.
//
//export wsb_accept_open
func wsb_accept_open(id C.uint64_t, accept C.int, worker C.int32_t) {
	defer recoverInto("acceptOpen")
	if k := corkOf(int32(worker)); k != nil {
		k.Accept(uint64(id), accept != 0)
		return
	}
	brk.Accept(uint64(id), accept != 0)
	letReadyRun()
}

// openRefusal is how the glue passes a handleOpen refusal's status and headers (JSON).
type openRefusal struct {
	Status  int         `json:"status"`
	Headers [][2]string `json:"headers"`
}

// serverError refuses an upgrade whose handler's refusal was invalid.
var serverError = broker.Refusal{Status: 500}

// wsb_refuse_open refuses an open with the status and headers of refusal (JSON, an openRefusal)
// and body; one that breaks a rule of broker.Refusal is logged and answered with 500. The response
// is written by a goroutine of its own, never with a batch's sends: worker (as in wsb_send) only
// says whether to let it run now.
//
//export wsb_refuse_open
func wsb_refuse_open(id C.uint64_t, refusal *C.uint8_t, n C.size_t, body *C.uint8_t, bodyLen C.size_t, worker C.int32_t) {
	defer recoverInto("refuseOpen")
	var r openRefusal
	err := json.Unmarshal(bytesOf(refusal, n), &r)
	if err == nil {
		headers := make([]broker.Header, len(r.Headers))
		for i, h := range r.Headers {
			headers[i] = broker.Header{Name: h[0], Value: h[1]}
		}
		_, err = brk.Refuse(uint64(id), broker.Refusal{Status: r.Status, Headers: headers, Body: bytesOf(body, bodyLen)})
	}
	if err != nil {
		logger.Error().Uint64("socket", uint64(id)).Msg("handleOpen's refusal is answered with HTTP 500: " + err.Error())
		brk.Refuse(uint64(id), serverError)
	}
	if corkOf(int32(worker)) == nil {
		letReadyRun() // the goroutine that writes the response
	}
}

// wsb_take_parcel has mk make the JS value of parcel id's data (a message's data outside its
// batch, parcels.go) during the call, and gives the parcel back. It returns 0 when mk made it, 1
// when it could not, -1 if there is no such parcel.
//
//export wsb_take_parcel
func wsb_take_parcel(id C.double, text C.int, mk C.wsb_make_fn, ctx unsafe.Pointer) (made C.int) {
	made = 1
	defer recoverInto("takeParcel")
	p, ok := takeParcel(uint64(id))
	if !ok {
		return -1
	}
	defer p.free()
	if text != 0 {
		// mk copies the text before it returns, so Go memory may be passed (it holds no pointers).
		// A parcel is never empty (parcelMin).
		data, own := p.joined()
		if own != nil {
			defer wsproto.Buffers.Put(own)
		}
		if C.wsb_call_make(mk, ctx, (*C.uint8_t)(unsafe.Pointer(&data[0])), C.size_t(len(data))) == nil {
			return 1
		}
		return 0
	}
	n := p.size()
	dst := C.wsb_call_make(mk, ctx, nil, C.size_t(n))
	if dst == nil {
		return 1
	}
	to := unsafe.Slice((*byte)(unsafe.Pointer(dst)), n)
	for _, b := range p.bufs {
		to = to[copy(to, *b):]
	}
	return 0
}

// wsb_send sends to one socket. worker is the worker whose batch the calling thread is handling
// (0: none): its sends are written when the batch is done, others at once. It returns 0 when the
// socket's queue is over its backpressureThreshold after this message (broker.Broker.Send), else 1.
//
//export wsb_send
func wsb_send(id C.uint64_t, text C.int, data *C.uint8_t, n C.size_t, worker C.int32_t) (room C.int) {
	room = 1
	defer recoverInto("send")
	sendFrom(int32(worker), func(k *broker.Cork) {
		room = cBool(k.Send(uint64(id), bytesOf(data, n), text != 0))
	})
	return room
}

// wsb_buffered_amount returns the bytes queued for a socket (broker.Broker.BufferedAmount).
//
//export wsb_buffered_amount
func wsb_buffered_amount(id C.uint64_t) C.int64_t {
	defer recoverInto("bufferedAmount")
	return C.int64_t(brk.BufferedAmount(uint64(id)))
}

// wsb_send_to_channel broadcasts to a channel, except to socket `except` (0: none). worker is as
// in wsb_send.
//
//export wsb_send_to_channel
func wsb_send_to_channel(ch *C.uint8_t, chLen C.size_t, text C.int, data *C.uint8_t, n C.size_t, except C.uint64_t, worker C.int32_t) {
	defer recoverInto("sendToChannel")
	sendFrom(int32(worker), func(k *broker.Cork) {
		k.SendToChannel(bytesOf(ch, chLen), bytesOf(data, n), text != 0, uint64(except))
	})
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

// wsb_stats returns the broker's figures, the workers' queues and the Go runtime's memory as JSON,
// in malloc'd memory the caller frees.
//
//export wsb_stats
func wsb_stats() (out *C.char) {
	defer recoverInto("stats")
	js, err := json.Marshal(struct {
		broker.Stats
		Workers []WorkerQueue          `json:"workers"`
		Go      brokermetrics.GoMemory `json:"go"`
		Cluster *cluster.Stats         `json:"cluster,omitempty"`
	}{brk.Stats(), workers.queues(), brokermetrics.ReadGoMemory(), clusterStats()})
	if err != nil {
		js = []byte("{}")
	}
	return C.CString(string(js))
}

func cBool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
