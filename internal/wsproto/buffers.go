package wsproto

import (
	"math/bits"
	"sync"
)

// Buffers pools the byte buffers that live for one message: a message reassembled from several
// reads or frames, an inflated one, and a connection's own frames up to 1 MiB queued for writing
// (internal/writeq), so that such messages allocate nothing and give the GC nothing to do.
// A buffer's capacity is a class's: 1 KiB << i plus BufferSlack, so that a payload of a power of
// two fits its class with a frame header or a short prefix of the application's.
var Buffers bufferPool

const (
	bufferMinBits = 10 // the smallest class: 1 KiB (plus BufferSlack)
	bufferClasses = 15 // up to 16 MiB (plus BufferSlack): a message of the default maxPayload
	BufferSlack   = 64 // what every class holds beyond its power of two

	// MaxPooledBuffer is the largest capacity Buffers keeps; Get of more allocates.
	MaxPooledBuffer = 1<<(bufferMinBits+bufferClasses-1) + BufferSlack
)

// classCap is the capacity of class i's buffers.
func classCap(i int) int { return 1<<(bufferMinBits+i) + BufferSlack }

type bufferPool struct{ classes [bufferClasses]sync.Pool }

// bufferClass returns the smallest class whose buffers hold n bytes, bufferClasses if none does.
func bufferClass(n int) int {
	if n <= classCap(0) {
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
	b := make([]byte, 0, classCap(i))
	return &b
}

// Grow returns a buffer holding *b's bytes, with room for need bytes in all, and gives b back:
// the class above b's, or twice its capacity past the classes (a buffer grown from the first
// class copies what it holds about once), but at least need and, as far as need allows, at most
// limit (rounded up to its class, within the classes).
func (p *bufferPool) Grow(b *[]byte, need, limit int) *[]byte {
	c := cap(*b)
	next := 2 * c
	if i := bufferClass(c + 1); i < bufferClasses {
		next = classCap(i)
	}
	g := p.Get(max(need, min(next, limit)))
	*g = append(*g, *b...)
	p.Put(b)
	return g
}

// Join returns a buffer holding parts' bytes one after the other.
func (p *bufferPool) Join(parts []*[]byte) *[]byte {
	n := 0
	for _, part := range parts {
		n += len(*part)
	}
	b := p.Get(n)
	for _, part := range parts {
		*b = append(*b, *part...)
	}
	return b
}

// Put gives b back for another Get; a buffer whose capacity is not a class's (allocated beyond
// MaxPooledBuffer, or grown by append) is left to the GC.
func (p *bufferPool) Put(b *[]byte) {
	c := cap(*b)
	if i := bufferClass(c); i < bufferClasses && c == classCap(i) {
		*b = (*b)[:0]
		p.classes[i].Put(b)
	}
}
