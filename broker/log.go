package broker

import (
	"context"
	"log/slog"
	"runtime/debug"
)

// logAt logs msg at level with attrs. slog checks the level before anything else, and callers
// pass attributes that cost nothing to build (numbers, strings, pointers), so a disabled level
// costs a comparison.
func (b *Broker) logAt(level slog.Level, msg string, attrs ...slog.Attr) {
	b.log.LogAttrs(context.Background(), level, msg, attrs...)
}

// logAt logs msg about c at level: c's socket id and worker (appendLogAttrs), then attrs.
func (c *Conn) logAt(level slog.Level, msg string, attrs ...slog.Attr) {
	if !c.b.log.Enabled(context.Background(), level) {
		return
	}
	var buf [4]slog.Attr
	c.b.logAt(level, msg, append(c.appendLogAttrs(buf[:0]), attrs...)...)
}

// logPanic logs a panic recovered from a call about c, with the stack, as an error.
func (b *Broker) logPanic(c *Conn, msg string, r any) {
	b.logAt(slog.LevelError, msg, c.appendLogAttrs([]slog.Attr{slog.Any("panic", r), slog.String("stack", string(debug.Stack()))})...)
}

// appendLogAttrs appends what names c in a log line: its socket id, and the worker it is pinned
// to once the embedder has pinned it (a positive pin; the bridge's worker ids are).
func (c *Conn) appendLogAttrs(attrs []slog.Attr) []slog.Attr {
	attrs = append(attrs, slog.Uint64("socket", c.id))
	if w := c.pin.Load(); w > 0 {
		attrs = append(attrs, slog.Int("worker", int(w)))
	}
	return attrs
}
