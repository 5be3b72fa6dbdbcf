// Package nats is the cluster.Engine over core NATS (github.com/nats-io/nats.go): one connection
// publishes and subscribes, every subscription feeds one queue so that Received sees messages in
// arrival order, and nats.go reconnects forever while the engine turns its callbacks into the
// contract's state reports (no subscription survives a loss).
package nats

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsbroker/wsbroker/cluster"
)

// Options are the settings a URL cannot carry. The zero value is usable.
type Options struct {
	// TLS configures TLS (RootCAs, client certificates) for tls:// URLs, and asks for TLS with
	// nats:// URLs too; its ServerName defaults to each URL's host. Nil with tls:// uses the
	// system's roots.
	TLS *tls.Config
	// DialTimeout bounds connecting and logging in, and each wait for the server to confirm
	// subscriptions when the caller's context has no deadline; 0 means 5 s.
	DialTimeout time.Duration
	// PingInterval is how often the client pings the server; two pings unanswered count as a
	// loss. 0 means 10 s.
	PingInterval time.Duration
	// ClaimTimeout is how long Claim waits for another holder of the topic to answer; 0 means
	// 200 ms.
	ClaimTimeout time.Duration
}

// ErrNotConnected is returned by calls made while the engine is not connected.
var ErrNotConnected = errors.New("nats: not connected")

const (
	defaultDialTimeout  = 5 * time.Second
	defaultPingInterval = 10 * time.Second
	defaultClaimTimeout = 200 * time.Millisecond
	// subscribeBatch is how many topics Subscribe handles per hold of the engine's lock, so that
	// delivery is not held up for long by a large batch.
	subscribeBatch = 512
	// inboxSize is how many received messages may wait for the dispatcher; nats.go drops what
	// does not fit (Engine.Dropped counts it).
	inboxSize = 65536
)

// Engine implements cluster.Engine over NATS.
type Engine struct {
	servers servers
	opts    Options

	ctx  context.Context // cancelled by Close: ends dials and the dispatcher
	stop context.CancelFunc

	// inbox receives the messages of every subscription, in the order the connection read them.
	inbox chan *nats.Msg

	mu        sync.Mutex
	started   bool
	closed    bool
	conn      *nats.Conn // set once nats.Connect has returned
	connected bool       // as last reported to the handler
	// lossReported is whether the handler has heard of the current loss (or failure to connect).
	lossReported bool
	subs         map[string]subscription // by subject
	// slow holds the subscriptions nats.go has reported as slow consumers: those that dropped.
	slow map[*nats.Subscription]struct{}
	// droppedGone is what subscriptions since removed had dropped.
	droppedGone uint64

	// reportMu serialises state reports and guards handler, nil once Close has begun.
	reportMu sync.Mutex
	handler  cluster.EngineHandler

	connectorDone  chan struct{} // closed when nats.Connect has returned
	dispatcherDone chan struct{} // closed when the dispatcher has returned
}

// subscription is one subscribed topic.
type subscription struct {
	topic string
	sub   *nats.Subscription
}

var _ cluster.Engine = (*Engine)(nil)

// New checks urls (a comma-separated list of nats:// or tls:// URLs) and opts and returns an
// engine that connects once started.
func New(urls string, opts Options) (*Engine, error) {
	s, err := parseURLs(urls)
	if err != nil {
		return nil, err
	}
	if opts.DialTimeout < 0 || opts.PingInterval < 0 || opts.ClaimTimeout < 0 {
		return nil, errors.New("nats: a negative duration in Options")
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = defaultDialTimeout
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = defaultPingInterval
	}
	if opts.ClaimTimeout == 0 {
		opts.ClaimTimeout = defaultClaimTimeout
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Engine{
		servers:        s,
		opts:           opts,
		ctx:            ctx,
		stop:           stop,
		inbox:          make(chan *nats.Msg, inboxSize),
		subs:           make(map[string]subscription),
		slow:           make(map[*nats.Subscription]struct{}),
		connectorDone:  make(chan struct{}),
		dispatcherDone: make(chan struct{}),
	}, nil
}

// String is the engine's URL list without credentials, e.g.
// nats://127.0.0.1:4222,nats://127.0.0.1:4223.
func (e *Engine) String() string { return e.servers.String() }

// Start connects in the background and reports to h from then on. StateChanged runs on nats.go's
// callback goroutine, Received on the engine's dispatcher, so the two may overlap.
func (e *Engine) Start(h cluster.EngineHandler) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.closed {
		return errors.New("nats: Start on an engine already started or closed")
	}
	e.started = true
	e.handler = h
	go e.connect()
	go e.dispatch(h)
	return nil
}

// Close disconnects and stops reconnecting; the handler is not called after it returns. It must
// not be called from the handler.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	started := e.started
	e.mu.Unlock()
	e.reportMu.Lock()
	e.handler = nil
	e.reportMu.Unlock()
	e.stop()
	if !started {
		return nil
	}
	<-e.connectorDone
	e.mu.Lock()
	conn := e.conn
	e.connected = false
	e.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
	<-e.dispatcherDone
	return nil
}

// connect creates the connection, which nats.go then keeps connecting (RetryOnFailedConnect)
// and reconnecting (MaxReconnects -1) until Close.
func (e *Engine) connect() {
	defer close(e.connectorDone)
	opts := []nats.Option{
		nats.Name("wsbroker"),
		// A node drops its own messages anyway, and without echo Claim's question never reaches
		// the engine that asks it.
		nats.NoEcho(),
		// The servers in the order given: a node's nearest first, as the README says.
		nats.DontRandomize(),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.IgnoreAuthErrorAbort(),                // credentials fixed on the server are found without a restart
		nats.CustomReconnectDelay(cluster.Backoff), // nats.go counts its rounds over the server list since the loss
		// Publish fails at once while disconnected: the Node buffers, within its own bound.
		nats.ReconnectBufSize(-1),
		nats.PingInterval(e.opts.PingInterval),
		nats.Timeout(e.opts.DialTimeout),
		nats.SetCustomDialer(engineDialer{e}),
		nats.ConnectHandler(e.onConnected),
		nats.ReconnectHandler(e.onConnected),
		nats.DisconnectErrHandler(e.onLost),
		nats.ReconnectErrHandler(e.onAttemptFailed),
		nats.ErrorHandler(e.onAsyncError),
	}
	switch login := e.servers.login; {
	case login.token != "":
		opts = append(opts, nats.Token(login.token))
	case login.user != "":
		opts = append(opts, nats.UserInfo(login.user, login.password))
	}
	if e.servers.tls || e.opts.TLS != nil {
		config := e.opts.TLS.Clone()
		if config == nil {
			config = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		opts = append(opts, nats.Secure(config))
	}
	conn, err := nats.Connect(e.servers.String(), opts...)
	if err != nil {
		e.report(false, e.describe("connecting", err))
		return
	}
	e.mu.Lock()
	e.conn = conn
	closed := e.closed
	e.mu.Unlock()
	if closed {
		conn.Close()
	}
}

// engineDialer dials with the engine's context, so that Close ends a dial in progress.
type engineDialer struct{ e *Engine }

// Dial connects to address within the dial timeout, unless the engine closes first.
func (d engineDialer) Dial(network, address string) (net.Conn, error) {
	dialer := net.Dialer{Timeout: d.e.opts.DialTimeout}
	return dialer.DialContext(d.e.ctx, network, address)
}

// onConnected is nats.go's report of a connection made, first or again.
func (e *Engine) onConnected(*nats.Conn) {
	e.mu.Lock()
	e.connected, e.lossReported = true, false
	e.mu.Unlock()
	e.report(true, nil)
}

// onLost is nats.go's report of a lost connection. It drops every subscription, which nats.go
// would otherwise send again on reconnecting: the contract leaves resubscribing to the Node.
func (e *Engine) onLost(_ *nats.Conn, err error) {
	e.mu.Lock()
	wasConnected := e.connected
	e.connected, e.lossReported = false, true
	for subject, s := range e.subs {
		e.remove(subject, s)
	}
	e.mu.Unlock()
	if !wasConnected {
		return
	}
	if err == nil {
		err = errors.New("connection closed")
	}
	e.report(false, e.describe("connection lost", err))
}

// onAttemptFailed is nats.go's report of a failed attempt to connect; only the first failure
// before any connection is reported, since later ones follow a loss already reported.
func (e *Engine) onAttemptFailed(_ *nats.Conn, err error) {
	e.mu.Lock()
	first := !e.connected && !e.lossReported
	e.lossReported = true
	e.mu.Unlock()
	if first {
		e.report(false, e.describe("connecting", err))
	}
}

// onAsyncError is nats.go's report of an error outside any call: the engine keeps track of the
// subscriptions that dropped messages, so that Dropped can count them.
func (e *Engine) onAsyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if sub == nil || !errors.Is(err, nats.ErrSlowConsumer) {
		return
	}
	e.mu.Lock()
	if s, ok := e.subs[sub.Subject]; ok && s.sub == sub {
		e.slow[sub] = struct{}{}
	}
	e.mu.Unlock()
}

// report passes a state to the handler unless Close has begun.
func (e *Engine) report(connected bool, err error) {
	e.reportMu.Lock()
	defer e.reportMu.Unlock()
	if e.handler != nil {
		e.handler.StateChanged(connected, err)
	}
}

// dispatch passes the inbox's messages to h, one at a time, until Close.
func (e *Engine) dispatch(h cluster.EngineHandler) {
	defer close(e.dispatcherDone)
	for {
		select {
		case <-e.ctx.Done():
			return
		case m := <-e.inbox:
			e.deliver(h, m)
		}
	}
}

// deliver passes m to h if its subscription is still the engine's, or answers it if it is
// another engine's claim question (the Node's messages have no reply subject).
func (e *Engine) deliver(h cluster.EngineHandler, m *nats.Msg) {
	e.mu.Lock()
	s, ok := e.subs[m.Subject]
	e.mu.Unlock()
	if !ok || s.sub != m.Sub {
		return // unsubscribed since, or dropped at a loss
	}
	if m.Reply != "" {
		_ = m.Respond(nil) // a failed answer only lets the asker think itself alone, as if we had just come
		return
	}
	h.Received(s.topic, m.Data) // nats.go gives each message Data of its own
}

// Dropped is how many received messages nats.go dropped because the dispatcher's queue was
// full, since the engine was created.
func (e *Engine) Dropped() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.droppedGone
	for sub := range e.slow {
		if dropped, err := sub.Dropped(); err == nil {
			n += uint64(dropped)
		}
	}
	return n
}

// CountsReceivers is false: NATS does not say how many subscriptions a message reached.
func (e *Engine) CountsReceivers() bool { return false }

// MaxPayload is the connected server's max_payload in bytes, or 0 while not connected.
func (e *Engine) MaxPayload() int {
	conn, err := e.connection()
	if err != nil {
		return 0
	}
	return int(conn.MaxPayload())
}

// connection returns the connection while connected, or ErrNotConnected.
func (e *Engine) connection() (*nats.Conn, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.connected || e.conn == nil {
		return nil, ErrNotConnected
	}
	return e.conn, nil
}

// Publish writes msgs in order to the connection's buffer, which nats.go's flusher sends;
// receivers are -1, since NATS does not count them. A message over the server's max_payload
// stops the batch with cluster.ErrTooLarge.
func (e *Engine) Publish(ctx context.Context, msgs []cluster.Message, receivers []int) (int, error) {
	conn, err := e.connection()
	if err != nil {
		return 0, err
	}
	for i, m := range msgs {
		if err := ctx.Err(); err != nil {
			return i, err
		}
		if err := conn.Publish(subjectOf(m.Topic), m.Data); err != nil {
			if errors.Is(err, nats.ErrMaxPayload) {
				return i, fmt.Errorf("nats: %w (%d bytes, the server's max_payload is %d)", cluster.ErrTooLarge, len(m.Data), conn.MaxPayload())
			}
			return i, e.describe("publishing", err)
		}
		receivers[i] = -1
	}
	return len(msgs), nil
}

// Subscribe subscribes the topics not subscribed yet and returns once the server has confirmed
// them (a flush round trip).
func (e *Engine) Subscribe(ctx context.Context, topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	var conn *nats.Conn
	for len(topics) > 0 {
		batch := topics[:min(len(topics), subscribeBatch)]
		topics = topics[len(batch):]
		var err error
		if conn, err = e.subscribeBatch(batch); err != nil {
			return err
		}
	}
	return e.flush(ctx, conn, "subscribing")
}

// subscribeBatch subscribes topics with one hold of the lock, so that a loss, which drops every
// subscription under it, comes either before them (ErrNotConnected) or after.
func (e *Engine) subscribeBatch(topics []string) (*nats.Conn, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.connected || e.conn == nil {
		return nil, ErrNotConnected
	}
	for _, topic := range topics {
		subject := subjectOf(topic)
		if _, ok := e.subs[subject]; ok {
			continue
		}
		sub, err := e.conn.ChanSubscribe(subject, e.inbox)
		if err != nil {
			return nil, e.describe("subscribing", err)
		}
		e.subs[subject] = subscription{topic: topic, sub: sub}
	}
	return e.conn, nil
}

// Unsubscribe unsubscribes the topics subscribed and returns once the server has confirmed it.
func (e *Engine) Unsubscribe(ctx context.Context, topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	e.mu.Lock()
	if !e.connected || e.conn == nil {
		e.mu.Unlock()
		return ErrNotConnected
	}
	conn := e.conn
	for _, topic := range topics {
		subject := subjectOf(topic)
		if s, ok := e.subs[subject]; ok {
			e.remove(subject, s)
		}
	}
	e.mu.Unlock()
	return e.flush(ctx, conn, "unsubscribing")
}

// remove unsubscribes s and keeps what it dropped. e.mu is held.
func (e *Engine) remove(subject string, s subscription) {
	if _, ok := e.slow[s.sub]; ok {
		if dropped, err := s.sub.Dropped(); err == nil {
			e.droppedGone += uint64(dropped)
		}
		delete(e.slow, s.sub)
	}
	// While disconnected nats.go only forgets it; a closed connection has no subscriptions left.
	_ = s.sub.Unsubscribe()
	delete(e.subs, subject)
}

// flush waits until the server has processed everything sent before it on conn.
func (e *Engine) flush(ctx context.Context, conn *nats.Conn, what string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.opts.DialTimeout)
		defer cancel()
	}
	if err := conn.FlushWithContext(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return e.describe(what, err)
	}
	return nil
}

// Claim subscribes topic and asks on its subject whether another connection holds it: every
// engine answers for the topics it subscribed (deliver), and no answer within ClaimTimeout, or
// the server's "no responders", means alone.
func (e *Engine) Claim(ctx context.Context, topic string) (bool, error) {
	if err := e.Subscribe(ctx, []string{topic}); err != nil {
		return false, err
	}
	conn, err := e.connection()
	if err != nil {
		return false, err
	}
	askCtx, cancel := context.WithTimeout(ctx, e.opts.ClaimTimeout)
	defer cancel()
	_, err = conn.RequestWithContext(askCtx, subjectOf(topic), nil)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, nats.ErrNoResponders):
		return true, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		return true, nil
	}
	return false, e.describe("claiming", err)
}

// describe says what failed and why, in words that never contain a password or token.
func (e *Engine) describe(what string, err error) error {
	if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) {
		what += ": authorization failed"
	}
	msg := err.Error()
	for _, secret := range e.servers.login.secrets() {
		msg = strings.ReplaceAll(msg, secret, "[secret]")
	}
	if msg != err.Error() {
		return fmt.Errorf("nats: %s: %s", what, msg)
	}
	return fmt.Errorf("nats: %s: %w", what, err)
}
