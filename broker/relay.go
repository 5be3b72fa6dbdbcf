package broker

// Relay links a Broker to the other nodes of a cluster (package cluster implements it over Redis):
// the Broker tells it of its publications and of its channels' first and last subscribers, asks
// it for the ids of new sockets, and hands it what is addressed to a socket of another node.
// Input from other nodes enters through calls that never reach the Relay again:
// DeliverToChannel, CopyLocalSubscriptions, and the socket methods given ids of this node.
//
// The Broker calls a Relay on its caller's goroutine (a JS thread, a reader), Interest and NewID
// under the Broker's locks: no method may block or call the Broker.
type Relay interface {
	// NewID returns the id of a new socket of this node, unique in the cluster.
	NewID() uint64
	// Local reports whether id names a socket of this node (open or not): the Broker handles it
	// itself, and an unknown local id is a no-op as without a Relay.
	Local(id uint64) bool
	// Interest reports that channel got its first subscriber on this node (true) or lost its
	// last (false); the calls for one channel come in the order of the changes.
	Interest(channel string, present bool)
	// Published passes on a SendToChannel, after the Broker's own subscribers have it queued;
	// data is valid only during the call.
	Published(channel, data []byte, text bool, except uint64)

	// The socket methods given the id of a socket of another node (not Local); byte slices are
	// valid only during the call. CopySubscriptions is every node's, after this node's copy.
	Send(id uint64, data []byte, text bool)
	CloseSocket(id uint64, code uint16, reason []byte)
	SetToken(id uint64, token []byte)
	Subscribe(id uint64, channel []byte)
	Unsubscribe(id uint64, channel []byte)
	CopySubscriptions(from, to []byte)

	// Flush lets go what the calls above were given, which the Relay may hold until then: the
	// Broker calls it after each of them, or, for those made through a Cork, once at the Cork's
	// Flush, so that a batch's messages to other nodes leave together (and arrive there together,
	// to be written to each socket at once).
	Flush()
}

// relayRef holds a Relay for an atomic.Pointer.
type relayRef struct{ Relay }

// SetRelay attaches r (nil detaches the Relay attached). Attaching reports the channels that
// already have subscribers to r.Interest, and new sockets take their ids from r from then on;
// those of the sockets already open do not change.
func (b *Broker) SetRelay(r Relay) {
	if r == nil {
		b.hub.relay.Store(nil)
		return
	}
	b.hub.setRelay(&relayRef{r})
}

// remote returns the Relay if id names a socket of another node, else nil.
func (b *Broker) remote(id uint64) Relay {
	if ref := b.hub.relay.Load(); ref != nil && !ref.Local(id) {
		return ref.Relay
	}
	return nil
}

// published passes a SendToChannel on to the Relay, if one is attached, corked by k when k is
// not nil.
func (b *Broker) published(channel, data []byte, text bool, except uint64, k *Cork) {
	if ref := b.hub.relay.Load(); ref != nil {
		ref.Published(channel, data, text, except)
		relayed(ref.Relay, k)
	}
}

// relayed follows a call that handed r a message: Flush now, or at k's Flush when k is not nil.
func relayed(r Relay, k *Cork) {
	if k != nil {
		k.relayed = true
		return
	}
	r.Flush()
}

// DeliverToChannel is SendToChannel for this node's subscribers only: a Relay delivers with it
// what another node published.
func (b *Broker) DeliverToChannel(channel, data []byte, text bool, except uint64) {
	b.sendToChannel(channel, data, text, except, nil)
}

// DeliverToChannel is Broker.DeliverToChannel, corked: a Relay that applies a batch of other
// nodes' messages writes each socket once for all of them.
func (k *Cork) DeliverToChannel(channel, data []byte, text bool, except uint64) {
	k.b.sendToChannel(channel, data, text, except, k)
}

// CopyLocalSubscriptions is CopySubscriptions for this node's sockets only: a Relay applies with
// it another node's CopySubscriptions.
func (b *Broker) CopyLocalSubscriptions(from, to []byte) { b.hub.copySubscriptions(from, to) }
