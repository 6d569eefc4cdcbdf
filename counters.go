package openconsole

import (
	"sync/atomic"
	"time"
)

// Operational counts. The hot paths (validate, activate) count into fixed arrays of atomic values
// whose indexes are constants: counting costs an atomic add, never a lookup or an allocation. A
// metrics exporter reads them when it is scraped (Service.Counters); nothing here knows of one.

// ActivationMode is how a device asked to be activated, as an index of Counters.Activations.
type ActivationMode int

// The activation modes.
const (
	ModeKey    ActivationMode = iota // licenseKey naming a license key (or one that names nothing)
	ModeSerial                       // licenseKey naming a registered serial number
	ModeBearer                       // a user's bearer token
	NumActivationModes
)

// ActivationModeNames are the modes' names, by index.
var ActivationModeNames = [NumActivationModes]string{"key", "serial", "bearer"}

// ActivationOutcome is how an activation ended, as an index of Counters.Activations.
type ActivationOutcome int

// The activation outcomes: a new session, the presented one still active, each refusal, throttled,
// and a failure of the store.
const (
	OutcomeCreated ActivationOutcome = iota
	OutcomeStillActive
	OutcomeLicenseNotFound
	OutcomeLicenseInvalid
	OutcomeMaxActivations
	OutcomeMissingAuthorization
	OutcomeInvalidAuthorization
	OutcomeTokenRefused
	OutcomeNoRemainingSeats
	OutcomeThrottled
	OutcomeError
	NumActivationOutcomes
)

// ActivationOutcomeInfo names an outcome: the HTTP status the device gets and a reason.
type ActivationOutcomeInfo struct {
	Status string // "200", "204", "403", "429", "500"
	Reason string // snake case: "created", "still_active", "max_activations", ...
}

// ActivationOutcomes describe the outcomes, by index.
var ActivationOutcomes = [NumActivationOutcomes]ActivationOutcomeInfo{
	OutcomeCreated:              {"200", "created"},
	OutcomeStillActive:          {"204", "still_active"},
	OutcomeLicenseNotFound:      {"403", "license_not_found"},
	OutcomeLicenseInvalid:       {"403", "license_invalid"},
	OutcomeMaxActivations:       {"403", "max_activations"},
	OutcomeMissingAuthorization: {"403", "missing_authorization"},
	OutcomeInvalidAuthorization: {"403", "invalid_authorization"},
	OutcomeTokenRefused:         {"403", "token_refused"},
	OutcomeNoRemainingSeats:     {"403", "no_remaining_seats"},
	OutcomeThrottled:            {"429", "throttled"},
	OutcomeError:                {"500", "error"},
}

// ValidateResult is how a validate ended, as an index of Counters.Validates.
type ValidateResult int

// The validate results.
const (
	ValidateValid ValidateResult = iota
	ValidateInvalid
	ValidateError
	NumValidateResults
)

// ValidateResultNames are the results' names, by index.
var ValidateResultNames = [NumValidateResults]string{"valid", "invalid", "error"}

// ThrottleLimit is an abuse limit, as an index of Counters.Throttled.
type ThrottleLimit int

// The abuse limits (see Limits).
const (
	LimitActivationPerAddr ThrottleLimit = iota
	LimitLoginPerUser
	LimitLoginPerAddr
	NumThrottleLimits
)

// ThrottleLimitNames are the limits' names, by index.
var ThrottleLimitNames = [NumThrottleLimits]string{"activation_per_addr", "login_per_user", "login_per_addr"}

// Counters are a Service's counts since it started. Read them with Load; only the Service adds.
type Counters struct {
	Activations [NumActivationModes][NumActivationOutcomes]atomic.Uint64
	Validates   [NumValidateResults]StripedCounter
	// CacheHits and CacheMisses count the session lookups the validate cache answered and those
	// it sent to the database (only while the cache is enabled).
	CacheHits, CacheMisses StripedCounter
	// Throttled counts the attempts an abuse limit refused.
	Throttled [NumThrottleLimits]atomic.Uint64

	lastPoll atomic.Int64 // clock.elapsed at the start of the last successful change-log poll
}

// counterStripes is how many copies of itself a StripedCounter keeps.
const counterStripes = 16

// StripedCounter is a count that every validate adds to. Validates served at once on different
// cores would contend for one atomic value (its cache line moving between the cores on every
// request); a StripedCounter keeps one value per stripe, each on a cache line of its own, and the
// caller picks the stripe from something that differs between requests (a byte of the session
// id). Load sums them.
type StripedCounter struct {
	stripes [counterStripes]struct {
		n atomic.Uint64
		_ [56]byte
	}
}

func (c *StripedCounter) add(stripe byte) { c.stripes[stripe%counterStripes].n.Add(1) }

// Load returns the count.
func (c *StripedCounter) Load() uint64 {
	var n uint64
	for i := range c.stripes {
		n += c.stripes[i].n.Load()
	}
	return n
}

// stripeOf is the stripe a request with this session id counts in: the id's last byte.
func stripeOf(id string) byte {
	if id == "" {
		return 0
	}
	return id[len(id)-1]
}

// Counters returns the service's counters. They stay valid for the service's life.
func (s *Service) Counters() *Counters { return &s.counters }

// activationOutcome classifies what Activate returns.
func activationOutcome(act Activation, err error) ActivationOutcome {
	switch err {
	case nil:
		if act.Created {
			return OutcomeCreated
		}
		return OutcomeStillActive
	case ErrLicenseNotFound:
		return OutcomeLicenseNotFound
	case ErrLicenseInvalid:
		return OutcomeLicenseInvalid
	case ErrMaxActivations:
		return OutcomeMaxActivations
	case ErrMissingAuthorization:
		return OutcomeMissingAuthorization
	case ErrInvalidAuthorization:
		return OutcomeInvalidAuthorization
	case ErrTokenRefused:
		return OutcomeTokenRefused
	case ErrNoRemainingSeats:
		return OutcomeNoRemainingSeats
	}
	if ErrorCode(err) == ETHROTTLED {
		return OutcomeThrottled
	}
	return OutcomeError
}

// CachedSessions returns the number of sessions in the validate cache (0 when it is disabled).
func (s *Service) CachedSessions() int64 {
	if s.live.cache == nil {
		return 0
	}
	return s.live.cache.size.Load()
}

// ChangePollLag returns how long ago the last successful poll of the change log began: how far
// behind changes made by other servers the validate cache may be. ok is false when this service
// keeps no cache (and so does not poll).
func (s *Service) ChangePollLag() (lag time.Duration, ok bool) {
	if s.live.cache == nil {
		return 0, false
	}
	return s.clock.elapsed(s.clock.Now()) - time.Duration(s.counters.lastPoll.Load()), true
}

// Password hashing is a process-wide cost (argon2id takes about 19 MiB and tens of milliseconds
// each), so it is counted process-wide.
var passwordHashes struct {
	active atomic.Int64
	total  atomic.Uint64
}

// PasswordHashStats returns the argon2id computations running now and those done since the process
// started (hashes of new passwords and checks of presented ones).
func PasswordHashStats() (active int64, total uint64) {
	return passwordHashes.active.Load(), passwordHashes.total.Load()
}

func hashStarted() { passwordHashes.active.Add(1) }
func hashDone()    { passwordHashes.active.Add(-1); passwordHashes.total.Add(1) }
