package openconsole

import "time"

// SeenClockForTest exposes the packing of cached last-seen times.
type SeenClockForTest struct{ c seenClock }

func NewSeenClockForTest(ttl time.Duration) SeenClockForTest {
	return SeenClockForTest{newSeenClock(ttl, time.Now())}
}
func (s SeenClockForTest) Pack(ms int64) uint32      { return s.c.pack(ms) }
func (s SeenClockForTest) Unpack(v uint32) time.Time { return s.c.unpack(v) }

// SetPasswordCheckForTest replaces the password check (CheckPassword) until the returned function
// is called.
func SetPasswordCheckForTest(f func(hash, password string) bool) (restore func()) {
	old := checkPasswordFunc
	checkPasswordFunc = f
	return func() { checkPasswordFunc = old }
}
