package broker

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/wsbroker/wsbroker/internal/wstest"
)

// The bucket holds rate messages and gains one every 1/rate s; time is moved on by moving the
// broker's clock origin back.
func TestWithinRateIsATokenBucket(t *testing.T) {
	b := New(newRecorder(), Options{})
	t.Cleanup(b.Close)
	c := &Conn{b: b, flood: &floodState{}}
	takes := func(n int) {
		t.Helper()
		for i := range n {
			if !c.withinRate(5) {
				t.Fatalf("message %d of %d refused", i+1, n)
			}
		}
		if c.withinRate(5) {
			t.Fatalf("message %d taken from a bucket of %d", n+1, n)
		}
	}
	takes(5) // a full bucket: the burst is the rate
	b.epoch = b.epoch.Add(-200 * time.Millisecond)
	takes(1) // 1/5 s later: one message
	b.epoch = b.epoch.Add(-time.Hour)
	takes(5) // never more than the burst
}

// Over MaxMessagesPerSecond the socket is closed with 1008 and a reason that says why; pings do
// not count, and the message over the limit is not delivered.
func TestMaxMessagesPerSecond(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{MaxMessagesPerSecond: 5})
	r := rawDial(t, addr, nil)
	id := await(t, rec.opens, "open").id
	var burst []byte
	for range 10 {
		burst = append(burst, wstest.Frame(0x89, nil)...) // pings
	}
	for i := range 6 {
		burst = append(burst, wstest.Frame(0x81, []byte(msgName(i)))...)
	}
	r.send(burst) // in one write: no time for the bucket to refill
	for range 10 {
		if h, _ := r.readFrame(); h.OpCode != ws.OpPong {
			t.Fatalf("got %v, want a pong", h.OpCode)
		}
	}
	r.expectClose(wstest.ClosePayload(1008, "message rate limit exceeded"))
	e := await(t, rec.closes, "close")
	if e.id != id || e.code != 1008 || string(e.reason) != "message rate limit exceeded" {
		t.Fatalf("close of %d with %d %q", e.id, e.code, e.reason)
	}
	for i := range 5 {
		if m := await(t, rec.msgs, "message"); string(m.data) != msgName(i) {
			t.Fatalf("got %q, want %s", m.data, msgName(i))
		}
	}
	if len(rec.msgs) != 0 {
		t.Fatal("the message over the limit was delivered")
	}
	if st := b.Stats(); st.ClosedForRate != 1 || st.MessagesIn != 5 {
		t.Fatalf("ClosedForRate %d, MessagesIn %d", st.ClosedForRate, st.MessagesIn)
	}
}

// upgradeFrom is an upgrade request that a proxy forwarded for client.
func upgradeFrom(path, client string) []byte {
	return []byte(strings.Replace(wstest.UpgradeRequest(path), "\r\n\r\n", "\r\nX-Forwarded-For: "+client+"\r\n\r\n", 1))
}

// MaxConnectionsPerIP counts the client addresses that Request.IP reports, over the listeners
// with the limit, from the upgrade request to the end; one more gets 429 without Open.
func TestMaxConnectionsPerIP(t *testing.T) {
	rec := newRecorder()
	lim := Limits{MaxConnectionsPerIP: 2, TrustProxy: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	b, addr := start(t, rec, lim)
	other := listenAlso(t, b, lim)
	unlimited := listenAlso(t, b, Limits{TrustProxy: lim.TrustProxy})
	rec.onOpen = func(c *Conn, req *Request) {
		if req.URL != "/pending" {
			b.Accept(c.ID(), true)
		}
	}
	connect := func(addr, path, client string) *rawClient {
		r := rawConnect(t, addr)
		r.send(upgradeFrom(path, client))
		return r
	}
	refused := func(addr, client string) {
		t.Helper()
		r := connect(addr, "/", client)
		resp := r.response()
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "" || body.String() != "Too many connections from this address" {
			t.Fatalf("got %d %v %q, want 429", resp.StatusCode, resp.Header, body.String())
		}
	}
	accepted := func(addr, path, client string) (*rawClient, uint64) {
		t.Helper()
		r := connect(addr, path, client)
		e := await(t, rec.opens, "open")
		if e.req.IP != client {
			t.Fatalf("Request.IP %q, want %q", e.req.IP, client)
		}
		if path != "/pending" && r.status() != 101 {
			t.Fatal("not upgraded")
		}
		return r, e.id
	}

	pending, pendingID := accepted(addr, "/pending", "203.0.113.1") // a pending open counts
	first, firstID := accepted(other, "/", "203.0.113.1")           // and so does another listener's
	refused(addr, "203.0.113.1")
	refused(other, "203.0.113.1")
	accepted(addr, "/", "203.0.113.2")      // another address has its own count
	accepted(unlimited, "/", "203.0.113.1") // a listener without the limit neither counts nor refuses
	accepted(unlimited, "/", "203.0.113.1")
	if n := b.Stats().RefusedPerIP; n != 2 {
		t.Fatalf("RefusedPerIP %d", n)
	}

	// A rejected open frees its place once answered, an ended connection once ended.
	b.Accept(pendingID, false)
	if st := pending.status(); st != 403 {
		t.Fatalf("got %d", st)
	}
	accepted(addr, "/", "203.0.113.1")
	refused(addr, "203.0.113.1")
	first.send(wstest.Frame(0x88, wstest.ClosePayload(1000, "")))
	if e := await(t, rec.closes, "close"); e.id != firstID {
		t.Fatalf("close of %d", e.id)
	}
	accepted(other, "/", "203.0.113.1")
	refused(other, "203.0.113.1")
	if len(rec.opens) != 0 {
		t.Fatal("Open called for a refused connection")
	}
}
