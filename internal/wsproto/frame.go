package wsproto

import (
	"encoding/binary"
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

	msgOp      ws.OpCode // OpText or OpBinary while a data message is in progress, else 0
	compressed bool      // that message is compressed (RSV1 on its first frame)
	msg        *[]byte   // its payload so far (from Buffers), nil when none
	checked    int       // leading bytes of *msg known to be complete valid UTF-8 (text)

	held *[]byte // the buffer (from Buffers) holding the message being delivered, if not taken
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
			if code, stop := p.deliver(p.op, nil, chunk, 0, s); code != 0 || stop {
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

// Spare returns room for the next n payload bytes of the current data frame at the end of the
// message being reassembled, so that a reader can read them there instead of copying them from
// its own buffer (FeedSpare then parses them); nil unless at least n bytes of the frame's payload
// remain (a read of fewer would also take what follows the frame).
func (p *Parser) Spare(n int) []byte {
	if n <= 0 || !p.inFrame || p.op.IsControl() || p.remain < int64(n) {
		return nil
	}
	if p.msg == nil {
		p.msg = Buffers.Get(n)
	}
	have := len(*p.msg)
	if cap(*p.msg)-have < n {
		p.msg = Buffers.Grow(p.msg, have+n, int(int64(have)+p.remain))
	}
	return (*p.msg)[have : have+n]
}

// FeedSpare parses the first n bytes of the room Spare returned, which a reader filled, as Feed
// would have parsed them.
func (p *Parser) FeedSpare(n int, s FrameSink) (code ws.StatusCode, stop bool) {
	have := len(*p.msg)
	*p.msg = (*p.msg)[:have+n]
	ws.Cipher((*p.msg)[have:], p.mask, p.off)
	p.remain -= int64(n)
	p.off += n
	return p.appended(s)
}

// appended checks the data frame bytes just added to the message (text fails fast: invalid UTF-8
// closes the connection as soon as it arrives, not at the end of the message; a code point split
// across reads or fragments waits for its end) and delivers the message at its end. It reports
// stop as Feed does.
func (p *Parser) appended(s FrameSink) (code ws.StatusCode, stop bool) {
	if p.msgOp == ws.OpText && !p.compressed {
		n, ok := utf8Prefix((*p.msg)[p.checked:])
		if !ok {
			return ws.StatusInvalidFramePayloadData, true
		}
		p.checked += n
	}
	if p.remain > 0 {
		return 0, false
	}
	p.inFrame = false
	if !p.fin {
		return 0, false
	}
	op, own, checked := p.msgOp, p.msg, p.checked
	p.msgOp, p.msg, p.checked = 0, nil, 0
	code, stop = p.deliver(op, own, *own, checked, s)
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
				have = int64(len(*p.msg))
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

// deliver inflates a complete compressed data message, checks it (its first checked bytes are
// known valid UTF-8) and hands it to s. own is the buffer from Buffers that holds data, nil when
// data lies where it was read; deliver gives it back unless s takes it (TakeMessage).
func (p *Parser) deliver(op ws.OpCode, own *[]byte, data []byte, checked int, s FrameSink) (ws.StatusCode, bool) {
	p.held = own
	if p.compressed {
		p.compressed = false
		out, code := inflate(data, p.Max)
		p.giveBackHeld()
		if code != 0 {
			return code, true
		}
		p.held, data, checked = out, *out, 0
	}
	if op == ws.OpText && !utf8.Valid(data[checked:]) {
		p.giveBackHeld()
		return ws.StatusInvalidFramePayloadData, true
	}
	more := s.Message(op, data)
	p.giveBackHeld()
	return 0, !more
}

// TakeMessage hands the caller the buffer that holds the message being delivered, to give back to
// Buffers (Put) once done with it, so that a sink that keeps a large message need not copy it; nil
// when the message lies where it was read (in the caller's read buffer, valid only during the
// call). Only during FrameSink.Message, once.
func (p *Parser) TakeMessage() *[]byte {
	b := p.held
	p.held = nil
	return b
}

// giveBackHeld gives the buffer of the message just delivered back to Buffers, unless the sink
// took it.
func (p *Parser) giveBackHeld() {
	if p.held != nil {
		Buffers.Put(p.held)
		p.held = nil
	}
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

// appendChunk appends chunk to the message being reassembled. A full buffer grows to about twice
// its size (Buffers.Grow), but not past the end of the current frame (p.remain more bytes): a
// large message is copied about once, and the buffer holds at most about twice what has arrived.
func (p *Parser) appendChunk(chunk []byte) {
	n := len(chunk)
	if p.msg == nil {
		p.msg = Buffers.Get(int(min(int64(max(n, minMsgBuf)), int64(n)+p.remain)))
	} else if n += len(*p.msg); n > cap(*p.msg) {
		p.msg = Buffers.Grow(p.msg, n, int(int64(n)+p.remain))
	}
	*p.msg = append(*p.msg, chunk...)
}

// releaseMsg gives the message buffer back.
func (p *Parser) releaseMsg() {
	if p.msg == nil {
		return
	}
	Buffers.Put(p.msg)
	p.msg = nil
	p.checked = 0
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

// Reset drops any partial state (the connection is gone).
func (p *Parser) Reset() {
	p.releaseMsg()
	p.ctl = nil
	p.inFrame = false
	p.hdrLen = 0
	p.msgOp = 0
	p.compressed = false
	p.checked = 0
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
