package openconsole

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// touchRecorder is a Store that only records write-back.
type touchRecorder struct {
	Store
	mu      sync.Mutex
	batches [][]Touch
	written map[string]time.Time
}

func (r *touchRecorder) TouchSessions(ctx context.Context, seen []Touch) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, seen)
	for _, t := range seen {
		r.written[t.SessionID] = t.At
	}
	return nil, nil
}

type stepClock struct{ t time.Time }

func (c *stepClock) Now() time.Time { return c.t }

// TestWriteBackIsPaced: a wave of activity recorded at once is written evenly over the write
// window, a bounded chunk per transaction, and all of it by the end of the window; activity of
// sessions near their timeout is written at the next tick.
func TestWriteBackIsPaced(t *testing.T) {
	ctx := context.Background()
	for _, ttl := range []time.Duration{0, 10 * time.Minute} {
		c := &stepClock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		rec := &touchRecorder{written: map[string]time.Time{}}
		l := newLiveness(rec, newClock(c.Now), slog.Default(), Options{SessionTTL: ttl, TouchInterval: time.Second, CacheSize: -1})
		const wave = 100_000
		ids := make([]string, wave)
		for i := range ids {
			ids[i] = NewSessionID()
			// Last seen a touch interval ago: due, far from any timeout.
			l.seen(ids[i], c.t.Add(-l.touchEvery), c.t)
		}
		urgent := NewSessionID()
		if ttl > 0 {
			l.seen(urgent, c.t.Add(-ttl+time.Second), c.t) // one second from its timeout
		}
		ticks := 0
		var perTick []int
		for {
			before := len(rec.written)
			if err := l.writeBack(ctx, false); err != nil {
				t.Fatal(err)
			}
			perTick = append(perTick, len(rec.written)-before)
			if ticks == 0 && ttl > 0 {
				if _, ok := rec.written[urgent]; !ok {
					t.Errorf("ttl %v: activity of a session near its timeout not written at the first tick", ttl)
				}
			}
			ticks++
			c.t = c.t.Add(time.Second)
			if len(rec.written) >= wave || ticks > 1000 {
				break
			}
		}
		// Evenly over the window, but at least a chunk per tick.
		window := int(l.writeWindow / time.Second)
		want := min(window, wave/touchChunk)
		if ticks > window+1 || ticks < want*9/10 {
			t.Errorf("ttl %v: the wave took %d ticks to write, want about %d (write window %d ticks)", ttl, ticks, want, window)
		}
		even := max(touchChunk, wave/window)
		for i, n := range perTick {
			if n > 2*even && !(i == 0 && ttl > 0) {
				t.Errorf("ttl %v: tick %d wrote %d, more than twice an even share (%d)", ttl, i, n, even)
				break
			}
		}
		for i, b := range rec.batches {
			if len(b) > touchChunk {
				t.Errorf("ttl %v: a write-back transaction of %d sessions, want at most %d", ttl, len(b), touchChunk)
				break
			}
			// A transaction writes neighbours: ids within a narrow range of the key space (100,000
			// of them pending, 500 a transaction: about 1/200 of it).
			if i > 0 && len(b) == touchChunk && b[len(b)-1].SessionID[:2] > b[0].SessionID[:2] && hexByte(b[len(b)-1].SessionID)-hexByte(b[0].SessionID) > 4 {
				t.Errorf("ttl %v: a write-back transaction spans ids %s to %s", ttl, b[0].SessionID, b[len(b)-1].SessionID)
				break
			}
		}
		t.Logf("ttl %v: %d sessions written in %d ticks (window %v), %d transactions", ttl, len(rec.written), ticks, l.writeWindow, len(rec.batches))
	}
}

func hexByte(id string) int {
	var v int
	for _, c := range id[:2] {
		v <<= 4
		if c >= 'a' {
			v += int(c-'a') + 10
		} else {
			v += int(c - '0')
		}
	}
	return v
}
