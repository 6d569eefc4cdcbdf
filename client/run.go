package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// RunOptions configure Run. Zero values take the defaults given.
type RunOptions struct {
	// Credentials for the first activation; zero uses the stored license key.
	Credentials Credentials
	// Interval between validations while all is well (default 60 s, FLECS Core's UI poll).
	Interval time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failure (defaults 1 s and 5 min). The wait
	// doubles with each failure in a row and is jittered: a uniform pick in [d/2, d].
	MinBackoff, MaxBackoff time.Duration
	// Sleep waits d or until ctx is done; nil uses a timer. Tests inject it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a float in [0, 1) for the jitter; nil uses math/rand/v2.
	Rand func() float64
	// OnEvent is told of every step; nil drops them.
	OnEvent func(Event)
	// Now stamps events; nil uses time.Now.
	Now func() time.Time
}

// Event is one step of Run.
type Event struct {
	Time    time.Time     `json:"time"`
	Kind    string        `json:"event"` // activated, already-active, valid, invalid, error, backoff
	Session string        `json:"session,omitempty"`
	Delay   time.Duration `json:"delayNs,omitempty"`
	Err     string        `json:"error,omitempty"`
}

// Backoff returns the jittered wait after failures failures in a row (failures ≥ 1): the nominal
// wait min·2^(failures-1), capped at max, scaled into [nominal/2, nominal] by r in [0, 1).
func Backoff(failures int, min, max time.Duration, r float64) time.Duration {
	d := min
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d/2 + time.Duration(r*float64(d/2))
}

// Run activates the device, then validates it every Interval until ctx is done, as FLECS Core
// keeps a device licensed: a failed call (console unreachable or failing) is retried after a
// jittered exponential backoff; a session found invalid is replaced by activating again with the
// stored license key. Run returns nil when ctx is done, and an error wrapping ErrRefused or
// ErrNotActivated when the console refuses the activation (retrying would not help).
func (c *Client) Run(ctx context.Context, o RunOptions) error {
	if o.Interval <= 0 {
		o.Interval = time.Minute
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(5*time.Minute, o.MinBackoff)
	}
	if o.Sleep == nil {
		o.Sleep = sleepCtx
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	emit := func(e Event) {
		if o.OnEvent != nil {
			e.Time = o.Now().UTC()
			o.OnEvent(e)
		}
	}
	cred := o.Credentials
	needActivate := cred != (Credentials{})
	if !needActivate {
		if s, err := c.State.Session(); err != nil {
			return err
		} else if !s.HasID || s.ID == "" {
			needActivate = true
		}
	}
	failures := 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		var err error
		if needActivate {
			var a *Activation
			if a, err = c.Activate(ctx, cred); err == nil {
				kind := "activated"
				if !a.New {
					kind = "already-active"
				}
				emit(Event{Kind: kind, Session: a.Session.ID})
				needActivate, cred = false, Credentials{} // later activations use the stored key
			}
		} else {
			var valid bool
			if valid, err = c.Validate(ctx); err == nil {
				s, _ := c.State.Session()
				if valid {
					emit(Event{Kind: "valid", Session: s.ID})
				} else {
					emit(Event{Kind: "invalid", Session: s.ID})
					needActivate = true
					failures = 0
					continue
				}
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		var wait time.Duration
		if err != nil {
			if errors.Is(err, ErrRefused) || errors.Is(err, ErrNotActivated) || errors.Is(err, ErrState) {
				emit(Event{Kind: "error", Err: err.Error()})
				return err
			}
			failures++
			wait = Backoff(failures, o.MinBackoff, o.MaxBackoff, o.Rand())
			emit(Event{Kind: "backoff", Err: err.Error(), Delay: wait})
		} else {
			failures = 0
			wait = o.Interval
		}
		if err := o.Sleep(ctx, wait); err != nil {
			return nil
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
