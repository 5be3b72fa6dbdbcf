package wsproto

import (
	"runtime/debug"
	"testing"
)

// TestBuffers: Get gives room for what is asked, never more than twice that (a class's), and a
// buffer put back is the next one of its class; one grown by append, or over the largest class,
// is left to the GC. The GC is off meanwhile, so that the pool keeps what it is given.
func TestBuffers(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for _, n := range []int{0, 1, 1 << 10, 1<<10 + BufferSlack, 1<<10 + BufferSlack + 1, 4096, 64<<10 + 2, 1 << 20, MaxPooledBuffer} {
		b := Buffers.Get(n)
		if len(*b) != 0 || cap(*b) < n || cap(*b) > max(2*n, 1<<10+BufferSlack) {
			t.Fatalf("Get(%d): len %d, cap %d", n, len(*b), cap(*b))
		}
		// The race detector's sync.Pool drops a quarter of what it is given: a few tries.
		reused := false
		for range 20 {
			*b = append(*b, 'x')
			Buffers.Put(b)
			again := Buffers.Get(n)
			if again == b {
				if len(*b) != 0 {
					t.Fatalf("Get(%d) after Put: not emptied", n)
				}
				reused = true
				break
			}
			b = again
		}
		if !reused {
			t.Fatalf("Get(%d) after Put: never the buffer put back", n)
		}
		*b = append(*b, make([]byte, cap(*b)+1)...)
		Buffers.Put(b)
		for range 20 {
			if Buffers.Get(n) == b {
				t.Fatalf("Get(%d): a buffer grown past its class came back", n)
			}
		}
	}
	over := Buffers.Get(MaxPooledBuffer + 1)
	if cap(*over) != MaxPooledBuffer+1 {
		t.Fatalf("Get(MaxPooledBuffer+1): cap %d, want exactly that", cap(*over))
	}
	Buffers.Put(over)
	for range 20 {
		if Buffers.Get(MaxPooledBuffer+1) == over {
			t.Fatal("a buffer over MaxPooledBuffer was pooled")
		}
	}
}

// TestBuffersGrow: Grow keeps the bytes and goes to the next class (about twice), to twice the
// capacity past the classes, never below what is needed and, where need allows, not past limit
// (within the classes, past limit's class).
func TestBuffersGrow(t *testing.T) {
	for _, c := range []struct{ from, need, limit, want int }{
		{4096, 4097, 1 << 30, classCap(3)},                                                     // 4 KiB+64 → 8 KiB+64, not 16 KiB+64
		{4096, 20000, 1 << 30, classCap(5)},                                                    // what is needed, in its class
		{4096, 4097, 5000, classCap(3)},                                                        // limit within the classes: its class
		{MaxPooledBuffer, MaxPooledBuffer + 1, 1 << 30, 2 * MaxPooledBuffer},                   // past the classes: doubled
		{MaxPooledBuffer, MaxPooledBuffer + 1, MaxPooledBuffer + 100, MaxPooledBuffer + 100},   // not past limit
		{MaxPooledBuffer, MaxPooledBuffer + 200, MaxPooledBuffer + 100, MaxPooledBuffer + 200}, // need over limit wins
	} {
		b := Buffers.Get(c.from)
		*b = append(*b, "held"...)
		g := Buffers.Grow(b, c.need, c.limit)
		if string(*g) != "held" || cap(*g) != c.want {
			t.Fatalf("Grow from %d (need %d, limit %d): %q in %d, want \"held\" in %d", cap(*b), c.need, c.limit, *g, cap(*g), c.want)
		}
	}
}
