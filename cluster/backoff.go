package cluster

import (
	"math/rand/v2"
	"time"
)

// The reconnect backoff of every engine, so that nodes behave alike whatever their engine: an
// engine back after an outage is found within a second, and a dial a second costs nothing.
const (
	firstBackoff  = 100 * time.Millisecond // the wait after the first failure; each failure doubles it
	maxBackoff    = time.Second            // the longest wait between two attempts
	backoffJitter = 0.2                    // the share of a wait it is spread by, either way
)

// Backoff is how long an engine waits before it tries again after failures consecutive failures
// (1 or more): 100 ms doubling to 1 s, spread by ±20 % so that nodes that lost the engine
// together do not return together.
func Backoff(failures int) time.Duration {
	d := min(firstBackoff<<min(max(failures-1, 0), 8), maxBackoff)
	return time.Duration(float64(d) * (1 + backoffJitter*(2*rand.Float64()-1)))
}
