package main

import (
	"testing"

	"github.com/gobwas/ws"
)

// A Socket.IO template patched in place carries the event of the patched message, and the
// server's event of a text with JSON escapes reads back as that text.
func TestSocketIOEvents(t *testing.T) {
	key := [4]byte{9, 8, 7, 6}
	prefix := "p:bench:"
	msg := append([]byte(prefix+"00000000"), padding(40)...)
	tpl := protoTemplate(msg, len(prefix)+8, key, false, true)
	tpl.patchHex(len(prefix), 0xcafe01)
	payload := append([]byte(nil), tpl.frame[tpl.off-tpl.phase:]...) // the frame's payload, masked
	ws.Cipher(payload, key, 0)
	text, err := sioText(payload)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte(prefix+"00cafe01"), padding(40)...)
	if string(text) != string(want) {
		t.Fatalf("event text %q, want %q", text, want)
	}
	if _, err := sioText([]byte(`42["other","x"]`)); err == nil {
		t.Fatal("an event of another name was read")
	}
}
