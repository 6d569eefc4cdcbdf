package openconsole_test

import (
	"crypto/ed25519"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"openconsole"
	"openconsole/client/offline"
	"openconsole/sqlstore/sqlstoretest"
)

// device is an offline device: its key, and what it has installed.
type device struct {
	signer note.Signer
	pub    ed25519.PublicKey
	cert   *offline.Certificate
}

func newDevice(t *testing.T) *device {
	t.Helper()
	signer, skey, err := offline.GenerateDeviceKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := offline.DevicePublicKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &device{signer: signer, pub: pub}
}

// request is the device's offline request for the license key.
func (d *device) request(t *testing.T, key string, now time.Time) []byte {
	t.Helper()
	r := &offline.Request{DeviceKey: d.pub, License: offline.LicenseHash(key), DeviceTime: now}
	copy(r.Nonce[:], openconsole.NewSessionID())
	if d.cert != nil {
		r.Counter = d.cert.Counter
	}
	msg, err := offline.NewRequest(r, d.signer)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// deactivate is the device's proof that it gave up its certificate; the device key rotates.
func (d *device) deactivate(t *testing.T, now time.Time) []byte {
	t.Helper()
	next := newDevice(t)
	msg, err := offline.NewDeactivation(&offline.Deactivation{DeviceKey: d.pub, License: d.cert.License, Nonce: d.cert.Nonce,
		Counter: d.cert.Counter, NextDeviceKey: next.pub, Time: now}, d.signer)
	if err != nil {
		t.Fatal(err)
	}
	d.signer, d.pub, d.cert = next.signer, next.pub, nil
	return msg
}

// verifier is the pinned certificate key of svc.
func verifier(t *testing.T, svc *openconsole.Service) note.Verifier {
	t.Helper()
	info, err := svc.OfflineKeyInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(info.Verifier)
	if err != nil {
		t.Fatalf("verifier %q: %v", info.Verifier, err)
	}
	return v
}

// issue has svc issue a certificate for the device's request and installs it on the device.
func issue(t *testing.T, svc *openconsole.Service, d *device, key string, ttl time.Duration) openconsole.IssuedCertificate {
	t.Helper()
	req := d.request(t, key, svc.Now())
	out, err := svc.IssueOfflineCertificate(ctx, req, ttl)
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	c, err := offline.ParseCertificate(out.Note, verifier(t, svc))
	if err != nil {
		t.Fatalf("the issued certificate does not verify: %v\n%s", err, out.Note)
	}
	r, _ := offline.ParseRequest(req)
	if !c.DeviceKey.Equal(d.pub) || c.Nonce != r.Nonce || c.License != offline.LicenseHash(key) || c.SessionID != out.Certificate.SessionID {
		t.Fatalf("certificate %+v does not answer the request %+v", c, r)
	}
	if d.cert != nil && c.Counter <= d.cert.Counter {
		t.Fatalf("counter %d, not above the installed %d", c.Counter, d.cert.Counter)
	}
	d.cert = c
	return out
}

func taken(t *testing.T, svc *openconsole.Service, key string) int {
	t.Helper()
	l, err := svc.License(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	return l.Taken
}

func noMismatch(t *testing.T, svc *openconsole.Service) {
	t.Helper()
	c, err := svc.CheckSeats(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Mismatches) > 0 || len(c.Over) > 0 {
		t.Fatalf("seat check: mismatches %+v, over %+v", c.Mismatches, c.Over)
	}
}

func wantCode(t *testing.T, err error, code, text string) {
	t.Helper()
	if openconsole.ErrorCode(err) != code || !strings.Contains(openconsole.ErrorMessage(err), text) {
		t.Fatalf("err = %v (%s), want %s containing %q", err, openconsole.ErrorCode(err), code, text)
	}
}

// TestOfflineSeats: a certificate takes a seat counted with the online sessions; a re-issue to the
// same device key takes none; a deactivation frees one seat, once; the session in the certificate
// validates online until then.
func TestOfflineSeats(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		clock := &fakeClock{t: time.Now()}
		svc := newService(t, dsn, openconsole.Options{SessionTTL: time.Minute, Now: clock.Now, TouchInterval: time.Hour})
		lic := mustLicense(t, svc, openconsole.LicenseInput{Seats: 2})
		d := newDevice(t)
		first := issue(t, svc, d, lic.Key, 0)
		if first.Replaced || taken(t, svc, lic.Key) != 1 {
			t.Fatalf("first certificate: replaced %v, taken %d; want a new seat", first.Replaced, taken(t, svc, lic.Key))
		}
		if got, want := d.cert.NotAfter, d.cert.Issued.Add(openconsole.DefaultOfflineTTL); !got.Equal(want) {
			t.Fatalf("not-after %v, want %v (the default ttl)", got, want)
		}
		// The session is exempt from the idle timeout: valid long after any activity.
		clock.Add(10 * time.Minute)
		if !valid(t, svc, d.cert.SessionID) {
			t.Fatal("the certificate's session does not validate")
		}

		// A re-issue replaces it on the same seat and session.
		second := issue(t, svc, d, lic.Key, 30*24*time.Hour)
		if !second.Replaced || second.Certificate.SessionID != first.Certificate.SessionID || taken(t, svc, lic.Key) != 1 {
			t.Fatalf("re-issue: replaced %v, session %s (first %s), taken %d; want the same seat",
				second.Replaced, second.Certificate.SessionID, first.Certificate.SessionID, taken(t, svc, lic.Key))
		}

		// One online device and one certificate fill two seats.
		a, err := activate(t, svc, lic.Key, "")
		if err != nil || !a.Created {
			t.Fatalf("online activation: %+v, %v", a, err)
		}
		_, err = activate(t, svc, lic.Key, "")
		if err != openconsole.ErrMaxActivations || openconsole.ErrorMessage(err) != "License found but maximum activations reached" {
			t.Fatalf("third activation: %v, want %q", err, "License found but maximum activations reached")
		}
		_, err = svc.IssueOfflineCertificate(ctx, newDevice(t).request(t, lic.Key, clock.Now()), 0)
		wantCode(t, err, openconsole.ECONFLICT, "maximum activations reached")
		noMismatch(t, svc)

		// The deactivation frees the certificate's seat; its replay frees nothing.
		sid := d.cert.SessionID
		proof := d.deactivate(t, clock.Now())
		out, err := svc.DeactivateOffline(ctx, proof)
		if err != nil || !out.Freed {
			t.Fatalf("deactivate: %+v, %v", out, err)
		}
		if taken(t, svc, lic.Key) != 1 || valid(t, svc, sid) {
			t.Fatalf("after deactivation: taken %d, valid %v; want 1, false", taken(t, svc, lic.Key), valid(t, svc, sid))
		}
		_, err = svc.DeactivateOffline(ctx, proof)
		wantCode(t, err, openconsole.ECONFLICT, "deactivated already")
		if taken(t, svc, lic.Key) != 1 {
			t.Fatalf("the replay freed a seat: taken %d", taken(t, svc, lic.Key))
		}
		// The freed seat is one seat: one activation gets it, the next does not.
		if a, err := activate(t, svc, lic.Key, ""); err != nil || !a.Created {
			t.Fatalf("activation after deactivation: %+v, %v", a, err)
		}
		_, err = activate(t, svc, lic.Key, "")
		wantErr(t, err, openconsole.ErrMaxActivations)
		noMismatch(t, svc)

		// Every issuance and the deactivation are in the audit log, without the key.
		var actions []string
		for e, err := range svc.Audit(ctx, openconsole.AuditQuery{}) {
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(e.Action, "offline.") {
				actions = append(actions, e.Action)
				if e.Target != openconsole.LicenseTarget(lic.Key) || strings.Contains(string(e.After), lic.Key) {
					t.Errorf("audit entry %s: target %s, after %s", e.Action, e.Target, e.After)
				}
			}
		}
		if got := strings.Join(actions, " "); got != "offline.issue offline.issue offline.deactivate" {
			t.Fatalf("audit actions %q", got)
		}
	})
}

// TestOfflineRefusals: revoked, suspended and unknown licenses, a deactivated device key, bad
// notes and ttls change nothing; revoking the license ends online use of its certificates.
func TestOfflineRefusals(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		clock := &fakeClock{t: time.Now()}
		svc := newService(t, dsn, openconsole.Options{Now: clock.Now, TouchInterval: time.Hour})
		lic := mustLicense(t, svc, openconsole.LicenseInput{Seats: 3})
		d := newDevice(t)
		issue(t, svc, d, lic.Key, 0)

		req := d.request(t, lic.Key, clock.Now())
		for name, c := range map[string]struct {
			msg  []byte
			ttl  time.Duration
			code string
			text string
		}{
			"garbage":         {[]byte("hello\n"), 0, openconsole.EINVALID, "offline request"},
			"tampered":        {[]byte(strings.Replace(string(req), "counter 1", "counter 2", 1)), 0, openconsole.EINVALID, "signature"},
			"ttl too short":   {req, time.Minute, openconsole.EINVALID, "ttl"},
			"ttl too long":    {req, 4000 * 24 * time.Hour, openconsole.EINVALID, "ttl"},
			"unknown license": {newDevice(t).request(t, "NO-SUCH-KEY", clock.Now()), 0, openconsole.ENOTFOUND, "no license"},
		} {
			_, err := svc.IssueOfflineCertificate(ctx, c.msg, c.ttl)
			if openconsole.ErrorCode(err) != c.code || !strings.Contains(openconsole.ErrorMessage(err), c.text) {
				t.Errorf("%s: err = %v (%s), want %s with %q", name, err, openconsole.ErrorCode(err), c.code, c.text)
			}
		}
		_, err := svc.DeactivateOffline(ctx, []byte("not a proof"))
		wantCode(t, err, openconsole.EINVALID, "offline deactivation")
		if taken(t, svc, lic.Key) != 1 {
			t.Fatalf("refusals changed the seats: taken %d", taken(t, svc, lic.Key))
		}

		// A deactivated device key gets no certificate again.
		old := &device{signer: d.signer, pub: d.pub, cert: d.cert}
		if _, err := svc.DeactivateOffline(ctx, d.deactivate(t, clock.Now())); err != nil {
			t.Fatal(err)
		}
		_, err = svc.IssueOfflineCertificate(ctx, old.request(t, lic.Key, clock.Now()), 0)
		wantCode(t, err, openconsole.ECONFLICT, "deactivated")

		// A suspended license gets none; resumed, it does.
		if _, err := svc.SuspendLicense(ctx, lic.Key, 0); err != nil {
			t.Fatal(err)
		}
		_, err = svc.IssueOfflineCertificate(ctx, d.request(t, lic.Key, clock.Now()), 0)
		wantCode(t, err, openconsole.ECONFLICT, "suspended")
		if _, err := svc.ResumeLicense(ctx, lic.Key, 0); err != nil {
			t.Fatal(err)
		}
		issue(t, svc, d, lic.Key, 0)
		if !valid(t, svc, d.cert.SessionID) {
			t.Fatal("certificate session invalid")
		}

		// Revoking the license: its certificate no longer validates online, and none is re-issued.
		if _, err := svc.RevokeLicense(ctx, lic.Key, 0); err != nil {
			t.Fatal(err)
		}
		if valid(t, svc, d.cert.SessionID) {
			t.Fatal("the certificate of a revoked license validates")
		}
		_, err = svc.IssueOfflineCertificate(ctx, d.request(t, lic.Key, clock.Now()), 0)
		wantCode(t, err, openconsole.ECONFLICT, "revoked")

		// A license that expires caps the certificate; an expired one gets none.
		exp := mustLicense(t, svc, openconsole.LicenseInput{Seats: 1, ExpiresAt: clock.Now().Add(48 * time.Hour)})
		e := newDevice(t)
		issue(t, svc, e, exp.Key, 0)
		if !e.cert.NotAfter.Equal(exp.ExpiresAt.Truncate(time.Second)) {
			t.Fatalf("not-after %v, want the license's expiry %v", e.cert.NotAfter, exp.ExpiresAt)
		}
		clock.Add(49 * time.Hour)
		_, err = svc.IssueOfflineCertificate(ctx, newDevice(t).request(t, exp.Key, clock.Now()), 0)
		wantCode(t, err, openconsole.ECONFLICT, "expired")
		noMismatch(t, svc)
	})
}

// TestOfflineExpiry: at not-after the session stops validating, the sweep frees its seat (with a
// logged change), and a full license's activation ends it itself; the clock is advanced.
func TestOfflineExpiry(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		clock := &fakeClock{t: time.Now()}
		svc := newService(t, dsn, openconsole.Options{Now: clock.Now, TouchInterval: time.Hour})
		lic := mustLicense(t, svc, openconsole.LicenseInput{Seats: 1})
		d := newDevice(t)
		issue(t, svc, d, lic.Key, 2*time.Hour)
		clock.Add(2*time.Hour - 2*time.Second)
		if !valid(t, svc, d.cert.SessionID) {
			t.Fatal("invalid before not-after")
		}
		_, err := activate(t, svc, lic.Key, "")
		wantErr(t, err, openconsole.ErrMaxActivations)
		clock.Add(2 * time.Second)
		if valid(t, svc, d.cert.SessionID) {
			t.Fatal("valid at not-after")
		}
		if err := svc.SweepExpired(ctx); err != nil {
			t.Fatal(err)
		}
		st, err := svc.Session(ctx, d.cert.SessionID)
		if err != nil || st.Session.EndedAt.IsZero() || taken(t, svc, lic.Key) != 0 {
			t.Fatalf("after the sweep: %+v, %v, taken %d; want ended and the seat free", st.Session, err, taken(t, svc, lic.Key))
		}
		noMismatch(t, svc)

		// Without a sweep, the activation that finds the license full ends the expired session.
		e := newDevice(t)
		issue(t, svc, e, lic.Key, time.Hour)
		clock.Add(time.Hour)
		if a, err := activate(t, svc, lic.Key, ""); err != nil || !a.Created {
			t.Fatalf("activation on a license full of an expired certificate: %+v, %v", a, err)
		}
		noMismatch(t, svc)
		// A re-issue after expiry takes a new seat, which the online device now holds.
		_, err = svc.IssueOfflineCertificate(ctx, e.request(t, lic.Key, clock.Now()), 0)
		wantCode(t, err, openconsole.ECONFLICT, "maximum activations reached")
		// The deactivation of an expired certificate frees nothing, and says so.
		out, err := svc.DeactivateOffline(ctx, e.deactivate(t, clock.Now()))
		if err != nil || out.Freed {
			t.Fatalf("deactivation after expiry: %+v, %v; want nothing freed", out, err)
		}
		noMismatch(t, svc)
		b, _ := json.Marshal(out.Certificate.Status(clock.Now()))
		if string(b) != `"deactivated"` {
			t.Fatalf("status %s", b)
		}
	})
}

// TestOfflineIndependentVerifier: testdata/offline/verify_cert.py (Python, no code shared with
// Go) accepts every certificate the server issues and refuses tampered ones. It runs when python3
// with the cryptography package is present (and must, with OPENCONSOLE_REQUIRE_TOOLS set).
func TestOfflineIndependentVerifier(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err == nil {
		err = exec.Command(py, "-c", "import cryptography").Run()
	}
	if err != nil {
		if os.Getenv("OPENCONSOLE_REQUIRE_TOOLS") != "" {
			t.Fatalf("python3 with cryptography: %v", err)
		}
		t.Skipf("python3 with cryptography: %v", err)
	}
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		clock := &fakeClock{t: time.Now()}
		svc := newService(t, dsn, openconsole.Options{Now: clock.Now, TouchInterval: time.Hour})
		dir := t.TempDir()
		certs := map[string][]byte{}
		add := func(name string, b []byte) {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			certs[p] = b
		}
		short := mustLicense(t, svc, openconsole.LicenseInput{Key: "SHORT", Seats: 1}) // no hint: too short
		capped := mustLicense(t, svc, openconsole.LicenseInput{Seats: 1, ExpiresAt: clock.Now().Add(36 * time.Hour)})
		many := mustLicense(t, svc, openconsole.LicenseInput{Seats: 5})
		d := newDevice(t)
		add("default.note", issue(t, svc, d, many.Key, 0).Note)
		add("reissued.note", issue(t, svc, d, many.Key, time.Hour).Note)
		add("long.note", issue(t, svc, newDevice(t), many.Key, openconsole.MaxOfflineTTL).Note)
		add("short-key.note", issue(t, svc, newDevice(t), short.Key, 0).Note)
		add("capped.note", issue(t, svc, newDevice(t), capped.Key, 0).Note)
		info, err := svc.OfflineKeyInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		verify := func(files ...string) (string, int) {
			cmd := exec.Command(py, append([]string{filepath.Join("testdata", "offline", "verify_cert.py"), "--pin", info.Verifier}, files...)...)
			out, err := cmd.Output()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			return string(out), code
		}
		var files []string
		for p := range certs {
			files = append(files, p)
		}
		if out, code := verify(files...); code != 0 || strings.Count(out, "ok ") != len(files) {
			t.Fatalf("the verifier refused a server-issued certificate (exit %d):\n%s", code, out)
		}
		// Tampered: one byte of the body, the signature, the issuer, a second signature line.
		good := string(certs[filepath.Join(dir, "default.note")])
		// The signature's last base64 character before the padding, changed to another valid one
		// (one in sixteen signatures already ends in "A=").
		lastSig := "A=\n"
		if strings.HasSuffix(good, lastSig) {
			lastSig = "E=\n"
		}
		tampered := map[string]string{
			"byte.note":   strings.Replace(good, "counter 1", "counter 7", 1),
			"sig.note":    good[:len(good)-3] + lastSig,
			"hint.note":   strings.Replace(good, "license-hint "+offline.LicenseHint(many.Key), "license-hint ZZZZ", 1),
			"extra.note":  good + "— someone AAAA\n",
			"unsign.note": good[:strings.Index(good, "\n\n")+2],
		}
		for name, body := range tampered {
			if body == good {
				t.Fatalf("%s: the tampering changed nothing", name)
			}
			p := filepath.Join(dir, name)
			os.WriteFile(p, []byte(body), 0o644)
			if out, code := verify(p); code != 1 || !strings.HasPrefix(out, "refused ") {
				t.Errorf("%s: exit %d, %q; want it refused", name, code, out)
			}
		}
	})
}
