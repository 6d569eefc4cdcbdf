package openconsole_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"openconsole"
	"openconsole/sqlstore"
	"openconsole/sqlstore/sqlstoretest"
)

var ctx = context.Background()

// fakeClock is a settable clock for the service.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newService(t *testing.T, dsn string, opts openconsole.Options) *openconsole.Service {
	t.Helper()
	st, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := openconsole.NewService(ctx, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(); st.Close() })
	return svc
}

func mustLicense(t *testing.T, svc *openconsole.Service, in openconsole.LicenseInput) openconsole.License {
	t.Helper()
	l, err := svc.CreateLicense(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func activate(t *testing.T, svc *openconsole.Service, key, sid string) (openconsole.Activation, error) {
	t.Helper()
	return svc.Activate(ctx, openconsole.ActivateInput{LicenseKey: key, SessionID: sid})
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if err != want {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

func valid(t *testing.T, svc *openconsole.Service, sid string) bool {
	t.Helper()
	_, ok, err := svc.Validate(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestIdleTimeout: a session idle for longer than the TTL stops validating and frees its seat;
// validate and re-activation count as activity, even before they are written to the store.
func TestIdleTimeout(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		clock := &fakeClock{t: time.Now()}
		svc := newService(t, dsn, openconsole.Options{SessionTTL: time.Minute, Now: clock.Now, TouchInterval: time.Hour})
		lic := mustLicense(t, svc, openconsole.LicenseInput{Seats: 1})
		a, err := activate(t, svc, lic.Key, "")
		if err != nil || !a.Created {
			t.Fatalf("activate: %+v, %v", a, err)
		}
		clock.Add(50 * time.Second)
		if !valid(t, svc, a.Session.ID) {
			t.Fatal("session invalid within its TTL")
		}
		clock.Add(50 * time.Second) // 100s after activation, 50s after the last validate
		if !valid(t, svc, a.Session.ID) {
			t.Fatal("validate did not count as activity")
		}
		_, err = activate(t, svc, lic.Key, "")
		wantErr(t, err, openconsole.ErrMaxActivations)

		clock.Add(61 * time.Second)
		if valid(t, svc, a.Session.ID) {
			t.Fatal("idle session still valid")
		}
		// Its seat is free again; the same device gets a new session.
		b, err := activate(t, svc, lic.Key, a.Session.ID)
		if err != nil || !b.Created || b.Session.ID == a.Session.ID || b.Session.Timestamp <= a.Session.Timestamp {
			t.Fatalf("re-activation after expiry = %+v, %v; want a new, later session", b, err)
		}
	})
}

func TestRevocations(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		svc := newService(t, dsn, openconsole.Options{})
		lic := mustLicense(t, svc, openconsole.LicenseInput{Seats: 1})
		a, _ := activate(t, svc, lic.Key, "")
		if _, err := svc.RevokeSession(ctx, a.Session.ID); err != nil {
			t.Fatal(err)
		}
		if valid(t, svc, a.Session.ID) {
			t.Fatal("revoked session valid")
		}
		b, err := activate(t, svc, lic.Key, a.Session.ID)
		if err != nil || !b.Created {
			t.Fatalf("activate after session revocation = %+v, %v; want a new session", b, err)
		}
		if _, err := svc.RevokeSession(ctx, openconsole.NewSessionID()); openconsole.ErrorCode(err) != openconsole.ENOTFOUND {
			t.Errorf("revoke unknown session: %v, want ENOTFOUND", err)
		}
		if _, err := svc.RevokeSession(ctx, "nope"); openconsole.ErrorCode(err) != openconsole.EINVALID {
			t.Errorf("revoke malformed id: %v, want EINVALID", err)
		}

		if _, err := svc.RevokeLicense(ctx, lic.Key, 0); err != nil {
			t.Fatal(err)
		}
		if valid(t, svc, b.Session.ID) {
			t.Fatal("session of a revoked license valid")
		}
		_, err = activate(t, svc, lic.Key, b.Session.ID)
		wantErr(t, err, openconsole.ErrLicenseInvalid)
		if _, err := svc.RevokeLicense(ctx, "NOPE", 0); openconsole.ErrorCode(err) != openconsole.ENOTFOUND {
			t.Errorf("revoke unknown license: %v, want ENOTFOUND", err)
		}
	})
}

func TestLicenseExpiry(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		clock := &fakeClock{t: time.Now()}
		svc := newService(t, dsn, openconsole.Options{Now: clock.Now})
		lic := mustLicense(t, svc, openconsole.LicenseInput{Seats: 2, ExpiresAt: clock.Now().Add(time.Hour)})
		a, err := activate(t, svc, lic.Key, "")
		if err != nil {
			t.Fatal(err)
		}
		clock.Add(time.Hour)
		if valid(t, svc, a.Session.ID) {
			t.Fatal("session of an expired license valid")
		}
		_, err = activate(t, svc, lic.Key, "")
		wantErr(t, err, openconsole.ErrLicenseInvalid)
		_, err = activate(t, svc, "UNKNOWN", "")
		wantErr(t, err, openconsole.ErrLicenseNotFound)
	})
}

func TestBearerActivation(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		svc := newService(t, dsn, openconsole.Options{})
		u, err := svc.CreateUser(ctx, openconsole.UserInput{Username: "u", Password: "p"})
		if err != nil {
			t.Fatal(err)
		}
		revoked := mustLicense(t, svc, openconsole.LicenseInput{Owner: "u", Seats: 5})
		if _, err := svc.RevokeLicense(ctx, revoked.Key, 0); err != nil {
			t.Fatal(err)
		}
		first := mustLicense(t, svc, openconsole.LicenseInput{Owner: "u", Seats: 1})
		second := mustLicense(t, svc, openconsole.LicenseInput{Owner: "u", Seats: 1})
		tok, _ := svc.IssueToken(u.ID)
		bearer := func(sid string) (openconsole.Activation, error) {
			return svc.Activate(ctx, openconsole.ActivateInput{Authorization: "Bearer " + tok, HasAuth: true, SessionID: sid})
		}
		a, err := bearer("")
		if err != nil || a.LicenseKey != first.Key || !a.Created {
			t.Fatalf("first bearer activation = %+v, %v; want a session on %s", a, err, first.Key)
		}
		b, err := bearer("")
		if err != nil || b.LicenseKey != second.Key {
			t.Fatalf("second bearer activation = %+v, %v; want a session on %s", b, err, second.Key)
		}
		_, err = bearer("")
		wantErr(t, err, openconsole.ErrNoRemainingSeats)
		c, err := bearer(b.Session.ID)
		if err != nil || c.Created || c.Session != b.Session || c.LicenseKey != second.Key {
			t.Fatalf("bearer activation with a live session = %+v, %v; want 204 with %+v", c, err, b.Session)
		}

		for name, in := range map[string]openconsole.ActivateInput{
			"missing":        {},
			"empty":          {HasAuth: true},
			"empty bearer":   {HasAuth: true, Authorization: "Bearer "},
			"basic":          {HasAuth: true, Authorization: "Basic abc"},
			"garbage bearer": {HasAuth: true, Authorization: "Bearer garbage"},
		} {
			_, err := svc.Activate(ctx, in)
			want := map[string]error{"missing": openconsole.ErrMissingAuthorization, "garbage bearer": openconsole.ErrTokenRefused}[name]
			if want == nil {
				want = openconsole.ErrInvalidAuthorization
			}
			if err != want {
				t.Errorf("%s: err = %v, want %v", name, err, want)
			}
		}
	})
}

func TestSerialRegistrationAndActivation(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		svc := newService(t, dsn, openconsole.Options{})
		vendor, _ := svc.CreateUser(ctx, openconsole.UserInput{Username: "m", Password: "p", Vendor: true})
		plain, _ := svc.CreateUser(ctx, openconsole.UserInput{Username: "u", Password: "p"})
		in := openconsole.SerialInput{SerialNumber: "SN1", Model: "IPC", ManufacturerName: "X", ManufacturerID: 791, ManufactureDate: "2025-01-01"}
		if _, err := svc.RegisterSerial(ctx, plain, in); openconsole.ErrorCode(err) != openconsole.EFORBIDDEN {
			t.Errorf("non-vendor: err = %v, want EFORBIDDEN", err)
		}
		sr, err := svc.RegisterSerial(ctx, vendor, in)
		if err != nil || sr.Status != openconsole.SerialRegistered {
			t.Fatalf("register = %+v, %v", sr, err)
		}
		if _, err := svc.RegisterSerial(ctx, vendor, in); openconsole.ErrorCode(err) != openconsole.ECONFLICT {
			t.Errorf("duplicate: err = %v, want ECONFLICT", err)
		}
		for name, bad := range map[string]openconsole.SerialInput{
			"date":   {SerialNumber: "SN2", Model: "m", ManufacturerName: "X", ManufactureDate: "01.01.2025"},
			"serial": {SerialNumber: "SN 2", Model: "m", ManufacturerName: "X", ManufactureDate: "2025-01-01"},
			"model":  {SerialNumber: "SN2", ManufacturerName: "X", ManufactureDate: "2025-01-01"},
		} {
			if _, err := svc.RegisterSerial(ctx, vendor, bad); openconsole.ErrorCode(err) != openconsole.EUNPROCESSABLE {
				t.Errorf("bad %s: err = %v, want EUNPROCESSABLE", name, err)
			}
		}
		a, err := activate(t, svc, "SN1", "")
		if err != nil || a.LicenseKey != "SN1" || !a.Created {
			t.Fatalf("activate serial = %+v, %v", a, err)
		}
		lic, _ := svc.LicenseByKey(ctx, "SN1")
		if lic.Kind != openconsole.KindSerial || lic.Seats != 1 {
			t.Errorf("serial license = %+v, want kind serial with one seat", lic)
		}
		_, err = activate(t, svc, "SN1", "")
		wantErr(t, err, openconsole.ErrMaxActivations)
	})
}

// TestTokensAcrossServices: a token signed by one service verifies on another on the same database,
// including one signed with a key the other has not loaded yet (a key added after it started).
func TestTokensAcrossServices(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		a := newService(t, dsn, openconsole.Options{})
		u, _ := a.CreateUser(ctx, openconsole.UserInput{Username: "u", Password: "pw"})
		res, err := a.Login(ctx, openconsole.LoginInput{Username: "u", Password: "pw", IssueJWT: true})
		if err != nil {
			t.Fatal(err)
		}
		b := newService(t, dsn, openconsole.Options{})
		if got, _, err := b.Authenticate(ctx, res.Token); err != nil || got.ID != u.ID {
			t.Fatalf("token from another service: %+v, %v", got, err)
		}
		if _, err := a.Login(ctx, openconsole.LoginInput{Username: "u", Password: "wrong", IssueJWT: true}); err != openconsole.ErrBadCredentials {
			t.Errorf("wrong password: %v", err)
		}
		if _, err := a.Login(ctx, openconsole.LoginInput{Username: "nobody", Password: "pw", IssueJWT: true}); err != openconsole.ErrBadCredentials {
			t.Errorf("unknown user: %v", err)
		}
		if r, err := a.Login(ctx, openconsole.LoginInput{Username: "u", Password: "pw"}); err != nil || r.Token != "" {
			t.Errorf("login without a JWT = %+v, %v", r, err)
		}
	})
}

// TestSigningKeyRotation: after a rotation by another process, tokens signed with the old key keep
// verifying everywhere, new tokens use the new key and verify everywhere; a rotation that drops the
// old keys makes their tokens fail.
func TestSigningKeyRotation(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		a := newService(t, dsn, openconsole.Options{})
		u, _ := a.CreateUser(ctx, openconsole.UserInput{Username: "u", Password: "pw"})
		old, _ := a.IssueToken(u.ID)
		admin := newService(t, dsn, openconsole.Options{})
		kid, err := admin.RotateSigningKey(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		fresh, _ := admin.IssueToken(u.ID)
		if kidOf(t, fresh) != kid || kidOf(t, old) == kid {
			t.Fatalf("new token kid %q, old token kid %q, rotated key %q", kidOf(t, fresh), kidOf(t, old), kid)
		}
		for name, svc := range map[string]*openconsole.Service{"a": a, "admin": admin} {
			for tname, tok := range map[string]string{"old": old, "fresh": fresh} {
				if _, _, err := svc.Authenticate(ctx, tok); err != nil {
					t.Errorf("%s token on %s: %v", tname, name, err)
				}
			}
		}
		if _, err := admin.RotateSigningKey(ctx, true); err != nil {
			t.Fatal(err)
		}
		for tname, tok := range map[string]string{"old": old, "fresh": fresh} {
			if _, _, err := admin.Authenticate(ctx, tok); err != openconsole.ErrInvalidToken {
				t.Errorf("%s token after the old keys were dropped: err = %v, want ErrInvalidToken", tname, err)
			}
		}
		newest, _ := admin.IssueToken(u.ID)
		if _, _, err := a.Authenticate(ctx, newest); err != nil {
			t.Errorf("token of the newest key on another server: %v", err)
		}
	})
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	h, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}

// TestSigningKeyRotationFromSlowClock: a rotation run on a host whose clock is an hour behind still
// makes the new key the one that signs, there and on every other server (issue 10, finding 7):
// keys are ordered by insertion, not by the rotating host's clock.
func TestSigningKeyRotationFromSlowClock(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		a := newService(t, dsn, openconsole.Options{})
		u, _ := a.CreateUser(ctx, openconsole.UserInput{Username: "u", Password: "pw"})
		behind := &fakeClock{t: time.Now().Add(-time.Hour)}
		admin := newService(t, dsn, openconsole.Options{Now: behind.Now})
		kid, err := admin.RotateSigningKey(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		fresh, _ := admin.IssueToken(u.ID)
		if got := kidOf(t, fresh); got != kid {
			t.Errorf("the rotating server signs with key %q, want the new key %q", got, kid)
		}
		// a reads the keys again when it meets a kid it does not know; from then on it signs
		// with the newest.
		if _, _, err := a.Authenticate(ctx, fresh); err != nil {
			t.Fatalf("token of the new key on another server: %v", err)
		}
		if tok, _ := a.IssueToken(u.ID); kidOf(t, tok) != kid {
			t.Errorf("another server signs with key %q after the rotation, want %q", kidOf(t, tok), kid)
		}
		// A second rotation from the slow host again takes over.
		kid2, err := admin.RotateSigningKey(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if tok, _ := admin.IssueToken(u.ID); kidOf(t, tok) != kid2 {
			t.Errorf("after a second rotation the server signs with %q, want %q", kidOf(t, tok), kid2)
		}
	})
}

// TestSuspensionIsCached: a suspended license's session stays invalid when it is answered from the
// validate cache, not only on the read that refilled it after the suspension.
func TestSuspensionIsCached(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		svc := newService(t, dsn, openconsole.Options{TouchInterval: time.Hour})
		lic := mustLicense(t, svc, openconsole.LicenseInput{Seats: 1})
		a, err := activate(t, svc, lic.Key, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.SuspendLicense(ctx, lic.Key, 0); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			if valid(t, svc, a.Session.ID) {
				t.Fatalf("validate %d after the suspension: valid", i)
			}
		}
		if _, err := svc.ResumeLicense(ctx, lic.Key, 0); err != nil {
			t.Fatal(err)
		}
		if !valid(t, svc, a.Session.ID) {
			t.Fatal("invalid after the resumption")
		}
	})
}
