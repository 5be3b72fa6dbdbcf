package broker

import (
	"github.com/wsbroker/wsbroker/internal/writeq"
)

// A Cork gathers sends (uWebSockets calls this corking): a socket sent to through it is not
// handed to a flusher goroutine but waits for Flush, which writes it once, whatever number of
// frames it was given. A program that handles events in batches (the Node bridge: a batch of
// events per JS thread) corks each batch's sends and flushes at its end: one write per socket
// per batch, and no goroutine to wake. A Cork is used by one goroutine at a time and can be used
// again after Flush; a socket sent to through it is written by no one else until then, so Flush
// must come soon. Sends to a corked socket from elsewhere (another Cork, Broker.Send) uncork it.
type Cork struct {
	// MaxInline bounds how many sockets Flush writes on its caller's goroutine, the flushers
	// writing the rest; 0: no bound. A caller whose thread must not be held long by one Flush
	// sets it.
	MaxInline int

	b       *Broker
	conns   []*Conn // the sockets that wait for Flush, each once
	relayed bool    // the Relay has been given sends through k since its last Flush
}

// NewCork returns an empty Cork for sends to b's sockets.
func (b *Broker) NewCork() *Cork { return &Cork{b: b} }

// Len reports how many sockets wait for Flush.
func (k *Cork) Len() int { return len(k.conns) }

// Send is Broker.Send, corked.
func (k *Cork) Send(id uint64, data []byte, text bool) bool { return k.b.send(id, data, text, k) }

// SendToChannel is Broker.SendToChannel, corked: every subscriber waits for Flush.
func (k *Cork) SendToChannel(channel, data []byte, text bool, except uint64) {
	k.b.sendToChannel(channel, data, text, except, k)
	k.b.published(channel, data, text, except, k)
}

// Accept is Broker.Accept, corked: the 101 response goes out with the Cork's other sends.
func (k *Cork) Accept(id uint64, ok bool) bool { return k.b.accept(id, ok, k) }

// Flush writes what was queued through k and empties it: the first MaxInline sockets (all with 0) on the
// calling goroutine, without waiting for any (a full socket is left to a writer goroutine as
// usual), the rest by their flushers. What k gave the Relay goes first, so that other nodes
// work on it while this one writes.
func (k *Cork) Flush() {
	k.flushRelay()
	if len(k.conns) == 0 {
		return
	}
	inline := k.conns
	if k.MaxInline > 0 {
		inline = inline[:min(len(inline), k.MaxInline)]
	}
	w := callerWriters.Get().(*writeq.Writer)
	for _, c := range inline {
		c.flush(w)
	}
	callerWriters.Put(w)
	k.b.flushLater(k.conns[len(inline):])
	k.empty()
}

// FlushLater hands what was queued through k to the flushers and empties it. A flusher writes
// after the goroutines ready to run, so that a program applying bursts from several sources (a
// cluster node's messages from other nodes) lets what they queue for one socket leave in one
// write.
func (k *Cork) FlushLater() {
	k.flushRelay()
	k.b.flushLater(k.conns)
	k.empty()
}

// flushRelay lets the Relay send what k gave it.
func (k *Cork) flushRelay() {
	if !k.relayed {
		return
	}
	k.relayed = false
	if ref := k.b.hub.relay.Load(); ref != nil {
		ref.Flush()
	}
}

func (k *Cork) empty() {
	clear(k.conns) // no pointers kept to sockets that may end
	k.conns = k.conns[:0]
}
