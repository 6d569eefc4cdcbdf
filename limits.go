package openconsole

import (
	"math"
	"sync"
	"time"
)

// Abuse limits. Guessing license keys or serial numbers, and guessing passwords, must be
// impractical; a factory whose devices boot at once behind one NAT address must not notice. So only
// failures are counted: an activation with a key or serial that does not exist (refusals of real
// keys, such as a full or revoked license, are answers, not guesses), and a failed login. Each
// subject (a client address, a username) has a token bucket of failures: Burst failures at once,
// refilled at PerMinute. While a subject's bucket is empty its attempts are refused with
// ErrThrottled without being checked. The buckets live in each server's memory: with N servers
// behind a load balancer an attacker gets at most N times the limit.

// Limit is a token bucket of failures. A zero Burst disables it.
type Limit struct {
	Burst     int
	PerMinute float64
}

// Limits are the abuse limits of a Service.
type Limits struct {
	// ActivationFailuresPerAddr: activations with an unknown key or serial, per client address.
	ActivationFailuresPerAddr Limit
	// LoginFailuresPerUser and LoginFailuresPerAddr: failed logins per username and per address.
	LoginFailuresPerUser Limit
	LoginFailuresPerAddr Limit
}

// DefaultLimits are the limits a Service uses unless told otherwise.
var DefaultLimits = Limits{
	ActivationFailuresPerAddr: Limit{Burst: 30, PerMinute: 30},
	LoginFailuresPerUser:      Limit{Burst: 10, PerMinute: 2},
	LoginFailuresPerAddr:      Limit{Burst: 50, PerMinute: 20},
}

// ThrottledError is returned (with code ETHROTTLED) for an attempt refused by an abuse limit.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string { return "Too many failed attempts; try again later" }

// ETHROTTLED is the code of a *ThrottledError, for ErrorCode.
const ETHROTTLED = "throttled"

// maxBuckets bounds the memory of one limiter; beyond it new subjects are not tracked (the
// per-address limit still stands in front of a flood of usernames).
const maxBuckets = 200_000

type bucket struct {
	tokens float64
	last   time.Time
}

type limiter struct {
	limit Limit
	mu    sync.Mutex
	m     map[string]*bucket
}

func newLimiter(l Limit) *limiter {
	if l.Burst <= 0 || l.PerMinute <= 0 {
		return nil
	}
	return &limiter{limit: l, m: make(map[string]*bucket)}
}

func (l *limiter) refill(b *bucket, now time.Time) {
	b.tokens = math.Min(float64(l.limit.Burst), b.tokens+now.Sub(b.last).Minutes()*l.limit.PerMinute)
	b.last = now
}

// wait returns how long subject must wait before its next attempt is looked at; 0 when it may go.
func (l *limiter) wait(subject string, now time.Time) time.Duration {
	if l == nil || subject == "" {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.m[subject]
	if !ok {
		return 0
	}
	l.refill(b, now)
	if b.tokens >= 1 {
		return 0
	}
	return max(time.Millisecond, time.Duration((1-b.tokens)/l.limit.PerMinute*float64(time.Minute)).Round(time.Millisecond))
}

// fail records a failure of subject.
func (l *limiter) fail(subject string, now time.Time) {
	if l == nil || subject == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.m[subject]
	if !ok {
		if len(l.m) >= maxBuckets {
			l.sweep(now)
			if len(l.m) >= maxBuckets {
				return
			}
		}
		b = &bucket{tokens: float64(l.limit.Burst), last: now}
		l.m[subject] = b
	}
	l.refill(b, now)
	b.tokens--
}

// sweep forgets the subjects whose buckets are full again. The caller holds l.mu.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.m {
		l.refill(b, now)
		if b.tokens >= float64(l.limit.Burst) {
			delete(l.m, k)
		}
	}
}

// sweepAll is sweep for callers that do not hold l.mu.
func (l *limiter) sweepAll(now time.Time) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.sweep(now)
	l.mu.Unlock()
}

// limiters are a Service's buckets.
type limiters struct {
	activation, loginUser, loginAddr *limiter
}

func newLimiters(l Limits) limiters {
	return limiters{
		activation: newLimiter(l.ActivationFailuresPerAddr),
		loginUser:  newLimiter(l.LoginFailuresPerUser),
		loginAddr:  newLimiter(l.LoginFailuresPerAddr),
	}
}

func (ls limiters) sweep(now time.Time) {
	ls.activation.sweepAll(now)
	ls.loginUser.sweepAll(now)
	ls.loginAddr.sweepAll(now)
}

func throttled(wait time.Duration) error {
	return &ThrottledError{RetryAfter: wait}
}
