package cluster

import (
	"math/rand/v2"
	"time"
)

// The reconnect backoff of every engine, so that nodes behave alike whatever their engine: an
// engine back after an outage is found within a second, and a dial a second costs nothing.
const (
	// FirstBackoff is the wait after the first failed attempt; each failure doubles it.
	FirstBackoff = 100 * time.Millisecond
	// MaxBackoff is the longest wait between two attempts.
	MaxBackoff = time.Second
)

// backoffJitter is the share of a wait that Jittered spreads it by, either way.
const backoffJitter = 0.2

// Jittered spreads d by ±20 %, so that nodes that lost the engine together do not return
// together.
func Jittered(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (1 + backoffJitter*(2*rand.Float64()-1)))
}
