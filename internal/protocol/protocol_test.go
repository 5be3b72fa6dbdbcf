package protocol

import (
	"strings"
	"testing"

	"github.com/wsbroker/wsbroker/broker"
)

// unusedHandler satisfies broker.Handler; no connection ever reaches it.
type unusedHandler struct{ broker.Handler }

// The close codes JavaScript may send (a user's, and the system's CloseHandlerFailed) are exactly
// those broker.CloseSocket takes, and so is the longest reason.
func TestCloseRulesMatchTheBroker(t *testing.T) {
	b := broker.New(unusedHandler{}, broker.Options{})
	defer b.Close()
	const unknownSocket = 1 << 52
	for code := 0; code <= 0xffff; code++ {
		_, err := b.CloseSocket(unknownSocket, uint16(code), nil)
		ours := code == CloseNormal || code == CloseHandlerFailed || (code >= CloseAppMin && code <= CloseAppMax)
		if (err == nil) != ours {
			t.Fatalf("close code %d: broker.CloseSocket's error is %v, package protocol allows it: %t", code, err, ours)
		}
	}
	if _, err := b.CloseSocket(unknownSocket, CloseNormal, []byte(strings.Repeat("r", MaxCloseReason))); err != nil {
		t.Fatalf("a reason of MaxCloseReason bytes: %v", err)
	}
	if _, err := b.CloseSocket(unknownSocket, CloseNormal, []byte(strings.Repeat("r", MaxCloseReason+1))); err == nil {
		t.Fatal("a reason of MaxCloseReason+1 bytes was taken")
	}
}

func TestHandlerBits(t *testing.T) {
	seen := uint32(0)
	for _, k := range []byte{KindOpen, KindText, KindBinary, KindClose, KindCatchUp, KindDrain} {
		bit := HandlerBit(k)
		if bit == 0 || bit&(bit-1) != 0 || seen&bit != 0 {
			t.Fatalf("kind %d: handler bit %#x is not a bit of its own", k, bit)
		}
		seen |= bit
	}
}
