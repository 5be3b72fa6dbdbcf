package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"log"

	"github.com/coder/websocket"

	"github.com/wsbroker/wsbroker/broker"
)

// chat echoes "e:<text>", subscribes its sender to a channel with "s:<channel>" and publishes
// "p:<channel>:<text>" to that channel's subscribers.
type chat struct {
	b      *broker.Broker
	closed chan uint64
}

func (h *chat) Open(c *broker.Conn, req *broker.Request) { h.b.Accept(c.ID(), true) }

func (h *chat) Text(c *broker.Conn, data []byte) {
	if len(data) < 2 || data[1] != ':' {
		return
	}
	switch rest := data[2:]; data[0] {
	case 'e':
		h.b.Send(c.ID(), rest, true)
	case 's':
		h.b.Subscribe(c.ID(), rest)
		h.b.Send(c.ID(), []byte("ok"), true)
	case 'p':
		if channel, text, found := bytes.Cut(rest, []byte(":")); found {
			h.b.SendToChannel(channel, text, true, 0)
		}
	}
}

func (h *chat) Binary(c *broker.Conn, data []byte) {}
func (h *chat) ReadDone(c *broker.Conn)            {}
func (h *chat) Close(c *broker.Conn)               { h.closed <- c.ID() }

// startChat starts a Broker running chat on a port of its own and dials it.
func startChat() (*chat, *websocket.Conn) {
	h := &chat{closed: make(chan uint64, 1)}
	h.b = broker.New(h, broker.Options{})
	listeners, err := h.b.Listen([]string{"127.0.0.1:0"}, broker.DefaultLimits())
	if err != nil {
		log.Fatal(err)
	}
	c, _, err := websocket.Dial(context.Background(), "ws://"+listeners.Addrs()[0].String(), nil)
	if err != nil {
		log.Fatal(err)
	}
	return h, c
}

// A server with an echo and channels (chat), and a client of it.
func Example() {
	h, c := startChat()
	defer h.b.Close()
	ctx := context.Background()
	for _, msg := range []string{"e:hello", "s:news", "p:news:a channel message"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			log.Fatal(err)
		}
		_, reply, err := c.Read(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n", reply)
	}
	c.Close(websocket.StatusNormalClosure, "")
	fmt.Println("closed socket", <-h.closed)
	fmt.Printf("%+v\n", h.b.Stats().MessagesIn)
	// Output:
	// hello
	// ok
	// a channel message
	// closed socket 1
	// 3
}

// Sends batched with a Cork: queued, then written with one write per socket at Flush (or by the
// writer that still holds the socket, which takes what was queued meanwhile).
func ExampleCork() {
	h, c := startChat()
	defer h.b.Close()
	defer c.CloseNow()
	ctx := context.Background()
	if err := c.Write(ctx, websocket.MessageText, []byte("s:news")); err != nil {
		log.Fatal(err)
	}
	if _, ok, err := c.Read(ctx); err != nil || string(ok) != "ok" {
		log.Fatal(string(ok), err)
	}

	k := h.b.NewCork()
	k.SendToChannel([]byte("news"), []byte("first"), true, 0)
	k.SendToChannel([]byte("news"), []byte("second"), true, 0)
	k.Flush()
	for range 2 {
		_, msg, err := c.Read(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n", msg)
	}
	// Output:
	// first
	// second
}
