package wsproto

import (
	"math/bits"
	"sync"
)

// Buffers pools the byte buffers that live for one message: a message reassembled from several
// reads or frames, an inflated one, and a connection's own frames queued for writing
// (internal/writeq), so that messages up to 1 MiB allocate nothing and give the GC nothing to do.
// A buffer's capacity is a class's: 1 KiB << i plus BufferSlack, so that a payload of a power of
// two fits its class with a frame header or a short prefix of the application's.
var Buffers bufferPool

const (
	bufferMinBits = 10 // the smallest class: 1 KiB (plus BufferSlack)
	bufferClasses = 11 // up to 1 MiB (plus BufferSlack)

	// BufferSlack is what every class holds beyond its power of two.
	BufferSlack = 64
	// MaxPooledBuffer is the largest capacity Buffers keeps; Get of more allocates.
	MaxPooledBuffer = 1<<(bufferMinBits+bufferClasses-1) + BufferSlack
)

type bufferPool struct{ classes [bufferClasses]sync.Pool }

// bufferClass returns the smallest class whose buffers hold n bytes, bufferClasses if none does.
func bufferClass(n int) int {
	if n <= 1<<bufferMinBits+BufferSlack {
		return 0
	}
	return min(bits.Len(uint(n-BufferSlack-1))-bufferMinBits, bufferClasses)
}

// Get returns an empty buffer whose capacity is at least n: its class's, or n itself beyond
// MaxPooledBuffer.
func (p *bufferPool) Get(n int) *[]byte {
	i := bufferClass(n)
	if i == bufferClasses {
		b := make([]byte, 0, n)
		return &b
	}
	if b, _ := p.classes[i].Get().(*[]byte); b != nil {
		return b
	}
	b := make([]byte, 0, 1<<(bufferMinBits+i)+BufferSlack)
	return &b
}

// Put gives b back for another Get; a buffer whose capacity is not a class's (allocated beyond
// MaxPooledBuffer, or grown by append) is left to the GC.
func (p *bufferPool) Put(b *[]byte) {
	c := cap(*b)
	if i := bufferClass(c); i < bufferClasses && c == 1<<(bufferMinBits+i)+BufferSlack {
		*b = (*b)[:0]
		p.classes[i].Put(b)
	}
}
