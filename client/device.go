package client

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"openconsole/client/offline"
)

// Files under the state directory's offline/ folder.
const (
	requestFile      = "request.note"      // the last offline request made
	pendingKeyFile   = "pending.key"       // the license key that request was for, 0600
	certFile         = "cert.note"         // the installed certificate
	pinFile          = "pin"               // the verifier key it was installed with
	offlineStateFile = "state.json"        // counter and time floor
	deactivationFile = "deactivation.note" // the last deactivation proof, kept to show again
)

// Device is the offline side of a device: its key, its certificate and its trusted time.
type Device struct {
	State *State
	// Clock is the time source; nil means SystemClock.
	Clock Clock
}

// offlineState is what survives across installs: the highest counter installed for the current
// device key, and the time floor.
type offlineState struct {
	Counter uint64 `json:"counter"`
	Floor   Floor  `json:"floor"`
}

func (d *Device) clock() Clock {
	if d.Clock == nil {
		return SystemClock{}
	}
	return d.Clock
}

func (d *Device) path(name string) string { return filepath.Join(d.State.Dir, offlineDir, name) }

func (d *Device) loadState() (offlineState, error) {
	var st offlineState
	b, err := os.ReadFile(d.path(offlineStateFile))
	if os.IsNotExist(err) {
		return st, nil
	}
	if err != nil {
		return st, stateErr("read offline state", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, stateErr("read offline state", err)
	}
	return st, nil
}

func (d *Device) saveState(st offlineState) error {
	b, _ := json.Marshal(st)
	if err := writeFileAtomic(d.path(offlineStateFile), append(b, '\n'), 0o600); err != nil {
		return stateErr("write offline state", err)
	}
	return nil
}

// Key returns the device key, creating it (Ed25519, stored 0600 in .device_key) on first use.
func (d *Device) Key() (note.Signer, ed25519.PublicKey, error) {
	p := filepath.Join(d.State.Dir, DeviceKeyFile)
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		_, skey, err := offline.GenerateDeviceKey()
		if err != nil {
			return nil, nil, err
		}
		if err := writeFileAtomic(p, []byte(skey+"\n"), 0o600); err != nil {
			return nil, nil, stateErr("write device key", err)
		}
		b = []byte(skey)
	} else if err != nil {
		return nil, nil, stateErr("read device key", err)
	}
	return parseDeviceKey(strings.TrimSpace(string(b)))
}

func parseDeviceKey(skey string) (note.Signer, ed25519.PublicKey, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, nil, stateErr("read device key", err)
	}
	pub, err := offline.DevicePublicKey(skey)
	if err != nil {
		return nil, nil, stateErr("read device key", err)
	}
	return s, pub, nil
}

// Request makes an offline request for the license key: signed by the device key, with a fresh
// nonce, the highest counter installed and the wall clock. It keeps the request (and, 0600, the key
// for .license once a certificate is installed) and returns its bytes.
func (d *Device) Request(key string) ([]byte, error) {
	key = strings.TrimSpace(key)
	if key == "" {
		return nil, errors.New("offline request: a license key is required")
	}
	signer, pub, err := d.Key()
	if err != nil {
		return nil, err
	}
	st, err := d.loadState()
	if err != nil {
		return nil, err
	}
	r := &offline.Request{DeviceKey: pub, License: offline.LicenseHash(key), Counter: st.Counter, DeviceTime: d.clock().Now()}
	if _, err := rand.Read(r.Nonce[:]); err != nil {
		return nil, err
	}
	msg, err := offline.NewRequest(r, signer)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(d.path(pendingKeyFile), []byte(key), 0o600); err != nil {
		return nil, stateErr("write offline request", err)
	}
	if err := writeFileAtomic(d.path(requestFile), msg, 0o600); err != nil {
		return nil, stateErr("write offline request", err)
	}
	return msg, nil
}

// Install checks cert and installs it. It is accepted only if its signature verifies with pin (a
// note verifier key), it names this device's key, the nonce and license of the last request made,
// a counter not lower than the one installed, and the trusted time lies in [not-before, not-after).
// Refusals are *OfflineError and change nothing. On success the time floor is raised to
// max(trusted time, issued), the request's license key is stored in .license and the certificate's
// session adopted by FLECS Core's rule.
func (d *Device) Install(cert []byte, pin string) (*offline.Certificate, error) {
	v, err := note.NewVerifier(strings.TrimSpace(pin))
	if err != nil {
		return nil, &OfflineError{Rule: "pin", Msg: "not a note verifier key: " + err.Error()}
	}
	c, err := offline.ParseCertificate(cert, v)
	if err != nil {
		return nil, &OfflineError{Rule: "signature", Msg: err.Error()}
	}
	_, pub, err := d.Key()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(c.DeviceKey, pub) {
		return nil, &OfflineError{Rule: "device", Msg: "the certificate is for another device key"}
	}
	reqBytes, err := os.ReadFile(d.path(requestFile))
	if os.IsNotExist(err) {
		return nil, &OfflineError{Rule: "nonce", Msg: "this device has made no offline request"}
	} else if err != nil {
		return nil, stateErr("read offline request", err)
	}
	req, err := offline.ParseRequest(reqBytes)
	if err != nil {
		return nil, stateErr("read offline request", err)
	}
	if c.Nonce != req.Nonce {
		return nil, &OfflineError{Rule: "nonce", Msg: "the certificate answers another request"}
	}
	if c.License != req.License {
		return nil, &OfflineError{Rule: "license", Msg: "the certificate is for another license"}
	}
	st, err := d.loadState()
	if err != nil {
		return nil, err
	}
	if c.Counter < st.Counter {
		return nil, &OfflineError{Rule: "counter", Msg: fmt.Sprintf("counter %d is lower than the installed %d", c.Counter, st.Counter)}
	}
	now := TrustedTime(d.clock(), st.Floor)
	if err := checkWindow(c, now); err != nil {
		return nil, err
	}
	key, err := os.ReadFile(d.path(pendingKeyFile))
	if err != nil {
		return nil, stateErr("read offline request", err)
	}
	if err := writeFileAtomic(d.path(certFile), cert, 0o644); err != nil {
		return nil, stateErr("install certificate", err)
	}
	if err := writeFileAtomic(d.path(pinFile), []byte(strings.TrimSpace(pin)+"\n"), 0o644); err != nil {
		return nil, stateErr("install certificate", err)
	}
	floor := now
	if c.Issued.After(floor) {
		floor = c.Issued
	}
	st.Counter = c.Counter
	st.Floor = FloorAt(d.clock(), floor)
	if err := d.saveState(st); err != nil {
		return nil, err
	}
	if err := d.State.SetLicense(strings.TrimSpace(string(key))); err != nil {
		return nil, err
	}
	cl := &Client{State: d.State}
	if err := cl.adopt("offline install", Session{ID: c.SessionID, HasID: true, Timestamp: uint64(c.SessionTimestamp), HasTimestamp: true}); err != nil {
		return nil, err
	}
	return c, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func checkWindow(c *offline.Certificate, now time.Time) error {
	if now.Before(c.NotBefore) {
		return &OfflineError{Rule: "not-yet-valid", Msg: fmt.Sprintf("valid from %s, trusted time is %s", c.NotBefore.Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	if !now.Before(c.NotAfter) {
		return &OfflineError{Rule: "expired", Msg: fmt.Sprintf("valid until %s, trusted time is %s", c.NotAfter.Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	return nil
}

// OfflineStatus is the state of the installed certificate at the trusted time.
type OfflineStatus struct {
	Installed   bool      `json:"installed"`
	Valid       bool      `json:"valid"`
	Reason      string    `json:"reason,omitempty"` // why not valid
	LicenseHint string    `json:"license,omitempty"`
	Issuer      string    `json:"issuer,omitempty"`
	Counter     uint64    `json:"counter"`
	NotBefore   time.Time `json:"notBefore,omitzero"`
	NotAfter    time.Time `json:"notAfter,omitzero"`
	TrustedTime time.Time `json:"trustedTime"`
	Session     string    `json:"session,omitempty"`
}

// Status re-verifies the installed certificate with the pin it was installed with and judges it at
// the trusted time, which it then saves as the new floor (so a later reboot or clock set back
// cannot go below it).
func (d *Device) Status() (*OfflineStatus, error) {
	st, err := d.loadState()
	if err != nil {
		return nil, err
	}
	now := TrustedTime(d.clock(), st.Floor)
	s := &OfflineStatus{Counter: st.Counter, TrustedTime: now.UTC()}
	cert, err := os.ReadFile(d.path(certFile))
	if os.IsNotExist(err) {
		s.Reason = "no certificate installed"
		return s, nil
	} else if err != nil {
		return nil, stateErr("read certificate", err)
	}
	s.Installed = true
	pin, err := os.ReadFile(d.path(pinFile))
	if err != nil {
		return nil, stateErr("read pin", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(pin)))
	if err != nil {
		return nil, stateErr("read pin", err)
	}
	c, err := offline.ParseCertificate(cert, v)
	if err != nil {
		s.Reason = "installed certificate does not verify: " + err.Error()
		return s, nil
	}
	s.LicenseHint, s.Issuer, s.NotBefore, s.NotAfter, s.Session = c.LicenseHint, c.Issuer, c.NotBefore, c.NotAfter, c.SessionID
	// Raising the floor to what is known now keeps an expired certificate dead across a reboot with
	// the clock set back. It goes no higher than not-after, which is enough for that: a wall clock
	// wrongly far ahead then cannot poison the floor for the certificates that come later.
	if raise := minTime(now, c.NotAfter); raise.After(st.Floor.Time) {
		st.Floor = FloorAt(d.clock(), raise)
		if err := d.saveState(st); err != nil {
			return nil, err
		}
	}
	_, pub, err := d.Key()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(pub, c.DeviceKey) {
		s.Reason = "installed certificate is for another device key"
		return s, nil
	}
	if err := checkWindow(c, now); err != nil {
		s.Reason = err.Error()
		return s, nil
	}
	s.Valid = true
	return s, nil
}

// Deactivate gives the installed certificate up: it writes a deactivation proof signed by the
// current device key to out (and keeps a copy), then deletes the certificate, rotates the device
// key and resets the counter (counters are per device key). The proof names the next key. A
// session adopted from the certificate is dropped from .session_id.
func (d *Device) Deactivate(out string) ([]byte, error) {
	cert, err := os.ReadFile(d.path(certFile))
	if os.IsNotExist(err) {
		return nil, &OfflineError{Rule: "none", Msg: "no certificate installed"}
	} else if err != nil {
		return nil, stateErr("read certificate", err)
	}
	pin, err := os.ReadFile(d.path(pinFile))
	if err != nil {
		return nil, stateErr("read pin", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(pin)))
	if err != nil {
		return nil, stateErr("read pin", err)
	}
	c, err := offline.ParseCertificate(cert, v)
	if err != nil {
		return nil, &OfflineError{Rule: "signature", Msg: "installed certificate does not verify: " + err.Error()}
	}
	oldSigner, oldPub, err := d.Key()
	if err != nil {
		return nil, err
	}
	_, nextSkey, err := offline.GenerateDeviceKey()
	if err != nil {
		return nil, err
	}
	nextPub, err := offline.DevicePublicKey(nextSkey)
	if err != nil {
		return nil, err
	}
	proof, err := offline.NewDeactivation(&offline.Deactivation{DeviceKey: oldPub, License: c.License, Nonce: c.Nonce,
		Counter: c.Counter, NextDeviceKey: nextPub, Time: d.clock().Now()}, oldSigner)
	if err != nil {
		return nil, err
	}
	// The proof is written before anything is deleted: losing it would strand the seat.
	if err := writeFileAtomic(d.path(deactivationFile), proof, 0o644); err != nil {
		return nil, stateErr("write deactivation", err)
	}
	if out != "" {
		if err := writeFileAtomic(out, proof, 0o644); err != nil {
			return nil, stateErr("write deactivation", err)
		}
	}
	if err := os.Remove(d.path(certFile)); err != nil {
		return nil, stateErr("delete certificate", err)
	}
	if err := writeFileAtomic(filepath.Join(d.State.Dir, DeviceKeyFile), []byte(nextSkey+"\n"), 0o600); err != nil {
		return nil, stateErr("rotate device key", err)
	}
	st, err := d.loadState()
	if err != nil {
		return nil, err
	}
	st.Counter = 0
	if err := d.saveState(st); err != nil {
		return nil, err
	}
	for _, f := range []string{requestFile, pendingKeyFile} {
		if err := os.Remove(d.path(f)); err != nil && !os.IsNotExist(err) {
			return nil, stateErr("delete offline request", err)
		}
	}
	if sess, err := d.State.Session(); err == nil && sess.ID == c.SessionID {
		if err := d.State.SetSession(Session{}); err != nil {
			return nil, err
		}
	}
	return proof, nil
}
