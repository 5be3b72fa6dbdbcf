package cluster

import (
	"context"
	"errors"
	"sync"
	"time"
)

// What the publisher does with a message's receiver count once the engine has published it.
const (
	trackNone  = iota
	trackNode  // to a node's topic: no receiver means that node is gone (unrouted)
	trackQuery // a count query: as many answers as receivers are awaited
)

// outgoing is one message waiting to be published.
type outgoing struct {
	msg   Message
	track uint8
	slot  uint32 // trackNode: the slot of the socket it is for
	req   uint64 // trackQuery: the query's request id
}

// publisher holds what the node publishes, in order, up to limit bytes, and publishes it from one
// goroutine in batches: whatever has queued up while the engine published the batch before. It
// never blocks its callers: beyond the limit, messages are dropped and counted.
type publisher struct {
	engine Engine
	limit  int
	// sent is called on the publisher's goroutine for each batch, with the engine's error if its
	// server refused some messages (receivers Refused).
	sent func(out []outgoing, receivers []int, refusal error)
	// tooLarge is called on the publisher's goroutine for a message the engine refused as larger
	// than it takes (ErrTooLarge), which is then dropped.
	tooLarge func(o outgoing)

	mu        sync.Mutex
	queue     []outgoing // from head on
	head      int
	bytes     int
	connected bool
	held      bool          // connected or not, nothing goes out (hold, release)
	wake      chan struct{} // cap 1: something queued, connected or released
}

// maxBatch bounds the messages of one Engine.Publish call.
const maxBatch = 512

func newPublisher(e Engine, limit int, sent func([]outgoing, []int, error), tooLarge func(outgoing)) *publisher {
	return &publisher{engine: e, limit: limit, sent: sent, tooLarge: tooLarge, held: true, wake: make(chan struct{}, 1)}
}

// push queues o, to be published once the publisher is signalled. It returns false, having
// dropped it, when the queue holds limit bytes already; connected tells whether the engine was
// connected then.
func (p *publisher) push(o outgoing) (queued, connected bool) {
	size := len(o.msg.Topic) + len(o.msg.Data)
	p.mu.Lock()
	connected = p.connected
	if p.bytes+size > p.limit {
		p.mu.Unlock()
		return false, connected
	}
	p.queue = append(p.queue, o)
	p.bytes += size
	p.mu.Unlock()
	return true, connected
}

func (p *publisher) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// setConnected records the engine's state: the publisher publishes only while connected.
func (p *publisher) setConnected(c bool) {
	p.mu.Lock()
	p.connected = c
	p.mu.Unlock()
	p.signal()
}

// hold keeps what is queued, and what comes, from going out until release; a publisher starts
// held.
func (p *publisher) hold() {
	p.mu.Lock()
	p.held = true
	p.mu.Unlock()
}

// release lets the queue go out (while connected).
func (p *publisher) release() {
	p.mu.Lock()
	p.held = false
	p.mu.Unlock()
	p.signal()
}

// queued reports the messages and bytes waiting.
func (p *publisher) queued() (n, bytes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue) - p.head, p.bytes
}

// run publishes until ctx ends.
func (p *publisher) run(ctx context.Context) {
	msgs := make([]Message, 0, maxBatch)
	receivers := make([]int, maxBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		}
		for {
			p.mu.Lock()
			if !p.connected || p.held || p.head == len(p.queue) {
				p.mu.Unlock()
				break
			}
			// What is queued from head on stays where it is while the lock is released: push only
			// appends behind it.
			batch := p.queue[p.head:min(len(p.queue), p.head+maxBatch)]
			p.mu.Unlock()
			msgs = msgs[:0]
			for _, o := range batch {
				msgs = append(msgs, o.msg)
			}
			n, err := p.engine.Publish(ctx, msgs, receivers[:len(msgs)])
			var refusal error
			if errors.Is(err, ErrRefused) {
				refusal, err = err, nil // sent and dropped, not tried again
			}
			p.sent(batch[:n], receivers[:n], refusal)
			done := n
			if errors.Is(err, ErrTooLarge) && n < len(batch) {
				p.tooLarge(batch[n])
				done, err = n+1, nil
			}
			p.mu.Lock()
			for i := range batch[:done] {
				p.bytes -= len(batch[i].msg.Topic) + len(batch[i].msg.Data)
				p.queue[p.head+i] = outgoing{}
			}
			p.head += done
			if p.head == len(p.queue) {
				p.queue, p.head = p.queue[:0], 0
			} else if p.head > len(p.queue)/2 {
				p.queue, p.head = append(p.queue[:0], p.queue[p.head:]...), 0
			}
			p.mu.Unlock()
			if err != nil {
				// The engine reports a loss itself (then connected again); a failure it does not
				// report is tried again after a pause.
				select {
				case <-ctx.Done():
					return
				case <-time.After(retryPause):
				}
			}
		}
	}
}

// retryPause is how long the publisher and the subscription manager wait before they try again
// what failed while the engine still said it was connected.
const retryPause = 100 * time.Millisecond
