package openconsole

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// LogLimiter logs repeated failures of one kind at most once per interval, with how many happened
// since the last line: an outage of the database that makes every request fail writes a line per
// kind and interval, not one per request. The count of failures after the last line is not lost:
// it is logged when the interval has passed, even if no failure follows.
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
	last    time.Time
	count   int         // failures since the last line
	pending *logLine    // the latest suppressed failure, logged with the count when the interval ends
	timer   *time.Timer // set while a pending line waits for the end of the interval
}

type logLine struct {
	level slog.Level
	msg   string
	err   error
	attrs []any
}

// LogInterval is how often a LogLimiter logs one kind of failure at most.
const LogInterval = 10 * time.Second

// maxLogKinds bounds the kinds a LogLimiter tracks; kinds are constant messages and route names,
// so this only bounds a misuse.
const maxLogKinds = 1000

// NewLogLimiter returns a LogLimiter on log with LogInterval.
func NewLogLimiter(log *slog.Logger) *LogLimiter {
	return &LogLimiter{log: log, interval: LogInterval, kinds: make(map[string]*logKind)}
}

// Warn logs msg at warning level with err and attrs, unless msg was logged less than an interval
// ago; the line that is logged says how many times it happened ("times"). The kind is msg.
func (l *LogLimiter) Warn(msg string, err error, attrs ...any) {
	l.emit(msg, logLine{slog.LevelWarn, msg, err, attrs})
}

// Error is Warn at error level.
func (l *LogLimiter) Error(msg string, err error, attrs ...any) {
	l.emit(msg, logLine{slog.LevelError, msg, err, attrs})
}

// ErrorKind is Error with a kind other than the message, such as the message and a route: the
// failures of each kind are counted and paced apart.
func (l *LogLimiter) ErrorKind(kind, msg string, err error, attrs ...any) {
	l.emit(kind, logLine{slog.LevelError, msg, err, attrs})
}

func (l *LogLimiter) emit(kind string, line logLine) {
	l.mu.Lock()
	k := l.kinds[kind]
	if k == nil {
		if len(l.kinds) >= maxLogKinds {
			for name, old := range l.kinds {
				if old.timer == nil {
					delete(l.kinds, name)
				}
			}
		}
		k = &logKind{}
		l.kinds[kind] = k
	}
	k.count++
	if since := time.Since(k.last); !k.last.IsZero() && since < l.interval {
		k.pending = &line
		if k.timer == nil {
			k.timer = time.AfterFunc(l.interval-since, func() { l.flush(kind) })
		}
		l.mu.Unlock()
		return
	}
	n := k.count
	k.count, k.last, k.pending = 0, time.Now(), nil
	l.mu.Unlock()
	l.write(line, n)
}

// flush logs the pending line of kind, with its count, if failures were suppressed since the last
// line.
func (l *LogLimiter) flush(kind string) {
	l.mu.Lock()
	k := l.kinds[kind]
	if k == nil {
		l.mu.Unlock()
		return
	}
	k.timer = nil
	line, n := k.pending, k.count
	if line == nil || n == 0 {
		l.mu.Unlock()
		return
	}
	k.count, k.last, k.pending = 0, time.Now(), nil
	l.mu.Unlock()
	l.write(*line, n)
}

func (l *LogLimiter) write(line logLine, n int) {
	l.log.Log(context.Background(), line.level, line.msg, append(append([]any{"err", line.err}, line.attrs...), "times", n)...)
}
