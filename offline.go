package openconsole

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"openconsole/client/offline"
)

// Offline certificates, for devices that never reach the console. A device's request (signed by a
// key only the device holds) names its license by the key's SHA-256; the console answers a
// certificate, signed by its own certificate signing key, that binds one seat of the license to
// that device key until not-after. The seat is held by a session with a hard expiry (see
// liveness.go), so it counts with the online sessions in the one seat bookkeeping; the
// certificate names that session, so that a device that comes online later validates at once. A
// re-issue to the same device key replaces its certificate in place (a higher counter, the same
// seat); the device's signed deactivation frees the seat once, and the device key with it.

// Bounds of a certificate's lifetime.
const (
	DefaultOfflineTTL = 90 * 24 * time.Hour
	MinOfflineTTL     = time.Hour
	MaxOfflineTTL     = 3650 * 24 * time.Hour
	// OfflineClockAllowance is how far not-before lies before issued: a device whose clock lags
	// the console's by up to this much still installs a fresh certificate.
	OfflineClockAllowance = time.Hour
)

// OfflineAddr is what a certificate's session shows as the address it was activated from.
const OfflineAddr = "offline"

// LicenseKeyHash is the SHA-256 of a license key (or serial number): how an offline request names
// its license without carrying the key. The store keeps it for every license, indexed.
func LicenseKeyHash(key string) [32]byte { return offline.LicenseHash(key) }

// ParseOfflineSigner parses a certificate signing key in note's signer encoding (what openconsole
// offline keygen writes) and returns it with its verifier key. Only Ed25519 keys are accepted.
func ParseOfflineSigner(skey string) (note.Signer, string, error) {
	return parseNoteSigner(skey, "certificate")
}

// NewOfflineKey generates a certificate signing key named name (empty: openconsole-offline- and
// eight random hex digits) and returns its signer and verifier keys.
func NewOfflineKey(name string) (skey, vkey string, err error) {
	if name, err = noteKeyName(name, "openconsole-offline-", "certificate"); err != nil {
		return "", "", err
	}
	return offline.GenerateSigningKey(name)
}

// offlineKeys is how the certificate signing keys are kept.
func (s *Service) offlineKeys() noteKeyKind {
	return noteKeyKind{what: "certificate", flag: "--offline-key-file", signs: "offline certificates are signed",
		generate: func() (string, string, error) { return NewOfflineKey("") },
		list:     s.store.OfflineKeys, listTx: Tx.OfflineKeys, add: Tx.AddOfflineKey, forget: Tx.ForgetOfflineSigners}
}

// initOffline loads the key that signs certificates, as initAudit loads the audit key (see
// loadNoteKey): a one-shot process whose key is in a file cannot issue certificates.
func (s *Service) initOffline(ctx context.Context, given string) error {
	k, err := s.loadNoteKey(ctx, s.offlineKeys(), given)
	if err != nil {
		return err
	}
	s.offline = &k
	return nil
}

// CreateOfflineKey generates the certificate signing key in the database unless one exists (a
// server does on first start, openconsole init too), and signs with the newest key from then on.
func (s *Service) CreateOfflineKey(ctx context.Context) error {
	k, err := s.createNoteKey(ctx, s.offlineKeys())
	if err != nil {
		return err
	}
	s.offline = &k
	return nil
}

// OfflineKeyInfo is the certificate signing key in use and every key that signed before it.
type OfflineKeyInfo struct {
	Verifier  string   // the newest key's verifier key: what devices pin (empty before the first start)
	Name      string   // its name, the certificates' issuer
	Held      string   // AuditKeyInDatabase or AuditKeyInFile
	Verifiers []string // every key's verifier key, oldest first
}

// OfflineKeyInfo describes the certificate signing keys.
func (s *Service) OfflineKeyInfo(ctx context.Context) (OfflineKeyInfo, error) {
	keys, err := s.store.OfflineKeys(ctx)
	if err != nil {
		return OfflineKeyInfo{}, fmt.Errorf("offline keys: %w", err)
	}
	info := OfflineKeyInfo{Verifiers: []string{}}
	for _, k := range keys {
		info.Verifiers = append(info.Verifiers, k.Verifier)
	}
	if len(keys) > 0 {
		newest := keys[len(keys)-1]
		info.Verifier, info.Held = newest.Verifier, AuditKeyInDatabase
		if newest.Signer == "" {
			info.Held = AuditKeyInFile
		}
		info.Name, _, _ = strings.Cut(newest.Verifier, "+")
	}
	return info, nil
}

// IssuedCertificate is the outcome of IssueOfflineCertificate.
type IssuedCertificate struct {
	Note        []byte // the signed certificate, as the device installs it
	Certificate OfflineCertificate
	License     License
	// Replaced is true when the certificate replaced one the device key held, on the same seat.
	Replaced bool
}

// ErrOfflineSeats refuses a certificate for a license whose seats are all taken.
var ErrOfflineSeats = &Error{Code: ECONFLICT, Message: "License found but maximum activations reached"}

// DeviceKeyID names a device key in records and answers: its base64, as the artefacts write it.
func DeviceKeyID(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// IssueOfflineCertificate turns a device's offline request (a signed note) into a certificate
// valid for ttl (0: DefaultOfflineTTL; never past the license's expiry), taking a seat of the
// license, or reusing the one the device key's current certificate holds. Errors: EINVALID for a
// malformed or badly signed request or a bad ttl, ENOTFOUND when no license has the key's hash,
// ECONFLICT for a license that is revoked, suspended, expired or full (ErrOfflineSeats) and for a
// device key that was deactivated; EUNPROCESSABLE when this process holds no signing key.
func (s *Service) IssueOfflineCertificate(ctx context.Context, request []byte, ttl time.Duration) (IssuedCertificate, error) {
	if ttl == 0 {
		ttl = DefaultOfflineTTL
	}
	if ttl < MinOfflineTTL || ttl > MaxOfflineTTL {
		return IssuedCertificate{}, Errorf(EINVALID, "ttl must be between %v and %d days", MinOfflineTTL, int(MaxOfflineTTL/(24*time.Hour)))
	}
	req, err := offline.ParseRequest(request)
	if err != nil {
		return IssuedCertificate{}, Errorf(EINVALID, "%v", err)
	}
	signer := s.offline.signer
	if signer == nil {
		return IssuedCertificate{}, Errorf(EUNPROCESSABLE, "this process holds no certificate signing key (it is in a file: pass it with --offline-key-file, or send the request to the server)")
	}
	out, err := mutate(s, ctx, func(tx Tx, now time.Time) (IssuedCertificate, AuditRecord, error) {
		var zero IssuedCertificate
		lic, err := tx.LockLicenseByKeyHash(req.License)
		if errors.Is(err, ErrNotFound) {
			return zero, AuditRecord{}, Errorf(ENOTFOUND, "no license has the key this request names")
		} else if err != nil {
			return zero, AuditRecord{}, err
		}
		if st := lic.Status(now); st != StatusActive {
			return zero, AuditRecord{}, Errorf(ECONFLICT, "the license is %s: no certificate can be issued for it", st)
		}
		issued := now.Truncate(time.Second)
		notAfter := issued.Add(ttl)
		if !lic.ExpiresAt.IsZero() && notAfter.After(lic.ExpiresAt) {
			notAfter = lic.ExpiresAt.Truncate(time.Second)
		}
		if !notAfter.After(now) {
			return zero, AuditRecord{}, Errorf(ECONFLICT, "the license expires within a second: no certificate can be issued for it")
		}
		prev, err := tx.OfflineCertificate(req.DeviceKey)
		found := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return zero, AuditRecord{}, err
		}
		if found && !prev.DeactivatedAt.IsZero() {
			return zero, AuditRecord{}, Errorf(ECONFLICT, "this device key was deactivated: the device requests again with its new key")
		}
		counter := req.Counter + 1
		if found {
			counter = max(prev.Counter, req.Counter) + 1
		}
		// The seat: the one the device key's certificate holds, when it still holds one on this
		// license; else a new one (the old session, if it holds a seat elsewhere, gives it back).
		var ref SessionRef
		replaced := false
		if found {
			sess, err := tx.Session(prev.SessionID)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return zero, AuditRecord{}, err
			}
			if err == nil && sess.HoldsSeat() {
				if sess.LicenseID == lic.ID && !sess.Expired(now) {
					if err := tx.SetSessionExpiry(sess.ID, notAfter, now); err != nil {
						return zero, AuditRecord{}, err
					}
					ref, replaced = SessionRef{sess.ID, sess.Timestamp}, true
				} else {
					if _, err := tx.RevokeSession(sess.ID, now); err != nil {
						return zero, AuditRecord{}, err
					}
					if sess.LicenseID == lic.ID {
						lic.Taken--
					}
				}
			}
		}
		if ref.ID == "" {
			var ok bool
			ref, ok, err = s.live.takeSeat(tx, lic, now, OfflineAddr, notAfter)
			if err != nil {
				return zero, AuditRecord{}, err
			}
			if !ok {
				return zero, AuditRecord{}, ErrOfflineSeats
			}
		}
		c := OfflineCertificate{DeviceKey: req.DeviceKey, LicenseID: lic.ID, License: lic.Key, Counter: counter, Nonce: req.Nonce,
			SessionID: ref.ID, IssuedAt: issued, NotBefore: issued.Add(-OfflineClockAllowance), NotAfter: notAfter}
		msg, err := offline.IssueCertificate(&offline.Certificate{License: req.License, LicenseHint: offline.LicenseHint(lic.Key),
			DeviceKey: req.DeviceKey, Nonce: req.Nonce, Counter: counter, Issued: issued, NotBefore: c.NotBefore, NotAfter: notAfter,
			SessionID: ref.ID, SessionTimestamp: ref.Timestamp}, signer)
		if err != nil {
			return zero, AuditRecord{}, err
		}
		if c.ID, err = tx.PutOfflineCertificate(c); err != nil {
			return zero, AuditRecord{}, err
		}
		after := map[string]any{"device": DeviceKeyID(req.DeviceKey), "counter": counter, "session": ref.ID,
			"notAfter": auditTime(notAfter), "replaced": replaced, "issuer": signer.Name()}
		return IssuedCertificate{Note: msg, Certificate: c, License: lic, Replaced: replaced},
			AuditRecord{Action: "offline.issue", Target: LicenseTarget(lic.Key), After: after}, nil
	})
	if err != nil {
		return IssuedCertificate{}, wrap("issue offline certificate", err)
	}
	if out.Replaced {
		s.live.changed(Change{SessionID: out.Certificate.SessionID})
	}
	return out, nil
}

// Deactivated is the outcome of DeactivateOffline.
type Deactivated struct {
	Certificate OfflineCertificate
	License     License
	// Freed is true when the certificate's seat was still held and is free now; false when it had
	// expired (its seat was freed at expiry).
	Freed bool
}

// DeactivateOffline takes a device's signed deactivation proof and frees the seat of the device
// key's certificate, once: the device key is done with for good. Errors: EINVALID for a malformed
// or badly signed proof or one that does not match the certificate issued to the key, ENOTFOUND
// when no certificate was issued to it, ECONFLICT when it was deactivated already (a replay frees
// nothing).
func (s *Service) DeactivateOffline(ctx context.Context, proof []byte) (Deactivated, error) {
	d, err := offline.ParseDeactivation(proof)
	if err != nil {
		return Deactivated{}, Errorf(EINVALID, "%v", err)
	}
	out, err := mutate(s, ctx, func(tx Tx, now time.Time) (Deactivated, AuditRecord, error) {
		var zero Deactivated
		c, err := tx.OfflineCertificate(d.DeviceKey)
		if errors.Is(err, ErrNotFound) {
			return zero, AuditRecord{}, Errorf(ENOTFOUND, "no certificate was issued to this device key")
		} else if err != nil {
			return zero, AuditRecord{}, err
		}
		lic, err := tx.LockLicenseByKeyHash(d.License)
		if errors.Is(err, ErrNotFound) || (err == nil && lic.ID != c.LicenseID) {
			return zero, AuditRecord{}, Errorf(EINVALID, "the proof names another license than the device key's certificate")
		} else if err != nil {
			return zero, AuditRecord{}, err
		}
		switch {
		case d.Counter > c.Counter:
			return zero, AuditRecord{}, Errorf(EINVALID, "the proof names certificate %d; the latest issued to this device key is %d", d.Counter, c.Counter)
		case d.Counter == c.Counter && d.Nonce != c.Nonce:
			return zero, AuditRecord{}, Errorf(EINVALID, "the proof's nonce is not that of the certificate it names")
		case !c.DeactivatedAt.IsZero():
			return zero, AuditRecord{}, Errorf(ECONFLICT, "this certificate was deactivated already at %s: nothing more is freed",
				c.DeactivatedAt.UTC().Format(time.RFC3339))
		}
		sess, err := tx.Session(c.SessionID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return zero, AuditRecord{}, err
		}
		freed := false
		if err == nil && sess.HoldsSeat() {
			if _, err := tx.RevokeSession(sess.ID, now); err != nil {
				return zero, AuditRecord{}, err
			}
			freed = true
		}
		c.DeactivatedAt = now
		if _, err := tx.PutOfflineCertificate(c); err != nil {
			return zero, AuditRecord{}, err
		}
		c.License = lic.Key
		return Deactivated{Certificate: c, License: lic, Freed: freed},
			AuditRecord{Action: "offline.deactivate", Target: LicenseTarget(lic.Key),
				Before: map[string]any{"device": DeviceKeyID(d.DeviceKey), "counter": c.Counter, "deactivatedAt": nil},
				After: map[string]any{"device": DeviceKeyID(d.DeviceKey), "counter": c.Counter, "deactivatedAt": auditTime(now),
					"freed": freed, "nextDevice": DeviceKeyID(d.NextDeviceKey)}}, nil
	})
	if err != nil {
		return Deactivated{}, wrap("deactivate offline certificate", err)
	}
	s.live.changed(Change{SessionID: out.Certificate.SessionID})
	return out, nil
}

// Status is what an operator sees of a certificate's state at now: "deactivated", "expired" or
// "active" (its license's own status is shown with the license).
func (c OfflineCertificate) Status(now time.Time) string {
	switch {
	case !c.DeactivatedAt.IsZero():
		return "deactivated"
	case !now.Before(c.NotAfter):
		return "expired"
	}
	return "active"
}

// OfflineCertificates yields the certificate records of one license (its key or serial; "" for
// every license), in id order after q.After, streaming. ENOTFOUND for an unknown license.
func (s *Service) OfflineCertificates(ctx context.Context, license string, q OfflineQuery) (iter.Seq2[OfflineCertificate, error], error) {
	if license != "" {
		lic, err := s.store.LicenseByKey(ctx, license)
		if err != nil {
			return nil, notFound(err, "license")
		}
		q.LicenseID = lic.ID
	}
	return s.store.ListOfflineCertificates(ctx, q), nil
}

// ParseOfflineTTL parses a certificate lifetime as the operator API and the CLI take it: a number
// of days ("90d") or a Go duration ("36h").
func ParseOfflineTTL(v string) (time.Duration, error) {
	bad := Errorf(EINVALID, "ttl must be a duration such as 90d or 36h")
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > int(MaxOfflineTTL/(24*time.Hour)) || strconv.Itoa(days) != n {
			return 0, bad
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, bad
	}
	return d, nil
}
