package main

/*
#include <stdlib.h>
*/
import "C"

import (
	"encoding/binary"
	"math"
	"sync"
	"unsafe"

	"github.com/wsbroker/wsbroker/broker"
	"github.com/wsbroker/wsbroker/internal/protocol"
)

// A message of parcelMin bytes or more travels to JS as a parcel: its data is copied into C memory
// of its own, and its event in the batch names the parcel; the JS thread takes it when it decodes
// the event (wsb_take_parcel), into a Buffer or a string, and frees it. In the batch the data was
// copied three times (into the batch, into the thread's batch memory, out of it into a Buffer); as
// a parcel, twice. A parcel that is never taken (its event dropped when no worker wants it) is
// freed with its event.
const parcelMin = 64 << 10

type parcel struct {
	data unsafe.Pointer // C memory
	len  int
}

// parcels holds the parcels that JS has not taken yet, by id (a double in the batch: ids stay below
// 2^53).
var parcels = struct {
	mu   sync.Mutex
	last uint64
	held map[uint64]parcel
}{held: map[uint64]parcel{}}

// newParcel copies data into a parcel and returns its id.
func newParcel(data []byte) uint64 {
	p := parcel{data: C.malloc(C.size_t(len(data))), len: len(data)}
	copy(unsafe.Slice((*byte)(p.data), p.len), data) // in Go: a call into C would give up the P for it
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

// free frees a parcel taken with takeParcel.
func (p parcel) free() { C.free(p.data) }

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
