package openconsole

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// TestLogLimiterCountsRepeats (issue 10, finding 10): a flood of one kind of failure writes one
// line at once and, when the interval ends, one line with the count of the rest; kinds are paced
// apart.
func TestLogLimiterCountsRepeats(t *testing.T) {
	var buf bytes.Buffer
	l := NewLogLimiter(slog.New(slog.NewTextHandler(&buf, nil)))
	boom := errors.New("database is down")
	for range 36000 {
		l.ErrorKind("request failed POST /a", "request failed", boom, "route", "/a")
	}
	for range 500 {
		l.ErrorKind("request failed POST /b", "request failed", boom, "route", "/b")
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "route=/a") || !strings.Contains(lines[0], "times=1") ||
		!strings.Contains(lines[1], "route=/b") {
		t.Fatalf("log after two floods:\n%s\nwant one line per kind", buf.String())
	}
	// The end of the interval reports the rest (the timer does this; here it is run at once).
	l.flush("request failed POST /a")
	l.flush("request failed POST /b")
	l.flush("request failed POST /b") // nothing more to report
	lines = strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[2], "times=35999") || !strings.Contains(lines[3], "times=499") ||
		!strings.Contains(lines[2], "level=ERROR") || !strings.Contains(lines[2], "database is down") {
		t.Errorf("log after the interval:\n%s\nwant the counts 35999 and 499", buf.String())
	}
}
