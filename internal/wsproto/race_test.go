//go:build race

package wsproto

// raceEnabled: the race detector's sync.Pool drops a quarter of what it is given, so that
// allocation counts are not exact.
const raceEnabled = true
