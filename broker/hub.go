package broker

import (
	"bytes"
	"hash/maphash"
	"sync"
)

// The hub: the socket registry (id to Conn), the channel table and the tokens. It does no I/O:
// sends to a channel's subscribers are the write path's (sendToChannel). Lock order: channel
// shard(s), then Conn.subMu; a registry shard is never held with either.

const (
	regShards  = 64
	chanShards = 32
)

// hub is the Broker's registry and channel table, sharded to spread lock contention.
type hub struct {
	reg   [regShards]regShard
	seed  maphash.Seed // of the channel shard index
	chans [chanShards]chanShard
}

type regShard struct {
	mu sync.RWMutex
	m  map[uint64]*Conn
}

type chanShard struct {
	mu sync.RWMutex
	m  map[string]map[*Conn]struct{}
}

// SubscriberCount returns how many sockets are subscribed to channel.
func (b *Broker) SubscriberCount(channel []byte) int {
	s := b.chanShard(channel)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m[string(channel)])
}

// Subscriptions returns the channels socket id is subscribed to (none if it is unknown or closed).
func (b *Broker) Subscriptions(id uint64) [][]byte {
	c := b.lookup(id)
	if c == nil {
		return nil
	}
	c.subMu.Lock()
	defer c.subMu.Unlock()
	out := make([][]byte, 0, len(c.chans))
	for name := range c.chans {
		out = append(out, []byte(name))
	}
	return out
}

// Subscribe adds socket id to channel. It returns true if added; false if already subscribed or
// if the socket is unknown or closed (then nothing is stored).
func (b *Broker) Subscribe(id uint64, channel []byte) bool {
	return b.withChannel(id, channel, func(s *chanShard, c *Conn) bool { return b.addLocked(s, string(channel), c) })
}

// withChannel calls f with socket id's Conn and channel's shard, locked; false for an unknown id.
func (b *Broker) withChannel(id uint64, channel []byte, f func(s *chanShard, c *Conn) bool) bool {
	c := b.lookup(id)
	if c == nil {
		return false
	}
	s := b.chanShard(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	return f(s, c)
}

// addLocked subscribes c to name in s (locked).
func (b *Broker) addLocked(s *chanShard, name string, c *Conn) bool {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	if c.dead {
		return false
	}
	set := s.m[name]
	if _, ok := set[c]; ok {
		return false
	}
	if set == nil {
		set = make(map[*Conn]struct{})
		s.m[name] = set
	}
	set[c] = struct{}{}
	if c.chans == nil {
		c.chans = make(map[string]struct{})
	}
	c.chans[name] = struct{}{}
	return true
}

// Unsubscribe removes socket id from channel. It returns true if it was subscribed.
func (b *Broker) Unsubscribe(id uint64, channel []byte) bool {
	return b.withChannel(id, channel, func(s *chanShard, c *Conn) bool {
		c.subMu.Lock()
		defer c.subMu.Unlock()
		set := s.m[string(channel)]
		if _, ok := set[c]; !ok {
			return false
		}
		delete(set, c)
		if len(set) == 0 {
			delete(s.m, string(channel))
		}
		delete(c.chans, string(channel))
		return true
	})
}

// CopySubscriptions subscribes every socket subscribed to from (at call time) to to.
func (b *Broker) CopySubscriptions(from, to []byte) {
	if bytes.Equal(from, to) {
		return
	}
	fi, ti := b.chanIndex(from), b.chanIndex(to)
	sf, st := &b.chans[fi], &b.chans[ti]
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
		b.addLocked(st, name, c)
	}
}

// SetToken stores a copy of token for socket id (nil clears it). Unknown id: no-op.
func (b *Broker) SetToken(id uint64, token []byte) {
	c := b.lookup(id)
	if c == nil {
		return
	}
	if token == nil {
		c.token.Store(nil)
		return
	}
	t := bytes.Clone(token)
	c.token.Store(&t)
}

func (b *Broker) lookup(id uint64) *Conn {
	s := &b.reg[id%regShards]
	s.mu.RLock()
	c := s.m[id]
	s.mu.RUnlock()
	return c
}

func (b *Broker) register(c *Conn) {
	s := &b.reg[c.id%regShards]
	s.mu.Lock()
	s.m[c.id] = c
	s.mu.Unlock()
}

func (b *Broker) unregister(c *Conn) {
	s := &b.reg[c.id%regShards]
	s.mu.Lock()
	if s.m[c.id] == c {
		delete(s.m, c.id)
	}
	s.mu.Unlock()
}

func (b *Broker) chanIndex(name []byte) uint64 { return maphash.Bytes(b.seed, name) % chanShards }

func (b *Broker) chanShard(name []byte) *chanShard { return &b.chans[b.chanIndex(name)] }

// dropSubs removes c from every channel and refuses later subscriptions.
func (b *Broker) dropSubs(c *Conn) {
	c.subMu.Lock()
	c.dead = true
	names := c.chans
	c.chans = nil
	c.subMu.Unlock()
	for name := range names {
		s := &b.chans[maphash.String(b.seed, name)%chanShards]
		s.mu.Lock()
		if set := s.m[name]; set != nil {
			delete(set, c)
			if len(set) == 0 {
				delete(s.m, name)
			}
		}
		s.mu.Unlock()
	}
}
