// Package broker is a WebSocket server library built for fan-out: it accepts connections,
// keeps the registry of sockets, the channels they subscribe to and a token per socket, and
// reports every connection's events to a Handler.
//
// A program makes a Broker with New and a Handler, then calls Listen with the addresses and
// Limits of each listener. For every valid upgrade request the Broker calls Handler.Open; the
// handler answers with Broker.Accept, or Broker.Refuse with an HTTP status of its choice (now or
// later, from any goroutine). Messages arrive as Handler.Text and Handler.Binary calls; the
// handler, or any goroutine, answers with Send to a socket id, Subscribe and SendToChannel for
// channels (a channel message is framed and compressed once for all its subscribers), SetToken
// to attach what it knows of the socket (who the user is), and CloseSocket. Handler.Close reports the end of every accepted
// connection, whatever ended it. Broker.Close closes everything, and Stats counts it.
//
// A handler that answers many messages at once can batch its sends with a Cork: they are queued
// and each socket is written once, at Cork.Flush.
//
// Connections are read by a few poller goroutines (epoll on Linux: an idle connection holds no
// goroutine), or by a goroutine each elsewhere; writes go out with one writev per socket from a
// few flusher goroutines. Handler calls for one connection come one at a time, in order. The
// package brokermetrics serves Stats to Prometheus.
//
// Every method is safe for concurrent use.
package broker
