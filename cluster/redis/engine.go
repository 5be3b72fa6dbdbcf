// Package redis is the cluster.Engine over Redis PUB/SUB, in RESP2 without a client library
// (link.go): one pipelined connection publishes, one subscribes (subscriber.go), and a
// supervisor goroutine connects them, watches them, and reconnects with backoff until Close.
package redis

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/wsbroker/wsbroker/cluster"
)

// Options are the settings a URL cannot carry. The zero value is usable.
type Options struct {
	// TLS configures rediss:// connections (RootCAs, client certificates); its ServerName
	// defaults to the URL's host. Nil uses the system's roots.
	TLS *tls.Config
	// DialTimeout bounds connecting and logging in, per connection; 0 means 5 s.
	DialTimeout time.Duration
	// ProbeAfter is how often the engine checks that the subscribe connection has received
	// something: after a ProbeAfter with nothing, it publishes a probe to itself; 0 means 10 s.
	ProbeAfter time.Duration
	// ProbeTimeout is how long the probe may take to come back before the connection counts as
	// lost, and how long a write may block before its connection does; 0 means 10 s.
	ProbeTimeout time.Duration
}

// ErrNotConnected is returned by calls made while the engine is not connected.
var ErrNotConnected = errors.New("redis: not connected")

const (
	defaultDialTimeout = 5 * time.Second
	defaultProbe       = 10 * time.Second
	// subscribeBatch is the most topics one SUBSCRIBE or UNSUBSCRIBE names.
	subscribeBatch = 512
	// probeTopicPrefix starts the topic only this engine subscribes, for its liveness probe.
	probeTopicPrefix = "wsbroker:engine-probe:"
)

// Engine implements cluster.Engine over Redis.
type Engine struct {
	addr       address
	opts       Options
	probeTopic string

	ctx  context.Context // cancelled by Close
	stop context.CancelFunc

	mu      sync.Mutex
	started bool
	closed  bool
	conn    *connection   // nil while not connected
	done    chan struct{} // closed when the supervisor has returned

	// deliverMu serialises Received calls and guards receiving, the connection whose messages
	// reach the handler.
	deliverMu sync.Mutex
	receiving *connection
	handler   cluster.EngineHandler
}

var _ cluster.Engine = (*Engine)(nil)

// New checks rawURL and opts and returns an engine that connects once started.
func New(rawURL string, opts Options) (*Engine, error) {
	addr, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if opts.TLS != nil && addr.scheme != "rediss" {
		return nil, fmt.Errorf("redis: Options.TLS is given for a %s:// URL: use rediss://", addr.scheme)
	}
	if opts.DialTimeout < 0 || opts.ProbeAfter < 0 || opts.ProbeTimeout < 0 {
		return nil, errors.New("redis: a negative duration in Options")
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = defaultDialTimeout
	}
	if opts.ProbeAfter == 0 {
		opts.ProbeAfter = defaultProbe
	}
	if opts.ProbeTimeout == 0 {
		opts.ProbeTimeout = defaultProbe
	}
	var id [16]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read does not fail
	ctx, stop := context.WithCancel(context.Background())
	return &Engine{
		addr:       addr,
		opts:       opts,
		probeTopic: probeTopicPrefix + hex.EncodeToString(id[:]),
		ctx:        ctx,
		stop:       stop,
		done:       make(chan struct{}),
	}, nil
}

// String is the engine's URL without user or password, e.g. redis://127.0.0.1:6379/0.
func (e *Engine) String() string { return e.addr.String() }

// Start starts the supervisor, which connects, reports to h, and reconnects until Close.
// StateChanged runs on the supervisor's goroutine, Received on the subscribe connection's, so the
// two may overlap; a message is passed on only while its connection is the current one.
func (e *Engine) Start(h cluster.EngineHandler) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.closed {
		return errors.New("redis: Start on an engine already started or closed")
	}
	e.started = true
	e.handler = h
	go e.supervise(h)
	return nil
}

// Close stops the supervisor and disconnects; the handler is not called after it returns. It
// must not be called from the handler.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	started := e.started
	e.mu.Unlock()
	e.stop()
	if started {
		<-e.done
	}
	return nil
}

// supervise connects, watches the connection until it is lost, and reconnects with backoff,
// reporting each change of state once.
func (e *Engine) supervise(h cluster.EngineHandler) {
	defer close(e.done)
	lossReported := false
	failures := 0 // since the last connection
	for {
		c, err := e.connect()
		if err == nil {
			e.setConnection(c)
			h.StateChanged(true, nil)
			err = e.watch(c)
			e.setConnection(nil)
			c.close()
			if e.ctx.Err() != nil {
				return
			}
			h.StateChanged(false, err)
			lossReported, failures = true, 0
		} else if e.ctx.Err() != nil {
			return
		} else if !lossReported {
			h.StateChanged(false, err)
			lossReported = true
		}
		failures++
		timer := time.NewTimer(cluster.Backoff(failures))
		select {
		case <-e.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// setConnection makes c the connection that calls use and whose messages reach the handler.
func (e *Engine) setConnection(c *connection) {
	e.mu.Lock()
	e.conn = c
	e.mu.Unlock()
	e.deliverMu.Lock()
	e.receiving = c
	e.deliverMu.Unlock()
}

// connected returns the current connection, or ErrNotConnected.
func (e *Engine) connected() (*connection, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn == nil {
		return nil, ErrNotConnected
	}
	return e.conn, nil
}

// connection is one generation of the engine's two links, replaced whole after a loss.
type connection struct {
	pub *link // publishes, pipelined: one connection keeps a node's publications in order
	sub *link // subscribes
}

// connect dials both links, logs in, and subscribes the probe topic.
func (e *Engine) connect() (*connection, error) {
	ctx, cancel := context.WithTimeout(e.ctx, e.opts.DialTimeout)
	defer cancel()
	pub, err := e.dialLink(ctx)
	if err != nil {
		return nil, e.describe("connecting", err)
	}
	sub, err := e.dialLink(ctx)
	if err != nil {
		pub.conn.Close()
		return nil, e.describe("connecting the subscribe connection", err)
	}
	c := &connection{pub: pub, sub: sub}
	go pub.readReplies()
	go sub.readSubscribed(func(topic string, data []byte) { e.received(c, topic, data) })
	if err := sub.subscribeCommand(ctx, "SUBSCRIBE", []string{e.probeTopic}); err != nil {
		c.close()
		return nil, e.describe("connecting the subscribe connection", err)
	}
	return c, nil
}

// dial connects to the server, giving up when the engine closes.
func (e *Engine) dial(ctx context.Context, dialer *net.Dialer) (net.Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(e.ctx, cancel)()
	var conn net.Conn
	var err error
	if e.addr.scheme == "rediss" {
		config := e.opts.TLS.Clone()
		if config == nil {
			config = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if config.ServerName == "" {
			config.ServerName = e.addr.host
		}
		tlsDialer := tls.Dialer{NetDialer: dialer, Config: config}
		conn, err = tlsDialer.DialContext(ctx, e.addr.network, e.addr.addr)
	} else {
		conn, err = dialer.DialContext(ctx, e.addr.network, e.addr.addr)
	}
	if err != nil {
		return nil, err
	}
	return closedWithEngine{Conn: conn, forget: context.AfterFunc(e.ctx, func() { conn.Close() })}, nil
}

// closedWithEngine is a connection that closes when its engine does, so that Close need not wait
// for a login that a frozen server never answers.
type closedWithEngine struct {
	net.Conn
	forget func() bool // drops the close on the engine's end
}

func (c closedWithEngine) Close() error {
	c.forget()
	return c.Conn.Close()
}

func (c *connection) close() {
	c.sub.close()
	c.pub.close()
}

// errProbeLost is the loss of a subscribe connection that stopped receiving.
var errProbeLost = errors.New("redis: the subscribe connection received nothing, not even its own probe")

// watch waits until c is lost or the engine closes. A subscribe connection that received nothing
// for a whole ProbeAfter gets a probe published to it, and counts as lost if nothing arrives
// within ProbeTimeout: a connection to a server that no longer delivers (a failover) can stay
// open.
func (e *Engine) watch(c *connection) error {
	timer := time.NewTimer(e.opts.ProbeAfter)
	defer timer.Stop()
	seen := c.sub.received.Load()
	probing := false // a probe went out at the last tick and nothing has arrived since
	for {
		select {
		case <-e.ctx.Done():
			return nil
		case <-c.sub.ended:
			return e.describe("subscribe connection lost", c.sub.err)
		case <-c.pub.ended:
			return e.describe("connection lost", c.pub.err)
		case <-timer.C:
		}
		switch received := c.sub.received.Load(); {
		case received != seen:
			seen, probing = received, false
			timer.Reset(e.opts.ProbeAfter)
		case probing:
			return errProbeLost
		default:
			probing = true
			sent := time.Now()
			if err := e.probe(c); err != nil {
				return err
			}
			timer.Reset(e.opts.ProbeTimeout - time.Since(sent))
		}
	}
}

// probe publishes to the engine's own probe topic; no receiver means the subscribe connection
// is no longer subscribed on the server that publishing reaches.
func (e *Engine) probe(c *connection) error {
	ctx, cancel := context.WithTimeout(e.ctx, e.opts.ProbeTimeout)
	defer cancel()
	var n [1]int
	_, err := c.pub.do(ctx, 1, n[:], func(out []byte) []byte { return appendCommand(out, "PUBLISH", e.probeTopic, "") })
	switch {
	case e.ctx.Err() != nil:
		return nil
	case err != nil:
		return e.describe("liveness probe", err)
	case n[0] == 0:
		return errors.New("redis: the subscribe connection is no longer subscribed (its probe has no receiver)")
	}
	return nil
}

// received passes a message of c's subscribe connection to the handler if c is current.
func (e *Engine) received(c *connection, topic string, data []byte) {
	if topic == e.probeTopic {
		return
	}
	e.deliverMu.Lock()
	defer e.deliverMu.Unlock()
	if e.receiving != c {
		return
	}
	e.handler.Received(topic, data)
}

// Publish sends msgs in one pipelined round trip on the publishing connection.
func (e *Engine) Publish(ctx context.Context, msgs []cluster.Message, receivers []int) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	c, err := e.connected()
	if err != nil {
		return 0, err
	}
	// The reader's until the call ends, so not receivers; an error reply leaves its Refused.
	counts := make([]int, len(msgs))
	for i := range counts {
		counts[i] = cluster.Refused
	}
	sent, err := c.pub.do(ctx, len(msgs), counts, func(out []byte) []byte {
		for _, m := range msgs {
			out = appendBulk(appendBulk(appendBulk(appendArray(out, 3), "PUBLISH"), m.Topic), m.Data)
		}
		return out
	})
	copy(receivers, counts[:sent])
	if err != nil {
		return sent, e.describe("publishing", err)
	}
	return sent, nil
}

// Subscribe subscribes topics in batches and returns once Redis has confirmed the last one.
func (e *Engine) Subscribe(ctx context.Context, topics []string) error {
	return e.inBatches(ctx, topics, "subscribing", "SUBSCRIBE")
}

// Unsubscribe unsubscribes topics in batches and returns once Redis has confirmed the last one.
func (e *Engine) Unsubscribe(ctx context.Context, topics []string) error {
	return e.inBatches(ctx, topics, "unsubscribing", "UNSUBSCRIBE")
}

// inBatches sends command for each batch of at most subscribeBatch topics on the subscribe
// connection, one after the other. An empty batch is never sent: UNSUBSCRIBE without topics
// would drop the probe's too.
func (e *Engine) inBatches(ctx context.Context, topics []string, what, command string) error {
	if len(topics) == 0 {
		return nil
	}
	c, err := e.connected()
	if err != nil {
		return err
	}
	for len(topics) > 0 {
		batch := topics[:min(len(topics), subscribeBatch)]
		topics = topics[len(batch):]
		if err := c.sub.subscribeCommand(ctx, command, batch); err != nil {
			return e.describe(what, err)
		}
	}
	return nil
}

// Claim subscribes topic and asks Redis how many subscriptions it has: one, ours, means alone.
func (e *Engine) Claim(ctx context.Context, topic string) (bool, error) {
	if err := e.Subscribe(ctx, []string{topic}); err != nil {
		return false, err
	}
	c, err := e.connected()
	if err != nil {
		return false, err
	}
	var count [1]int
	if _, err := c.pub.do(ctx, 1, count[:], func(out []byte) []byte { return appendCommand(out, "PUBSUB", "NUMSUB", topic) }); err != nil {
		return false, e.describe("claiming", err)
	}
	return count[0] == 1, nil
}

// describe says what failed and why, in words that never contain the password; Redis's answer
// (an error reply) is cluster.ErrRefused.
func (e *Engine) describe(what string, err error) error {
	refused := isReply(err)
	if p := e.addr.password; p != "" && strings.Contains(err.Error(), p) {
		err = errors.New(strings.ReplaceAll(err.Error(), p, "[password]"))
	}
	if !refused {
		return fmt.Errorf("redis: %s: %w", what, err)
	}
	if msg := err.Error(); strings.HasPrefix(msg, "WRONGPASS") || strings.HasPrefix(msg, "NOAUTH") {
		what += ": authentication failed"
	}
	return fmt.Errorf("redis: %s: %w: %w", what, cluster.ErrRefused, err)
}

// MaxPayload is 0: Redis takes messages up to 512 MB, more than a node sends.
func (e *Engine) MaxPayload() int { return 0 }

// CountsReceivers is true: PUBLISH answers with its receiver count.
func (e *Engine) CountsReceivers() bool { return true }

// Dropped is 0: the subscribe connection hands every message over as it reads it.
func (e *Engine) Dropped() uint64 { return 0 }

// isReply reports whether err is Redis's answer rather than a failure to reach it.
func isReply(err error) bool {
	var reply replyError
	return errors.As(err, &reply)
}
