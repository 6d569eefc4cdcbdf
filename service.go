package openconsole

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Service. Zero values pick the defaults.
type Options struct {
	// SessionTTL is the idle timeout of a session: one with no activation or validate for this long
	// is no longer live and frees its seat. Zero means sessions never expire by idleness.
	SessionTTL time.Duration
	// TokenTTL is the lifetime of a JWT issued by Login (default 24h).
	TokenTTL time.Duration
	// TouchInterval is how often last-seen times collected by validate are written (default 1s).
	TouchInterval time.Duration
	// CacheSize bounds the sessions kept in the validate cache (default 2,000,000, about 100 MB at
	// most). Negative disables the cache.
	CacheSize int
	// Now is the clock (default time.Now). Tests inject their own.
	Now func() time.Time
	// Logger receives background failures (default slog.Default()).
	Logger *slog.Logger
	// Limits are the abuse limits; nil means DefaultLimits.
	Limits *Limits
}

// Service holds the business rules of OpenConsole. It is safe for concurrent use; Close it to write
// out pending bookkeeping.
type Service struct {
	store Store
	opts  Options
	now   func() time.Time
	log   *slog.Logger

	keys       atomic.Pointer[keyring]
	keysMu     sync.Mutex // serialises reloads of keys
	keysLoaded time.Time

	seenMu sync.Mutex
	seen   map[sessionKey]int64 // last-seen times (Unix ms) not yet written

	cache      *sessionCache // nil when disabled
	touchEvery time.Duration // see touch
	limits     limiters

	stop chan struct{}
	done chan struct{}
	once sync.Once

	pollFailLogged, pruned time.Time // owned by flushLoop
}

type keyring struct {
	current SigningKey
	byID    map[string]SigningKey
}

// NewService returns a Service on store. It creates the JWT signing key on first start and starts
// the background writer of last-seen times.
func NewService(ctx context.Context, store Store, opts Options) (*Service, error) {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 24 * time.Hour
	}
	if opts.TouchInterval <= 0 {
		opts.TouchInterval = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Service{
		store: store, opts: opts, now: opts.Now, log: opts.Logger,
		seen: make(map[sessionKey]int64),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if err := s.loadKeys(ctx, time.Now()); err != nil {
		return nil, err
	}
	if opts.Limits == nil {
		opts.Limits = &DefaultLimits
	}
	s.limits = newLimiters(*opts.Limits)
	s.touchEvery = 10 * time.Minute
	if opts.SessionTTL > 0 {
		s.touchEvery = min(time.Hour, opts.SessionTTL/10)
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = 2_000_000
	}
	if opts.CacheSize > 0 {
		s.cache = newSessionCache(opts.CacheSize, opts.SessionTTL)
		latest, err := store.Changes(ctx, -1, 0)
		if err != nil {
			return nil, fmt.Errorf("read change log: %w", err)
		}
		s.cache.lastSeq = latest[0].Seq
	}
	go s.flushLoop()
	return s, nil
}

// Close writes out pending last-seen times and stops the background writer. It does not close the
// store.
func (s *Service) Close() error {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	return s.flushSeen(context.Background())
}

// SessionRef is a session as the wire shows it: X-Session-Id {id, timestamp}.
type SessionRef struct {
	ID        string
	Timestamp int64
}

// ActivateInput is an activation request as a device sends it.
type ActivateInput struct {
	LicenseKey    string // the licenseKey from the body; "" when none was sent
	SessionID     string // the X-Session-Id header, raw
	Authorization string // the Authorization header, raw
	HasAuth       bool   // whether an Authorization header was sent at all
	ClientAddr    string // the client's address, for the abuse limits
}

// Activation is the outcome of a successful activation.
type Activation struct {
	Session    SessionRef
	LicenseKey string
	// Created is true when a new session was issued (HTTP 200) and false when the session the
	// device presented is still live on the license (HTTP 204).
	Created bool
}

// Activate activates a device (wire contract §3.3): by license key or serial number when one is
// given, else from the licenses of the user whose bearer token is presented. Refusals are the
// EFORBIDDEN errors ErrLicenseNotFound, ErrLicenseInvalid, ErrMaxActivations,
// ErrMissingAuthorization, ErrInvalidAuthorization, ErrTokenRefused and ErrNoRemainingSeats; a
// client address with too many activations of unknown keys gets a *ThrottledError (ETHROTTLED).
func (s *Service) Activate(ctx context.Context, in ActivateInput) (Activation, error) {
	sid, _ := ParseSessionID(in.SessionID)
	if in.LicenseKey != "" {
		now := s.now()
		if wait := s.limits.activation.wait(in.ClientAddr, now); wait > 0 {
			// A device that presents a live session of this very key is not guessing.
			if act, ok := s.stillActive(ctx, in.LicenseKey, sid, now); ok {
				return act, nil
			}
			return Activation{}, throttled(wait)
		}
		var act Activation
		var err error = ErrLicenseNotFound
		// No license or serial has a key that fails CheckKey (both are created through it), and
		// some could not even be looked up: PostgreSQL text cannot hold a NUL byte.
		if CheckKey(in.LicenseKey) == nil {
			act, err = s.activateKey(ctx, in.LicenseKey, sid)
		}
		if err == ErrLicenseNotFound {
			s.limits.activation.fail(in.ClientAddr, now)
		}
		return act, err
	}
	if !in.HasAuth {
		return Activation{}, ErrMissingAuthorization
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(in.Authorization), " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return Activation{}, ErrInvalidAuthorization
	}
	claims, err := s.parseToken(ctx, token)
	if err != nil {
		return Activation{}, ErrTokenRefused
	}
	return s.activateBearer(ctx, claims.UserID, sid)
}

// stillActive answers a re-activation whose session is live on the key (the 204 case) from a read.
func (s *Service) stillActive(ctx context.Context, key, sid string, now time.Time) (Activation, bool) {
	if sid == "" {
		return Activation{}, false
	}
	st, err := s.lookup(ctx, sid, now)
	if err != nil || st.License.Key != key || !s.live(st, now) {
		return Activation{}, false
	}
	s.touch(sid, st.Session.LastSeenAt, now)
	return Activation{Session: SessionRef{sid, st.Session.Timestamp}, LicenseKey: key}, true
}

func (s *Service) activateKey(ctx context.Context, key, sid string) (Activation, error) {
	now := s.now()
	// A device that is still active re-activates on every start: answer it from a read, without
	// taking the write lock. (A store failure here is retried by the transaction below.)
	if act, ok := s.stillActive(ctx, key, sid, now); ok {
		return act, nil
	}
	if err := s.flushForSeats(ctx); err != nil {
		return Activation{}, fmt.Errorf("activate: %w", err)
	}
	var out Activation
	err := s.store.Update(ctx, func(tx Tx) error {
		out = Activation{}
		lic, err := tx.LicenseByKey(key)
		if errors.Is(err, ErrNotFound) {
			return ErrLicenseNotFound
		} else if err != nil {
			return err
		}
		if !lic.Usable(now) {
			return ErrLicenseInvalid
		}
		if ref, ok, err := s.liveSessionIn(tx, sid, now, lic); err != nil || ok {
			out = Activation{Session: ref, LicenseKey: key}
			return err
		}
		ref, err := s.issue(tx, lic, now)
		if err != nil {
			return err
		}
		if ref.ID == "" {
			return ErrMaxActivations
		}
		out = Activation{Session: ref, LicenseKey: lic.Key, Created: true}
		return nil
	})
	if err != nil {
		return Activation{}, wrap("activate", err)
	}
	if !out.Created {
		s.touch(out.Session.ID, time.Time{}, now)
	}
	return out, nil
}

func (s *Service) activateBearer(ctx context.Context, userID int64, sid string) (Activation, error) {
	now := s.now()
	if sid != "" {
		st, err := s.lookup(ctx, sid, now)
		if err == nil && st.License.OwnerID == userID && st.License.Kind == KindKey && s.live(st, now) {
			s.touch(sid, st.Session.LastSeenAt, now)
			return Activation{Session: SessionRef{sid, st.Session.Timestamp}, LicenseKey: st.License.Key}, nil
		} else if err != nil && !errors.Is(err, ErrNotFound) {
			return Activation{}, fmt.Errorf("activate: %w", err)
		}
	}
	if err := s.flushForSeats(ctx); err != nil {
		return Activation{}, fmt.Errorf("activate: %w", err)
	}
	var out Activation
	err := s.store.Update(ctx, func(tx Tx) error {
		out = Activation{}
		lics, err := tx.LicensesByOwner(userID)
		if err != nil {
			return err
		}
		for _, lic := range lics {
			if !lic.Usable(now) {
				continue
			}
			if ref, ok, err := s.liveSessionIn(tx, sid, now, lic); err != nil || ok {
				out = Activation{Session: ref, LicenseKey: lic.Key}
				return err
			}
		}
		for _, lic := range lics {
			if !lic.Usable(now) {
				continue
			}
			ref, err := s.issue(tx, lic, now)
			if err != nil {
				return err
			}
			if ref.ID != "" {
				out = Activation{Session: ref, LicenseKey: lic.Key, Created: true}
				return nil
			}
		}
		return ErrNoRemainingSeats
	})
	if err != nil {
		return Activation{}, wrap("activate", err)
	}
	if !out.Created {
		s.touch(out.Session.ID, time.Time{}, now)
	}
	return out, nil
}

// liveSessionIn reports whether sid names a live session of lic, within tx.
func (s *Service) liveSessionIn(tx Tx, sid string, now time.Time, lic License) (SessionRef, bool, error) {
	if sid == "" {
		return SessionRef{}, false, nil
	}
	sess, err := tx.Session(sid)
	if errors.Is(err, ErrNotFound) {
		return SessionRef{}, false, nil
	} else if err != nil {
		return SessionRef{}, false, err
	}
	if sess.LicenseID != lic.ID || !s.live(SessionState{Session: sess, License: lic}, now) {
		return SessionRef{}, false, nil
	}
	return SessionRef{sess.ID, sess.Timestamp}, true, nil
}

// issue creates a new session on lic if it has a free seat. It returns a zero SessionRef when the
// license is full. The caller holds lic's lock (it was read through tx).
func (s *Service) issue(tx Tx, lic License, now time.Time) (SessionRef, error) {
	n, err := tx.CountLiveSessions(lic.ID, s.liveSince(now))
	if err != nil {
		return SessionRef{}, err
	}
	if n >= lic.Seats {
		return SessionRef{}, nil
	}
	ts, err := tx.NextTimestamp(now)
	if err != nil {
		return SessionRef{}, err
	}
	sess := Session{ID: NewSessionID(), LicenseID: lic.ID, Timestamp: ts, CreatedAt: now, LastSeenAt: now}
	if err := tx.CreateSession(sess); err != nil {
		return SessionRef{}, err
	}
	if lic.Kind == KindSerial {
		if err := tx.MarkSerialActivated(lic.ID); err != nil {
			return SessionRef{}, err
		}
	}
	return SessionRef{sess.ID, sess.Timestamp}, nil
}

// Validate reports whether the session named by the raw X-Session-Id value is live (wire contract
// §2.4). A missing, malformed, unknown, revoked or expired session is simply not valid; an error
// means the store failed. A valid check counts as activity for the idle timeout.
func (s *Service) Validate(ctx context.Context, rawSessionID string) (SessionRef, bool, error) {
	sid, ok := ParseSessionID(rawSessionID)
	if !ok {
		return SessionRef{}, false, nil
	}
	now := s.now()
	st, err := s.lookup(ctx, sid, now)
	if errors.Is(err, ErrNotFound) {
		return SessionRef{}, false, nil
	} else if err != nil {
		return SessionRef{}, false, fmt.Errorf("validate: %w", err)
	}
	if !s.live(st, now) {
		return SessionRef{}, false, nil
	}
	s.touch(sid, st.Session.LastSeenAt, now)
	return SessionRef{sid, st.Session.Timestamp}, true, nil
}

// live reports whether a session is live at now: not revoked, its license usable, and not idle for
// longer than the session TTL (counting activity not yet written to the store).
func (s *Service) live(st SessionState, now time.Time) bool {
	if !st.Session.RevokedAt.IsZero() || !st.License.Usable(now) {
		return false
	}
	if s.opts.SessionTTL <= 0 {
		return true
	}
	last := st.Session.LastSeenAt
	if k, ok := keyOf(st.Session.ID); ok {
		s.seenMu.Lock()
		t, ok := s.seen[k]
		s.seenMu.Unlock()
		if ok && t > last.UnixMilli() {
			last = time.UnixMilli(t)
		}
	}
	return now.Sub(last) < s.opts.SessionTTL
}

// liveSince is the oldest last-seen time of a live session at now.
func (s *Service) liveSince(now time.Time) time.Time {
	if s.opts.SessionTTL <= 0 {
		return time.Time{}
	}
	return now.Add(-s.opts.SessionTTL)
}

// touch records activity of a session; flushLoop writes it out in batches, off the request path.
//
// Activity is recorded only when it moves the session's last-seen time on by touchEvery (a tenth of
// the idle timeout, at most an hour; ten minutes without one): a fleet validating every minute then
// costs one write per session per touchEvery, not one per validate. The price is that a session can
// look up to touchEvery idler than it is, so it must show activity within 90% of the idle timeout
// to stay live.
func (s *Service) touch(id string, lastSeen, now time.Time) {
	if !lastSeen.IsZero() && now.Sub(lastSeen) < s.touchEvery {
		return
	}
	k, ok := keyOf(id)
	if !ok {
		return
	}
	s.seenMu.Lock()
	s.seen[k] = now.UnixMilli()
	s.seenMu.Unlock()
	if s.cache != nil {
		s.cache.touch(k, now.UnixMilli())
	}
}

// flushForSeats writes pending activity before seats are counted, when an idle timeout makes
// last-seen times decide which sessions hold a seat: a device that validated a moment ago must not
// lose its seat because that validate was not written yet. (Activity on other servers is written
// within their TouchInterval; that is the granularity of the idle timeout across servers.)
func (s *Service) flushForSeats(ctx context.Context) error {
	if s.opts.SessionTTL <= 0 {
		return nil
	}
	return s.flushSeen(ctx)
}

// flushLoop runs the background work: writing last-seen times, and polling the change log for the
// validate cache.
func (s *Service) flushLoop() {
	defer close(s.done)
	flush := time.NewTicker(s.opts.TouchInterval)
	defer flush.Stop()
	keys := time.NewTicker(KeyRefreshInterval)
	defer keys.Stop()
	var pollC <-chan time.Time
	if s.cache != nil {
		poll := time.NewTicker(pollInterval)
		defer poll.Stop()
		pollC = poll.C
		s.pollChanges()
	}
	for {
		select {
		case <-s.stop:
			return
		case <-flush.C:
			if err := s.flushSeen(context.Background()); err != nil {
				s.log.Warn("write last-seen times", "err", err)
			}
		case <-pollC:
			s.pollChanges()
		case <-keys.C:
			if err := s.loadKeys(context.Background(), time.Now()); err != nil {
				s.log.Warn("refresh signing keys", "err", err)
			}
		}
	}
}

// pollChanges applies the change log to the cache, and now and then prunes it.
func (s *Service) pollChanges() {
	ctx, cancel := context.WithTimeout(context.Background(), trustWindow)
	defer cancel()
	if err := s.cache.poll(ctx, s.store); err != nil {
		if time.Since(s.pollFailLogged) > 10*time.Second {
			s.log.Warn("read change log; validate reads the database until it works again", "err", err)
			s.pollFailLogged = time.Now()
		}
		return
	}
	if time.Since(s.pruned) > 10*time.Minute {
		s.limits.sweep(time.Now())
		s.pruned = time.Now()
		if err := s.store.PruneChanges(ctx, time.Now().Add(-time.Hour)); err != nil {
			s.log.Warn("prune change log", "err", err)
		}
	}
}

// lookup returns a session's state from the cache, or from the store (filling the cache).
func (s *Service) lookup(ctx context.Context, sid string, now time.Time) (SessionState, error) {
	if s.cache == nil {
		return s.store.SessionState(ctx, sid)
	}
	k, _ := keyOf(sid)
	if st, ok := s.cache.get(k, sid, now); ok {
		return st, nil
	}
	gen := s.cache.gen.Load()
	st, err := s.store.SessionState(ctx, sid)
	if err == nil {
		s.cache.put(k, st, gen)
	}
	return st, err
}

// invalidate drops cached state after a change made by this process, at once rather than at the
// next poll.
func (s *Service) invalidate(ch Change) {
	if s.cache != nil {
		s.cache.apply([]Change{ch})
	}
}

// touchChunk bounds the last-seen writes of one transaction, so that a large flush never holds the
// writer (and the activations queued behind it) for long.
const touchChunk = 2000

func (s *Service) flushSeen(ctx context.Context) error {
	s.seenMu.Lock()
	batch := s.seen
	if len(batch) == 0 {
		s.seenMu.Unlock()
		return nil
	}
	s.seen = make(map[sessionKey]int64)
	s.seenMu.Unlock()
	chunk := make(map[string]time.Time, min(len(batch), touchChunk))
	var failed error
	for k, t := range batch {
		if failed != nil {
			s.retouch(k, t)
			continue
		}
		chunk[formatUUID(k[:])] = time.UnixMilli(t)
		delete(batch, k)
		if len(chunk) == touchChunk || len(batch) == 0 {
			if err := s.store.TouchSessions(ctx, chunk); err != nil {
				failed = err
				for id, t := range chunk {
					k, _ := keyOf(id)
					s.retouch(k, t.UnixMilli())
				}
			}
			clear(chunk)
		}
	}
	return failed
}

// retouch puts back activity that could not be written, for the next flush; newer activity wins.
func (s *Service) retouch(k sessionKey, t int64) {
	s.seenMu.Lock()
	if cur, ok := s.seen[k]; !ok || t > cur {
		s.seen[k] = t
	}
	s.seenMu.Unlock()
}

// wrap passes domain errors through unchanged and prefixes storage errors with op.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}
