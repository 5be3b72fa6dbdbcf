package cluster

import (
	"bytes"
	"slices"
	"testing"
)

var testHeader = header{slot: 1<<slotBits - 1, instance: 0xfedcba9876543210, sentAt: 1_765_000_000_000_000}

// Every kind decodes to what was encoded.
func TestEnvelopeRoundTrip(t *testing.T) {
	h := testHeader
	maxID := uint64(1<<53 - 1)
	cases := []struct {
		name string
		p    []byte
		want envelope
	}{
		{"channel", h.appendIDBody(nil, kindChannel, flagText, maxID, []byte("hello")), envelope{kind: kindChannel, flags: flagText, id: maxID, body: []byte("hello")}},
		{"send binary", h.appendIDBody(nil, kindSend, 0, 5, []byte{0, 1, 2}), envelope{kind: kindSend, id: 5, body: []byte{0, 1, 2}}},
		{"close", h.appendClose(nil, 7, 4000, []byte("bye")), envelope{kind: kindClose, id: 7, code: 4000, body: []byte("bye")}},
		{"token set empty", h.appendIDBody(nil, kindToken, flagToken, 8, nil), envelope{kind: kindToken, flags: flagToken, id: 8}},
		{"subscribe", h.appendIDBody(nil, kindSubscribe, 0, 9, []byte("room\x00.*>")), envelope{kind: kindSubscribe, id: 9, body: []byte("room\x00.*>")}},
		{"copy", h.appendCopy(nil, []byte("to")), envelope{kind: kindCopy, body: []byte("to")}},
		{"heartbeat", h.appendHeartbeat(nil, 0, []uint32{1, 1<<slotBits - 1}), envelope{kind: kindHeartbeat, slots: []uint32{1, 1<<slotBits - 1}}},
		{"heartbeat asking", h.appendHeartbeat(nil, flagAsk, []uint32{3}), envelope{kind: kindHeartbeat, flags: flagAsk, slots: []uint32{3}}},
		{"count query", h.appendCountQuery(nil, 77, nil), envelope{kind: kindCountQuery, id: 77}},
		{"count query on the control topic", h.appendCountQuery(nil, 77, []byte("room")), envelope{kind: kindCountQuery, id: 77, body: []byte("room")}},
		{"count answer", h.appendCountAnswer(nil, 77, 1000), envelope{kind: kindCountAnswer, id: 77, count: 1000}},
		{"leaving", h.appendLeaving(nil), envelope{kind: kindLeaving}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := decode(c.p)
			if err != nil {
				t.Fatal(err)
			}
			w := c.want
			w.slot, w.instance, w.sentAt = h.slot, h.instance, h.sentAt
			if e.kind != w.kind || e.flags != w.flags || e.slot != w.slot || e.instance != w.instance || e.sentAt != w.sentAt ||
				e.id != w.id || e.code != w.code || e.count != w.count ||
				!slices.Equal(e.slots, w.slots) || !bytes.Equal(e.body, w.body) {
				t.Fatalf("decoded %+v, want %+v", e, w)
			}
			if len(c.p) > maxHeader+20+len(w.body)+4*len(w.slots) {
				t.Fatalf("%d bytes: more than the header bound allows", len(c.p))
			}
		})
	}
}

// What is not an envelope of this version is refused: truncated, another version, an unknown
// kind, a slot out of range, a heartbeat claiming more slots than it carries.
func TestEnvelopeRefused(t *testing.T) {
	good := testHeader.appendClose(nil, 7, 4000, nil)
	for n := range len(good) {
		if _, err := decode(good[:n]); err == nil {
			t.Fatalf("%d of %d bytes decoded", n, len(good))
		}
	}
	bad := [][]byte{
		append([]byte{2}, good[1:]...),
		append([]byte{1, 99}, good[2:]...),
		header{slot: 1 << slotBits}.appendLeaving(nil),
		append(header{}.appendHeader(nil, kindHeartbeat, 0), 200),
		append(header{}.appendHeader(nil, kindHeartbeat, 0), 1, 0xff, 0xff, 0xff, 0xff, 0x0f),
		{},
		[]byte("hello, a foreign publisher"),
	}
	for i, p := range bad {
		if _, err := decode(p); err == nil {
			t.Fatalf("bad envelope %d (%q) decoded", i, p)
		}
	}
}

// The decoder never panics, and what it decodes encodes back to the same bytes.
func FuzzDecodeEnvelope(f *testing.F) {
	h := testHeader
	f.Add(h.appendIDBody(nil, kindChannel, flagText, 3, []byte("x")))
	f.Add(h.appendClose(nil, 7, 4000, []byte("bye")))
	f.Add(h.appendHeartbeat(nil, flagAsk, []uint32{1, 2, 3}))
	f.Add(h.appendCountAnswer(nil, 1, 2))
	f.Add([]byte{1, 8, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		e, err := decode(p)
		if err != nil {
			return
		}
		h := header{slot: e.slot, instance: e.instance, sentAt: e.sentAt}
		var again []byte
		switch e.kind {
		case kindChannel, kindSend, kindToken, kindSubscribe, kindUnsubscribe:
			again = h.appendIDBody(nil, e.kind, e.flags, e.id, e.body)
		case kindClose:
			again = h.appendClose(nil, e.id, e.code, e.body)
		case kindCopy:
			again = h.appendCopy(nil, e.body)
		case kindHeartbeat:
			again = append(h.appendHeartbeat(nil, e.flags, e.slots), e.body...)
		case kindCountQuery:
			again = h.appendCountQuery(nil, e.id, e.body)
		case kindCountAnswer:
			again = append(h.appendCountAnswer(nil, e.id, e.count), e.body...)
		case kindLeaving:
			again = append(h.appendLeaving(nil), e.body...)
		}
		if e2, err := decode(again); err != nil || e2.kind != e.kind || e2.id != e.id || !bytes.Equal(e2.body, e.body) {
			t.Fatalf("%x decoded to %+v, which encodes to %x: %+v, %v", p, e, again, e2, err)
		}
	})
}

// Ids: slot·2^32 + seq, the largest 2^53−1; a slot that runs out moves the node to another, and
// every id made is the node's and unique.
func TestIDSpace(t *testing.T) {
	var s idSpace
	s.init(1<<slotBits-1, func(exhausted uint32) uint32 { return 3 })
	if id := s.newID(); id != (1<<slotBits-1)<<32|1 {
		t.Fatalf("first id %d", id)
	}
	s.next.Store((1<<slotBits-1)<<32 | (seqMask - 1))
	if id := s.newID(); id != 1<<53-1 {
		t.Fatalf("last id of the last slot: %d, want 2^53-1", id)
	}
	if id := s.newID(); id != 3<<32|1 {
		t.Fatalf("after the slot ran out: %d, want slot 3's first", id)
	}
	if !s.local(1<<53-1) || !s.local(3<<32|9) || !s.local(5) || s.local(4<<32|1) {
		t.Fatal("local: want the held slots' ids and slot 0's, not another slot's")
	}
	if !slices.Equal(s.slots(), []uint32{1<<slotBits - 1, 3}) {
		t.Fatalf("slots %v", s.slots())
	}
	s.replace(3, 9)
	if id := s.newID(); id != 9<<32|1 || s.local(3<<32|1) {
		t.Fatalf("after a clash: id %d, slots %v", id, s.slots())
	}
}
