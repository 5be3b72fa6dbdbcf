package redis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// subscriber is the engine's subscribe connection, spoken to in RESP2 without a client library:
// it carries only SUBSCRIBE and UNSUBSCRIBE and the messages they bring, and its reader copies
// each message once, into memory that the handler keeps (a general client allocates a reply
// tree per message, which a busy cluster pays for in garbage collection).
type subscriber struct {
	conn net.Conn
	r    *bufio.Reader

	// writing orders commands: each waits in pending in the order it was written.
	writing sync.Mutex
	mu      sync.Mutex // guards pending and err
	pending []*confirmation
	err     error         // why the connection ended; every later command fails with it
	ended   chan struct{} // closed when the reader has returned, err set

	// received counts messages, so that the watch tells a live connection from a silent one.
	received atomic.Uint64

	scratch []byte // the reader's buffer for a reply's short fields
}

// confirmation is a command waiting for Redis to confirm each of its topics.
type confirmation struct {
	left int
	done chan error // buffered: nil once every topic is confirmed, or the command's error
}

// replyError is an error reply of Redis, e.g. "WRONGPASS invalid username-password pair".
type replyError string

func (e replyError) Error() string { return string(e) }

// maxBulk is the longest string the reader accepts: Redis's own default limit.
const maxBulk = 512 << 20

var errProtocol = errors.New("redis: the subscribe connection received a reply it cannot read")

// dialSubscriber connects and logs in; its reader is not running yet.
func (e *Engine) dialSubscriber(ctx context.Context) (*subscriber, error) {
	conn, err := e.dial(ctx, "", &net.Dialer{Timeout: e.opts.DialTimeout}, nil)
	if err != nil {
		return nil, err
	}
	s := &subscriber{conn: conn, r: newReader(conn), ended: make(chan struct{})}
	if e.addr.password != "" {
		deadline, _ := ctx.Deadline()
		_ = conn.SetDeadline(deadline)
		err = s.login(e.addr.username, e.addr.password)
		_ = conn.SetDeadline(time.Time{})
		if err != nil {
			conn.Close()
			return nil, err
		}
	}
	return s, nil
}

func newReader(conn net.Conn) *bufio.Reader { return bufio.NewReaderSize(conn, 64<<10) }

// login sends AUTH and reads its answer.
func (s *subscriber) login(username, password string) error {
	args := []string{password}
	if username != "" {
		args = []string{username, password}
	}
	if _, err := s.conn.Write(appendCommand(nil, "AUTH", args)); err != nil {
		return err
	}
	kind, line, err := s.line()
	switch {
	case err != nil:
		return err
	case kind == '-':
		return replyError(line)
	case kind != '+':
		return errProtocol
	}
	return nil
}

// read hands each message to deliver and confirms commands until the connection ends. A topic's
// string is made once, when Redis confirms its subscription, and shared by its messages.
func (s *subscriber) read(deliver func(topic string, data []byte)) {
	topics := make(map[string]string)
	var err error
	for err == nil {
		err = s.readReply(topics, deliver)
	}
	s.mu.Lock()
	s.err = err
	waiting := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, c := range waiting {
		c.done <- err
	}
	close(s.ended)
}

func (s *subscriber) readReply(topics map[string]string, deliver func(topic string, data []byte)) error {
	kind, line, err := s.line()
	switch {
	case err != nil:
		return err
	case kind == '-':
		return s.confirm(replyError(line))
	case kind != '*' || string(line) != "3":
		return errProtocol
	}
	if err := s.bulk(); err != nil {
		return err
	}
	switch string(s.scratch) {
	case "message":
		if err := s.bulk(); err != nil {
			return err
		}
		topic, ok := topics[string(s.scratch)]
		if !ok {
			topic = string(s.scratch)
		}
		n, err := s.bulkLength()
		if err != nil {
			return err
		}
		data := make([]byte, n)
		if err := s.readFull(data); err != nil {
			return err
		}
		s.received.Add(1)
		deliver(topic, data)
		return nil
	case "subscribe", "unsubscribe":
		subscribed := s.scratch[0] == 's'
		if err := s.bulk(); err != nil {
			return err
		}
		if subscribed {
			if _, ok := topics[string(s.scratch)]; !ok {
				topics[string(s.scratch)] = string(s.scratch)
			}
		} else {
			delete(topics, string(s.scratch))
		}
		if kind, _, err := s.line(); err != nil || kind != ':' { // the count of subscriptions
			return errors.Join(err, errProtocol)
		}
		return s.confirm(nil)
	}
	return errProtocol
}

// confirm settles one topic of the oldest command, or fails that command with err.
func (s *subscriber) confirm(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		return errProtocol // a confirmation of nothing: the stream is not what it seems
	}
	c := s.pending[0]
	if c.left--; err == nil && c.left > 0 {
		return nil
	}
	c.done <- err
	s.pending[0] = nil
	s.pending = s.pending[1:]
	return nil
}

// line reads one line, returning its type byte and the rest without CRLF; the rest is valid until
// the next read.
func (s *subscriber) line() (byte, []byte, error) {
	b, err := s.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			err = errProtocol
		}
		return 0, nil, err
	}
	if len(b) < 3 || b[len(b)-2] != '\r' {
		return 0, nil, errProtocol
	}
	return b[0], b[1 : len(b)-2], nil
}

// bulkLength reads a bulk string's header; a null one is a protocol error here.
func (s *subscriber) bulkLength() (int, error) {
	kind, line, err := s.line()
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(string(line))
	if kind != '$' || err != nil || n < 0 || n > maxBulk {
		return 0, errProtocol
	}
	return n, nil
}

// bulk reads a bulk string into s.scratch.
func (s *subscriber) bulk() error {
	n, err := s.bulkLength()
	if err != nil {
		return err
	}
	if cap(s.scratch) < n {
		s.scratch = make([]byte, n)
	}
	s.scratch = s.scratch[:n]
	return s.readFull(s.scratch)
}

// readFull reads exactly len(b) bytes and the CRLF after them.
func (s *subscriber) readFull(b []byte) error {
	if _, err := io.ReadFull(s.r, b); err != nil {
		return err
	}
	cr, err := s.r.ReadByte()
	if err != nil {
		return err
	}
	lf, err := s.r.ReadByte()
	if err != nil {
		return err
	}
	if cr != '\r' || lf != '\n' {
		return errProtocol
	}
	return nil
}

// command sends name with topics and returns once Redis has confirmed every topic, or the
// command failed, the connection ended or ctx is done.
func (s *subscriber) command(ctx context.Context, name string, topics []string) error {
	c := &confirmation{left: len(topics), done: make(chan error, 1)}
	cmd := appendCommand(nil, name, topics)
	s.writing.Lock()
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		s.writing.Unlock()
		return s.err
	}
	s.pending = append(s.pending, c)
	s.mu.Unlock()
	_, err := s.conn.Write(cmd)
	s.writing.Unlock()
	if err != nil {
		s.conn.Close() // a command half written leaves nothing to read: the reader ends
		return err
	}
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close closes the connection and waits for the reader to return.
func (s *subscriber) close() {
	s.conn.Close()
	<-s.ended
}

// appendCommand appends a RESP array of name and args.
func appendCommand(dst []byte, name string, args []string) []byte {
	dst = fmt.Appendf(dst, "*%d\r\n", 1+len(args))
	dst = appendBulk(dst, name)
	for _, a := range args {
		dst = appendBulk(dst, a)
	}
	return dst
}

func appendBulk(dst []byte, s string) []byte {
	dst = append(dst, '$')
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, "\r\n"...)
	dst = append(dst, s...)
	return append(dst, "\r\n"...)
}
