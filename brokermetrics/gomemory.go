package brokermetrics

import "runtime/metrics"

// GoMemory is where the Go runtime's memory goes, so that a process's RSS can be split between Go
// and the rest (in the addon: V8 and Node).
type GoMemory struct {
	// HeapBytes is the heap in use: live and not yet swept objects, and the unused parts of
	// their spans.
	HeapBytes uint64 `json:"heapBytes"`
	// StackBytes is the memory of goroutine stacks.
	StackBytes uint64 `json:"stackBytes"`
	// MappedBytes is all the memory the Go runtime holds and has not returned to the system
	// (heap, stacks, free spans, runtime metadata).
	MappedBytes uint64 `json:"mappedBytes"`
	// Goroutines is the number of live goroutines.
	Goroutines uint64 `json:"goroutines"`
}

var goMemorySamples = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/sched/goroutines:goroutines",
}

// ReadGoMemory reads the Go runtime's memory figures (runtime/metrics: no stop of the world).
func ReadGoMemory() GoMemory {
	s := make([]metrics.Sample, len(goMemorySamples))
	for i, name := range goMemorySamples {
		s[i].Name = name
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	return GoMemory{HeapBytes: v(0) + v(1), StackBytes: v(2), MappedBytes: v(3) - v(4), Goroutines: v(5)}
}
