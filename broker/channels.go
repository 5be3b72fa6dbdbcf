package broker

// The Broker's socket registry, channel and token methods: the state is its hub's (hub.go), of
// which *Conn is the socket type; SendToChannel, which writes, is the Broker's (broker.go).

// hubMember gives the hub c's member record (the socket constraint of hub[*Conn]).
func (c *Conn) hubMember() *member { return &c.member }

// SubscriberCount returns how many sockets are subscribed to channel.
func (b *Broker) SubscriberCount(channel []byte) int { return b.hub.subscriberCount(channel) }

// Subscriptions returns the channels socket id is subscribed to (none if it is unknown, closed,
// or a socket of another node).
func (b *Broker) Subscriptions(id uint64) [][]byte { return b.hub.subscriptions(id) }

// Subscribe adds socket id to channel. It returns true if added; false if already subscribed or
// if the socket is unknown or closed (then nothing is stored). The id of another node's socket goes
// to the Relay, and Subscribe returns false: the outcome is not known here.
func (b *Broker) Subscribe(id uint64, channel []byte) bool {
	if r := b.remote(id); r != nil {
		r.Subscribe(id, channel)
		r.Flush()
		return false
	}
	return b.hub.subscribe(id, channel)
}

// Unsubscribe removes socket id from channel. It returns true if it was subscribed; for the id of
// another node's socket, false, and the Relay takes it there.
func (b *Broker) Unsubscribe(id uint64, channel []byte) bool {
	if r := b.remote(id); r != nil {
		r.Unsubscribe(id, channel)
		r.Flush()
		return false
	}
	return b.hub.unsubscribe(id, channel)
}

// CopySubscriptions subscribes every socket subscribed to from (at call time) to to; with a
// Relay, on every node.
func (b *Broker) CopySubscriptions(from, to []byte) {
	b.hub.copySubscriptions(from, to)
	if ref := b.hub.relay.Load(); ref != nil {
		ref.CopySubscriptions(from, to)
		ref.Flush()
	}
}

// SetToken stores a copy of token for socket id (nil clears it). Unknown id: no-op. The id of
// another node's socket goes to the Relay.
func (b *Broker) SetToken(id uint64, token []byte) {
	if r := b.remote(id); r != nil {
		r.SetToken(id, token)
		r.Flush()
		return
	}
	b.hub.setToken(id, token)
}
