package openconsole

import (
	"context"
	"errors"
	"strings"
	"time"
)

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
	ClientAddr    string // the client's address, for the abuse limits and the session's record
}

// Activation is the outcome of a successful activation.
type Activation struct {
	Session    SessionRef
	LicenseKey string
	// Created is true when a new session was issued (HTTP 200) and false when the session the
	// device presented is still live on the license (HTTP 204).
	Created bool

	serial bool // the license named by the key is a serial number (for Counters), also on refusal
}

// Activate activates a device (wire contract §3.3): by license key or serial number when one is
// given, else from the licenses of the user whose bearer token is presented. Refusals are the
// EFORBIDDEN errors ErrLicenseNotFound, ErrLicenseInvalid, ErrMaxActivations,
// ErrMissingAuthorization, ErrInvalidAuthorization, ErrTokenRefused and ErrNoRemainingSeats; a
// client address with too many activations of unknown keys gets a *ThrottledError (ETHROTTLED).
func (s *Service) Activate(ctx context.Context, in ActivateInput) (Activation, error) {
	act, err := s.activateAny(ctx, in)
	mode := ModeBearer
	if in.LicenseKey != "" {
		mode = ModeKey
		if act.serial {
			mode = ModeSerial
		}
	}
	s.counters.Activations[mode][activationOutcome(act, err)].Add(1)
	if err != nil {
		return Activation{}, err
	}
	return act, nil
}

func (s *Service) activateAny(ctx context.Context, in ActivateInput) (Activation, error) {
	sid, _ := ParseSessionID(in.SessionID)
	if in.LicenseKey != "" {
		c := byKey(in.LicenseKey)
		now := s.clock.Now()
		addr := s.limits.addr(in.ClientAddr)
		if wait := s.limits.activation.wait(addr, now); wait > 0 {
			// A device that presents a live session of this very key is not guessing.
			if act, ok := s.stillActive(ctx, c, sid); ok {
				return act, nil
			}
			s.counters.Throttled[LimitActivationPerAddr].Add(1)
			return Activation{}, throttled(wait)
		}
		act, err := Activation{}, error(ErrLicenseNotFound)
		// No license or serial has a key that fails CheckKey (both are created through it), and
		// some could not even be looked up: PostgreSQL text cannot hold a NUL byte.
		if CheckKey(in.LicenseKey) == nil {
			act, err = s.activate(ctx, c, sid, in.ClientAddr)
		}
		if err == ErrLicenseNotFound {
			s.limits.activation.fail(addr, now)
		}
		return act, err
	}
	token, err := BearerToken(in.Authorization, in.HasAuth)
	if err != nil {
		return Activation{}, err
	}
	u, _, err := s.Authenticate(ctx, token)
	if ErrorCode(err) == EUNAUTHORIZED {
		return Activation{}, ErrTokenRefused // a bad token, or its user is gone or disabled
	} else if err != nil {
		return Activation{}, wrap("activate", err)
	}
	return s.activate(ctx, byOwner(u.ID), sid, in.ClientAddr)
}

// BearerToken returns the token of an Authorization header value "Bearer <token>" (the scheme in
// any case, surrounding spaces ignored). Without a header it returns ErrMissingAuthorization; any
// other scheme or an empty token gives ErrInvalidAuthorization.
func BearerToken(header string, present bool) (string, error) {
	if !present {
		return "", ErrMissingAuthorization
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(header), " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", ErrInvalidAuthorization
	}
	return token, nil
}

// candidates are the licenses an activation may draw a seat from, and how it is refused.
type candidates struct {
	key   string // key mode: the license key or serial number
	owner int64  // bearer mode: the user whose key licenses
}

func byKey(key string) candidates     { return candidates{key: key} }
func byOwner(userID int64) candidates { return candidates{owner: userID} }

// includes reports whether lic is one of the candidates.
func (c candidates) includes(lic License) bool {
	if c.key != "" {
		return lic.Key == c.key
	}
	return lic.OwnerID == c.owner && lic.Kind == KindKey
}

// lock reads and locks the candidates in tx, in the order seats are drawn.
func (c candidates) lock(tx Tx) ([]License, error) {
	if c.key == "" {
		return tx.LockLicensesByOwner(c.owner)
	}
	lic, err := tx.LockLicenseByKey(c.key)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []License{lic}, nil
}

// refusal is the answer when no candidate had a seat: found licenses, of which usable were usable.
func (c candidates) refusal(found, usable int) error {
	switch {
	case c.key == "":
		return ErrNoRemainingSeats
	case found == 0:
		return ErrLicenseNotFound
	case usable == 0:
		return ErrLicenseInvalid
	}
	return ErrMaxActivations
}

// activate is the one activation, in every mode: the presented session if it is live on a
// candidate (204), else a new session on the first usable candidate with a free seat (200), else
// the mode's refusal. Store failures give an internal error (500) in every mode.
func (s *Service) activate(ctx context.Context, c candidates, sid, from string) (Activation, error) {
	// A device that is still active re-activates on every start: answer it from a read, without
	// taking the write lock. Anything else, a failed read included, is decided by the transaction,
	// which reads again.
	if act, ok := s.stillActive(ctx, c, sid); ok {
		return act, nil
	}
	now := s.clock.Now()
	// A refusal is an outcome, not a failed transaction: what the transaction did to find a seat
	// (ending idle sessions) is kept.
	type outcome struct {
		act      Activation
		lastSeen time.Time // of the presented session, when it is still live
		refusal  error
		serial   bool // key mode: the license found is a serial number
	}
	out, err := UpdateValue(ctx, s.store, func(tx Tx) (outcome, error) {
		lics, err := c.lock(tx)
		if err != nil {
			return outcome{}, err
		}
		usable := make([]License, 0, len(lics))
		for _, lic := range lics {
			if lic.Usable(now) {
				usable = append(usable, lic)
			}
		}
		if sess, lic, ok, err := s.live.liveIn(tx, sid, usable, now); err != nil || ok {
			return outcome{act: Activation{Session: SessionRef{sess.ID, sess.Timestamp}, LicenseKey: lic.Key, serial: lic.Kind == KindSerial}, lastSeen: sess.LastSeenAt}, err
		}
		for _, lic := range usable {
			ref, ok, err := s.live.takeSeat(tx, lic, now, from, time.Time{})
			if err != nil {
				return outcome{}, err
			}
			if ok {
				return outcome{act: Activation{Session: ref, LicenseKey: lic.Key, Created: true, serial: lic.Kind == KindSerial}}, nil
			}
		}
		return outcome{refusal: c.refusal(len(lics), len(usable)), serial: c.key != "" && len(lics) > 0 && lics[0].Kind == KindSerial}, nil
	})
	if err != nil {
		return Activation{}, wrap("activate", err)
	}
	if out.refusal != nil {
		return Activation{serial: out.serial}, out.refusal
	}
	if !out.act.Created {
		s.live.seen(out.act.Session.ID, out.lastSeen, now)
	}
	return out.act, nil
}

// stillActive answers a re-activation whose session is live on a candidate (the 204 case) from a
// read.
func (s *Service) stillActive(ctx context.Context, c candidates, sid string) (Activation, bool) {
	if sid == "" {
		return Activation{}, false
	}
	now := s.clock.Now()
	st, err := s.live.state(ctx, sid, now)
	if err != nil || !c.includes(st.License) || !s.live.isLive(st, now) {
		return Activation{}, false
	}
	s.live.seen(sid, st.Session.LastSeenAt, now)
	return Activation{Session: SessionRef{sid, st.Session.Timestamp}, LicenseKey: st.License.Key, serial: st.License.Kind == KindSerial}, true
}
