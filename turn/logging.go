package turn

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
)

// levelTrace is below slog's Debug: pion/turn logs every datagram at Debug
// and every unpermitted one at Info, which nobody wants outside a debugger.
const levelTrace = slog.LevelDebug - 4

// pionErrorInterval is the least time between two lines pion/turn logs at
// Error. Its errors are one client's or peer's fault (a failed write to a
// vanished client, a bad TLS handshake) and can repeat per packet.
const pionErrorInterval = time.Second

// loggerFactory bridges pion's logging.LoggerFactory to slog. pion/turn's
// Debug and Info are per packet, so both go to levelTrace; its Warn (a
// client's bad ChannelBind) to Debug, since Invigil logs its own
// refusals; its Error to Warn, at most one line per pionErrorInterval.
type loggerFactory struct {
	log  *slog.Logger
	next *atomic.Int64 // Unix nanoseconds before which pion errors stay quiet; shared by every scope
}

var _ logging.LoggerFactory = loggerFactory{}

// NewLogger returns a leveled logger for one pion scope.
func (f loggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope), next: f.next}
}

type pionLogger struct {
	log  *slog.Logger
	next *atomic.Int64
}

func (l pionLogger) logf(level slog.Level, format string, args ...any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	if level >= slog.LevelWarn {
		now := time.Now().UnixNano()
		next := l.next.Load()
		if now < next || !l.next.CompareAndSwap(next, now+int64(pionErrorInterval)) {
			return
		}
	}
	l.log.Log(ctx, level, fmt.Sprintf(format, args...))
}

func (l pionLogger) Trace(msg string)                  { l.logf(levelTrace, "%s", msg) }
func (l pionLogger) Tracef(format string, args ...any) { l.logf(levelTrace, format, args...) }
func (l pionLogger) Debug(msg string)                  { l.logf(levelTrace, "%s", msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.logf(levelTrace, format, args...) }
func (l pionLogger) Info(msg string)                   { l.logf(levelTrace, "%s", msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.logf(levelTrace, format, args...) }
func (l pionLogger) Warn(msg string)                   { l.logf(slog.LevelDebug, "%s", msg) }
func (l pionLogger) Warnf(format string, args ...any)  { l.logf(slog.LevelDebug, format, args...) }
func (l pionLogger) Error(msg string)                  { l.logf(slog.LevelWarn, "%s", msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.logf(slog.LevelWarn, format, args...) }
