package wsproto

import (
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/gobwas/ws"
	"github.com/klauspost/compress/flate"
)

// permessage-deflate (RFC 7692). By default without context takeover in both directions: every
// message is compressed and inflated on its own, so a connection holds no compressor, no
// decompressor and no window between messages, and a broadcast compresses once for all its
// subscribers that share a window size. github.com/klauspost/compress/flate rather than
// compress/flate: it is faster and, unlike compress/flate, has an encoder whose window can be
// capped (NewWriterWindow), which a client's server_max_window_bits requires.
//
// With context takeover, a socket whose client allows it keeps its context: each message may
// refer back to what was sent compressed before it. The socket keeps only the last historyMax
// bytes of that (History; a klauspost compressor would keep ~800 KiB per socket).

// A socket's deflate mode, as NegotiateDeflate returns it: 0 when permessage-deflate is off, else
// the window bits the server's messages are compressed for (8 to 15), with DeflateTakeover set
// when the socket keeps its context.
const (
	MaxWindowBits   = 15
	DeflateTakeover = 0x80
)

// CompressMin is the smallest payload sent compressed. Without context takeover a short message
// has little repetition of its own to remove, and the deflate block header and a compressor reset
// cost more than the few bytes saved; 256 bytes is where JSON chat messages start to shrink by
// a useful amount (a message whose compressed form is not smaller is sent plain anyway).
const CompressMin = 256

// historyMax is how much of what a socket with context takeover sent compressed its next
// message may refer to: the largest dictionary flate.StatelessDeflate uses.
const historyMax = 8 << 10

// deflateOffer is a permessage-deflate offer's parameters (RFC 7692 7.1).
type deflateOffer struct {
	serverNoContextTakeover bool
	serverMaxWindowBits     uint8 // 0: not asked for
}

// NegotiateDeflate returns the Sec-WebSocket-Extensions value of the 101 response and the
// socket's deflate mode for the client's first permessage-deflate offer we can honour, or ""
// and 0 if there is none (the connection is uncompressed). We keep our context only if
// takeover allows it and the offer lets us use a 15-bit window (historyMax is within it). We
// always ask the client not to take over its own context (RFC 7692 7.1.1.1 lets the server ask
// even when the client did not offer it): every incoming message then inflates with a fresh
// window, and we need no decompressor per connection. client_max_window_bits only says the
// client could limit its window: we accept any, so we do not answer with it.
func NegotiateDeflate(headers []Header, takeover bool) (string, uint8) {
	for _, h := range headers {
		if h.Name != "sec-websocket-extensions" {
			continue
		}
		for _, offer := range strings.Split(h.Value, ",") {
			params := strings.Split(offer, ";")
			if strings.TrimSpace(params[0]) != "permessage-deflate" {
				continue
			}
			o, ok := parseDeflateOffer(params[1:])
			if !ok {
				continue
			}
			resp := "permessage-deflate"
			bits := uint8(MaxWindowBits)
			if o.serverMaxWindowBits != 0 {
				bits = o.serverMaxWindowBits
				resp += "; server_max_window_bits=" + strconv.Itoa(int(bits))
			}
			mode := bits
			if takeover && !o.serverNoContextTakeover && bits == MaxWindowBits {
				mode |= DeflateTakeover
			} else {
				resp += "; server_no_context_takeover"
			}
			return resp + "; client_no_context_takeover", mode
		}
	}
	return "", 0
}

// parseDeflateOffer reads the parameters of a permessage-deflate offer; it reports false for one
// we must decline: an unknown, repeated or invalid parameter (RFC 7692 7.1).
func parseDeflateOffer(params []string) (deflateOffer, bool) {
	var o deflateOffer
	seen := map[string]bool{}
	for _, p := range params {
		name, value, hasValue := strings.Cut(strings.TrimSpace(p), "=")
		name = strings.TrimSpace(name)
		value = strings.TrimSpace(value)
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		if seen[name] {
			return o, false
		}
		seen[name] = true
		switch name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if hasValue {
				return o, false
			}
			if name == "server_no_context_takeover" {
				o.serverNoContextTakeover = true
			}
		case "server_max_window_bits":
			bits, ok := windowBits(value)
			if !ok {
				return o, false
			}
			o.serverMaxWindowBits = bits
		case "client_max_window_bits":
			if _, ok := windowBits(value); hasValue && !ok {
				return o, false
			}
		default:
			return o, false
		}
	}
	return o, true
}

// windowBits parses a window size as RFC 7692 allows it: 8 to 15, no leading zero.
func windowBits(v string) (uint8, bool) {
	switch {
	case len(v) == 1 && v[0] >= '8' && v[0] <= '9':
		return v[0] - '0', true
	case len(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5':
		return 10 + v[1] - '0', true
	}
	return 0, false
}

// DeflateTail is what a sender strips from the end of every compressed message (RFC 7692 7.2.1)
// and the receiver puts back before inflating.
var DeflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// frameWriter collects compressed bytes after room for the largest frame header.
type frameWriter struct{ b []byte }

// Write appends p; it never fails.
func (w *frameWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// windowWriters are compressors whose window is capped, for clients that limit ours
// (server_max_window_bits below 15): windowWriters[bits-8] compresses with a 2^bits-byte window.
// Each holds ~1 MiB of tables, only while a message is compressed.
var windowWriters [MaxWindowBits - 8]sync.Pool

// CompressedFrame returns a complete frame (RSV1 set) carrying data compressed for a decoder with
// a 2^bits-byte window, or nil when the compressed payload would not be smaller than data. With
// bits 15, history (what the same socket sent compressed before, with context takeover) may be
// referred to; no back-reference reaches past the window.
func CompressedFrame(op ws.OpCode, data []byte, bits uint8, history []byte) []byte {
	fw := frameWriter{b: make([]byte, ws.MaxHeaderSize-4, ws.MaxHeaderSize-4+len(data)/2+64)}
	if bits == MaxWindowBits {
		// Its references span at most 32767 bytes (its history included).
		flate.StatelessDeflate(&fw, data, false, history) // ends in a sync flush; frameWriter never fails
	} else {
		pool := &windowWriters[bits-8]
		w, _ := pool.Get().(*flate.Writer)
		if w == nil {
			w, _ = flate.NewWriterWindow(&fw, 1<<bits) // 2^8 to 2^14: in its range
		} else {
			w.Reset(&fw)
		}
		w.Write(data)
		w.Flush() // a sync flush, as the stateless one ends
		w.Reset(nil)
		pool.Put(w)
	}
	payload := fw.b[ws.MaxHeaderSize-4 : len(fw.b)-len(DeflateTail)]
	if len(payload) >= len(data) {
		return nil
	}
	hs := ws.HeaderSize(ws.Header{Length: int64(len(payload))})
	f := fw.b[ws.MaxHeaderSize-4-hs : len(fw.b)-len(DeflateTail)]
	putHeader(f, op, true, len(payload))
	return f
}

// History is what a socket with context takeover sent compressed lately: its next message may
// refer back to it. Its zero value is empty; it holds a pointer only, to keep idle sockets small.
type History struct{ b *[]byte }

// Frame is CompressedFrame with a 32 KiB window for the socket h belongs to, referring back to h
// (the caller compresses a socket's messages in the order it sends them: the client inflates
// them in that order). What is sent compressed joins h; a message sent plain does not, since the
// client does not inflate it.
func (h *History) Frame(op ws.OpCode, data []byte) []byte {
	var history []byte
	if h.b != nil {
		history = *h.b
	}
	f := CompressedFrame(op, data, MaxWindowBits, history)
	if f == nil {
		return nil
	}
	if h.b == nil {
		b := make([]byte, 0, historyMax)
		h.b = &b
	}
	kept := *h.b
	if len(data) >= historyMax {
		kept = append(kept[:0], data[len(data)-historyMax:]...)
	} else {
		keep := min(len(kept), historyMax-len(data))
		kept = append(kept[:copy(kept, kept[len(kept)-keep:])], data...)
	}
	*h.b = kept
	return f
}

// inflateSource reads a compressed message and then DeflateTail, as one stream; it is an
// io.ByteReader so that flate does not wrap it in a bufio.Reader.
type inflateSource struct {
	p    []byte
	tail int // bytes of DeflateTail already read
}

func (s *inflateSource) Read(b []byte) (int, error) {
	if len(s.p) > 0 {
		n := copy(b, s.p)
		s.p = s.p[n:]
		return n, nil
	}
	if s.tail == len(DeflateTail) {
		return 0, io.EOF
	}
	n := copy(b, DeflateTail[s.tail:])
	s.tail += n
	return n, nil
}

func (s *inflateSource) ReadByte() (byte, error) {
	var b [1]byte
	if _, err := s.Read(b[:]); err != nil {
		return 0, err
	}
	return b[0], nil
}

// inflater is a pooled decompressor (~40 KiB with its window), held only while a message inflates.
type inflater struct {
	src inflateSource
	r   io.ReadCloser // a flate reader, also a flate.Resetter
}

var inflaters = sync.Pool{New: func() any {
	z := new(inflater)
	z.r = flate.NewReader(&z.src)
	return z
}}

// inflate decompresses a permessage-deflate message into a buffer from Buffers (the caller gives
// it back). It never inflates more than max+1 bytes, whatever the input claims: more than max
// is 1009. A stream that is not valid deflate is 1007, as `ws` and browsers answer it.
func inflate(data []byte, max int64) (*[]byte, ws.StatusCode) {
	z := inflaters.Get().(*inflater)
	defer inflaters.Put(z)
	z.src = inflateSource{p: data}
	z.r.(flate.Resetter).Reset(&z.src, nil)
	out := Buffers.Get(minMsgBuf)
	b := (*out)[:0]
	for {
		if len(b) == cap(b) {
			out = Buffers.Grow(out, len(b)+1, int(min(max+1, math.MaxInt)))
			b = *out
		}
		limit := min(int64(cap(b)), max+1) // never past max+1: a bomb stops here
		n, err := z.r.Read(b[len(b):limit])
		b = b[:len(b)+n]
		*out = b
		if int64(len(b)) > max {
			Buffers.Put(out)
			return nil, ws.StatusMessageTooBig
		}
		if err == nil {
			continue
		}
		z.src = inflateSource{}
		// The stream ends in a sync flush, not a final block: running out of input there is
		// its normal end (io.ErrUnexpectedEOF), as is a final block (io.EOF).
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			return out, 0
		}
		Buffers.Put(out)
		return nil, ws.StatusInvalidFramePayloadData
	}
}
