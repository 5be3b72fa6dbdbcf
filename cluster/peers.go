package cluster

import (
	"slices"
	"sync"
	"time"
)

// peers is the table of the other live nodes, from their heartbeats: a node unheard of for
// expiry has gone, and one that says it is leaving goes at once.
type peers struct {
	expiry time.Duration

	mu    sync.Mutex
	nodes map[uint64]peer // by instance
}

type peer struct {
	lastHeard time.Time
	slots     []uint32 // the id slots it holds, as of its last heartbeat
}

func newPeers(expiry time.Duration) *peers {
	return &peers{expiry: expiry, nodes: map[uint64]peer{}}
}

// heard records a heartbeat of node instance, which holds slots, and reports whether that node
// was not known.
func (p *peers) heard(instance uint64, slots []uint32, now time.Time) (isNew bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, known := p.nodes[instance]
	p.nodes[instance] = peer{lastHeard: now, slots: slots}
	return !known
}

// holds reports whether a live node holds slot.
func (p *peers) holds(slot uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range p.nodes {
		if slices.Contains(n.slots, slot) {
			return true
		}
	}
	return false
}

// left forgets node instance.
func (p *peers) left(instance uint64) {
	p.mu.Lock()
	delete(p.nodes, instance)
	p.mu.Unlock()
}

// expire forgets the nodes unheard of for expiry, and returns how many are left.
func (p *peers) expire(now time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for instance, n := range p.nodes {
		if now.Sub(n.lastHeard) > p.expiry {
			delete(p.nodes, instance)
		}
	}
	return len(p.nodes)
}

// instances returns the instances of the live nodes.
func (p *peers) instances() []uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]uint64, 0, len(p.nodes))
	for instance := range p.nodes {
		out = append(out, instance)
	}
	return out
}

// heardSince reports whether every node of instances that is still live was heard at or after t.
func (p *peers) heardSince(instances []uint64, t time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, instance := range instances {
		if n, ok := p.nodes[instance]; ok && n.lastHeard.Before(t) {
			return false
		}
	}
	return true
}

// count returns how many other nodes are live.
func (p *peers) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.nodes)
}
