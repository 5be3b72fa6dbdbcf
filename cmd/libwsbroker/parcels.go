package main

import (
	"encoding/binary"
	"math"
	"sync"

	"github.com/wsbroker/wsbroker/broker"
	"github.com/wsbroker/wsbroker/internal/protocol"
	"github.com/wsbroker/wsbroker/internal/wsproto"
)

// A message of parcelMin bytes or more travels to JS as a parcel: its event in the batch names the
// parcel, which holds the buffers the broker reassembled the message in (taken over, not copied:
// hooks.TakeMessage), or a copy when the message was read in one piece; the JS thread takes the
// parcel when it decodes the event (wsb_take_parcel), into a Buffer or a string, and the buffers
// go back to wsproto.Buffers. In the batch the data was copied three times (into the batch, into
// the thread's batch memory, out of it into a Buffer); as a parcel, once. A parcel that is never
// taken (its event dropped when no worker wants it) is given back with its event.
const parcelMin = 64 << 10

type parcel struct{ bufs []*[]byte } // from wsproto.Buffers: the message's bytes, in order

// parcels holds the parcels that JS has not taken yet, by id (a double in the batch: ids stay below
// 2^53).
var parcels = struct {
	mu   sync.Mutex
	last uint64
	held map[uint64]parcel
}{held: map[uint64]parcel{}}

// newParcel makes a parcel of the message of a Text, Binary or MessageParts call for c and returns
// its id; data is the message of a Text or Binary call.
func newParcel(c *broker.Conn, data []byte) uint64 {
	p := parcel{bufs: hooks.TakeMessage(c)}
	if p.bufs == nil { // read whole in one read: data, in the read buffer
		b := wsproto.Buffers.Get(len(data))
		*b = append(*b, data...)
		p.bufs = []*[]byte{b}
	}
	parcels.mu.Lock()
	parcels.last++
	id := parcels.last
	parcels.held[id] = p
	parcels.mu.Unlock()
	return id
}

// takeParcel hands parcel id over to the caller, who frees it; false if there is no such parcel.
func takeParcel(id uint64) (parcel, bool) {
	parcels.mu.Lock()
	p, ok := parcels.held[id]
	delete(parcels.held, id)
	parcels.mu.Unlock()
	return p, ok
}

// free gives the buffers of a parcel taken with takeParcel back.
func (p parcel) free() {
	for _, b := range p.bufs {
		wsproto.Buffers.Put(b)
	}
}

// size returns the bytes of the parcel's message.
func (p parcel) size() int {
	n := 0
	for _, b := range p.bufs {
		n += len(*b)
	}
	return n
}

// joined returns the parcel's bytes as one slice and what to give back to wsproto.Buffers once
// done with it (nil if nothing).
func (p parcel) joined() ([]byte, *[]byte) {
	if len(p.bufs) == 1 {
		return *p.bufs[0], nil
	}
	b := wsproto.Buffers.Join(p.bufs)
	return *b, b
}

// dropParcelOf frees the parcel that the encoded event ev names, if it names one.
func dropParcelOf(ev []byte) {
	if id, ok := parcelOf(ev); ok {
		if p, ok := takeParcel(id); ok {
			p.free()
		}
	}
}

// appendParcel appends a message event whose data is the parcel id.
func appendParcel(b []byte, kind byte, c *broker.Conn, id uint64) []byte {
	b = binary.LittleEndian.AppendUint32(appendHead(b, kind, c.ID(), c.Token()), protocol.InParcel)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(id)))
}

// parcelOf returns the id of the parcel that the encoded event ev names, if it is a message whose
// data is one.
func parcelOf(ev []byte) (uint64, bool) {
	if len(ev) < protocol.HeadSize || (ev[0] != kindText && ev[0] != kindBinary) {
		return 0, false
	}
	at := protocol.HeadSize
	if n := binary.LittleEndian.Uint32(ev[at-protocol.LenSize:]); n != noToken {
		at += int(n)
	}
	if len(ev) != at+protocol.LenSize+8 || binary.LittleEndian.Uint32(ev[at:]) != protocol.InParcel {
		return 0, false
	}
	return uint64(math.Float64frombits(binary.LittleEndian.Uint64(ev[at+protocol.LenSize:]))), true
}
