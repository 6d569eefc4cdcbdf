package openconsole

import (
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestCacheValidMatchesGet: for licenses in every state (revoked, suspended, expired, expiring,
// unlimited) the validate lookup (valid) tells the same as the full one (get) followed by
// License.Usable, at moments before, at and after each expiry, also after a license is dropped
// and cached again in another state.
func TestCacheValidMatchesGet(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000).UTC()
	c := newSessionCache(1000, time.Hour, now)
	c.trust(time.Hour)
	rng := rand.New(rand.NewPCG(7, 7))
	ms := func(d time.Duration) time.Time { return now.Add(d) }
	license := func(id int64) License {
		l := License{ID: id, Key: "k", Kind: KindKey, OwnerID: 1, Seats: 5}
		switch rng.IntN(5) {
		case 0:
			l.RevokedAt = ms(-time.Minute)
		case 1:
			l.SuspendedAt = ms(-time.Second)
		case 2:
			l.ExpiresAt = ms(-time.Duration(rng.IntN(5000)) * time.Millisecond)
		case 3:
			l.ExpiresAt = ms(time.Duration(rng.IntN(5000)) * time.Millisecond)
		}
		return l
	}
	var keys []sessionKey
	for round := range 3 {
		for i := range 200 {
			var k sessionKey
			k[0], k[1], k[15] = byte(i), byte(i>>8), 1
			st := SessionState{
				Session: Session{LicenseID: int64(i%40 + 1), Timestamp: int64(1000*round + i),
					LastSeenAt: ms(-time.Duration(rng.IntN(60)) * time.Second).Truncate(time.Second)},
				License: license(int64(i%40 + 1)),
			}
			c.put(k, st, c.gen.Load())
			if round == 0 {
				keys = append(keys, k)
			}
		}
		for _, k := range keys {
			full, ok1 := c.get(k, "id", time.Minute)
			ts, seenMS, usable, ok2 := c.valid(k, time.Minute)
			if ok1 != ok2 {
				t.Fatalf("round %d: get found %v, valid %v", round, ok1, ok2)
			}
			if !ok1 {
				continue
			}
			if ts != full.Session.Timestamp || seenMS != full.Session.LastSeenAt.UnixMilli() {
				t.Fatalf("round %d: valid = %d %d, get = %d %v", round, ts, seenMS, full.Session.Timestamp, full.Session.LastSeenAt)
			}
			for _, d := range []time.Duration{-6 * time.Second, -time.Millisecond, 0, time.Nanosecond, 999 * time.Microsecond, time.Millisecond, 3 * time.Second, 6 * time.Second} {
				at := now.Add(d)
				if exp := full.License.ExpiresAt; !exp.IsZero() && rng.IntN(2) == 0 {
					at = exp.Add(d / 1000) // around the expiry itself
				}
				if got, want := at.UnixMilli() < usable, full.License.Usable(at); got != want {
					t.Fatalf("round %d: license %+v at %v: valid says usable %v, Usable %v", round, full.License, at, got, want)
				}
			}
		}
		// Drop every license: the next round caches them again, in new states.
		var changes []Change
		for id := int64(1); id <= 40; id++ {
			changes = append(changes, Change{LicenseID: id})
		}
		c.drop(changes)
		for _, k := range keys {
			if _, _, _, ok := c.valid(k, time.Minute); ok {
				t.Fatalf("round %d: a session of a dropped license is still valid in the cache", round)
			}
		}
	}
}

// TestKeyOf: the fast path for the 8-4-4-4-12 form decodes what decoding the 32 hex digits does,
// and refuses what that refuses, for valid ids, upper case, and ids with a wrong byte or dash.
func TestKeyOf(t *testing.T) {
	ref := func(id string) (k sessionKey, ok bool) {
		digits := strings.ReplaceAll(id, "-", "")
		if len(digits) != 32 {
			return k, false
		}
		b, err := hex.DecodeString(digits)
		if err != nil {
			return k, false
		}
		return sessionKey(b), true
	}
	rng := rand.New(rand.NewPCG(3, 3))
	for n := range 20000 {
		id := []byte(NewSessionID())
		switch n % 5 {
		case 1:
			id = []byte(strings.ToUpper(string(id)))
		case 2:
			id[rng.IntN(len(id))] = byte(rng.IntN(256))
		case 3:
			i, j := rng.IntN(len(id)), rng.IntN(len(id))
			id[i], id[j] = id[j], id[i]
		case 4:
			id = id[:rng.IntN(len(id))]
		}
		got, ok := keyOf(string(id))
		want, wantOK := ref(string(id))
		if ok != wantOK || got != want {
			t.Fatalf("keyOf(%q) = %x %v, want %x %v", id, got, ok, want, wantOK)
		}
	}
}
