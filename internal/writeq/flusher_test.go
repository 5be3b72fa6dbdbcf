package writeq

import (
	"slices"
	"testing"
)

func TestFlusherNext(t *testing.T) {
	f := NewFlusher[int]()
	f.Add(1)
	f.AddAll([]int{2, 3})
	f.AddAll(nil)
	batch := f.Next(nil)
	if !slices.Equal(batch, []int{1, 2, 3}) {
		t.Fatalf("batch %v", batch)
	}
	done := make(chan []int)
	go func() { done <- f.Next(batch) }()
	f.Add(4)
	if got := <-done; !slices.Equal(got, []int{4}) {
		t.Fatalf("second batch %v", got)
	}
}
