package openconsole

import (
	"context"
	"errors"
	"fmt"
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
		Vendor: in.Vendor, Whitelabeled: in.Whitelabeled, CreatedAt: s.now().UTC().Truncate(time.Millisecond),
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
		CreatedAt: s.now().UTC().Truncate(time.Millisecond)}
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
	var id int64
	err := s.store.Update(ctx, func(tx Tx) error {
		lic, err := tx.LicenseByKey(key)
		if err != nil {
			return err
		}
		id = lic.ID
		return tx.RevokeLicense(key, s.now())
	})
	if errors.Is(err, ErrNotFound) {
		return Errorf(ENOTFOUND, "license not found")
	} else if err != nil {
		return wrap("revoke license", err)
	}
	s.invalidate(Change{LicenseID: id})
	return nil
}

// RevokeSession revokes one session: it stops validating and frees its seat. ENOTFOUND for an
// unknown id.
func (s *Service) RevokeSession(ctx context.Context, id string) error {
	sid, ok := ParseSessionID(id)
	if !ok {
		return Errorf(EINVALID, "session id must be a UUID")
	}
	err := s.store.Update(ctx, func(tx Tx) error { return tx.RevokeSession(sid, s.now()) })
	if errors.Is(err, ErrNotFound) {
		return Errorf(ENOTFOUND, "session not found")
	} else if err != nil {
		return wrap("revoke session", err)
	}
	s.invalidate(Change{SessionID: sid})
	return nil
}

// Licenses lists every license with its taken seats.
// A revoked or expired license holds no live sessions, whatever its sessions' own state.
func (s *Service) Licenses(ctx context.Context) ([]LicenseUsage, error) {
	now := s.now()
	ls, err := s.store.Licenses(ctx, s.liveSince(now))
	for i := range ls {
		if !ls[i].Usable(now) {
			ls[i].LiveSessions = 0
		}
	}
	return ls, err
}

// Sessions lists the sessions of one license, or all when key is "". ENOTFOUND for an unknown key.
func (s *Service) Sessions(ctx context.Context, key string) ([]SessionState, error) {
	var id int64
	if key != "" {
		lic, err := s.store.LicenseByKey(ctx, key)
		if errors.Is(err, ErrNotFound) {
			return nil, Errorf(ENOTFOUND, "license not found")
		} else if err != nil {
			return nil, err
		}
		id = lic.ID
	}
	return s.store.Sessions(ctx, id)
}

// SessionLive reports whether a listed session is live now, for display.
func (s *Service) SessionLive(st SessionState) bool {
	return s.live(st, s.now())
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
