package main

/*
#include <stdint.h>
#include <stddef.h>
*/
import "C"

import (
	"fmt"
	"io"
	"os"
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
