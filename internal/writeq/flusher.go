package writeq

import (
	"runtime"
	"sync"
)

// maxKeptBatch: a larger batch is dropped once written, not kept by an idle flusher.
const maxKeptBatch = 4096

// Flusher is the list of sockets (of type T) that one flusher goroutine writes: Add puts a
// socket on it and wakes the goroutine, whose loop takes them all at once (Next) and writes
// each with one non-blocking write. The goroutine is its owner's, so that writing a socket is a
// direct call.
type Flusher[T any] struct {
	mu   sync.Mutex
	list []T
	wake chan struct{}
}

// NewFlusher returns an empty Flusher.
func NewFlusher[T any]() *Flusher[T] { return &Flusher[T]{wake: make(chan struct{}, 1)} }

// Add puts c on f's list and wakes f's goroutine.
func (f *Flusher[T]) Add(c T) {
	f.mu.Lock()
	f.list = append(f.list, c)
	f.mu.Unlock()
	f.signal()
}

// AddAll puts cs on f's list and wakes f's goroutine, if cs has any.
func (f *Flusher[T]) AddAll(cs []T) {
	if len(cs) == 0 {
		return
	}
	f.mu.Lock()
	f.list = append(f.list, cs...)
	f.mu.Unlock()
	f.signal()
}

func (f *Flusher[T]) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Next is the flusher goroutine's wait: it returns the sockets added since the last call, in
// the order added, once there are any. batch, the last call's result (written by now), is
// reused for the list.
func (f *Flusher[T]) Next(batch []T) []T {
	clear(batch) // keeps no sockets that may end
	if cap(batch) > maxKeptBatch {
		batch = nil
	}
	for {
		<-f.wake
		// Let the goroutines that are ready run first (the readers that one netpoll woke): what
		// they queue for the same sockets then leaves in the same write. Without this the
		// flusher, woken by the first of them, runs right after it (runnext) and writes about
		// one frame per syscall; with it, one write per socket per round of reads, as uWS corks
		// its sockets for an event-loop iteration.
		runtime.Gosched()
		f.mu.Lock()
		batch, f.list = f.list, batch[:0]
		f.mu.Unlock()
		if len(batch) > 0 {
			return batch
		}
	}
}
