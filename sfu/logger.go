package sfu

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// levelTrace is below slog's Debug: pion's trace output is per packet on
// some paths and is never wanted outside a debugger session.
const levelTrace = slog.LevelDebug - 4

// LoggerFactory bridges pion's logging.LoggerFactory to slog, so pion's own
// lines carry the same format and attributes as Invigil's. pion's Info is
// per-connection chatter (state changes) and its Warn is mostly ordinary
// teardown of one connection ("stream is already closed"), so both are
// logged at Debug; its Error, one connection's fault, at Warn. Invigil's
// own lines report each session's lifecycle at Info.
type LoggerFactory struct {
	Logger *slog.Logger
}

var _ logging.LoggerFactory = LoggerFactory{}

// NewLogger returns a leveled logger for one pion scope ("ice", "dtls", …).
func (f LoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.Logger.With("pion", scope)}
}

type pionLogger struct {
	log *slog.Logger
}

func (l pionLogger) logf(level slog.Level, format string, args ...any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.Log(ctx, level, fmt.Sprintf(format, args...))
}

func (l pionLogger) Trace(msg string)                  { l.logf(levelTrace, "%s", msg) }
func (l pionLogger) Tracef(format string, args ...any) { l.logf(levelTrace, format, args...) }
func (l pionLogger) Debug(msg string)                  { l.logf(slog.LevelDebug, "%s", msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.logf(slog.LevelDebug, format, args...) }
func (l pionLogger) Info(msg string)                   { l.logf(slog.LevelDebug, "%s", msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.logf(slog.LevelDebug, format, args...) }
func (l pionLogger) Warn(msg string)                   { l.logf(slog.LevelDebug, "%s", msg) }
func (l pionLogger) Warnf(format string, args ...any)  { l.logf(slog.LevelDebug, format, args...) }
func (l pionLogger) Error(msg string)                  { l.logf(slog.LevelWarn, "%s", msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.logf(slog.LevelWarn, format, args...) }
