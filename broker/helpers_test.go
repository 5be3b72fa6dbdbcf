package broker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/wsbroker/wsbroker/internal/wstest"
)

const waitTimeout = 10 * time.Second

type event struct {
	c      *Conn
	id     uint64
	text   bool
	data   []byte
	token  []byte
	req    *Request
	code   uint16 // Close: CloseCause
	reason []byte // Close: the reason of CloseCause
}

// recorder is the test Handler: it records events on channels. By default Open accepts.
type recorder struct {
	b        *Broker
	onOpen   func(c *Conn, req *Request)
	onText   func(c *Conn, data []byte)
	onBinary func(c *Conn, data []byte)
	onRead   func(c *Conn) // ReadDone

	opens  chan event
	msgs   chan event
	closes chan event

	mu         sync.Mutex
	closeCount map[uint64]int
}

func newRecorder() *recorder {
	return &recorder{
		opens:      make(chan event, 10000),
		msgs:       make(chan event, 10000),
		closes:     make(chan event, 10000),
		closeCount: make(map[uint64]int),
	}
}

func (r *recorder) Open(c *Conn, req *Request) {
	e := event{c: c, id: c.ID(), token: bytes.Clone(c.Token()), req: req}
	// The event is recorded after onOpen so that a test sees what onOpen did.
	defer func() { r.opens <- e }()
	if r.onOpen != nil {
		r.onOpen(c, req)
		return
	}
	r.b.Accept(c.ID(), true)
}

func (r *recorder) Text(c *Conn, data []byte) {
	if r.onText != nil {
		r.onText(c, data)
	}
	r.msgs <- event{c: c, id: c.ID(), text: true, data: bytes.Clone(data), token: bytes.Clone(c.Token())}
}

func (r *recorder) Binary(c *Conn, data []byte) {
	if r.onBinary != nil {
		r.onBinary(c, data)
	}
	r.msgs <- event{c: c, id: c.ID(), data: bytes.Clone(data), token: bytes.Clone(c.Token())}
}

func (r *recorder) ReadDone(c *Conn) {
	if r.onRead != nil {
		r.onRead(c)
	}
}

func (r *recorder) Close(c *Conn) {
	r.mu.Lock()
	r.closeCount[c.ID()]++
	r.mu.Unlock()
	code, reason := c.CloseCause()
	r.closes <- event{c: c, id: c.ID(), token: bytes.Clone(c.Token()), code: code, reason: bytes.Clone(reason)}
}

func (r *recorder) closesOf(id uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closeCount[id]
}

func await[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// testLogger writes the broker's lines to stderr with BROKER_DEBUG set, else discards them.
func testLogger() *slog.Logger {
	if os.Getenv("BROKER_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// start returns a Broker listening on a loopback port; it is closed when the test ends.
func start(t testing.TB, rec *recorder, lim Limits, configure ...func(*Broker)) (*Broker, string) {
	t.Helper()
	return startHandler(t, rec, rec, lim, configure...)
}

// unpolled has connections read by a goroutine each, as where epoll is missing. `make test`
// runs the broker's tests once more with BROKER_UNPOLLED set, which applies it to every test
// but those that test the pollers (polled).
func unpolled(b *Broker) { b.pollOnce.Do(func() {}) }

// polled makes b's pollers now, so that connections are polled even with BROKER_UNPOLLED.
func polled(b *Broker) { b.pollers() }

// routed has b's connections routed to its pollers in turn, as the Node bridge routes them on one
// core (embedder.Hooks.Route): their sockets then leave Go's netpoller as they are polled
// (rawSocket). `make test` runs the broker's tests once more with BROKER_ROUTED set, which applies
// it to every test.
func routed(b *Broker) {
	inTurn := func(*Conn) int { return -1 }
	b.route.Store(&inTurn)
}

// configureRuns applies BROKER_UNPOLLED and BROKER_ROUTED to b.
func configureRuns(b *Broker) {
	if os.Getenv("BROKER_UNPOLLED") != "" {
		unpolled(b) // unless a test asked for pollers (polled): the fallback read path, on Linux
	}
	if os.Getenv("BROKER_ROUTED") != "" {
		routed(b)
	}
}

// startHandler is start with h, a Handler built around rec, as the broker's Handler.
func startHandler(t testing.TB, h Handler, rec *recorder, lim Limits, configure ...func(*Broker)) (*Broker, string) {
	t.Helper()
	b := New(h, Options{Logger: testLogger()})
	rec.b = b
	for _, f := range configure {
		f(b)
	}
	configureRuns(b)
	listeners, err := b.Listen([]string{"127.0.0.1:0"}, lim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b, listeners.Addrs()[0].String()
}

func dial(t testing.TB, addr, path string, hdr http.Header) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+path, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(8 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// dialOpen dials and returns the client and the id of its socket (from the Open event).
func dialOpen(t testing.TB, rec *recorder, addr string) (*websocket.Conn, uint64) {
	t.Helper()
	c := dial(t, addr, "/", nil)
	return c, await(t, rec.opens, "open").id
}

func read(t testing.TB, c *websocket.Conn) (websocket.MessageType, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	typ, p, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, p
}

func readText(t testing.TB, c *websocket.Conn, want string) {
	t.Helper()
	typ, p := read(t, c)
	if typ != websocket.MessageText || string(p) != want {
		t.Fatalf("got %v %q, want text %q", typ, trunc(p), trunc([]byte(want)))
	}
}

func write(t *testing.T, c *websocket.Conn, typ websocket.MessageType, p []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.Write(ctx, typ, p); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// readCloseStatus reads until the connection is closed and returns the close code.
func readCloseStatus(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func trunc(p []byte) []byte {
	if len(p) > 64 {
		return p[:64]
	}
	return p
}

// rawClient speaks WebSocket by hand for malformed input.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func rawConnect(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(waitTimeout))
	t.Cleanup(func() { nc.Close() })
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// rawDial connects and upgrades; extra is written right after the request, in the same write.
func rawDial(t *testing.T, addr string, extra []byte) *rawClient {
	t.Helper()
	r := rawConnect(t, addr)
	r.send(append([]byte(wstest.UpgradeRequest("/")), extra...))
	resp := r.response()
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != wstest.AcceptKey {
		t.Fatalf("upgrade: %v %v", resp.Status, resp.Header)
	}
	return r
}

func (r *rawClient) send(p []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(p); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

func (r *rawClient) response() *http.Response {
	r.t.Helper()
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		r.t.Fatalf("read response: %v", err)
	}
	return resp
}

// status reads a response and its body and returns the status code.
func (r *rawClient) status() int {
	r.t.Helper()
	resp := r.response()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		r.t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode
}

func (r *rawClient) readFrame() (ws.Header, []byte) {
	r.t.Helper()
	h, err := ws.ReadHeader(r.br)
	if err != nil {
		r.t.Fatalf("read frame: %v", err)
	}
	if h.Masked {
		r.t.Fatalf("server frame is masked")
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r.br, p); err != nil {
		r.t.Fatalf("read payload: %v", err)
	}
	return h, p
}

// expectClose reads a close frame with the given payload, then EOF.
func (r *rawClient) expectClose(want []byte) {
	r.t.Helper()
	h, p := r.readFrame()
	if h.OpCode != ws.OpClose || !bytes.Equal(p, want) {
		r.t.Fatalf("got frame %v %x, want close %x", h.OpCode, p, want)
	}
	r.expectEOF()
}

func (r *rawClient) expectEOF() {
	r.t.Helper()
	n, err := io.Copy(io.Discard, r.br)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			r.t.Fatalf("connection not closed by the server")
		}
	}
	if n != 0 {
		r.t.Fatalf("%d unexpected bytes before EOF", n)
	}
	r.nc.Close() // as a client does once the server closed
}

func msgName(i int) string { return fmt.Sprintf("m%04d", i) }

// awaitWritesIdle waits until no flusher or writer owns socket id's writes: the client can have
// every byte while the writing goroutine has not yet let go of the socket.
func awaitWritesIdle(t testing.TB, b *Broker, id uint64) {
	t.Helper()
	c := b.hub.lookup(id)
	waitFor(t, fmt.Sprintf("socket %d's writer to let go", id), func() bool {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return !c.q.Writing() && !c.q.Scheduled()
	})
}
