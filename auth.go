package openconsole

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// LoginResult is a successful login: the user and, unless none was asked for, a JWT.
type LoginResult struct {
	User    User
	Token   string // "" when no token was issued
	Expires int64  // token expiry, Unix seconds
}

// LoginInput is a login attempt.
type LoginInput struct {
	Username, Password string
	IssueJWT           bool
	ClientAddr         string // for the abuse limits
}

// Login checks a username and password and issues a JWT when IssueJWT is set. An unknown user and a
// wrong password give the same ErrBadCredentials, after the same amount of work. Too many failures
// for the username or from the address give a *ThrottledError (ETHROTTLED) without a check; so many
// password checks under way that this one cannot start soon gives ErrBusy (EUNAVAILABLE).
//
// Each attempt takes a token from both buckets before the password is checked and gives them back
// unless it failed, so concurrent attempts are bounded by the buckets too: of any number of
// simultaneous guesses for one user, at most the burst is checked.
func (s *Service) Login(ctx context.Context, in LoginInput) (LoginResult, error) {
	now := s.clock.Now()
	user := in.Username
	if !validUsername(user) {
		user = "" // no such user exists; don't let arbitrary strings take memory
	}
	addr := s.limits.addr(in.ClientAddr)
	if wait := s.limits.loginUser.take(user, now); wait > 0 {
		s.counters.Throttled[LimitLoginPerUser].Add(1)
		return LoginResult{}, throttled(wait)
	}
	if wait := s.limits.loginAddr.take(addr, now); wait > 0 {
		s.limits.loginUser.refund(user, now)
		s.counters.Throttled[LimitLoginPerAddr].Add(1)
		return LoginResult{}, throttled(wait)
	}
	res, err := s.login(ctx, in.Username, in.Password, in.IssueJWT)
	if err != ErrBadCredentials {
		s.limits.loginUser.refund(user, now)
		s.limits.loginAddr.refund(addr, now)
	}
	return res, err
}

func (s *Service) login(ctx context.Context, username, password string, issueJWT bool) (LoginResult, error) {
	var u User
	var err error = ErrNotFound
	if validUsername(username) { // no user has another name, and a NUL cannot even be looked up
		u, err = s.store.UserByUsername(ctx, username)
	}
	if errors.Is(err, ErrNotFound) {
		if _, err := s.checkPassword(ctx, dummyHash, password); err != nil {
			return LoginResult{}, err
		}
		return LoginResult{}, ErrBadCredentials
	} else if err != nil {
		return LoginResult{}, fmt.Errorf("login: %w", err)
	}
	ok, err := s.checkPassword(ctx, u.PasswordHash, password)
	if err != nil {
		return LoginResult{}, err
	}
	if !ok {
		return LoginResult{}, ErrBadCredentials
	}
	if u.Disabled {
		return LoginResult{}, ErrUserDisabled
	}
	res := LoginResult{User: u}
	if issueJWT {
		res.Token, res.Expires = s.IssueToken(u.ID)
	}
	return res, nil
}

// ErrBusy refuses a login when so many password checks are under way that it cannot start within
// PasswordQueueWait (or the queue of waiting checks is full): answered 503 with Retry-After.
var ErrBusy = &Error{Code: EUNAVAILABLE, Message: "Too many logins at once; try again shortly"}

// PasswordQueueWait is how long a password check waits for a free slot before its login is
// refused with ErrBusy.
const PasswordQueueWait = time.Second

// passwordQueuePerSlot is how many checks may wait per slot; beyond them a login is refused at
// once.
const passwordQueuePerSlot = 8

// hashGate bounds the password checks (argon2id, PasswordMemory each) running at once, so that a
// flood of logins cannot take the memory of the host: at most cap(slots) run, at most cap(queue)
// wait for a slot (each at most PasswordQueueWait), and any other is refused.
type hashGate struct {
	slots chan struct{}
	queue chan struct{}
}

func newHashGate(n int) *hashGate {
	return &hashGate{slots: make(chan struct{}, n), queue: make(chan struct{}, n*passwordQueuePerSlot)}
}

func (g *hashGate) acquire(ctx context.Context) error {
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case g.queue <- struct{}{}:
	default:
		return ErrBusy
	}
	defer func() { <-g.queue }()
	t := time.NewTimer(PasswordQueueWait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-t.C:
		return ErrBusy
	case <-ctx.Done():
		return ErrBusy
	}
}

func (g *hashGate) release() { <-g.slots }

// checkPassword is CheckPassword within the bound on concurrent checks; ErrBusy when no slot
// became free in time.
func (s *Service) checkPassword(ctx context.Context, hash, password string) (bool, error) {
	if err := s.hashes.acquire(ctx); err != nil {
		return false, err
	}
	defer s.hashes.release()
	return checkPasswordFunc(hash, password), nil
}

// checkPasswordFunc is CheckPassword; tests replace it to watch the checks.
var checkPasswordFunc = CheckPassword

// IssueToken signs a JWT for a user with the current key and returns it with its expiry in Unix
// seconds.
func (s *Service) IssueToken(userID int64) (string, int64) {
	now := s.clock.Now()
	exp := now.Add(s.opts.TokenTTL).Unix()
	c := Claims{Issuer: TokenIssuer, IssuedAt: now.Unix(), Expires: exp, ID: NewSessionID(), UserID: userID}
	return signToken(s.keys.Load().current, c), exp
}

// AuthenticateBearer authenticates the user of an Authorization header value (present says whether
// the request had one at all): ErrBearerRequired when it is no bearer token, else as Authenticate.
func (s *Service) AuthenticateBearer(ctx context.Context, header string, present bool) (User, Claims, error) {
	token, err := BearerToken(header, present)
	if err != nil {
		return User{}, Claims{}, ErrBearerRequired
	}
	return s.Authenticate(ctx, token)
}

// ErrUserDisabled refuses the login of a disabled user (who gave the right password).
var ErrUserDisabled = &Error{Code: EFORBIDDEN, Message: "This account is disabled"}

// Authenticate verifies a console JWT and returns its claims and its user. A token that is malformed,
// expired, signed by an unknown key or names a user that no longer exists or is disabled gives
// ErrInvalidToken.
func (s *Service) Authenticate(ctx context.Context, token string) (User, Claims, error) {
	c, err := s.parseToken(ctx, token)
	if err != nil {
		return User{}, Claims{}, err
	}
	u, err := s.store.UserByID(ctx, c.UserID)
	if errors.Is(err, ErrNotFound) || (err == nil && u.Disabled) {
		return User{}, Claims{}, ErrInvalidToken
	} else if err != nil {
		return User{}, Claims{}, fmt.Errorf("authenticate: %w", err)
	}
	return u, c, nil
}

func (s *Service) parseToken(ctx context.Context, token string) (Claims, error) {
	now := s.clock.Now()
	lookup := func(kid string) (SigningKey, bool) {
		k, ok := s.keys.Load().byID[kid]
		if !ok && s.loadKeys(ctx, s.clock.elapsed(now)) == nil {
			// Another process may have added the key since we loaded ours.
			k, ok = s.keys.Load().byID[kid]
		}
		return k, ok
	}
	return parseToken(token, lookup, now)
}

// KeyRefreshInterval is how often a server re-reads the signing keys, so that it signs with a key
// rotated in by another process (and stops accepting keys dropped by a rotation).
const KeyRefreshInterval = time.Minute

// RotateSigningKey adds a new JWT signing key, with which every server signs from its next key
// refresh on. Tokens signed with older keys keep verifying until they expire, unless dropOld is set:
// then every other key is deleted and their tokens stop verifying (after a compromise; everybody
// must log in again). It returns the new key's id.
func (s *Service) RotateSigningKey(ctx context.Context, dropOld bool) (string, error) {
	k := NewSigningKey(s.clock.Now())
	_, err := mutate(s, ctx, func(tx Tx, now time.Time) (struct{}, AuditRecord, error) {
		if err := tx.AddSigningKey(k); err != nil {
			return struct{}{}, AuditRecord{}, err
		}
		rec := AuditRecord{Action: "signing-key.rotate", Target: "signing-key:" + k.ID, After: map[string]any{"dropOld": dropOld}}
		if dropOld {
			return struct{}{}, rec, tx.DeleteSigningKeysExcept(k.ID)
		}
		return struct{}{}, rec, nil
	})
	if err != nil {
		return "", fmt.Errorf("rotate signing key: %w", err)
	}
	if err := s.loadKeys(ctx, s.clock.elapsed(s.clock.Now())); err != nil {
		return "", err
	}
	return k.ID, nil
}

// loadKeys reads the signing keys from the store, creating the first one if there is none. It does
// nothing when another call read them after since (a clock.elapsed reading): concurrent reloads
// (such as many requests with a token of a key another process just added) share one read. Pass
// the current reading to always read.
func (s *Service) loadKeys(ctx context.Context, since time.Duration) error {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	if s.keysLoaded > since {
		return nil
	}
	s.keysLoaded = s.clock.elapsed(s.clock.Now())
	keys, err := s.store.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	if len(keys) == 0 && s.opts.ReadOnly {
		// A read-only service stores no key; a random one kept in memory signs whatever it would
		// sign, and verifies nowhere else.
		keys = []SigningKey{NewSigningKey(s.clock.Now())}
	}
	if len(keys) == 0 {
		k := NewSigningKey(s.clock.Now())
		if err := s.store.Update(ctx, func(tx Tx) error { return tx.AddSigningKey(k) }); err != nil {
			return fmt.Errorf("create signing key: %w", err)
		}
		if keys, err = s.store.SigningKeys(ctx); err != nil {
			return fmt.Errorf("load signing keys: %w", err)
		}
	}
	if len(keys) == 0 {
		return errors.New("load signing keys: none stored")
	}
	r := &keyring{current: keys[len(keys)-1], byID: make(map[string]SigningKey, len(keys))}
	for _, k := range keys {
		r.byID[k.ID] = k
	}
	s.keys.Store(r)
	return nil
}

// RegisterSerial registers a device serial number on behalf of a vendor (wire contract §2.5). The
// serial becomes a license of kind serial with one seat. Errors: EFORBIDDEN when the user is no
// vendor, EUNPROCESSABLE for a bad field, ECONFLICT when the serial number (or a license key equal
// to it) exists already.
func (s *Service) RegisterSerial(ctx context.Context, vendor User, in SerialInput) (Serial, error) {
	if err := RequireVendor(vendor); err != nil {
		return Serial{}, err
	}
	if ActorFrom(ctx).Kind == ActorSystem {
		ctx = WithActor(ctx, Actor{Kind: ActorConsole, Name: vendor.Username})
	}
	return s.registerSerial(ctx, vendor.ID, in)
}

func (s *Service) registerSerial(ctx context.Context, by int64, in SerialInput) (Serial, error) {
	if err := in.check(); err != nil {
		return Serial{}, err
	}
	out, err := mutate(s, ctx, func(tx Tx, now time.Time) (Serial, AuditRecord, error) {
		lic, err := tx.CreateLicense(License{Key: in.SerialNumber, Kind: KindSerial, Seats: 1, CreatedAt: now})
		if ErrorCode(err) == ECONFLICT {
			return Serial{}, AuditRecord{}, Errorf(ECONFLICT, "Serial number %s is already registered", in.SerialNumber)
		} else if err != nil {
			return Serial{}, AuditRecord{}, err
		}
		out := Serial{
			LicenseID: lic.ID, SerialNumber: in.SerialNumber, Model: in.Model,
			ManufacturerName: in.ManufacturerName, ManufacturerID: in.ManufacturerID,
			ManufactureDate: in.ManufactureDate, RegisteredBy: by, Status: SerialRegistered, CreatedAt: now,
		}
		return out, AuditRecord{Action: "serial.register", Target: LicenseTarget(in.SerialNumber),
			After: map[string]any{"serial": KeyHint(in.SerialNumber), "model": in.Model, "manufacturer": in.ManufacturerName,
				"manufacturerId": in.ManufacturerID, "manufactureDate": in.ManufactureDate}}, tx.CreateSerial(out)
	})
	if err != nil {
		return Serial{}, wrap("register serial", err)
	}
	return out, nil
}

// PasswordQueue returns how many password checks are waiting for a free slot now (for metrics).
func (s *Service) PasswordQueue() int { return len(s.hashes.queue) }
