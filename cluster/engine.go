package cluster

import (
	"context"
	"errors"
)

// Engine is the message bus that a cluster's nodes share (Redis, NATS): named topics, delivery
// at most once, in order per publishing connection. A Node owns everything above it (what a
// message means, which topics to subscribe, the publish buffer, resubscribing after a loss), so
// that an engine is a thin adapter of one client library or protocol: packages cluster/nats and
// cluster/redis are two.
//
// A Node calls Subscribe, Unsubscribe and Claim from one goroutine and Publish from another (and
// from the first once per connection, for a heartbeat), so an Engine must allow those calls to
// run at the same time.
type Engine interface {
	// Start starts connecting in the background and reports to h from then on: it keeps trying,
	// with backoff, until Close. It returns an error only for a configuration it cannot use.
	Start(h EngineHandler) error

	// Publish sends msgs in order over one connection and writes into receivers[i] how many
	// subscriptions received msgs[i] (-1 when the engine cannot tell, Refused when its server
	// refused it); len(receivers) is len(msgs). It returns how many were sent, and an error when
	// it could not send the rest (disconnected, ctx done): it does not retry them. Refused
	// messages count as sent: the error then wraps ErrRefused.
	Publish(ctx context.Context, msgs []Message, receivers []int) (sent int, err error)

	// Subscribe subscribes the topics and returns once the engine has confirmed them, or an error
	// (disconnected, ctx done). Subscribing a topic already subscribed is harmless.
	Subscribe(ctx context.Context, topics []string) error

	// Unsubscribe undoes Subscribe; unsubscribing a topic not subscribed is harmless.
	Unsubscribe(ctx context.Context, topics []string) error

	// Claim subscribes topic and reports whether no other connection of the engine is
	// subscribed to it: a node takes a slot's topic only if it is alone on it.
	Claim(ctx context.Context, topic string) (alone bool, err error)

	// Close disconnects and stops reconnecting; h is not called after it returns.
	Close() error

	// String names the engine and its address for logs and stats, without any password.
	String() string

	// MaxPayload is the largest Message.Data the engine publishes, as learnt on connecting (it
	// may change with the server), or 0 when it has no limit below what a node sends.
	MaxPayload() int

	// CountsReceivers reports whether Publish counts each message's receivers (else it writes
	// -1): a node then asks only the nodes subscribed to a channel for their counts, else all.
	CountsReceivers() bool

	// Dropped is how many messages for this node the engine's client dropped because they came
	// faster than it handed them over; 0 from an engine that never drops.
	Dropped() uint64
}

// ErrTooLarge is Publish's error for a message over MaxPayload, which it does not send: it stops
// there, still connected, and the node drops that message and goes on.
var ErrTooLarge = errors.New("message larger than the engine takes")

// ErrRefused is wrapped by Publish's error when the engine's server refused messages (an error
// reply, as to a user whose ACL leaves out a channel): they are sent, their receivers Refused,
// and the node drops them, as the server would refuse them again.
var ErrRefused = errors.New("refused by the server")

// Refused is Publish's receiver count for a message the engine's server refused.
const Refused = -2

// Message is one publication: its topic and its bytes.
type Message struct {
	Topic string
	Data  []byte
}

// EngineHandler is what an Engine reports to its Node.
type EngineHandler interface {
	// Received is called for each message on a subscribed topic, on one goroutine, in the order
	// the engine delivered them; the call must not block. data is the handler's: the engine
	// never uses it again.
	Received(topic string, data []byte)

	// StateChanged reports the engine reachable (connected, err nil) or lost (not connected, err
	// the reason). After a loss no topic is subscribed any more: the Node subscribes again once
	// connected.
	StateChanged(connected bool, err error)
}
