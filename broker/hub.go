package broker

import (
	"bytes"
	"hash/maphash"
	"iter"
	"sync"
	"sync/atomic"
)

// The hub: the socket registry (id to socket), the channel table (name to subscribers) and each
// socket's token and channels. It does no I/O and knows no connection type. It is generic over
// the socket type C that the Broker stores in it (*Conn, which embeds the hub's member record)
// rather than storing an interface, so that the Broker's fan-out ranges over a channel's own
// map[*Conn] and queues to each subscriber with a direct call.
//
// Every operation here is local to this process; what other nodes must know goes to the Relay
// (relay.go), if one is attached, from one place each: newID makes every socket id (the Relay's
// when attached), lookup resolves every id the Broker is given, createChannel is the one place a
// channel gets its first subscriber and deleteChannel the one place it loses its last one.
//
// Lock order: channel shard(s), then member.subMu; a registry shard is never held with either.

const (
	regShards  = 64
	chanShards = 32
)

// member is the hub's record of one socket: its id, its token and the channels it is in. The
// Broker's connection type embeds it, so the hub allocates nothing per socket.
type member struct {
	id    uint64
	token atomic.Pointer[[]byte] // nil: none; a stored slice is never modified (setToken copies)

	// The channels, under subMu.
	subMu   sync.Mutex
	removed bool // the socket has left the hub: subscribing is refused
	chans   map[string]struct{}
}

// socket constrains the hub's socket type: a pointer to the Broker's connection, which embeds
// the socket's member record. The hub compares sockets and reaches their member records, nothing
// more.
type socket interface {
	comparable
	hubMember() *member
}

// hub is a Broker's registry and channel table, sharded to spread lock contention.
type hub[C socket] struct {
	nextID atomic.Uint64
	relay  atomic.Pointer[relayRef] // nil: this node alone
	reg    [regShards]regShard[C]
	seed   maphash.Seed // of the channel shard index
	chans  [chanShards]chanShard[C]
}

type regShard[C socket] struct {
	mu sync.RWMutex
	m  map[uint64]C
}

type chanShard[C socket] struct {
	mu sync.RWMutex
	m  map[string]map[C]struct{} // no empty set: a channel without subscribers is absent
}

// none is the zero C: no socket.
func none[C socket]() (c C) { return c }

// init makes h's maps; h must not be used before.
func (h *hub[C]) init() {
	h.seed = maphash.MakeSeed()
	for i := range h.reg {
		h.reg[i].m = make(map[uint64]C)
	}
	for i := range h.chans {
		h.chans[i].m = make(map[string]map[C]struct{})
	}
}

// newID returns a socket id never returned before: 1, 2, 3… or, with a Relay, the Relay's.
func (h *hub[C]) newID() uint64 {
	if ref := h.relay.Load(); ref != nil {
		return ref.NewID()
	}
	return h.nextID.Add(1)
}

// setRelay attaches ref and reports to it every channel that has subscribers. A channel created
// meanwhile may be reported twice, one deleted meanwhile not at all: each shard's lock orders the
// report with its channels' changes.
func (h *hub[C]) setRelay(ref *relayRef) {
	h.relay.Store(ref)
	for i := range h.chans {
		s := &h.chans[i]
		s.mu.RLock()
		for name := range s.m {
			ref.Interest(name, true)
		}
		s.mu.RUnlock()
	}
}

// register makes c reachable by its id.
func (h *hub[C]) register(c C) {
	id := c.hubMember().id
	s := &h.reg[id%regShards]
	s.mu.Lock()
	s.m[id] = c
	s.mu.Unlock()
}

// unregister makes c's id unknown (unless the id names another socket by then).
func (h *hub[C]) unregister(c C) {
	id := c.hubMember().id
	s := &h.reg[id%regShards]
	s.mu.Lock()
	if s.m[id] == c {
		delete(s.m, id)
	}
	s.mu.Unlock()
}

// lookup returns the socket whose id is id, the zero C (nil) if none is registered with it.
func (h *hub[C]) lookup(id uint64) C {
	s := &h.reg[id%regShards]
	s.mu.RLock()
	c := s.m[id]
	s.mu.RUnlock()
	return c
}

// all yields every registered socket, under its registry shard's read lock: the loop body must
// not register or unregister.
func (h *hub[C]) all() iter.Seq[C] {
	return func(yield func(C) bool) {
		for i := range h.reg {
			s := &h.reg[i]
			s.mu.RLock()
			for _, c := range s.m {
				if !yield(c) {
					s.mu.RUnlock()
					return
				}
			}
			s.mu.RUnlock()
		}
	}
}

// chanIndex and chanIndexString give the shard index of channel name.
func (h *hub[C]) chanIndex(name []byte) uint64 { return maphash.Bytes(h.seed, name) % chanShards }
func (h *hub[C]) chanIndexString(name string) uint64 {
	return maphash.String(h.seed, name) % chanShards
}

// chanShard returns the shard of channel name. The Broker's fan-out read-locks it and reads the
// channel's set itself (neither changing nor keeping it): an accessor doing so in this generic
// type would not be inlined, and cost a call per message.
func (h *hub[C]) chanShard(name []byte) *chanShard[C] { return &h.chans[h.chanIndex(name)] }

// subscriberCount returns how many sockets are subscribed to channel.
func (h *hub[C]) subscriberCount(channel []byte) int {
	s := h.chanShard(channel)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m[string(channel)])
}

// channelCount returns how many channels have at least one subscriber.
func (h *hub[C]) channelCount() int {
	n := 0
	for i := range h.chans {
		s := &h.chans[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// subscriptions returns the channels socket id is subscribed to (none if it is unknown or has
// left).
func (h *hub[C]) subscriptions(id uint64) [][]byte {
	c := h.lookup(id)
	if c == none[C]() {
		return nil
	}
	m := c.hubMember()
	m.subMu.Lock()
	defer m.subMu.Unlock()
	out := make([][]byte, 0, len(m.chans))
	for name := range m.chans {
		out = append(out, []byte(name))
	}
	return out
}

// subscribe adds socket id to channel. It returns true if added; false if already subscribed or
// if the socket is unknown or has left (then nothing is stored).
func (h *hub[C]) subscribe(id uint64, channel []byte) bool {
	c, s := h.lockChannel(id, channel)
	if s == nil {
		return false
	}
	defer s.mu.Unlock()
	return h.addLocked(s, string(channel), c)
}

// lockChannel returns socket id's socket and channel's shard, write-locked for the caller to
// unlock; a nil shard, locked for no one, if id is unknown.
func (h *hub[C]) lockChannel(id uint64, channel []byte) (C, *chanShard[C]) {
	c := h.lookup(id)
	if c == none[C]() {
		return c, nil
	}
	s := h.chanShard(channel)
	s.mu.Lock()
	return c, s
}

// addLocked subscribes c to name in s, which the caller holds write-locked.
func (h *hub[C]) addLocked(s *chanShard[C], name string, c C) bool {
	m := c.hubMember()
	m.subMu.Lock()
	defer m.subMu.Unlock()
	if m.removed {
		return false
	}
	set := s.m[name]
	if _, in := set[c]; in {
		return false
	}
	if set == nil {
		set = h.createChannel(s, name)
	}
	set[c] = struct{}{}
	if m.chans == nil {
		m.chans = make(map[string]struct{})
	}
	m.chans[name] = struct{}{}
	return true
}

// unsubscribe removes socket id from channel. It returns true if it was subscribed.
func (h *hub[C]) unsubscribe(id uint64, channel []byte) bool {
	c, s := h.lockChannel(id, channel)
	if s == nil {
		return false
	}
	defer s.mu.Unlock()
	m := c.hubMember()
	m.subMu.Lock()
	defer m.subMu.Unlock()
	name := string(channel)
	set := s.m[name]
	if _, in := set[c]; !in {
		return false
	}
	h.removeLocked(s, name, set, c)
	delete(m.chans, name)
	return true
}

// removeLocked takes c out of set, channel name's subscribers in s, which the caller holds
// write-locked (c may have left set already).
func (h *hub[C]) removeLocked(s *chanShard[C], name string, set map[C]struct{}, c C) {
	delete(set, c)
	if len(set) == 0 {
		h.deleteChannel(s, name)
	}
}

// createChannel adds channel name, without subscribers yet, to s, which the caller holds
// write-locked, and returns its set: the one place where a channel gets its first subscriber.
// Holding the shard's lock orders it with the same channel's deleteChannel.
func (h *hub[C]) createChannel(s *chanShard[C], name string) map[C]struct{} {
	set := make(map[C]struct{})
	s.m[name] = set
	if ref := h.relay.Load(); ref != nil {
		ref.Interest(name, true)
	}
	return set
}

// deleteChannel removes channel name, whose last subscriber has left, from s, which the caller
// holds write-locked: the one place where a channel loses its last subscriber.
func (h *hub[C]) deleteChannel(s *chanShard[C], name string) {
	delete(s.m, name)
	if ref := h.relay.Load(); ref != nil {
		ref.Interest(name, false)
	}
}

// copySubscriptions subscribes every socket subscribed to from (at call time) to to.
func (h *hub[C]) copySubscriptions(from, to []byte) {
	if bytes.Equal(from, to) {
		return
	}
	fi, ti := h.chanIndex(from), h.chanIndex(to)
	sf, st := &h.chans[fi], &h.chans[ti]
	switch {
	case fi == ti:
		sf.mu.Lock()
		defer sf.mu.Unlock()
	case fi < ti:
		sf.mu.RLock()
		defer sf.mu.RUnlock()
		st.mu.Lock()
		defer st.mu.Unlock()
	default:
		st.mu.Lock()
		defer st.mu.Unlock()
		sf.mu.RLock()
		defer sf.mu.RUnlock()
	}
	set := sf.m[string(from)]
	if len(set) == 0 {
		return
	}
	name := string(to)
	for c := range set {
		h.addLocked(st, name, c)
	}
}

// dropSubs removes c from every channel and refuses its later subscriptions: c has left.
func (h *hub[C]) dropSubs(c C) {
	m := c.hubMember()
	m.subMu.Lock()
	m.removed = true
	names := m.chans
	m.chans = nil
	m.subMu.Unlock()
	for name := range names {
		s := &h.chans[h.chanIndexString(name)]
		s.mu.Lock()
		if set := s.m[name]; set != nil {
			h.removeLocked(s, name, set, c)
		}
		s.mu.Unlock()
	}
}

// setToken stores a copy of token for socket id (nil clears it). Unknown id: no-op.
func (h *hub[C]) setToken(id uint64, token []byte) {
	c := h.lookup(id)
	if c == none[C]() {
		return
	}
	m := c.hubMember()
	if token == nil {
		m.token.Store(nil)
		return
	}
	t := bytes.Clone(token)
	m.token.Store(&t)
}
