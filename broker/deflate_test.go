package broker

import (
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"unsafe"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/wsbroker/wsbroker/internal/wsproto"
	"github.com/wsbroker/wsbroker/internal/wstest"
)

// rawUpgrade connects and sends an upgrade request with extra header lines (each ending in
// \r\n); it returns the client and the response.
func rawUpgrade(t *testing.T, addr, extra string) (*rawClient, *http.Response) {
	t.Helper()
	r := rawConnect(t, addr)
	req := wstest.UpgradeRequest("/")
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
	return bytes.TrimSuffix(b.Bytes(), wsproto.DeflateTail)
}

func TestDeflateNegotiation(t *testing.T) {
	const (
		off  = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
		keep = "permessage-deflate; client_no_context_takeover"
	)
	win := func(bits int, noTakeover bool) string {
		s := fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", bits)
		if noTakeover {
			s += "; server_no_context_takeover"
		}
		return s + "; client_no_context_takeover"
	}
	for _, tc := range []struct {
		offer    string
		takeover bool   // Limits.CompressionContextTakeover
		want     string // the response's Sec-WebSocket-Extensions
		mode     uint8  // Conn.deflate
	}{
		{"", false, "", 0},
		{"permessage-deflate", false, off, 15},
		{"permessage-deflate", true, keep, 15 | wsproto.DeflateTakeover},
		{"permessage-deflate; client_max_window_bits", false, off, 15},
		{"permessage-deflate; client_max_window_bits=10; server_no_context_takeover", true, off, 15},
		{`permessage-deflate; client_max_window_bits="9"`, false, off, 15},
		{"permessage-deflate; client_no_context_takeover; server_no_context_takeover", true, off, 15},
		{"permessage-deflate; server_max_window_bits=10", false, win(10, true), 10},
		{`permessage-deflate; server_max_window_bits="12"`, false, win(12, true), 12},
		// Declined: invalid, unknown or repeated parameters.
		{"permessage-deflate; server_max_window_bits", false, "", 0},
		{"permessage-deflate; server_max_window_bits=7", false, "", 0},
		{"permessage-deflate; server_max_window_bits=16", false, "", 0},
		{"permessage-deflate; server_max_window_bits=09", false, "", 0},
		{"permessage-deflate; client_max_window_bits=16", false, "", 0},
		{"permessage-deflate; client_max_window_bits=08", false, "", 0},
		{"permessage-deflate; server_no_context_takeover=1", false, "", 0},
		{"permessage-deflate; x_unknown", false, "", 0},
		{"permessage-deflate; client_no_context_takeover; client_no_context_takeover", false, "", 0},
		{"permessage-deflate; server_max_window_bits=9; server_max_window_bits=9", false, "", 0},
		{"x-webkit-deflate-frame", false, "", 0},
		// The first offer we can honour wins (Autobahn 13.7 sends three).
		{"permessage-deflate; server_max_window_bits=16, permessage-deflate; client_max_window_bits", true, keep, 15 | wsproto.DeflateTakeover},
		{"foo, permessage-deflate", false, off, 15},
		{"permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=9, " +
			"permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover, " +
			"permessage-deflate; client_no_context_takeover; client_max_window_bits", true, win(9, true), 9},
	} {
		var headers []Header
		if tc.offer != "" {
			headers = []Header{{Name: "sec-websocket-extensions", Value: tc.offer}}
		}
		if got, mode := wsproto.NegotiateDeflate(headers, tc.takeover); got != tc.want || mode != tc.mode {
			t.Errorf("offer %q, takeover %v: answered %q (mode %#x), want %q (%#x)", tc.offer, tc.takeover, got, mode, tc.want, tc.mode)
		}
	}
	// Autobahn 13.1-13.6: what its client offers (it accepts client_no_context_takeover and any
	// client_max_window_bits) with server_no_context_takeover or not, server_max_window_bits
	// absent, 8, 9 or 15.
	for _, takeover := range []bool{false, true} {
		for _, noContext := range []bool{false, true} {
			for _, bits := range []int{0, 8, 9, 15} {
				offer := "permessage-deflate; client_no_context_takeover; client_max_window_bits"
				if noContext {
					offer += "; server_no_context_takeover"
				}
				if bits != 0 {
					offer += fmt.Sprintf("; server_max_window_bits=%d", bits)
				}
				want, mode := off, uint8(15)
				if bits != 0 {
					want, mode = win(bits, true), uint8(bits)
				}
				if takeover && !noContext && (bits == 0 || bits == 15) {
					want, mode = keep, 15|wsproto.DeflateTakeover
					if bits != 0 {
						want = win(bits, false)
					}
				}
				got, gotMode := wsproto.NegotiateDeflate([]Header{{Name: "sec-websocket-extensions", Value: offer}}, takeover)
				if got != want || gotMode != mode {
					t.Errorf("offer %q, takeover %v: answered %q (mode %#x), want %q (%#x)", offer, takeover, got, gotMode, want, mode)
				}
			}
		}
	}
	// Through a listener: with the options, and without Compression, where an offer is ignored.
	for _, tc := range []struct {
		lim  Limits
		want string
	}{
		{Limits{Compression: true}, win(9, true)},
		{Limits{Compression: true, CompressionContextTakeover: true}, keep},
		{Limits{CompressionContextTakeover: true}, ""},
	} {
		rec := newRecorder()
		_, addr := start(t, rec, tc.lim)
		offer := "permessage-deflate; server_max_window_bits=9"
		if tc.want == keep {
			offer = "permessage-deflate"
		}
		if _, resp := rawUpgrade(t, addr, "Sec-WebSocket-Extensions: "+offer+"\r\n"); resp.Header.Get("Sec-WebSocket-Extensions") != tc.want {
			t.Errorf("%+v: answered %q, want %q", tc.lim, resp.Header.Get("Sec-WebSocket-Extensions"), tc.want)
		}
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
	if resp.Header.Get("Sec-WebSocket-Extensions") != "permessage-deflate; server_no_context_takeover; client_no_context_takeover" {
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
		// Each open awaited before the next dial: the recorder records an open after accepting it.
		r, _ := rawUpgrade(t, addr, offer)
		id1 := await(t, rec.opens, "open").id
		plain := rawDial(t, addr, nil)
		id2 := await(t, rec.opens, "open").id
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
				if got, _ := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader(wsproto.DeflateTail)))); !bytes.Equal(got, big) {
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

	t.Run("a broadcast is compressed once per window size, and for each socket with context takeover", func(t *testing.T) {
		rec := newRecorder()
		rec.onOpen = func(*Conn, *Request) {} // no verdict: what is sent stays queued, to look at
		b, addr := start(t, rec, Limits{Compression: true, CompressionContextTakeover: true})
		var conns []*Conn
		for _, offer := range []string{
			"permessage-deflate; server_no_context_takeover", "permessage-deflate; server_max_window_bits=9",
			"permessage-deflate; server_max_window_bits=9", "permessage-deflate", "permessage-deflate",
		} {
			req := wstest.UpgradeRequest("/")
			rawConnect(t, addr).send([]byte(req[:len(req)-2] + "Sec-WebSocket-Extensions: " + offer + "\r\n\r\n"))
			c := await(t, rec.opens, "open").c
			b.Subscribe(c.ID(), []byte("ch"))
			conns = append(conns, c)
		}
		b.SendToChannel([]byte("ch"), big, true, 0)
		frames := make([][]byte, len(conns))
		for i, c := range conns {
			c.wmu.Lock()
			frames[i] = c.q.Last() // after the 101 response
			c.wmu.Unlock()
			if frames[i][0] != 0xC1 {
				t.Fatalf("socket %d: first byte %x, want a compressed text frame", i, frames[i][0])
			}
		}
		same := func(i, j int) bool { return &frames[i][0] == &frames[j][0] }
		if !same(1, 2) || same(0, 1) || same(3, 4) || same(0, 3) || same(1, 3) {
			t.Fatal("want one frame for window 15, one for window 9, one per socket with context takeover")
		}
	})

	for _, tc := range []struct {
		name  string
		offer string
		send  []byte
		text  string // the message the handler gets, when the connection stays open
		want  uint16 // else the close code
	}{
		{"compressed text", offer, wstest.Frame(0xC1, deflated(t, []byte("héllo"))), "héllo", 0},
		{"compressed fragments", offer, wstest.Cat(wstest.Frame(0x41, deflated(t, []byte("two parts"))[:3]), wstest.Frame(0x80, deflated(t, []byte("two parts"))[3:])), "two parts", 0},
		{"inflate bomb", offer, wstest.Frame(0xC2, deflated(t, make([]byte, 2<<20))), "", 1009},
		{"not deflate", offer, wstest.Frame(0xC2, []byte{0xff, 0xff, 0xff, 0xff, 0x00}), "", 1007},
		{"compressed invalid UTF-8", offer, wstest.Frame(0xC1, deflated(t, []byte{'a', 0xff})), "", 1007},
		{"RSV1 on a continuation", offer, wstest.Cat(wstest.Frame(0x41, deflated(t, []byte("ab"))), wstest.Frame(0xC0, []byte{0})), "", 1002},
		{"RSV1 on a ping", offer, wstest.Frame(0xC9, nil), "", 1002},
		{"RSV1 not negotiated", "", wstest.Frame(0xC1, deflated(t, []byte("hello"))), "", 1002},
		{"RSV2", offer, wstest.Frame(0xA1, []byte("x")), "", 1002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			_, addr := start(t, rec, Limits{Compression: true, MaxPayload: 1 << 20})
			r, _ := rawUpgrade(t, addr, tc.offer)
			await(t, rec.opens, "open")
			r.send(tc.send)
			if tc.want == 0 {
				if e := await(t, rec.msgs, "message"); string(e.data) != tc.text {
					t.Fatalf("message %q, want %q", e.data, tc.text)
				}
				return
			}
			r.expectClose(wstest.ClosePayload(tc.want, ""))
			if e := await(t, rec.closes, "close"); e.code != tc.want {
				t.Fatalf("close cause %d, want %d", e.code, tc.want)
			}
		})
	}
}

// TestConnSize: Conn stays in its 448-byte size class (every byte counts for an idle connection).
func TestConnSize(t *testing.T) {
	if size := unsafe.Sizeof(Conn{}); size > 448 {
		t.Fatalf("Conn is %d bytes", size)
	}
}
