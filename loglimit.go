package openconsole

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// LogLimiter logs repeated failures of one kind (one message) at most once per interval, with
// how many happened since the last line: an outage of the database that makes every request fail
// writes a line a second, not one per request.
//
// It reads the real clock, not a Service's: it paces log lines, which no rule depends on, and a
// test clock that stands still must not silence them.
type LogLimiter struct {
	log      *slog.Logger
	interval time.Duration
	mu       sync.Mutex
	kinds    map[string]*logKind
}

type logKind struct {
	last  time.Time
	count int
}

// LogInterval is how often a LogLimiter logs one kind of failure at most.
const LogInterval = 10 * time.Second

// NewLogLimiter returns a LogLimiter on log with LogInterval.
func NewLogLimiter(log *slog.Logger) *LogLimiter {
	return &LogLimiter{log: log, interval: LogInterval, kinds: make(map[string]*logKind)}
}

// Warn logs msg at warning level with err and attrs, unless msg was logged less than an interval
// ago; the line that is logged says how many times it happened ("times").
func (l *LogLimiter) Warn(msg string, err error, attrs ...any) {
	l.emit(slog.LevelWarn, msg, err, attrs)
}

// Error is Warn at error level.
func (l *LogLimiter) Error(msg string, err error, attrs ...any) {
	l.emit(slog.LevelError, msg, err, attrs)
}

func (l *LogLimiter) emit(level slog.Level, msg string, err error, attrs []any) {
	l.mu.Lock()
	k := l.kinds[msg]
	if k == nil {
		if len(l.kinds) > 1000 {
			clear(l.kinds) // messages are constants; this only bounds a misuse
		}
		k = &logKind{}
		l.kinds[msg] = k
	}
	k.count++
	if !k.last.IsZero() && time.Since(k.last) < l.interval {
		l.mu.Unlock()
		return
	}
	n := k.count
	k.count, k.last = 0, time.Now()
	l.mu.Unlock()
	l.log.Log(context.Background(), level, msg, append(append([]any{"err", err}, attrs...), "times", n)...)
}
