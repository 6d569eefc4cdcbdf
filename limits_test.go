package openconsole

import (
	"testing"
	"time"
)

func TestLimiterBucket(t *testing.T) {
	l := newLimiter(Limit{Burst: 3, PerMinute: 6}) // a token every 10s
	now := time.Unix(1_800_000_000, 0)
	for i := 0; i < 3; i++ {
		if w := l.wait("a", now); w != 0 {
			t.Fatalf("failure %d: wait %v before the burst is used", i, w)
		}
		l.fail("a", now)
	}
	if w := l.wait("a", now); w != 10*time.Second {
		t.Fatalf("after the burst: wait %v, want 10s", w)
	}
	if w := l.wait("b", now); w != 0 {
		t.Fatalf("another subject waits %v", w)
	}
	now = now.Add(4 * time.Second)
	if w := l.wait("a", now); w != 6*time.Second {
		t.Fatalf("4s later: wait %v, want 6s", w)
	}
	now = now.Add(6 * time.Second)
	if w := l.wait("a", now); w != 0 {
		t.Fatalf("after a refill: wait %v, want 0", w)
	}
	l.fail("a", now)
	if w := l.wait("a", now); w == 0 {
		t.Fatal("one token refilled, one failure: should wait again")
	}
	// A bucket full again is forgotten by a sweep.
	now = now.Add(time.Hour)
	l.sweepAll(now)
	if len(l.m) != 0 {
		t.Errorf("%d buckets after a sweep, want 0", len(l.m))
	}
	// Disabled limits and empty subjects never wait.
	var off *limiter = newLimiter(Limit{})
	off.fail("a", now)
	if off.wait("a", now) != 0 || l.wait("", now) != 0 {
		t.Error("a disabled limit or an empty subject waits")
	}
}
