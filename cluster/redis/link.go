package redis

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// link is one connection to Redis, spoken to in RESP2 without a client library: commands are
// written in order under a lock and wait in pending for their replies, which one reader goroutine
// (publishing's readReplies, subscribing's readSubscribed) parses into what the caller keeps. A
// general client allocates a reply tree per reply, which a busy cluster pays for in garbage
// collection.
type link struct {
	conn         net.Conn
	r            *bufio.Reader
	writeTimeout time.Duration

	writing sync.Mutex // orders writes, and with them pending
	out     []byte     // the commands being written, under writing

	mu      sync.Mutex // guards pending and err
	pending []*call
	err     error         // why the link ended; every later call fails with it
	ended   chan struct{} // closed when the reader has returned, err set

	// received counts a subscribe link's messages, so that the watch tells a live connection
	// from a silent one.
	received atomic.Uint64

	scratch []byte // the reader's buffer for a reply's short strings
}

// call is a command, or a pipeline of them, waiting for its replies.
type call struct {
	replies int   // replies still to come
	ints    []int // reply i's integer, when it has one (and there is room)
	got     atomic.Int32
	err     error // the first error reply
	done    chan error
}

// replyError is an error reply of Redis, e.g. "WRONGPASS invalid username-password pair".
type replyError string

func (e replyError) Error() string { return string(e) }

// maxBulk is the longest string a reader accepts: Redis's own default limit.
const maxBulk = 512 << 20

// outKept is the capacity of the write buffer that a link keeps between calls.
const outKept = 1 << 20

var errProtocol = errors.New("redis: a reply that cannot be read")

// dialLink connects, logs in and selects the URL's database; its reader is not running yet.
func (e *Engine) dialLink(ctx context.Context) (*link, error) {
	conn, err := e.dial(ctx, &net.Dialer{Timeout: e.opts.DialTimeout})
	if err != nil {
		return nil, err
	}
	l := newLink(conn, e.opts.ProbeTimeout)
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	err = l.login(e.addr)
	_ = conn.SetDeadline(time.Time{})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return l, nil
}

func newLink(conn net.Conn, writeTimeout time.Duration) *link {
	return &link{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), writeTimeout: writeTimeout, ended: make(chan struct{})}
}

// login sends AUTH and SELECT as a needs them and reads their answers.
func (l *link) login(a address) error {
	var cmds []byte
	replies := 0
	switch {
	case a.username != "":
		cmds, replies = appendCommand(cmds, "AUTH", a.username, a.password), 1
	case a.password != "":
		cmds, replies = appendCommand(cmds, "AUTH", a.password), 1
	}
	if a.db != 0 {
		cmds, replies = appendCommand(cmds, "SELECT", strconv.Itoa(a.db)), replies+1
	}
	if _, err := l.conn.Write(cmds); err != nil {
		return err
	}
	for range replies {
		kind, line, err := l.line()
		switch {
		case err != nil:
			return err
		case kind == '-':
			return replyError(line)
		case kind != '+':
			return errProtocol
		}
	}
	return nil
}

// do writes the commands that write appends as one call expecting replies replies, the integers
// of which go to ints, and waits for them. It returns how many replies came, and the first error
// reply (the commands after it were carried out too: all replies came), or the link's end, or
// ctx's.
func (l *link) do(ctx context.Context, replies int, ints []int, write func(out []byte) []byte) (int, error) {
	c := &call{replies: replies, ints: ints, done: make(chan error, 1)}
	l.writing.Lock()
	l.mu.Lock()
	if err := l.err; err != nil {
		l.mu.Unlock()
		l.writing.Unlock()
		return 0, err
	}
	l.pending = append(l.pending, c)
	l.mu.Unlock()
	l.out = write(l.out[:0])
	_ = l.conn.SetWriteDeadline(time.Now().Add(l.writeTimeout))
	_, err := l.conn.Write(l.out)
	if cap(l.out) > outKept {
		l.out = nil
	}
	l.writing.Unlock()
	if err != nil {
		l.fail(err)
		return 0, err
	}
	select {
	case err := <-c.done:
		return int(c.got.Load()), err
	case <-ctx.Done():
		return int(c.got.Load()), ctx.Err()
	}
}

// settle records one reply to the oldest call: n if it has an integer, err if it is an error
// reply. last ends the call there (an error to SUBSCRIBE, which then confirms no topic).
func (l *link) settle(n int, isInt bool, err error, last bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) == 0 {
		return errProtocol // a reply to nothing: the stream is not what it seems
	}
	c := l.pending[0]
	i := int(c.got.Load())
	if isInt && i < len(c.ints) {
		c.ints[i] = n
	}
	if err != nil && c.err == nil {
		c.err = err
	}
	c.got.Add(1)
	if c.replies--; c.replies > 0 && !last {
		return nil
	}
	c.done <- c.err
	l.pending[0] = nil
	l.pending = l.pending[1:]
	return nil
}

// fail ends the link after a failed write: what was half written leaves nothing to read. err is
// the reason the link gives, rather than the reader's closed connection.
func (l *link) fail(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
	l.conn.Close()
}

// end records why the reader stopped, unless a write failed first, and fails every call still
// waiting.
func (l *link) end(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	err = l.err
	waiting := l.pending
	l.pending = nil
	l.mu.Unlock()
	for _, c := range waiting {
		c.done <- err
	}
	close(l.ended)
}

// close closes the connection and waits for the reader to return.
func (l *link) close() {
	l.conn.Close()
	<-l.ended
}

// readReplies is a publishing link's reader: every reply settles the oldest call. An array's
// reply (PUBSUB NUMSUB's) settles with its last integer.
func (l *link) readReplies() {
	var err error
	for err == nil {
		err = l.readReply()
	}
	l.end(err)
}

func (l *link) readReply() error {
	kind, line, err := l.line()
	if err != nil {
		return err
	}
	switch kind {
	case ':':
		n, err := strconv.Atoi(string(line))
		if err != nil {
			return errProtocol
		}
		return l.settle(n, true, nil, false)
	case '+':
		return l.settle(0, false, nil, false)
	case '-':
		return l.settle(0, false, replyError(line), false)
	case '$':
		if err := l.skipBulk(line); err != nil {
			return err
		}
		return l.settle(0, false, nil, false)
	case '*':
		elements, err := strconv.Atoi(string(line))
		if err != nil {
			return errProtocol
		}
		last, isInt := 0, false
		for range elements {
			kind, line, err := l.line()
			switch {
			case err != nil:
				return err
			case kind == ':':
				if last, err = strconv.Atoi(string(line)); err != nil {
					return errProtocol
				}
				isInt = true
			case kind == '$':
				if err := l.skipBulk(line); err != nil {
					return err
				}
			default:
				return errProtocol
			}
		}
		return l.settle(last, isInt, nil, false)
	}
	return errProtocol
}

// line reads one line, returning its type byte and the rest without CRLF; the rest is valid until
// the next read.
func (l *link) line() (byte, []byte, error) {
	b, err := l.r.ReadSlice('\n')
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
func (l *link) bulkLength() (int, error) {
	kind, line, err := l.line()
	if err != nil {
		return 0, err
	}
	if kind != '$' {
		return 0, errProtocol
	}
	return parseBulkLength(line)
}

func parseBulkLength(line []byte) (int, error) {
	n, err := strconv.Atoi(string(line))
	if err != nil || n < 0 || n > maxBulk {
		return 0, errProtocol
	}
	return n, nil
}

// bulk reads a bulk string into l.scratch.
func (l *link) bulk() error {
	n, err := l.bulkLength()
	if err != nil {
		return err
	}
	if cap(l.scratch) < n {
		l.scratch = make([]byte, n)
	}
	l.scratch = l.scratch[:n]
	return l.readFull(l.scratch)
}

// skipBulk skips the bulk string whose header's rest is line.
func (l *link) skipBulk(line []byte) error {
	if string(line) == "-1" {
		return nil // null
	}
	n, err := parseBulkLength(line)
	if err != nil {
		return err
	}
	if _, err := l.r.Discard(n); err != nil {
		return err
	}
	return l.crlf()
}

// readFull reads exactly len(b) bytes and the CRLF after them.
func (l *link) readFull(b []byte) error {
	if _, err := io.ReadFull(l.r, b); err != nil {
		return err
	}
	return l.crlf()
}

func (l *link) crlf() error {
	cr, err := l.r.ReadByte()
	if err != nil {
		return err
	}
	lf, err := l.r.ReadByte()
	if err != nil {
		return err
	}
	if cr != '\r' || lf != '\n' {
		return errProtocol
	}
	return nil
}

// appendCommand appends a RESP array of name and args.
func appendCommand(dst []byte, name string, args ...string) []byte {
	dst = appendBulk(appendArray(dst, 1+len(args)), name)
	for _, a := range args {
		dst = appendBulk(dst, a)
	}
	return dst
}

// appendArray appends the header of a RESP array of n elements, which the caller appends next.
func appendArray(dst []byte, n int) []byte {
	dst = append(dst, '*')
	dst = strconv.AppendInt(dst, int64(n), 10)
	return append(dst, "\r\n"...)
}

func appendBulk[S string | []byte](dst []byte, s S) []byte {
	dst = append(dst, '$')
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, "\r\n"...)
	dst = append(dst, s...)
	return append(dst, "\r\n"...)
}
