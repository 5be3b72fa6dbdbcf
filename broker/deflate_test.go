package broker

import (
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
)

// rawUpgrade connects and sends an upgrade request with extra header lines (each ending in
// \r\n); it returns the client and the response.
func rawUpgrade(t *testing.T, addr, extra string) (*rawClient, *http.Response) {
	t.Helper()
	r := rawConnect(t, addr)
	req := upgradeRequestText("/")
	r.send([]byte(req[:len(req)-2] + extra + "\r\n"))
	resp := r.response()
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v", resp.Status)
	}
	return r, resp
}

// deflated compresses p as a permessage-deflate message payload (the sync-flush tail removed).
func deflated(t *testing.T, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), deflateTail)
}

func TestDeflateNegotiation(t *testing.T) {
	for _, tc := range []struct {
		offer string
		want  string // the response's Sec-WebSocket-Extensions
	}{
		{"", ""},
		{"permessage-deflate", deflateResponse},
		{"permessage-deflate; client_max_window_bits", deflateResponse},
		{"permessage-deflate; client_max_window_bits=10; server_no_context_takeover", deflateResponse},
		{`permessage-deflate; client_max_window_bits="9"`, deflateResponse},
		{"permessage-deflate; server_max_window_bits=15", deflateResponse},
		{"permessage-deflate; client_no_context_takeover; server_no_context_takeover", deflateResponse},
		// Declined: we cannot limit our window; invalid, unknown or repeated parameters.
		{"permessage-deflate; server_max_window_bits=10", ""},
		{"permessage-deflate; server_max_window_bits", ""},
		{"permessage-deflate; client_max_window_bits=16", ""},
		{"permessage-deflate; client_max_window_bits=08", ""},
		{"permessage-deflate; server_no_context_takeover=1", ""},
		{"permessage-deflate; x_unknown", ""},
		{"permessage-deflate; client_no_context_takeover; client_no_context_takeover", ""},
		{"x-webkit-deflate-frame", ""},
		// The first offer we can honour wins.
		{"permessage-deflate; server_max_window_bits=9, permessage-deflate; client_max_window_bits", deflateResponse},
		{"foo, permessage-deflate", deflateResponse},
	} {
		rec := newRecorder()
		_, addr := start(t, rec, Limits{Compression: true})
		extra := ""
		if tc.offer != "" {
			extra = "Sec-WebSocket-Extensions: " + tc.offer + "\r\n"
		}
		_, resp := rawUpgrade(t, addr, extra)
		if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != tc.want {
			t.Errorf("offer %q: answered %q, want %q", tc.offer, got, tc.want)
		}
	}
	// Without the option, an offer is ignored.
	rec := newRecorder()
	_, addr := start(t, rec, Limits{})
	if _, resp := rawUpgrade(t, addr, "Sec-WebSocket-Extensions: permessage-deflate\r\n"); resp.Header.Get("Sec-WebSocket-Extensions") != "" {
		t.Fatalf("compression off: answered %q", resp.Header.Get("Sec-WebSocket-Extensions"))
	}
}

// TestDeflateEcho exchanges compressed messages with an independent client (coder/websocket).
func TestDeflateEcho(t *testing.T) {
	rec := newRecorder()
	b, addr := start(t, rec, Limits{Compression: true})
	rec.onText = func(c *Conn, data []byte) { b.Send(c.ID(), data, true) }
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+addr, &websocket.DialOptions{CompressionMode: websocket.CompressionNoContextTakeover})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	if resp.Header.Get("Sec-WebSocket-Extensions") != deflateResponse {
		t.Fatalf("not negotiated: %q", resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	await(t, rec.opens, "open")
	for _, msg := range []string{"short", strings.Repeat("compress me ", 1000), strings.Repeat("x", 100_000)} {
		write(t, c, websocket.MessageText, []byte(msg))
		readText(t, c, msg)
	}
}

// TestDeflateFrames checks the wire: what is compressed, and what closes the connection.
func TestDeflateFrames(t *testing.T) {
	offer := "Sec-WebSocket-Extensions: permessage-deflate\r\n"
	big := bytes.Repeat([]byte("a broadcast "), 100)

	t.Run("server frames", func(t *testing.T) {
		rec := newRecorder()
		b, addr := start(t, rec, Limits{Compression: true})
		r, _ := rawUpgrade(t, addr, offer)
		plain := rawDial(t, addr, nil)
		id1, id2 := await(t, rec.opens, "open").id, await(t, rec.opens, "open").id
		b.Subscribe(id1, []byte("ch"))
		b.Subscribe(id2, []byte("ch"))
		b.Send(id1, []byte("tiny"), true)
		b.SendToChannel([]byte("ch"), big, false, 0)
		b.Send(id1, make([]byte, 300), false) // compressible
		for _, c := range []*rawClient{r, plain} {
			if c == r {
				h, p := c.readFrame()
				if h.Rsv != 0 || string(p) != "tiny" {
					t.Fatalf("a short message: rsv %x %q, want it plain", h.Rsv, p)
				}
			}
			h, p := c.readFrame()
			if c == r {
				if h.Rsv != ws.Rsv(true, false, false) || h.OpCode != ws.OpBinary || len(p) >= len(big) {
					t.Fatalf("broadcast to a compressing client: rsv %x op %v %d bytes", h.Rsv, h.OpCode, len(p))
				}
				if got, _ := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader(deflateTail)))); !bytes.Equal(got, big) {
					t.Fatalf("inflated broadcast differs: %d bytes", len(got))
				}
			} else if h.Rsv != 0 || !bytes.Equal(p, big) {
				t.Fatalf("broadcast to a plain client: rsv %x %d bytes", h.Rsv, len(p))
			}
		}
		h, p := r.readFrame()
		if h.Rsv == 0 || len(p) > 20 {
			t.Fatalf("300 zero bytes: rsv %x, %d bytes", h.Rsv, len(p))
		}
	})

	t.Run("a broadcast is compressed once", func(t *testing.T) {
		rec := newRecorder()
		rec.onOpen = func(*Conn, *Request) {} // no verdict: what is sent stays queued, to look at
		b, addr := start(t, rec, Limits{Compression: true})
		var conns []*Conn
		for range 3 {
			rawConnect(t, addr).send([]byte(upgradeRequestText("/")[:len(upgradeRequestText("/"))-2] + offer + "\r\n"))
			c := await(t, rec.opens, "open").c
			b.Subscribe(c.ID(), []byte("ch"))
			conns = append(conns, c)
		}
		b.SendToChannel([]byte("ch"), big, true, 0)
		frames := make([][]byte, len(conns))
		for i, c := range conns {
			c.wmu.Lock()
			frames[i] = c.queue[len(c.queue)-1] // after the 101 response
			c.wmu.Unlock()
		}
		if frames[0][0] != 0xC1 || &frames[0][0] != &frames[1][0] || &frames[1][0] != &frames[2][0] {
			t.Fatalf("not one shared compressed frame: first bytes %x %x %x", frames[0][0], frames[1][0], frames[2][0])
		}
	})

	for _, tc := range []struct {
		name  string
		offer string
		send  []byte
		want  uint16
	}{
		{"compressed text", offer, frame(0xC1, deflated(t, []byte("héllo"))), 0},
		{"compressed fragments", offer, cat(frame(0x41, deflated(t, []byte("two parts"))[:3]), frame(0x80, deflated(t, []byte("two parts"))[3:])), 0},
		{"inflate bomb", offer, frame(0xC2, deflated(t, make([]byte, 2<<20))), 1009},
		{"not deflate", offer, frame(0xC2, []byte{0xff, 0xff, 0xff, 0xff, 0x00}), 1007},
		{"compressed invalid UTF-8", offer, frame(0xC1, deflated(t, []byte{'a', 0xff})), 1007},
		{"RSV1 on a continuation", offer, cat(frame(0x41, deflated(t, []byte("ab"))), frame(0xC0, []byte{0})), 1002},
		{"RSV1 on a ping", offer, frame(0xC9, nil), 1002},
		{"RSV1 not negotiated", "", frame(0xC1, deflated(t, []byte("hello"))), 1002},
		{"RSV2", offer, frame(0xA1, []byte("x")), 1002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			_, addr := start(t, rec, Limits{Compression: true, MaxPayload: 1 << 20})
			r, _ := rawUpgrade(t, addr, tc.offer)
			await(t, rec.opens, "open")
			r.send(tc.send)
			if tc.want == 0 {
				e := await(t, rec.msgs, "message")
				if !utf8Valid(e.data) || len(e.data) == 0 {
					t.Fatalf("message %q", e.data)
				}
				return
			}
			r.expectClose(closePayload(tc.want, ""))
			if e := await(t, rec.closes, "close"); e.code != tc.want {
				t.Fatalf("close cause %d, want %d", e.code, tc.want)
			}
		})
	}
}

// benchMessage is a chat-like JSON text of n bytes: entries of varied words.
func benchMessage(n int) []byte {
	words := strings.Fields("the a broker message channel socket worker hello world compress deflate json user text time room join leave typing quick brown fox jumps over lazy dog")
	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	b.WriteString("[")
	for b.Len() < n {
		fmt.Fprintf(&b, `{"user":"user%d","room":"room%d","ts":%d,"text":"`, rng.IntN(1000), rng.IntN(20), 1732579200000+rng.IntN(1e6))
		for range 8 {
			b.WriteString(words[rng.IntN(len(words))] + " ")
		}
		b.WriteString(`"},`)
	}
	return []byte(b.String()[:n])
}

// BenchmarkCompressedFrame is the cost of compressing one 1 KiB message (once per broadcast,
// whatever the number of subscribers).
func BenchmarkCompressedFrame(b *testing.B) {
	msg := benchMessage(1024)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = len(compressedFrame(ws.OpText, msg))
	}
	b.ReportMetric(float64(n), "bytes/frame")
}

// BenchmarkInflate is the cost of receiving that message compressed.
func BenchmarkInflate(b *testing.B) {
	msg := benchMessage(1024)
	f := compressedFrame(ws.OpText, msg)
	h, err := ws.ReadHeader(bytes.NewReader(f))
	if err != nil {
		b.Fatal(err)
	}
	payload := f[len(f)-int(h.Length):]
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		out, code := inflate(payload, 1<<20)
		if code != 0 || len(*out) != len(msg) {
			b.Fatal(code)
		}
		releaseBuf(out)
	}
}
