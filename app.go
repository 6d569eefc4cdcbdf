package openconsole

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// App is an installable FLECS app, named by its reverse-domain identifier. Official apps are pulled
// from the FLECS registry with credentials the console hands out (wire contract §2.7); others need
// none.
type App struct {
	Name     string
	Official bool
	// Credentials are the app's registry credentials, sealed by SealCredentials; "" when none are
	// set. They are never stored or shown in the clear.
	Credentials string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// RegistryCredentials are what a device logs in to the registry with to pull an official app.
type RegistryCredentials struct {
	Username string
	Password string
}

// TokenIssuance records the answered download-token requests of one session for one app version
// and one kind of answer (credentials handed out, for an official app, or none): when the first
// and the last were answered and how many there were. The record is aggregated so that a device
// asking in a loop adds to a count, not rows.
type TokenIssuance struct {
	ID           int64
	SessionID    string
	App          string
	Version      string
	Credentials  bool
	IssuedAt     time.Time // the first answer
	LastIssuedAt time.Time // the latest answer
	Count        int64     // how many answers
}

// ErrSessionNotFound refuses manifests and tokens to a request without a live session (wire
// contract §2.6, §2.7).
var ErrSessionNotFound = &Error{Code: EFORBIDDEN, Message: "Session not found"}

// LiveSession returns the session named by a raw X-Session-Id value if it is live. A missing, empty,
// malformed, unknown, revoked or expired session, or one whose license is revoked or expired, gives
// ErrSessionNotFound. Unlike Validate it does not count as activity for the idle timeout (wire
// contract §7.7: only activation and validate do).
func (s *Service) LiveSession(ctx context.Context, raw string) (SessionRef, error) {
	sid, ok := ParseSessionID(raw)
	if !ok {
		return SessionRef{}, ErrSessionNotFound
	}
	now := s.clock.Now()
	st, err := s.live.state(ctx, sid, now)
	if errors.Is(err, ErrNotFound) {
		return SessionRef{}, ErrSessionNotFound
	} else if err != nil {
		return SessionRef{}, fmt.Errorf("session: %w", err)
	}
	if !s.live.isLive(st, now) {
		return SessionRef{}, ErrSessionNotFound
	}
	return SessionRef{sid, st.Session.Timestamp}, nil
}

// ManifestQuery is a manifest request after its session was checked: the app and version from the
// path and the two optional query parameters as sent (nil when absent).
type ManifestQuery struct {
	App, Version       string
	ManifestVersion    *string
	MaxManifestVersion *string
}

// Manifest returns the manifest variant a device asks for (wire contract §2.6): with
// manifest_version the variant with exactly that _schemaVersion, else with max_manifest_version the
// newest variant whose _schemaVersion is at most that, else the newest variant below schema 3.0.0
// when there is one and the newest otherwise (ManifestSelector.Select). A parameter that is not a
// semantic version gives EINVALID naming it; an unknown app or version, or no variant that fits,
// gives ENOTFOUND.
func (s *Service) Manifest(ctx context.Context, q ManifestQuery) (Manifest, error) {
	var sel ManifestSelector
	for _, p := range []struct {
		name string
		raw  *string
		dst  **Semver
	}{{"manifest_version", q.ManifestVersion, &sel.Exact}, {"max_manifest_version", q.MaxManifestVersion, &sel.Max}} {
		if p.raw == nil {
			continue
		}
		v, err := ParseSemver(*p.raw)
		if err != nil {
			return Manifest{}, Errorf(EINVALID, "Invalid query parameter %s", p.name)
		}
		*p.dst = &v
	}
	if sel.Exact != nil {
		sel.Max = nil // manifest_version wins (wire contract §7.8)
	}
	if !ValidAppName(q.App) {
		return Manifest{}, Errorf(ENOTFOUND, "App %s not found", truncateText(q.App, 100))
	}
	if q.Version == "" || len(q.Version) > 128 || !printable(q.Version) {
		return Manifest{}, Errorf(ENOTFOUND, "No manifest for %s version %s", q.App, truncateText(q.Version, 100))
	}
	variants, err := s.store.Manifests(ctx, q.App, q.Version)
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	if len(variants) == 0 {
		if _, err := s.store.App(ctx, q.App); errors.Is(err, ErrNotFound) {
			return Manifest{}, Errorf(ENOTFOUND, "App %s not found", q.App)
		} else if err != nil {
			return Manifest{}, fmt.Errorf("manifest: %w", err)
		}
		return Manifest{}, Errorf(ENOTFOUND, "No manifest for %s version %s", q.App, q.Version)
	}
	m, ok := sel.Select(variants)
	if !ok {
		return Manifest{}, Errorf(ENOTFOUND, "No manifest for %s version %s with %s", q.App, q.Version, sel)
	}
	return m, nil
}

// DownloadToken answers a device's request for registry credentials for an app version (wire
// contract §2.7) on behalf of a session that LiveSession has checked. It returns the credentials
// for an official app and nil for any other (unknown apps included: they need none). Each answer
// is counted in the TokenIssuance of its session, app version and kind. Missing app or version gives EINVALID.
func (s *Service) DownloadToken(ctx context.Context, session SessionRef, app, version string) (*RegistryCredentials, error) {
	if app == "" {
		return nil, MissingField("app")
	}
	if version == "" {
		return nil, MissingField("version")
	}
	if len(app) > 255 || len(version) > 128 || !printable(app) || !printable(version) {
		return nil, Errorf(EINVALID, "Invalid payload: app must be at most 255 and version at most 128 printable characters")
	}
	var creds *RegistryCredentials
	a, err := s.store.App(ctx, app)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("download token: %w", err)
	}
	if err == nil && a.Official {
		if a.Credentials == "" {
			return nil, fmt.Errorf("download token: no registry credentials are set for the official app %s", app)
		}
		keys, err := s.store.DataKeys(ctx)
		if err != nil {
			return nil, fmt.Errorf("download token: %w", err)
		}
		c, err := OpenCredentials(keys, app, a.Credentials)
		if err != nil {
			return nil, fmt.Errorf("download token: %s: %w", app, err)
		}
		creds = &c
	}
	rec := TokenIssuance{SessionID: session.ID, App: app, Version: version, Credentials: creds != nil,
		IssuedAt: s.clock.Now().UTC().Truncate(time.Millisecond)}
	if err := s.store.Update(ctx, func(tx Tx) error { return tx.RecordToken(rec) }); err != nil {
		return nil, wrap("download token", err)
	}
	return creds, nil
}

// AddManifest validates a manifest document (ParseManifest) and stores it as the variant for its
// app, version and _schemaVersion, replacing a variant stored before (replaced is then true). The
// app is created if it is new. official, when not nil, sets whether the app is official; otherwise
// a new app is unofficial and a known one keeps its flag. Errors: EINVALID naming the field.
func (s *Service) AddManifest(ctx context.Context, doc []byte, official *bool) (m Manifest, app App, replaced bool, err error) {
	m, err = ParseManifest(doc)
	if err != nil {
		return Manifest{}, App{}, false, err
	}
	type added struct {
		m        Manifest
		app      App
		replaced bool
	}
	out, err := mutate(s, ctx, func(tx Tx, now time.Time) (added, AuditRecord, error) {
		m := m
		m.CreatedAt = now
		a, err := tx.LockApp(m.App)
		if errors.Is(err, ErrNotFound) {
			a = App{Name: m.App, CreatedAt: now}
		} else if err != nil {
			return added{}, AuditRecord{}, err
		}
		wasOfficial := a.Official
		if official != nil {
			a.Official = *official
		}
		a.UpdatedAt = now
		if err := tx.PutApp(a); err != nil {
			return added{}, AuditRecord{}, err
		}
		replaced, err := tx.PutManifest(m)
		if err != nil {
			return added{}, AuditRecord{}, err
		}
		return added{m, a, replaced}, AuditRecord{Action: "manifest.add", Target: "app:" + a.Name,
			Before: map[string]any{"official": wasOfficial},
			After:  map[string]any{"official": a.Official, "version": m.Version, "schemaVersion": m.SchemaVersion, "replaced": replaced}}, nil
	})
	if err != nil {
		return Manifest{}, App{}, false, wrap("add manifest", err)
	}
	return out.m, out.app, out.replaced, nil
}

// Manifests lists the stored manifest variants, of one app or (app "") of all, ordered by app,
// version and _schemaVersion.
func (s *Service) Manifests(ctx context.Context, app string) ([]Manifest, error) {
	return s.store.Manifests(ctx, app, "")
}

// RemoveManifest removes the variants of an app version: all of them, or the one with
// schemaVersion when it is not "". It returns how many were removed; ENOTFOUND when none was.
func (s *Service) RemoveManifest(ctx context.Context, app, version, schemaVersion string) (int, error) {
	n, err := mutate(s, ctx, func(tx Tx, now time.Time) (int, AuditRecord, error) {
		n, err := tx.RemoveManifests(app, version, schemaVersion)
		if err == nil && n == 0 {
			if schemaVersion != "" {
				return 0, AuditRecord{}, Errorf(ENOTFOUND, "no manifest for %s version %s with _schemaVersion %s", app, version, schemaVersion)
			}
			return 0, AuditRecord{}, Errorf(ENOTFOUND, "no manifest for %s version %s", app, version)
		}
		return n, AuditRecord{Action: "manifest.remove", Target: "app:" + app,
			Before: map[string]any{"version": version, "schemaVersion": schemaVersion, "variants": n}}, err
	})
	if err != nil {
		return 0, wrap("remove manifest", err)
	}
	return n, nil
}

// App returns an app; ENOTFOUND when it is unknown.
func (s *Service) App(ctx context.Context, name string) (App, error) {
	a, err := s.store.App(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return App{}, Errorf(ENOTFOUND, "app %s not found", name)
	}
	return a, err
}

// SetRegistryCredentials stores the registry credentials of an app, encrypted (SealCredentials)
// with the newest data key, which is created on first use. Errors: EINVALID for an empty username
// or password, ENOTFOUND for an unknown app (add one of its manifests first).
func (s *Service) SetRegistryCredentials(ctx context.Context, app string, c RegistryCredentials) error {
	if c.Username == "" || c.Password == "" || len(c.Username) > 1024 || len(c.Password) > 8192 {
		return Errorf(EINVALID, "registry username and password must be 1 to 1024 and 1 to 8192 characters")
	}
	_, err := mutate(s, ctx, func(tx Tx, now time.Time) (struct{}, AuditRecord, error) {
		a, err := tx.LockApp(app)
		if errors.Is(err, ErrNotFound) {
			return struct{}{}, AuditRecord{}, Errorf(ENOTFOUND, "app %s not found: add one of its manifests first", app)
		} else if err != nil {
			return struct{}{}, AuditRecord{}, err
		}
		keys, err := tx.DataKeys()
		if err != nil {
			return struct{}{}, AuditRecord{}, err
		}
		if len(keys) == 0 {
			// Update transactions run one at a time, so no other process creates one meanwhile.
			k := NewDataKey(now)
			if err := tx.AddDataKey(k); err != nil {
				return struct{}{}, AuditRecord{}, err
			}
			keys = []DataKey{k}
		}
		sealed, err := SealCredentials(keys[len(keys)-1], app, c)
		if err != nil {
			return struct{}{}, AuditRecord{}, err
		}
		had := a.Credentials != ""
		a.Credentials, a.UpdatedAt = sealed, now
		return struct{}{}, AuditRecord{Action: "app.credentials", Target: "app:" + app,
			Before: map[string]any{"credentials": had}, After: map[string]any{"credentials": true, "username": c.Username}}, tx.PutApp(a)
	})
	return wrap("set registry credentials", err)
}

// TokenIssuances lists the recorded download-token answers, aggregated per session, app version
// and kind, in the order of their first answer: all of them or (sessionID not "") those of one
// session.
func (s *Service) TokenIssuances(ctx context.Context, sessionID string) ([]TokenIssuance, error) {
	if sessionID != "" {
		sid, ok := ParseSessionID(sessionID)
		if !ok {
			return nil, Errorf(EINVALID, "session id must be a UUID")
		}
		sessionID = sid
	}
	return s.store.TokenIssuances(ctx, sessionID)
}

// DataKey is a 256-bit key that encrypts secrets at rest, such as registry credentials. It is
// created on first use and kept in the database next to the JWT signing keys; the newest seals, and
// every stored key opens what it sealed.
type DataKey struct {
	ID        string
	Secret    []byte
	CreatedAt time.Time
}

// NewDataKey returns a data key with a 256-bit secret from crypto/rand.
func NewDataKey(now time.Time) DataKey {
	k := NewSigningKey(now) // the same shape: a random id and 32 random bytes
	return DataKey{ID: k.ID, Secret: k.Secret, CreatedAt: now}
}

// sealedPrefix marks the format of sealed credentials: "v1.<key id>.<base64url(nonce|ciphertext)>".
const sealedPrefix = "v1."

// credentialsAAD binds a sealed value to its app, so that one app's sealed credentials copied onto
// another app's row do not open.
func credentialsAAD(app string) []byte {
	return []byte("openconsole registry credentials\x00" + app)
}

// SealCredentials encrypts registry credentials for an app with AES-256-GCM under k, with a random
// nonce and the app name as additional data.
func SealCredentials(k DataKey, app string, c RegistryCredentials) (string, error) {
	aead, err := newAEAD(k)
	if err != nil {
		return "", err
	}
	plain, _ := json.Marshal(struct {
		U string `json:"u"`
		P string `json:"p"`
	}{c.Username, c.Password})
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	out := aead.Seal(nonce, nonce, plain, credentialsAAD(app))
	return sealedPrefix + k.ID + "." + base64.RawURLEncoding.EncodeToString(out), nil
}

// OpenCredentials decrypts what SealCredentials sealed for app, with the key among keys that it
// names. A wrong key, app or a tampered value gives an error (never a guess).
func OpenCredentials(keys []DataKey, app, sealed string) (RegistryCredentials, error) {
	rest, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return RegistryCredentials{}, errors.New("open credentials: unknown format")
	}
	kid, b64, ok := strings.Cut(rest, ".")
	if !ok {
		return RegistryCredentials{}, errors.New("open credentials: unknown format")
	}
	var key *DataKey
	for i := range keys {
		if keys[i].ID == kid {
			key = &keys[i]
		}
	}
	if key == nil {
		return RegistryCredentials{}, fmt.Errorf("open credentials: data key %s not found", kid)
	}
	raw, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil {
		return RegistryCredentials{}, errors.New("open credentials: unknown format")
	}
	aead, err := newAEAD(*key)
	if err != nil {
		return RegistryCredentials{}, err
	}
	if len(raw) < aead.NonceSize() {
		return RegistryCredentials{}, errors.New("open credentials: too short")
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], credentialsAAD(app))
	if err != nil {
		return RegistryCredentials{}, errors.New("open credentials: authentication failed")
	}
	var v struct {
		U string `json:"u"`
		P string `json:"p"`
	}
	if err := json.Unmarshal(plain, &v); err != nil {
		return RegistryCredentials{}, errors.New("open credentials: bad plaintext")
	}
	return RegistryCredentials{Username: v.U, Password: v.P}, nil
}

func newAEAD(k DataKey) (cipher.AEAD, error) {
	if len(k.Secret) != 32 {
		return nil, fmt.Errorf("data key %s: %d bytes, want 32", k.ID, len(k.Secret))
	}
	block, err := aes.NewCipher(k.Secret)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
