package client

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"openconsole/client/offline"
)

// fakeClock is a device clock the test moves: wall clock, uptime and boot id separately.
type fakeClock struct {
	wall time.Time
	up   time.Duration
	boot string
}

func (c *fakeClock) Now() time.Time                 { return c.wall }
func (c *fakeClock) Uptime() (time.Duration, error) { return c.up, nil }
func (c *fakeClock) BootID() string                 { return c.boot }

// advance moves real time forward: wall clock and uptime together.
func (c *fakeClock) advance(d time.Duration) { c.wall = c.wall.Add(d); c.up += d }

// reboot starts a new boot with uptime 0 and the wall clock at wall.
func (c *fakeClock) reboot(wall time.Time, id string) { c.wall, c.up, c.boot = wall, 0, id }

var day = 24 * time.Hour
var issuedAt = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// console is the issuing side as the tests need it: a signing key and its pin.
type console struct {
	signer note.Signer
	pin    string
}

func newConsole(t *testing.T, name string) *console {
	t.Helper()
	skey, vkey, err := offline.GenerateSigningKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &console{signer: s, pin: vkey}
}

// issue answers a request with a certificate valid [issued-1h, issued+ttl), counter n.
func (c *console) issue(t *testing.T, req []byte, n uint64, issued time.Time, ttl time.Duration) []byte {
	t.Helper()
	r, err := offline.ParseRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := offline.IssueCertificate(&offline.Certificate{License: r.License, LicenseHint: "AA42", DeviceKey: r.DeviceKey,
		Nonce: r.Nonce, Counter: n, Issued: issued, NotBefore: issued.Add(-time.Hour), NotAfter: issued.Add(ttl),
		SessionID: s1, SessionTimestamp: 1724323729123}, c.signer)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func newDevice(t *testing.T, clk *fakeClock) *Device {
	t.Helper()
	st, err := OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &Device{State: st, Clock: clk}
}

func wantRule(t *testing.T, err error, rule string) {
	t.Helper()
	var oe *OfflineError
	if !errors.As(err, &oe) || oe.Rule != rule || !errors.Is(err, ErrOffline) {
		t.Errorf("err = %v, want the %q refusal", err, rule)
	}
}

func mustValid(t *testing.T, d *Device, want bool) *OfflineStatus {
	t.Helper()
	s, err := d.Status()
	if err != nil {
		t.Fatal(err)
	}
	if s.Valid != want {
		t.Errorf("valid = %v at trusted time %v (%s), want %v", s.Valid, s.TrustedTime, s.Reason, want)
	}
	return s
}

func TestOfflineRoundTrip(t *testing.T) {
	clk := &fakeClock{wall: issuedAt, up: time.Hour, boot: "b1"}
	d := newDevice(t, clk)
	con := newConsole(t, "console.example")
	req, err := d.Request(l1)
	if err != nil {
		t.Fatal(err)
	}
	if len(req) >= 600 {
		t.Errorf("request %d bytes", len(req))
	}
	r, _ := offline.ParseRequest(req)
	if r.License != offline.LicenseHash(l1) || r.Counter != 0 {
		t.Errorf("request %+v", r)
	}
	c, err := d.Install(con.issue(t, req, 1, issuedAt, 90*day), con.pin)
	if err != nil {
		t.Fatal(err)
	}
	s := mustValid(t, d, true)
	if s.NotAfter != c.NotAfter || s.LicenseHint != "AA42" || s.Counter != 1 {
		t.Errorf("status %+v", s)
	}
	// Installing stores the license key and adopts the certificate's session, for going online.
	if k, _ := d.State.License(); k != l1 {
		t.Errorf(".license = %q", k)
	}
	if sess, _ := d.State.Session(); sess.ID != s1 || sess.Timestamp != 1724323729123 {
		t.Errorf(".session_id = %+v", sess)
	}
	// The device key file is private.
	fi, err := os.Stat(filepath.Join(d.State.Dir, DeviceKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("device key mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	// A new process on the same state (a restart) sees the same.
	d2 := &Device{State: &State{Dir: d.State.Dir}, Clock: clk}
	mustValid(t, d2, true)
	// A request after install carries the counter installed.
	req2, _ := d.Request(l1)
	if r2, _ := offline.ParseRequest(req2); r2.Counter != 1 || r2.Nonce == r.Nonce {
		t.Errorf("second request: counter %d (want 1), fresh nonce %v", r2.Counter, r2.Nonce != r.Nonce)
	}
}

func TestOfflineInstallRefusals(t *testing.T) {
	clk := &fakeClock{wall: issuedAt, up: time.Hour, boot: "b1"}
	con := newConsole(t, "console.example")

	t.Run("one byte changed", func(t *testing.T) {
		d := newDevice(t, clk)
		req, _ := d.Request(l1)
		cert := con.issue(t, req, 1, issuedAt, 90*day)
		for i := range cert {
			bad := append([]byte(nil), cert...)
			bad[i] ^= 0x04
			if _, err := d.Install(bad, con.pin); err == nil {
				t.Fatalf("byte %d changed: installed", i)
			}
		}
		mustValid(t, d, false)
	})
	t.Run("unpinned key", func(t *testing.T) {
		d := newDevice(t, clk)
		req, _ := d.Request(l1)
		other := newConsole(t, "console.example") // same name, another key
		_, err := d.Install(other.issue(t, req, 1, issuedAt, 90*day), con.pin)
		wantRule(t, err, "signature")
		_, err = d.Install(con.issue(t, req, 1, issuedAt, 90*day), "not a key")
		wantRule(t, err, "pin")
	})
	t.Run("second device", func(t *testing.T) {
		d1, d2 := newDevice(t, clk), newDevice(t, clk)
		req, _ := d1.Request(l1)
		d2.Request(l1)
		_, err := d2.Install(con.issue(t, req, 1, issuedAt, 90*day), con.pin)
		wantRule(t, err, "device")
		mustValid(t, d2, false)
	})
	t.Run("wrong nonce", func(t *testing.T) {
		d := newDevice(t, clk)
		old, _ := d.Request(l1)
		d.Request(l1) // a newer request replaces the old one
		_, err := d.Install(con.issue(t, old, 1, issuedAt, 90*day), con.pin)
		wantRule(t, err, "nonce")
		// A device that made no request at all: a certificate for its key answers nothing.
		fresh := newDevice(t, clk)
		signer, pub, _ := fresh.Key()
		unsent, err := offline.NewRequest(&offline.Request{DeviceKey: pub, License: offline.LicenseHash(l1), DeviceTime: issuedAt}, signer)
		if err != nil {
			t.Fatal(err)
		}
		_, err = fresh.Install(con.issue(t, unsent, 1, issuedAt, 90*day), con.pin)
		wantRule(t, err, "nonce")
	})
	t.Run("other license", func(t *testing.T) {
		d := newDevice(t, clk)
		req, _ := d.Request(l1)
		r, _ := offline.ParseRequest(req)
		r.License = offline.LicenseHash("SOME-OTHER-KEY")
		signer, _, _ := d.Key()
		forged, _ := offline.NewRequest(r, signer)
		_, err := d.Install(con.issue(t, forged, 1, issuedAt, 90*day), con.pin)
		wantRule(t, err, "license")
	})
	t.Run("lower counter", func(t *testing.T) {
		d := newDevice(t, clk)
		req, _ := d.Request(l1)
		if _, err := d.Install(con.issue(t, req, 5, issuedAt, 90*day), con.pin); err != nil {
			t.Fatal(err)
		}
		_, err := d.Install(con.issue(t, req, 4, issuedAt, 90*day), con.pin)
		wantRule(t, err, "counter")
		if _, err := d.Install(con.issue(t, req, 5, issuedAt, 90*day), con.pin); err != nil {
			t.Errorf("the same counter again: %v", err)
		}
		if _, err := d.Install(con.issue(t, req, 6, issuedAt, 120*day), con.pin); err != nil {
			t.Errorf("a higher counter: %v", err)
		}
		if s := mustValid(t, d, true); s.Counter != 6 {
			t.Errorf("counter %d, want 6", s.Counter)
		}
	})
	t.Run("not yet valid", func(t *testing.T) {
		d := newDevice(t, clk)
		req, _ := d.Request(l1)
		_, err := d.Install(con.issue(t, req, 1, issuedAt.Add(2*day), 90*day), con.pin)
		wantRule(t, err, "not-yet-valid")
	})
	t.Run("expired at install", func(t *testing.T) {
		d := newDevice(t, clk)
		req, _ := d.Request(l1)
		_, err := d.Install(con.issue(t, req, 1, issuedAt.Add(-10*day), 5*day), con.pin)
		wantRule(t, err, "expired")
	})
}

// TestOfflineExpiryWithClockSetBack: the certificate runs out while the device runs; setting the
// wall clock back a year does not revive it, in the same boot or after a reboot.
func TestOfflineExpiryWithClockSetBack(t *testing.T) {
	clk := &fakeClock{wall: issuedAt, up: time.Hour, boot: "b1"}
	d := newDevice(t, clk)
	con := newConsole(t, "console.example")
	req, _ := d.Request(l1)
	if _, err := d.Install(con.issue(t, req, 1, issuedAt, 90*day), con.pin); err != nil {
		t.Fatal(err)
	}
	clk.advance(90*day - time.Second)
	mustValid(t, d, true)
	clk.advance(time.Second) // exactly not-after: no longer valid
	mustValid(t, d, false)
	clk.wall = clk.wall.AddDate(-1, 0, 0)
	s := mustValid(t, d, false)
	if s.TrustedTime.Before(issuedAt.Add(90 * day)) {
		t.Errorf("trusted time %v went back with the wall clock", s.TrustedTime)
	}
	// Reboot with the clock a year back: the floor saved by the last status holds.
	clk.reboot(issuedAt.AddDate(-1, 0, 0), "b2")
	mustValid(t, d, false)
	clk.advance(time.Minute)
	mustValid(t, d, false)
	// And re-installing the same certificate is refused too.
	_, err := d.Install(con.issue(t, req, 1, issuedAt, 90*day), con.pin)
	wantRule(t, err, "expired")
}

// TestOfflineBootAt1970: a device without a real-time clock boots at 1970; with a saved floor the
// certificate is valid exactly while floor + uptime < not-after.
func TestOfflineBootAt1970(t *testing.T) {
	clk := &fakeClock{wall: issuedAt, up: 10 * time.Minute, boot: "b1"}
	d := newDevice(t, clk)
	con := newConsole(t, "console.example")
	req, _ := d.Request(l1)
	if _, err := d.Install(con.issue(t, req, 1, issuedAt, 90*day), con.pin); err != nil {
		t.Fatal(err)
	}
	notAfter := issuedAt.Add(90 * day)
	st, _ := d.loadState()
	floor := st.Floor.Time
	if !floor.Equal(issuedAt) {
		t.Fatalf("floor %v, want the certificate's issued %v", floor, issuedAt)
	}
	epoch := time.Unix(0, 0).UTC()
	clk.reboot(epoch, "b2")
	mustValid(t, d, true) // floor + 0 < not-after
	if s, _ := d.Status(); !s.TrustedTime.Equal(floor) {
		t.Errorf("trusted time after boot at 1970: %v, want the floor %v", s.TrustedTime, floor)
	}
	// Without Status saving in between (a fresh boot each time), the edge is exact.
	for _, tc := range []struct {
		up    time.Duration
		valid bool
	}{
		{notAfter.Sub(floor) - time.Second, true},
		{notAfter.Sub(floor) - time.Nanosecond, true},
		{notAfter.Sub(floor), false},
		{notAfter.Sub(floor) + time.Second, false},
	} {
		d3 := newDevice(t, clk)
		copyState(t, d.State.Dir, d3.State.Dir, floor)
		clk.reboot(epoch, "b-"+tc.up.String())
		clk.up = tc.up
		mustValid(t, d3, tc.valid)
	}
	// Within one boot the saved floors add up to the same: floor + uptime.
	clk.reboot(epoch, "b9")
	clk.advance(notAfter.Sub(floor) / 2)
	mustValid(t, d, true)
	clk.advance(notAfter.Sub(floor)/2 - time.Second)
	mustValid(t, d, true)
	clk.advance(time.Second)
	mustValid(t, d, false)
}

// copyState copies a device's state to dst and resets its floor to floor (saved at uptime 0 in
// boot "b1"), so each case starts from the same saved floor.
func copyState(t *testing.T, src, dst string, floor time.Time) {
	t.Helper()
	for _, f := range []string{DeviceKeyFile, "offline/cert.note", "offline/pin", "offline/request.note", "offline/pending.key"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, f), b, 0o600)
	}
	d := &Device{State: &State{Dir: dst}}
	if err := d.saveState(offlineState{Counter: 1, Floor: Floor{Time: floor, BootID: "b1"}}); err != nil {
		t.Fatal(err)
	}
}

func TestTrustedTime(t *testing.T) {
	f := Floor{Time: issuedAt, Uptime: time.Hour, BootID: "b1"}
	for name, tc := range map[string]struct {
		clk  fakeClock
		want time.Time
	}{
		"wall ahead":            {fakeClock{issuedAt.Add(day), 2 * time.Hour, "b1"}, issuedAt.Add(day)},
		"wall behind same boot": {fakeClock{issuedAt.AddDate(-1, 0, 0), 3 * time.Hour, "b1"}, issuedAt.Add(2 * time.Hour)},
		"new boot":              {fakeClock{time.Unix(0, 0), 5 * time.Minute, "b2"}, issuedAt.Add(5 * time.Minute)},
		"uptime went back":      {fakeClock{time.Unix(0, 0), 30 * time.Minute, ""}, issuedAt.Add(30 * time.Minute)},
	} {
		if got := TrustedTime(&tc.clk, f); !got.Equal(tc.want) {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
	if got := TrustedTime(SystemClock{}, Floor{}); time.Since(got) > time.Minute || time.Since(got) < 0 {
		t.Errorf("no floor: %v, want the wall clock", got)
	}
	if up, err := (SystemClock{}).Uptime(); err != nil || up <= 0 {
		t.Errorf("system uptime %v, %v", up, err)
	}
}

func TestOfflineDeactivate(t *testing.T) {
	clk := &fakeClock{wall: issuedAt, up: time.Hour, boot: "b1"}
	d := newDevice(t, clk)
	con := newConsole(t, "console.example")
	if _, err := d.Deactivate(""); err == nil {
		t.Error("deactivated without a certificate")
	}
	req, _ := d.Request(l1)
	cert := con.issue(t, req, 3, issuedAt, 90*day)
	c, err := d.Install(cert, con.pin)
	if err != nil {
		t.Fatal(err)
	}
	_, oldPub, _ := d.Key()
	out := filepath.Join(t.TempDir(), "d.note")
	proof, err := d.Deactivate(out)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != string(proof) {
		t.Error("proof not written to --out")
	}
	p, err := offline.ParseDeactivation(proof)
	if err != nil {
		t.Fatal(err)
	}
	_, newPub, _ := d.Key()
	if !p.DeviceKey.Equal(oldPub) || !p.NextDeviceKey.Equal(newPub) || p.Nonce != c.Nonce || p.Counter != 3 || p.License != c.License {
		t.Errorf("proof %+v does not name the certificate given up and the rotated key", p)
	}
	mustValid(t, d, false)
	// The old certificate cannot come back: it names the old key.
	d.Request(l1)
	_, err = d.Install(cert, con.pin)
	wantRule(t, err, "device")
	if sess, _ := d.State.Session(); sess.HasID {
		t.Errorf("the certificate's session survived the deactivation: %+v", sess)
	}
	// The new key starts its own counters.
	req2, _ := d.Request(l1)
	if r, _ := offline.ParseRequest(req2); r.Counter != 0 || !r.DeviceKey.Equal(newPub) {
		t.Errorf("request after rotation: counter %d, key rotated %v", r.Counter, r.DeviceKey.Equal(newPub))
	}
	if _, err := d.Install(con.issue(t, req2, 1, issuedAt, 90*day), con.pin); err != nil {
		t.Errorf("new certificate for the new key: %v", err)
	}
}

// TestOfflineClockAheadDoesNotPoison: a wall clock wrongly far ahead ends the installed certificate
// (the safe direction) but leaves the floor low enough for the next certificate.
func TestOfflineClockAheadDoesNotPoison(t *testing.T) {
	clk := &fakeClock{wall: issuedAt.AddDate(73, 0, 0), up: time.Hour, boot: "b1"}
	d := newDevice(t, clk)
	con := newConsole(t, "console.example")
	mustValid(t, d, false) // nothing installed, clock in the future: no floor saved
	clk.wall = issuedAt
	req, _ := d.Request(l1)
	if _, err := d.Install(con.issue(t, req, 1, issuedAt, 30*day), con.pin); err != nil {
		t.Fatalf("install after the clock was right again: %v", err)
	}
	clk.wall = issuedAt.AddDate(73, 0, 0)
	mustValid(t, d, false)
	st, _ := d.loadState()
	if !st.Floor.Time.Equal(issuedAt.Add(30 * day)) {
		t.Errorf("floor %v, want capped at not-after %v", st.Floor.Time, issuedAt.Add(30*day))
	}
	// The clock is fixed a day later; a new certificate issued then installs.
	clk.reboot(issuedAt.Add(31*day), "b2")
	req, _ = d.Request(l1)
	if _, err := d.Install(con.issue(t, req, 2, issuedAt.Add(31*day), 30*day), con.pin); err != nil {
		t.Errorf("new certificate after the clock was fixed: %v", err)
	}
	mustValid(t, d, true)
}
