package openconsole

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"
)

// benchKey is the i-th session key of BenchmarkCacheGet, computed rather than stored so that the
// benchmark reads no memory of its own: what it measures is the memory the cache touches.
func benchKey(i int) (k sessionKey) {
	z := uint64(i)*0x9e3779b97f4a7c15 + 1
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	binary.LittleEndian.PutUint64(k[:8], z)
	binary.LittleEndian.PutUint64(k[8:], z^z>>27)
	return k
}

// BenchmarkCacheLookup measures the validate cache's lookups with a million sessions on 100,000
// licenses of ten seats (the fleet of scripts/perf validate 1000000), in an order that jumps across
// the whole cache, from every core: get (the whole state, as activation reads it) and valid (what
// validate reads).
func BenchmarkCacheLookup(b *testing.B) {
	const sessions, perLicense = 1_000_000, 10
	now := time.Now()
	c := newSessionCache(sessions, time.Hour, now)
	c.trust(time.Hour)
	for i := range sessions {
		lid := int64(i/perLicense + 1)
		c.put(benchKey(i), SessionState{
			Session: Session{LicenseID: lid, Timestamp: now.UnixMilli(), LastSeenAt: now},
			License: License{ID: lid, Key: "key", Kind: KindKey, OwnerID: 1, Seats: perLicense},
		}, c.gen.Load())
	}
	if got := c.size.Load(); got != sessions {
		b.Fatalf("cached %d sessions, want %d", got, sessions)
	}
	for _, bc := range []struct {
		name   string
		lookup func(sessionKey) bool
	}{
		{"get", func(k sessionKey) bool { _, ok := c.get(k, "id", time.Minute); return ok }},
		{"valid", func(k sessionKey) bool { _, _, _, ok := c.valid(k, time.Minute); return ok }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var start atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				i := int(start.Add(sessions/3)) % sessions // each goroutine in its own part of the cache
				for pb.Next() {
					i = (i + 7919) % sessions
					if !bc.lookup(benchKey(i)) {
						b.Fatal("miss")
					}
				}
			})
		})
	}
}
