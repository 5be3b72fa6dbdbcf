package main

import (
	"encoding/binary"
	"math"

	"github.com/wsbroker/wsbroker/broker"
	"github.com/wsbroker/wsbroker/internal/protocol"
)

// Events travel to a JS worker in batches, in the format of package protocol (js/batch.cts decodes
// them); the bridge's code names its constants as below.
const (
	kindOpen    = protocol.KindOpen
	kindText    = protocol.KindText
	kindBinary  = protocol.KindBinary
	kindClose   = protocol.KindClose
	kindCatchUp = protocol.KindCatchUp
	kindDrain   = protocol.KindDrain

	noToken = protocol.NoToken
)

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

func appendDrain(b []byte, c *broker.Conn) []byte {
	return appendHead(b, kindDrain, c.ID(), c.Token())
}

func appendClose(b []byte, c *broker.Conn) []byte {
	code, reason := c.CloseCause()
	b = binary.LittleEndian.AppendUint32(appendHead(b, kindClose, c.ID(), c.Token()), uint32(code))
	return appendBytes(b, reason)
}
