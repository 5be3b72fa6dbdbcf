package broker

import (
	"time"

	"github.com/wsbroker/wsbroker/internal/wsproto"
)

// Handler receives the events of every connection. Calls for one connection are made one at a
// time, in order, from the goroutine reading it (not always the same one: idle connections hold
// none); calls for different connections run concurrently. Byte slices passed to a Handler are
// valid only for the duration of the call.
//
// A call may block: the connection is not read meanwhile (TCP pushes back on the client), the
// time does not count towards IdleTimeout, and writes to it go on (the flusher never waits for a
// reader). Broker.Close waits for blocked calls to return.
type Handler interface {
	// Open is called when a valid WebSocket upgrade request arrives. The connection is already
	// registered: Send, Subscribe and SetToken work on c.ID(). The handler must eventually call
	// Broker.Accept(c.ID(), verdict) or Broker.Refuse, from any goroutine, possibly before Open
	// returns; until then the upgrade response is held back and frames sent to the socket are
	// queued, not written.
	Open(c *Conn, req *Request)
	// Text is called for every complete text message (valid UTF-8).
	Text(c *Conn, data []byte)
	// Binary is called for every complete binary message.
	Binary(c *Conn, data []byte)
	// ReadDone is called after the Text and Binary calls for one read from c's socket (those
	// messages came together): a handler that queues messages for another thread can hand them
	// over here, once per read instead of once per message.
	ReadDone(c *Conn)
	// Close is called exactly once for every accepted connection, whatever ended it. By then the
	// connection is unregistered and in no channel.
	Close(c *Conn)
}

// Request is what an upgrade request carries that a Handler may decide on.
type Request struct {
	// IP is the client's address without port: the peer's (IPv4 peers of dual-stack listeners as
	// a dotted quad), or behind a trusted proxy the one it forwarded (Limits.TrustProxy).
	IP string
	// URL is the request target as sent (path and query).
	URL string
	// Headers holds every request header once, its name lower-cased; repeated headers are joined
	// in the order received, with "; " for Cookie (as RFC 6265 section 5.4 writes one) and ", "
	// for the others.
	Headers []Header
}

// Header is one header: Name (lower-cased in a Request) and Value.
type Header = wsproto.Header

// CatchUpHandler is a Handler whose Text and Binary calls only queue the messages, to be handled
// later elsewhere (the bridge hands them to JS threads). When the peer sends a close frame or
// breaks the protocol, the broker then reads nothing more from it and calls CatchUp; the close
// frame waits until the handler calls Broker.CaughtUp(c.ID()), once it has handled every message
// of c it was given and queued their replies, so that those replies go out before the close
// frame. A handler that does not call it in time (a blocked thread) delays the close frame by
// CatchUpTimeout at most.
type CatchUpHandler interface {
	Handler
	// CatchUp is called on the goroutine reading c, after the Text and Binary calls for the
	// messages that came before the close frame or the violation.
	CatchUp(c *Conn)
}

// DrainHandler is a Handler that hears when a socket has room again: once the queue of a socket
// that went over its listener's BackpressureThreshold (Send reported false, or a broadcast took it
// there) has been written out, while the socket is open, Drain is called once; a later crossing
// calls it again.
//
// Unlike the other calls, Drain is made by the goroutine that wrote the socket (a flusher, a
// writer goroutine, or the caller of Cork.Flush), so it may run concurrently with c's other
// calls, Close included, and must not block. A handler that orders it with c's other events
// checks Conn.Closing under the lock it orders them with: Close is called only after Closing
// reports true.
type DrainHandler interface {
	Handler
	Drain(c *Conn)
}

// CatchUpTimeout is how long the close frame of a connection waits for CatchUpHandler.CatchUp to
// be answered with Broker.CaughtUp.
const CatchUpTimeout = 5 * time.Second
