package openconsole

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Liveness: what "live" means, who holds a seat, and the bookkeeping behind both. Everything that
// decides whether a session validates or a seat is free is in this file.
//
// A session holds a seat of its license from the activation that created it until it is revoked or
// ended. It is live while it holds a seat, its license is usable (License.Usable), and, when an idle
// timeout (Options.SessionTTL) is set, it was active (activated or validated) within the timeout.
//
// Seats are counted by the store: License.Taken is changed in the same transaction as every session
// that takes or frees a seat (see Tx), so an activation costs the same on a license with ten
// sessions as on one with a million. A session that goes idle stops being live at once; its seat
// comes back when a sweep ends it: the activation that finds its license full ends that license's
// idle sessions first (so seats count live sessions exactly, wire contract §7.7), and a background
// sweep ends the rest, which keeps License.Taken close to the live count for display.
//
// The session of an offline certificate (offline.go) is a session like any other, with a hard
// expiry (Session.ExpiresAt, the certificate's not-after): it holds a seat from issue until then,
// counted with the online sessions, is exempt from the idle timeout, and is ended at its expiry by
// the expiry sweep (or by the activation that finds its license full), which logs a Change.
//
// Activity is kept in memory and written back in the background, only when it moves a session's
// last-seen time on by touchEvery, and paced (writeBack): a wave of sessions that come due together
// is spread over writeWindow, in transactions of sessions that neighbour each other in the table,
// instead of holding the writer; activity of sessions near their timeout is written at the next
// tick, so that other servers' sweeps see it in time.
//
// Validate is answered from a cache of session states (sessionCache). It must never say "valid"
// longer than CacheStaleness after a revocation or license change made anywhere, also by another
// server or the CLI: such changes are logged in the store (see Tx), every server polls that log and
// drops what changed, and a server whose last successful poll began longer than trustWindow ago
// reads the database instead. Expiry by time (license expiry, idle timeout) is checked at read time.

const (
	// CacheStaleness is the longest a cached answer may lag a change made anywhere.
	CacheStaleness = time.Second
	// pollInterval is how often the change log is read.
	pollInterval = 200 * time.Millisecond
	// trustWindow: a poll that started longer ago than this no longer vouches for the cache. The
	// margin below CacheStaleness covers the time between a commit and the next poll's start.
	trustWindow = CacheStaleness - pollInterval - 100*time.Millisecond
	// touchChunk bounds the last-seen writes of one transaction, so that write-back never holds the
	// writer (and the activations queued behind it) for long.
	touchChunk = 500
	// sweepChunk bounds the sessions one sweep transaction ends.
	sweepChunk = 500
	// seenBuckets divides the session ids into ranges for write-back (see liveness.buckets).
	seenBuckets = 4096
)

type liveness struct {
	store Store
	clock clock
	log   *slog.Logger

	ttl         time.Duration // idle timeout; 0: sessions do not expire by idleness
	touchEvery  time.Duration // activity is recorded when it moves last-seen on by this much
	grain       time.Duration // written last-seen times are rounded down to this
	tick        time.Duration // how often write-back runs (Options.TouchInterval)
	writeWindow time.Duration // pending activity is written within this long
	urgent      time.Duration // activity of a session this close to its timeout is written at once

	// Activity not yet written: the latest per session, its key queued in soon when the session is
	// near its timeout, else in the bucket of its key. Write-back takes the buckets in key order,
	// so that one transaction touches sessions that lie together in the table (and in its pages):
	// a wave of a million due sessions then rewrites each page of the table a few times in all,
	// rather than once per session.
	mu      sync.Mutex
	pending map[sessionKey]pendingSeen
	soon    keyQueue
	buckets [seenBuckets][]sessionKey
	queued  int // keys in buckets (some may have been written through soon meanwhile)
	cursor  int // the next bucket write-back takes

	cache    *sessionCache // nil when disabled
	lastSeq  int64         // the last change applied; owned by the poller
	counters *Counters     // the Service's
}

// pendingSeen is unwritten activity of a session, in 8 bytes (a wave puts a million of them in
// memory): when it was seen (Unix ms), and whether it was queued as urgent.
type pendingSeen int64

func packSeen(ms int64, urgent bool) pendingSeen {
	p := pendingSeen(ms << 1)
	if urgent {
		p |= 1
	}
	return p
}

func (p pendingSeen) at() int64    { return int64(p) >> 1 }
func (p pendingSeen) urgent() bool { return p&1 == 1 }

func newLiveness(store Store, c clock, log *slog.Logger, opts Options) *liveness {
	l := &liveness{store: store, clock: c, log: log, ttl: opts.SessionTTL, tick: opts.TouchInterval,
		pending: make(map[sessionKey]pendingSeen)}
	l.touchEvery, l.writeWindow = 10*time.Minute, 5*time.Minute
	if l.ttl > 0 {
		l.touchEvery = min(time.Hour, l.ttl/10)
		l.writeWindow = min(5*time.Minute, max(l.tick, l.ttl/20))
		l.urgent = l.writeWindow + 2*l.tick
	}
	l.grain = max(time.Millisecond, l.touchEvery/10)
	if opts.CacheSize > 0 {
		l.cache = newSessionCache(opts.CacheSize, opts.SessionTTL, c.Now())
	}
	return l
}

// isLive reports whether a session is live at now: it holds a seat, its license is usable, and it
// is neither idle for longer than the timeout nor past its hard expiry.
func (l *liveness) isLive(st SessionState, now time.Time) bool {
	return st.Session.HoldsSeat() && st.License.Usable(now) && !l.idle(st.Session, now) && !st.Session.Expired(now)
}

// idle reports whether s is idle past the timeout; a session with a hard expiry never is.
func (l *liveness) idle(s Session, now time.Time) bool {
	return l.ttl > 0 && s.ExpiresAt.IsZero() && now.Sub(s.LastSeenAt) >= l.ttl
}

// state returns a session and its license as this server knows them: from the cache when it is
// trusted, else from the store (filling the cache), with this server's unwritten activity in
// LastSeenAt.
func (l *liveness) state(ctx context.Context, sid string, now time.Time) (SessionState, error) {
	k, ok := keyOf(sid)
	if !ok {
		return SessionState{}, ErrNotFound
	}
	var gen uint64
	if l.cache != nil {
		// A cached session that looks idle may have been active on another server since it was
		// cached: only the database can say it expired.
		if st, ok := l.cache.get(k, sid, l.clock.elapsed(now)); ok && !l.idle(st.Session, now) {
			l.counters.CacheHits.add(k[15])
			return st, nil
		}
		l.counters.CacheMisses.add(k[15])
		gen = l.cache.gen.Load()
	}
	st, err := l.store.SessionState(ctx, sid)
	if err != nil {
		return SessionState{}, err
	}
	l.mu.Lock()
	p, ok := l.pending[k]
	l.mu.Unlock()
	if ok && p.at() > st.Session.LastSeenAt.UnixMilli() {
		st.Session.LastSeenAt = time.UnixMilli(p.at()).UTC()
	}
	if l.cache != nil {
		l.cache.put(k, st, gen)
	}
	return st, nil
}

// validate is state followed by isLive, for validate: whether session sid is live at now, with its
// timestamp and last-seen time. A session in the cache is answered from the cache's slot and its
// license's usable time alone (sessionCache.valid), which is what keeps validate cheap; the
// answer is the one isLive gives on the state (a cached session holds a seat and has no hard
// expiry: put caches no other). Anything else goes through state, which reads the database.
func (l *liveness) validate(ctx context.Context, sid string, now time.Time) (ts int64, lastSeen time.Time, live bool, err error) {
	if ts, lastSeen, live, ok := l.validCached(sid, now); ok {
		return ts, lastSeen, live, nil
	}
	st, err := l.state(ctx, sid, now)
	if err != nil {
		return 0, time.Time{}, false, err
	}
	return st.Session.Timestamp, st.Session.LastSeenAt, l.isLive(st, now), nil
}

// validCached is validate's answer from the cache alone, when the cache is trusted, holds the
// session and its license, and the session does not look idle (see state); else ok is false.
func (l *liveness) validCached(sid string, now time.Time) (ts int64, lastSeen time.Time, live, ok bool) {
	if l.cache == nil {
		return 0, time.Time{}, false, false
	}
	k, ok := keyOf(sid)
	if !ok {
		return 0, time.Time{}, false, false
	}
	ts, seenMS, usable, ok := l.cache.valid(k, l.clock.elapsed(now))
	if !ok {
		return 0, time.Time{}, false, false
	}
	if seenMS != 0 {
		lastSeen = time.UnixMilli(seenMS)
	}
	if l.ttl > 0 && now.Sub(lastSeen) >= l.ttl {
		return 0, time.Time{}, false, false
	}
	l.counters.CacheHits.add(k[15])
	return ts, lastSeen, now.UnixMilli() < usable, true
}

// seen records activity of a live session whose last-seen time was lastSeen. It is kept only when
// it moves last-seen on by touchEvery: a fleet validating every minute then costs one write per
// session per touchEvery, not one per validate. Written times are rounded down to grain (a tenth
// of touchEvery), so that sessions written together share few values and their entries in the
// index of last-seen times lie together. The price is that a session can look up to 1.1 touchEvery
// idler than it is, so it must show activity within 89% of the idle timeout to stay live on every
// server.
func (l *liveness) seen(sid string, lastSeen, now time.Time) {
	if now.Sub(lastSeen) < l.touchEvery {
		return
	}
	k, ok := keyOf(sid)
	if !ok {
		return
	}
	ms := now.UnixMilli()
	urgent := l.ttl > 0 && lastSeen.Add(l.ttl).Sub(now) < l.urgent
	l.record(k, ms, urgent)
	if l.cache != nil {
		l.cache.touch(k, ms)
	}
}

// record queues activity of k for write-back; newer activity wins.
func (l *liveness) record(k sessionKey, ms int64, urgent bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.pending[k]
	if ok && p.at() >= ms && (p.urgent() || !urgent) {
		return
	}
	switch {
	case urgent && !p.urgent():
		l.soon.push(k)
	case !ok:
		b := bucketOf(k)
		l.buckets[b] = append(l.buckets[b], k)
		l.queued++
	}
	l.pending[k] = packSeen(max(ms, p.at()), urgent || p.urgent())
}

// unwrittenSince reports whether this server has unwritten activity of the session at or after t.
func (l *liveness) unwrittenSince(id string, t time.Time) bool {
	k, ok := keyOf(id)
	if !ok {
		return false
	}
	l.mu.Lock()
	p, ok := l.pending[k]
	l.mu.Unlock()
	return ok && p.at() >= t.UnixMilli()
}

// liveIn returns the session sid if it is live on one of lics (read in tx), and that license.
func (l *liveness) liveIn(tx Tx, sid string, lics []License, now time.Time) (Session, License, bool, error) {
	if sid == "" || len(lics) == 0 {
		return Session{}, License{}, false, nil
	}
	sess, err := tx.Session(sid)
	if errors.Is(err, ErrNotFound) {
		return Session{}, License{}, false, nil
	} else if err != nil {
		return Session{}, License{}, false, err
	}
	if k, ok := keyOf(sid); ok {
		l.mu.Lock()
		p, ok := l.pending[k]
		l.mu.Unlock()
		if ok && p.at() > sess.LastSeenAt.UnixMilli() {
			sess.LastSeenAt = time.UnixMilli(p.at()).UTC()
		}
	}
	for _, lic := range lics {
		if sess.LicenseID == lic.ID && l.isLive(SessionState{Session: sess, License: lic}, now) {
			return sess, lic, true, nil
		}
	}
	return Session{}, License{}, false, nil
}

// takeSeat issues a new session on lic, read and locked in tx, if it has a free seat; ok is false
// when it is full. expires is the new session's hard expiry (zero for an online activation). A
// full license first has the sessions past their hard expiry ended, and, with an idle timeout, the
// sessions idle past it, its own among them: the sweeps read only sessions that are due and not
// yet ended, and end what they read, so their cost is paid once per session, whatever the size of
// the license.
func (l *liveness) takeSeat(tx Tx, lic License, now time.Time, from string, expires time.Time) (ref SessionRef, ok bool, err error) {
	for lic.Taken >= lic.Seats {
		ended, n, err := l.endExpired(tx, now, sweepChunk)
		if err != nil {
			return SessionRef{}, false, err
		}
		lic.Taken -= ended[lic.ID]
		if n == sweepChunk {
			continue // more may be due
		}
		break
	}
	for lic.Taken >= lic.Seats {
		if l.ttl <= 0 {
			return SessionRef{}, false, nil
		}
		ended, n, err := l.endIdle(tx, now, sweepChunk)
		if err != nil {
			return SessionRef{}, false, err
		}
		lic.Taken -= ended[lic.ID]
		if n < sweepChunk {
			break // nothing idle is left
		}
	}
	if lic.Taken >= lic.Seats {
		return SessionRef{}, false, nil
	}
	ts, err := tx.NextTimestamp(now)
	if err != nil {
		return SessionRef{}, false, err
	}
	sess := Session{ID: NewSessionID(), LicenseID: lic.ID, Timestamp: ts, CreatedAt: now, LastSeenAt: now, Addr: from,
		ExpiresAt: expires}
	if err := tx.CreateSession(sess); err != nil {
		return SessionRef{}, false, err
	}
	if lic.Kind == KindSerial {
		if err := tx.MarkSerialActivated(lic.ID); err != nil {
			return SessionRef{}, false, err
		}
	}
	return SessionRef{sess.ID, sess.Timestamp}, true, nil
}

// endIdle ends up to limit sessions idle past the timeout, of any license, and returns how many it
// ended per license and how many idle sessions it read. Sessions with activity this server has not
// written yet are left alone.
func (l *liveness) endIdle(tx Tx, now time.Time, limit int) (map[int64]int, int, error) {
	before := now.Add(-l.ttl)
	idle, err := tx.IdleSessions(before, limit)
	if err != nil || len(idle) == 0 {
		return nil, 0, err
	}
	ids := make([]string, 0, len(idle))
	for _, s := range idle {
		if !l.unwrittenSince(s.ID, before) {
			ids = append(ids, s.ID)
		}
	}
	if len(ids) == 0 {
		return nil, len(idle), nil
	}
	ended, err := tx.EndIdleSessions(ids, before, now)
	return ended, len(idle), err
}

// endExpired ends up to limit sessions whose hard expiry has passed at now, of any license, and
// returns how many it ended per license and how many it read. Each ending logs a Change (see Tx).
func (l *liveness) endExpired(tx Tx, now time.Time, limit int) (map[int64]int, int, error) {
	due, err := tx.ExpiredSessions(now, limit)
	if err != nil || len(due) == 0 {
		return nil, 0, err
	}
	ids := make([]string, len(due))
	for i, s := range due {
		ids[i] = s.ID
	}
	ended, err := tx.EndExpiredSessions(ids, now)
	return ended, len(due), err
}

// sweepExpired ends every session past its hard expiry, a chunk per transaction.
func (l *liveness) sweepExpired(ctx context.Context) error {
	for {
		n, err := UpdateValue(ctx, l.store, func(tx Tx) (int, error) {
			_, n, err := l.endExpired(tx, l.clock.Now(), sweepChunk)
			return n, err
		})
		if err != nil || n < sweepChunk {
			return err
		}
	}
}

// changed drops, at once, what a change committed by this process made stale; other servers drop
// it at their next poll of the change log.
func (l *liveness) changed(changes ...Change) {
	if l.cache != nil {
		l.cache.drop(changes)
	}
}

// start reads where the change log stands, so that polling begins there.
func (l *liveness) start(ctx context.Context) error {
	if l.cache == nil {
		return nil
	}
	seq, err := l.store.LatestChange(ctx)
	if err != nil {
		return fmt.Errorf("read change log: %w", err)
	}
	l.lastSeq = seq
	return nil
}

// poll applies the change log to the cache once, and extends the cache's trust only on success.
func (l *liveness) poll(ctx context.Context) error {
	started := l.clock.elapsed(l.clock.Now())
	for {
		changes, err := l.store.Changes(ctx, l.lastSeq, 1000)
		if err != nil {
			return err
		}
		l.cache.drop(changes)
		if len(changes) > 0 {
			l.lastSeq = changes[len(changes)-1].Seq
		}
		if len(changes) < 1000 {
			break
		}
	}
	l.cache.trust(started + trustWindow)
	l.counters.lastPoll.Store(int64(started))
	return nil
}

// writeBack writes pending activity: all of it with all set (at Close), else the urgent part and
// a paced share of the rest, which takes the key buckets in order at a pace that goes through all
// of them once per writeWindow (and at least touchChunk sessions a tick). It writes in
// transactions of at most touchChunk sessions.
func (l *liveness) writeBack(ctx context.Context, all bool) error {
	batches := l.takeUrgent()
	perTick := max(1, int((int64(seenBuckets)*int64(l.tick)+int64(l.writeWindow)-1)/int64(max(l.writeWindow, time.Millisecond))))
	batches = append(batches, l.takeBuckets(all, perTick)...)
	for i, batch := range batches {
		gone, err := l.store.TouchSessions(ctx, batch.touches)
		if err != nil {
			// Keep it for the next round; newer activity recorded meanwhile wins.
			for _, b := range batches[i:] {
				for _, t := range b.touches {
					if k, ok := keyOf(t.SessionID); ok {
						l.record(k, t.At.UnixMilli(), b.urgent)
					}
				}
			}
			return err
		}
		if len(gone) > 0 && l.cache != nil {
			// Sessions that another server's sweep or a revocation ended meanwhile.
			drop := make([]Change, len(gone))
			for i, id := range gone {
				drop[i] = Change{SessionID: id}
			}
			l.cache.drop(drop)
		}
	}
	return nil
}

// touchBatch is one write-back transaction's activity.
type touchBatch struct {
	touches []Touch
	urgent  bool
}

// takeUrgent removes the activity of sessions near their timeout, in batches of touchChunk.
func (l *liveness) takeUrgent() []touchBatch {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []touchBatch
	for {
		k, ok := l.soon.pop()
		if !ok {
			return out
		}
		p, ok := l.pending[k]
		if !ok || !p.urgent() {
			continue // written already
		}
		delete(l.pending, k)
		if len(out) == 0 || len(out[len(out)-1].touches) == touchChunk {
			out = append(out, touchBatch{urgent: true})
		}
		b := &out[len(out)-1]
		b.touches = append(b.touches, Touch{SessionID: formatUUID(k[:]), At: l.rounded(p.at())})
	}
}

// rounded is the last-seen time written for activity at ms: rounded down to grain.
func (l *liveness) rounded(ms int64) time.Time {
	g := l.grain.Milliseconds()
	return time.UnixMilli(ms - ms%g).UTC()
}

// takeBuckets removes the activity of whole buckets, in key order from the cursor on: every
// bucket when all is set or when little is pending, else perTick buckets and then more until
// touchChunk sessions are taken. Each batch holds sessions in key order.
func (l *liveness) takeBuckets(all bool, perTick int) []touchBatch {
	l.mu.Lock()
	defer l.mu.Unlock()
	if all || l.queued <= touchChunk {
		perTick = seenBuckets
	}
	var out []touchBatch
	var cur []Touch
	taken := 0
	for n := 0; n < seenBuckets && (n < perTick || taken < touchChunk) && l.queued > 0; n++ {
		b := l.cursor
		l.cursor = (l.cursor + 1) % seenBuckets
		keys := l.buckets[b]
		l.queued -= len(keys)
		if cap(keys) > 256 {
			l.buckets[b] = nil // let a wave's memory go
		} else {
			l.buckets[b] = keys[:0]
		}
		slices.SortFunc(keys, func(a, b sessionKey) int { return bytes.Compare(a[:], b[:]) })
		for _, k := range keys {
			p, ok := l.pending[k]
			if !ok || p.urgent() {
				continue // written already, or queued as urgent
			}
			delete(l.pending, k)
			cur = append(cur, Touch{SessionID: formatUUID(k[:]), At: l.rounded(p.at())})
			taken++
			if len(cur) == touchChunk {
				out = append(out, touchBatch{touches: cur})
				cur = nil
			}
		}
	}
	if len(cur) > 0 {
		out = append(out, touchBatch{touches: cur})
	}
	return out
}

// bucketOf is the write-back bucket of a session key: its first twelve bits.
func bucketOf(k sessionKey) int { return int(k[0])<<4 | int(k[1])>>4 }

// sweep ends the sessions of every license that are idle past the timeout, a chunk per
// transaction.
func (l *liveness) sweep(ctx context.Context) error {
	if l.ttl <= 0 {
		return nil
	}
	for {
		n, err := UpdateValue(ctx, l.store, func(tx Tx) (int, error) {
			_, n, err := l.endIdle(tx, l.clock.Now(), sweepChunk)
			return n, err
		})
		if err != nil || n < sweepChunk {
			return err
		}
	}
}

// keyQueue is a FIFO of session keys.
type keyQueue struct {
	q    []sessionKey
	head int
}

func (q *keyQueue) push(k sessionKey) { q.q = append(q.q, k) }

func (q *keyQueue) pop() (sessionKey, bool) {
	if q.head == len(q.q) {
		return sessionKey{}, false
	}
	k := q.q[q.head]
	q.head++
	if q.head == len(q.q) {
		q.q, q.head = q.q[:0], 0
	} else if q.head > 1024 && q.head > len(q.q)/2 {
		q.q, q.head = append(q.q[:0], q.q[q.head:]...), 0
	}
	return k, true
}
