package broker

import (
	"sync/atomic"

	"github.com/wsbroker/wsbroker/internal/embedder"
)

func init() {
	embedder.Provide(embedder.Hooks[Broker, Conn]{
		PollerFDs:     (*Broker).pollerFDs,
		DispatchReady: (*Broker).dispatchReady,
		Pin:           func(c *Conn) *atomic.Int32 { return &c.pin },
		MayBlock:      (*Conn).mayBlock,
	})
}
