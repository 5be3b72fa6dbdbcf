// Package cluster makes several Brokers, in several processes or machines, one WebSocket server:
// a channel's publications reach its subscribers on every node, and a socket of another node can
// be sent to, closed, given a token or subscribed by its id. The nodes talk through an Engine, a
// message bus they share (package cluster/redis: Redis PUB/SUB), and each receives only the
// channels it has subscribers for.
//
// Delivery is at most once: what a node publishes while the engine is unreachable is held up to
// Options.PublishBuffer bytes and published once it is back, and what other nodes published
// meanwhile is lost. Messages from one node reach every other node in the order it sent them
// (channel messages and messages to one socket alike); there is no common order across nodes.
package cluster

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsbroker/wsbroker/broker"
)

// Options configures a Node. Zero values take the defaults.
type Options struct {
	// Prefix starts every engine topic of this cluster, so that several clusters can share one
	// engine: at most MaxPrefix bytes, without ':' (it ends the prefix) or white space; default
	// DefaultPrefix.
	Prefix string
	// PublishBuffer bounds the bytes of publications held while the engine is unreachable or
	// slow; beyond it they are dropped and counted. From MinPublishBuffer to MaxPublishBuffer;
	// default DefaultPublishBuffer.
	PublishBuffer int
	// Logger receives one line per change of the engine's state, and a warning at most once a
	// minute about messages not published (too large, refused); nil discards.
	Logger *slog.Logger
	// Heartbeat is how often the node tells the others it is alive; a node unheard of for two and
	// a half heartbeats has gone. Default 2 s.
	Heartbeat time.Duration
}

// The rules of Options.
const (
	DefaultPrefix        = "wsb"
	MaxPrefix            = 64 // bytes
	DefaultPublishBuffer = 8 << 20
	MinPublishBuffer     = 64 << 10
	MaxPublishBuffer     = 1 << 30
)

// check returns an error naming the first option that breaks its rule.
func (o Options) check() error {
	if len(o.Prefix) > MaxPrefix || strings.ContainsAny(o.Prefix, ": \t\r\n") {
		return fmt.Errorf("cluster: invalid prefix %q: at most %d bytes, without ':' or white space", o.Prefix, MaxPrefix)
	}
	if o.PublishBuffer != 0 && (o.PublishBuffer < MinPublishBuffer || o.PublishBuffer > MaxPublishBuffer) {
		return fmt.Errorf("cluster: invalid publish buffer %d: from %d to %d bytes", o.PublishBuffer, MinPublishBuffer, MaxPublishBuffer)
	}
	return nil
}

// inboxBytes bounds what each inbox holds for its goroutine to apply.
const inboxBytes = 8 << 20

// Node is one Broker's membership of a cluster: it is the Broker's Relay.
type Node struct {
	b        *broker.Broker
	engine   Engine
	opts     Options
	log      *slog.Logger
	instance uint64 // this node, among the nodes: random
	topics   topics

	ids        idSpace
	publisher  *publisher
	subscriber *subscriber
	peers      *peers
	presence   *presence
	inboxes    []*inbox
	lag        lagHistogram
	counters   counters
	// maxPayload is the engine's MaxPayload as of its last connection: a larger message is
	// not published. tooLargeLogged, refusedLogged and subscribeRefusedLogged are when such a
	// drop, one of a message the engine's server refused, and the server's refusal of
	// subscriptions were last logged (Unix ns).
	maxPayload             atomic.Int64
	tooLargeLogged         atomic.Int64
	refusedLogged          atomic.Int64
	subscribeRefusedLogged atomic.Int64

	gate gate

	stateMu   sync.Mutex
	connected bool
	since     time.Time // of the last change of connected
	lostErr   error     // why the engine is not connected, while it is not
	firstUp   chan struct{}
	claimed   map[uint32]bool // slots whose topic the engine confirmed this node alone holds

	ctx    context.Context // ends at Leave
	cancel context.CancelFunc
	done   sync.WaitGroup
	now    func() time.Time
}

type counters struct {
	published, received, unrouted, connects         atomic.Uint64
	droppedDisconnected, droppedSlow, droppedDecode atomic.Uint64
	droppedTooLarge, droppedRefused                 atomic.Uint64
}

// gate holds the node's publications after each connection of the engine until the other nodes
// can receive them: until this node has subscribed its channels again and every node that was
// live when the engine was lost has been heard from since (each says so once it has subscribed
// its own again), at most a heartbeat interval. Neither Redis PUB/SUB nor NATS keeps anything for
// a node not subscribed yet: what was held during an outage would otherwise reach only the nodes
// that happened to be back first.
type gate struct {
	mu         sync.Mutex
	epoch      int // bumped at each loss: a timer of an earlier connection opens nothing
	open       bool
	since      time.Time // when the engine was connected this time
	subscribed bool      // this node's channels are subscribed again
	awaited    []uint64  // the instances of the nodes live at the loss
	timer      *time.Timer
}

// topics are the engine topics of a cluster.
type topics struct {
	prefix  string
	channel string // + the channel's name
	control string // heartbeats and leaving
}

func (t topics) node(slot uint32) string {
	return t.prefix + ":n:" + strconv.FormatUint(uint64(slot), 10)
}

// engineHandler is the Node's EngineHandler, kept off the Node's exported methods.
type engineHandler struct{ n *Node }

// relay is the Node's broker.Relay, kept off the Node's exported methods.
type relay struct{ n *Node }

// Join makes b a node of the cluster whose nodes share engine: it starts the engine, attaches
// itself to b as its Relay, and returns at once; WaitConnected waits for the engine. b's sockets
// opened before keep their ids, reachable from this node only.
func Join(b *broker.Broker, engine Engine, opts Options) (*Node, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	opts.Prefix = cmp.Or(opts.Prefix, DefaultPrefix)
	opts.PublishBuffer = cmp.Or(opts.PublishBuffer, DefaultPublishBuffer)
	opts.Heartbeat = cmp.Or(opts.Heartbeat, 2*time.Second)
	n := &Node{
		b: b, engine: engine, opts: opts,
		log:      cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		instance: rand.Uint64() | 1,
		topics:   topics{prefix: opts.Prefix, channel: opts.Prefix + ":c:", control: opts.Prefix + ":ctl"},
		peers:    newPeers(opts.Heartbeat * 5 / 2),
		presence: newPresence(),
		firstUp:  make(chan struct{}),
		claimed:  map[uint32]bool{},
		since:    time.Now(),
		now:      time.Now,
	}
	n.ids.init(randomSlot(), n.spareSlot)
	n.publisher = newPublisher(engine, opts.PublishBuffer, n.sent, n.dropTooLarge)
	n.subscriber = newSubscriber(engine, n.fresh, n.resubscribed, n.subscribeRefused)
	n.inboxes = make([]*inbox, runtime.GOMAXPROCS(0))
	for i := range n.inboxes {
		n.inboxes[i] = newInbox(inboxBytes)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.ctx, n.cancel = ctx, cancel
	n.goRun(func() { n.publisher.run(ctx) })
	n.goRun(func() { n.subscriber.run(ctx) })
	n.goRun(func() { n.heartbeats(ctx) })
	for _, in := range n.inboxes {
		n.goRun(func() { in.run(ctx, b.NewCork(), &n.lag, n.apply) })
	}
	if err := engine.Start(&engineHandler{n}); err != nil {
		cancel()
		n.done.Wait()
		return nil, err
	}
	b.SetRelay(&relay{n})
	return n, nil
}

func (n *Node) goRun(f func()) {
	n.done.Add(1)
	go func() {
		defer n.done.Done()
		f()
	}()
}

// WaitConnected returns once the engine has been connected and the node's slot claimed, or with
// ctx's error (the node keeps trying in the background).
func (n *Node) WaitConnected(ctx context.Context) error {
	select {
	case <-n.firstUp:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Leave tells the other nodes this node is leaving, detaches it from its Broker and closes the
// engine, after publishing what it can within ctx.
func (n *Node) Leave(ctx context.Context) {
	n.b.SetRelay(nil)
	n.openGate(anyEpoch)
	n.publish(outgoing{msg: Message{Topic: n.topics.control, Data: n.header().appendLeaving(nil)}})
	// What is queued, the leaving message last, goes out first while the engine takes it (polled:
	// the publisher reports nothing when its queue empties).
	for n.isConnected() && ctx.Err() == nil {
		if q, _ := n.publisher.queued(); q == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	n.cancel()
	n.done.Wait()
	n.engine.Close()
}

func (n *Node) isConnected() bool {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	return n.connected
}

// header returns the header of an envelope this node sends now.
func (n *Node) header() header {
	return header{slot: n.ids.current(), instance: n.instance, sentAt: n.now().UnixMicro()}
}

// publish queues o for the engine and wakes the publisher.
func (n *Node) publish(o outgoing) {
	n.queue(o)
	n.publisher.signal()
}

// queue queues o for the engine, counting it, or its drop; the publisher sends it once woken.
func (n *Node) queue(o outgoing) {
	if limit := n.maxPayload.Load(); limit > 0 && int64(len(o.msg.Data)) > limit {
		n.dropTooLarge(o)
		return
	}
	queued, connected := n.publisher.push(o)
	switch {
	case queued:
		n.counters.published.Add(1)
	case connected:
		n.counters.droppedSlow.Add(1)
	default:
		n.counters.droppedDisconnected.Add(1)
	}
	if !queued && o.track == trackQuery {
		n.presence.published(o.req, 0)
	}
}

// dropTooLarge counts o, a message over the engine's MaxPayload that is not published, and says
// so in the log at most once a minute: a channel message has reached this node's subscribers, a
// send to another node's socket is lost.
func (n *Node) dropTooLarge(o outgoing) {
	n.counters.droppedTooLarge.Add(1)
	if o.track == trackQuery {
		n.presence.published(o.req, 0)
	}
	n.warnEveryMinute(&n.tooLargeLogged, "cluster: a message larger than "+n.engine.String()+" takes was not published: a channel's subscribers on this node have it, a socket of another node does not (counted in dropped.tooLarge; logged once a minute)",
		slog.Int("bytes", len(o.msg.Data)), slog.Int64("maxPayload", n.maxPayload.Load()))
}

// subscribeRefused says, at most once a minute, that the engine's server refused subscriptions.
func (n *Node) subscribeRefused(err error) {
	n.warnEveryMinute(&n.subscribeRefusedLogged, "cluster: "+n.engine.String()+" refused subscriptions: this node gets no other node's messages for those channels until it accepts them (tried again every "+retryPause.String()+"; logged once a minute)",
		slog.Any("error", err))
}

// warnEveryMinute logs msg unless the last time, recorded in last, was less than a minute ago.
func (n *Node) warnEveryMinute(last *atomic.Int64, msg string, args ...any) {
	now := n.now().UnixNano()
	if was := last.Load(); now-was >= int64(time.Minute) && last.CompareAndSwap(was, now) {
		n.log.Warn(msg, args...)
	}
}

// sent handles the receiver counts of a batch the engine has published; refusal is the engine's
// error when its server refused some of them (receivers Refused), which are dropped.
func (n *Node) sent(out []outgoing, receivers []int, refusal error) {
	for i, o := range out {
		if receivers[i] == Refused {
			n.counters.droppedRefused.Add(1)
			if o.track == trackQuery {
				n.presence.published(o.req, 0)
			}
			continue
		}
		switch o.track {
		case trackNode:
			// Without receiver counts (NATS), a slot that no live node holds says the same.
			if receivers[i] == 0 || receivers[i] < 0 && !n.peers.holds(o.slot) {
				n.counters.unrouted.Add(1)
			}
		case trackQuery:
			if receivers[i] < 0 {
				// Asked on the control topic (the engine counts no receivers): every other live
				// node answers.
				receivers[i] = n.peers.count()
			}
			n.presence.published(o.req, receivers[i])
		}
	}
	if refusal != nil {
		n.warnEveryMinute(&n.refusedLogged, "cluster: "+n.engine.String()+" refused to publish messages, which are dropped: a channel's subscribers on this node have them, other nodes do not (counted in dropped.refused; logged once a minute)",
			slog.Any("error", refusal))
	}
}

// stateChanged handles the engine's report of its connection.
func (n *Node) stateChanged(connected bool, err error) {
	n.stateMu.Lock()
	was, lostFor := n.connected, time.Since(n.since)
	n.lostErr = err
	if connected == was {
		n.stateMu.Unlock()
		return
	}
	n.connected, n.since = connected, time.Now()
	n.stateMu.Unlock()
	if connected {
		n.maxPayload.Store(int64(n.engine.MaxPayload()))
		n.counters.connects.Add(1)
		n.log.Info("cluster: connected to "+n.engine.String(), slog.Duration("after", lostFor.Round(time.Millisecond)))
	} else {
		n.log.Warn("cluster: lost "+n.engine.String()+"; local delivery continues; retrying", slog.Any("error", err))
	}
	// At a loss the publisher stops (closeGate); after a connection the subscriber claims the
	// slots and subscribes before the gate lets the publisher go: the first heartbeat and the
	// buffered publications then go out under a checked slot, to nodes subscribed again.
	if !connected {
		n.closeGate()
	}
	n.subscriber.setConnected(connected)
}

// closeGate stops and holds the publisher at the loss of the engine, noting the nodes to hear
// from once it is back.
func (n *Node) closeGate() {
	g := &n.gate
	g.mu.Lock()
	g.epoch++
	g.open, g.subscribed = false, false
	g.awaited = n.peers.instances()
	if g.timer != nil {
		g.timer.Stop()
	}
	g.mu.Unlock()
	n.publisher.hold()
	n.publisher.setConnected(false)
}

// armGate starts the gate's wait when the engine is connected: it opens a heartbeat interval later
// at the latest.
func (n *Node) armGate() {
	g := &n.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	g.since = n.now()
	if g.timer != nil {
		g.timer.Stop()
	}
	epoch := g.epoch
	g.timer = time.AfterFunc(n.opts.Heartbeat, func() { n.openGate(epoch) })
}

// tryOpenGate opens the gate if this node has subscribed its channels again and heard from the
// nodes it waits for.
func (n *Node) tryOpenGate() {
	g := &n.gate
	g.mu.Lock()
	ready := !g.open && g.subscribed && n.peers.heardSince(g.awaited, g.since)
	epoch := g.epoch
	g.mu.Unlock()
	if ready {
		n.openGate(epoch)
	}
}

// openGate lets the publisher go, unless the engine was lost since epoch (anyEpoch: whatever
// happened), and tells the other nodes, whose gates may wait for this one's heartbeat.
func (n *Node) openGate(epoch int) {
	g := &n.gate
	g.mu.Lock()
	if g.open || epoch != anyEpoch && epoch != g.epoch {
		g.mu.Unlock()
		return
	}
	g.open = true
	if g.timer != nil {
		g.timer.Stop()
	}
	g.mu.Unlock()
	n.publisher.release()
	n.heartbeat()
}

// anyEpoch opens the gate whatever its epoch (Leave).
const anyEpoch = -1

// fresh runs on the subscriber's goroutine each time the engine is connected anew: it claims the
// node's slots and subscribes to the control topic, then connects the publisher, held until the
// gate opens.
func (n *Node) fresh(ctx context.Context) error {
	for _, slot := range n.ids.slots() {
		alone, err := n.engine.Claim(ctx, n.topics.node(slot))
		if err != nil {
			return err
		}
		if alone {
			n.claimed[slot] = true
			continue
		}
		if n.claimed[slot] {
			continue // the other holder came later: the heartbeats settle it
		}
		// Another node holds it: new sockets take their ids from a slot of their own.
		next, err := n.claimNew(ctx)
		if err != nil {
			return err
		}
		n.log.Warn("cluster: another node holds this node's slot; new sockets take their ids in another",
			slog.Uint64("slot", uint64(slot)), slog.Uint64("now", uint64(next)))
		if slot == n.ids.current() && !n.ids.issued() {
			n.ids.replace(slot, next)
			if err := n.engine.Unsubscribe(ctx, []string{n.topics.node(slot)}); err != nil {
				return err
			}
		} else {
			n.ids.moveTo(next) // the sockets named in it keep their ids, and each node applies only what names one of its own
		}
	}
	if err := n.engine.Subscribe(ctx, []string{n.topics.control}); err != nil {
		return err
	}
	n.armGate()
	n.publisher.setConnected(true) // held until the gate opens
	select {
	case <-n.firstUp:
	default:
		close(n.firstUp)
	}
	return nil
}

// claimNew claims a slot at random that no other node holds.
func (n *Node) claimNew(ctx context.Context) (uint32, error) {
	for {
		slot := randomSlot()
		alone, err := n.engine.Claim(ctx, n.topics.node(slot))
		if err != nil {
			return 0, err
		}
		if alone {
			n.claimed[slot] = true
			return slot, nil
		}
		_ = n.engine.Unsubscribe(ctx, []string{n.topics.node(slot)})
	}
}

// spareSlot gives the slot to move to when exhausted has run out of ids: one at random,
// subscribed in the background (it is claimed like the others when the engine next connects).
func (n *Node) spareSlot(exhausted uint32) uint32 {
	slot := randomSlot()
	for slot == exhausted+1 {
		slot = randomSlot()
	}
	n.goRun(func() {
		ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
		defer cancel()
		if alone, err := n.engine.Claim(ctx, n.topics.node(slot)); err == nil && !alone {
			n.log.Error("cluster: the slot taken after another ran out is held by another node too", slog.Uint64("slot", uint64(slot)))
		}
	})
	return slot
}

// yieldSlot gives up slot for new sockets: another live node holds it too, and the node with the
// smaller instance keeps it. The sockets that have ids in it keep them (the two nodes each apply
// only what names a socket they have).
func (n *Node) yieldSlot(slot uint32) {
	next := n.spareSlot(slot)
	n.ids.moveTo(next)
	n.log.Warn("cluster: another node holds this node's slot; new sockets take their ids in another",
		slog.Uint64("slot", uint64(slot)), slog.Uint64("now", uint64(next)))
}

// resubscribed follows the subscription of the node's channels after each connection of the
// engine: it logs it, tells the other nodes at once (past the held publisher: their gates may wait
// for it) and asks for their heartbeats (this node's gate waits for them), and opens this node's
// gate if it waits for nothing else.
func (n *Node) resubscribed(channels int, took time.Duration) {
	n.log.Info("cluster: subscribed", slog.Int("channels", channels), slog.Duration("took", took.Round(time.Millisecond)),
		slog.Uint64("droppedWhileDisconnected", n.counters.droppedDisconnected.Load()))
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.Heartbeat)
	defer cancel()
	var receivers [1]int
	if sent, _ := n.engine.Publish(ctx, []Message{n.heartbeatMessage(flagAsk)}, receivers[:]); sent == 1 {
		n.counters.published.Add(1)
	}
	n.gate.mu.Lock()
	n.gate.subscribed = true
	n.gate.mu.Unlock()
	n.tryOpenGate()
}

// heartbeats tells the other nodes this node is alive, and forgets those unheard of (checked four
// times a heartbeat, so that a node gone leaves the count soon after its expiry), until ctx ends.
func (n *Node) heartbeats(ctx context.Context) {
	t := time.NewTicker(n.opts.Heartbeat / 4)
	defer t.Stop()
	for tick := 0; ; tick++ {
		if tick%4 == 0 && n.isConnected() {
			n.heartbeat()
		}
		n.peers.expire(n.now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// heartbeat tells the other nodes that this node is alive, with its slots.
func (n *Node) heartbeat() { n.publish(outgoing{msg: n.heartbeatMessage(0)}) }

// heartbeatMessage is a heartbeat of this node with flags.
func (n *Node) heartbeatMessage(flags byte) Message {
	return Message{Topic: n.topics.control, Data: n.header().appendHeartbeat(nil, flags, n.ids.slots())}
}

// SubscriberCount returns how many sockets are subscribed to channel on all nodes: this node's,
// and the answers of the nodes with subscribers to it received within a second (or until ctx
// ends). complete is false if an answer was missing.
func (n *Node) SubscriberCount(ctx context.Context, channel []byte) (count int, complete bool) {
	local := n.b.SubscriberCount(channel)
	if !n.isConnected() {
		return local, false
	}
	req, q := n.presence.start()
	// Asked on the channel's topic, only the nodes with subscribers get it, and the engine says how
	// many did; an engine that cannot say is asked on the control topic, the channel named.
	topic, named := n.topics.channel+string(channel), []byte(nil)
	if !n.engine.CountsReceivers() {
		topic, named = n.topics.control, channel
	}
	n.publish(outgoing{msg: Message{Topic: topic, Data: n.header().appendCountQuery(nil, req, named)}, track: trackQuery, req: req})
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-q.done:
	case <-t.C:
	case <-ctx.Done():
	}
	sum, complete := n.presence.finish(req)
	return local + int(sum), complete
}

// Stats are a node's figures.
type Stats struct {
	Engine            string    `json:"engine"`            // the engine and its address, without password
	Connected         bool      `json:"connected"`         // whether the engine is reachable now
	Since             time.Time `json:"since"`             // when it became so, or not
	Error             string    `json:"error,omitempty"`   // why it is not connected, while it is not
	Slots             []uint32  `json:"slots"`             // the id slots this node holds
	Nodes             int       `json:"nodes"`             // live nodes, this one included
	Channels          int       `json:"channels"`          // channel topics the engine has subscribed for this node
	PendingSubscribes int       `json:"pendingSubscribes"` // interest changes not yet confirmed by the engine
	Queued            int       `json:"queued"`            // publications waiting for the engine
	QueuedBytes       int       `json:"queuedBytes"`       // their bytes (bounded by PublishBuffer)
	Published         uint64    `json:"published"`         // messages queued for the engine
	Received          uint64    `json:"received"`          // messages the engine delivered
	Unrouted          uint64    `json:"unrouted"`          // messages to a node that had gone
	Connects          uint64    `json:"connects"`          // times the engine was connected
	Dropped           Dropped   `json:"dropped"`
	LagMs             Lag       `json:"lagMs"` // from publication on the origin to delivery here
}

// Dropped counts the messages dropped, by reason.
type Dropped struct {
	Disconnected uint64 `json:"disconnected"` // published while the engine was unreachable and PublishBuffer was full
	Slow         uint64 `json:"slow"`         // published or received faster than the engine or this node kept up with
	Decode       uint64 `json:"decode"`       // received but not an envelope of this version
	TooLarge     uint64 `json:"tooLarge"`     // larger than the engine takes (MaxPayload): not published (a channel message reached this node's subscribers only)
	Refused      uint64 `json:"refused"`      // refused by the engine's server (an ACL without the channel): not published, not tried again
}

// Lag is the percentiles of the time from publication to reception, in milliseconds.
type Lag struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// Stats returns the node's figures.
func (n *Node) Stats() Stats {
	n.stateMu.Lock()
	connected, since := n.connected, n.since
	var lost string
	if n.lostErr != nil {
		lost = n.lostErr.Error()
	}
	n.stateMu.Unlock()
	subscribed, pending := n.subscriber.counts()
	queued, queuedBytes := n.publisher.queued()
	p50, p99 := n.lag.percentiles()
	k := &n.counters
	return Stats{
		Engine: n.engine.String(), Connected: connected, Since: since, Error: lost,
		Slots: n.ids.slots(), Nodes: 1 + n.peers.count(),
		Channels: subscribed, PendingSubscribes: pending, Queued: queued, QueuedBytes: queuedBytes,
		Published: k.published.Load(), Received: k.received.Load(), Unrouted: k.unrouted.Load(), Connects: k.connects.Load(),
		Dropped: Dropped{
			Disconnected: k.droppedDisconnected.Load(), Slow: k.droppedSlow.Load() + n.engine.Dropped(),
			Decode: k.droppedDecode.Load(), TooLarge: k.droppedTooLarge.Load(), Refused: k.droppedRefused.Load(),
		},
		LagMs: Lag{P50: p50, P99: p99},
	}
}
