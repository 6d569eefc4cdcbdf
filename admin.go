package openconsole

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"
)

// The operations in this file are the administrator's: the CLI (and later the admin API) calls them.

// UserInput describes a user to create.
type UserInput struct {
	Username     string
	Password     string
	Email        string
	DisplayName  string
	Vendor       bool
	Whitelabeled bool
}

// CreateUser creates a user with an argon2id-hashed password. Errors: EINVALID for a missing
// username or password, ECONFLICT when the username is taken.
func (s *Service) CreateUser(ctx context.Context, in UserInput) (User, error) {
	if !validUsername(in.Username) {
		return User{}, Errorf(EINVALID, "username must be 1 to 128 characters, none of them a control character")
	}
	if in.Password == "" || len(in.Password) > 1024 {
		return User{}, Errorf(EINVALID, "password must be 1 to 1024 characters")
	}
	hash, err := HashPassword(in.Password)
	if err != nil {
		return User{}, err
	}
	if in.DisplayName == "" {
		in.DisplayName = in.Username
	}
	u := User{
		Username: in.Username, Email: in.Email, DisplayName: in.DisplayName, PasswordHash: hash,
		Vendor: in.Vendor, Whitelabeled: in.Whitelabeled, CreatedAt: s.clock.Now().UTC().Truncate(time.Millisecond),
	}
	err = s.store.Update(ctx, func(tx Tx) error {
		var err error
		u, err = tx.CreateUser(u)
		if ErrorCode(err) == ECONFLICT {
			return Errorf(ECONFLICT, "user %q exists already", in.Username)
		}
		return err
	})
	if err != nil {
		return User{}, wrap("create user", err)
	}
	return u, nil
}

// LicenseInput describes a license to create.
type LicenseInput struct {
	Key       string // "" generates a fresh key
	Owner     string // username of the owner; "" for none
	Seats     int
	ExpiresAt time.Time // zero for never
}

// CreateLicense creates a license. Errors: EINVALID for a bad key or seat count, ENOTFOUND for an
// unknown owner, ECONFLICT when the key exists already.
func (s *Service) CreateLicense(ctx context.Context, in LicenseInput) (License, error) {
	if in.Key == "" {
		in.Key = NewLicenseKey()
	} else if err := CheckKey(in.Key); err != nil {
		return License{}, Errorf(EINVALID, "license key %s", err.Error())
	}
	if in.Seats < 1 || in.Seats > 1_000_000 {
		return License{}, Errorf(EINVALID, "activations must be between 1 and 1000000")
	}
	lic := License{Key: in.Key, Kind: KindKey, Seats: in.Seats, ExpiresAt: in.ExpiresAt.UTC().Truncate(time.Millisecond),
		CreatedAt: s.clock.Now().UTC().Truncate(time.Millisecond)}
	if in.Owner != "" {
		u, err := s.store.UserByUsername(ctx, in.Owner)
		if errors.Is(err, ErrNotFound) {
			return License{}, Errorf(ENOTFOUND, "user %q not found", in.Owner)
		} else if err != nil {
			return License{}, fmt.Errorf("create license: %w", err)
		}
		lic.OwnerID = u.ID
	}
	err := s.store.Update(ctx, func(tx Tx) error {
		var err error
		lic, err = tx.CreateLicense(lic)
		if ErrorCode(err) == ECONFLICT {
			return Errorf(ECONFLICT, "license key exists already")
		}
		return err
	})
	if err != nil {
		return License{}, wrap("create license", err)
	}
	return lic, nil
}

// RegisterSerialAdmin registers a serial number without a vendor account, as the admin CLI does.
func (s *Service) RegisterSerialAdmin(ctx context.Context, in SerialInput) (Serial, error) {
	return s.registerSerial(ctx, 0, in)
}

// RevokeLicense revokes a license (or registered serial): its sessions stop validating and it
// cannot be activated again. ENOTFOUND for an unknown key.
func (s *Service) RevokeLicense(ctx context.Context, key string) error {
	id, err := UpdateValue(ctx, s.store, func(tx Tx) (int64, error) {
		lic, err := tx.LockLicenseByKey(key)
		if err != nil {
			return 0, err
		}
		return lic.ID, tx.RevokeLicense(key, s.clock.Now())
	})
	if errors.Is(err, ErrNotFound) {
		return Errorf(ENOTFOUND, "license not found")
	} else if err != nil {
		return wrap("revoke license", err)
	}
	s.live.changed(Change{LicenseID: id})
	return nil
}

// RevokeSession revokes one session: it stops validating and frees its seat. ENOTFOUND for an
// unknown id.
func (s *Service) RevokeSession(ctx context.Context, id string) error {
	sid, ok := ParseSessionID(id)
	if !ok {
		return Errorf(EINVALID, "session id must be a UUID")
	}
	_, err := UpdateValue(ctx, s.store, func(tx Tx) (Session, error) { return tx.RevokeSession(sid, s.clock.Now()) })
	if errors.Is(err, ErrNotFound) {
		return Errorf(ENOTFOUND, "session not found")
	} else if err != nil {
		return wrap("revoke session", err)
	}
	s.live.changed(Change{SessionID: sid})
	return nil
}

// Licenses yields the licenses q selects, in id order, streaming from the store.
func (s *Service) Licenses(ctx context.Context, q LicenseQuery) iter.Seq2[License, error] {
	return s.store.ListLicenses(ctx, q)
}

// Sessions yields the sessions of one license (key), or of all when key is "", in issue order
// after the cursor, at most limit (0: all), streaming from the store. ENOTFOUND for an unknown key.
func (s *Service) Sessions(ctx context.Context, key string, after SessionCursor, limit int) (iter.Seq2[SessionState, error], error) {
	q := SessionQuery{After: after, Limit: limit}
	if key != "" {
		lic, err := s.store.LicenseByKey(ctx, key)
		if errors.Is(err, ErrNotFound) {
			return nil, Errorf(ENOTFOUND, "license not found")
		} else if err != nil {
			return nil, err
		}
		q.LicenseID = lic.ID
	}
	return s.store.ListSessions(ctx, q), nil
}

// SessionLive reports whether a listed session is live now, for display.
func (s *Service) SessionLive(st SessionState) bool {
	return s.live.isLive(st, s.clock.Now())
}

// CheckSeats recounts the seats every license's sessions hold and compares them with the seat
// bookkeeping. With repair it does so in one write transaction and sets every mismatching
// license's bookkeeping to the recount; the mismatches found are returned either way.
func (s *Service) CheckSeats(ctx context.Context, repair bool) (SeatCheck, error) {
	if !repair {
		c, err := s.store.SeatMismatches(ctx)
		return c, wrap("check seats", err)
	}
	c, err := UpdateValue(ctx, s.store, func(tx Tx) (SeatCheck, error) {
		c, err := tx.SeatMismatches()
		if err != nil {
			return SeatCheck{}, err
		}
		for _, m := range c.Mismatches {
			if err := tx.SetTakenSeats(m.LicenseID, m.Held); err != nil {
				return SeatCheck{}, err
			}
		}
		return c, nil
	})
	return c, wrap("repair seats", err)
}

// UserByID returns a user by id; ENOTFOUND when there is none.
func (s *Service) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := s.store.UserByID(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return User{}, Errorf(ENOTFOUND, "user not found")
	}
	return u, err
}

// LicenseByKey returns a license by key; ENOTFOUND when there is none.
func (s *Service) LicenseByKey(ctx context.Context, key string) (License, error) {
	lic, err := s.store.LicenseByKey(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return License{}, Errorf(ENOTFOUND, "license not found")
	}
	return lic, err
}
