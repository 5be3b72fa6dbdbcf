package broker

import "github.com/rs/zerolog"

// MarshalZerologObject names a connection in a log line: its socket id, and the worker it is
// pinned to once the handler has pinned it (a positive Pin; the bridge's worker ids are).
func (c *Conn) MarshalZerologObject(e *zerolog.Event) {
	e.Uint64("socket", c.id)
	if w := c.Pin.Load(); w > 0 {
		e.Int32("worker", w)
	}
}
