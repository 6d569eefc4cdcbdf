package openconsole

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"iter"
	"strings"
	"time"
	"unicode/utf8"
)

// The operations in this file are the operators': the operator API, the CLI and the admin web
// console call them, each change through mutate, so that it is recorded with its actor (take it
// from ctx: WithActor) in the same transaction.

// EPRECONDITION is the code of a change refused because the resource changed since the version
// the caller named (If-Match).
const EPRECONDITION = "precondition_failed"

// ErrChanged refuses a change whose caller expected another version of the resource.
var ErrChanged = &Error{Code: EPRECONDITION, Message: "The resource changed since the version given in If-Match"}

// MaxSeats bounds a license's seats.
const MaxSeats = 100_000_000

// UserInput describes a user to create.
type UserInput struct {
	Username     string
	Password     string
	Email        string
	DisplayName  string
	Vendor       bool
	Whitelabeled bool
	Role         Role // "" for none: the user cannot sign in to the admin web console
}

func checkPassword(pw string) error {
	if pw == "" || len(pw) > 1024 {
		return Errorf(EINVALID, "password must be 1 to 1024 characters")
	}
	return nil
}

func checkText(field, v string, max int) error {
	if len(v) > max || !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
		return Errorf(EINVALID, "%s must be at most %d bytes of text", field, max)
	}
	return nil
}

func checkRole(r Role) error {
	if r == "" {
		return nil
	}
	_, err := ParseRole(string(r))
	return err
}

// userFields is what the record shows of a user: never the password or its hash.
func userFields(u User) map[string]any {
	return map[string]any{"email": u.Email, "displayName": u.DisplayName, "vendor": u.Vendor,
		"whitelabeled": u.Whitelabeled, "disabled": u.Disabled, "role": string(u.Role)}
}

// CreateUser creates a user with an argon2id-hashed password. Errors: EINVALID for a missing
// username or password or a bad field, ECONFLICT when the username is taken.
func (s *Service) CreateUser(ctx context.Context, in UserInput) (User, error) {
	if !validUsername(in.Username) {
		return User{}, Errorf(EINVALID, "username must be 1 to 128 characters, none of them a control character")
	}
	if err := errors.Join(checkPassword(in.Password), checkText("email", in.Email, 320),
		checkText("displayName", in.DisplayName, 256), checkRole(in.Role)); err != nil {
		return User{}, firstError(err)
	}
	hash, err := HashPassword(in.Password)
	if err != nil {
		return User{}, err
	}
	if in.DisplayName == "" {
		in.DisplayName = in.Username
	}
	u, err := mutate(s, ctx, func(tx Tx, now time.Time) (User, AuditRecord, error) {
		u := User{Username: in.Username, Email: in.Email, DisplayName: in.DisplayName, PasswordHash: hash,
			Vendor: in.Vendor, Whitelabeled: in.Whitelabeled, Role: in.Role, CreatedAt: now, UpdatedAt: now}
		u, err := tx.CreateUser(u)
		if ErrorCode(err) == ECONFLICT {
			return User{}, AuditRecord{}, Errorf(ECONFLICT, "user %q exists already", in.Username)
		} else if err != nil {
			return User{}, AuditRecord{}, err
		}
		return u, AuditRecord{Action: "user.create", Target: "user:" + u.Username, After: userFields(u)}, nil
	})
	return u, wrap("create user", err)
}

// UserPatch is a change of a user; nil fields stay as they are.
type UserPatch struct {
	Password     *string
	Email        *string
	DisplayName  *string
	Vendor       *bool
	Whitelabeled *bool
	Disabled     *bool
	Role         *Role
	IfVersion    int64 // when not 0, the change is refused (ErrChanged) unless the user is at this version
}

// UpdateUser changes a user. A disabled user cannot log in, and its tokens stop working at once.
// Errors: ENOTFOUND, EINVALID for a bad field, EPRECONDITION (IfVersion).
func (s *Service) UpdateUser(ctx context.Context, username string, p UserPatch) (User, error) {
	var hash string
	if p.Password != nil {
		if err := checkPassword(*p.Password); err != nil {
			return User{}, err
		}
		var err error
		if hash, err = HashPassword(*p.Password); err != nil {
			return User{}, err
		}
	}
	for _, c := range []struct {
		name string
		v    *string
		max  int
	}{{"email", p.Email, 320}, {"displayName", p.DisplayName, 256}} {
		if c.v != nil {
			if err := checkText(c.name, *c.v, c.max); err != nil {
				return User{}, err
			}
		}
	}
	if p.Role != nil {
		if err := checkRole(*p.Role); err != nil {
			return User{}, err
		}
	}
	u, err := mutate(s, ctx, func(tx Tx, now time.Time) (User, AuditRecord, error) {
		u, err := tx.LockUserByUsername(username)
		if err != nil {
			return User{}, AuditRecord{}, notFound(err, "user")
		}
		if p.IfVersion != 0 && p.IfVersion != u.Version {
			return User{}, AuditRecord{}, ErrChanged
		}
		before := userFields(u)
		set(&u.Email, p.Email)
		set(&u.DisplayName, p.DisplayName)
		set(&u.Vendor, p.Vendor)
		set(&u.Whitelabeled, p.Whitelabeled)
		set(&u.Disabled, p.Disabled)
		set(&u.Role, p.Role)
		after := userFields(u)
		changed(before, after)
		if hash != "" {
			u.PasswordHash = hash
			before["password"], after["password"] = "(kept)", "(changed)"
		}
		if len(after) == 0 {
			return u, AuditRecord{}, nil
		}
		u.UpdatedAt, u.Version = now, u.Version+1
		if err := tx.PutUser(u); err != nil {
			return User{}, AuditRecord{}, err
		}
		return u, AuditRecord{Action: "user.update", Target: "user:" + u.Username, Before: before, After: after}, nil
	})
	return u, wrap("update user", err)
}

// set sets *dst to *v when v is not nil.
func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// changed keeps in before and after only the fields that differ.
func changed(before, after map[string]any) {
	for k, v := range after {
		if b, err1 := json.Marshal(v); err1 == nil {
			if a, err2 := json.Marshal(before[k]); err2 == nil && bytes.Equal(a, b) {
				delete(after, k)
				delete(before, k)
			}
		}
	}
}

// User returns a user by username; ENOTFOUND when there is none.
func (s *Service) User(ctx context.Context, username string) (User, error) {
	u, err := s.store.UserByUsername(ctx, username)
	return u, notFound(err, "user")
}

// Users yields the users in id order, streaming.
func (s *Service) Users(ctx context.Context, q PageQuery) iter.Seq2[User, error] {
	return s.store.ListUsers(ctx, q)
}

// UserByID returns a user by id; ENOTFOUND when there is none.
func (s *Service) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := s.store.UserByID(ctx, id)
	return u, notFound(err, "user")
}

// LicenseInput describes a license to create.
type LicenseInput struct {
	Key       string // "" generates a fresh key
	Owner     string // username of the owner; "" for none
	Seats     int
	ExpiresAt time.Time // zero for never
	Note      string
	Metadata  []byte // a JSON object; nil for {}
}

func checkMetadata(m []byte) error {
	if m == nil {
		return nil
	}
	if len(m) > 16<<10 {
		return Errorf(EINVALID, "metadata must be at most 16 KiB")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(m, &obj); err != nil || obj == nil {
		return Errorf(EINVALID, "metadata must be a JSON object")
	}
	return nil
}

// compactJSON returns a JSON value in its compact form.
func compactJSON(m []byte) []byte {
	var b bytes.Buffer
	if json.Compact(&b, m) != nil {
		return m
	}
	return b.Bytes()
}

// licenseFields is what the record shows of a license: its key only as a hint.
func licenseFields(l License) map[string]any {
	meta := json.RawMessage(l.Metadata)
	if len(meta) == 0 {
		meta = json.RawMessage("{}")
	}
	return map[string]any{"key": KeyHint(l.Key), "owner": l.Owner, "seats": l.Seats, "expiresAt": auditTime(l.ExpiresAt),
		"suspendedAt": auditTime(l.SuspendedAt), "revokedAt": auditTime(l.RevokedAt), "note": l.Note, "metadata": meta}
}

// ownerID resolves an owner's username in tx; "" is no owner.
func ownerID(tx Tx, username string) (int64, error) {
	if username == "" {
		return 0, nil
	}
	u, err := tx.LockUserByUsername(username)
	if errors.Is(err, ErrNotFound) {
		return 0, Errorf(ENOTFOUND, "user %q not found", username)
	}
	return u.ID, err
}

// CreateLicense creates a license. Errors: EINVALID for a bad key, seat count, note or metadata,
// ENOTFOUND for an unknown owner, ECONFLICT when the key exists already.
func (s *Service) CreateLicense(ctx context.Context, in LicenseInput) (License, error) {
	if in.Key == "" {
		in.Key = NewLicenseKey()
	} else if err := CheckKey(in.Key); err != nil {
		return License{}, Errorf(EINVALID, "license key %s", err.Error())
	}
	if in.Seats < 1 || in.Seats > MaxSeats {
		return License{}, Errorf(EINVALID, "seats must be between 1 and %d", MaxSeats)
	}
	if err := errors.Join(checkText("note", in.Note, 4096), checkMetadata(in.Metadata)); err != nil {
		return License{}, firstError(err)
	}
	l, err := mutate(s, ctx, func(tx Tx, now time.Time) (License, AuditRecord, error) {
		owner, err := ownerID(tx, in.Owner)
		if err != nil {
			return License{}, AuditRecord{}, err
		}
		l := License{Key: in.Key, Kind: KindKey, OwnerID: owner, Owner: in.Owner, Seats: in.Seats,
			ExpiresAt: in.ExpiresAt.UTC().Truncate(time.Millisecond), Note: in.Note, CreatedAt: now, UpdatedAt: now}
		if in.Metadata != nil {
			l.Metadata = compactJSON(in.Metadata)
		}
		l, err = tx.CreateLicense(l)
		if ErrorCode(err) == ECONFLICT {
			return License{}, AuditRecord{}, Errorf(ECONFLICT, "license key exists already")
		} else if err != nil {
			return License{}, AuditRecord{}, err
		}
		l.Owner = in.Owner
		return l, AuditRecord{Action: "license.create", Target: LicenseTarget(l.Key), After: licenseFields(l)}, nil
	})
	return l, wrap("create license", err)
}

// LicensePatch is a change of a license; nil fields stay as they are.
type LicensePatch struct {
	Seats     *int
	ExpiresAt *time.Time // the zero time clears the expiry
	Owner     *string    // "" clears the owner
	Note      *string
	Metadata  []byte // nil: unchanged; a JSON object replaces the metadata
	IfVersion int64  // when not 0, the change is refused (ErrChanged) unless the license is at this version
}

// UpdateLicense changes a license. Lowering its seats below the seats taken is allowed: live
// devices keep working, and new activations are refused until enough seats are free. Errors:
// ENOTFOUND, EINVALID for a bad field, EPRECONDITION (IfVersion); a revoked license cannot change.
func (s *Service) UpdateLicense(ctx context.Context, key string, p LicensePatch) (License, error) {
	if p.Seats != nil && (*p.Seats < 1 || *p.Seats > MaxSeats) {
		return License{}, Errorf(EINVALID, "seats must be between 1 and %d", MaxSeats)
	}
	if p.Note != nil {
		if err := checkText("note", *p.Note, 4096); err != nil {
			return License{}, err
		}
	}
	if err := checkMetadata(p.Metadata); err != nil {
		return License{}, err
	}
	return s.changeLicense(ctx, key, "license.update", p.IfVersion, func(tx Tx, l *License, now time.Time) error {
		if !l.RevokedAt.IsZero() {
			return Errorf(ECONFLICT, "license is revoked; it cannot change")
		}
		set(&l.Seats, p.Seats)
		if p.ExpiresAt != nil {
			l.ExpiresAt = p.ExpiresAt.UTC().Truncate(time.Millisecond)
		}
		if p.Owner != nil && *p.Owner != l.Owner {
			id, err := ownerID(tx, *p.Owner)
			if err != nil {
				return err
			}
			l.OwnerID, l.Owner = id, *p.Owner
		}
		set(&l.Note, p.Note)
		if p.Metadata != nil {
			l.Metadata = compactJSON(p.Metadata)
		}
		return nil
	})
}

// SuspendLicense suspends a license: its sessions stop validating (within CacheStaleness on every
// server) and it cannot be activated, until ResumeLicense. Suspending a suspended license changes
// nothing. Errors: ENOTFOUND, EPRECONDITION, ECONFLICT for a revoked license.
func (s *Service) SuspendLicense(ctx context.Context, key string, ifVersion int64) (License, error) {
	return s.changeLicense(ctx, key, "license.suspend", ifVersion, func(tx Tx, l *License, now time.Time) error {
		if !l.RevokedAt.IsZero() {
			return Errorf(ECONFLICT, "license is revoked; it cannot be suspended")
		}
		if l.SuspendedAt.IsZero() {
			l.SuspendedAt = now
		}
		return nil
	})
}

// ResumeLicense ends a license's suspension: its sessions validate again, without the devices
// doing anything. Errors as SuspendLicense.
func (s *Service) ResumeLicense(ctx context.Context, key string, ifVersion int64) (License, error) {
	return s.changeLicense(ctx, key, "license.resume", ifVersion, func(tx Tx, l *License, now time.Time) error {
		if !l.RevokedAt.IsZero() {
			return Errorf(ECONFLICT, "license is revoked; it cannot be resumed")
		}
		l.SuspendedAt = time.Time{}
		return nil
	})
}

// RevokeLicense revokes a license (or registered serial) for good: its sessions stop validating and
// it cannot be activated again. Revoking a revoked license changes nothing. ENOTFOUND for an
// unknown key, EPRECONDITION.
func (s *Service) RevokeLicense(ctx context.Context, key string, ifVersion int64) (License, error) {
	return s.changeLicense(ctx, key, "license.revoke", ifVersion, func(tx Tx, l *License, now time.Time) error {
		if l.RevokedAt.IsZero() {
			l.RevokedAt = now
		}
		return nil
	})
}

// changeLicense applies change to the license with key in one transaction and records it as
// action, with the fields it changed; a change that changes nothing records nothing and keeps the
// version. The change reaches every server's validate cache through the change log.
func (s *Service) changeLicense(ctx context.Context, key, action string, ifVersion int64,
	change func(tx Tx, l *License, now time.Time) error) (License, error) {
	l, err := mutate(s, ctx, func(tx Tx, now time.Time) (License, AuditRecord, error) {
		l, err := tx.LockLicenseByKey(key)
		if err != nil {
			return License{}, AuditRecord{}, notFound(err, "license")
		}
		if l.OwnerID != 0 {
			u, err := tx.UserByID(l.OwnerID)
			if err != nil {
				return License{}, AuditRecord{}, err
			}
			l.Owner = u.Username
		}
		if ifVersion != 0 && ifVersion != l.Version {
			return License{}, AuditRecord{}, ErrChanged
		}
		before := licenseFields(l)
		if err := change(tx, &l, now); err != nil {
			return License{}, AuditRecord{}, err
		}
		after := licenseFields(l)
		changed(before, after)
		if len(after) == 0 {
			return l, AuditRecord{}, nil
		}
		l.UpdatedAt, l.Version = now, l.Version+1
		if err := tx.PutLicense(l); err != nil {
			return License{}, AuditRecord{}, err
		}
		return l, AuditRecord{Action: action, Target: LicenseTarget(l.Key), Before: before, After: after}, nil
	})
	if err != nil {
		return License{}, wrap(strings.ReplaceAll(action, ".", " "), err)
	}
	s.live.changed(Change{LicenseID: l.ID})
	return l, nil
}

// RegisterSerialAdmin registers a serial number without a vendor account, as an operator does.
func (s *Service) RegisterSerialAdmin(ctx context.Context, in SerialInput) (Serial, error) {
	return s.registerSerial(ctx, 0, in)
}

// Serials yields the serial registrations, streaming.
func (s *Service) Serials(ctx context.Context, q PageQuery) iter.Seq2[Serial, error] {
	return s.store.ListSerials(ctx, q)
}

// RevokeSession revokes one session: it stops validating and frees its seat. It returns the session
// as it is now. EINVALID for a malformed id, ENOTFOUND for an unknown one; revoking a revoked
// session changes nothing.
func (s *Service) RevokeSession(ctx context.Context, id string) (SessionState, error) {
	sid, ok := ParseSessionID(id)
	if !ok {
		return SessionState{}, Errorf(EINVALID, "session id must be a UUID")
	}
	_, err := mutate(s, ctx, func(tx Tx, now time.Time) (Session, AuditRecord, error) {
		sess, err := tx.RevokeSession(sid, now)
		if err != nil {
			return Session{}, AuditRecord{}, notFound(err, "session")
		}
		if !sess.RevokedAt.IsZero() {
			return sess, AuditRecord{}, nil
		}
		return sess, AuditRecord{Action: "session.revoke", Target: "session:" + sid,
			Before: map[string]any{"revokedAt": nil}, After: map[string]any{"revokedAt": auditTime(now)}}, nil
	})
	if err != nil {
		return SessionState{}, wrap("revoke session", err)
	}
	s.live.changed(Change{SessionID: sid})
	return s.Session(ctx, sid)
}

// Session returns a session with its license; ENOTFOUND when there is none, EINVALID for a
// malformed id.
func (s *Service) Session(ctx context.Context, id string) (SessionState, error) {
	sid, ok := ParseSessionID(id)
	if !ok {
		return SessionState{}, Errorf(EINVALID, "session id must be a UUID")
	}
	st, err := s.store.Session(ctx, sid)
	return st, notFound(err, "session")
}

// License returns a license by key, with its owner's username; ENOTFOUND when there is none.
func (s *Service) License(ctx context.Context, key string) (License, error) {
	l, err := s.store.LicenseByKey(ctx, key)
	return l, notFound(err, "license")
}

// LicenseByKey is License.
func (s *Service) LicenseByKey(ctx context.Context, key string) (License, error) {
	return s.License(ctx, key)
}

// Licenses yields the licenses q selects, in id order, streaming from the store. q.Now defaults
// to the clock.
func (s *Service) Licenses(ctx context.Context, q LicenseQuery) iter.Seq2[License, error] {
	if q.Now.IsZero() {
		q.Now = s.clock.Now()
	}
	return s.store.ListLicenses(ctx, q)
}

// SessionFilter selects sessions for Sessions.
type SessionFilter struct {
	License string // a license key or serial; "" for every license
	After   SessionCursor
	Limit   int   // 0: all
	Live    *bool // only live (true) or not live (false) sessions; nil for all
}

// Sessions yields the sessions f selects, streaming from the store: of one license in issue order,
// or of all, license by license. ENOTFOUND for an unknown license.
func (s *Service) Sessions(ctx context.Context, f SessionFilter) (iter.Seq2[SessionState, error], error) {
	now := s.clock.Now()
	q := SessionQuery{After: f.After, Limit: f.Limit, Live: f.Live, Now: now}
	if s.live.ttl > 0 {
		q.IdleBefore = now.Add(-s.live.ttl)
	}
	if f.License != "" {
		lic, err := s.store.LicenseByKey(ctx, f.License)
		if err != nil {
			return nil, notFound(err, "license")
		}
		q.LicenseID = lic.ID
	}
	return s.store.ListSessions(ctx, q), nil
}

// SessionLive reports whether a listed session is live now, for display.
func (s *Service) SessionLive(st SessionState) bool {
	return s.live.isLive(st, s.clock.Now())
}

// Now is the service's clock: for callers that show times relative to the rules' (status, live).
func (s *Service) Now() time.Time { return s.clock.Now() }

// Stats counts what an overview shows.
func (s *Service) Stats(ctx context.Context) (Stats, error) {
	st, err := s.store.Stats(ctx, s.clock.Now())
	return st, wrap("stats", err)
}

// CheckSeats recounts the seats every license's sessions hold and compares them with the seat
// bookkeeping. With repair it does so in one write transaction and sets every mismatching
// license's bookkeeping to the recount (recorded as "seats.repair"); the mismatches found are
// returned either way.
func (s *Service) CheckSeats(ctx context.Context, repair bool) (SeatCheck, error) {
	if !repair {
		c, err := s.store.SeatMismatches(ctx)
		return c, wrap("check seats", err)
	}
	c, err := mutate(s, ctx, func(tx Tx, now time.Time) (SeatCheck, AuditRecord, error) {
		c, err := tx.SeatMismatches()
		if err != nil || len(c.Mismatches) == 0 {
			return c, AuditRecord{}, err
		}
		before, after := map[string]any{}, map[string]any{}
		for _, m := range c.Mismatches {
			if err := tx.SetTakenSeats(m.LicenseID, m.Held); err != nil {
				return SeatCheck{}, AuditRecord{}, err
			}
			before[LicenseTarget(m.Key)], after[LicenseTarget(m.Key)] = m.Taken, m.Held
		}
		return c, AuditRecord{Action: "seats.repair", Target: "seats", Before: before, After: after}, nil
	})
	return c, wrap("repair seats", err)
}

// firstError returns the first error errors.Join joined, or err.
func firstError(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 0 {
		return j.Unwrap()[0]
	}
	return err
}
