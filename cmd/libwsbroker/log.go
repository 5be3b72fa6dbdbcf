package main

/*
#include <stdint.h>
#include <stddef.h>
*/
import "C"

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/wsbroker/wsbroker/internal/protocol"
)

// The one log of the process: the broker's lines and the JS side's (wsb_log) go through it, so they
// share one format on stderr. Where people read stderr (a terminal) it is zerolog's console format;
// anywhere else (a pipe, a file, a log collector) JSON lines, one object per line:
//
//	{"level":"error","time":"2026-01-02T03:04:05.678Z","socket":12,"worker":2,"thread":3,"msg":"..."}
//
// with socket (the socket id), worker (the broker's worker the line concerns) and thread (the Node
// threadId of that worker) where they apply.

// logLevels are the values of WSBROKER_LOG, quietest last.
var logLevels = map[string]zerolog.Level{
	"debug": zerolog.DebugLevel,
	"info":  zerolog.InfoLevel,
	"warn":  zerolog.WarnLevel,
	"error": zerolog.ErrorLevel,
}

// newLogger builds the logger for WSBROKER_LOG's value (default warn) writing to out, in the
// console format when console is set. An unknown level is said once, then warn applies.
func newLogger(levelName string, out io.Writer, console bool) zerolog.Logger {
	// Global to zerolog, and this library is the only zerolog user in its process.
	zerolog.MessageFieldName = "msg"
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00" // as JavaScript's toISOString()
	zerolog.TimestampFunc = func() time.Time { return time.Now().UTC() }
	if console {
		out = zerolog.ConsoleWriter{
			Out:         out,
			NoColor:     os.Getenv("NO_COLOR") != "",
			TimeFormat:  "15:04:05.000",
			FieldsOrder: []string{"socket", "worker", "thread"},
		}
	}
	name := strings.ToLower(strings.TrimSpace(levelName))
	level, ok := logLevels[name]
	if !ok {
		level = zerolog.WarnLevel
	}
	l := zerolog.New(out).Level(level).With().Timestamp().Logger()
	if !ok && name != "" {
		l.Warn().Msg(fmt.Sprintf("WSBROKER_LOG=%q is not one of debug, info, warn, error; using warn", levelName))
	}
	return l
}

func stderrLogger() zerolog.Logger {
	return newLogger(os.Getenv("WSBROKER_LOG"), os.Stderr, isatty.IsTerminal(os.Stderr.Fd()))
}

// wsb_log writes a line from JS or C at a level of package protocol (protocol.LogDebug …
// LogError); socket, worker and thread are added when not 0.
//
//export wsb_log
func wsb_log(level C.int, msg *C.uint8_t, n C.size_t, socket C.uint64_t, worker C.int32_t, thread C.int32_t) {
	defer recoverInto("log")
	var ev *zerolog.Event
	switch level {
	case protocol.LogDebug:
		ev = logger.Debug()
	case protocol.LogInfo:
		ev = logger.Info()
	case protocol.LogWarn:
		ev = logger.Warn()
	default:
		ev = logger.Error()
	}
	if socket != 0 {
		ev = ev.Uint64("socket", uint64(socket))
	}
	if worker != 0 {
		ev = ev.Int32("worker", int32(worker))
	}
	if thread != 0 {
		ev = ev.Int32("thread", int32(thread))
	}
	ev.Msg(string(bytesOf(msg, n)))
}

// zerologHandler is the slog.Handler the broker logs through: each record becomes a line of a
// zerolog logger, the very line zerolog's own calls would write (fields in the record's order,
// zerolog's timestamp). By slog's convention an error goes under the key "error", where it is
// written as zerolog's Err writes it; other values are written as by zerolog's Stringer (a
// fmt.Stringer) or Interface (JSON).
type zerologHandler struct {
	l      zerolog.Logger
	attrs  []slog.Attr // from WithAttrs, before the record's own
	prefix string      // the groups opened by WithGroup, each followed by "."
}

// zerologLevel maps a slog level to zerolog's: below info is debug, and so on.
func zerologLevel(level slog.Level) zerolog.Level {
	switch {
	case level < slog.LevelInfo:
		return zerolog.DebugLevel
	case level < slog.LevelWarn:
		return zerolog.InfoLevel
	case level < slog.LevelError:
		return zerolog.WarnLevel
	}
	return zerolog.ErrorLevel
}

// Enabled reports whether the logger writes lines of level.
func (h zerologHandler) Enabled(_ context.Context, level slog.Level) bool {
	zl := zerologLevel(level)
	return zl >= h.l.GetLevel() && zl >= zerolog.GlobalLevel()
}

// Handle writes r as one line.
func (h zerologHandler) Handle(_ context.Context, r slog.Record) error {
	ev := h.l.WithLevel(zerologLevel(r.Level))
	if ev == nil {
		return nil
	}
	for _, a := range h.attrs {
		addAttr(ev, h.prefix, a)
	}
	r.Attrs(func(a slog.Attr) bool {
		addAttr(ev, h.prefix, a)
		return true
	})
	ev.Msg(r.Message)
	return nil
}

// WithAttrs returns a handler that writes attrs in every line, before the record's own.
func (h zerologHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h.attrs = append(slices.Clip(h.attrs), attrs...)
	return h
}

// WithGroup returns a handler that prefixes the keys of what follows with name and ".".
func (h zerologHandler) WithGroup(name string) slog.Handler {
	if name != "" {
		h.prefix += name + "."
	}
	return h
}

// addAttr adds a to ev, its key prefixed; a group's attributes are added one by one.
func addAttr(ev *zerolog.Event, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	key := prefix + a.Key
	switch v.Kind() {
	case slog.KindString:
		ev.Str(key, v.String())
	case slog.KindInt64:
		ev.Int64(key, v.Int64())
	case slog.KindUint64:
		ev.Uint64(key, v.Uint64())
	case slog.KindFloat64:
		ev.Float64(key, v.Float64())
	case slog.KindBool:
		ev.Bool(key, v.Bool())
	case slog.KindDuration:
		ev.Dur(key, v.Duration())
	case slog.KindTime:
		ev.Time(key, v.Time())
	case slog.KindGroup:
		if a.Key != "" {
			prefix = key + "."
		}
		for _, g := range v.Group() {
			addAttr(ev, prefix, g)
		}
	default:
		switch x := v.Any().(type) {
		case error:
			if a.Key == "error" {
				ev.AnErr(key, x)
			} else {
				ev.Interface(key, x)
			}
		case nil:
			if a.Key != "error" { // zerolog's Err(nil) writes nothing
				ev.Interface(key, nil)
			}
		case fmt.Stringer:
			ev.Stringer(key, x)
		default:
			ev.Interface(key, x)
		}
	}
}
