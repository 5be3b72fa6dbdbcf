package redis

import (
	"context"
	"errors"
)

// The subscribe link: SUBSCRIBE and UNSUBSCRIBE, whose every topic Redis confirms in order, and
// the messages they bring, each read once into memory that the handler keeps.

// readSubscribed is a subscribe link's reader: it hands each message to deliver and settles a
// command's call once Redis has confirmed its every topic. A topic's string is made once, when
// its subscription is confirmed, and shared by its messages.
func (l *link) readSubscribed(deliver func(topic string, data []byte)) {
	topics := make(map[string]string)
	var err error
	for err == nil {
		err = l.readPush(topics, deliver)
	}
	l.end(err)
}

func (l *link) readPush(topics map[string]string, deliver func(topic string, data []byte)) error {
	kind, line, err := l.line()
	switch {
	case err != nil:
		return err
	case kind == '-':
		return l.settle(0, false, replyError(line), true)
	case kind != '*' || string(line) != "3":
		return errProtocol
	}
	if err := l.bulk(); err != nil {
		return err
	}
	switch string(l.scratch) {
	case "message":
		if err := l.bulk(); err != nil {
			return err
		}
		topic, ok := topics[string(l.scratch)]
		if !ok {
			topic = string(l.scratch)
		}
		n, err := l.bulkLength()
		if err != nil {
			return err
		}
		data := make([]byte, n)
		if err := l.readFull(data); err != nil {
			return err
		}
		l.received.Add(1)
		deliver(topic, data)
		return nil
	case "subscribe", "unsubscribe":
		subscribed := l.scratch[0] == 's'
		if err := l.bulk(); err != nil {
			return err
		}
		if subscribed {
			if _, ok := topics[string(l.scratch)]; !ok {
				topics[string(l.scratch)] = string(l.scratch)
			}
		} else {
			delete(topics, string(l.scratch))
		}
		if kind, _, err := l.line(); err != nil || kind != ':' { // the count of subscriptions
			return errors.Join(err, errProtocol)
		}
		return l.settle(0, false, nil, false)
	}
	return errProtocol
}

// subscribeCommand sends command (SUBSCRIBE or UNSUBSCRIBE) with topics and returns once Redis
// has confirmed each of them, or the command failed, the link ended or ctx is done.
func (l *link) subscribeCommand(ctx context.Context, command string, topics []string) error {
	_, err := l.do(ctx, len(topics), nil, func(out []byte) []byte { return appendCommand(out, command, topics...) })
	return err
}
