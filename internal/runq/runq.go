// Package runq reads how many goroutines wait for a P, for the code that yields its P only while
// others would run (the bridge's JS threads, the cluster's inboxes).
package runq

import (
	"runtime"
	"runtime/metrics"
	"sync"
)

// Yield gives the P to the goroutines waiting for one, at most rounds times: a goroutine that
// yields once itself is behind the caller in the run queue.
func Yield(rounds int) {
	for range rounds {
		if Runnable() == 0 {
			return
		}
		runtime.Gosched()
	}
}

// Runnable returns how many goroutines wait for a P (about 100 ns).
func Runnable() uint64 {
	s := samples.Get().(*[1]metrics.Sample)
	metrics.Read(s[:])
	n := s[0].Value.Uint64()
	samples.Put(s)
	return n
}

// samples: metrics.Read's argument escapes, and Runnable runs after every batch.
var samples = sync.Pool{New: func() any {
	return &[1]metrics.Sample{{Name: "/sched/goroutines/runnable:goroutines"}}
}}
