package wsproto

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/wsbroker/wsbroker/internal/wstest"
)

// BenchmarkCompressedFrame is the cost of compressing one message of 1 KiB or 16 KiB (once per
// broadcast and window size, whatever the number of subscribers), for a 32 KiB window and for
// the 512-byte and 256-byte windows clients may ask for.
func BenchmarkCompressedFrame(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10} {
		for _, bits := range []uint8{15, 9, 8} {
			b.Run(fmt.Sprintf("%dKiB/window=%d", size>>10, bits), func(b *testing.B) {
				msg := wstest.ChatMessage(size)
				b.SetBytes(int64(len(msg)))
				b.ReportAllocs()
				var n int
				for b.Loop() {
					n = len(CompressedFrame(ws.OpText, msg, bits, nil))
				}
				b.ReportMetric(float64(n), "bytes/frame")
			})
		}
	}
}

// BenchmarkInflate is the cost of receiving that message compressed.
func BenchmarkInflate(b *testing.B) {
	msg := wstest.ChatMessage(1024)
	f := CompressedFrame(ws.OpText, msg, MaxWindowBits, nil)
	h, err := ws.ReadHeader(bytes.NewReader(f))
	if err != nil {
		b.Fatal(err)
	}
	payload := f[len(f)-int(h.Length):]
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		out, code := inflate(payload, 1<<20)
		if code != 0 || len(*out) != len(msg) {
			b.Fatal(code)
		}
		Buffers.Put(out)
	}
}

// inflateWalk decodes a permessage-deflate payload (its tail stripped) on its own, as a minimal
// RFC 1951 decoder, after history (the window of a decoder that kept its context). It returns the
// bytes decoded and the longest back-reference distance in the stream, so that a test can check
// that the stream fits a decoder with a smaller window; ok is false for a stream it cannot decode.
func inflateWalk(payload, history []byte) (out []byte, maxDist int, ok bool) {
	defer func() {
		if recover() != nil {
			out, ok = nil, false
		}
	}()
	r := bitReader{data: append(bytes.Clone(payload), DeflateTail...)}
	buf := bytes.Clone(history)
	lbase := []int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lext := []int{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	dbase := []int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	dext := []int{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	for r.pos < 8*len(r.data) { // the stream ends with the empty stored block of a sync flush
		final, kind := r.bits(1), r.bits(2)
		var lit, dist huffman
		switch kind {
		case 0:
			r.pos = (r.pos + 7) &^ 7
			n := r.bits(16)
			if r.bits(16) != n^0xffff {
				return nil, 0, false
			}
			buf = append(buf, r.data[r.pos/8:r.pos/8+n]...)
			r.pos += 8 * n
			continue
		case 1:
			lengths := make([]int, 288+30)
			for i := range lengths {
				lengths[i] = map[bool]int{true: 8, false: 9}[i < 144 || i >= 280 && i < 288]
				if i >= 256 && i < 280 {
					lengths[i] = 7
				}
				if i >= 288 {
					lengths[i] = 5
				}
			}
			lit, dist = newHuffman(lengths[:288]), newHuffman(lengths[288:])
		case 2:
			nlit, ndist, ncode := r.bits(5)+257, r.bits(5)+1, r.bits(4)+4
			codeLengths := make([]int, 19)
			for _, i := range []int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}[:ncode] {
				codeLengths[i] = r.bits(3)
			}
			code := newHuffman(codeLengths)
			var lengths []int
			for len(lengths) < nlit+ndist {
				switch sym := r.decode(&code); {
				case sym < 16:
					lengths = append(lengths, sym)
				case sym == 16:
					lengths = append(lengths, slices.Repeat(lengths[len(lengths)-1:], 3+r.bits(2))...)
				case sym == 17:
					lengths = append(lengths, make([]int, 3+r.bits(3))...)
				default:
					lengths = append(lengths, make([]int, 11+r.bits(7))...)
				}
			}
			lit, dist = newHuffman(lengths[:nlit]), newHuffman(lengths[nlit:])
		default:
			return nil, 0, false
		}
		for {
			sym := r.decode(&lit)
			if sym < 256 {
				buf = append(buf, byte(sym))
				continue
			}
			if sym == 256 {
				break
			}
			n := lbase[sym-257] + r.bits(lext[sym-257])
			d := r.decode(&dist)
			d = dbase[d] + r.bits(dext[d])
			if d > len(buf) {
				return nil, 0, false
			}
			maxDist = max(maxDist, d)
			for range n {
				buf = append(buf, buf[len(buf)-d])
			}
		}
		if final == 1 {
			return nil, 0, false // permessage-deflate streams go on: no final block
		}
	}
	return buf[len(history):], maxDist, true
}

// bitReader reads a deflate stream's bits, least significant first.
type bitReader struct {
	data []byte
	pos  int // in bits
}

func (r *bitReader) bits(n int) int {
	v := 0
	for i := range n {
		v |= int(r.data[r.pos/8]>>(r.pos%8)&1) << i
		r.pos++
	}
	return v
}

// huffman is a canonical Huffman code: how many codes of each length, and the symbols in code
// order.
type huffman struct {
	count   [16]int
	symbols []int
}

func newHuffman(lengths []int) huffman {
	var h huffman
	for _, l := range lengths {
		h.count[l]++
	}
	h.count[0] = 0
	var offset [16]int
	for l := 1; l < 15; l++ {
		offset[l+1] = offset[l] + h.count[l]
	}
	h.symbols = make([]int, len(lengths))
	for sym, l := range lengths {
		if l != 0 {
			h.symbols[offset[l]] = sym
			offset[l]++
		}
	}
	return h
}

func (r *bitReader) decode(h *huffman) int {
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		code |= r.bits(1)
		if code-h.count[l] < first {
			return h.symbols[index+code-first]
		}
		index += h.count[l]
		first = (first + h.count[l]) << 1
		code <<= 1
	}
	panic("not a code")
}

// payloadOf is the payload of a complete server frame.
func payloadOf(t *testing.T, f []byte) []byte {
	t.Helper()
	h, err := ws.ReadHeader(bytes.NewReader(f))
	if err != nil || !h.Rsv1() {
		t.Fatalf("not a compressed frame: %v %+v", err, h)
	}
	return f[len(f)-int(h.Length):]
}

// farRepeats is n bytes of words in which each 300-byte block comes back ~20 KiB later: an
// encoder whose window is not capped refers back that far.
func farRepeats(n int) []byte {
	words := strings.Fields("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi")
	rng := rand.New(rand.NewPCG(3, 4))
	blocks := make([][]byte, 64)
	for i := range blocks {
		for len(blocks[i]) < 300 {
			blocks[i] = append(blocks[i], words[rng.IntN(len(words))]+" "...)
		}
		blocks[i] = blocks[i][:300]
	}
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = append(b, blocks[i%len(blocks)]...)
	}
	return b[:n]
}

// TestDeflateWindow checks that what is compressed for a client's server_max_window_bits never
// refers back further than that window, and inflates to the message.
func TestDeflateWindow(t *testing.T) {
	for bits := uint8(8); bits <= MaxWindowBits; bits++ {
		for _, msg := range [][]byte{wstest.ChatMessage(1 << 10), wstest.ChatMessage(16 << 10), farRepeats(64 << 10), bytes.Repeat([]byte("ab"), 100_000)} {
			payload := payloadOf(t, CompressedFrame(ws.OpText, msg, bits, nil))
			got, maxDist, ok := inflateWalk(payload, nil)
			if !ok || !bytes.Equal(got, msg) {
				t.Fatalf("window %d, %d bytes: inflated %d bytes, ok %v", bits, len(msg), len(got), ok)
			}
			if maxDist > 1<<bits {
				t.Fatalf("window %d, %d bytes: a back-reference of %d bytes", bits, len(msg), maxDist)
			}
			if len(payload) >= len(msg)/2 {
				t.Fatalf("window %d, %d bytes: compressed to %d bytes", bits, len(msg), len(payload))
			}
		}
	}
	// The checker itself: flate's own 32 KiB window does refer back ~20 KiB here.
	if _, maxDist, _ := inflateWalk(payloadOf(t, CompressedFrame(ws.OpText, farRepeats(64<<10), MaxWindowBits, nil)), nil); maxDist <= 1<<14 {
		t.Fatalf("the 32 KiB window's longest back-reference: %d bytes", maxDist)
	}
}

// TestDeflateContextTakeover compresses messages in turn for a socket that keeps its context:
// each inflates after the ones sent compressed before it (not those sent plain), within a 32 KiB
// window, and a message that repeats an earlier one costs a few bytes.
func TestDeflateContextTakeover(t *testing.T) {
	var h History
	random := make([]byte, 1000)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	var window []byte // what the client's decoder has seen
	sizes := map[string]int{}
	for i, msg := range [][]byte{wstest.ChatMessage(1 << 10), wstest.ChatMessage(1 << 10), random, wstest.ChatMessage(600), farRepeats(40 << 10), wstest.ChatMessage(1 << 10), farRepeats(3000)} {
		f := h.Frame(ws.OpText, msg)
		if f == nil {
			if !bytes.Equal(msg, random) {
				t.Fatalf("message %d not compressed", i)
			}
			continue // sent plain: the client's window does not change
		}
		got, maxDist, ok := inflateWalk(payloadOf(t, f), window)
		if !ok || !bytes.Equal(got, msg) {
			t.Fatalf("message %d: inflated %d bytes, ok %v", i, len(got), ok)
		}
		if maxDist > 1<<MaxWindowBits {
			t.Fatalf("message %d: a back-reference of %d bytes", i, maxDist)
		}
		// An independent decoder given the same window agrees.
		r := flate.NewReaderDict(io.MultiReader(bytes.NewReader(payloadOf(t, f)), bytes.NewReader(DeflateTail)), window[max(len(window)-32<<10, 0):])
		if std, _ := io.ReadAll(r); !bytes.Equal(std, msg) {
			t.Fatalf("message %d: compress/flate inflated %d bytes", i, len(std))
		}
		window = append(window, msg...)
		sizes[fmt.Sprint(i)] = len(f)
	}
	if sizes["1"] > 20 || sizes["0"] < 300 {
		t.Fatalf("a 1 KiB message: %d bytes, then repeated: %d bytes", sizes["0"], sizes["1"])
	}
	if h.b == nil || len(*h.b) != historyMax || cap(*h.b) != historyMax {
		t.Fatalf("history: %v", h.b)
	}
}
