package broker

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/gobwas/ws"
	"github.com/wsbroker/wsbroker/internal/wsproto"
	"github.com/wsbroker/wsbroker/internal/wstest"
)

// echoHandler sends every message back.
type echoHandler struct{ b *Broker }

func (h *echoHandler) Open(c *Conn, _ *Request)    { h.b.Accept(c.ID(), true) }
func (h *echoHandler) Text(c *Conn, data []byte)   { h.b.Send(c.ID(), data, true) }
func (h *echoHandler) Binary(c *Conn, data []byte) { h.b.Send(c.ID(), data, false) }
func (h *echoHandler) ReadDone(*Conn)              {}
func (h *echoHandler) Close(*Conn)                 {}
func (h *echoHandler) listen(b *testing.B, lim Limits) string {
	h.b = New(h, Options{Logger: testLogger()})
	a, err := h.b.Listen([]string{"127.0.0.1:0"}, lim)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.b.Close)
	return a.Addrs()[0].String()
}

// benchEcho measures round trips of frame (a masked client frame) through an echo server on
// lim, over 8 connections per core; dial wraps each TCP connection (TLS) and extra goes into
// the upgrade request. Every op is one message there and back.
func benchEcho(b *testing.B, lim Limits, dial func(net.Conn) net.Conn, extra string, frame []byte) {
	addr := new(echoHandler).listen(b, lim)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer nc.Close()
		c := dial(nc)
		req := wstest.UpgradeRequest("/")
		if _, err := io.WriteString(c, req[:len(req)-2]+extra+"\r\n"); err != nil {
			b.Error(err)
			return
		}
		br := bufio.NewReaderSize(c, 64<<10)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 {
			b.Error("upgrade failed", err)
			return
		}
		for pb.Next() {
			if _, err := c.Write(frame); err != nil {
				b.Error(err)
				return
			}
			h, err := ws.ReadHeader(br)
			if err == nil {
				_, err = br.Discard(int(h.Length))
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func plainDial(nc net.Conn) net.Conn { return nc }

func BenchmarkEcho(b *testing.B) {
	for _, size := range []int{32, 4096} {
		msg := wstest.ChatMessage(size)
		b.Run(fmt.Sprintf("plain/%dB", size), func(b *testing.B) {
			benchEcho(b, Limits{}, plainDial, "", wstest.Frame(0x81, msg))
		})
		cfg, pool := testCert(b)
		tlsDial := func(nc net.Conn) net.Conn { return tls.Client(nc, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}) }
		b.Run(fmt.Sprintf("tls/%dB", size), func(b *testing.B) {
			benchEcho(b, Limits{TLS: cfg}, tlsDial, "", wstest.Frame(0x81, msg))
		})
		if size < wsproto.CompressMin {
			continue
		}
		// Compressed both ways (the client's frame compressed once, beforehand).
		b.Run(fmt.Sprintf("deflate/%dB", size), func(b *testing.B) {
			f := wsproto.CompressedFrame(ws.OpText, msg, wsproto.MaxWindowBits, nil)
			h, _ := ws.ReadHeader(bytes.NewReader(f))
			benchEcho(b, Limits{Compression: true}, plainDial, "Sec-WebSocket-Extensions: permessage-deflate\r\n", wstest.Frame(0xC1, f[len(f)-int(h.Length):]))
		})
	}
}
