package cluster

import (
	"context"
	"errors"
	"sync"
	"time"
)

// subscriber keeps the engine subscribed to the topic of every channel with subscribers on this
// node. The hub reports each channel's first and last subscriber (Interest) under its locks, so
// that calls for a channel come in order and must not wait: they record the change, and one
// goroutine applies the net changes in batches. After a loss of the engine it subscribes again
// to everything, once the node's own topics are (fresh).
type subscriber struct {
	engine Engine
	// fresh is called, on the subscriber's goroutine, when the engine is connected anew, before
	// the channels are subscribed again: the node claims its slots there.
	fresh func(ctx context.Context) error
	// resubscribed is called once the channels are all subscribed again after fresh.
	resubscribed func(channels int, took time.Duration)
	// refused is called with the engine's error when its server refused a batch (ErrRefused),
	// which is tried again after retryPause, as any failure is.
	refused func(err error)

	mu        sync.Mutex
	want      map[string]struct{} // the topics of channels with subscribers here
	pending   map[string]bool     // topic → subscribe or unsubscribe: changes not yet confirmed
	confirmed map[string]struct{} // the channel topics the engine has confirmed
	connected bool
	anew      bool      // connected anew: fresh is to run before the pending changes (refilled from want at the loss)
	anewAt    time.Time // when the engine was connected anew
	losses    int       // times the engine was lost: a batch confirmed across a loss is not
	wake      chan struct{}
}

// batchTopics bounds the topics of one Subscribe or Unsubscribe call.
const batchTopics = 512

func newSubscriber(e Engine, fresh func(context.Context) error, resubscribed func(int, time.Duration), refused func(error)) *subscriber {
	return &subscriber{
		engine: e, fresh: fresh, resubscribed: resubscribed, refused: refused,
		want: map[string]struct{}{}, pending: map[string]bool{}, confirmed: map[string]struct{}{},
		wake: make(chan struct{}, 1),
	}
}

// interest records that topic is wanted (present) or not any more.
func (s *subscriber) interest(topic string, present bool) {
	s.mu.Lock()
	if present {
		s.want[topic] = struct{}{}
	} else {
		delete(s.want, topic)
	}
	s.pending[topic] = present
	s.mu.Unlock()
	s.signal()
}

func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// setConnected records the engine's state. A loss takes every subscription with it: every topic
// wanted is to be subscribed again once connected.
func (s *subscriber) setConnected(c bool) {
	s.mu.Lock()
	if c && !s.connected {
		s.anew, s.anewAt = true, time.Now()
	}
	if !c && s.connected {
		s.losses++
		clear(s.confirmed)
		clear(s.pending)
		for t := range s.want {
			s.pending[t] = true
		}
	}
	s.connected = c
	s.mu.Unlock()
	s.signal()
}

// counts returns the channel topics subscribed and the changes waiting.
func (s *subscriber) counts() (subscribed, pending int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.confirmed), len(s.pending)
}

// run applies the changes until ctx ends.
func (s *subscriber) run(ctx context.Context) {
	var subs, unsubs []string
	taken := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		s.mu.Lock()
		connected, anew, since := s.connected, s.anew, s.anewAt
		s.mu.Unlock()
		if !connected {
			continue
		}
		if anew {
			if err := s.fresh(ctx); err != nil {
				s.retryLater(ctx)
				continue
			}
			s.mu.Lock()
			s.anew = false
			s.mu.Unlock()
		}
		for {
			// Take a batch, leaving it in pending: a change made while it is applied stays there
			// for the next batch.
			subs, unsubs = subs[:0], unsubs[:0]
			clear(taken)
			s.mu.Lock()
			if !s.connected {
				s.mu.Unlock()
				break
			}
			losses := s.losses
			for t, want := range s.pending {
				if _, in := s.confirmed[t]; in == want {
					delete(s.pending, t)
					continue
				}
				taken[t] = want
				if want {
					subs = append(subs, t)
				} else {
					unsubs = append(unsubs, t)
				}
				if len(taken) == batchTopics {
					break
				}
			}
			subscribed := len(s.confirmed)
			s.mu.Unlock()
			if len(taken) == 0 {
				if anew {
					anew = false
					s.resubscribed(subscribed, time.Since(since))
				}
				break
			}
			var err error
			if len(subs) > 0 {
				err = s.engine.Subscribe(ctx, subs)
			}
			if err == nil && len(unsubs) > 0 {
				err = s.engine.Unsubscribe(ctx, unsubs)
			}
			if err != nil {
				if errors.Is(err, ErrRefused) {
					s.refused(err)
				}
				s.retryLater(ctx)
				break
			}
			s.mu.Lock()
			if s.losses != losses {
				s.mu.Unlock()
				break // lost meanwhile: the batch is in pending again
			}
			for t, want := range taken {
				if want {
					s.confirmed[t] = struct{}{}
				} else {
					delete(s.confirmed, t)
				}
				if now, ok := s.pending[t]; ok && now == want {
					delete(s.pending, t)
				}
			}
			s.mu.Unlock()
		}
	}
}

// retryLater wakes the subscriber again after a pause, unless ctx ends first.
func (s *subscriber) retryLater(ctx context.Context) {
	go func() {
		select {
		case <-ctx.Done():
		case <-time.After(retryPause):
			s.signal()
		}
	}()
}
