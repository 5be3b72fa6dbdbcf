// Package embedder is the broker's side door for the one embedder that runs the broker's input
// from an event loop of its own and routes connections to threads of its own: the Node bridge
// (cmd/libwsbroker). What it reaches here is kept out of package broker's API because a Go
// program that uses the broker has no use for it. Package broker provides the hooks at init.
package embedder

import "sync/atomic"

// Hooks are the broker's functions for such an embedder; B is broker.Broker and C broker.Conn.
type Hooks[B, C any] struct {
	// Route has every connection accepted from now on read by poller of(c) (numbered from 0;
	// negative, or a poller that PollerFD did not start: one in turn), for threads of the
	// embedder's to read (DispatchReady): a plain connection's socket then leaves Go's netpoller
	// as it goes on its poller. of is called once per connection, as it is accepted, before
	// anything else sees it.
	Route func(b *B, of func(c *C) int)
	// PollerFD returns poller i's epoll fd, starting pollers up to i if need be (-1 where there is
	// no epoll, or none could start). It is readable while connections on that poller have input
	// that no reader was handed yet; it stays open as long as the process.
	PollerFD func(b *B, i int) int
	// DispatchReady takes the connections of poller i that have input now: those for which here
	// reports true it reads on the calling thread, a turn each (their Handler calls are made
	// there, and MayBlock reports false for them); the others it hands to the poller's readers.
	// It reports whether there were any. It is for a thread that holds a P of Go's while it waits
	// for something else (a JS worker in its event loop): it sees the input first, where Go alone
	// would wait for its netpoller and then for a thread to run the readers on.
	DispatchReady func(b *B, i int, here func(*C) bool) bool
	// Watch says that a thread watches poller i's fd from now on, and calls DispatchReady when
	// it is readable, or that it no longer does. While one does, Go's netpoller leaves that fd to
	// it (netpoll.Set.Watch): it would wake a thread of Go's for every input the watching thread
	// reads anyway.
	Watch func(b *B, i int, on bool)
	// Pin is the embedder's value kept with each connection (the bridge: the JS worker the
	// socket is pinned to). The broker never writes it, and names a positive one in its log
	// lines as the connection's worker.
	Pin func(c *C) *atomic.Int32
	// MayBlock reports whether the Handler call being made for c may wait (for room in a queue):
	// not when DispatchReady's caller reads c, since that caller may be what would make the room.
	MayBlock func(c *C) bool
	// TakeMessage hands over the buffers (from wsproto.Buffers) that hold the message of the
	// Handler's Text, Binary or MessageParts call being made for c, in order, for the caller to
	// give back (wsproto.Buffers.Put) once done with them; nil when that message lies in the read
	// buffer. Only during that call, on its goroutine: an embedder that keeps a large message for
	// another thread keeps it without a copy.
	TakeMessage func(c *C) []*[]byte
}

// PartsHandler is a Handler (broker.Handler, C its Conn) that takes a message reassembled in
// several buffers as they are, rather than joined into one buffer first (the bridge copies it
// into JS memory anyway): the broker calls MessageParts for such a message instead of Text or
// Binary. parts are valid only during the call (TakeMessage keeps them), none is empty, and each
// but the last of a text holds whole UTF-8 code points.
type PartsHandler[C any] interface {
	MessageParts(c *C, text bool, parts [][]byte)
}

var provided any

// Provide is called by package broker, once, at init.
func Provide[B, C any](h Hooks[B, C]) { provided = h }

// Of returns the hooks package broker provided; B and C must be its Broker and Conn.
func Of[B, C any]() Hooks[B, C] { return provided.(Hooks[B, C]) }
