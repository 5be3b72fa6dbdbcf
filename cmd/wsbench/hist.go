package main

import (
	"math/bits"
	"sync/atomic"
)

// histogram records durations (nanoseconds) in log-linear buckets, HDR style: values below 128
// exactly, above that 64 buckets per power of two, so a reported value is at most 1/64 (1.6%)
// above the true one. Recording is one atomic add, safe from any goroutine.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	max    atomic.Int64
	sum    atomic.Int64
}

const (
	subBits     = 6
	subCount    = 1 << subBits              // buckets per power of two
	histBuckets = (64 - subBits) * subCount // covers every int64
)

// bucketOf returns the bucket index of v (v >= 0).
func bucketOf(v int64) int {
	if v < 2*subCount {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - subBits - 1 // v>>shift is in [subCount, 2*subCount)
	return (shift+1)*subCount + int(uint64(v)>>shift) - subCount
}

// bucketBounds returns the smallest and largest value that fall in bucket i.
func bucketBounds(i int) (lo, hi int64) {
	if i < 2*subCount {
		return int64(i), int64(i)
	}
	shift := i/subCount - 1
	lo = int64(subCount+i%subCount) << shift
	return lo, lo + (int64(1) << shift) - 1
}

func (h *histogram) record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)].Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

func (h *histogram) count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// quantile returns the value below or at which a fraction q of the recorded values lie (the
// upper bound of the bucket holding the ceil(q*n)-th smallest value, capped by the largest value
// recorded), 0 when nothing was recorded.
func (h *histogram) quantile(q float64) int64 {
	n := h.count()
	if n == 0 {
		return 0
	}
	rank := uint64(q * float64(n))
	if float64(rank) < q*float64(n) {
		rank++
	}
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			_, hi := bucketBounds(i)
			return min(hi, h.max.Load())
		}
	}
	return h.max.Load()
}

func (h *histogram) mean() float64 {
	n := h.count()
	if n == 0 {
		return 0
	}
	return float64(h.sum.Load()) / float64(n)
}
