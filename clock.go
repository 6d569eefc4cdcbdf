package openconsole

import "time"

// clock is a Service's one time source, Options.Now. Every time the rules read (expiry, idle
// timeouts, token lifetimes, abuse limits, timestamps) comes from it, so a test that advances it
// moves all of them together.
//
// Deadlines that must not move when the wall clock is stepped (how long the validate cache is
// trusted, how recently signing keys were read) are measured with elapsed: the distance of a reading
// from the clock's first one. time.Time readings from time.Now carry a monotonic clock reading, and
// Sub uses it when both sides have one; a test clock's readings have none and are compared as wall
// times, which is what the test wants.
type clock struct {
	now    func() time.Time
	origin time.Time
}

func newClock(now func() time.Time) clock {
	if now == nil {
		now = time.Now
	}
	return clock{now: now, origin: now()}
}

// Now returns the current time.
func (c clock) Now() time.Time { return c.now() }

// elapsed returns how long after the clock's origin t lies (monotonic when t came from time.Now).
func (c clock) elapsed(t time.Time) time.Duration { return t.Sub(c.origin) }
