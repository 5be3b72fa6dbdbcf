package broker

import (
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
)

// rawUpgrade connects and sends an upgrade request with extra header lines (each ending in
// \r\n); it returns the client and the response.
func rawUpgrade(t *testing.T, addr, extra string) (*rawClient, *http.Response) {
	t.Helper()
	r := rawConnect(t, addr)
	req := upgradeRequestText("/")
	r.send([]byte(req[:len(req)-2] + extra + "\r\n"))
	resp := r.response()
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v", resp.Status)
	}
	return r, resp
}

// deflated compresses p as a permessage-deflate message payload (the sync-flush tail removed).
func deflated(t *testing.T, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), deflateTail)
}

func TestDeflateNegotiation(t *testing.T) {
	const (
		off  = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
		keep = "permessage-deflate; client_no_context_takeover"
	)
	win := func(bits int, noTakeover bool) string {
		s := fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", bits)
		if noTakeover {
			s += "; server_no_context_takeover"
		}
		return s + "; client_no_context_takeover"
	}
	for _, tc := range []struct {
		offer    string
		takeover bool   // Limits.CompressionContextTakeover
		want     string // the response's Sec-WebSocket-Extensions
		mode     uint8  // Conn.deflate
	}{
		{"", false, "", 0},
		{"permessage-deflate", false, off, 15},
		{"permessage-deflate", true, keep, 15 | deflateTakeover},
		{"permessage-deflate; client_max_window_bits", false, off, 15},
		{"permessage-deflate; client_max_window_bits=10; server_no_context_takeover", true, off, 15},
		{`permessage-deflate; client_max_window_bits="9"`, false, off, 15},
		{"permessage-deflate; client_no_context_takeover; server_no_context_takeover", true, off, 15},
		{"permessage-deflate; server_max_window_bits=10", false, win(10, true), 10},
		{`permessage-deflate; server_max_window_bits="12"`, false, win(12, true), 12},
		// Declined: invalid, unknown or repeated parameters.
		{"permessage-deflate; server_max_window_bits", false, "", 0},
		{"permessage-deflate; server_max_window_bits=7", false, "", 0},
		{"permessage-deflate; server_max_window_bits=16", false, "", 0},
		{"permessage-deflate; server_max_window_bits=09", false, "", 0},
		{"permessage-deflate; client_max_window_bits=16", false, "", 0},
		{"permessage-deflate; client_max_window_bits=08", false, "", 0},
		{"permessage-deflate; server_no_context_takeover=1", false, "", 0},
		{"permessage-deflate; x_unknown", false, "", 0},
		{"permessage-deflate; client_no_context_takeover; client_no_context_takeover", false, "", 0},
		{"permessage-deflate; server_max_window_bits=9; server_max_window_bits=9", false, "", 0},
		{"x-webkit-deflate-frame", false, "", 0},
		// The first offer we can honour wins (Autobahn 13.7 sends three).
		{"permessage-deflate; server_max_window_bits=16, permessage-deflate; client_max_window_bits", true, keep, 15 | deflateTakeover},
		{"foo, permessage-deflate", false, off, 15},
		{"permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=9, " +
			"permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover, " +
			"permessage-deflate; client_no_context_takeover; client_max_window_bits", true, win(9, true), 9},
	} {
		var headers []Header
		if tc.offer != "" {
			headers = []Header{{Name: "sec-websocket-extensions", Value: tc.offer}}
		}
		if got, mode := negotiateDeflate(headers, tc.takeover); got != tc.want || mode != tc.mode {
			t.Errorf("offer %q, takeover %v: answered %q (mode %#x), want %q (%#x)", tc.offer, tc.takeover, got, mode, tc.want, tc.mode)
		}
	}
	// Autobahn 13.1-13.6: what its client offers (it accepts client_no_context_takeover and any
	// client_max_window_bits) with server_no_context_takeover or not, server_max_window_bits
	// absent, 8, 9 or 15.
	for _, takeover := range []bool{false, true} {
		for _, noContext := range []bool{false, true} {
			for _, bits := range []int{0, 8, 9, 15} {
				offer := "permessage-deflate; client_no_context_takeover; client_max_window_bits"
				if noContext {
					offer += "; server_no_context_takeover"
				}
				if bits != 0 {
					offer += fmt.Sprintf("; server_max_window_bits=%d", bits)
				}
				want, mode := off, uint8(15)
				if bits != 0 {
					want, mode = win(bits, true), uint8(bits)
				}
				if takeover && !noContext && (bits == 0 || bits == 15) {
					want, mode = keep, 15|deflateTakeover
					if bits != 0 {
						want = win(bits, false)
					}
				}
				got, gotMode := negotiateDeflate([]Header{{Name: "sec-websocket-extensions", Value: offer}}, takeover)
				if got != want || gotMode != mode {
					t.Errorf("offer %q, takeover %v: answered %q (mode %#x), want %q (%#x)", offer, takeover, got, gotMode, want, mode)
				}
			}
		}
	}
	// Through a listener: with the options, and without Compression, where an offer is ignored.
	for _, tc := range []struct {
		lim  Limits
		want string
	}{
		{Limits{Compression: true}, win(9, true)},
		{Limits{Compression: true, CompressionContextTakeover: true}, keep},
		{Limits{CompressionContextTakeover: true}, ""},
	} {
		rec := newRecorder()
		_, addr := start(t, rec, tc.lim)
		offer := "permessage-deflate; server_max_window_bits=9"
		if tc.want == keep {
			offer = "permessage-deflate"
		}
		if _, resp := rawUpgrade(t, addr, "Sec-WebSocket-Extensions: "+offer+"\r\n"); resp.Header.Get("Sec-WebSocket-Extensions") != tc.want {
			t.Errorf("%+v: answered %q, want %q", tc.lim, resp.Header.Get("Sec-WebSocket-Extensions"), tc.want)
		}
	}
}

// TestDeflateEcho exchanges compressed messages with an independent client (coder/websocket).
func TestDeflateEcho(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{Compression: true})
	rec.onText = func(c *Conn, data []byte) { b.Send(c.ID(), data, true) }
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+addr, &websocket.DialOptions{CompressionMode: websocket.CompressionNoContextTakeover})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	if resp.Header.Get("Sec-WebSocket-Extensions") != "permessage-deflate; server_no_context_takeover; client_no_context_takeover" {
		t.Fatalf("not negotiated: %q", resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	await(t, rec.opens, "open")
	for _, msg := range []string{"short", strings.Repeat("compress me ", 1000), strings.Repeat("x", 100_000)} {
		write(t, c, websocket.MessageText, []byte(msg))
		readText(t, c, msg)
	}
}

// TestDeflateFrames checks the wire: what is compressed, and what closes the connection.
func TestDeflateFrames(t *testing.T) {
	offer := "Sec-WebSocket-Extensions: permessage-deflate\r\n"
	big := bytes.Repeat([]byte("a broadcast "), 100)

	t.Run("server frames", func(t *testing.T) {
		rec := newRecorder()
		b, addr := start(t, rec, Limits{Compression: true})
		r, _ := rawUpgrade(t, addr, offer)
		plain := rawDial(t, addr, nil)
		id1, id2 := await(t, rec.opens, "open").id, await(t, rec.opens, "open").id
		b.Subscribe(id1, []byte("ch"))
		b.Subscribe(id2, []byte("ch"))
		b.Send(id1, []byte("tiny"), true)
		b.SendToChannel([]byte("ch"), big, false, 0)
		b.Send(id1, make([]byte, 300), false) // compressible
		for _, c := range []*rawClient{r, plain} {
			if c == r {
				h, p := c.readFrame()
				if h.Rsv != 0 || string(p) != "tiny" {
					t.Fatalf("a short message: rsv %x %q, want it plain", h.Rsv, p)
				}
			}
			h, p := c.readFrame()
			if c == r {
				if h.Rsv != ws.Rsv(true, false, false) || h.OpCode != ws.OpBinary || len(p) >= len(big) {
					t.Fatalf("broadcast to a compressing client: rsv %x op %v %d bytes", h.Rsv, h.OpCode, len(p))
				}
				if got, _ := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader(deflateTail)))); !bytes.Equal(got, big) {
					t.Fatalf("inflated broadcast differs: %d bytes", len(got))
				}
			} else if h.Rsv != 0 || !bytes.Equal(p, big) {
				t.Fatalf("broadcast to a plain client: rsv %x %d bytes", h.Rsv, len(p))
			}
		}
		h, p := r.readFrame()
		if h.Rsv == 0 || len(p) > 20 {
			t.Fatalf("300 zero bytes: rsv %x, %d bytes", h.Rsv, len(p))
		}
	})

	t.Run("a broadcast is compressed once per window size, and for each socket with context takeover", func(t *testing.T) {
		rec := newRecorder()
		rec.onOpen = func(*Conn, *Request) {} // no verdict: what is sent stays queued, to look at
		b, addr := start(t, rec, Limits{Compression: true, CompressionContextTakeover: true})
		var conns []*Conn
		for _, offer := range []string{
			"permessage-deflate; server_no_context_takeover", "permessage-deflate; server_max_window_bits=9",
			"permessage-deflate; server_max_window_bits=9", "permessage-deflate", "permessage-deflate",
		} {
			req := upgradeRequestText("/")
			rawConnect(t, addr).send([]byte(req[:len(req)-2] + "Sec-WebSocket-Extensions: " + offer + "\r\n\r\n"))
			c := await(t, rec.opens, "open").c
			b.Subscribe(c.ID(), []byte("ch"))
			conns = append(conns, c)
		}
		b.SendToChannel([]byte("ch"), big, true, 0)
		frames := make([][]byte, len(conns))
		for i, c := range conns {
			c.wmu.Lock()
			frames[i] = c.queue[len(c.queue)-1] // after the 101 response
			c.wmu.Unlock()
			if frames[i][0] != 0xC1 {
				t.Fatalf("socket %d: first byte %x, want a compressed text frame", i, frames[i][0])
			}
		}
		same := func(i, j int) bool { return &frames[i][0] == &frames[j][0] }
		if !same(1, 2) || same(0, 1) || same(3, 4) || same(0, 3) || same(1, 3) {
			t.Fatal("want one frame for window 15, one for window 9, one per socket with context takeover")
		}
	})

	for _, tc := range []struct {
		name  string
		offer string
		send  []byte
		want  uint16
	}{
		{"compressed text", offer, frame(0xC1, deflated(t, []byte("héllo"))), 0},
		{"compressed fragments", offer, cat(frame(0x41, deflated(t, []byte("two parts"))[:3]), frame(0x80, deflated(t, []byte("two parts"))[3:])), 0},
		{"inflate bomb", offer, frame(0xC2, deflated(t, make([]byte, 2<<20))), 1009},
		{"not deflate", offer, frame(0xC2, []byte{0xff, 0xff, 0xff, 0xff, 0x00}), 1007},
		{"compressed invalid UTF-8", offer, frame(0xC1, deflated(t, []byte{'a', 0xff})), 1007},
		{"RSV1 on a continuation", offer, cat(frame(0x41, deflated(t, []byte("ab"))), frame(0xC0, []byte{0})), 1002},
		{"RSV1 on a ping", offer, frame(0xC9, nil), 1002},
		{"RSV1 not negotiated", "", frame(0xC1, deflated(t, []byte("hello"))), 1002},
		{"RSV2", offer, frame(0xA1, []byte("x")), 1002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			_, addr := start(t, rec, Limits{Compression: true, MaxPayload: 1 << 20})
			r, _ := rawUpgrade(t, addr, tc.offer)
			await(t, rec.opens, "open")
			r.send(tc.send)
			if tc.want == 0 {
				e := await(t, rec.msgs, "message")
				if !utf8Valid(e.data) || len(e.data) == 0 {
					t.Fatalf("message %q", e.data)
				}
				return
			}
			r.expectClose(closePayload(tc.want, ""))
			if e := await(t, rec.closes, "close"); e.code != tc.want {
				t.Fatalf("close cause %d, want %d", e.code, tc.want)
			}
		})
	}
}

// benchMessage is a chat-like JSON text of n bytes: entries of varied words.
func benchMessage(n int) []byte {
	words := strings.Fields("the a broker message channel socket worker hello world compress deflate json user text time room join leave typing quick brown fox jumps over lazy dog")
	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	b.WriteString("[")
	for b.Len() < n {
		fmt.Fprintf(&b, `{"user":"user%d","room":"room%d","ts":%d,"text":"`, rng.IntN(1000), rng.IntN(20), 1732579200000+rng.IntN(1e6))
		for range 8 {
			b.WriteString(words[rng.IntN(len(words))] + " ")
		}
		b.WriteString(`"},`)
	}
	return []byte(b.String()[:n])
}

// BenchmarkCompressedFrame is the cost of compressing one message of 1 KiB or 16 KiB (once per
// broadcast and window size, whatever the number of subscribers), for a 32 KiB window and for
// the 512-byte and 256-byte windows clients may ask for.
func BenchmarkCompressedFrame(b *testing.B) {
	for _, size := range []int{1 << 10, 16 << 10} {
		for _, bits := range []uint8{15, 9, 8} {
			b.Run(fmt.Sprintf("%dKiB/window=%d", size>>10, bits), func(b *testing.B) {
				msg := benchMessage(size)
				b.SetBytes(int64(len(msg)))
				b.ReportAllocs()
				var n int
				for b.Loop() {
					n = len(compressedFrame(ws.OpText, msg, bits, nil))
				}
				b.ReportMetric(float64(n), "bytes/frame")
			})
		}
	}
}

// BenchmarkInflate is the cost of receiving that message compressed.
func BenchmarkInflate(b *testing.B) {
	msg := benchMessage(1024)
	f := compressedFrame(ws.OpText, msg, maxWindowBits, nil)
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
		releaseBuf(out)
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
	r := bitReader{data: append(bytes.Clone(payload), deflateTail...)}
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
	for bits := uint8(8); bits <= maxWindowBits; bits++ {
		for _, msg := range [][]byte{benchMessage(1 << 10), benchMessage(16 << 10), farRepeats(64 << 10), bytes.Repeat([]byte("ab"), 100_000)} {
			payload := payloadOf(t, compressedFrame(ws.OpText, msg, bits, nil))
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
	if _, maxDist, _ := inflateWalk(payloadOf(t, compressedFrame(ws.OpText, farRepeats(64<<10), maxWindowBits, nil)), nil); maxDist <= 1<<14 {
		t.Fatalf("the 32 KiB window's longest back-reference: %d bytes", maxDist)
	}
}

// TestDeflateContextTakeover compresses messages in turn for a socket that keeps its context:
// each inflates after the ones sent compressed before it (not those sent plain), within a 32 KiB
// window, and a message that repeats an earlier one costs a few bytes.
func TestDeflateContextTakeover(t *testing.T) {
	c := &Conn{deflate: maxWindowBits | deflateTakeover}
	random := make([]byte, 1000)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	var window []byte // what the client's decoder has seen
	sizes := map[string]int{}
	for i, msg := range [][]byte{benchMessage(1 << 10), benchMessage(1 << 10), random, benchMessage(600), farRepeats(40 << 10), benchMessage(1 << 10), farRepeats(3000)} {
		f := c.contextFrameLocked(ws.OpText, msg)
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
		if maxDist > 1<<maxWindowBits {
			t.Fatalf("message %d: a back-reference of %d bytes", i, maxDist)
		}
		// An independent decoder given the same window agrees.
		r := flate.NewReaderDict(io.MultiReader(bytes.NewReader(payloadOf(t, f)), bytes.NewReader(deflateTail)), window[max(len(window)-32<<10, 0):])
		if std, _ := io.ReadAll(r); !bytes.Equal(std, msg) {
			t.Fatalf("message %d: compress/flate inflated %d bytes", i, len(std))
		}
		window = append(window, msg...)
		sizes[fmt.Sprint(i)] = len(f)
	}
	if sizes["1"] > 20 || sizes["0"] < 300 {
		t.Fatalf("a 1 KiB message: %d bytes, then repeated: %d bytes", sizes["0"], sizes["1"])
	}
	if c.history == nil || len(*c.history) != historyMax || cap(*c.history) != historyMax {
		t.Fatalf("history: %v", c.history)
	}
}

// TestConnSize: Conn stays in its 448-byte size class (every byte counts for an idle connection).
func TestConnSize(t *testing.T) {
	if size := unsafe.Sizeof(Conn{}); size > 448 {
		t.Fatalf("Conn is %d bytes", size)
	}
}
