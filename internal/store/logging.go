package store

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// pebbleLogger routes pebble's log lines to slog: informational lines at
// debug level, error lines at error level. A nil l discards them.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l != nil {
		p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
	}
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	if p.l != nil {
		p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
	}
}

// Fatalf is called by pebble on an invariant violation and must not return
// (pebble's default logger exits the process). We log and panic, which keeps
// the stack and lets the caller's crash handling run.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if p.l != nil {
		p.l.Error(msg, "component", "pebble", "fatal", true)
	}
	panic("store: pebble fatal: " + msg)
}

// eventListener reports the pebble events an operator should see: background
// errors and data corruption (error), disk stalls, write stalls and low disk
// space (warn). Everything else stays silent.
func eventListener(l *slog.Logger) *pebble.EventListener {
	if l == nil {
		return nil // pebble's defaults log to pebbleLogger, which discards
	}
	log := func(level slog.Level, msg string, info fmt.Stringer) {
		l.Log(context.Background(), level, msg, "component", "pebble", "info", info.String())
	}
	return &pebble.EventListener{
		BackgroundError: func(err error) {
			l.Error("store: background error", "component", "pebble", "err", err)
		},
		DataCorruption: func(i pebble.DataCorruptionInfo) { log(slog.LevelError, "store: data corruption", i) },
		DiskSlow:       func(i pebble.DiskSlowInfo) { log(slog.LevelWarn, "store: disk slow", i) },
		WriteStallBegin: func(i pebble.WriteStallBeginInfo) {
			log(slog.LevelWarn, "store: write stall", i)
		},
		LowDiskSpace: func(i pebble.LowDiskSpaceInfo) { log(slog.LevelWarn, "store: low disk space", i) },
	}
}
