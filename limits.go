package openconsole

import (
	"math"
	"net/netip"
	"strings"
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
//
// A client address is counted by its network, not its spelling (AddrSubject): an IPv4-mapped IPv6
// address is its IPv4 address, and an IPv6 address counts by its /64 (Limits.IPv6Prefix), since
// one host or subscriber usually holds a whole /64.

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
	// IPv6Prefix is the prefix length by which IPv6 client addresses are counted (default 64; 128
	// counts every address apart).
	IPv6Prefix int
}

// DefaultLimits are the limits a Service uses unless told otherwise.
var DefaultLimits = Limits{
	ActivationFailuresPerAddr: Limit{Burst: 30, PerMinute: 30},
	LoginFailuresPerUser:      Limit{Burst: 10, PerMinute: 2},
	LoginFailuresPerAddr:      Limit{Burst: 50, PerMinute: 20},
	IPv6Prefix:                64,
}

// AddrSubject is the subject a client address is counted as by the abuse limits: an IPv4 address
// as itself (also when spelled IPv4-mapped, ::ffff:198.51.100.8), an IPv6 address as its network
// of v6Prefix bits (2001:db8:1:2::/64), without a zone. A host:port is taken as its host. A value
// that is no address is counted as itself, cut to 64 bytes.
func AddrSubject(addr string, v6Prefix int) string {
	addr = strings.TrimSpace(addr)
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"))
	if err != nil {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			if len(addr) > 64 {
				addr = addr[:64]
			}
			return addr
		}
		a = ap.Addr()
	}
	a = a.Unmap().WithZone("")
	if a.Is6() && v6Prefix > 0 && v6Prefix < 128 {
		if p, err := a.Prefix(v6Prefix); err == nil {
			return p.String()
		}
	}
	return a.String()
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
	return l.waitFor(b.tokens)
}

// waitFor is how long a bucket with tokens (< 1) must wait for its next token: at most one token's
// refill time, 1/PerMinute minutes, since a bucket never goes below zero.
func (l *limiter) waitFor(tokens float64) time.Duration {
	return max(time.Millisecond, time.Duration((1-tokens)/l.limit.PerMinute*float64(time.Minute)).Round(time.Millisecond))
}

// bucketOf returns subject's bucket, refilled to now, creating a full one; nil when the limiter
// tracks as many subjects as it may. The caller holds l.mu.
func (l *limiter) bucketOf(subject string, now time.Time) *bucket {
	b, ok := l.m[subject]
	if !ok {
		if len(l.m) >= maxBuckets {
			l.sweep(now)
			if len(l.m) >= maxBuckets {
				return nil
			}
		}
		b = &bucket{tokens: float64(l.limit.Burst), last: now}
		l.m[subject] = b
	}
	l.refill(b, now)
	return b
}

// fail records a failure of subject. The bucket does not go below zero: a subject that keeps
// failing while throttled waits at most one token's refill time.
func (l *limiter) fail(subject string, now time.Time) {
	if l == nil || subject == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.bucketOf(subject, now); b != nil {
		b.tokens = max(0, b.tokens-1)
	}
}

// take takes a token for an attempt of subject before it is checked, and returns 0; or, when the
// bucket has no whole token, takes nothing and returns how long to wait. Taking before checking
// bounds the attempts checked at once by the bucket: concurrent attempts cannot all pass a check
// of the bucket and only then count. An attempt that turns out not to be a failure gives its token
// back (refund).
func (l *limiter) take(subject string, now time.Time) time.Duration {
	if l == nil || subject == "" {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucketOf(subject, now)
	if b == nil {
		return 0
	}
	if b.tokens < 1 {
		return l.waitFor(b.tokens)
	}
	b.tokens--
	return 0
}

// refund gives back the token an attempt of subject took, up to the burst.
func (l *limiter) refund(subject string, now time.Time) {
	if l == nil || subject == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.bucketOf(subject, now); b != nil {
		b.tokens = min(float64(l.limit.Burst), b.tokens+1)
	}
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
	v6Prefix                         int
}

func newLimiters(l Limits) limiters {
	if l.IPv6Prefix == 0 {
		l.IPv6Prefix = DefaultLimits.IPv6Prefix
	}
	return limiters{
		activation: newLimiter(l.ActivationFailuresPerAddr),
		loginUser:  newLimiter(l.LoginFailuresPerUser),
		loginAddr:  newLimiter(l.LoginFailuresPerAddr),
		v6Prefix:   l.IPv6Prefix,
	}
}

// addr is the subject of a client address (AddrSubject).
func (ls limiters) addr(clientAddr string) string {
	if clientAddr == "" {
		return ""
	}
	return AddrSubject(clientAddr, ls.v6Prefix)
}

func (ls limiters) sweep(now time.Time) {
	ls.activation.sweepAll(now)
	ls.loginUser.sweepAll(now)
	ls.loginAddr.sweepAll(now)
}

func throttled(wait time.Duration) error {
	return &ThrottledError{RetryAfter: wait}
}
