package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/wsbroker/wsbroker/internal/writeq"
	"github.com/wsbroker/wsbroker/internal/wstest"
)

func TestOpenRequestAndIDs(t *testing.T) {
	rec := newRecorder()
	_, addr := start(t, rec, Limits{})
	hdr := http.Header{"X-Multi": {"a", "b"}, "Origin": {"http://example.com"}}
	for want := uint64(1); want <= 3; want++ {
		dial(t, addr, "/chat?room="+strconv.Itoa(int(want)), hdr)
		e := await(t, rec.opens, "open")
		if e.id != want || e.c.ID() != want {
			t.Fatalf("id %d, want %d", e.id, want)
		}
		if e.req.IP != "127.0.0.1" || e.req.URL != "/chat?room="+strconv.Itoa(int(want)) {
			t.Fatalf("request %+v", e.req)
		}
		got := map[string]string{}
		for _, h := range e.req.Headers {
			if h.Name != strings.ToLower(h.Name) {
				t.Fatalf("header name %q not lower-case", h.Name)
			}
			if _, dup := got[h.Name]; dup {
				t.Fatalf("header %q twice", h.Name)
			}
			got[h.Name] = h.Value
		}
		if got["x-multi"] != "a, b" || got["origin"] != "http://example.com" || got["upgrade"] != "websocket" ||
			got["sec-websocket-version"] != "13" || got["sec-websocket-key"] == "" || got["host"] != addr {
			t.Fatalf("headers %v", got)
		}
	}
}

// skipWithoutIPv6 skips a test that needs IPv6, which the machine lacks (err says how); under
// CI=true, where the dual-stack claim must be checked, it fails instead.
func skipWithoutIPv6(t *testing.T, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("no IPv6 (needed under CI=true): %v", err)
	}
	t.Skipf("no IPv6: %v", err)
}

func TestDualStackIP(t *testing.T) {
	rec := newRecorder()
	b := New(rec, Options{Logger: testLogger()})
	rec.b = b
	t.Cleanup(b.Close)
	a, err := b.Listen([]string{"[::]:0"}, Limits{})
	if err != nil {
		skipWithoutIPv6(t, err)
	}
	port := a.Addrs()[0].(*net.TCPAddr).Port
	dial(t, "127.0.0.1:"+strconv.Itoa(port), "/", nil)
	if ip := await(t, rec.opens, "open").req.IP; ip != "127.0.0.1" {
		t.Fatalf("IPv4 peer of a dual-stack listener: %q", ip)
	}
	probe, err := net.Dial("tcp", "[::1]:"+strconv.Itoa(port))
	if err != nil {
		skipWithoutIPv6(t, err)
	}
	probe.Close()
	dial(t, "[::1]:"+strconv.Itoa(port), "/", nil)
	if ip := await(t, rec.opens, "open").req.IP; ip != "::1" {
		t.Fatalf("IPv6 peer: %q", ip)
	}
}

func TestAcceptLaterWithPendingSends(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	rec.onOpen = func(c *Conn, req *Request) {
		id := c.ID()
		b.Send(id, []byte("one"), true)
		b.Send(id, []byte{2}, false)
		b.SetToken(id, []byte("tok"))
		if !b.Subscribe(id, []byte("room")) {
			t.Error("subscribe during Open failed")
		}
	}
	done := make(chan *websocket.Conn)
	go func() {
		c, _, err := websocket.Dial(context.Background(), "ws://"+addr+"/", nil)
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	e := await(t, rec.opens, "open")
	b.SendToChannel([]byte("room"), []byte("three"), true, 0)
	if b.Accept(e.id+1000, true) {
		t.Fatal("Accept of an unknown id returned true")
	}
	if !b.Accept(e.id, true) {
		t.Fatal("Accept returned false")
	}
	if b.Accept(e.id, true) || b.Accept(e.id, false) {
		t.Fatal("second Accept returned true")
	}
	var c *websocket.Conn
	select {
	case c = <-done:
	case <-time.After(waitTimeout):
		t.Fatal("dial did not complete")
	}
	if c == nil {
		t.FailNow()
	}
	defer c.CloseNow()
	readText(t, c, "one")
	if typ, p := read(t, c); typ != websocket.MessageBinary || !bytes.Equal(p, []byte{2}) {
		t.Fatalf("got %v %x", typ, p)
	}
	readText(t, c, "three")
	write(t, c, websocket.MessageText, []byte("hi"))
	if m := await(t, rec.msgs, "text"); string(m.data) != "hi" || string(m.token) != "tok" {
		t.Fatalf("message %q token %q", m.data, m.token)
	}
}

func TestReject(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	rec.onOpen = func(c *Conn, req *Request) {
		b.Send(c.ID(), []byte("never"), true)
		b.Subscribe(c.ID(), []byte("room"))
	}
	r := rawConnect(t, addr)
	r.send([]byte(wstest.UpgradeRequest("/")))
	e := await(t, rec.opens, "open")
	if !b.Accept(e.id, false) {
		t.Fatal("Accept(false) returned false")
	}
	if b.Accept(e.id, true) {
		t.Fatal("Accept after reject returned true")
	}
	if b.Subscribe(e.id, []byte("other")) || b.Unsubscribe(e.id, []byte("room")) {
		t.Fatal("subscription changes on a rejected socket")
	}
	if n := b.SubscriberCount([]byte("room")); n != 0 {
		t.Fatalf("room has %d subscribers", n)
	}
	b.Send(e.id, []byte("x"), true)
	resp := r.response()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || resp.Status != "403 Forbidden" || string(body) != "Connection rejected" {
		t.Fatalf("got %q %q", resp.Status, body)
	}
	r.expectEOF()

	// Rejecting inside Open, and a client library seeing it.
	rec.onOpen = func(c *Conn, req *Request) { b.Accept(c.ID(), false) }
	_, resp, err := websocket.Dial(context.Background(), "ws://"+addr+"/", nil)
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("dial of a rejected socket: %v %v", err, resp)
	}
	resp.Body.Close()
	await(t, rec.opens, "open")
	b.Close()
	if len(rec.closes) != 0 {
		t.Fatal("Close event for a rejected socket")
	}
}

func TestRefuse(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	rec.onOpen = func(c *Conn, req *Request) { b.Subscribe(c.ID(), []byte("room")) }
	r := rawConnect(t, addr)
	r.send([]byte(wstest.UpgradeRequest("/")))
	e := await(t, rec.opens, "open")

	// A refusal that breaks a rule changes nothing: the socket still awaits its verdict.
	if ok, err := b.Refuse(e.id, Refusal{Status: 401, Headers: []Header{{Name: "X-A", Value: "1\r\nX-B: 2"}}}); ok || err == nil {
		t.Fatalf("a header value with CRLF: %v %v", ok, err)
	}
	if ok, err := b.Refuse(e.id, Refusal{Status: 302}); ok || err == nil {
		t.Fatalf("status 302: %v %v", ok, err)
	}
	if n := b.SubscriberCount([]byte("room")); n != 1 {
		t.Fatalf("room has %d subscribers after invalid refusals", n)
	}

	refusal := Refusal{Status: 401, Headers: []Header{{Name: "WWW-Authenticate", Value: `Bearer realm="chat"`}, {Name: "Set-Cookie", Value: "a=1"}, {Name: "Set-Cookie", Value: "b=2"}}, Body: []byte("log in")}
	if ok, err := b.Refuse(e.id, refusal); !ok || err != nil {
		t.Fatalf("Refuse: %v %v", ok, err)
	}
	if ok, err := b.Refuse(e.id, refusal); ok || err != nil {
		t.Fatalf("a second Refuse: %v %v", ok, err)
	}
	if b.Accept(e.id, true) {
		t.Fatal("Accept after Refuse returned true")
	}
	if n := b.SubscriberCount([]byte("room")); n != 0 {
		t.Fatalf("room has %d subscribers", n)
	}
	resp := r.response()
	body, _ := io.ReadAll(resp.Body)
	if resp.Status != "401 Unauthorized" || string(body) != "log in" || resp.Header.Get("WWW-Authenticate") != `Bearer realm="chat"` ||
		strings.Join(resp.Header.Values("Set-Cookie"), ",") != "a=1,b=2" || !resp.Close {
		t.Fatalf("got %q %v %q", resp.Status, resp.Header, body)
	}
	r.expectEOF()
	b.Close()
	if len(rec.closes) != 0 {
		t.Fatal("Close event for a refused socket")
	}
}

func TestRoundTrip(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	rec.onText = func(c *Conn, p []byte) { b.Send(c.ID(), p, true) }
	rec.onBinary = func(c *Conn, p []byte) { b.Send(c.ID(), p, false) }
	c, _ := dialOpen(t, rec, addr)

	big := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(big)
	bigText := strings.Repeat("héllo wörld ✓ 🎉 ", (1<<20)/24)
	cases := []struct {
		typ websocket.MessageType
		p   []byte
	}{
		{websocket.MessageText, []byte{}},
		{websocket.MessageText, []byte("a")},
		{websocket.MessageText, []byte("héllo wörld ✓ 🎉")},
		{websocket.MessageText, []byte(bigText)},
		{websocket.MessageBinary, []byte{}},
		{websocket.MessageBinary, []byte{0}},
		{websocket.MessageBinary, big},
		{websocket.MessageBinary, big[:65535]},
		{websocket.MessageBinary, big[:65536]},
		{websocket.MessageBinary, big[:125]},
		{websocket.MessageBinary, big[:126]},
	}
	for _, tc := range cases {
		write(t, c, tc.typ, tc.p)
		m := await(t, rec.msgs, "message")
		if m.text != (tc.typ == websocket.MessageText) || !bytes.Equal(m.data, tc.p) {
			t.Fatalf("event %v %d bytes, want %v %d bytes", m.text, len(m.data), tc.typ, len(tc.p))
		}
		typ, p := read(t, c)
		if typ != tc.typ || !bytes.Equal(p, tc.p) {
			t.Fatalf("echo %v %d bytes, want %v %d bytes", typ, len(p), tc.typ, len(tc.p))
		}
	}
}

func TestReadDoneFollowsTheMessagesOfEachRead(t *testing.T) {
	rec := newRecorder()
	_, addr := start(t, rec, Limits{})
	var mu sync.Mutex
	var got []string
	rec.onText = func(c *Conn, p []byte) {
		mu.Lock()
		got = append(got, string(p))
		mu.Unlock()
	}
	reads := make(chan string, 10)
	rec.onRead = func(c *Conn) {
		mu.Lock()
		reads <- strings.Join(got, ",")
		got = nil
		mu.Unlock()
	}
	// Messages written together are read together: those that came with the upgrade request,
	// and three in one later write.
	r := rawDial(t, addr, wstest.Cat(wstest.Frame(0x81, []byte("a")), wstest.Frame(0x81, []byte("b"))))
	r.send(wstest.Cat(wstest.Frame(0x81, []byte("c")), wstest.Frame(0x81, []byte("d")), wstest.Frame(0x81, []byte("e"))))
	for _, want := range []string{"a,b", "c,d,e"} {
		select {
		case seen := <-reads:
			if seen != want {
				t.Fatalf("messages before ReadDone: %q, want %q", seen, want)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("no ReadDone after %q", want)
		}
	}
}

func TestFragmentedWithPing(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	rec.onText = func(c *Conn, p []byte) { b.Send(c.ID(), p, true) }
	rec.onBinary = func(c *Conn, p []byte) { b.Send(c.ID(), p, false) }
	// The first frame rides in the same packet as the upgrade request.
	r := rawDial(t, addr, wstest.Frame(0x01, []byte("Hel")))
	await(t, rec.opens, "open")
	r.send(wstest.Cat(
		wstest.Frame(0x89, []byte("ping!")),
		wstest.Frame(0x00, []byte("lo w\xc3")), // "ö" split across fragments
		wstest.Frame(0x8A, []byte("unsolicited pong")),
		wstest.Frame(0x80, []byte("\xb6rld")),
	))
	h, p := r.readFrame()
	if h.OpCode != ws.OpPong || string(p) != "ping!" || !h.Fin {
		t.Fatalf("got %v %q, want pong", h.OpCode, p)
	}
	h, p = r.readFrame()
	if h.OpCode != ws.OpText || string(p) != "Hello wörld" || !h.Fin {
		t.Fatalf("got %v %q", h.OpCode, p)
	}

	// A binary message in three fragments, written one byte at a time.
	msg := wstest.Cat(wstest.Frame(0x02, []byte{1, 2}), wstest.Frame(0x00, nil), wstest.Frame(0x80, []byte{3}))
	for i := range msg {
		r.send(msg[i : i+1])
	}
	h, p = r.readFrame()
	if h.OpCode != ws.OpBinary || !bytes.Equal(p, []byte{1, 2, 3}) {
		t.Fatalf("got %v %x", h.OpCode, p)
	}
	// A large fragmented message (crosses many reads).
	big := bytes.Repeat([]byte("x"), 300000)
	r.send(wstest.Cat(wstest.Frame(0x01, big[:100000]), wstest.Frame(0x89, nil), wstest.Frame(0x80, big[100000:])))
	if h, _ := r.readFrame(); h.OpCode != ws.OpPong {
		t.Fatalf("got %v", h.OpCode)
	}
	if h, p := r.readFrame(); h.OpCode != ws.OpText || !bytes.Equal(p, big) {
		t.Fatalf("got %v %d bytes", h.OpCode, len(p))
	}
	r.send(wstest.Frame(0x88, wstest.ClosePayload(1000, "bye")))
	r.expectClose(wstest.ClosePayload(1000, ""))
	await(t, rec.closes, "close")
}

func TestSubscribe(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	c, id := dialOpen(t, rec, addr)
	ch := []byte("a")
	if !b.Subscribe(id, ch) || b.Subscribe(id, ch) {
		t.Fatal("subscribe booleans")
	}
	if !b.Subscribe(id, []byte{}) {
		t.Fatal("empty channel name")
	}
	if b.Subscribe(id, nil) {
		t.Fatal("nil and empty are the same channel")
	}
	if !b.Subscribe(id, []byte{0, 255, 'a'}) {
		t.Fatal("binary channel name")
	}
	if !b.Unsubscribe(id, ch) || b.Unsubscribe(id, ch) || b.Unsubscribe(id, []byte("none")) {
		t.Fatal("unsubscribe booleans")
	}
	if b.SubscriberCount([]byte("a")) != 0 {
		t.Fatal("empty channel kept")
	}
	if b.Subscribe(id+99, ch) || b.Unsubscribe(id+99, ch) || b.Subscribe(0, ch) {
		t.Fatal("unknown socket")
	}
	b.SendToChannel(nil, []byte("to empty name"), true, 0)
	readText(t, c, "to empty name")
	b.SendToChannel([]byte{0, 255, 'a'}, []byte("to binary name"), true, 0)
	readText(t, c, "to binary name")
	b.SendToChannel([]byte("nobody"), []byte("x"), true, 0)
	b.Subscribe(id, ch)

	c.Close(websocket.StatusNormalClosure, "")
	if e := await(t, rec.closes, "close"); e.id != id {
		t.Fatalf("close of %d", e.id)
	}
	if b.Subscribe(id, ch) || b.Unsubscribe(id, ch) || b.Accept(id, true) {
		t.Fatal("changes on a closed socket")
	}
	for _, name := range []string{"a", "", "\x00\xffa"} {
		if n := b.SubscriberCount([]byte(name)); n != 0 {
			t.Fatalf("channel %q has %d subscribers after close", name, n)
		}
	}
	b.Send(id, []byte("x"), true)
	b.SendToChannel(ch, []byte("x"), true, 0)
	b.SetToken(id, []byte("x"))
}

func TestBroadcast(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	rec.onOpen = func(c *Conn, req *Request) {
		b.Subscribe(c.ID(), []byte("room"))
		b.Accept(c.ID(), true)
	}
	const n = 200
	clients := make([]*websocket.Conn, n)
	ids := make([]uint64, n)
	for i := range clients {
		clients[i], ids[i] = dialOpen(t, rec, addr)
	}
	if got := b.SubscriberCount([]byte("room")); got != n {
		t.Fatalf("%d subscribers", got)
	}
	before := b.writeCalls.Load()
	b.SendToChannel([]byte("room"), []byte("hello all"), true, 0)
	for i, id := range ids {
		b.Send(id, []byte("marker "+strconv.Itoa(i)), true)
	}
	for i, c := range clients {
		readText(t, c, "hello all")
		readText(t, c, "marker "+strconv.Itoa(i)) // and not a second "hello all"
	}
	// Each socket is written at least once, and never more often than it was sent to: how many of
	// its two messages share a write is the scheduler's.
	if w := b.writeCalls.Load() - before; w < n || w > 2*n {
		t.Fatalf("%d deliveries to %d sockets in %d writes", 2*n, n, w)
	}

	// Corked: more subscribers than Flush writes itself; the flushers write the others.
	k := b.NewCork()
	k.SendToChannel([]byte("room"), []byte("corked"), true, 0)
	if k.Len() != n {
		t.Fatalf("%d of %d subscribers corked", k.Len(), n)
	}
	k.Flush()
	for _, c := range clients {
		readText(t, c, "corked")
	}
}

func TestCopySubscriptions(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	var cs [4]*websocket.Conn
	var ids [4]uint64
	for i := range cs {
		cs[i], ids[i] = dialOpen(t, rec, addr)
	}
	x, y := []byte("x"), []byte("y")
	b.Subscribe(ids[0], x)
	b.Subscribe(ids[1], x)
	b.Subscribe(ids[2], x)
	b.Subscribe(ids[2], y)
	b.CopySubscriptions(x, y)
	b.CopySubscriptions(x, x)
	b.CopySubscriptions([]byte("none"), y)
	b.Subscribe(ids[3], x)   // after the copy: not in y
	b.Unsubscribe(ids[0], x) // after the copy: stays in y
	if n := b.SubscriberCount([]byte("y")); n != 3 {
		t.Fatalf("y has %d subscribers", n)
	}
	if n := b.SubscriberCount([]byte("none")); n != 0 {
		t.Fatalf("copy from an empty channel created it")
	}
	if b.Subscribe(ids[1], y) {
		t.Fatal("copied subscription not recorded on the socket")
	}
	b.SendToChannel(y, []byte("to y"), true, 0)
	for i, id := range ids {
		b.Send(id, []byte("marker"), true)
		if i < 3 {
			readText(t, cs[i], "to y")
		}
		readText(t, cs[i], "marker")
	}
	// Copied subscriptions are cleaned up on close like any other.
	cs[1].Close(websocket.StatusNormalClosure, "")
	await(t, rec.closes, "close")
	if n := b.SubscriberCount([]byte("y")); n != 2 {
		t.Fatalf("y has %d subscribers after close", n)
	}
}

func TestToken(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	rec.onOpen = func(c *Conn, req *Request) {
		if c.Token() != nil {
			t.Error("token before SetToken")
		}
		tok := []byte("t1")
		b.SetToken(c.ID(), tok)
		tok[0] = 'X' // SetToken copied
		b.Accept(c.ID(), true)
	}
	c, id := dialOpen(t, rec, addr)
	write(t, c, websocket.MessageText, []byte("1"))
	if e := await(t, rec.msgs, "text"); string(e.token) != "t1" {
		t.Fatalf("token %q", e.token)
	}
	b.SetToken(id, nil)
	write(t, c, websocket.MessageText, []byte("2"))
	if e := await(t, rec.msgs, "text"); e.token != nil {
		t.Fatalf("token %q after clearing", e.token)
	}
	b.SetToken(id, []byte{})
	write(t, c, websocket.MessageBinary, []byte("3"))
	if e := await(t, rec.msgs, "binary"); e.token == nil || len(e.token) != 0 {
		t.Fatalf("empty token %v", e.token)
	}
	b.SetToken(id, []byte("t2\x00"))
	b.SetToken(id+50, []byte("nobody"))
	c.Close(websocket.StatusNormalClosure, "")
	if e := await(t, rec.closes, "close"); string(e.token) != "t2\x00" {
		t.Fatalf("token in Close %q", e.token)
	}
	var zero Conn
	if zero.ID() != 0 || zero.Token() != nil {
		t.Fatal("zero Conn")
	}
}

func TestCloseExactlyOnce(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})

	// Client close handshake: the code is echoed.
	c, id1 := dialOpen(t, rec, addr)
	if err := c.Close(4321, "bye"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
	if e := await(t, rec.closes, "close"); e.id != id1 {
		t.Fatalf("close of %d", e.id)
	}

	// TCP drop.
	r := rawDial(t, addr, nil)
	id2 := await(t, rec.opens, "open").id
	b.Subscribe(id2, []byte("room"))
	r.nc.Close()
	if e := await(t, rec.closes, "close"); e.id != id2 {
		t.Fatalf("close of %d", e.id)
	}
	if b.SubscriberCount([]byte("room")) != 0 {
		t.Fatal("dropped socket still subscribed")
	}

	// Protocol error.
	r = rawDial(t, addr, nil)
	id3 := await(t, rec.opens, "open").id
	r.send(wstest.Frame(0x81, []byte("x"), true))
	r.expectClose(wstest.ClosePayload(1002, ""))
	if e := await(t, rec.closes, "close"); e.id != id3 {
		t.Fatalf("close of %d", e.id)
	}

	// Write error: the peer resets while we send.
	r = rawDial(t, addr, nil)
	id4 := await(t, rec.opens, "open").id
	r.nc.(*net.TCPConn).SetLinger(0)
	r.nc.Close()
	for i := 0; i < 100; i++ {
		b.Send(id4, bytes.Repeat([]byte("z"), 10000), false)
	}
	if e := await(t, rec.closes, "close"); e.id != id4 {
		t.Fatalf("close of %d", e.id)
	}

	b.Close()
	for _, id := range []uint64{id1, id2, id3, id4} {
		if n := rec.closesOf(id); n != 1 {
			t.Fatalf("socket %d: %d Close events", id, n)
		}
	}
}

func TestProtocolErrors(t *testing.T) {
	rec := newRecorder()
	_, addr := start(t, rec, Limits{MaxPayload: 1024})
	cases := []struct {
		name string
		in   []byte
		want []byte // close frame payload expected back
	}{
		{"unmasked", wstest.Frame(0x81, []byte("hi"), true), wstest.ClosePayload(1002, "")},
		{"rsv1", wstest.Frame(0xC1, []byte("hi")), wstest.ClosePayload(1002, "")},
		{"rsv2", wstest.Frame(0xA1, []byte("hi")), wstest.ClosePayload(1002, "")},
		{"rsv3", wstest.Frame(0x91, []byte("hi")), wstest.ClosePayload(1002, "")},
		{"reserved data opcode", wstest.Frame(0x83, nil), wstest.ClosePayload(1002, "")},
		{"reserved control opcode", wstest.Frame(0x8B, nil), wstest.ClosePayload(1002, "")},
		{"fragmented ping", wstest.Frame(0x09, nil), wstest.ClosePayload(1002, "")},
		{"ping too long", wstest.Frame(0x89, make([]byte, 126)), wstest.ClosePayload(1002, "")},
		{"close too long", wstest.Frame(0x88, make([]byte, 126)), wstest.ClosePayload(1002, "")},
		{"orphan continuation", wstest.Frame(0x80, []byte("x")), wstest.ClosePayload(1002, "")},
		{"data during fragments", wstest.Cat(wstest.Frame(0x01, []byte("a")), wstest.Frame(0x81, []byte("b"))), wstest.ClosePayload(1002, "")},
		{"64-bit length msb", wstest.Header(0x82, 1<<63, true), wstest.ClosePayload(1002, "")},
		{"invalid utf8", wstest.Frame(0x81, []byte{'a', 0xff}), wstest.ClosePayload(1007, "")},
		{"invalid utf8 across fragments", wstest.Cat(wstest.Frame(0x01, []byte{0xc3}), wstest.Frame(0x80, []byte{'A'})), wstest.ClosePayload(1007, "")},
		{"truncated utf8", wstest.Frame(0x81, []byte{0xe2, 0x9c}), wstest.ClosePayload(1007, "")},
		{"too big declared", wstest.Header(0x81, 1025, true), wstest.ClosePayload(1009, "")},
		{"too big 64-bit", wstest.Header(0x82, 1<<40, true), wstest.ClosePayload(1009, "")},
		{"too big reassembled", wstest.Cat(wstest.Frame(0x02, make([]byte, 1000)), wstest.Header(0x80, 25, true)), wstest.ClosePayload(1009, "")},
		{"close 1 byte", wstest.Frame(0x88, []byte{3}), wstest.ClosePayload(1002, "")},
		{"close 999", wstest.Frame(0x88, wstest.ClosePayload(999, "")), wstest.ClosePayload(1002, "")},
		{"close 1004", wstest.Frame(0x88, wstest.ClosePayload(1004, "")), wstest.ClosePayload(1002, "")},
		{"close 1005", wstest.Frame(0x88, wstest.ClosePayload(1005, "")), wstest.ClosePayload(1002, "")},
		{"close 1006", wstest.Frame(0x88, wstest.ClosePayload(1006, "")), wstest.ClosePayload(1002, "")},
		{"close 1015", wstest.Frame(0x88, wstest.ClosePayload(1015, "")), wstest.ClosePayload(1002, "")},
		{"close 2000", wstest.Frame(0x88, wstest.ClosePayload(2000, "")), wstest.ClosePayload(1002, "")},
		{"close 5000", wstest.Frame(0x88, wstest.ClosePayload(5000, "")), wstest.ClosePayload(1002, "")},
		{"close reason not utf8", wstest.Frame(0x88, wstest.ClosePayload(1000, "\xff")), wstest.ClosePayload(1007, "")},
		{"close echo 1000", wstest.Frame(0x88, wstest.ClosePayload(1000, "bye")), wstest.ClosePayload(1000, "")},
		{"close echo 1001", wstest.Frame(0x88, wstest.ClosePayload(1001, "")), wstest.ClosePayload(1001, "")},
		{"close echo 1012", wstest.Frame(0x88, wstest.ClosePayload(1012, "")), wstest.ClosePayload(1012, "")},
		{"close echo 3000", wstest.Frame(0x88, wstest.ClosePayload(3000, "")), wstest.ClosePayload(3000, "")},
		{"close echo 4999", wstest.Frame(0x88, wstest.ClosePayload(4999, "ok ✓")), wstest.ClosePayload(4999, "")},
		{"close empty", wstest.Frame(0x88, nil), []byte{}},
		{"close after message", wstest.Cat(wstest.Frame(0x81, []byte("ok")), wstest.Frame(0x88, nil), wstest.Frame(0x81, []byte("ignored"))), []byte{}},
		{"max payload is allowed", wstest.Cat(wstest.Frame(0x82, make([]byte, 1024)), wstest.Frame(0x88, nil)), []byte{}},
		// Invalid UTF-8 in a middle fragment, fragments cut at code point boundaries.
		{"invalid utf8 middle fragment", wstest.Cat(wstest.Frame(0x01, []byte("héllo ")), wstest.Frame(0x00, []byte("\xff")), wstest.Frame(0x80, []byte("ok"))), wstest.ClosePayload(1007, "")},
		// Fail fast: the message is never finished, the close comes anyway.
		{"invalid utf8 unfinished message", wstest.Frame(0x01, []byte("ab\xc3(")), wstest.ClosePayload(1007, "")},
		{"invalid utf8 mid frame", wstest.Cat(wstest.Header(0x81, 1000, true), wstest.MaskedPrefix([]byte("\xf8"))), wstest.ClosePayload(1007, "")},
		{"close between fragments", wstest.Cat(wstest.Frame(0x01, []byte("a")), wstest.Frame(0x88, wstest.ClosePayload(1000, "")), wstest.Frame(0x80, []byte("b"))), wstest.ClosePayload(1000, "")},
		{"reserved opcode 7", wstest.Frame(0x87, nil), wstest.ClosePayload(1002, "")},
		{"reserved opcode 15", wstest.Frame(0x8F, nil), wstest.ClosePayload(1002, "")},
		{"fragmented close", wstest.Frame(0x08, wstest.ClosePayload(1000, "")), wstest.ClosePayload(1002, "")},
		{"fragmented pong", wstest.Frame(0x0A, nil), wstest.ClosePayload(1002, "")},
		{"pong too long", wstest.Frame(0x8A, make([]byte, 126)), wstest.ClosePayload(1002, "")},
		{"continuation after a whole message", wstest.Cat(wstest.Frame(0x81, []byte("a")), wstest.Frame(0x00, []byte("b"))), wstest.ClosePayload(1002, "")},
		{"unmasked in a fragmented message", wstest.Cat(wstest.Frame(0x01, []byte("a")), wstest.Frame(0x80, []byte("b"), true)), wstest.ClosePayload(1002, "")},
		{"close echo 1003", wstest.Frame(0x88, wstest.ClosePayload(1003, "x")), wstest.ClosePayload(1003, "")},
		{"close echo 1007", wstest.Frame(0x88, wstest.ClosePayload(1007, "")), wstest.ClosePayload(1007, "")},
		{"close echo 1014", wstest.Frame(0x88, wstest.ClosePayload(1014, "")), wstest.ClosePayload(1014, "")},
		{"close 2999", wstest.Frame(0x88, wstest.ClosePayload(2999, "")), wstest.ClosePayload(1002, "")},
		{"close 65535", wstest.Frame(0x88, wstest.ClosePayload(65535, "")), wstest.ClosePayload(1002, "")},
		{"close reason truncated utf8", wstest.Frame(0x88, wstest.ClosePayload(1000, "\xe2\x82")), wstest.ClosePayload(1007, "")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rawDial(t, addr, nil)
			id := await(t, rec.opens, "open").id
			r.send(tc.in)
			r.expectClose(tc.want)
			if e := await(t, rec.closes, "close"); e.id != id {
				t.Fatalf("close of %d", e.id)
			}
			for len(rec.msgs) > 0 {
				e := <-rec.msgs
				if e.id == id && string(e.data) == "ignored" {
					t.Fatal("message after the close frame delivered")
				}
				if e.text && !utf8.Valid(e.data) {
					t.Fatal("invalid UTF-8 delivered")
				}
			}
		})
	}
}

// startLeavingPending starts a Broker that accepts every upgrade but those to /pending, left
// awaiting their verdict.
func startLeavingPending(t *testing.T) (*recorder, *Broker, string) {
	t.Helper()
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	rec.onOpen = func(c *Conn, req *Request) {
		if req.URL != "/pending" {
			b.Accept(c.ID(), true)
		}
	}
	return rec, b, addr
}

func TestBrokerClose(t *testing.T) {
	rec, b, addr := startLeavingPending(t)
	const n = 20
	statuses := make(chan websocket.StatusCode, n)
	for i := 0; i < n; i++ {
		c, _ := dialOpen(t, rec, addr)
		go func() {
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					statuses <- websocket.CloseStatus(err)
					return
				}
			}
		}()
	}
	// One socket in the middle of its Open.
	r := rawConnect(t, addr)
	r.send([]byte(wstest.UpgradeRequest("/pending")))
	pendingID := await(t, rec.opens, "open").id
	pendingStatus := make(chan int, 1)
	go func() { // reads the refusal while Close runs, as a client would
		resp, err := http.ReadResponse(r.br, nil)
		if err != nil {
			pendingStatus <- 0
			return
		}
		io.Copy(io.Discard, r.br)
		r.nc.Close()
		pendingStatus <- resp.StatusCode
	}()
	// One connection that has not finished its request.
	half := rawConnect(t, addr)
	half.send([]byte("GET / HTTP/1.1\r\n"))

	b.Close()
	if len(rec.closes) != n {
		t.Fatalf("%d Close events, want %d", len(rec.closes), n)
	}
	for i := 0; i < n; i++ {
		<-rec.closes
	}
	for i := 0; i < n; i++ {
		select {
		case s := <-statuses:
			if s != websocket.StatusGoingAway {
				t.Fatalf("client saw close status %v", s)
			}
		case <-time.After(waitTimeout):
			t.Fatal("client not closed")
		}
	}
	if st := <-pendingStatus; st != 503 {
		t.Fatalf("pending socket got %d", st)
	}
	half.expectEOF()
	if rec.closesOf(pendingID) != 0 {
		t.Fatal("Close event for a pending socket")
	}

	// The Broker can listen again; ids continue.
	a, err := b.Listen([]string{"127.0.0.1:0"}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	c, id := dialOpen(t, rec, a.Addrs()[0].String())
	if id != pendingID+1 {
		t.Fatalf("id %d after restart, want %d", id, pendingID+1)
	}
	write(t, c, websocket.MessageText, []byte("again"))
	await(t, rec.msgs, "text")
	go readCloseStatus(t, c)
	b.Close()
	if e := await(t, rec.closes, "close"); e.id != id {
		t.Fatalf("close of %d", e.id)
	}
	b.Close() // twice: nothing to do
}

func TestHandshakeErrors(t *testing.T) {
	rec := newRecorder()
	_, addr := start(t, rec, Limits{HandshakeTimeout: 300 * time.Millisecond})
	good := "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + wstest.Key + "\r\n"
	cases := []struct {
		name   string
		req    string
		status int
		header string
	}{
		{"plain GET", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426, "Upgrade"},
		{"POST", "POST / HTTP/1.1\r\n" + good + "Sec-WebSocket-Version: 13\r\n\r\n", 405, "Allow"},
		{"version 8", "GET / HTTP/1.1\r\n" + good + "Sec-WebSocket-Version: 8\r\n\r\n", 426, "Sec-Websocket-Version"},
		{"no version", "GET / HTTP/1.1\r\n" + good + "\r\n", 426, "Sec-Websocket-Version"},
		{"bad key", "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 13\r\n\r\n", 400, ""},
		{"no key", "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", 400, ""},
		{"connection keep-alive", "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Key: " + wstest.Key + "\r\nSec-WebSocket-Version: 13\r\n\r\n", 400, ""},
		{"HTTP/1.0", "GET / HTTP/1.0\r\n" + good + "Sec-WebSocket-Version: 13\r\n\r\n", 400, ""},
		{"garbage", "hello\r\n\r\n", 400, ""},
		{"bad header line", "GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400, ""},
		{"folded header", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400, ""},
		{"too large", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 20000) + "\r\n\r\n", 431, ""},
		{"too large, no end", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 40000), 431, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rawConnect(t, addr)
			r.send([]byte(tc.req))
			resp := r.response()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || len(body) == 0 {
				t.Fatalf("got %v %q, want %d", resp.Status, body, tc.status)
			}
			if tc.header != "" && resp.Header.Get(tc.header) == "" {
				t.Fatalf("no %s header: %v", tc.header, resp.Header)
			}
			r.expectEOF()
		})
	}
	t.Run("silent client times out", func(t *testing.T) {
		r := rawConnect(t, addr)
		r.send([]byte("GET / HTTP/1.1\r\n"))
		r.expectEOF()
	})
	t.Run("ids not consumed", func(t *testing.T) {
		_, id := dialOpen(t, rec, addr)
		if id != 1 {
			t.Fatalf("first WebSocket got id %d", id)
		}
	})
}

func TestCoalescing(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	const n = 1000
	rec.onOpen = func(c *Conn, req *Request) {
		for i := 0; i < n; i++ {
			b.Send(c.ID(), []byte(msgName(i)), true)
		}
	}
	done := make(chan *websocket.Conn, 1)
	go func() {
		c, _, err := websocket.Dial(context.Background(), "ws://"+addr+"/", nil)
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	id := await(t, rec.opens, "open").id
	before := b.writeCalls.Load()
	b.Accept(id, true)
	c := <-done
	if c == nil {
		t.FailNow()
	}
	defer c.CloseNow()
	for i := 0; i < n; i++ {
		readText(t, c, msgName(i))
	}
	if w := b.writeCalls.Load() - before; w > 5 {
		t.Fatalf("101 response + %d queued frames took %d writes", n, w)
	}

	// Back to back on an open socket: in order, and never more writes than messages (how many share
	// one is the scheduler's: the flusher may take each before the next is queued).
	awaitWritesIdle(t, b, id)
	before = b.writeCalls.Load()
	for i := 0; i < n; i++ {
		b.Send(id, []byte(msgName(i)), true)
	}
	for i := 0; i < n; i++ {
		readText(t, c, msgName(i))
	}
	awaitWritesIdle(t, b, id)
	if w := b.writeCalls.Load() - before; w > n {
		t.Fatalf("%d sends on an open socket took %d writes", n, w)
	}
}

func TestSlowReader(t *testing.T) {
	// More than the socket buffers hold: the writer goroutine path.
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	c, id := dialOpen(t, rec, addr)
	const n, size = 100, 128 << 10
	msg := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, size) }
	for i := 0; i < n; i++ {
		b.Send(id, msg(i), false)
	}
	for i := 0; i < n; i++ {
		typ, p := read(t, c)
		if typ != websocket.MessageBinary || !bytes.Equal(p, msg(i)) {
			t.Fatalf("message %d: %v %d bytes", i, typ, len(p))
		}
	}
	// And the socket goes back to the flusher afterwards.
	b.Send(id, []byte("after"), true)
	readText(t, c, "after")
}

func TestListenErrors(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	_, err := b.Listen([]string{addr}, Limits{})
	want := fmt.Sprintf("cannot listen on %q: bind: address already in use", addr)
	if err == nil || err.Error() != want || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("got %v, want %s", err, want)
	}
	_, err = b.Listen([]string{"nonsense"}, Limits{})
	if err == nil || !strings.HasPrefix(err.Error(), `cannot listen on "nonsense": `) {
		t.Fatalf("got %v", err)
	}
	// Several addresses: all or none. The first of these was free; it is free again after.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()
	if _, err = b.Listen([]string{freeAddr, addr}, Limits{}); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("got %v", err)
	}
	if again, err := net.Listen("tcp", freeAddr); err != nil {
		t.Fatalf("the first address was left listening: %v", err)
	} else {
		again.Close()
	}
	// Two listeners share the state.
	a2, err := b.Listen([]string{"127.0.0.1:0"}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	_, id1 := dialOpen(t, rec, addr)
	c2, id2 := dialOpen(t, rec, a2.Addrs()[0].String())
	if id2 != id1+1 {
		t.Fatalf("ids %d %d", id1, id2)
	}
	b.Subscribe(id1, []byte("r"))
	b.Subscribe(id2, []byte("r"))
	b.SendToChannel([]byte("r"), []byte("x"), true, 0)
	readText(t, c2, "x")
}

// readStatus reads c until it ends and returns the close status it saw.
func readStatus(c *websocket.Conn) <-chan websocket.StatusCode {
	status := make(chan websocket.StatusCode, 1)
	go func() {
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				status <- websocket.CloseStatus(err)
				return
			}
		}
	}()
	return status
}

// closeInBackground calls g.Close(grace) on a goroutine of its own; the channel is closed when it returns.
func closeInBackground(g *Listeners, grace time.Duration) <-chan struct{} {
	closed := make(chan struct{})
	go func() {
		g.Close(grace)
		close(closed)
	}()
	return closed
}

func awaitClosed(t *testing.T, closed <-chan struct{}) {
	t.Helper()
	await(t, closed, "Listeners.Close to return")
}

func TestListenersClose(t *testing.T) {
	rec, b, addr := startLeavingPending(t)
	g, err := b.Listen([]string{"127.0.0.1:0", "127.0.0.1:0"}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	addrs := g.Addrs()
	if len(addrs) != 2 || addrs[0].(*net.TCPAddr).Port == 0 || addrs[0].String() == addrs[1].String() {
		t.Fatalf("addresses %v", addrs)
	}
	other, otherID := dialOpen(t, rec, addr)
	c, id := dialOpen(t, rec, addrs[1].String())
	status := readStatus(c)
	pending := rawConnect(t, addrs[0].String())
	pending.send([]byte(wstest.UpgradeRequest("/pending")))
	pendingID := await(t, rec.opens, "open").id

	g.Close(0)
	if e := await(t, rec.closes, "close"); e.id != id || e.code != uint16(websocket.StatusGoingAway) || len(rec.closes) != 0 {
		t.Fatalf("Close event of %d with %d (%d more), want %d with 1001", e.id, e.code, len(rec.closes), id)
	}
	if s := <-status; s != websocket.StatusGoingAway {
		t.Fatalf("client saw %v", s)
	}
	if st := pending.status(); st != 503 || rec.closesOf(pendingID) != 0 {
		t.Fatalf("pending socket got %d", st)
	}
	b.Send(otherID, []byte("still here"), true)
	readText(t, other, "still here")
	g.Close(0) // twice: nothing to do

	// The address is free again; a grace lets connections end by themselves, new ones are refused.
	g, err = b.Listen([]string{addrs[1].String()}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	c, id = dialOpen(t, rec, addrs[1].String())
	closed := closeInBackground(g, time.Hour)
	waitFor(t, "the listener to close", func() bool {
		nc, err := net.Dial("tcp", addrs[1].String())
		if err == nil {
			nc.Close()
		}
		return err != nil
	})
	write(t, c, websocket.MessageText, []byte("during the grace"))
	await(t, rec.msgs, "text")
	c.Close(websocket.StatusNormalClosure, "")
	if e := await(t, rec.closes, "close"); e.id != id || e.code != uint16(websocket.StatusNormalClosure) {
		t.Fatalf("Close event of %d with %d", e.id, e.code)
	}
	awaitClosed(t, closed)

	// Past the grace, 1001; Broker.Close ends a grace too.
	for _, grace := range []time.Duration{time.Millisecond, time.Hour} {
		g, err = b.Listen([]string{"127.0.0.1:0"}, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		c, _ = dialOpen(t, rec, g.Addrs()[0].String())
		status = readStatus(c)
		closed = closeInBackground(g, grace)
		if grace == time.Hour {
			b.Close()
		}
		awaitClosed(t, closed)
		if s := <-status; s != websocket.StatusGoingAway {
			t.Fatalf("grace %v: client saw %v", grace, s)
		}
	}
}

func TestHandlerPanic(t *testing.T) {
	rec := newRecorder()
	_, addr := start(t, rec, Limits{})
	rec.onText = func(c *Conn, p []byte) {
		if string(p) == "boom" {
			panic("boom")
		}
	}
	c, id := dialOpen(t, rec, addr)
	write(t, c, websocket.MessageText, []byte("boom"))
	if s := readCloseStatus(t, c); s != websocket.StatusInternalError {
		t.Fatalf("status %v", s)
	}
	if e := await(t, rec.closes, "close"); e.id != id {
		t.Fatalf("close of %d", e.id)
	}
}

func TestConcurrentUse(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	rec.onText = func(c *Conn, p []byte) { b.SendToChannel([]byte("all"), p, true, 0) }
	const n = 16
	var clients []*websocket.Conn
	var ids []uint64
	for i := 0; i < n; i++ {
		c, id := dialOpen(t, rec, addr)
		clients = append(clients, c)
		ids = append(ids, id)
		go func() { // drain
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
			}
		}()
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(int64(g)))
			for i := 0; i < 3000; i++ {
				id := uint64(rnd.Intn(n + 3))
				ch := []byte{byte(rnd.Intn(3))}
				switch rnd.Intn(7) {
				case 0:
					b.Subscribe(id, ch)
				case 1:
					b.Unsubscribe(id, ch)
				case 2:
					b.SendToChannel(ch, []byte("x"), false, 0)
				case 3:
					b.Send(id, []byte("y"), true)
				case 4:
					b.CopySubscriptions(ch, []byte("all"))
				case 5:
					b.SetToken(id, ch)
				case 6:
					b.Accept(id, rnd.Intn(2) == 0)
				}
			}
		}(g)
	}
	for i, c := range clients {
		if i%2 == 0 {
			c.CloseNow()
		} else {
			write(t, c, websocket.MessageText, []byte("hello"))
		}
	}
	wg.Wait()
	b.Close()
	for _, id := range ids {
		if k := rec.closesOf(id); k != 1 {
			t.Fatalf("socket %d: %d Close events", id, k)
		}
	}
	for _, name := range []string{"\x00", "\x01", "\x02", "all"} {
		if k := b.SubscriberCount([]byte(name)); k != 0 {
			t.Fatalf("channel %q: %d subscribers after Close", name, k)
		}
	}
}

func TestUnansweredOpenIsRefusedWith503(t *testing.T) {
	rec := newRecorder()
	rec.onOpen = func(c *Conn, req *Request) {} // never gives a verdict
	_, addr := start(t, rec, Limits{OpenTimeout: 200 * time.Millisecond})
	r := rawConnect(t, addr)
	r.send([]byte(wstest.UpgradeRequest("/")))
	resp := r.response()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 {
		t.Fatalf("got %v %q, want 503", resp.Status, body)
	}
	r.expectEOF()
	id := await(t, rec.opens, "open").id
	if rec.b.Accept(id, true) {
		t.Fatal("a verdict after the timeout must find nothing pending")
	}
	rec.b.Send(id, []byte("x"), true) // the id is gone: a no-op
	select {
	case e := <-rec.closes:
		t.Fatalf("Close for a connection never accepted: %v", e.id)
	default:
	}
}

func TestSendToChannelExceptAndPresence(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	a, ida := dialOpen(t, rec, addr)
	c, idc := dialOpen(t, rec, addr)
	for _, id := range []uint64{ida, idc} {
		b.Subscribe(id, []byte("room"))
	}
	b.Subscribe(ida, []byte("other"))
	if n := b.SubscriberCount([]byte("room")); n != 2 {
		t.Fatalf("room has %d subscribers", n)
	}
	if n := b.SubscriberCount([]byte("nobody")); n != 0 {
		t.Fatalf("an unknown channel has %d subscribers", n)
	}
	subs := b.Subscriptions(ida)
	names := []string{}
	for _, s := range subs {
		names = append(names, string(s))
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "other,room" {
		t.Fatalf("subscriptions %v", names)
	}
	if b.Subscriptions(1<<50) != nil {
		t.Fatal("an unknown socket has subscriptions")
	}
	b.SendToChannel([]byte("room"), []byte("not to a"), true, ida)
	b.Send(ida, []byte("direct"), true)
	readText(t, c, "not to a")
	readText(t, a, "direct") // and not "not to a" first
}

func TestCloseCause(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})

	client, _ := dialOpen(t, rec, addr)
	client.Close(4001, "client says bye")
	if e := await(t, rec.closes, "close"); e.code != 4001 || string(e.reason) != "client says bye" {
		t.Fatalf("client close: %d %q", e.code, e.reason)
	}

	client, id := dialOpen(t, rec, addr)
	if ok, err := b.CloseSocket(id, 4002, []byte("server says bye")); !ok || err != nil {
		t.Fatal(ok, err)
	}
	go readCloseStatus(t, client)
	if e := await(t, rec.closes, "close"); e.code != 4002 || string(e.reason) != "server says bye" {
		t.Fatalf("server close: %d %q", e.code, e.reason)
	}

	raw := rawDial(t, addr, nil)
	await(t, rec.opens, "open")
	raw.nc.Close()
	if e := await(t, rec.closes, "close"); e.code != 1006 {
		t.Fatalf("dropped connection: %d", e.code)
	}
}

func TestSubprotocols(t *testing.T) {
	rec := newRecorder()
	_, addr := start(t, rec, Limits{Protocols: []string{"chat.v2", "chat.v1"}})
	for _, tc := range []struct{ offered, want string }{
		{"chat.v1, chat.v2", "chat.v1"}, // the client's order decides
		{"other,chat.v2", "chat.v2"},
		{"other", ""},
		{"", ""},
	} {
		r := rawConnect(t, addr)
		req := wstest.UpgradeRequest("/")
		if tc.offered != "" {
			req = strings.Replace(req, "\r\n\r\n", "\r\nSec-WebSocket-Protocol: "+tc.offered+"\r\n\r\n", 1)
		}
		r.send([]byte(req))
		resp := r.response()
		if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Protocol") != tc.want {
			t.Fatalf("offered %q: %v, protocol %q, want %q", tc.offered, resp.Status, resp.Header.Get("Sec-WebSocket-Protocol"), tc.want)
		}
		e := await(t, rec.opens, "open")
		seen := ""
		for _, h := range e.req.Headers {
			if h.Name == "sec-websocket-protocol" {
				seen = h.Value
			}
		}
		if seen != tc.offered {
			t.Fatalf("Open saw %q, the client offered %q", seen, tc.offered)
		}
	}
}

func TestStats(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	base := b.Stats()
	a, ida := dialOpen(t, rec, addr)
	c, idc := dialOpen(t, rec, addr)
	b.Subscribe(ida, []byte("room"))
	b.Subscribe(idc, []byte("room"))
	write(t, a, websocket.MessageText, []byte("hello"))
	await(t, rec.msgs, "text")
	b.SendToChannel([]byte("room"), []byte("to both"), true, 0)
	readText(t, a, "to both")
	readText(t, c, "to both")
	st := b.Stats()
	if st.Connections != base.Connections+2 || st.Accepted != base.Accepted+2 || st.Channels != base.Channels+1 ||
		st.MessagesIn != base.MessagesIn+1 || st.BytesIn != base.BytesIn+5 || st.MessagesOut != base.MessagesOut+2 ||
		st.BytesOut <= base.BytesOut {
		t.Fatalf("before %+v\nafter %+v", base, st)
	}
	c.Close(4001, "bye")
	await(t, rec.closes, "close")
	if st := b.Stats(); st.Connections != base.Connections+1 || st.Closed[4001] != base.Closed[4001]+1 {
		t.Fatalf("after a close: %+v", st)
	}
}

func TestCorkedSend(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	c, id := dialOpen(t, rec, addr)
	awaitWritesIdle(t, b, id) // the flusher may still own the socket after writing the 101
	k := b.NewCork()
	k.Send(id, []byte("one"), true)
	k.Send(id, []byte("two"), true)
	if k.Len() != 1 || k.conns[0].ID() != id {
		t.Fatalf("corked %v", k.conns)
	}
	k.Flush()
	readText(t, c, "one")
	readText(t, c, "two")

	// A frame from elsewhere (here a broadcast) for a corked socket is written at once, with what
	// was corked before it: a long batch must not delay pongs, pings or broadcasts.
	k.Send(id, []byte("three"), true)
	b.Subscribe(id, []byte("room"))
	b.SendToChannel([]byte("room"), []byte("four"), true, 0)
	readText(t, c, "three")
	readText(t, c, "four")
	k.Flush() // nothing left: a no-op
	b.Send(id, []byte("five"), true)
	readText(t, c, "five")
}

func TestCorkedAccept(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	rec.onOpen = func(c *Conn, req *Request) {} // the verdict comes below
	r := rawConnect(t, addr)
	r.send([]byte(wstest.UpgradeRequest("/")))
	id := await(t, rec.opens, "open").id

	// A verdict given in a batch: the response waits with the batch's sends, and goes with them.
	k := b.NewCork()
	before := b.writeCalls.Load()
	k.Accept(id, true)
	k.Send(id, []byte("hi"), true)
	if k.Len() != 1 || k.conns[0].ID() != id || b.writeCalls.Load() != before {
		t.Fatalf("corked %v, %d writes before Flush", k.conns, b.writeCalls.Load()-before)
	}
	k.Flush()
	if resp := r.response(); resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if h, p := r.readFrame(); h.OpCode != ws.OpText || string(p) != "hi" {
		t.Fatalf("got %v %q", h.OpCode, p)
	}
	if w := b.writeCalls.Load() - before; w != 1 {
		t.Fatalf("the response and a frame took %d writes", w)
	}
}

func TestCorkedSendToChannel(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{})
	c, id := dialOpen(t, rec, addr)
	b.Subscribe(id, []byte("room"))
	awaitWritesIdle(t, b, id)

	// A batch's broadcasts are corked with its sends: the socket is written once, at the end.
	k := b.NewCork()
	before := b.writeCalls.Load()
	k.Send(id, []byte("six"), true)
	k.SendToChannel([]byte("room"), []byte("seven"), true, 0)
	k.Send(id, []byte("eight"), true)
	if k.Len() != 1 || b.writeCalls.Load() != before {
		t.Fatalf("corked %v, %d writes before Flush", k.conns, b.writeCalls.Load()-before)
	}
	k.Flush()
	readText(t, c, "six")
	readText(t, c, "seven")
	readText(t, c, "eight")
	if w := b.writeCalls.Load() - before; w != 1 {
		t.Fatalf("3 corked frames took %d writes", w)
	}

	// Another cork's broadcast to a corked socket is written at once, with what was corked.
	awaitWritesIdle(t, b, id)
	other := b.NewCork()
	k.Send(id, []byte("nine"), true)
	other.SendToChannel([]byte("room"), []byte("ten"), true, 0)
	readText(t, c, "nine")
	readText(t, c, "ten")
	if other.Len() != 0 {
		t.Fatalf("the other cork holds %v", other.conns)
	}
	k.Flush()
}

// BenchmarkSendsCoalesced: the goroutines that become ready together (as the readers of one
// netpoll round do) and send to the same socket share a write: the flusher lets them all run first.
// It reports the writes per round of 20 such sends (20 if the flusher did not yield), a figure the
// scheduler decides, so it is printed (go test -run '^$' -bench SendsCoalesced ./broker) and never asserted; run it without -race,
// whose randomized run queue coalesces by chance.
func BenchmarkSendsCoalesced(bm *testing.B) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // one P, as a server pinned to one core has
	rec := newRecorder()
	b, addr := start(bm, rec, Limits{})
	c, id := dialOpen(bm, rec, addr)
	const n = 20
	var writes uint64
	for bm.Loop() {
		awaitWritesIdle(bm, b, id)
		before := b.writeCalls.Load()
		var ready sync.WaitGroup
		gate := make(chan struct{})
		ready.Add(n)
		for range n {
			go func() {
				ready.Done()
				<-gate
				b.Send(id, []byte("x"), true)
			}()
		}
		ready.Wait()
		close(gate)
		for range n {
			readText(bm, c, "x")
		}
		writes += b.writeCalls.Load() - before
	}
	bm.ReportMetric(float64(writes)/float64(bm.N), "writes/20sends")
}

func TestSendsOfEverySizeArriveWhole(t *testing.T) {
	// Sends of every size (small frames, frames in the sockets' own pooled buffers, several to a
	// buffer, larger ones allocated), mixed with broadcasts and corked batches, to two sockets at
	// once while their clients read (the sockets fill up: partial writes, writer goroutines):
	// each client gets its own messages, whole and in order, though buffers pass between sockets.
	rec := newRecorder()
	b, addr := start(t, rec, Limits{MaxBackpressure: 1 << 30}) // ~60 MB in all: none is closed for it
	// The largest frame in an own buffer has a 10-byte header.
	sizes := []int{2, 100, writeq.OwnFrameMin - 3, writeq.OwnFrameMin, 700, 3000, 4096, 9000, 40 << 10, 70 << 10, writeq.OwnFrameMax - 10, writeq.OwnFrameMax}
	const n = 300 // every size with every way of sending, several times
	payload := func(sock, i int) []byte {
		p := bytes.Repeat([]byte{byte(sock*n + i)}, sizes[(i*7+sock)%len(sizes)])
		binary.BigEndian.PutUint16(p, uint16(i))
		return p
	}
	var wg sync.WaitGroup
	var ids []uint64
	for sock := range 2 {
		c, id := dialOpen(t, rec, addr)
		ids = append(ids, id)
		c.SetReadLimit(2 << 20)
		t.Cleanup(func() { c.CloseNow() })
		ch := []byte{byte(sock)}
		b.Subscribe(id, ch)
		wg.Add(2)
		go func() {
			defer wg.Done()
			k := b.NewCork()
			for i := range n {
				switch p := payload(sock, i); i % 5 {
				case 0:
					b.SendToChannel(ch, p, false, 0)
				case 1, 2:
					k.Send(id, p, false)
					if i%10 == 2 {
						k.Flush()
					}
				default:
					b.Send(id, p, false)
				}
			}
			k.Flush()
		}()
		go func() {
			defer wg.Done()
			for i := range n {
				_, p, err := c.Read(context.Background())
				if want := payload(sock, i); err != nil || !bytes.Equal(p, want) {
					t.Errorf("socket %d, message %d: got %d bytes starting %x (%v), want %d", sock, i, len(p), p[:min(4, len(p))], err, len(want))
					return
				}
			}
		}()
	}
	wg.Wait()
	// An idle socket keeps no buffer.
	for _, id := range ids {
		awaitWritesIdle(t, b, id)
		c := b.hub.lookup(id)
		c.wmu.Lock()
		kept := c.q.HoldsBuffer()
		c.wmu.Unlock()
		if kept {
			t.Fatalf("socket %d keeps a frame buffer while idle", id)
		}
	}
}
