package openconsole

import (
	"encoding/hex"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// sessionCache is the data structure behind the validate cache: sessions by id in 16 bytes each,
// the licenses they belong to, and how long the whole may be trusted. What goes in, what comes out
// and when it is trusted is decided by liveness (liveness.go), which owns it.

const cacheShards = 64

type sessionKey [16]byte

// keyOf converts a canonical lower-case UUID (as ParseSessionID returns it) to its 16 bytes.
func keyOf(id string) (k sessionKey, ok bool) {
	var buf [32]byte
	j := 0
	for i := 0; i < len(id) && j < 32; i++ {
		if id[i] != '-' {
			buf[j] = id[i]
			j++
		}
	}
	if j != 32 {
		return k, false
	}
	_, err := hex.Decode(k[:], buf[:])
	return k, err == nil
}

// cachedSession is what validate needs of a session, in 16 bytes: with a million sessions cached,
// every byte here is a megabyte. Revoked sessions are not cached, nor sessions of licenses whose id
// does not fit 32 bits (they are read from the database).
type cachedSession struct {
	ts        int64
	licenseID uint32
	lastSeen  uint32 // in seenRes units from seenBase, rounded down; see packSeen
}

// seenClock packs last-seen times into 32 bits. Its resolution is a hundredth of the idle timeout
// (between 1 ms and 1 s), so rounding makes a session look at most 1% of its TTL idler, well
// within the slack that touch already takes; its origin lies 2^31 units before the cache was made,
// so the range reaches as far into the past as into the future (at least 24 days each way).
type seenClock struct {
	base, res int64 // Unix ms, ms
}

func newSeenClock(ttl time.Duration, now time.Time) seenClock {
	res := int64(1000)
	if ttl > 0 {
		res = min(1000, max(1, ttl.Milliseconds()/100))
	}
	return seenClock{base: now.UnixMilli() - res<<31, res: res}
}

func (c seenClock) pack(ms int64) uint32 {
	if ms == 0 {
		return 0
	}
	return uint32(min(math.MaxUint32, max(1, (ms-c.base)/c.res)))
}

func (c seenClock) unpack(v uint32) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(c.base + int64(v)*c.res).UTC()
}

// cachedLicense is what validate and activation need of a license.
type cachedLicense struct {
	key         string
	ownerID     int64
	expiresAt   int64 // Unix ms, 0: never
	revokedAt   int64 // Unix ms, 0: not revoked
	suspendedAt int64 // Unix ms, 0: not suspended
	seats       int32
	serial      bool // kind serial, else key
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[sessionKey]cachedSession
}

type sessionCache struct {
	shards   [cacheShards]cacheShard
	licMu    sync.RWMutex
	licenses map[int64]cachedLicense
	size     atomic.Int64
	max      int64
	seen     seenClock

	// gen counts invalidations. A fill that read the database before an invalidation must not
	// store what it read after it (it may be the state from before the change).
	gen atomic.Uint64
	// trustedUntil is when the last successful poll stops vouching for the cache, as clock.elapsed.
	trustedUntil atomic.Int64
}

func newSessionCache(max int, ttl time.Duration, now time.Time) *sessionCache {
	c := &sessionCache{licenses: make(map[int64]cachedLicense), max: int64(max), seen: newSeenClock(ttl, now)}
	for i := range c.shards {
		c.shards[i].m = make(map[sessionKey]cachedSession)
	}
	return c
}

func (c *sessionCache) shard(k sessionKey) *cacheShard { return &c.shards[k[15]%cacheShards] }

// trust makes the cache trusted until the given elapsed time.
func (c *sessionCache) trust(until time.Duration) { c.trustedUntil.Store(int64(until)) }

// get returns the cached state of a session, if the cache is trusted at elapsed time at and holds
// both the session and its license.
func (c *sessionCache) get(k sessionKey, id string, at time.Duration) (SessionState, bool) {
	if int64(at) > c.trustedUntil.Load() {
		return SessionState{}, false
	}
	sh := c.shard(k)
	sh.mu.RLock()
	e, ok := sh.m[k]
	sh.mu.RUnlock()
	if !ok {
		return SessionState{}, false
	}
	lid := int64(e.licenseID)
	c.licMu.RLock()
	l, ok := c.licenses[lid]
	c.licMu.RUnlock()
	if !ok {
		return SessionState{}, false
	}
	return SessionState{
		Session: Session{ID: id, LicenseID: lid, Timestamp: e.ts, LastSeenAt: c.seen.unpack(e.lastSeen)},
		License: License{ID: lid, Key: l.key, Kind: kindOf(l.serial), OwnerID: l.ownerID, Seats: int(l.seats),
			ExpiresAt: fromMS(l.expiresAt), RevokedAt: fromMS(l.revokedAt), SuspendedAt: fromMS(l.suspendedAt)},
	}, true
}

// put stores what a database read returned, unless an invalidation happened since gen was taken.
// A session that no longer holds a seat never will again, and is rare: it is not worth the memory.
func (c *sessionCache) put(k sessionKey, st SessionState, gen uint64) {
	// Sessions of offline certificates (a hard expiry) are few and are read from the database:
	// the 16 bytes of a cached session have no room for their expiry.
	if !st.Session.HoldsSeat() || !st.Session.ExpiresAt.IsZero() || st.License.ID <= 0 || st.License.ID > math.MaxUint32 {
		return
	}
	e := cachedSession{licenseID: uint32(st.License.ID), ts: st.Session.Timestamp, lastSeen: c.seen.pack(toMS(st.Session.LastSeenAt))}
	l := st.License
	c.licMu.Lock()
	if c.gen.Load() != gen {
		c.licMu.Unlock()
		return
	}
	if cur, ok := c.licenses[l.ID]; !ok || cur.key != l.Key {
		c.licenses[l.ID] = cachedLicense{key: l.Key, ownerID: l.OwnerID, expiresAt: toMS(l.ExpiresAt),
			revokedAt: toMS(l.RevokedAt), suspendedAt: toMS(l.SuspendedAt), seats: int32(l.Seats), serial: l.Kind == KindSerial}
	}
	c.licMu.Unlock()
	sh := c.shard(k)
	sh.mu.Lock()
	if c.gen.Load() == gen {
		if _, exists := sh.m[k]; exists || c.size.Load() < c.max {
			if !exists {
				c.size.Add(1)
			}
			sh.m[k] = e
		}
	}
	sh.mu.Unlock()
}

// touch moves a cached session's last-seen time forward.
func (c *sessionCache) touch(k sessionKey, nowMS int64) {
	now := c.seen.pack(nowMS)
	sh := c.shard(k)
	sh.mu.Lock()
	if e, ok := sh.m[k]; ok && e.lastSeen < now {
		e.lastSeen = now
		sh.m[k] = e
	}
	sh.mu.Unlock()
}

// drop removes what the changes may have made stale.
func (c *sessionCache) drop(changes []Change) {
	if len(changes) == 0 {
		return
	}
	// Bump gen under both kinds of lock so that a concurrent put either lands before the drop (and
	// is dropped) or sees the new gen (and stores nothing).
	c.licMu.Lock()
	c.gen.Add(1)
	for _, ch := range changes {
		if ch.SessionID == "" {
			delete(c.licenses, ch.LicenseID)
		}
	}
	c.licMu.Unlock()
	for _, ch := range changes {
		if ch.SessionID == "" {
			continue
		}
		if k, ok := keyOf(ch.SessionID); ok {
			sh := c.shard(k)
			sh.mu.Lock()
			c.gen.Add(1)
			if _, ok := sh.m[k]; ok {
				delete(sh.m, k)
				c.size.Add(-1)
			}
			sh.mu.Unlock()
		}
	}
}

func kindOf(serial bool) LicenseKind {
	if serial {
		return KindSerial
	}
	return KindKey
}

func toMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}
