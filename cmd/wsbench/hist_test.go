package main

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func TestBucketsContiguous(t *testing.T) {
	// Every bucket starts right after the previous one ends, and bucketOf agrees with the bounds.
	prevHi := int64(-1)
	for i := 0; i < histBuckets; i++ {
		lo, hi := bucketBounds(i)
		if lo != prevHi+1 || hi < lo {
			t.Fatalf("bucket %d: [%d, %d] after %d", i, lo, hi, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d: bucketOf(%d)=%d bucketOf(%d)=%d", i, lo, bucketOf(lo), hi, bucketOf(hi))
		}
		if lo >= 2*subCount && float64(hi-lo+1)/float64(lo) > 1.0/subCount+1e-12 {
			t.Fatalf("bucket %d too wide: [%d, %d]", i, lo, hi)
		}
		prevHi = hi
		if hi == math.MaxInt64 {
			if i != histBuckets-1 {
				t.Fatalf("int64 range ends at bucket %d of %d", i, histBuckets)
			}
			return
		}
	}
	t.Fatalf("buckets end at %d, before MaxInt64", prevHi)
}

// exact is the nearest-rank quantile of sorted values.
func exact(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func TestQuantilesMatchSortedSample(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h histogram
	vals := make([]int64, 100000)
	for i := range vals {
		// Log-normal-ish latencies from 1 µs to seconds.
		v := int64(math.Exp(rng.NormFloat64()*1.5 + 12))
		vals[i] = v
		h.record(v)
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	if h.count() != uint64(len(vals)) {
		t.Fatalf("count %d", h.count())
	}
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
		want := exact(vals, q)
		got := h.quantile(q)
		if got < want || float64(got-want) > float64(want)/subCount+1 {
			t.Errorf("q=%v: got %d, exact %d", q, got, want)
		}
	}
	if h.quantile(1) != vals[len(vals)-1] {
		t.Errorf("max: %d, want %d", h.quantile(1), vals[len(vals)-1])
	}
	var sum float64
	for _, v := range vals {
		sum += float64(v)
	}
	if m := h.mean(); math.Abs(m-sum/float64(len(vals))) > 1e-6*m {
		t.Errorf("mean %v, want %v", m, sum/float64(len(vals)))
	}
}

func TestQuantileSmall(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 || h.mean() != 0 {
		t.Fatal("empty histogram")
	}
	for _, v := range []int64{10, 20, 30, 40} {
		h.record(v)
	}
	for q, want := range map[float64]int64{0.25: 10, 0.5: 20, 0.51: 30, 0.75: 30, 0.99: 40, 1: 40} {
		if got := h.quantile(q); got != want {
			t.Errorf("q=%v: %d, want %d", q, got, want)
		}
	}
	h.record(-5) // clock oddities count as 0
	if h.quantile(0) != 0 {
		t.Error("negative value not recorded as 0")
	}
}

func TestHistogramConcurrent(t *testing.T) {
	var h histogram
	done := make(chan struct{})
	for g := 0; g < 8; g++ {
		go func() {
			for i := int64(1); i <= 1000; i++ {
				h.record(i * 1000)
			}
			done <- struct{}{}
		}()
	}
	for g := 0; g < 8; g++ {
		<-done
	}
	if h.count() != 8000 || h.max.Load() != 1000000 {
		t.Fatalf("count %d max %d", h.count(), h.max.Load())
	}
}
