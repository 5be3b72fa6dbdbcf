package broker

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"time"
)

const (
	defaultMaxPayload       = 16 << 20
	defaultIdleTimeout      = 30 * time.Second
	defaultHandshakeTimeout = 10 * time.Second
	defaultMaxHeaderBytes   = 16 << 10
	defaultMaxBackpressure  = 16 << 20
	// defaultBackpressureThreshold is BackpressureThreshold's default while MaxBackpressure is at
	// least twice as large.
	defaultBackpressureThreshold = 1 << 20
	defaultOpenTimeout           = 10 * time.Second
)

// Limits are the settings of a listener (each Listen call has its own). The zero value of a field selects its
// default, given with the field; DefaultLimits returns them all (IdleTimeout included).
type Limits struct {
	// MaxPayload is the largest message accepted, after reassembly of its fragments; a larger one
	// closes the socket with 1009. 0: 16 MiB.
	MaxPayload int64
	// IdleTimeout: after this long without input the socket is pinged; with still no input (a pong
	// or anything else) after as long again it is closed with 1001. Only time spent waiting for
	// input counts: not time the reader spends blocked in a Handler call. 0 disables (DefaultLimits
	// has 30 s, so that the ping and its pong cross a reverse proxy within nginx's default 60 s
	// proxy_read_timeout). While it is on, the connections have no TCP keep-alive (the ping finds
	// a dead peer); with 0 they keep Go's (a probe after 15 s without traffic, then every 15 s).
	IdleTimeout time.Duration
	// HandshakeTimeout bounds the time to receive the whole upgrade request (slowloris); past it
	// the TCP connection is closed without a response. On Linux the kernel hands a connection
	// over only once it has sent something, or after about a second (deferAccept): the timeout
	// runs from then. 0: 10 s.
	HandshakeTimeout time.Duration
	// MaxHeaderBytes bounds the upgrade request head (request line and headers); a larger one is
	// answered with HTTP 431. 0: 16 KiB.
	MaxHeaderBytes int
	// MaxConnections bounds the connections of this listener, from TCP accept to their end
	// (requests being read and pending opens included); one more is answered with HTTP 503 as
	// soon as its upgrade request is in (HandshakeTimeout and MaxHeaderBytes apply to it), without
	// Handler.Open. 0: unlimited.
	MaxConnections int
	// MaxBackpressure bounds the bytes queued for one socket and not yet written (every queued
	// frame counts 32 bytes more, its bookkeeping, so that a flood of tiny frames cannot
	// hold many times the limit). A send to a socket whose queue is already over it closes the
	// socket with 1008, its queue freed at once, and the TCP connection ended if the peer does not
	// read the close frame within the drain timeout. A message sent into a queue under the limit
	// is taken whole, whatever its size: a queue holds at most the limit plus one message (so a
	// message of MaxPayload can be echoed with both limits equal). 0: 16 MiB.
	MaxBackpressure int
	// BackpressureThreshold is where a socket's queue (counted as MaxBackpressure counts it) is
	// too full for its sender to go on: Send reports false when the message it queued leaves more
	// than this queued, and a DrainHandler hears once the queue of a socket that went over it (by
	// any send, a broadcast's included) has been written out. It must not exceed
	// MaxBackpressure. 0: 1 MiB, or half of MaxBackpressure when that is less.
	BackpressureThreshold int
	// MaxMessagesPerSecond bounds the data messages (text and binary, not pings, pongs or close
	// frames) a socket may send: a token bucket holding as many, refilled at that rate per second,
	// that each complete message takes one from as it is parsed. The message that finds it empty
	// is not delivered: the socket is closed with 1008 and the reason "message rate limit
	// exceeded". 0: unlimited.
	MaxMessagesPerSecond int
	// MaxConnectionsPerIP bounds the connections from one client address (Request.IP, so behind a
	// trusted proxy the client it forwarded), counted over every listener of the Broker whose
	// MaxConnectionsPerIP is on, each comparing the count with its own limit, from the end of the
	// upgrade request to the end of the connection (opens awaiting their verdict included). One
	// more is answered with HTTP 429, without Retry-After (when one of that address's connections
	// ends cannot be known), and without Handler.Open. 0: unlimited.
	MaxConnectionsPerIP int
	// OpenTimeout bounds the wait for Accept after Handler.Open returns; past it the upgrade is
	// refused with HTTP 503 (a handler that never answers, or whose thread died, must not hold the
	// client forever). 0: 10 s.
	OpenTimeout time.Duration
	// Protocols are the subprotocols the server speaks: the first one the client offers
	// (Sec-WebSocket-Protocol) that is listed is chosen in the 101 response. None: no subprotocol
	// is ever chosen.
	Protocols []string
	// Compression negotiates permessage-deflate (RFC 7692) with clients that offer it (the first
	// valid offer of the header; server_max_window_bits from 8 to 15 is honoured exactly).
	// Without CompressionContextTakeover, without context takeover in either direction: no
	// compressor or window is kept per connection between messages. Messages of at least 256
	// bytes are sent compressed when that makes them smaller; a compressed message that inflates
	// past MaxPayload closes the socket with 1009, an invalid one with 1007. Clients that do not
	// offer it are served uncompressed.
	Compression bool
	// CompressionContextTakeover (with Compression) keeps the server's context between the
	// messages of a socket whose client allows it (its offer has no server_no_context_takeover
	// and allows a 15-bit window): a message may refer back to the last 8 KiB sent compressed to
	// that socket, which then holds those 8 KiB from its first compressed message to its end.
	// Such a socket's messages, broadcasts included, are compressed for it alone. Clients are
	// still asked not to take over theirs.
	CompressionContextTakeover bool
	// TLS, when not nil, serves wss:// (TLS, then HTTP/1.1): a plain HTTP request is answered
	// with 400. Its NextProtos is replaced by "http/1.1".
	TLS *tls.Config
	// TrustProxy lists the reverse proxies whose forwarding headers are believed (an address is
	// a prefix of all its bits: 10.0.0.0/8, 192.0.2.1/32). When the TCP peer is in it,
	// Request.IP is the client that the proxies recorded (wsproto.ForwardedHops: X-Forwarded-For,
	// else Forwarded): walking from the nearest proxy's entry towards the client, the first
	// address not in TrustProxy; if an entry names no address, the last trusted one reached, and
	// if every entry is trusted, the first. IPv4 addresses match IPv4 prefixes and IPv6 ones
	// covering their IPv4-mapped form (::ffff:10.0.0.0/104 is 10.0.0.0/8). None: Request.IP is
	// the peer's address.
	TrustProxy []netip.Prefix
}

// DefaultLimits returns the documented defaults: MaxPayload 16 MiB, IdleTimeout 30 s,
// HandshakeTimeout 10 s, MaxHeaderBytes 16 KiB, MaxConnections unlimited, MaxBackpressure 16 MiB,
// MaxMessagesPerSecond and MaxConnectionsPerIP unlimited, OpenTimeout 10 s. BackpressureThreshold
// stays 0, derived from MaxBackpressure when resolved (1 MiB at its default), so that a caller may
// lower MaxBackpressure alone.
func DefaultLimits() Limits {
	return Limits{
		MaxPayload:       defaultMaxPayload,
		IdleTimeout:      defaultIdleTimeout,
		HandshakeTimeout: defaultHandshakeTimeout,
		MaxHeaderBytes:   defaultMaxHeaderBytes,
		MaxBackpressure:  defaultMaxBackpressure,
		OpenTimeout:      defaultOpenTimeout,
	}
}

// resolve checks lim and replaces zero values with defaults.
func (lim Limits) resolve() (Limits, error) {
	for _, f := range []struct {
		name string
		neg  bool
		v    any
	}{
		{"MaxPayload", lim.MaxPayload < 0, lim.MaxPayload},
		{"IdleTimeout", lim.IdleTimeout < 0, lim.IdleTimeout},
		{"HandshakeTimeout", lim.HandshakeTimeout < 0, lim.HandshakeTimeout},
		{"MaxHeaderBytes", lim.MaxHeaderBytes < 0, lim.MaxHeaderBytes},
		{"MaxConnections", lim.MaxConnections < 0, lim.MaxConnections},
		{"MaxBackpressure", lim.MaxBackpressure < 0, lim.MaxBackpressure},
		{"BackpressureThreshold", lim.BackpressureThreshold < 0, lim.BackpressureThreshold},
		{"MaxMessagesPerSecond", lim.MaxMessagesPerSecond < 0, lim.MaxMessagesPerSecond},
		{"MaxConnectionsPerIP", lim.MaxConnectionsPerIP < 0, lim.MaxConnectionsPerIP},
		{"OpenTimeout", lim.OpenTimeout < 0, lim.OpenTimeout},
	} {
		if f.neg {
			return lim, fmt.Errorf("invalid limits: %s must not be negative, got %v", f.name, f.v)
		}
	}
	d := DefaultLimits()
	if lim.MaxPayload == 0 {
		lim.MaxPayload = d.MaxPayload
	}
	if lim.HandshakeTimeout == 0 {
		lim.HandshakeTimeout = d.HandshakeTimeout
	}
	if lim.MaxHeaderBytes == 0 {
		lim.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if lim.MaxBackpressure == 0 {
		lim.MaxBackpressure = d.MaxBackpressure
	}
	switch {
	case lim.BackpressureThreshold == 0:
		lim.BackpressureThreshold = max(min(defaultBackpressureThreshold, lim.MaxBackpressure/2), 1)
	case lim.BackpressureThreshold > lim.MaxBackpressure:
		return lim, fmt.Errorf("invalid limits: BackpressureThreshold (%d) must not exceed MaxBackpressure (%d)", lim.BackpressureThreshold, lim.MaxBackpressure)
	}
	if lim.OpenTimeout == 0 {
		lim.OpenTimeout = d.OpenTimeout
	}
	if lim.TrustProxy != nil {
		trusted := make([]netip.Prefix, len(lim.TrustProxy))
		for i, p := range lim.TrustProxy {
			if !p.IsValid() {
				return lim, fmt.Errorf("invalid limits: TrustProxy[%d] is not a valid prefix", i)
			}
			trusted[i] = as16(p)
		}
		lim.TrustProxy = trusted
	}
	if lim.TLS != nil {
		lim.TLS = lim.TLS.Clone()
		lim.TLS.NextProtos = []string{"http/1.1"} // no h2: the upgrade is HTTP/1.1
	}
	return lim, nil
}
