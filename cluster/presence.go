package cluster

import (
	"sync"
)

// presence holds the count queries in flight. With an engine that counts receivers (Redis) a
// query goes to the channel's topic, so that only the nodes with subscribers to it receive it and
// answer (this node too, when it is subscribed: its own answer is the zero it adds to its local
// count), and the receiver count says how many answers to await. Otherwise (NATS) it goes to the
// control topic with the channel's name, and every other live node answers.
type presence struct {
	mu      sync.Mutex
	next    uint64
	queries map[uint64]*query
}

type query struct {
	expected int // -1 until the engine has published the query
	answers  int
	sum      uint64
	done     chan struct{} // closed once every expected answer is in
}

func newPresence() *presence { return &presence{queries: map[uint64]*query{}} }

// start registers a query and returns its request id.
func (p *presence) start() (uint64, *query) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	q := &query{expected: -1, done: make(chan struct{})}
	p.queries[p.next] = q
	return p.next, q
}

// published records how many receivers the query got (0 when it could not be published).
func (p *presence) published(req uint64, receivers int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if q := p.queries[req]; q != nil {
		q.expected = max(receivers, 0)
		q.settle()
	}
}

// answer records a node's count for query req.
func (p *presence) answer(req, count uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if q := p.queries[req]; q != nil {
		q.answers++
		q.sum += count
		q.settle()
	}
}

// finish forgets query req and returns the sum of its answers and whether they were all in.
func (p *presence) finish(req uint64) (sum uint64, complete bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.queries[req]
	delete(p.queries, req)
	return q.sum, q.expected >= 0 && q.answers >= q.expected
}

// settle closes done once every expected answer is in; the caller holds p.mu.
func (q *query) settle() {
	if q.expected >= 0 && q.answers >= q.expected {
		select {
		case <-q.done:
		default:
			close(q.done)
		}
	}
}
