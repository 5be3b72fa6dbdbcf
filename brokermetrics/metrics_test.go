package brokermetrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wsbroker/wsbroker/broker"
)

// countingHandler accepts every connection and reports its messages and ends.
type countingHandler struct {
	b      *broker.Broker
	msgs   chan struct{}
	closes chan struct{}
}

func (h *countingHandler) Open(c *broker.Conn, _ *broker.Request) { h.b.Accept(c.ID(), true) }
func (h *countingHandler) Text(*broker.Conn, []byte)              { h.msgs <- struct{}{} }
func (h *countingHandler) Binary(*broker.Conn, []byte)            { h.msgs <- struct{}{} }
func (h *countingHandler) ReadDone(*broker.Conn)                  {}
func (h *countingHandler) Close(*broker.Conn)                     { h.closes <- struct{}{} }

func await(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestServe(t *testing.T) {
	h := &countingHandler{msgs: make(chan struct{}, 1), closes: make(chan struct{}, 1)}
	b := broker.New(h, broker.Options{})
	h.b = b
	listeners, err := b.Listen([]string{"127.0.0.1:0"}, broker.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	maddr, stop, err := Serve(b, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+listeners.Addrs()[0].String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	await(t, h.msgs, "text")
	c.Close(4001, "bye")
	await(t, h.closes, "close")
	resp, err := http.Get("http://" + maddr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"wsbroker_connections 0",
		"wsbroker_connections_accepted_total 1",
		"wsbroker_messages_received_total 1",
		"wsbroker_received_bytes_total 5",
		`wsbroker_connections_closed_total{code="4001"} 1`,
		"wsbroker_connections_closed_for_rate_total 0",
		"wsbroker_upgrades_refused_per_ip_total 0",
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Fatalf("no %q in\n%s", want, body)
		}
	}
	if _, _, err := Serve(b, maddr.String()); err == nil || !strings.Contains(err.Error(), maddr.String()) {
		t.Fatalf("a taken address: %v", err)
	}
	stop() // frees the address at once
	ln, err := net.Listen("tcp", maddr.String())
	if err != nil {
		t.Fatalf("after stop: %v", err)
	}
	ln.Close()
}
