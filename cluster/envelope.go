package cluster

import (
	"encoding/binary"
	"errors"
)

// The envelope: what one node publishes to the others, in binary. A header, then a body that
// depends on the kind:
//
//	version u8 | kind u8 | flags u8 | origin slot uvarint | origin instance u64 (LE) | sent at (µs, Unix) uvarint | body
//
// The channel a message concerns is the engine topic it travels on, not in the body. A receiver
// skips what it cannot decode (counted), so that a later version can add kinds.
const envelopeVersion = 1

// The kinds of envelope, and the topic each travels on.
const (
	kindChannel     = 1  // channel topic: except uvarint | payload
	kindSend        = 2  // node topic: socket id uvarint | payload
	kindClose       = 3  // node topic: socket id uvarint | code u16 (LE) | reason
	kindToken       = 4  // node topic: socket id uvarint | token (flagToken: present, else cleared)
	kindSubscribe   = 5  // node topic: socket id uvarint | channel
	kindUnsubscribe = 6  // node topic: socket id uvarint | channel
	kindCopy        = 7  // channel topic (from): the channel to copy to
	kindHeartbeat   = 8  // control topic: slot count uvarint | slots uvarint…
	kindCountQuery  = 9  // channel topic: request id uvarint; or control topic: request id uvarint | channel
	kindCountAnswer = 10 // node topic (the asker's): request id uvarint | count uvarint
	kindLeaving     = 11 // control topic: empty
)

const (
	flagText  = 1 << 0 // the payload is a text message
	flagToken = 1 << 1 // kindToken: a token is set (else it is cleared)
	flagAsk   = 1 << 2 // kindHeartbeat: the sender has subscribed again after a loss; answer with a heartbeat at once
)

// maxHeader bounds an envelope's header: 3 bytes, a slot, the instance, a time.
const maxHeader = 3 + binary.MaxVarintLen32 + 8 + binary.MaxVarintLen64

// envelope is a decoded envelope. Its body is the tail of the bytes it was decoded from.
type envelope struct {
	kind     byte
	flags    byte
	slot     uint32 // the origin's slot: where answers go
	instance uint64 // the origin node (random per process start)
	sentAt   int64  // µs since the Unix epoch, by the origin's clock

	id    uint64 // socket id (except for kindChannel; request id for counts)
	code  uint16
	count uint64
	slots []uint32
	body  []byte // payload, reason, token, channel
}

// header is the part of an envelope that the sender fills in the same way for every kind.
type header struct {
	slot     uint32
	instance uint64
	sentAt   int64
}

// appendHeader appends an envelope's header for kind with flags to dst.
func (h header) appendHeader(dst []byte, kind, flags byte) []byte {
	dst = append(dst, envelopeVersion, kind, flags)
	dst = binary.AppendUvarint(dst, uint64(h.slot))
	dst = binary.LittleEndian.AppendUint64(dst, h.instance)
	return binary.AppendUvarint(dst, uint64(h.sentAt))
}

// appendIDBody appends an envelope whose body is an id (uvarint) then bytes: kindChannel,
// kindSend, kindToken, kindSubscribe, kindUnsubscribe.
func (h header) appendIDBody(dst []byte, kind, flags byte, id uint64, body []byte) []byte {
	dst = h.appendHeader(dst, kind, flags)
	dst = binary.AppendUvarint(dst, id)
	return append(dst, body...)
}

func (h header) appendClose(dst []byte, id uint64, code uint16, reason []byte) []byte {
	dst = h.appendHeader(dst, kindClose, 0)
	dst = binary.AppendUvarint(dst, id)
	dst = binary.LittleEndian.AppendUint16(dst, code)
	return append(dst, reason...)
}

func (h header) appendCopy(dst []byte, to []byte) []byte {
	return append(h.appendHeader(dst, kindCopy, 0), to...)
}

func (h header) appendHeartbeat(dst []byte, flags byte, slots []uint32) []byte {
	dst = h.appendHeader(dst, kindHeartbeat, flags)
	dst = binary.AppendUvarint(dst, uint64(len(slots)))
	for _, s := range slots {
		dst = binary.AppendUvarint(dst, uint64(s))
	}
	return dst
}

func (h header) appendCountQuery(dst []byte, req uint64, channel []byte) []byte {
	return append(binary.AppendUvarint(h.appendHeader(dst, kindCountQuery, 0), req), channel...)
}

func (h header) appendCountAnswer(dst []byte, req, count uint64) []byte {
	dst = binary.AppendUvarint(h.appendHeader(dst, kindCountAnswer, 0), req)
	return binary.AppendUvarint(dst, count)
}

func (h header) appendLeaving(dst []byte) []byte { return h.appendHeader(dst, kindLeaving, 0) }

var errMalformed = errors.New("malformed envelope")

// decode reads an envelope from p; what it returns points into p. It returns an error, never
// panics, on anything that is not an envelope of this version.
func decode(p []byte) (envelope, error) {
	var e envelope
	if len(p) < 3 || p[0] != envelopeVersion {
		return e, errMalformed
	}
	e.kind, e.flags = p[1], p[2]
	r := reader{p: p[3:]}
	slot := r.uvarint()
	if slot >= 1<<slotBits {
		return e, errMalformed
	}
	e.slot = uint32(slot)
	e.instance = r.uint64()
	e.sentAt = int64(r.uvarint())
	switch e.kind {
	case kindChannel, kindSend, kindToken, kindSubscribe, kindUnsubscribe:
		e.id = r.uvarint()
	case kindClose:
		e.id = r.uvarint()
		e.code = r.uint16()
	case kindCopy, kindLeaving:
	case kindHeartbeat:
		n := r.uvarint()
		if n > uint64(len(r.p)) { // each slot takes a byte at least
			return e, errMalformed
		}
		e.slots = make([]uint32, 0, n)
		for range n {
			s := r.uvarint()
			if s >= 1<<slotBits {
				return e, errMalformed
			}
			e.slots = append(e.slots, uint32(s))
		}
	case kindCountQuery:
		e.id = r.uvarint()
	case kindCountAnswer:
		e.id = r.uvarint()
		e.count = r.uvarint()
	default:
		return e, errMalformed
	}
	if r.bad {
		return e, errMalformed
	}
	e.body = r.p
	return e, nil
}

// reader reads the fields of an envelope; bad is set, and zeros returned, once one is missing.
type reader struct {
	p   []byte
	bad bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.p)
	if n <= 0 {
		r.bad = true
		r.p = nil
		return 0
	}
	r.p = r.p[n:]
	return v
}

func (r *reader) uint64() uint64 {
	if len(r.p) < 8 {
		r.bad = true
		r.p = nil
		return 0
	}
	v := binary.LittleEndian.Uint64(r.p)
	r.p = r.p[8:]
	return v
}

func (r *reader) uint16() uint16 {
	if len(r.p) < 2 {
		r.bad = true
		r.p = nil
		return 0
	}
	v := binary.LittleEndian.Uint16(r.p)
	r.p = r.p[2:]
	return v
}
