package wsproto

import (
	"encoding/binary"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// This file holds the RFC 6455 frame layer: an incremental parser for client frames (bytes may
// arrive split anywhere) and the encoder for server frames.

// FrameSink receives what Parser decodes. Byte slices are valid only during the call.
type FrameSink interface {
	// Message is a complete data message (OpText or OpBinary); text is valid UTF-8. It returns
	// false to stop the parser. During the call the sink may take the buffer that holds p
	// (Parser.TakeMessage) to keep it.
	Message(op ws.OpCode, p []byte) bool
	// Ping is a ping frame's payload.
	Ping(p []byte)
	// Close is a valid close frame's payload: empty, or a valid code and a UTF-8 reason. The
	// parser stops after it.
	Close(p []byte)
}

// minMsgBuf is the least a message that spans reads or frames starts with, unless its frame ends
// sooner.
const minMsgBuf = 4096

// Parser decodes client frames incrementally. Its zero value (plus Max) is ready; it holds no
// buffer between messages except a header of at most 14 bytes.
type Parser struct {
	Max     int64 // largest message accepted (after reassembly, and after inflating)
	Deflate bool  // permessage-deflate was negotiated: RSV1 marks a compressed message

	hdr    [ws.MaxHeaderSize]byte // a header split across reads
	hdrLen int

	inFrame bool // a header was parsed; remain payload bytes follow
	fin     bool
	op      ws.OpCode
	mask    [4]byte
	remain  int64
	off     int // payload bytes of the current frame already seen (mask offset)

	ctl []byte // a control frame's payload split across reads

	msgOp      ws.OpCode   // OpText or OpBinary while a data message is in progress, else 0
	compressed bool        // that message is compressed (RSV1 on its first frame)
	msg        *reassembly // its payload so far, nil when none
}

// reassembly is a message on its way in: its payload in buffers from Buffers (newPart), in order.
type reassembly struct {
	parts   []*[]byte
	size    int64    // the bytes in parts
	checked int      // leading bytes of the last part known to be complete valid UTF-8 (text)
	taken   bool     // the sink took the parts of the message being delivered (TakeMessage)
	views   [][]byte // the parts' bytes, for PartsSink
}

// reassemblies keeps a connection's Parser small: only a message in progress has one.
var reassemblies = sync.Pool{New: func() any {
	return &reassembly{parts: make([]*[]byte, 0, 8)} // a 16 MiB message read 64 KiB at a time takes 9
}}

// PartsSink is a FrameSink that takes a message reassembled in several buffers as it is, rather
// than copied into one buffer first (the Node bridge copies it into JS memory anyway).
type PartsSink interface {
	FrameSink
	// MessageParts is Message for a message whose bytes are parts, in order (none empty, each but
	// the last ending with a whole UTF-8 code point).
	MessageParts(op ws.OpCode, parts [][]byte) bool
}

// headerLen is the size of a client frame header given its second byte.
func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// Feed parses b, which the parser may modify (payloads are unmasked in place). It returns a
// close code != 0 when the peer broke the protocol (the connection must be closed with it), and
// stop = true when no more input must be fed (error, close frame received or sink stopped).
func (p *Parser) Feed(b []byte, s FrameSink) (code ws.StatusCode, stop bool) {
	for len(b) > 0 || (p.inFrame && p.remain == 0) {
		if !p.inFrame {
			var h []byte
			if p.hdrLen == 0 && len(b) >= 2 {
				if n := headerLen(b[1]); len(b) >= n {
					h, b = b[:n], b[n:]
				}
			}
			for h == nil {
				need := 2
				if p.hdrLen >= 2 {
					need = headerLen(p.hdr[1])
				}
				if p.hdrLen == need {
					h = p.hdr[:need]
					p.hdrLen = 0
					break
				}
				if len(b) == 0 {
					return 0, false
				}
				k := copy(p.hdr[p.hdrLen:need], b)
				p.hdrLen += k
				b = b[k:]
			}
			if code := p.start(h); code != 0 {
				return code, true
			}
		}

		k := len(b)
		if int64(k) > p.remain {
			k = int(p.remain)
		}
		if k == 0 && p.remain > 0 {
			continue // header only so far
		}
		chunk := b[:k]
		b = b[k:]
		ws.Cipher(chunk, p.mask, p.off)
		whole := p.off == 0 && int64(k) == p.remain // the whole payload is in chunk
		p.remain -= int64(k)
		p.off += k

		if p.op.IsControl() {
			if !whole {
				if p.ctl == nil {
					p.ctl = make([]byte, 0, ws.MaxControlFramePayloadSize)
				}
				p.ctl = append(p.ctl, chunk...)
			}
			if p.remain > 0 {
				continue
			}
			payload := chunk
			if !whole {
				payload = p.ctl
			}
			p.inFrame = false
			code, stop := p.control(payload, s)
			p.ctl = nil
			if code != 0 || stop {
				return code, true
			}
			continue
		}

		// Data frame.
		if whole && p.fin && p.op != ws.OpContinuation {
			// The common case: a whole unfragmented message in one read, delivered in place.
			p.inFrame = false
			p.msgOp = 0
			if code, stop := p.deliver(p.op, chunk, 0, s); code != 0 || stop {
				return code, true
			}
			continue
		}
		p.appendChunk(chunk)
		if code, stop := p.appended(s); stop {
			return code, true
		}
	}
	return 0, false
}

// Spare returns room for at most the next n payload bytes of the current data frame at the end
// of the message being reassembled, so that a reader can read them there instead of copying them
// from its own buffer (FeedSpare then parses them); nil unless at least n bytes of the frame's
// payload remain (a read of fewer would also take what follows the frame).
func (p *Parser) Spare(n int) []byte {
	if n <= 0 || !p.inFrame || p.op.IsControl() || p.remain < int64(n) {
		return nil
	}
	if p.room() < min(n, minMsgBuf) {
		p.newPart(n, int(p.remain))
	}
	last := p.msg.last()
	return last[len(last):min(cap(last), len(last)+n)]
}

// FeedSpare parses the first n bytes of the room Spare returned, which a reader filled, as Feed
// would have parsed them.
func (p *Parser) FeedSpare(n int, s FrameSink) (code ws.StatusCode, stop bool) {
	last := p.msg.parts[len(p.msg.parts)-1]
	have := len(*last)
	*last = (*last)[:have+n]
	ws.Cipher((*last)[have:], p.mask, p.off)
	p.remain -= int64(n)
	p.off += n
	p.msg.size += int64(n)
	return p.appended(s)
}

// appended checks the data frame bytes just added to the message (text fails fast: invalid UTF-8
// closes the connection as soon as it arrives, not at the end of the message; a code point split
// across reads or fragments waits for its end) and delivers the message at its end. It reports
// stop as Feed does.
func (p *Parser) appended(s FrameSink) (code ws.StatusCode, stop bool) {
	m := p.msg
	if p.msgOp == ws.OpText && !p.compressed {
		n, ok := utf8Prefix(m.last()[m.checked:])
		if !ok {
			return ws.StatusInvalidFramePayloadData, true
		}
		m.checked += n
	}
	if p.remain > 0 {
		return 0, false
	}
	p.inFrame = false
	if !p.fin {
		return 0, false
	}
	op := p.msgOp
	p.msgOp = 0
	code, stop = p.deliver(op, nil, m.checked, s)
	return code, code != 0 || stop
}

// start validates a complete frame header and makes it the current frame.
func (p *Parser) start(h []byte) ws.StatusCode {
	b0, b1 := h[0], h[1]
	fin := b0&0x80 != 0
	op := ws.OpCode(b0 & 0x0f)
	rsv := b0 & 0x70
	if op.IsReserved() || b1&0x80 == 0 {
		return ws.StatusProtocolError // reserved opcode, unmasked client frame
	}
	if rsv != 0 && (rsv != 0x40 || !p.Deflate || op.IsControl() || op == ws.OpContinuation) {
		// RSV2/3, or RSV1 without permessage-deflate or on a frame other than a message's first.
		return ws.StatusProtocolError
	}
	length := int64(b1 & 0x7f)
	i := 2
	switch length {
	case 126:
		length = int64(binary.BigEndian.Uint16(h[2:]))
		i = 4
	case 127:
		u := binary.BigEndian.Uint64(h[2:])
		if u>>63 != 0 {
			return ws.StatusProtocolError
		}
		length = int64(u)
		i = 10
	}
	copy(p.mask[:], h[i:i+4])

	if op.IsControl() {
		if !fin || length > ws.MaxControlFramePayloadSize {
			return ws.StatusProtocolError
		}
	} else {
		var have int64
		if op == ws.OpContinuation {
			if p.msgOp == 0 {
				return ws.StatusProtocolError
			}
			if p.msg != nil {
				have = p.msg.size
			}
		} else {
			if p.msgOp != 0 {
				return ws.StatusProtocolError
			}
			p.msgOp = op
			p.compressed = rsv != 0
		}
		if length > p.Max-have {
			return ws.StatusMessageTooBig
		}
	}
	p.inFrame = true
	p.fin = fin
	p.op = op
	p.remain = length
	p.off = 0
	return 0
}

// deliver inflates a complete compressed data message, checks it and hands it to s: data where
// it was read, or, when data is nil, the message in p.msg, whose last part is known valid UTF-8 up
// to checked (the others are whole). The parts go back to Buffers unless s takes them.
func (p *Parser) deliver(op ws.OpCode, data []byte, checked int, s FrameSink) (ws.StatusCode, bool) {
	if data != nil && !p.compressed {
		if op == ws.OpText && !utf8.Valid(data[checked:]) {
			return ws.StatusInvalidFramePayloadData, true
		}
		return 0, !s.Message(op, data)
	}
	defer p.releaseMsg()
	if p.compressed {
		p.compressed = false
		if data == nil {
			data = p.joined()
		}
		out, code := inflate(data, p.Max)
		p.releaseMsg()
		if code != 0 {
			return code, true
		}
		p.addPart(out)
		checked = 0
	}
	m := p.msg
	if op == ws.OpText && !utf8.Valid(m.last()[checked:]) {
		return ws.StatusInvalidFramePayloadData, true
	}
	ps, ok := s.(PartsSink)
	if !ok || len(m.parts) == 1 {
		return 0, !s.Message(op, p.joined())
	}
	for _, b := range m.parts {
		if len(*b) > 0 {
			m.views = append(m.views, *b)
		}
	}
	more := ps.MessageParts(op, m.views)
	clear(m.views)
	m.views = m.views[:0]
	return 0, !more
}

// joined returns the message in p.msg as one slice: its only part, or its parts copied into a new
// buffer that replaces them.
func (p *Parser) joined() []byte {
	m := p.msg
	if len(m.parts) == 1 {
		return *m.parts[0]
	}
	b := Buffers.Join(m.parts)
	p.releaseMsg()
	p.addPart(b)
	return *b
}

// TakeMessage hands the caller the buffers that hold the message being delivered, in order, to
// give back to Buffers (Put) once done with them, so that a sink that keeps a large message need
// not copy it; nil when the message lies where it was read (in the caller's read buffer, valid
// only during the call). Only during FrameSink.Message or PartsSink.MessageParts, once.
func (p *Parser) TakeMessage() []*[]byte {
	if p.msg == nil || p.msg.taken {
		return nil
	}
	p.msg.taken = true
	return slices.Clone(p.msg.parts)
}

// releaseMsg gives the message's buffers back to Buffers, unless the sink took them.
func (p *Parser) releaseMsg() {
	m := p.msg
	if m == nil {
		return
	}
	if !m.taken {
		for _, b := range m.parts {
			Buffers.Put(b)
		}
	}
	clear(m.parts)
	*m = reassembly{parts: m.parts[:0], views: m.views}
	reassemblies.Put(m)
	p.msg = nil
}

// control handles a complete control frame.
func (p *Parser) control(payload []byte, s FrameSink) (ws.StatusCode, bool) {
	switch p.op {
	case ws.OpPing:
		s.Ping(payload)
	case ws.OpClose:
		if code := checkClosePayload(payload); code != 0 {
			return code, true
		}
		s.Close(payload)
		return 0, true
	}
	// Pong: unsolicited or not, ignored.
	return 0, false
}

// appendChunk appends chunk to the message being reassembled: to its last buffer if it fits
// there whole, else to a new one (newPart).
func (p *Parser) appendChunk(chunk []byte) {
	n := len(chunk)
	if p.msg == nil || p.room() < n {
		p.newPart(n, int(int64(n)+p.remain))
	}
	last := p.msg.parts[len(p.msg.parts)-1]
	*last = append(*last, chunk...)
	p.msg.size += int64(n)
}

// room is the free room in the last buffer of the message being reassembled (0 if none).
func (p *Parser) room() int {
	if p.msg == nil {
		return 0
	}
	last := p.msg.last()
	return cap(last) - len(last)
}

// last returns the last part of m.
func (m *reassembly) last() []byte { return *m.parts[len(m.parts)-1] }

// newPart adds a buffer to the message being reassembled, with room for need bytes: about as large
// as the message so far (at least minMsgBuf), but not past the current frame's end (limit more
// bytes) unless need is. Nothing is copied to grow a message, and its buffers hold at most about
// twice what has arrived. A code point cut at the end of the last buffer moves to the new one, so
// that each part but the last holds whole code points.
func (p *Parser) newPart(need, limit int) {
	var tail []byte
	size := 0
	if m := p.msg; m != nil {
		size = int(m.size)
		if k := len(m.parts); k > 0 && p.msgOp == ws.OpText && !p.compressed {
			last := m.parts[k-1]
			tail = (*last)[m.checked:] // appended checked the rest
			*last = (*last)[:m.checked]
		}
	}
	b := Buffers.Get(len(tail) + max(need, min(max(size, minMsgBuf), limit)))
	*b = append(*b, tail...)
	p.addPart(b)
}

// addPart appends b, holding what comes next of the message, to the message's buffers.
func (p *Parser) addPart(b *[]byte) {
	if p.msg == nil {
		p.msg = reassemblies.Get().(*reassembly)
	}
	p.msg.parts = append(p.msg.parts, b)
	p.msg.checked = 0
}

// utf8Prefix returns how many leading bytes of b are complete, valid UTF-8, and whether the
// rest (the start of a code point cut by the end of b) can still become valid.
func utf8Prefix(b []byte) (int, bool) {
	if utf8.Valid(b) {
		return len(b), true
	}
	// Invalid, or ending inside a code point: look for a lead byte in the last three bytes.
	for i := len(b) - 1; i >= 0 && i >= len(b)-3; i-- {
		if b[i] < utf8.RuneSelf {
			break
		}
		if b[i] >= 0xC0 {
			if !utf8.FullRune(b[i:]) && utf8.Valid(b[:i]) {
				return i, true
			}
			break
		}
	}
	return 0, false
}

// InMessage reports whether a data message has begun and not yet been delivered.
func (p *Parser) InMessage() bool { return p.msgOp != 0 }

// Reset drops any partial state (the connection is gone).
func (p *Parser) Reset() {
	p.releaseMsg()
	p.ctl = nil
	p.inFrame = false
	p.hdrLen = 0
	p.msgOp = 0
	p.compressed = false
}

// checkClosePayload validates a close frame payload received from a client.
func checkClosePayload(p []byte) ws.StatusCode {
	switch {
	case len(p) == 0:
		return 0
	case len(p) == 1:
		return ws.StatusProtocolError
	}
	if !ValidCloseCode(ws.StatusCode(binary.BigEndian.Uint16(p))) {
		return ws.StatusProtocolError
	}
	if !utf8.Valid(p[2:]) {
		return ws.StatusInvalidFramePayloadData
	}
	return 0
}

// ValidCloseCode reports whether a peer may send code in a close frame (RFC 6455 7.4 and the
// IANA registry): 1000-1003, 1007-1014, 3000-4999.
func ValidCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// EncodeFrame returns a complete unmasked server frame: one allocation, header then payload.
func EncodeFrame(op ws.OpCode, data []byte) []byte {
	var h [ws.MaxHeaderSize - 4]byte // a server frame has no mask key
	hs := putHeader(h[:], op, false, len(data))
	// Appending past the header's capacity allocates the frame without zeroing it first (make would
	// clear every byte that the copy then overwrites).
	return append(h[:hs:hs], data...)
}

// AppendFrame appends a complete unmasked server frame to b.
func AppendFrame(b []byte, op ws.OpCode, data []byte) []byte {
	var h [ws.MaxHeaderSize - 4]byte
	hs := putHeader(h[:], op, false, len(data))
	return append(append(b, h[:hs]...), data...)
}

// FrameHeader returns the header of a complete unmasked server frame with an n-byte payload.
func FrameHeader(op ws.OpCode, n int) []byte {
	h := make([]byte, ws.MaxHeaderSize-4)
	return h[:putHeader(h, op, false, n)]
}

// FrameLen is the size of an unmasked server frame with an n-byte payload.
func FrameLen(n int) int {
	var h [ws.MaxHeaderSize - 4]byte
	return putHeader(h[:], ws.OpText, false, n) + n
}

// putHeader writes the header of a final unmasked frame with an n-byte payload at the start of
// f and returns its size; rsv1 marks a compressed message (permessage-deflate).
func putHeader(f []byte, op ws.OpCode, rsv1 bool, n int) int {
	f[0] = 0x80 | byte(op)
	if rsv1 {
		f[0] |= 0x40
	}
	switch {
	case n <= 125:
		f[1] = byte(n)
		return 2
	case n <= 0xFFFF:
		f[1] = 126
		binary.BigEndian.PutUint16(f[2:], uint16(n))
		return 4
	default:
		f[1] = 127
		binary.BigEndian.PutUint64(f[2:], uint64(n))
		return 10
	}
}

// MaxCloseReason is the longest close reason: a control frame payload is at most 125 bytes.
const MaxCloseReason = ws.MaxControlFramePayloadSize - 2

// CloseFrame encodes a close frame with code (0: empty payload) and reason (at most
// MaxCloseReason bytes; ignored when code is 0).
func CloseFrame(code ws.StatusCode, reason []byte) []byte {
	if code == 0 {
		return EncodeFrame(ws.OpClose, nil)
	}
	var p [ws.MaxControlFramePayloadSize]byte
	binary.BigEndian.PutUint16(p[:], uint16(code))
	n := copy(p[2:], reason)
	return EncodeFrame(ws.OpClose, p[:2+n])
}

// PingFrame is the idle ping (shared: frames are never modified once queued).
var PingFrame = EncodeFrame(ws.OpPing, nil)
