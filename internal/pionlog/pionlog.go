// Package pionlog is the one bridge from pion's logging.LoggerFactory to
// log/slog, so pion's own lines carry the same format and attributes as
// Invigil's. cmd/invigil builds a Factory per component and hands it to
// the packages that run pion code (sfu, turn, loadtest); those packages
// take a logging.LoggerFactory and never import this one.
package pionlog

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
)

// LevelTrace is below slog's Debug: pion's trace output (and, for some
// components, its debug output) is per packet and never wanted outside a
// debugger session.
const LevelTrace = slog.LevelDebug - 4

// Levels maps pion's log levels onto slog's. Pion's levels mean different
// things in different libraries: pion/webrtc's Info is per-connection
// state chatter and its Warn mostly one connection's ordinary teardown,
// while pion/turn's Debug and Info are per datagram.
type Levels struct {
	Trace, Debug, Info, Warn, Error slog.Level
}

// Media suits pion/webrtc, ice, dtls and srtp: Info and Warn at Debug
// (Invigil logs each session's lifecycle itself at Info), Error, one
// connection's fault, at Warn.
var Media = Levels{Trace: LevelTrace, Debug: slog.LevelDebug, Info: slog.LevelDebug, Warn: slog.LevelDebug, Error: slog.LevelWarn}

// Relay suits pion/turn, whose Debug and Info are per datagram: both at
// LevelTrace; its Warn (a client's bad ChannelBind) at Debug, since
// Invigil logs its own refusals; its Error at Warn.
var Relay = Levels{Trace: LevelTrace, Debug: LevelTrace, Info: LevelTrace, Warn: slog.LevelDebug, Error: slog.LevelWarn}

// Factory is a logging.LoggerFactory writing to Logger. The zero Levels
// is Media.
type Factory struct {
	Logger *slog.Logger
	Levels Levels
	// ErrorInterval, if positive, lets at most one line at slog's Warn or
	// above through per interval, across every scope of the factory: some
	// pion errors (a failed write to a vanished client) repeat per packet.
	ErrorInterval time.Duration
	next          *atomic.Int64 // unix nanos before which such lines stay quiet
}

var _ logging.LoggerFactory = (*Factory)(nil)

// New returns a Factory over log with the given levels.
func New(log *slog.Logger, levels Levels, errorInterval time.Duration) *Factory {
	return &Factory{Logger: log, Levels: levels, ErrorInterval: errorInterval, next: new(atomic.Int64)}
}

// NewLogger returns a leveled logger for one pion scope ("ice", "dtls", …).
func (f *Factory) NewLogger(scope string) logging.LeveledLogger {
	lv := f.Levels
	if lv == (Levels{}) {
		lv = Media
	}
	next := f.next
	if next == nil {
		next = new(atomic.Int64)
	}
	return &logger{log: f.Logger.With("pion", scope), lv: lv, every: f.ErrorInterval, next: next}
}

type logger struct {
	log   *slog.Logger
	lv    Levels
	every time.Duration
	next  *atomic.Int64
}

func (l *logger) logf(level slog.Level, format string, args ...any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	if l.every > 0 && level >= slog.LevelWarn {
		now := time.Now().UnixNano()
		next := l.next.Load()
		if now < next || !l.next.CompareAndSwap(next, now+int64(l.every)) {
			return
		}
	}
	l.log.Log(ctx, level, fmt.Sprintf(format, args...))
}

func (l *logger) Trace(msg string)                  { l.logf(l.lv.Trace, "%s", msg) }
func (l *logger) Tracef(format string, args ...any) { l.logf(l.lv.Trace, format, args...) }
func (l *logger) Debug(msg string)                  { l.logf(l.lv.Debug, "%s", msg) }
func (l *logger) Debugf(format string, args ...any) { l.logf(l.lv.Debug, format, args...) }
func (l *logger) Info(msg string)                   { l.logf(l.lv.Info, "%s", msg) }
func (l *logger) Infof(format string, args ...any)  { l.logf(l.lv.Info, format, args...) }
func (l *logger) Warn(msg string)                   { l.logf(l.lv.Warn, "%s", msg) }
func (l *logger) Warnf(format string, args ...any)  { l.logf(l.lv.Warn, format, args...) }
func (l *logger) Error(msg string)                  { l.logf(l.lv.Error, "%s", msg) }
func (l *logger) Errorf(format string, args ...any) { l.logf(l.lv.Error, format, args...) }
