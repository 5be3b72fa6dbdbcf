// Package protocol defines what the bridge (cmd/libwsbroker) and the JavaScript package (js/) must
// agree on: the event batch format, the event kinds and handler bits, the log levels, the close
// codes JavaScript may send, and the defaults and ranges of the listener limits that start()
// takes. `go generate ./...` writes them into js/protocol.gen.cts and napi/protocol.gen.h (the
// generator is ./gen), so that the other languages use these values instead of copies.
//
// A batch is one byte string holding events back to back, little-endian, without padding:
//
//	event  = kind:u8  socketId:f64  token  body
//	token  = len:u32 then len bytes; len = NoToken means no token and no bytes
//	open   body: ip:str url:str headerCount:u32 then headerCount × (name:str value:str)
//	text   body: data:str (UTF-8, validated by the broker), or parcel
//	binary body: data:bytes, or parcel
//	close  body: code:u32 reason:str (the close code and reason: the client's, or the server's own)
//	catchUp body: none (answered once the socket's earlier events are handled)
//	drain  body: none (the socket's queue went over backpressureThreshold and has been written out)
//	str, bytes = len:u32 then len bytes
//	parcel = len:u32 = InParcel, then id:f64: a large message's data, held by the addon outside the
//	         batch until JavaScript takes it by its id (once; the addon's takeParcel)
//
// The socket id is a double because JavaScript numbers are; ids stay below 2^53.
package protocol

//go:generate go run ./gen -ts ../../js/protocol.gen.cts -c ../../napi/protocol.gen.h

import (
	"math"
	"time"

	"github.com/wsbroker/wsbroker/broker"
	"github.com/wsbroker/wsbroker/cluster"
	"github.com/wsbroker/wsbroker/internal/wsproto"
)

// The event kinds, the first byte of every event.
const (
	KindOpen   byte = 1
	KindText   byte = 2
	KindBinary byte = 3
	KindClose  byte = 4
	// KindCatchUp follows the last message of a socket whose close waits for them to be handled
	// (broker.CatchUpHandler); it is handed to JavaScript only to come back once they are.
	KindCatchUp byte = 5
	// KindDrain says that a socket whose queue went over backpressureThreshold has had it written
	// out (broker.DrainHandler).
	KindDrain byte = 6
)

// NoToken is the token length that means the event carries no token.
const NoToken = math.MaxUint32

// InParcel is the data length that means a message's data is in a parcel, whose id follows.
const InParcel = math.MaxUint32 - 1

// The sizes of the batch's fixed fields, in bytes.
const (
	// LenSize is the size of every length field (token, str, bytes) and of the open event's
	// header count and the close event's code.
	LenSize = 4
	// HeadSize is the size of an event's head before the token's bytes: kind, socket id, token length.
	HeadSize = 1 + 8 + LenSize
)

// HandlerBit is the bit of a worker's handler mask that events of kind need: a JavaScript thread
// registers the bits of the handlers it has, and KindCatchUp's with ordered delivery.
func HandlerBit(kind byte) uint32 { return 1 << (kind - 1) }

// The log levels of the lines JavaScript and the C glue write through the bridge's logger,
// zerolog's levels from debug to error.
const (
	LogDebug = 0
	LogInfo  = 1
	LogWarn  = 2
	LogError = 3
)

// The close codes of broker.Broker.CloseSocket as the JavaScript side uses them: a user's close()
// may send CloseNormal or a code from CloseAppMin to CloseAppMax; CloseHandlerFailed is the
// system's, sent by ordered delivery when a handler fails.
const (
	CloseNormal        = 1000
	CloseHandlerFailed = 1011
	CloseAppMin        = 3000
	CloseAppMax        = 4999
	// MaxCloseReason is the longest close reason, in bytes of UTF-8.
	MaxCloseReason = wsproto.MaxCloseReason
)

// The rules of start()'s `cluster` option (cluster.Options).
const (
	ClusterDefaultPrefix        = cluster.DefaultPrefix
	ClusterMaxPrefix            = cluster.MaxPrefix
	ClusterDefaultPublishBuffer = cluster.DefaultPublishBuffer
	ClusterMinPublishBuffer     = cluster.MinPublishBuffer
	ClusterMaxPublishBuffer     = cluster.MaxPublishBuffer
)

// Limit is one limit of a listener as start() takes it.
type Limit struct {
	// Option is its name in start()'s options and in the listen configuration's JSON.
	Option string
	// Default is its value when the option is absent, in the option's unit (bytes, milliseconds
	// or a count); 0 for a limit that must be positive when given means that the broker derives
	// it (broker.Limits says how).
	Default int64
	// ZeroAllowed says that 0 is a valid value: it turns the limit off. Else it must be positive.
	ZeroAllowed bool
}

// Limits returns the limits of start()'s options, with broker.DefaultLimits' defaults, in the
// order start() checks them.
func Limits() []Limit {
	d := broker.DefaultLimits()
	ms := func(t time.Duration) int64 { return t.Milliseconds() }
	return []Limit{
		{Option: "maxPayload", Default: d.MaxPayload},
		{Option: "idleTimeout", Default: ms(d.IdleTimeout), ZeroAllowed: true},
		{Option: "handshakeTimeout", Default: ms(d.HandshakeTimeout)},
		{Option: "maxHeaderBytes", Default: int64(d.MaxHeaderBytes)},
		{Option: "maxConnections", Default: int64(d.MaxConnections), ZeroAllowed: true},
		{Option: "maxBackpressure", Default: int64(d.MaxBackpressure)},
		{Option: "backpressureThreshold"}, // from maxBackpressure when absent
		{Option: "maxMessagesPerSecond", Default: int64(d.MaxMessagesPerSecond), ZeroAllowed: true},
		{Option: "maxConnectionsPerIp", Default: int64(d.MaxConnectionsPerIP), ZeroAllowed: true},
		{Option: "openTimeout", Default: ms(d.OpenTimeout)},
	}
}
