package openconsole

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Service. Zero values pick the defaults.
type Options struct {
	// SessionTTL is the idle timeout of a session: one with no activation or validate for this long
	// is no longer live and gives its seat back. Zero means sessions never expire by idleness. Every
	// server on one database should use the same value.
	SessionTTL time.Duration
	// TokenTTL is the lifetime of a JWT issued by Login (default 24h).
	TokenTTL time.Duration
	// TouchInterval is how often activity collected by validate is written back (default 1s).
	TouchInterval time.Duration
	// CacheSize bounds the sessions kept in the validate cache (default 2,000,000: at most 128 MB
	// of session slots, plus about 160 bytes for each license they belong to). Negative disables
	// the cache.
	CacheSize int
	// Now is the clock (default time.Now); tests inject their own. Every time the rules read comes
	// from it. Deadlines are measured between its readings with Time.Sub, which uses the monotonic
	// clock when the readings carry one (time.Now's do), so a wall-clock step does not move them.
	Now func() time.Time
	// Logger receives background failures (default slog.Default()).
	Logger *slog.Logger
	// Limits are the abuse limits; nil means DefaultLimits.
	Limits *Limits
	// MaxPasswordChecks bounds the password checks (argon2id, 19 MiB each) that run at once
	// (default twice GOMAXPROCS); more logins wait briefly for a slot, then are refused with
	// ErrBusy.
	MaxPasswordChecks int
	// OneShot is for a short-lived process such as a CLI command: no background work (no change-log
	// polling, sweeps or maintenance) and no validate cache; activity is written at Close.
	OneShot bool
	// ReadOnly is OneShot for a command that only reads, on a store that may refuse writes: the
	// service writes nothing, ever. It creates no JWT signing key or audit key when none exists,
	// signs no audit checkpoint (AuditCheckpoint answers the latest stored one) and writes no
	// activity at Close.
	ReadOnly bool
	// AuditKey is the key that signs the audit log's checkpoints, in note's signer encoding (the
	// content of serve --audit-key-file); empty: the key held in the database, created on first
	// start.
	AuditKey string
	// OfflineKey is the key that signs offline certificates, in note's signer encoding (the
	// content of serve --offline-key-file); empty: the key held in the database, created on first
	// start.
	OfflineKey string
}

// Service holds the business rules of OpenConsole. It is safe for concurrent use; Close it to write
// out pending bookkeeping.
type Service struct {
	store Store
	opts  Options
	clock clock
	log   *slog.Logger
	live  *liveness

	keys       atomic.Pointer[keyring]
	keysMu     sync.Mutex    // serialises reloads of keys
	keysLoaded time.Duration // clock.elapsed of the last reload

	audit   *auditLog
	offline *heldKey

	limits   limiters
	logs     *LogLimiter
	hashes   *hashGate
	counters Counters

	catalogueGen atomic.Uint64 // counts this service's changes of the catalogue

	stop chan struct{}
	bg   sync.WaitGroup
	once sync.Once
}

type keyring struct {
	current SigningKey
	byID    map[string]SigningKey
}

// NewService returns a Service on store. It creates the JWT signing key on first start and starts
// the background work: polling the change log for the validate cache, writing back activity,
// sweeping idle sessions, refreshing signing keys and pruning the change log.
func NewService(ctx context.Context, store Store, opts Options) (*Service, error) {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 24 * time.Hour
	}
	if opts.TouchInterval <= 0 {
		opts.TouchInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Limits == nil {
		opts.Limits = &DefaultLimits
	}
	if opts.MaxPasswordChecks <= 0 {
		opts.MaxPasswordChecks = 2 * runtime.GOMAXPROCS(0)
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = 2_000_000
	}
	if opts.ReadOnly {
		opts.OneShot = true
	}
	if opts.OneShot {
		opts.CacheSize = -1
	}
	c := newClock(opts.Now)
	s := &Service{
		store: store, opts: opts, clock: c, log: opts.Logger,
		live:   newLiveness(store, c, opts.Logger, opts),
		limits: newLimiters(*opts.Limits),
		logs:   NewLogLimiter(opts.Logger),
		hashes: newHashGate(opts.MaxPasswordChecks),
		stop:   make(chan struct{}),
	}
	s.live.counters = &s.counters
	s.keysLoaded = -time.Hour
	if err := s.loadKeys(ctx, s.clock.elapsed(c.Now())); err != nil {
		return nil, err
	}
	if err := s.initAudit(ctx, opts.AuditKey); err != nil {
		return nil, err
	}
	if err := s.initOffline(ctx, opts.OfflineKey); err != nil {
		return nil, err
	}
	if err := s.live.start(ctx); err != nil {
		return nil, err
	}
	if !opts.OneShot {
		s.startBackground()
	}
	return s, nil
}

// ExpirySweepInterval is how often a server ends the sessions past their hard expiry (those of
// offline certificates). Until then their seat is taken but they do not validate; an activation
// that finds their license full ends them at once.
const ExpirySweepInterval = 30 * time.Second

// SweepExpired ends, now, every session past its hard expiry and frees its seat (the background
// sweep does so every ExpirySweepInterval); for tests and one-shot processes.
func (s *Service) SweepExpired(ctx context.Context) error {
	return wrap("sweep expired sessions", s.live.sweepExpired(ctx))
}

// Close writes out pending activity and stops the background work. It does not close the store.
func (s *Service) Close() error {
	s.once.Do(func() { close(s.stop) })
	s.bg.Wait()
	if s.opts.ReadOnly {
		return nil
	}
	return s.live.writeBack(context.Background(), true)
}

// every runs fn every interval until the service stops, each run with a context that ends with
// the service or after timeout.
func (s *Service) every(interval, timeout time.Duration, fn func(ctx context.Context)) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			fn(ctx)
			cancel()
		}
	}()
}

// startBackground starts one goroutine per kind of background work, so that none waits behind
// another: above all, the poll that keeps the validate cache trusted never waits behind a long
// write-back.
func (s *Service) startBackground() {
	l := s.live
	if l.cache != nil {
		poll := func(ctx context.Context) {
			if err := l.poll(ctx); err != nil {
				s.logs.Warn("read change log; validate reads the database until it works again", err)
			}
		}
		poll(context.Background())
		s.every(pollInterval, trustWindow, poll)
	}
	s.every(s.opts.TouchInterval, time.Minute, func(ctx context.Context) {
		if err := l.writeBack(ctx, false); err != nil {
			s.logs.Warn("write last-seen times", err)
		}
	})
	if l.ttl > 0 {
		s.every(min(time.Minute, max(time.Second, l.ttl/20)), time.Minute, func(ctx context.Context) {
			if err := l.sweep(ctx); err != nil {
				s.logs.Warn("sweep idle sessions", err)
			}
		})
	}
	// Sessions of offline certificates end at their expiry, whatever the idle timeout.
	s.every(ExpirySweepInterval, time.Minute, func(ctx context.Context) {
		if err := l.sweepExpired(ctx); err != nil {
			s.logs.Warn("sweep expired sessions", err)
		}
	})
	s.every(KeyRefreshInterval, 10*time.Second, func(ctx context.Context) {
		if err := s.loadKeys(ctx, s.clock.elapsed(s.clock.Now())); err != nil {
			s.logs.Warn("refresh signing keys", err)
		}
	})
	if s.audit.signer != nil {
		s.every(AuditSigningInterval, 10*time.Second, func(ctx context.Context) {
			if err := s.maybeSignAudit(ctx); err != nil {
				s.logs.Warn("sign audit checkpoint", err)
			}
		})
	}
	s.every(auditWatchInterval, 5*time.Minute, func(ctx context.Context) {
		if err := s.watchAudit(ctx); err != nil {
			s.logs.Warn("check audit log", err)
		}
	})
	s.every(10*time.Minute, time.Minute, func(ctx context.Context) {
		now := s.clock.Now()
		s.limits.sweep(now)
		if err := s.store.PruneChanges(ctx, now.Add(-time.Hour)); err != nil {
			s.logs.Warn("prune change log", err)
		}
		if err := s.store.Update(ctx, func(tx Tx) error { return tx.PruneIdempotency(now.Add(-IdempotencyRetention)) }); err != nil {
			s.logs.Warn("prune idempotency keys", err)
		}
	})
}

// Validate reports whether the session named by the raw X-Session-Id value is live (wire contract
// §2.4). A missing, malformed, unknown, revoked or expired session is simply not valid; an error
// means the store failed. A valid check counts as activity for the idle timeout.
func (s *Service) Validate(ctx context.Context, rawSessionID string) (SessionRef, bool, error) {
	ref, ok, err := s.validate(ctx, rawSessionID)
	stripe := stripeOf(rawSessionID)
	switch {
	case err != nil:
		s.counters.Validates[ValidateError].add(stripe)
	case ok:
		s.counters.Validates[ValidateValid].add(stripe)
	default:
		s.counters.Validates[ValidateInvalid].add(stripe)
	}
	return ref, ok, err
}

func (s *Service) validate(ctx context.Context, rawSessionID string) (SessionRef, bool, error) {
	sid, ok := ParseSessionID(rawSessionID)
	if !ok {
		return SessionRef{}, false, nil
	}
	now := s.clock.Now()
	ts, lastSeen, live, err := s.live.validate(ctx, sid, now)
	if errors.Is(err, ErrNotFound) {
		return SessionRef{}, false, nil
	} else if err != nil {
		return SessionRef{}, false, fmt.Errorf("validate: %w", err)
	}
	if !live {
		return SessionRef{}, false, nil
	}
	s.live.seen(sid, lastSeen, now)
	return SessionRef{sid, ts}, true, nil
}

// CatalogueGeneration counts the changes this Service made to the product catalogue (imports,
// reviews): a cached catalogue answer built at another generation is stale. Changes made by other
// processes on the same database are not counted.
func (s *Service) CatalogueGeneration() uint64 { return s.catalogueGen.Load() }

// wrap passes domain errors through unchanged and prefixes storage errors with op.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	var te *ThrottledError
	if errors.As(err, &te) {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}
