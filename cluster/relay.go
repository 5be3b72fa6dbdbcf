package cluster

import (
	"encoding/binary"
	"math"
	"math/bits"
	"sync/atomic"
)

// The Node as its Broker's Relay (broker.Relay): what the Broker hands over becomes an envelope
// queued for the engine, published once the Broker calls Flush.

func (r *relay) NewID() uint64        { return r.n.ids.newID() }
func (r *relay) Local(id uint64) bool { return r.n.ids.local(id) }

func (r *relay) Interest(channel string, present bool) {
	r.n.subscriber.interest(r.n.topics.channel+channel, present)
}

// textFlag is the flag of a text message's envelope.
func textFlag(text bool) byte {
	if text {
		return flagText
	}
	return 0
}

func (r *relay) Published(channel, data []byte, text bool, except uint64) {
	n := r.n
	env := n.header().appendIDBody(make([]byte, 0, maxHeader+binary.MaxVarintLen64+len(data)), kindChannel, textFlag(text), except, data)
	n.queue(outgoing{msg: Message{Topic: n.topics.channel + string(channel), Data: env}})
}

func (r *relay) Flush() { r.n.publisher.signal() }

// toNode queues an envelope for the node that holds id's slot.
func (r *relay) toNode(id uint64, env []byte) {
	slot := slotOf(id)
	r.n.queue(outgoing{msg: Message{Topic: r.n.topics.node(slot), Data: env}, track: trackNode, slot: slot})
}

func (r *relay) Send(id uint64, data []byte, text bool) {
	r.toNode(id, r.n.header().appendIDBody(make([]byte, 0, maxHeader+binary.MaxVarintLen64+len(data)), kindSend, textFlag(text), id, data))
}

func (r *relay) CloseSocket(id uint64, code uint16, reason []byte) {
	r.toNode(id, r.n.header().appendClose(nil, id, code, reason))
}

func (r *relay) SetToken(id uint64, token []byte) {
	flags := byte(0)
	if token != nil {
		flags = flagToken
	}
	r.toNode(id, r.n.header().appendIDBody(nil, kindToken, flags, id, token))
}

func (r *relay) Subscribe(id uint64, channel []byte) {
	r.toNode(id, r.n.header().appendIDBody(nil, kindSubscribe, 0, id, channel))
}

func (r *relay) Unsubscribe(id uint64, channel []byte) {
	r.toNode(id, r.n.header().appendIDBody(nil, kindUnsubscribe, 0, id, channel))
}

func (r *relay) CopySubscriptions(from, to []byte) {
	n := r.n
	n.queue(outgoing{msg: Message{Topic: n.topics.channel + string(from), Data: n.header().appendCopy(nil, to)}})
}

// lagHistogram counts receptions by lag in power-of-two buckets of microseconds.
type lagHistogram struct {
	buckets [40]atomic.Uint64 // bucket i: lag below 2^i µs
}

// record counts a message sent at sentAt and delivered at now (µs since the Unix epoch, by the
// origin's clock and this node's).
func (h *lagHistogram) record(sentAt, now int64) {
	lag := now - sentAt
	if lag < 0 {
		lag = 0 // clocks a little apart
	}
	h.buckets[min(bits.Len64(uint64(lag)), len(h.buckets)-1)].Add(1)
}

// percentiles returns the 50th and 99th percentiles in milliseconds (the upper bound of their
// buckets), 0 before any reception.
func (h *lagHistogram) percentiles() (p50, p99 float64) {
	var counts [len(lagHistogram{}.buckets)]uint64
	var total uint64
	for i := range h.buckets {
		counts[i] = h.buckets[i].Load()
		total += counts[i]
	}
	if total == 0 {
		return 0, 0
	}
	at := func(q float64) float64 {
		want := uint64(math.Ceil(q * float64(total)))
		var seen uint64
		for i, c := range counts {
			seen += c
			if seen >= want {
				return float64(uint64(1)<<i) / 1000
			}
		}
		return math.Inf(1)
	}
	return at(0.5), at(0.99)
}
