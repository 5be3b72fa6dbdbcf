package broker

import (
	"errors"
	"github.com/klauspost/compress/flate"
	"io"
	"strings"
	"sync"

	"github.com/gobwas/ws"
)

// permessage-deflate (RFC 7692), always without context takeover in both directions: every
// message is compressed and inflated on its own, so a connection holds no compressor, no
// decompressor and no 32 KiB window between messages, and a broadcast compresses once for all its
// subscribers. github.com/klauspost/compress/flate rather than compress/flate: measured here on a
// 1 KiB chat-like JSON message, its stateless deflate (no compressor to keep or reset) took
// ~9.5 µs and gave 384 bytes, compress/flate's pooled BestSpeed writer ~17 µs and 396 bytes; its
// inflate ~6.2 µs against ~10 µs.

// deflateResponse is the extension we answer with: we never take over our context, and we ask
// the client not to take over its own (RFC 7692 7.1.1.1 lets the server ask even when the
// client did not offer it), so that every incoming message inflates with a fresh window.
const deflateResponse = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// compressMin is the smallest payload sent compressed. Without context takeover a short message
// has little repetition of its own to remove, and the deflate block header and a compressor reset
// cost more than the few bytes saved; 256 bytes is where JSON chat messages start to shrink by
// a useful amount (a message whose compressed form is not smaller is sent plain anyway).
const compressMin = 256

// negotiateDeflate returns the Sec-WebSocket-Extensions value of the 101 response: deflateResponse
// if the client offers permessage-deflate with parameters we can honour (its first such offer),
// else "" (the connection is uncompressed).
func negotiateDeflate(headers []Header) string {
	for _, h := range headers {
		if h.Name != "sec-websocket-extensions" {
			continue
		}
		for _, offer := range strings.Split(h.Value, ",") {
			params := strings.Split(offer, ";")
			if strings.TrimSpace(params[0]) == "permessage-deflate" && acceptableOffer(params[1:]) {
				return deflateResponse
			}
		}
	}
	return ""
}

// acceptableOffer reports whether we can honour a permessage-deflate offer with params (RFC 7692
// 7.1): an offer with an unknown, repeated or invalid parameter is declined, as is one that limits
// our window below 15 bits (the deflater always uses a 32 KiB window). client_max_window_bits
// only says the client could limit its window: we accept any, so we do not answer with it.
func acceptableOffer(params []string) bool {
	seen := map[string]bool{}
	for _, p := range params {
		name, value, hasValue := strings.Cut(strings.TrimSpace(p), "=")
		name = strings.TrimSpace(name)
		value = strings.TrimSpace(value)
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		if seen[name] {
			return false
		}
		seen[name] = true
		switch name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if hasValue {
				return false
			}
		case "server_max_window_bits":
			if value != "15" {
				return false
			}
		case "client_max_window_bits":
			if hasValue && !validWindowBits(value) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// validWindowBits reports whether v is a window size RFC 7692 allows: 8 to 15, no leading zero.
func validWindowBits(v string) bool {
	return len(v) == 1 && v[0] >= '8' && v[0] <= '9' || len(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5'
}

// deflateTail is what a sender strips from the end of every compressed message (RFC 7692 7.2.1)
// and the receiver puts back before inflating.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// frameWriter collects compressed bytes after room for the largest frame header.
type frameWriter struct{ b []byte }

func (w *frameWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// compressedFrame returns a complete frame (RSV1 set) carrying data compressed, or nil when the
// compressed payload would not be smaller than data.
func compressedFrame(op ws.OpCode, data []byte) []byte {
	fw := frameWriter{b: make([]byte, ws.MaxHeaderSize-4, ws.MaxHeaderSize-4+len(data)/2+64)}
	flate.StatelessDeflate(&fw, data, false, nil) // ends in a sync flush; frameWriter never fails
	payload := fw.b[ws.MaxHeaderSize-4 : len(fw.b)-len(deflateTail)]
	if len(payload) >= len(data) {
		return nil
	}
	hs := ws.HeaderSize(ws.Header{Length: int64(len(payload))})
	f := fw.b[ws.MaxHeaderSize-4-hs : len(fw.b)-len(deflateTail)]
	putHeader(f, op, true, len(payload))
	return f
}

// inflateSource reads a compressed message and then deflateTail, as one stream; it is an
// io.ByteReader so that flate does not wrap it in a bufio.Reader.
type inflateSource struct {
	p    []byte
	tail int // bytes of deflateTail already read
}

func (s *inflateSource) Read(b []byte) (int, error) {
	if len(s.p) > 0 {
		n := copy(b, s.p)
		s.p = s.p[n:]
		return n, nil
	}
	if s.tail == len(deflateTail) {
		return 0, io.EOF
	}
	n := copy(b, deflateTail[s.tail:])
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

// inflate decompresses a permessage-deflate message into a buffer from msgPool (the caller gives
// it back). It never inflates more than max+1 bytes, whatever the input claims: more than max
// is 1009. A stream that is not valid deflate is 1007, as `ws` and browsers answer it.
func inflate(data []byte, max int64) (*[]byte, ws.StatusCode) {
	z := inflaters.Get().(*inflater)
	defer inflaters.Put(z)
	z.src = inflateSource{p: data}
	z.r.(flate.Resetter).Reset(&z.src, nil)
	out := msgPool.Get().(*[]byte)
	b := (*out)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		limit := min(int64(cap(b)), max+1) // never past max+1: a bomb stops here
		n, err := z.r.Read(b[len(b):limit])
		b = b[:len(b)+n]
		*out = b
		if int64(len(b)) > max {
			releaseBuf(out)
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
		releaseBuf(out)
		return nil, ws.StatusInvalidFramePayloadData
	}
}
