package broker

import (
	"sync/atomic"

	"github.com/wsbroker/wsbroker/internal/embedder"
)

func init() {
	embedder.Provide(embedder.Hooks[Broker, Conn]{
		PollerFDs:     func(b *Broker) []int { return b.pollers().FDs() },
		DispatchReady: func(b *Broker, here func(*Conn) bool) bool { return b.pollers().DispatchReady(here) },
		Pin:           func(c *Conn) *atomic.Int32 { return &c.pin },
		MayBlock:      (*Conn).mayBlock,
	})
}
