package broker

import (
	"sync/atomic"

	"github.com/wsbroker/wsbroker/internal/embedder"
)

func init() {
	embedder.Provide(embedder.Hooks[Broker, Conn]{
		Route: func(b *Broker, of func(*Conn) int) { b.route.Store(&of) },
		PollerFD: func(b *Broker, i int) int {
			s := b.pollers()
			if s.Grow(i+1) != nil {
				return -1
			}
			return s.FD(i)
		},
		DispatchReady: func(b *Broker, i int, here func(*Conn) bool) bool { return b.pollers().DispatchReady(i, here) },
		Watch:         func(b *Broker, i int, on bool) { b.pollers().Watch(i, on) },
		Pin:           func(c *Conn) *atomic.Int32 { return &c.pin },
		MayBlock:      (*Conn).mayBlock,
		TakeMessage:   func(c *Conn) []*[]byte { return c.parser.TakeMessage() },
	})
}
