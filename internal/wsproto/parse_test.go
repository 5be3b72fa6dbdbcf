package wsproto

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/wsbroker/wsbroker/internal/wstest"
)

// recSink records what a Parser emits.
type recSink struct {
	out   []string
	limit int // stop after this many messages (0: never)
	msgs  int
}

func (s *recSink) Message(op ws.OpCode, p []byte) bool {
	s.out = append(s.out, fmt.Sprintf("msg %d %x", op, p))
	s.msgs++
	return s.limit == 0 || s.msgs < s.limit
}
func (s *recSink) Ping(p []byte)  { s.out = append(s.out, fmt.Sprintf("ping %x", p)) }
func (s *recSink) Close(p []byte) { s.out = append(s.out, fmt.Sprintf("close %x", p)) }

// partsRecSink is a recSink that takes messages in parts (a PartsSink), as the Node bridge does,
// and records them as recSink does; it fails a text whose parts are not each valid UTF-8.
type partsRecSink struct {
	*recSink
	t *testing.T
}

func (s partsRecSink) MessageParts(op ws.OpCode, parts [][]byte) bool {
	for _, part := range parts {
		if len(part) == 0 || op == ws.OpText && !utf8.Valid(part) {
			s.t.Fatalf("a part of %d bytes of a message of %d parts: empty, or a code point cut", len(part), len(parts))
		}
	}
	return s.Message(op, bytes.Join(parts, nil))
}

// parseChunks feeds data in chunks of size step (0: all at once) and returns what was emitted.
// Like the broker's reader, it puts a chunk in the parser's Spare room when it has some (payload
// that goes on for a whole chunk), else hands it to Feed. With t, its sink takes messages in parts.
func parseChunks(data []byte, step int, max int64, limit int, t ...*testing.T) []string {
	data = bytes.Clone(data) // the parser unmasks in place
	p := Parser{Max: max}
	rs := &recSink{limit: limit}
	var s FrameSink = rs
	if len(t) > 0 {
		s = partsRecSink{rs, t[0]}
	}
	if step <= 0 {
		step = len(data) + 1
	}
	for len(data) > 0 {
		k := min(step, len(data))
		var code ws.StatusCode
		var stop bool
		if room := p.Spare(k); room != nil {
			code, stop = p.FeedSpare(copy(room, data), s)
		} else {
			code, stop = p.Feed(data[:k], s)
		}
		data = data[k:]
		if code != 0 {
			rs.out = append(rs.out, fmt.Sprintf("error %d", code))
		}
		if stop {
			rs.out = append(rs.out, "stop")
			break
		}
	}
	p.Reset()
	return rs.out
}

// maxHead is the broker's default Limits.MaxHeaderBytes.
const maxHead = 16 << 10

func TestParser(t *testing.T) {
	cases := []struct {
		in   []byte
		want string
	}{
		{wstest.Frame(0x81, []byte("hi")), "msg 1 6869"},
		{wstest.Frame(0x82, nil), "msg 2 "},
		{wstest.Cat(wstest.Frame(0x01, []byte("a")), wstest.Frame(0x89, []byte("p")), wstest.Frame(0x80, []byte("b"))), "ping 70|msg 1 6162"},
		{wstest.Frame(0x8A, []byte("x")), ""},
		{wstest.Cat(wstest.Frame(0x88, wstest.ClosePayload(1000, "r")), wstest.Frame(0x81, []byte("x"))), "close 03e872|stop"},
		{wstest.Frame(0x81, []byte{0xff}), "error 1007|stop"},
		{wstest.Frame(0x81, []byte("x"), true), "error 1002|stop"},
		{wstest.Header(0x82, 101, true), "error 1009|stop"},
		{wstest.Cat(wstest.Frame(0x82, make([]byte, 100)), wstest.Frame(0x82, make([]byte, 1))), "msg 2 " + strings.Repeat("00", 100) + "|msg 2 00"},
		// "€" split byte by byte across fragments, a ping in the middle.
		{wstest.Cat(wstest.Frame(0x01, []byte{0xe2}), wstest.Frame(0x89, []byte("p")), wstest.Frame(0x00, []byte{0x82}), wstest.Frame(0x80, []byte{0xac})), "ping 70|msg 1 e282ac"},
		// Invalid UTF-8 fails fast: before the message ends, before a ping that follows.
		{wstest.Cat(wstest.Frame(0x01, []byte("a\xff")), wstest.Frame(0x89, []byte("p"))), "error 1007|stop"},
		{wstest.Cat(wstest.Frame(0x01, []byte("é")), wstest.Frame(0x00, []byte{0xc3, '('}), wstest.Frame(0x89, []byte("p"))), "error 1007|stop"},
		{wstest.Cat(wstest.Frame(0x01, []byte{0xe2, 0x82}), wstest.Frame(0x00, []byte{'x'})), "error 1007|stop"},
		{wstest.Cat(wstest.Frame(0x01, []byte{0xed, 0xa0}), wstest.Frame(0x89, []byte("p"))), "error 1007|stop"}, // a surrogate, found by its second byte
		{wstest.Cat(wstest.Frame(0x01, []byte{0xf4, 0x8f}), wstest.Frame(0x89, []byte("p"))), "ping 70"},         // may still become U+10FFFF
		{wstest.Cat(wstest.Frame(0x01, []byte{0xe2, 0x82}), wstest.Frame(0x80, nil)), "error 1007|stop"},         // truncated at the end
	}
	for i, tc := range cases {
		for _, step := range []int{0, 1, 2, 3, 7} {
			got := strings.Join(parseChunks(tc.in, step, 100, 0), "|")
			if got != tc.want {
				t.Fatalf("case %d step %d: got %q, want %q", i, step, got, tc.want)
			}
		}
	}
}

func TestEncodeFrame(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 70000} {
		p := bytes.Repeat([]byte{7}, n)
		f := EncodeFrame(ws.OpBinary, p)
		r := bytes.NewReader(f)
		h, err := ws.ReadHeader(r)
		payload, _ := io.ReadAll(r)
		if err != nil || !h.Fin || h.OpCode != ws.OpBinary || h.Masked || h.Length != int64(n) || !bytes.Equal(payload, p) {
			t.Fatalf("length %d: %v %+v", n, err, h)
		}
		if len(f) != n+ws.HeaderSize(ws.Header{Length: int64(n)}) {
			t.Fatalf("length %d: frame of %d bytes", n, len(f))
		}
	}
	if !bytes.Equal(CloseFrame(0, nil), []byte{0x88, 0}) || !bytes.Equal(CloseFrame(1001, nil), []byte{0x88, 2, 0x03, 0xe9}) {
		t.Fatal("close frames")
	}
}

func TestParseUpgrade(t *testing.T) {
	head := "GET /a?b=c HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n" +
		"Sec-WebSocket-Key:   " + wstest.Key + "  \r\nSec-WebSocket-Version: 13\r\nX-A: 1\r\nx-a: 2\r\nX-Empty:\r\n" +
		"Cookie: a=1; b=2\r\ncookie: c=3\r\n"
	for i := 0; i < 30; i++ {
		head += fmt.Sprintf("X-%d: v\r\nx-a: %d\r\n", i, i+3)
	}
	head = strings.TrimSuffix(head, "\r\n")
	up, herr := ParseUpgrade([]byte(head), maxHead)
	if herr != nil {
		t.Fatalf("refused: %d", herr.Status)
	}
	if up.URL != "/a?b=c" || up.Accept != wstest.AcceptKey {
		t.Fatalf("%+v", up)
	}
	vals := map[string]string{}
	for _, h := range up.Headers {
		if _, dup := vals[h.Name]; dup {
			t.Fatalf("%q twice", h.Name)
		}
		vals[h.Name] = h.Value
	}
	wantA := "1, 2"
	for i := 0; i < 30; i++ {
		wantA += fmt.Sprintf(", %d", i+3)
	}
	if vals["x-a"] != wantA || vals["sec-websocket-key"] != wstest.Key || vals["x-empty"] != "" || vals["upgrade"] != "WebSocket" ||
		vals["cookie"] != "a=1; b=2; c=3" {
		t.Fatalf("%v", vals)
	}
	if up.Headers[0].Name != "host" {
		t.Fatal("header order not kept")
	}
}

func FuzzFrameParser(f *testing.F) {
	f.Add(wstest.Frame(0x81, []byte("hello")), uint8(0), uint8(0))
	f.Add(wstest.Cat(wstest.Frame(0x01, []byte("a")), wstest.Frame(0x89, []byte("p")), wstest.Frame(0x80, []byte("b"))), uint8(1), uint8(0))
	f.Add(wstest.Cat(wstest.Frame(0x82, make([]byte, 300)), wstest.Frame(0x88, wstest.ClosePayload(1000, "x"))), uint8(5), uint8(1))
	f.Add(wstest.Cat(wstest.Frame(0x81, []byte("a")), wstest.Frame(0x81, []byte("b")), wstest.Frame(0x81, []byte("c"))), uint8(2), uint8(2))
	f.Add(wstest.Header(0x82, 70000, true), uint8(3), uint8(0))
	f.Add(wstest.Frame(0x88, []byte{3}), uint8(0), uint8(0))
	f.Add(wstest.Cat(wstest.Frame(0x01, []byte{0xe2}), wstest.Frame(0x89, nil), wstest.Frame(0x00, []byte{0x82}), wstest.Frame(0x80, []byte{0xac, 0xff})), uint8(0), uint8(0))
	f.Add(wstest.Cat(wstest.Frame(0x01, []byte("ok \xf0\x9f")), wstest.Frame(0x8A, []byte("p")), wstest.Frame(0x80, []byte("\x8e\x89"))), uint8(4), uint8(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint8(0), uint8(0))
	euros := bytes.Repeat([]byte("€"), 2000) // a message over several buffers, code points cut at their ends
	f.Add(wstest.Cat(wstest.Frame(0x01, euros[:4159]), wstest.Frame(0x00, euros[4159:]), wstest.Frame(0x80, euros)), uint8(255), uint8(0))
	f.Add(wstest.Cat(wstest.Frame(0x02, make([]byte, 9000)), wstest.Frame(0x80, make([]byte, 9000))), uint8(100), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, step, limit uint8) {
		const max = 1 << 15
		whole := parseChunks(data, 0, max, int(limit))
		split := parseChunks(data, int(step)+1, max, int(limit), t)
		if strings.Join(whole, "|") != strings.Join(split, "|") {
			t.Fatalf("whole %q\nsplit by %d %q", whole, int(step)+1, split)
		}
		for _, e := range whole {
			if strings.HasPrefix(e, "msg 1 ") {
				var p []byte
				fmt.Sscanf(strings.TrimPrefix(e, "msg 1 "), "%x", &p)
				if !utf8.Valid(p) {
					t.Fatalf("invalid UTF-8 text delivered: %q", e)
				}
			}
			if strings.HasPrefix(e, "msg ") && len(e) > 6+2*max {
				t.Fatalf("message over max delivered")
			}
		}
	})
}

func FuzzHandshake(f *testing.F) {
	f.Add([]byte(strings.TrimSuffix(wstest.UpgradeRequest("/x"), "\r\n\r\n")))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x"))
	f.Add([]byte("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="))
	f.Add([]byte("POST /\x00 HTTP/1.1\r\n:\r\n"))
	f.Add([]byte("\r\n\r\n"))
	f.Fuzz(func(t *testing.T, head []byte) {
		up, herr := ParseUpgrade(head, maxHead)
		if (up == nil) == (herr == nil) {
			t.Fatal("exactly one of request and error expected")
		}
		if herr != nil {
			if http.StatusText(herr.Status) == "" || !bytes.HasPrefix(herr.Response(), []byte("HTTP/1.1 4")) {
				t.Fatalf("bad error response %d", herr.Status)
			}
			return
		}
		if up.Accept == "" || up.URL == "" {
			t.Fatal("empty accept or url")
		}
		for _, h := range up.Headers {
			if h.Name == "" || h.Name != strings.ToLower(h.Name) {
				t.Fatalf("header name %q", h.Name)
			}
		}
		// HeadEnd finds the terminator wherever reads split it.
		full := append(bytes.Clone(head), "\r\n\r\n"...)
		for from := 0; from <= len(full); from++ {
			if HeadEnd(full, from) < 0 && from <= len(head)+3 {
				t.Fatalf("terminator not found from %d", from)
			}
		}
	})
}

// TestParserLargeMessage: a 4 MiB frame is reassembled in buffers that each hold about what came
// before (append's 1.25x steps took over 30 buffers, copying the message about five times over),
// whether it comes 8 KiB at a time to Feed or is read 64 KiB at a time into Spare's room, and is
// joined into one buffer of the frame's class for a sink that does not take parts. The GC is off meanwhile, so that the buffers come back from
// Buffers as they would between messages.
func TestParserLargeMessage(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	payload := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16)
	frame := wstest.Frame(0x82, payload)
	for _, inPlace := range []bool{false, true} {
		var got []byte
		var capacity int
		allocs := testing.AllocsPerRun(1, func() {
			p := Parser{Max: 16 << 20}
			data := bytes.Clone(frame)
			s := &capSink{got: &got, capacity: &capacity}
			for len(data) > 0 {
				if inPlace {
					if room := p.Spare(64 << 10); room != nil {
						k := copy(room, data)
						p.FeedSpare(k, s)
						data = data[k:]
						continue
					}
				}
				k := min(8<<10, len(data))
				p.Feed(data[:k], s)
				data = data[k:]
			}
		})
		if !bytes.Equal(got, payload) || capacity > classCap(bufferClass(len(payload))) {
			t.Fatalf("in place %v: %d bytes in a buffer of %d, want the %d sent in one of %d", inPlace, len(got), capacity, len(payload), classCap(bufferClass(len(payload))))
		}
		// The test's own 3; a doubling without the pool takes 13 more, append's steps over 30.
		if allocs > 5 && !raceEnabled {
			t.Fatalf("in place %v: %v allocations to reassemble 4 MiB", inPlace, allocs)
		}
	}
}

// capSink keeps the last message and the capacity of the buffer it came in.
type capSink struct {
	got      *[]byte
	capacity *int
}

func (s *capSink) Message(op ws.OpCode, p []byte) bool {
	*s.got, *s.capacity = bytes.Clone(p), cap(p)
	return true
}
func (s *capSink) Ping([]byte)  {}
func (s *capSink) Close([]byte) {}

// takeSink takes the buffers of each message it is given (Parser.TakeMessage); as a PartsSink it
// is given a message reassembled in several buffers as they are.
type takeSink struct {
	p     *Parser
	parts bool        // a PartsSink: MessageParts is called
	taken [][]*[]byte // the buffers of each message, nil where it lay where it was read
	data  [][][]byte  // each message as delivered (aliasing its buffers, if taken)
}

func (s *takeSink) Message(op ws.OpCode, p []byte) bool { return s.MessageParts(op, [][]byte{p}) }

func (s *takeSink) MessageParts(op ws.OpCode, parts [][]byte) bool {
	b := s.p.TakeMessage()
	if again := s.p.TakeMessage(); again != nil {
		panic("a message's buffers taken twice")
	}
	s.taken, s.data = append(s.taken, b), append(s.data, slices.Clone(parts))
	return true
}
func (s *takeSink) Ping([]byte)  {}
func (s *takeSink) Close([]byte) {}

// frameSink hides a takeSink's MessageParts: the parser must join the parts for it.
type frameSink struct{ t *takeSink }

func (s frameSink) Message(op ws.OpCode, p []byte) bool { return s.t.Message(op, p) }
func (s frameSink) Ping(p []byte)                       { s.t.Ping(p) }
func (s frameSink) Close(p []byte)                      { s.t.Close(p) }

// TestParserHandsOverMessage: a sink may keep the buffers of a message reassembled from several
// frames or reads, or inflated (the bridge hands them to JS without a copy); the parser then leaves
// them alone while the next messages arrive. A PartsSink is given a message that spans buffers as
// parts (a text's code points whole in each), another sink one buffer. A message delivered where it
// was read has no buffer to take.
func TestParserHandsOverMessage(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))                                        // buffers come back from Buffers as between messages
	first, second := bytes.Repeat([]byte("1"), 100_000), bytes.Repeat([]byte("€"), 100_000) // 3 bytes each
	chat := wstest.ChatMessage(16 << 10)
	compressed := wstest.Frame(0xC1, payloadOf(t, CompressedFrame(ws.OpText, chat, MaxWindowBits, nil)))
	inPlace := wstest.Frame(0x82, []byte("in place"))
	for _, parts := range []bool{false, true} {
		in := wstest.Cat(
			wstest.Frame(0x02, first[:50_000]), wstest.Frame(0x80, first[50_000:]), // fragmented
			wstest.Frame(0x81, second), // read 8 KiB at a time: code points cut
			compressed,
			inPlace,
		)
		p := Parser{Max: 1 << 20, Deflate: true}
		ts := &takeSink{p: &p, parts: parts}
		var s FrameSink = frameSink{ts}
		if parts {
			s = ts
		}
		for len(in) > 0 {
			k := min(8<<10, len(in))
			if len(in) == len(compressed)+len(inPlace) {
				k = len(in) // the last two frames in one read
			}
			if code, stop := p.Feed(in[:k], s); code != 0 || stop {
				t.Fatalf("parser stopped: %d", code)
			}
			in = in[k:]
		}
		want := [][]byte{first, second, chat, []byte("in place")}
		if len(ts.data) != len(want) {
			t.Fatalf("parts %v: %d messages, want %d", parts, len(ts.data), len(want))
		}
		for i, w := range want {
			got := bytes.Join(ts.data[i], nil)
			if !bytes.Equal(got, w) {
				t.Fatalf("parts %v, message %d: %d bytes, not the %d sent (a taken buffer reused?)", parts, i, len(got), len(w))
			}
			if spans := len(ts.data[i]) > 1; spans != (parts && i < 2) {
				t.Fatalf("parts %v, message %d: in %d parts", parts, i, len(ts.data[i]))
			}
			for _, part := range ts.data[i] {
				if i == 1 && !utf8.Valid(part) {
					t.Fatalf("parts %v: a part of the text cuts a code point", parts)
				}
			}
			var kept [][]byte
			for _, b := range ts.taken[i] {
				kept = append(kept, *b)
			}
			if (ts.taken[i] == nil) != (i == len(want)-1) || kept != nil && !bytes.Equal(bytes.Join(kept, nil), got) {
				t.Fatalf("parts %v, message %d: taken %d buffers, want its own for all but the message read in place", parts, i, len(ts.taken[i]))
			}
		}
	}
}
