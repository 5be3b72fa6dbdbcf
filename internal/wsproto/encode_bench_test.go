package wsproto

import "testing"

func BenchmarkEncodeFrame4K(b *testing.B) {
	data := make([]byte, 4096)
	b.SetBytes(4096)
	for b.Loop() {
		_ = EncodeFrame(1, data)
	}
}
