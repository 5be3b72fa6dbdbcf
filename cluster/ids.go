package cluster

import (
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
)

// Socket ids in a cluster: slot·2^32 + seq, with slot in [1, 2^21) naming the node that owns the
// socket (a node holds one slot, or more once one runs out) and seq in [1, 2^32). The largest id
// is 2^53−1, so that ids stay exact JavaScript numbers; ids of slot 0 (1, 2, 3…) are those a
// Broker makes alone, before it joins.
const (
	slotBits = 21
	seqBits  = 32
	seqMask  = 1<<seqBits - 1
)

// slotOf returns the slot of socket id.
func slotOf(id uint64) uint32 { return uint32(id >> seqBits) }

// randomSlot returns a slot at random.
func randomSlot() uint32 { return 1 + rand.Uint32N(1<<slotBits-1) }

// idSpace makes the ids of a node's new sockets and knows which ids are the node's.
type idSpace struct {
	next  atomic.Uint64                 // the last id made
	held  atomic.Pointer[[]uint32]      // every slot this node has made ids in, the current one last
	mu    sync.Mutex                    // serialises moving to another slot
	spare func(exhausted uint32) uint32 // the slot to move to when one runs out: never exhausted+1
}

// init starts the space at slot.
func (s *idSpace) init(slot uint32, spare func(uint32) uint32) {
	s.spare = spare
	s.held.Store(&[]uint32{slot})
	s.next.Store(uint64(slot) << seqBits)
}

// newID returns an id never returned before by any node, as long as the slots are the node's.
func (s *idSpace) newID() uint64 {
	for {
		id := s.next.Add(1)
		cur := s.current()
		if slotOf(id) == cur {
			return id
		}
		s.moveOn(cur)
	}
}

// moveOn moves to another slot once slot has run out (once, whatever the callers racing).
func (s *idSpace) moveOn(slot uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current() != slot || slotOf(s.next.Load()) == slot {
		return // moved on already
	}
	s.moveToLocked(s.spare(slot))
}

// moveTo makes new sockets take their ids in slot; the slots held before stay held, for the
// sockets that have ids in them.
func (s *idSpace) moveTo(slot uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.moveToLocked(slot)
}

func (s *idSpace) moveToLocked(slot uint32) {
	s.held.Store(new(append(slices.Clone(*s.held.Load()), slot)))
	s.next.Store(uint64(slot) << seqBits)
}

// replace makes new sockets take their ids in slot instead of clashed, which another node turned
// out to hold before this node made any id in it (else moveTo keeps it for those ids).
func (s *idSpace) replace(clashed, slot uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held.Store(new(slices.DeleteFunc(slices.Clone(*s.held.Load()), func(h uint32) bool { return h == clashed })))
	s.moveToLocked(slot)
}

// issued reports whether an id has been made in the current slot.
func (s *idSpace) issued() bool { return s.next.Load()&seqMask != 0 }

// current returns the slot new ids are made in.
func (s *idSpace) current() uint32 {
	held := *s.held.Load()
	return held[len(held)-1]
}

// slots returns every slot the node holds.
func (s *idSpace) slots() []uint32 { return *s.held.Load() }

// local reports whether id is one of this node's: of a slot it holds, or of slot 0.
func (s *idSpace) local(id uint64) bool {
	slot := slotOf(id)
	return slot == 0 || slices.Contains(*s.held.Load(), slot)
}
