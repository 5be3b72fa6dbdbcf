package main

import (
	"encoding/binary"
	"math"

	"github.com/wsbroker/wsbroker/broker"
)

// Events travel to a JS worker in batches: one byte string holding events back to back,
// little-endian, no padding. js/batch.cts decodes it.
//
//	event  = kind:u8  socketId:f64  token  body
//	token  = len:u32 then len bytes; len = noToken means no token and no bytes
//	open   body: ip:str url:str headerCount:u32 then headerCount × (name:str value:str)
//	text   body: data:str
//	binary body: data:bytes
//	close  body: code:u32 reason:str   (Conn.CloseCause)
//	catchUp body: none (answered with wsb_caught_up once the socket's earlier events are handled)
//	str, bytes = len:u32 then len bytes
//
// The socket id is a double because JS numbers are; ids stay below 2^53.
const (
	kindOpen   byte = 1
	kindText   byte = 2
	kindBinary byte = 3
	kindClose  byte = 4
	// kindCatchUp follows the last message of a socket whose close waits for them to be handled
	// (broker.CatchUpHandler); it is handed to JS only to come back once they are.
	kindCatchUp byte = 5

	noToken = math.MaxUint32
)

// handlerBit is the bit of a worker's handler mask that a kind needs (js/native.cts HandlerBit).
func handlerBit(kind byte) uint32 { return 1 << (kind - 1) }

func appendHead(b []byte, kind byte, id uint64, token []byte) []byte {
	b = append(b, kind)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(id)))
	if token == nil {
		return binary.LittleEndian.AppendUint32(b, noToken)
	}
	return appendBytes(b, token)
}

func appendBytes(b, s []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendOpen(b []byte, c *broker.Conn, req *broker.Request) []byte {
	b = appendHead(b, kindOpen, c.ID(), c.Token())
	b = appendString(b, req.IP)
	b = appendString(b, req.URL)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(req.Headers)))
	for _, h := range req.Headers {
		b = appendString(b, h.Name)
		b = appendString(b, h.Value)
	}
	return b
}

func appendMessage(b []byte, kind byte, c *broker.Conn, data []byte) []byte {
	return appendBytes(appendHead(b, kind, c.ID(), c.Token()), data)
}

func appendCatchUp(b []byte, c *broker.Conn) []byte {
	return appendHead(b, kindCatchUp, c.ID(), nil)
}

func appendClose(b []byte, c *broker.Conn) []byte {
	code, reason := c.CloseCause()
	b = binary.LittleEndian.AppendUint32(appendHead(b, kindClose, c.ID(), c.Token()), uint32(code))
	return appendBytes(b, reason)
}
