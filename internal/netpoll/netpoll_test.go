package netpoll

import "testing"

func TestClaimAndRelease(t *testing.T) {
	var e Entry[*struct{}]
	if !e.Release() { // a new entry is held by whoever registers it
		t.Fatal("a new entry's holder could not release it")
	}
	if !e.claim() {
		t.Fatal("input on an idle entry did not hold it")
	}
	for range 2 {
		if e.claim() {
			t.Fatal("input on a held entry held it again")
		}
	}
	if e.Release() {
		t.Fatal("released with input since the last turn")
	}
	if !e.Release() {
		t.Fatal("not released after a turn with no input since")
	}
}
