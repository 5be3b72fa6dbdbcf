package cluster

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/wsbroker/wsbroker/broker"
	"github.com/wsbroker/wsbroker/internal/runq"
)

// inbox holds envelopes received from other nodes for one goroutine to apply: the engine's reader
// hands each envelope to the inbox of its origin node's slot and goes on reading, so that one
// origin's envelopes are applied in order and several origins' in parallel. Past limit bytes an
// envelope is dropped (counted): a reader that waited would make the engine cut the connection.
type inbox struct {
	limit int

	mu    sync.Mutex
	items []received
	bytes int
	wake  chan struct{}
}

type received struct {
	topic string
	env   envelope
	size  int
}

func newInbox(limit int) *inbox { return &inbox{limit: limit, wake: make(chan struct{}, 1)} }

// push queues r; false when the inbox is full.
func (in *inbox) push(r received) bool {
	in.mu.Lock()
	if in.bytes+r.size > in.limit {
		in.mu.Unlock()
		return false
	}
	in.items = append(in.items, r)
	in.bytes += r.size
	in.mu.Unlock()
	select {
	case in.wake <- struct{}{}:
	default:
	}
	return true
}

// An inbox keeps its cork over up to holdBatches batches that arrive while it applies them,
// yielding its P up to holdYields times between them while other goroutines wait for it (the
// engine's reader, the socket readers): a socket in a room spread over the nodes then gets one
// write for its roommates' messages from several nodes, not one per origin's batch.
const (
	holdBatches = 4
	holdYields  = 3
)

// run applies what arrives until ctx ends, through k: the sockets it sends to are written once
// the inbox is empty (or holdBatches batches were applied), by the flushers, so that what other
// inboxes and the JS threads queue for them meanwhile leaves in the same write. Each envelope's
// lag is recorded in lag, with one reading of the clock per batch.
func (in *inbox) run(ctx context.Context, k *broker.Cork, lag *lagHistogram, apply func(k *broker.Cork, topic string, e *envelope)) {
	var batch []received
	for {
		select {
		case <-ctx.Done():
			return
		case <-in.wake:
		}
		for applied := 0; ; applied++ { // applied: batches through k since it was last flushed
			in.mu.Lock()
			batch, in.items = in.items, batch[:0]
			in.mu.Unlock()
			if len(batch) == 0 {
				k.FlushLater()
				break
			}
			if applied == holdBatches {
				k.FlushLater()
				applied = 0
			}
			size := 0
			now := time.Now().UnixMicro()
			for i := range batch {
				lag.record(batch[i].env.sentAt, now)
				apply(k, batch[i].topic, &batch[i].env)
				size += batch[i].size
				batch[i] = received{}
			}
			in.mu.Lock()
			in.bytes -= size
			in.mu.Unlock()
			runq.Yield(holdYields)
		}
	}
}

// Received is the engine's delivery of one message (EngineHandler).
func (h *engineHandler) Received(topic string, data []byte) {
	n := h.n
	n.counters.received.Add(1)
	e, err := decode(data)
	if err != nil {
		n.counters.droppedDecode.Add(1)
		return
	}
	if e.instance == n.instance {
		// The engine's echo of this node's own publication: already delivered here. A count query
		// comes back only if this node is subscribed to the channel: its answer is in its own count.
		if e.kind == kindCountQuery {
			n.presence.answer(e.id, 0)
		}
		return
	}
	// The envelope is applied later: its body stays in data, which the engine has handed over.
	if !n.inboxes[e.slot%uint32(len(n.inboxes))].push(received{topic: topic, env: e, size: len(data) + len(topic)}) {
		n.counters.droppedSlow.Add(1)
	}
}

// StateChanged is the engine's report of its connection (EngineHandler).
func (h *engineHandler) StateChanged(connected bool, err error) { h.n.stateChanged(connected, err) }

// apply carries out an envelope received on topic from another node; its sends go through k.
func (n *Node) apply(k *broker.Cork, topic string, e *envelope) {
	switch {
	case strings.HasPrefix(topic, n.topics.channel): // the empty channel's topic is the prefix itself
		channel := viewBytes(topic[len(n.topics.channel):])
		switch e.kind {
		case kindChannel:
			k.DeliverToChannel(channel, e.body, e.flags&flagText != 0, e.id)
		case kindCopy:
			n.b.CopyLocalSubscriptions(channel, e.body)
		case kindCountQuery:
			n.answerCount(e, channel)
		default:
			n.counters.droppedDecode.Add(1)
		}
	case topic == n.topics.control:
		switch e.kind {
		case kindHeartbeat:
			// A node that has just joined, or asks after a loss, hears of this one at once.
			if n.peers.heard(e.instance, e.slots, n.now()) || e.flags&flagAsk != 0 {
				n.heartbeat()
			}
			n.tryOpenGate()
			if slices.Contains(e.slots, n.ids.current()) && e.instance < n.instance {
				n.yieldSlot(n.ids.current())
			}
		case kindLeaving:
			n.peers.left(e.instance)
		case kindCountQuery:
			n.answerCount(e, e.body)
		default:
			n.counters.droppedDecode.Add(1)
		}
	default: // a node topic of this node's
		if e.kind == kindCountAnswer {
			n.presence.answer(e.id, e.count)
			return
		}
		if !n.ids.local(e.id) {
			// Not this node's socket (a slot it no longer holds, or a foreign message): applying
			// it would hand it to the relay again.
			n.counters.unrouted.Add(1)
			return
		}
		switch e.kind {
		case kindSend:
			k.Send(e.id, e.body, e.flags&flagText != 0)
		case kindClose:
			// The origin checked the code and reason; a foreign envelope's bad ones are refused here.
			n.b.CloseSocket(e.id, e.code, e.body) //nolint:errcheck
		case kindToken:
			token := e.body
			if e.flags&flagToken == 0 {
				token = nil
			} else if token == nil {
				token = []byte{}
			}
			n.b.SetToken(e.id, token)
		case kindSubscribe:
			n.b.Subscribe(e.id, e.body)
		case kindUnsubscribe:
			n.b.Unsubscribe(e.id, e.body)
		default:
			n.counters.droppedDecode.Add(1)
		}
	}
}

// answerCount answers the count query e with this node's subscribers to channel.
func (n *Node) answerCount(e *envelope, channel []byte) {
	count := uint64(n.b.SubscriberCount(channel))
	n.publish(outgoing{msg: Message{Topic: n.topics.node(e.slot), Data: n.header().appendCountAnswer(nil, e.id, count)}})
}

// viewBytes returns s's bytes without copying, for calls that only read them during the call.
func viewBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
