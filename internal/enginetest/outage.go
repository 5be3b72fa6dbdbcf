package enginetest

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/wsbroker/wsbroker/cluster"
)

// Traffic publishes to topic through e, again and again, failing or not, until the stop it
// returns is called, which waits for it to end.
func Traffic(e cluster.Engine, topic string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		receivers := make([]int, 16)
		msgs := make([]cluster.Message, 16)
		for i := range msgs {
			msgs[i] = cluster.Message{Topic: topic, Data: []byte("x")}
		}
		for {
			select {
			case <-done:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, _ = e.Publish(ctx, msgs, receivers)
			cancel()
			runtime.Gosched() // a call that fails at once leaves the others their turn
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// Lost waits until each recorder has heard of a loss, and checks that it came with a reason.
func Lost(t testing.TB, recs ...*Recorder) {
	t.Helper()
	for _, rec := range recs {
		if st := rec.WaitState(t, false); st.Err == nil {
			t.Fatal("a loss without a reason")
		}
	}
}

// FailFast checks that Publish, Subscribe and Claim fail with notConnected, all within 500 ms,
// while the engines are disconnected.
func FailFast(t testing.TB, pub, sub cluster.Engine, topic, slot string, notConnected error) {
	t.Helper()
	ctx := Context(t)
	start := time.Now()
	if _, err := pub.Publish(ctx, []cluster.Message{{Topic: topic}}, make([]int, 1)); !errors.Is(err, notConnected) {
		t.Fatalf("Publish while disconnected: %v", err)
	}
	if err := sub.Subscribe(ctx, []string{topic}); !errors.Is(err, notConnected) {
		t.Fatalf("Subscribe while disconnected: %v", err)
	}
	if _, err := sub.Claim(ctx, slot); !errors.Is(err, notConnected) {
		t.Fatalf("Claim while disconnected: %v", err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("calls while disconnected took %v", took)
	}
}

// Recovered waits until each recorder has heard of the connection again, and checks that it
// heard of one loss only, however many attempts failed.
func Recovered(t testing.TB, recs ...*Recorder) {
	t.Helper()
	for _, rec := range recs {
		rec.WaitState(t, true)
	}
	for _, rec := range recs {
		rec.NoMoreStates(t)
	}
}
