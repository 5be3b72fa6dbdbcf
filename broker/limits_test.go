package broker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/wsbroker/wsbroker/internal/writeq"
	"github.com/wsbroker/wsbroker/internal/wsproto"
	"github.com/wsbroker/wsbroker/internal/wstest"
)

// waitFor polls cond until it holds (a condition, not a duration, is awaited).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// listenAlso starts another listener of b with lim.
func listenAlso(t *testing.T, b *Broker, lim Limits) string {
	t.Helper()
	a, err := b.Listen([]string{"127.0.0.1:0"}, lim)
	if err != nil {
		t.Fatal(err)
	}
	return a.Addrs()[0].String()
}

// collect reads every message of c into a channel until the connection ends; the final error
// goes to the second channel.
func collect(c *websocket.Conn) (chan []byte, chan error) {
	msgs, end := make(chan []byte, 100000), make(chan error, 1)
	go func() {
		for {
			_, p, err := c.Read(context.Background())
			if err != nil {
				end <- err
				return
			}
			msgs <- p
		}
	}()
	return msgs, end
}

func awaitMsg(t *testing.T, ch chan []byte, want string) {
	t.Helper()
	select {
	case p := <-ch:
		if string(p) != want {
			t.Fatalf("got %q, want %q", trunc(p), want)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %q", want)
	}
}

func TestLimitsValidation(t *testing.T) {
	d := DefaultLimits()
	if d.MaxPayload != 16<<20 || d.IdleTimeout != 30*time.Second || d.HandshakeTimeout != 10*time.Second ||
		d.MaxHeaderBytes != 16<<10 || d.MaxConnections != 0 || d.MaxBackpressure != 16<<20 || d.OpenTimeout != 10*time.Second {
		t.Fatalf("defaults %+v", d)
	}
	r, err := Limits{}.resolve()
	// The defaults, and the threshold derived from MaxBackpressure.
	if want := d; err != nil || r.IdleTimeout != 0 || func() bool {
		want.IdleTimeout, want.BackpressureThreshold = 0, 1<<20
		return !reflect.DeepEqual(r, want)
	}() {
		t.Fatalf("zero limits resolve to %+v %v", r, err)
	}
	lowered := d
	lowered.MaxBackpressure = 256 << 10
	if r, err := lowered.resolve(); err != nil || r.BackpressureThreshold != 128<<10 {
		t.Fatalf("the defaults with MaxBackpressure lowered resolve to BackpressureThreshold %d, %v", r.BackpressureThreshold, err)
	}
	b := New(newRecorder(), Options{Logger: testLogger()})
	t.Cleanup(b.Close)
	for name, lim := range map[string]Limits{
		"MaxPayload":       {MaxPayload: -1},
		"IdleTimeout":      {IdleTimeout: -time.Millisecond},
		"HandshakeTimeout": {HandshakeTimeout: -1},
		"MaxHeaderBytes":   {MaxHeaderBytes: -1},
		"MaxConnections":   {MaxConnections: -5},
		"MaxBackpressure":  {MaxBackpressure: -1},
		"OpenTimeout":      {OpenTimeout: -time.Second},
	} {
		_, err := b.Listen([]string{"127.0.0.1:0"}, lim)
		if err == nil || !strings.Contains(err.Error(), name+" must not be negative") {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := b.Listen([]string{"127.0.0.1:0"}, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
}

func TestIdlePingThenClose(t *testing.T) {
	const idle = 200 * time.Millisecond
	rec := newRecorder()
	_, addr := start(t, rec, Limits{IdleTimeout: idle})
	r := rawDial(t, addr, nil)
	id := await(t, rec.opens, "open").id
	// Answering each ping keeps the socket open: the server pings again.
	for i := 0; i < 3; i++ {
		since := time.Now()
		h, p := r.readFrame()
		if h.OpCode != ws.OpPing || len(p) != 0 {
			t.Fatalf("got %v %q, want an empty ping", h.OpCode, p)
		}
		if d := time.Since(since); d < idle*3/4 {
			t.Fatalf("ping after %v, idle timeout %v", d, idle)
		}
		r.send(wstest.Frame(0x8A, nil))
	}
	// Any input counts too.
	h, _ := r.readFrame()
	if h.OpCode != ws.OpPing {
		t.Fatalf("got %v", h.OpCode)
	}
	r.send(wstest.Frame(0x81, []byte("still here")))
	if m := await(t, rec.msgs, "text"); string(m.data) != "still here" {
		t.Fatalf("got %q", m.data)
	}
	// No answer: closed with 1001 after as long again.
	if h, _ := r.readFrame(); h.OpCode != ws.OpPing {
		t.Fatalf("got %v", h.OpCode)
	}
	since := time.Now()
	r.expectClose(wstest.ClosePayload(1001, ""))
	if d := time.Since(since); d < idle*3/4 {
		t.Fatalf("closed %v after the ping, idle timeout %v", d, idle)
	}
	if e := await(t, rec.closes, "close"); e.id != id {
		t.Fatalf("close of %d", e.id)
	}
}

func TestIdleNotCountedWhileHandlerBlocks(t *testing.T) {
	// The bridge blocks in Handler calls to pause reading (its worker is behind). That time is not
	// idle time: the client that sent the message is not pinged, let alone closed.
	const idle = 200 * time.Millisecond
	rec := newRecorder()
	_, addr := start(t, rec, Limits{IdleTimeout: idle})
	returned := make(chan time.Time, 1)
	rec.onText = func(c *Conn, p []byte) {
		if string(p) == "block" {
			time.Sleep(4 * idle) // the handler is busy: this is the scenario, not synchronisation
			returned <- time.Now()
		}
	}
	r := rawDial(t, addr, nil)
	id := await(t, rec.opens, "open").id
	r.send(wstest.Frame(0x81, []byte("block")))
	h, _ := r.readFrame() // nothing comes while the handler blocks
	got := time.Now()
	if h.OpCode != ws.OpPing {
		t.Fatalf("got %v, want a ping", h.OpCode)
	}
	back := <-returned
	if d := got.Sub(back); d < idle*3/4 {
		t.Fatalf("pinged %v after the handler returned (idle timeout %v): blocked time was counted", d, idle)
	}
	r.send(wstest.Frame(0x8A, nil))
	r.send(wstest.Frame(0x81, []byte("after")))
	for {
		m := await(t, rec.msgs, "text")
		if string(m.data) == "after" {
			break
		}
	}
	if n := rec.closesOf(id); n != 0 {
		t.Fatal("closed")
	}
}

func TestIdleIndependentClientStaysOpen(t *testing.T) {
	// coder/websocket answers pings by itself while it reads.
	const idle = 100 * time.Millisecond
	rec := newRecorder()
	b, addr := start(t, rec, Limits{IdleTimeout: idle})
	c, id := dialOpen(t, rec, addr)
	msgs, _ := collect(c)
	time.Sleep(6 * idle) // several ping rounds pass: the scenario, not synchronisation
	b.Send(id, []byte("still open"), true)
	awaitMsg(t, msgs, "still open")
	if len(rec.closes) != 0 {
		t.Fatal("closed")
	}
}

func TestMaxConnections(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{MaxConnections: 2})
	other := listenAlso(t, b, Limits{})
	rec.onOpen = func(c *Conn, req *Request) {
		if req.URL != "/pending" {
			b.Accept(c.ID(), true)
		}
	}
	// A pending open counts.
	p := rawConnect(t, addr)
	p.send([]byte(wstest.UpgradeRequest("/pending")))
	pendingID := await(t, rec.opens, "open").id
	c1, id1 := dialOpen(t, rec, addr)

	refused := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_, resp, err := websocket.Dial(ctx, "ws://"+addr+"/", nil)
		if err == nil || resp == nil || resp.StatusCode != 503 {
			t.Fatalf("dial over the limit: %v %v", err, resp)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "Too many connections" {
			t.Fatalf("body %q", body)
		}
	}
	refused()
	r := rawConnect(t, addr)
	r.send([]byte(wstest.UpgradeRequest("/")))
	if st := r.status(); st != 503 {
		t.Fatalf("got %d", st)
	}
	r.expectEOF()
	// The other listener has its own count.
	dialOpen(t, rec, other)
	dialOpen(t, rec, other)
	dialOpen(t, rec, other)

	// One closes: a new one is accepted.
	c1.Close(websocket.StatusNormalClosure, "")
	if e := await(t, rec.closes, "close"); e.id != id1 {
		t.Fatalf("close of %d", e.id)
	}
	dialOpen(t, rec, addr)
	refused()
	// The pending one is rejected: its place is free once it is answered.
	b.Accept(pendingID, false)
	if st := p.status(); st != 403 {
		t.Fatalf("got %d", st)
	}
	dialOpen(t, rec, addr)
	refused()
	if len(rec.opens) != 0 {
		t.Fatal("Open called for a refused connection")
	}
}

func TestHandshakeLimitsPerListener(t *testing.T) {
	rec := newRecorder()
	b, strict := start(t, rec, Limits{MaxHeaderBytes: 1024, HandshakeTimeout: 200 * time.Millisecond})
	loose := listenAlso(t, b, Limits{})
	big := strings.Replace(wstest.UpgradeRequest("/"), "Host: test\r\n", "Host: test\r\nX-Big: "+strings.Repeat("b", 1500)+"\r\n", 1)

	r := rawConnect(t, strict)
	r.send([]byte(big))
	if st := r.status(); st != 431 {
		t.Fatalf("strict listener: %d", st)
	}
	r.expectEOF()
	// Refused as soon as the limit is passed, without waiting for the end of the head.
	r = rawConnect(t, strict)
	r.send([]byte("GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 1100)))
	if st := r.status(); st != 431 {
		t.Fatalf("strict listener, unfinished head: %d", st)
	}
	r = rawConnect(t, loose)
	r.send([]byte(big))
	if st := r.status(); st != 101 {
		t.Fatalf("loose listener: %d", st)
	}
	await(t, rec.opens, "open")

	// Slowloris: the connection is closed once HandshakeTimeout passes.
	r = rawConnect(t, strict)
	since := time.Now()
	r.send([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
	r.expectEOF()
	if d := time.Since(since); d < 150*time.Millisecond {
		t.Fatalf("closed after %v", d)
	}
	// A client that sends nothing at all is closed too: the kernel hands it over after about
	// deferAcceptSeconds (Linux), and HandshakeTimeout runs from then.
	r = rawConnect(t, strict)
	since = time.Now()
	r.expectEOF()
	if d := time.Since(since); d < 150*time.Millisecond {
		t.Fatalf("silent client closed after %v", d)
	}
	// Just under the limit is fine.
	head := wstest.UpgradeRequest("/")
	pad := 1024 - (len(head) - 4) - len("X: \r\n")
	r = rawConnect(t, strict)
	r.send([]byte(strings.Replace(head, "Host: test\r\n", "Host: test\r\nX: "+strings.Repeat("p", pad)+"\r\n", 1)))
	if st := r.status(); st != 101 {
		t.Fatalf("head of exactly 1024 bytes: %d", st)
	}
}

func TestCloseSocketValidation(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	_, id := dialOpen(t, rec, addr)
	for _, code := range []uint16{0, 999, 1001, 1002, 1005, 1006, 1012, 1015, 2999, 5000, 65535} {
		ok, err := b.CloseSocket(id, code, nil)
		if ok || err == nil || !strings.Contains(err.Error(), "1000") || !strings.Contains(err.Error(), "3000 to 4999") {
			t.Fatalf("code %d: %v %v", code, ok, err)
		}
	}
	if ok, err := b.CloseSocket(id, 1000, bytes.Repeat([]byte("r"), 124)); ok || err == nil || !strings.Contains(err.Error(), "at most 123 bytes") {
		t.Fatalf("long reason: %v %v", ok, err)
	}
	if ok, err := b.CloseSocket(id, 4000, []byte("a\xffb")); ok || err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("invalid reason: %v %v", ok, err)
	}
	// Arguments are checked before the id.
	if _, err := b.CloseSocket(id+100, 1001, nil); err == nil {
		t.Fatal("invalid code on an unknown id accepted")
	}
	if ok, err := b.CloseSocket(id+100, 1000, nil); ok || err != nil {
		t.Fatalf("unknown id: %v %v", ok, err)
	}
	if len(rec.closes) != 0 {
		t.Fatal("closed by an invalid call")
	}
}

func TestCloseSocket(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{}, func(b *Broker) { b.drainTimeout = 300 * time.Millisecond })

	// An independent client sees the code and the reason; Close follows once.
	c, id := dialOpen(t, rec, addr)
	reason := strings.Repeat("✓", 41) // 123 bytes
	if ok, err := b.CloseSocket(id, 4000, []byte(reason)); !ok || err != nil {
		t.Fatalf("CloseSocket: %v %v", ok, err)
	}
	if ok, err := b.CloseSocket(id, 1000, nil); ok || err != nil {
		t.Fatalf("second CloseSocket: %v %v", ok, err)
	}
	b.Send(id, []byte("after close"), true) // dropped
	_, _, err := c.Read(context.Background())
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4000 || ce.Reason != reason {
		t.Fatalf("client saw %v", err)
	}
	if e := await(t, rec.closes, "close"); e.id != id {
		t.Fatalf("close of %d", e.id)
	}

	// Raw: the exact frame; Close comes after the peer answers.
	r := rawDial(t, addr, nil)
	id = await(t, rec.opens, "open").id
	b.CloseSocket(id, 1000, []byte("done"))
	h, p := r.readFrame()
	if h.OpCode != ws.OpClose || !bytes.Equal(p, wstest.ClosePayload(1000, "done")) {
		t.Fatalf("got %v %q", h.OpCode, p)
	}
	r.send(wstest.Frame(0x88, wstest.ClosePayload(1000, "")))
	r.expectEOF()
	if e := await(t, rec.closes, "close"); e.id != id {
		t.Fatalf("close of %d", e.id)
	}

	// A peer that never answers: Close after the drain timeout.
	r = rawDial(t, addr, nil)
	id = await(t, rec.opens, "open").id
	since := time.Now()
	b.CloseSocket(id, 3000, nil)
	if e := await(t, rec.closes, "close"); e.id != id {
		t.Fatalf("close of %d", e.id)
	}
	if d := time.Since(since); d < 250*time.Millisecond {
		t.Fatalf("Close after %v, before the drain timeout", d)
	}
	r.expectClose(wstest.ClosePayload(3000, ""))

	for _, id := range []uint64{1, 2, 3} {
		if n := rec.closesOf(id); n != 1 {
			t.Fatalf("socket %d: %d Close events", id, n)
		}
	}
}

func TestCloseSocketPending(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	rec.onOpen = func(c *Conn, req *Request) {
		b.Send(c.ID(), []byte("hello"), true)
		if ok, err := b.CloseSocket(c.ID(), 4002, []byte("later")); !ok || err != nil {
			t.Errorf("CloseSocket on a pending socket: %v %v", ok, err)
		}
		if ok, _ := b.CloseSocket(c.ID(), 4003, nil); ok {
			t.Error("second CloseSocket on a pending socket")
		}
		b.Send(c.ID(), []byte("dropped"), true)
	}
	// Accepted: what was sent, then the close frame.
	r := rawConnect(t, addr)
	r.send([]byte(wstest.UpgradeRequest("/")))
	id := await(t, rec.opens, "open").id
	b.Accept(id, true)
	if resp := r.response(); resp.StatusCode != 101 {
		t.Fatalf("got %v", resp.Status)
	}
	if h, p := r.readFrame(); h.OpCode != ws.OpText || string(p) != "hello" {
		t.Fatalf("got %v %q", h.OpCode, p)
	}
	if h, p := r.readFrame(); h.OpCode != ws.OpClose || !bytes.Equal(p, wstest.ClosePayload(4002, "later")) {
		t.Fatalf("got %v %q", h.OpCode, p)
	}
	r.send(wstest.Frame(0x88, wstest.ClosePayload(4002, "")))
	r.expectEOF()
	if e := await(t, rec.closes, "close"); e.id != id {
		t.Fatalf("close of %d", e.id)
	}

	// Rejected: nothing but the 403, and no Close event.
	r = rawConnect(t, addr)
	r.send([]byte(wstest.UpgradeRequest("/")))
	id = await(t, rec.opens, "open").id
	b.Accept(id, false)
	if st := r.status(); st != 403 {
		t.Fatalf("got %d", st)
	}
	r.expectEOF()
	b.Close()
	if n := rec.closesOf(id); n != 0 {
		t.Fatal("Close event for a rejected socket")
	}
}

// TestCloseSocketPendingThenRejected: a close frame queued while the verdict is awaited is dropped
// with the rest of the queue when the socket is rejected: 403, no close frame, no Close event.
func TestCloseSocketPendingThenRejected(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	rec.onOpen = func(c *Conn, req *Request) {
		b.Send(c.ID(), []byte("never"), true)
		if ok, err := b.CloseSocket(c.ID(), 4002, nil); !ok || err != nil {
			t.Errorf("CloseSocket on a pending socket: %v %v", ok, err)
		}
	}
	r := rawConnect(t, addr)
	r.send([]byte(wstest.UpgradeRequest("/")))
	id := await(t, rec.opens, "open").id
	if !b.Accept(id, false) {
		t.Fatal("Accept(false) on a socket with a close frame queued returned false")
	}
	resp := r.response()
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != 403 || string(body) != "Connection rejected" {
		t.Fatalf("got %v %q", resp.Status, body)
	}
	r.expectEOF() // and no close frame
	if ok, _ := b.CloseSocket(id, 4003, nil); ok {
		t.Fatal("CloseSocket on a rejected socket")
	}
	b.Close()
	if n := rec.closesOf(id); n != 0 {
		t.Fatalf("%d Close events for a rejected socket", n)
	}
}

func TestBackpressureClientNeverReads(t *testing.T) {
	const limit = 1 << 20
	rec := newRecorder()
	b, addr := start(t, rec, Limits{MaxBackpressure: limit}, func(b *Broker) { b.drainTimeout = 500 * time.Millisecond })
	slow := rawDial(t, addr, nil)
	slow.nc.SetDeadline(time.Time{})
	se := await(t, rec.opens, "open")
	fast, fastID := dialOpen(t, rec, addr)
	fastConn := rec.b.hub.lookup(fastID)
	msgs, _ := collect(fast)

	big := bytes.Repeat([]byte("x"), 64<<10)
	sent := 0
	for ; sent < 4000 && !se.c.state.Load().ending(); sent++ {
		b.Send(se.id, big, false)
		if q := se.c.queued(); q > limit+wsproto.FrameLen(len(big))+writeq.FrameOverhead {
			t.Fatalf("%d bytes queued, limit %d plus one message", q, limit)
		}
		b.Send(fastID, []byte(msgName(sent)), true)
	}
	if !se.c.state.Load().ending() {
		t.Fatalf("not closed after %d MiB", sent/16)
	}
	t.Logf("closed with 1008 after %d frames of 64 KiB", sent)
	// The queue is freed at once; the writer keeps at most the rest of a frame it had begun.
	waitFor(t, "the queue to be freed", func() bool { return se.c.queued() <= len(big)+16+2*writeq.FrameOverhead+4 })
	// The other client is not slowed down.
	for i := 0; i < sent; i++ {
		awaitMsg(t, msgs, msgName(i))
	}
	// The peer does not read: the TCP connection is ended after the drain timeout.
	if e := await(t, rec.closes, "close"); e.id != se.id {
		t.Fatalf("close of %d", e.id)
	}
	if q := se.c.queued(); q != 0 {
		t.Fatalf("%d bytes still queued after Close", q)
	}
	slow.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	n, err := io.Copy(io.Discard, slow.nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("TCP connection not ended (read %d bytes)", n)
	}
	t.Logf("the slow client then read %d bytes and %v", n, err)
	b.Send(fastID, []byte("end"), true)
	awaitMsg(t, msgs, "end")
	waitFor(t, "the other socket's queue to empty", func() bool { return fastConn.queued() == 0 })
	if n := rec.closesOf(se.id); n != 1 {
		t.Fatalf("%d Close events", n)
	}
}

func TestBackpressureLateReaderSees1008(t *testing.T) {
	const limit = 1 << 20
	rec := newRecorder()
	b, addr := start(t, rec, Limits{MaxBackpressure: limit})
	c, id := dialOpen(t, rec, addr)
	conn := b.hub.lookup(id)
	frameOf := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 64<<10) }
	sent := 0
	for ; sent < 4000 && !conn.state.Load().ending(); sent++ {
		b.Send(id, frameOf(sent), false)
	}
	if !conn.state.Load().ending() {
		t.Fatal("not closed")
	}
	// The client reads now: a prefix of the messages, whole, then the close frame with 1008.
	got := 0
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for {
		_, p, err := c.Read(ctx)
		if err != nil {
			if s := websocket.CloseStatus(err); s != websocket.StatusPolicyViolation {
				t.Fatalf("after %d messages: %v", got, err)
			}
			break
		}
		if !bytes.Equal(p, frameOf(got)) {
			t.Fatalf("message %d: %d bytes, first %d", got, len(p), p[0])
		}
		got++
	}
	t.Logf("%d frames sent, %d received before the 1008 close frame", sent, got)
	if e := await(t, rec.closes, "close"); e.id != id {
		t.Fatalf("close of %d", e.id)
	}
}

func TestBackpressureTakesAMessageWhole(t *testing.T) {
	// A message larger than MaxBackpressure sent into a queue under it is written whole (with the
	// limits equal, the echo of a message of MaxPayload); only a send to a queue already over the
	// limit closes the socket.
	const limit = 1 << 20
	rec := newRecorder()
	b, addr := start(t, rec, Limits{MaxBackpressure: limit, MaxPayload: 4 * limit})
	rec.onBinary = func(c *Conn, data []byte) { b.Send(c.ID(), data, false) }
	c, _ := dialOpen(t, rec, addr)
	c.SetReadLimit(8 * limit)
	big := bytes.Repeat([]byte("0123456789abcdef"), 4*limit/16)
	write(t, c, websocket.MessageBinary, big)
	if typ, p := read(t, c); typ != websocket.MessageBinary || !bytes.Equal(p, big) {
		t.Fatalf("got %v, %d bytes", typ, len(p))
	}
	write(t, c, websocket.MessageText, []byte("still open"))
	await(t, rec.msgs, "the big message")
	if e := await(t, rec.msgs, "the text after it"); string(e.data) != "still open" {
		t.Fatalf("got %q", e.data)
	}
}

func TestPongFloodIsBounded(t *testing.T) {
	// A client that pings without reading makes the server queue pongs: they count against
	// MaxBackpressure like any frame (with their overhead), so the socket is closed with 1008.
	const limit = 64 << 10
	rec := newRecorder()
	_, addr := start(t, rec, Limits{MaxBackpressure: limit})
	r := rawDial(t, addr, nil)
	e := await(t, rec.opens, "open")
	ping := wstest.Frame(0x89, []byte("p"))
	burst := bytes.Repeat(ping, 1000)
	for i := 0; !e.c.state.Load().ending(); i++ {
		if i == 10000 {
			t.Fatal("not closed")
		}
		r.send(burst)
		if q := e.c.queued(); q > limit+wsproto.FrameLen(1)+writeq.FrameOverhead {
			t.Fatalf("%d bytes queued, limit %d plus one pong", q, limit)
		}
	}
	pongs := 0
	for {
		h, p := r.readFrame()
		if h.OpCode == ws.OpClose {
			if !bytes.Equal(p, wstest.ClosePayload(1008, "")) {
				t.Fatalf("close payload %x", p)
			}
			break
		}
		if h.OpCode != ws.OpPong || string(p) != "p" {
			t.Fatalf("got %v %q", h.OpCode, p)
		}
		pongs++
	}
	t.Logf("%d pongs before the 1008 close frame", pongs)
	r.send(wstest.Frame(0x88, nil))
	r.expectEOF()
	await(t, rec.closes, "close")
}

func TestIndependentClientPingAndFragments(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	rec.onText = func(c *Conn, p []byte) { b.Send(c.ID(), p, true) }
	c, _ := dialOpen(t, rec, addr)
	msgs, _ := collect(c) // Ping needs a concurrent reader for the pong
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	// coder/websocket sends a payload and waits for a pong with that same payload.
	for i := 0; i < 3; i++ {
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("ping: %v", err)
		}
	}
	// A fragmented message (one frame per Write, an empty final frame), pings in between, and
	// "€" cut across fragments.
	w, err := c.Writer(ctx, websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	parts := [][]byte{[]byte("frag"), []byte("ments \xe2\x82"), []byte("\xac ok")}
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("ping between fragments: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	awaitMsg(t, msgs, "fragments € ok")
	// The client's close code and reason: the code is echoed.
	if err := c.Close(4123, "bye"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
	await(t, rec.closes, "close")
}

func TestBrokerCloseWithBlockedHandler(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	release := make(chan struct{})
	blocked := make(chan struct{})
	rec.onText = func(c *Conn, p []byte) {
		if string(p) == "block" {
			close(blocked)
			<-release
		}
	}
	cx, idx := dialOpen(t, rec, addr)
	cy, idy := dialOpen(t, rec, addr)
	write(t, cx, websocket.MessageText, []byte("block"))
	<-blocked
	done := make(chan struct{})
	go func() { b.Close(); close(done) }()
	// Both clients get 1001 at once, the blocked one too: writing does not wait for the reader.
	if s := readCloseStatus(t, cy); s != websocket.StatusGoingAway {
		t.Fatalf("free client: %v", s)
	}
	if e := await(t, rec.closes, "close"); e.id != idy {
		t.Fatalf("close of %d", e.id)
	}
	if s := readCloseStatus(t, cx); s != websocket.StatusGoingAway {
		t.Fatalf("blocked client: %v", s)
	}
	select {
	case <-done:
		t.Fatal("Close returned before every Close event")
	default:
	}
	close(release)
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Close did not return")
	}
	if rec.closesOf(idx) != 1 || rec.closesOf(idy) != 1 {
		t.Fatal("Close events")
	}
}

func TestBackpressurePending(t *testing.T) {
	// Sends queued during Open count too: a message larger than the limit is taken whole, the
	// next send finds the queue over it and closes the socket. The 101 response survives the drop
	// of the queue; the close frame follows it once accepted.
	rec := newRecorder()
	b, addr := start(t, rec, Limits{MaxBackpressure: 4096})
	rec.onOpen = func(c *Conn, req *Request) {
		b.Send(c.ID(), []byte("small"), true)
		b.Send(c.ID(), make([]byte, 5000), false)
		b.Send(c.ID(), []byte("dropped"), true)
	}
	r := rawConnect(t, addr)
	r.send([]byte(wstest.UpgradeRequest("/")))
	e := await(t, rec.opens, "open")
	if !e.c.state.Load().ending() {
		t.Fatal("not closing")
	}
	b.Accept(e.id, true)
	if resp := r.response(); resp.StatusCode != 101 {
		t.Fatalf("got %v", resp.Status)
	}
	r.expectClose(wstest.ClosePayload(1008, ""))
	if e2 := await(t, rec.closes, "close"); e2.id != e.id {
		t.Fatalf("close of %d", e2.id)
	}
}

// TestTCPKeepAliveOnlyWithoutIdlePings: connections of a listener whose IdleTimeout pings have no
// TCP keep-alive (no probe every 15 s on top of the pings); with IdleTimeout 0 they keep Go's.
func TestTCPKeepAliveOnlyWithoutIdlePings(t *testing.T) {
	rec := newRecorder()
	b, pinging := start(t, rec, Limits{IdleTimeout: time.Minute})
	silent := listenAlso(t, b, Limits{})
	for _, tc := range []struct {
		addr string
		want int
	}{{pinging, 0}, {silent, 1}} {
		_, id := dialOpen(t, rec, tc.addr)
		c := b.hub.lookup(id)
		got := -1
		c.rc.Control(func(fd uintptr) {
			got, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
		})
		if got != tc.want {
			t.Fatalf("SO_KEEPALIVE %d on %s, want %d", got, tc.addr, tc.want)
		}
	}
}
