package openconsole

import (
	"encoding/hex"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// sessionCache is the data structure behind the validate cache: sessions by id in 16 bytes each,
// the licenses they belong to, and how long the whole may be trusted. What goes in, what comes out
// and when it is trusted is decided by liveness (liveness.go), which owns it.

const (
	cacheShardBits = 6
	cacheShards    = 1 << cacheShardBits
)

type sessionKey [16]byte

// keyOf converts a UUID in its 8-4-4-4-12 form (as ParseSessionID returns it) to its 16 bytes.
// Anything else made of 32 hex digits and dashes is converted too, more slowly.
func keyOf(id string) (k sessionKey, ok bool) {
	if len(id) == 36 && id[8] == '-' && id[13] == '-' && id[18] == '-' && id[23] == '-' {
		bad := byte(0)
		for j, i := range uuidPairs {
			hi, lo := unhex[id[i]], unhex[id[i+1]]
			bad |= hi | lo
			k[j] = hi<<4 | lo
		}
		if bad&0xf0 == 0 {
			return k, true
		}
	}
	var buf [32]byte
	j := 0
	for i := 0; i < len(id); i++ {
		if id[i] != '-' {
			if j == 32 {
				return sessionKey{}, false // more than 32 digits
			}
			buf[j] = id[i]
			j++
		}
	}
	if j != 32 {
		return sessionKey{}, false
	}
	if _, err := hex.Decode(k[:], buf[:]); err != nil {
		return sessionKey{}, false
	}
	return k, true
}

// uuidPairs are where the 16 bytes' hex pairs begin in the 8-4-4-4-12 form.
var uuidPairs = [16]uint8{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// unhex is the value of a hex digit, 0xff for any other byte.
var unhex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c - '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		t[c], t[c-'a'+'A'] = c-'a'+10, c-'a'+10
	}
	return t
}()

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
	return time.UnixMilli(c.unpackMS(v)).UTC()
}

// unpackMS is unpack in Unix ms; 0 stays 0 (never seen).
func (c seenClock) unpackMS(v uint32) int64 {
	if v == 0 {
		return 0
	}
	return c.base + int64(v)*c.res
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

// cacheShard holds the sessions whose key hashes to it.
type cacheShard struct {
	mu sync.RWMutex
	t  probeTable[sessionKey, cachedSession]
	_  [64]byte // its own cache lines: the two cores lock different shards without sharing one
}

// licenseShard holds the licenses whose id falls to it. The licenses are sharded, too, so that a
// validate on one core and one on the other do not take turns at a single lock's cache line.
// Besides each license's record (64 bytes a slot) it keeps until when the license is usable (16
// bytes a slot), which is all validate needs of it: 100,000 licenses take 3 MB there, little
// enough to stay in the processor's caches, where their records (10 MB) are a miss to main memory.
type licenseShard struct {
	mu     sync.RWMutex
	t      probeTable[uint32, cachedLicense]
	usable probeTable[uint32, int64] // Unix ms, exclusive; see usableUntil
	_      [64]byte
}

// usableUntil is when a license stops being usable (License.Usable), in Unix ms, exclusive: 0 for
// a revoked or suspended license, its expiry if it has one, else never (math.MaxInt64).
func usableUntil(l cachedLicense) int64 {
	switch {
	case l.revokedAt != 0 || l.suspendedAt != 0:
		return 0
	case l.expiresAt != 0:
		return l.expiresAt
	}
	return math.MaxInt64
}

type sessionCache struct {
	shards   [cacheShards]cacheShard
	licenses [cacheShards]licenseShard
	seed     maphash.Seed
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
	c := &sessionCache{seed: maphash.MakeSeed(), max: int64(max), seen: newSeenClock(ttl, now)}
	for i := range c.shards {
		c.shards[i].t = newProbeTable[sessionKey, cachedSession](c.hash)
		c.licenses[i].t = newProbeTable[uint32, cachedLicense](c.licenseHash)
		c.licenses[i].usable = newProbeTable[uint32, int64](c.licenseHash)
	}
	return c
}

// hash spreads session keys over the shards (its top bits) and over a shard's slots (its low
// bits), with a per-process seed: session ids are random, but the table must not depend on that.
func (c *sessionCache) hash(k sessionKey) uint64 { return maphash.Comparable(c.seed, k) }

func (c *sessionCache) shard(h uint64) *cacheShard { return &c.shards[h>>(64-cacheShardBits)] }

func (c *sessionCache) licenseHash(id uint32) uint64 { return maphash.Comparable(c.seed, id) }

func (c *sessionCache) licenseShard(h uint64) *licenseShard {
	return &c.licenses[h>>(64-cacheShardBits)]
}

// trust makes the cache trusted until the given elapsed time.
func (c *sessionCache) trust(until time.Duration) { c.trustedUntil.Store(int64(until)) }

// session returns the cached entry of session k, if the cache is trusted at elapsed time at, with
// the shard and hash of its license for the caller's lookup there.
func (c *sessionCache) session(k sessionKey, at time.Duration) (cachedSession, *licenseShard, uint64, bool) {
	if int64(at) > c.trustedUntil.Load() {
		return cachedSession{}, nil, 0, false
	}
	h := c.hash(k)
	sh := c.shard(h)
	sh.mu.RLock()
	e, ok := sh.t.get(k, h)
	sh.mu.RUnlock()
	if !ok {
		return cachedSession{}, nil, 0, false
	}
	lh := c.licenseHash(e.licenseID)
	return e, c.licenseShard(lh), lh, true
}

// get returns the cached state of a session, if the cache is trusted at elapsed time at and holds
// both the session and its license.
func (c *sessionCache) get(k sessionKey, id string, at time.Duration) (SessionState, bool) {
	e, ls, lh, ok := c.session(k, at)
	if !ok {
		return SessionState{}, false
	}
	ls.mu.RLock()
	l, ok := ls.t.get(e.licenseID, lh)
	ls.mu.RUnlock()
	if !ok {
		return SessionState{}, false
	}
	lid := int64(e.licenseID)
	return SessionState{
		Session: Session{ID: id, LicenseID: lid, Timestamp: e.ts, LastSeenAt: c.seen.unpack(e.lastSeen)},
		License: License{ID: lid, Key: l.key, Kind: kindOf(l.serial), OwnerID: l.ownerID, Seats: int(l.seats),
			ExpiresAt: fromMS(l.expiresAt), RevokedAt: fromMS(l.revokedAt), SuspendedAt: fromMS(l.suspendedAt)},
	}, true
}

// valid is get for validate, which needs less: whether the cache, trusted at elapsed time at,
// holds session k and its license, and then the session's timestamp, its last-seen time and until
// when its license is usable (both Unix ms). It reads the session's slot and the license's entry
// in the usable table, and builds no SessionState.
func (c *sessionCache) valid(k sessionKey, at time.Duration) (ts, lastSeenMS, usable int64, ok bool) {
	e, ls, lh, ok := c.session(k, at)
	if !ok {
		return 0, 0, 0, false
	}
	ls.mu.RLock()
	usable, ok = ls.usable.get(e.licenseID, lh)
	ls.mu.RUnlock()
	if !ok {
		return 0, 0, 0, false
	}
	return e.ts, c.seen.unpackMS(e.lastSeen), usable, true
}

// put stores what a database read returned, unless an invalidation happened since gen was taken.
// A session that no longer holds a seat never will again, and is rare: it is not worth the memory.
func (c *sessionCache) put(k sessionKey, st SessionState, gen uint64) {
	// Sessions of offline certificates (a hard expiry) are few and are read from the database:
	// the 16 bytes of a cached session have no room for their expiry.
	// Nor is the all-zero id, which the cache's tables cannot hold (and NewSessionID never makes).
	if !st.Session.HoldsSeat() || !st.Session.ExpiresAt.IsZero() || st.License.ID <= 0 || st.License.ID > math.MaxUint32 || k == (sessionKey{}) {
		return
	}
	l := st.License
	lid := uint32(l.ID)
	e := cachedSession{licenseID: lid, ts: st.Session.Timestamp, lastSeen: c.seen.pack(toMS(st.Session.LastSeenAt))}
	lh := c.licenseHash(lid)
	ls := c.licenseShard(lh)
	ls.mu.Lock()
	if c.gen.Load() != gen {
		ls.mu.Unlock()
		return
	}
	if cur := ls.t.find(lid, lh); cur == nil || cur.key != l.Key {
		cl := cachedLicense{key: l.Key, ownerID: l.OwnerID, expiresAt: toMS(l.ExpiresAt),
			revokedAt: toMS(l.RevokedAt), suspendedAt: toMS(l.SuspendedAt), seats: int32(l.Seats), serial: l.Kind == KindSerial}
		ls.t.set(lid, lh, cl)
		ls.usable.set(lid, lh, usableUntil(cl))
	}
	ls.mu.Unlock()
	h := c.hash(k)
	sh := c.shard(h)
	sh.mu.Lock()
	if c.gen.Load() == gen {
		if p := sh.t.find(k, h); p != nil {
			*p = e
		} else if c.size.Load() < c.max {
			c.size.Add(1)
			sh.t.set(k, h, e)
		}
	}
	sh.mu.Unlock()
}

// touch moves a cached session's last-seen time forward.
func (c *sessionCache) touch(k sessionKey, nowMS int64) {
	now := c.seen.pack(nowMS)
	h := c.hash(k)
	sh := c.shard(h)
	sh.mu.Lock()
	if p := sh.t.find(k, h); p != nil && p.lastSeen < now {
		p.lastSeen = now
	}
	sh.mu.Unlock()
}

// drop removes what the changes may have made stale.
func (c *sessionCache) drop(changes []Change) {
	if len(changes) == 0 {
		return
	}
	// Every change bumps gen under the lock of the shard it clears, so that a concurrent put
	// either lands before the drop (and is dropped) or sees the new gen (and stores nothing).
	for _, ch := range changes {
		if ch.SessionID != "" {
			k, ok := keyOf(ch.SessionID)
			if !ok {
				continue
			}
			h := c.hash(k)
			sh := c.shard(h)
			sh.mu.Lock()
			c.gen.Add(1)
			if sh.t.remove(k, h) {
				c.size.Add(-1)
			}
			sh.mu.Unlock()
			continue
		}
		if ch.LicenseID <= 0 || ch.LicenseID > math.MaxUint32 {
			c.gen.Add(1) // never cached; the bump costs nothing and keeps the rule simple
			continue
		}
		lid := uint32(ch.LicenseID)
		lh := c.licenseHash(lid)
		ls := c.licenseShard(lh)
		ls.mu.Lock()
		c.gen.Add(1)
		ls.t.remove(lid, lh)
		ls.usable.remove(lid, lh)
		ls.mu.Unlock()
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
