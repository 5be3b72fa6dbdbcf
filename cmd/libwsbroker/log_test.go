package main

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"regexp"
	"testing"
	"time"
)

// TestZerologHandlerWritesZerologsLines: a broker line through slog is the line zerolog's own
// calls wrote before the broker took a *slog.Logger, in JSON and in the console format.
func TestZerologHandlerWritesZerologsLines(t *testing.T) {
	peer := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242}
	for _, console := range []bool{false, true} {
		var direct, viaSlog bytes.Buffer
		zl := newLogger("debug", &direct, console)
		zl.Error().Interface("panic", errors.New("boom")).Bytes("stack", []byte("a\n\tb")).
			Uint64("socket", 7).Int32("worker", 2).Err(errors.New("read: reset")).
			Dur("idle_timeout", 1500*time.Millisecond).Stringer("peer", peer).Int("code", 1002).Str("url", "/x?y").Msg("a line")
		zl.Debug().Uint64("socket", 7).Err(nil).Msg("no error")

		sl := slog.New(zerologHandler{l: newLogger("debug", &viaSlog, console)})
		sl.LogAttrs(t.Context(), slog.LevelError, "a line", slog.Any("panic", errors.New("boom")), slog.String("stack", "a\n\tb"),
			slog.Uint64("socket", 7), slog.Int("worker", 2), slog.Any("error", errors.New("read: reset")),
			slog.Duration("idle_timeout", 1500*time.Millisecond), slog.Any("peer", peer), slog.Int("code", 1002), slog.String("url", "/x?y"))
		sl.LogAttrs(t.Context(), slog.LevelDebug, "no error", slog.Uint64("socket", 7), slog.Any("error", nil))

		// The timestamps differ by the time between the calls.
		stamp := regexp.MustCompile(`(?m)"time":"[^"]*"|^\S+`)
		strip := func(b []byte) string { return stamp.ReplaceAllString(string(b), "") }
		if got, want := strip(viaSlog.Bytes()), strip(direct.Bytes()); got != want {
			t.Fatalf("console %v:\nthrough slog %s\nzerolog      %s", console, got, want)
		}
	}
	quiet := slog.New(zerologHandler{l: newLogger("warn", &bytes.Buffer{}, false)})
	if quiet.Enabled(t.Context(), slog.LevelInfo) || !quiet.Enabled(t.Context(), slog.LevelWarn) {
		t.Fatal("WSBROKER_LOG=warn: info enabled, or warn not")
	}
}
