// Package enginetest holds what the tests of every cluster.Engine share: a handler that records
// what it is told, and waits for events with a bound.
package enginetest

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/wsbroker/wsbroker/cluster"
)

// WaitLimit bounds every wait for an event; the events come far sooner.
const WaitLimit = 10 * time.Second

// State is one StateChanged report.
type State struct {
	Connected bool
	Err       error
}

// Message is one Received call.
type Message struct {
	Topic string
	Data  []byte
}

// Recorder is a cluster.EngineHandler that keeps what it is told and signals each arrival.
type Recorder struct {
	states chan State

	mu       sync.Mutex
	messages []Message
	arrived  chan struct{} // holds a token after an arrival
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{states: make(chan State, 64), arrived: make(chan struct{}, 1)}
}

// Received records the message.
func (r *Recorder) Received(topic string, data []byte) {
	r.mu.Lock()
	r.messages = append(r.messages, Message{topic, data}) // kept as handed over: a test sees an engine reuse it
	r.mu.Unlock()
	select {
	case r.arrived <- struct{}{}:
	default:
	}
}

// StateChanged records the state.
func (r *Recorder) StateChanged(connected bool, err error) {
	r.states <- State{connected, err}
}

// WaitState returns the next state reported and fails unless it is connected, with an error
// exactly when not connected.
func (r *Recorder) WaitState(t testing.TB, connected bool) State {
	t.Helper()
	select {
	case s := <-r.states:
		if s.Connected != connected {
			t.Fatalf("state connected=%v (%v), want connected=%v", s.Connected, s.Err, connected)
		}
		if connected != (s.Err == nil) {
			t.Fatalf("state connected=%v with error %v", s.Connected, s.Err)
		}
		return s
	case <-time.After(WaitLimit):
		t.Fatalf("no state change to connected=%v within %v", connected, WaitLimit)
	}
	return State{}
}

// NoMoreStates fails if a state was reported beyond those taken.
func (r *Recorder) NoMoreStates(t testing.TB) {
	t.Helper()
	select {
	case s := <-r.states:
		t.Fatalf("unexpected state connected=%v (%v)", s.Connected, s.Err)
	default:
	}
}

// WaitMessages returns the first n messages once they have arrived.
func (r *Recorder) WaitMessages(t testing.TB, n int) []Message {
	t.Helper()
	deadline := time.After(WaitLimit)
	for {
		r.mu.Lock()
		got := len(r.messages)
		if got >= n {
			msgs := r.messages[:n:n]
			r.mu.Unlock()
			return msgs
		}
		r.mu.Unlock()
		select {
		case <-r.arrived:
		case <-deadline:
			t.Fatalf("%d of %d messages arrived within %v", got, n, WaitLimit)
		}
	}
}

// Reset forgets the messages received so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.messages = nil
	r.mu.Unlock()
}

// Context returns a context that ends after WaitLimit or with the test.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
	t.Cleanup(cancel)
	return ctx
}

// WaitGoroutines waits until no more than before goroutines run: client libraries end theirs
// just after their Close returns.
func WaitGoroutines(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(WaitLimit)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Started starts e with a new Recorder, and closes e when the test ends.
func Started(t testing.TB, e cluster.Engine) *Recorder {
	t.Helper()
	rec := NewRecorder()
	if err := e.Start(rec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return rec
}

// Connected is Started, then waits until e reports itself connected.
func Connected(t testing.TB, e cluster.Engine) *Recorder {
	t.Helper()
	rec := Started(t, e)
	rec.WaitState(t, true)
	return rec
}

// Publish publishes msgs through e, failing the test unless every one is sent, and returns their
// receiver counts.
func Publish(t testing.TB, e cluster.Engine, msgs ...cluster.Message) []int {
	t.Helper()
	receivers := make([]int, len(msgs))
	sent, err := e.Publish(Context(t), msgs, receivers)
	if err != nil || sent != len(msgs) {
		t.Fatalf("Publish: sent %d of %d: %v", sent, len(msgs), err)
	}
	return receivers
}

// Subscribe subscribes topics through e, failing the test on an error.
func Subscribe(t testing.TB, e cluster.Engine, topics ...string) {
	t.Helper()
	if err := e.Subscribe(Context(t), topics); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
}
