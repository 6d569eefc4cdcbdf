// Package offline holds the artefacts of OpenConsole's offline activation: the device's request,
// the console's certificate and the device's deactivation proof.
//
// Every artefact is a C2SP signed note (golang.org/x/mod/sumdb/note): a text of "key value" lines,
// the first naming the artefact and its version, then a blank line and exactly one Ed25519 signature
// line. Parsing is strict: lines come in one fixed order, each exactly once; unknown, duplicate,
// missing or non-canonically spelt lines are refused, so one artefact has exactly one byte form. An
// artefact is at most MaxSize bytes (each fits a QR code).
//
// A request and a deactivation are signed by the device key they name (proof of possession); a
// certificate is signed by the console's certificate signing key, which the device pins.
//
// The package imports only the standard library and note, so devices and the console share it.
package offline

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// MaxSize bounds every artefact in bytes; parsers refuse anything longer before reading it.
const MaxSize = 1024

// DeviceKeyName is the note key name of every device key. The device key itself is carried in the
// artefact's body, so the name carries no information; it is fixed so that a parser can build the
// verifier from the body alone.
const DeviceKeyName = "openconsole-device"

// First lines of the three artefacts (format version 1).
const (
	RequestHeader      = "openconsole offline request v1"
	CertificateHeader  = "openconsole offline certificate v1"
	DeactivationHeader = "openconsole offline deactivation v1"
)

// TimeLayout is the one spelling of times in artefacts: UTC, whole seconds, "Z".
const TimeLayout = "2006-01-02T15:04:05Z"

// ErrMalformed is wrapped by every refusal of an artefact's form (size, encoding, lines, values).
var ErrMalformed = errors.New("malformed offline artefact")

// ErrSignature is wrapped by every refusal of an artefact's signature: a signature that does not
// verify, a signer that is not the expected key, or a signature block that is not exactly one line.
var ErrSignature = errors.New("offline artefact signature not valid")

// LicenseHash returns the SHA-256 of the license key with surrounding white space removed. Artefacts
// carry this hash, never the key.
func LicenseHash(key string) [32]byte {
	return sha256.Sum256([]byte(strings.TrimSpace(key)))
}

// LicenseHint returns a short hint that lets a person recognise the license without revealing it:
// the last 4 characters of the trimmed key. It returns "" for keys shorter than 8 characters (where
// 4 characters would be half the key) and for keys whose last 4 characters are not all in
// [0-9A-Za-z._-].
func LicenseHint(key string) string {
	key = strings.TrimSpace(key)
	if len(key) < 8 {
		return ""
	}
	h := key[len(key)-4:]
	if !validHint(h) || h == "-" {
		return ""
	}
	return h
}

func validHint(h string) bool {
	if len(h) > 16 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Request is a device's offline activation request. DeviceKey is the Ed25519 public key the
// certificate will be bound to; License is LicenseHash of the key; Nonce is fresh per request;
// Counter is the highest certificate counter the device has installed (0 when none); DeviceTime is
// the device's wall clock, advisory only (whole seconds, UTC).
type Request struct {
	DeviceKey  ed25519.PublicKey
	License    [32]byte
	Nonce      [16]byte
	Counter    uint64
	DeviceTime time.Time
}

// Certificate is the console's answer to a Request: it binds one seat of License to DeviceKey from
// NotBefore to NotAfter. Issuer is the note name of the certificate signing key (IssueCertificate
// fills it in when empty). Nonce is the request's nonce; Counter increases per device key.
// SessionID (a lower-case UUID) and SessionTimestamp are a FLECS session the device may use when it
// comes online. Times are whole seconds in UTC.
type Certificate struct {
	Issuer           string
	License          [32]byte
	LicenseHint      string
	DeviceKey        ed25519.PublicKey
	Nonce            [16]byte
	Counter          uint64
	Issued           time.Time
	NotBefore        time.Time
	NotAfter         time.Time
	SessionID        string
	SessionTimestamp int64
}

// Deactivation is a device's proof that it gave up the certificate (Nonce, Counter) for License held
// by DeviceKey; it is signed by DeviceKey, which the device then stops using. NextDeviceKey is the
// device's new key (it must differ from DeviceKey). Time is the device's wall clock, advisory.
type Deactivation struct {
	DeviceKey     ed25519.PublicKey
	License       [32]byte
	Nonce         [16]byte
	Counter       uint64
	NextDeviceKey ed25519.PublicKey
	Time          time.Time
}

// GenerateSigningKey makes a certificate signing key named name (a note key name: non-empty, no
// spaces or '+'), in note's encodings: skey is secret, vkey is what devices pin.
func GenerateSigningKey(name string) (skey, vkey string, err error) {
	skey, vkey, err = note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", fmt.Errorf("generate signing key: %w", err)
	}
	return skey, vkey, nil
}

// GenerateDeviceKey makes a device key named DeviceKeyName. skey is its secret encoding (keep it
// 0600); DevicePublicKey recovers the public key from it.
func GenerateDeviceKey() (signer note.Signer, skey string, err error) {
	skey, _, err = note.GenerateKey(rand.Reader, DeviceKeyName)
	if err != nil {
		return nil, "", fmt.Errorf("generate device key: %w", err)
	}
	signer, err = note.NewSigner(skey)
	if err != nil {
		return nil, "", fmt.Errorf("generate device key: %w", err)
	}
	return signer, skey, nil
}

// DevicePublicKey returns the Ed25519 public key of a device signer key encoded by
// GenerateDeviceKey (or any note signer key with algorithm Ed25519).
func DevicePublicKey(skey string) (ed25519.PublicKey, error) {
	// A note signer key is "PRIVATE+KEY+name+hash+base64(alg || seed)".
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return nil, fmt.Errorf("device key: %w: not a note signer key", ErrMalformed)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, fmt.Errorf("device key: %w: not an Ed25519 signer key", ErrMalformed)
	}
	return ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey), nil
}

// VerifierKey returns the note verifier key (the string to pin) of an Ed25519 public key.
func VerifierKey(name string, pub ed25519.PublicKey) (string, error) {
	return note.NewEd25519VerifierKey(name, pub)
}

// NewRequest encodes r and signs it with device, which must be the key r.DeviceKey names (checked
// by verifying the signature it made). DeviceTime is truncated to whole seconds.
func NewRequest(r *Request, device note.Signer) ([]byte, error) {
	t, err := encTime(r.DeviceTime)
	if err != nil {
		return nil, fmt.Errorf("offline request: %w", err)
	}
	if len(r.DeviceKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("offline request: %w: device key must be %d bytes", ErrMalformed, ed25519.PublicKeySize)
	}
	var b strings.Builder
	b.WriteString(RequestHeader + "\n")
	line(&b, "device", encKey(r.DeviceKey))
	line(&b, "license", hex.EncodeToString(r.License[:]))
	line(&b, "nonce", hex.EncodeToString(r.Nonce[:]))
	line(&b, "counter", strconv.FormatUint(r.Counter, 10))
	line(&b, "time", t)
	msg, err := sign(b.String(), device, r.DeviceKey)
	if err != nil {
		return nil, fmt.Errorf("offline request: %w", err)
	}
	return msg, nil
}

// ParseRequest parses a request strictly and verifies its signature by the device key it names.
// Errors wrap ErrMalformed or ErrSignature.
func ParseRequest(msg []byte) (*Request, error) {
	fields, err := body(msg, RequestHeader, "device", "license", "nonce", "counter", "time")
	if err != nil {
		return nil, fmt.Errorf("offline request: %w", err)
	}
	r := &Request{}
	if r.DeviceKey, err = decKey(fields[0]); err != nil {
		return nil, fmt.Errorf("offline request: device: %w", err)
	}
	if err = decHex(fields[1], r.License[:]); err != nil {
		return nil, fmt.Errorf("offline request: license: %w", err)
	}
	if err = decHex(fields[2], r.Nonce[:]); err != nil {
		return nil, fmt.Errorf("offline request: nonce: %w", err)
	}
	if r.Counter, err = decUint(fields[3]); err != nil {
		return nil, fmt.Errorf("offline request: counter: %w", err)
	}
	if r.DeviceTime, err = decTime(fields[4]); err != nil {
		return nil, fmt.Errorf("offline request: time: %w", err)
	}
	if err := verifyByKey(msg, r.DeviceKey); err != nil {
		return nil, fmt.Errorf("offline request: %w", err)
	}
	return r, nil
}

// IssueCertificate encodes c and signs it with signer. An empty c.Issuer becomes signer.Name(); a
// non-empty one must equal it. NotBefore must not be after NotAfter; times are truncated to whole
// seconds; SessionID must be a lower-case UUID and SessionTimestamp ≥ 0.
func IssueCertificate(c *Certificate, signer note.Signer) ([]byte, error) {
	issuer := c.Issuer
	if issuer == "" {
		issuer = signer.Name()
	}
	if issuer != signer.Name() {
		return nil, fmt.Errorf("offline certificate: issuer %q is not the signing key's name %q", issuer, signer.Name())
	}
	text, err := certText(c, issuer)
	if err != nil {
		return nil, fmt.Errorf("offline certificate: %w", err)
	}
	msg, err := note.Sign(&note.Note{Text: text}, signer)
	if err != nil {
		return nil, fmt.Errorf("offline certificate: sign: %w", err)
	}
	return msg, nil
}

func certText(c *Certificate, issuer string) (string, error) {
	if !validName(issuer) {
		return "", fmt.Errorf("%w: issuer %q is not a note key name", ErrMalformed, issuer)
	}
	if !validHint(c.LicenseHint) || c.LicenseHint == "-" {
		return "", fmt.Errorf("%w: license hint must be up to 16 characters of [0-9A-Za-z._-]", ErrMalformed)
	}
	if len(c.DeviceKey) != ed25519.PublicKeySize {
		return "", fmt.Errorf("%w: device key must be %d bytes", ErrMalformed, ed25519.PublicKeySize)
	}
	issued, err := encTime(c.Issued)
	if err != nil {
		return "", fmt.Errorf("issued: %w", err)
	}
	nb, err := encTime(c.NotBefore)
	if err != nil {
		return "", fmt.Errorf("not-before: %w", err)
	}
	na, err := encTime(c.NotAfter)
	if err != nil {
		return "", fmt.Errorf("not-after: %w", err)
	}
	if c.NotBefore.Truncate(time.Second).After(c.NotAfter.Truncate(time.Second)) {
		return "", fmt.Errorf("%w: not-before is after not-after", ErrMalformed)
	}
	if !validUUID(c.SessionID) {
		return "", fmt.Errorf("%w: session must be a lower-case UUID", ErrMalformed)
	}
	if c.SessionTimestamp < 0 {
		return "", fmt.Errorf("%w: session timestamp must be >= 0", ErrMalformed)
	}
	hint := c.LicenseHint
	if hint == "" {
		hint = "-"
	}
	var b strings.Builder
	b.WriteString(CertificateHeader + "\n")
	line(&b, "issuer", issuer)
	line(&b, "license", hex.EncodeToString(c.License[:]))
	line(&b, "license-hint", hint)
	line(&b, "device", encKey(c.DeviceKey))
	line(&b, "nonce", hex.EncodeToString(c.Nonce[:]))
	line(&b, "counter", strconv.FormatUint(c.Counter, 10))
	line(&b, "issued", issued)
	line(&b, "not-before", nb)
	line(&b, "not-after", na)
	line(&b, "session", c.SessionID)
	line(&b, "session-timestamp", strconv.FormatInt(c.SessionTimestamp, 10))
	return b.String(), nil
}

var certKeys = []string{"issuer", "license", "license-hint", "device", "nonce", "counter", "issued",
	"not-before", "not-after", "session", "session-timestamp"}

// ParseCertificate parses a certificate strictly and verifies its one signature with v; the issuer
// line must name v. Errors wrap ErrMalformed or ErrSignature. It does not judge time, device or
// counter: that is the device's installation rule.
func ParseCertificate(msg []byte, v note.Verifier) (*Certificate, error) {
	if v == nil {
		return nil, fmt.Errorf("offline certificate: %w: no verifier", ErrSignature)
	}
	c, err := parseCertBody(msg)
	if err != nil {
		return nil, fmt.Errorf("offline certificate: %w", err)
	}
	if c.Issuer != v.Name() {
		return nil, fmt.Errorf("offline certificate: %w: issuer %q is not the pinned key %q", ErrSignature, c.Issuer, v.Name())
	}
	if err := verifyWith(msg, v); err != nil {
		return nil, fmt.Errorf("offline certificate: %w", err)
	}
	return c, nil
}

func parseCertBody(msg []byte) (*Certificate, error) {
	f, err := body(msg, CertificateHeader, certKeys...)
	if err != nil {
		return nil, err
	}
	c := &Certificate{Issuer: f[0]}
	if !validName(c.Issuer) {
		return nil, fmt.Errorf("issuer: %w", ErrMalformed)
	}
	if err = decHex(f[1], c.License[:]); err != nil {
		return nil, fmt.Errorf("license: %w", err)
	}
	switch {
	case f[2] == "-":
	case f[2] == "" || !validHint(f[2]):
		return nil, fmt.Errorf("license-hint: %w", ErrMalformed)
	default:
		c.LicenseHint = f[2]
	}
	if c.DeviceKey, err = decKey(f[3]); err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	if err = decHex(f[4], c.Nonce[:]); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	if c.Counter, err = decUint(f[5]); err != nil {
		return nil, fmt.Errorf("counter: %w", err)
	}
	if c.Issued, err = decTime(f[6]); err != nil {
		return nil, fmt.Errorf("issued: %w", err)
	}
	if c.NotBefore, err = decTime(f[7]); err != nil {
		return nil, fmt.Errorf("not-before: %w", err)
	}
	if c.NotAfter, err = decTime(f[8]); err != nil {
		return nil, fmt.Errorf("not-after: %w", err)
	}
	if c.NotBefore.After(c.NotAfter) {
		return nil, fmt.Errorf("%w: not-before is after not-after", ErrMalformed)
	}
	if !validUUID(f[9]) {
		return nil, fmt.Errorf("session: %w", ErrMalformed)
	}
	c.SessionID = f[9]
	ts, err := decUint(f[10])
	if err != nil || ts > 1<<63-1 {
		return nil, fmt.Errorf("session-timestamp: %w", ErrMalformed)
	}
	c.SessionTimestamp = int64(ts)
	return c, nil
}

// NewDeactivation encodes d and signs it with oldDevice, which must be the key d.DeviceKey names.
// NextDeviceKey must be a different key. Time is truncated to whole seconds.
func NewDeactivation(d *Deactivation, oldDevice note.Signer) ([]byte, error) {
	t, err := encTime(d.Time)
	if err != nil {
		return nil, fmt.Errorf("offline deactivation: %w", err)
	}
	if len(d.DeviceKey) != ed25519.PublicKeySize || len(d.NextDeviceKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("offline deactivation: %w: keys must be %d bytes", ErrMalformed, ed25519.PublicKeySize)
	}
	if bytes.Equal(d.DeviceKey, d.NextDeviceKey) {
		return nil, fmt.Errorf("offline deactivation: %w: next device key equals the device key", ErrMalformed)
	}
	var b strings.Builder
	b.WriteString(DeactivationHeader + "\n")
	line(&b, "device", encKey(d.DeviceKey))
	line(&b, "license", hex.EncodeToString(d.License[:]))
	line(&b, "nonce", hex.EncodeToString(d.Nonce[:]))
	line(&b, "counter", strconv.FormatUint(d.Counter, 10))
	line(&b, "next-device", encKey(d.NextDeviceKey))
	line(&b, "time", t)
	msg, err := sign(b.String(), oldDevice, d.DeviceKey)
	if err != nil {
		return nil, fmt.Errorf("offline deactivation: %w", err)
	}
	return msg, nil
}

// ParseDeactivation parses a deactivation strictly and verifies its signature by the device key it
// names. Errors wrap ErrMalformed or ErrSignature.
func ParseDeactivation(msg []byte) (*Deactivation, error) {
	f, err := body(msg, DeactivationHeader, "device", "license", "nonce", "counter", "next-device", "time")
	if err != nil {
		return nil, fmt.Errorf("offline deactivation: %w", err)
	}
	d := &Deactivation{}
	if d.DeviceKey, err = decKey(f[0]); err != nil {
		return nil, fmt.Errorf("offline deactivation: device: %w", err)
	}
	if err = decHex(f[1], d.License[:]); err != nil {
		return nil, fmt.Errorf("offline deactivation: license: %w", err)
	}
	if err = decHex(f[2], d.Nonce[:]); err != nil {
		return nil, fmt.Errorf("offline deactivation: nonce: %w", err)
	}
	if d.Counter, err = decUint(f[3]); err != nil {
		return nil, fmt.Errorf("offline deactivation: counter: %w", err)
	}
	if d.NextDeviceKey, err = decKey(f[4]); err != nil {
		return nil, fmt.Errorf("offline deactivation: next-device: %w", err)
	}
	if bytes.Equal(d.DeviceKey, d.NextDeviceKey) {
		return nil, fmt.Errorf("offline deactivation: %w: next device key equals the device key", ErrMalformed)
	}
	if d.Time, err = decTime(f[5]); err != nil {
		return nil, fmt.Errorf("offline deactivation: time: %w", err)
	}
	if err := verifyByKey(msg, d.DeviceKey); err != nil {
		return nil, fmt.Errorf("offline deactivation: %w", err)
	}
	return d, nil
}

// --- encoding helpers ---

func line(b *strings.Builder, k, v string) {
	b.WriteString(k)
	b.WriteByte(' ')
	b.WriteString(v)
	b.WriteByte('\n')
}

func encKey(k ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(k) }

func decKey(s string) (ed25519.PublicKey, error) {
	raw, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(raw) != ed25519.PublicKeySize || base64.StdEncoding.EncodeToString(raw) != s {
		return nil, fmt.Errorf("%w: want %d bytes in base64", ErrMalformed, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

func decHex(s string, dst []byte) error {
	// Lower-case only, exact length: one spelling.
	if len(s) != 2*len(dst) || strings.ToLower(s) != s {
		return fmt.Errorf("%w: want %d lower-case hex digits", ErrMalformed, 2*len(dst))
	}
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		return fmt.Errorf("%w: want %d lower-case hex digits", ErrMalformed, 2*len(dst))
	}
	return nil
}

func decUint(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, fmt.Errorf("%w: want a decimal integer without sign or leading zeros", ErrMalformed)
	}
	return n, nil
}

func encTime(t time.Time) (string, error) {
	t = t.UTC().Truncate(time.Second)
	if t.Year() < 1970 || t.Year() > 9999 {
		return "", fmt.Errorf("%w: time %v outside 1970..9999", ErrMalformed, t)
	}
	return t.Format(TimeLayout), nil
}

func decTime(s string) (time.Time, error) {
	t, err := time.Parse(TimeLayout, s)
	if err != nil || t.Year() < 1970 || t.Format(TimeLayout) != s {
		return time.Time{}, fmt.Errorf("%w: want a time like 2026-01-02T15:04:05Z", ErrMalformed)
	}
	return t.UTC(), nil
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// validName is note's rule for key names, narrowed to printable ASCII so a name has one spelling.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '+' {
			return false
		}
	}
	return true
}

// body checks size and form of a signed note and returns the values of its text lines: first the
// header, then each key of keys in order, "key value" with exactly one space. The signature block
// must be exactly one line; it is checked (not verified) here.
func body(msg []byte, header string, keys ...string) ([]string, error) {
	if len(msg) > MaxSize {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxSize)
	}
	split := bytes.LastIndex(msg, []byte("\n\n"))
	if split < 0 {
		return nil, fmt.Errorf("%w: no signature block", ErrMalformed)
	}
	text := string(msg[:split+1])
	if strings.Contains(text, "\r") {
		return nil, fmt.Errorf("%w: carriage return", ErrMalformed)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if lines[0] != header {
		return nil, fmt.Errorf("%w: first line is not %q", ErrMalformed, header)
	}
	lines = lines[1:]
	vals := make([]string, len(keys))
	for i, k := range keys {
		if i >= len(lines) {
			return nil, fmt.Errorf("%w: missing line %q", ErrMalformed, k)
		}
		name, v, ok := strings.Cut(lines[i], " ")
		if !ok || name != k {
			if seen(keys[:i], name) {
				return nil, fmt.Errorf("%w: duplicate or misplaced line %q", ErrMalformed, name)
			}
			if seen(keys, name) {
				return nil, fmt.Errorf("%w: line %q out of order (want %q)", ErrMalformed, name, k)
			}
			return nil, fmt.Errorf("%w: unknown line %q (want %q)", ErrMalformed, trunc(name), k)
		}
		if v == "" || strings.TrimSpace(v) != v || strings.ContainsAny(v, " \t") {
			return nil, fmt.Errorf("%w: line %q: value must be one word", ErrMalformed, k)
		}
		vals[i] = v
	}
	if len(lines) > len(keys) {
		name, _, _ := strings.Cut(lines[len(keys)], " ")
		if seen(keys, name) {
			return nil, fmt.Errorf("%w: duplicate line %q", ErrMalformed, name)
		}
		return nil, fmt.Errorf("%w: unknown line %q", ErrMalformed, trunc(name))
	}
	sigs := msg[split+2:]
	if bytes.Count(sigs, []byte("\n")) != 1 || !bytes.HasSuffix(sigs, []byte("\n")) {
		return nil, fmt.Errorf("%w: want exactly one signature line", ErrSignature)
	}
	return vals, nil
}

func seen(keys []string, k string) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

func trunc(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// sign signs text with s and checks that the signature verifies under pub named DeviceKeyName, so
// that an artefact never names a key other than the one that signed it.
func sign(text string, s note.Signer, pub ed25519.PublicKey) ([]byte, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: no signer", ErrSignature)
	}
	if s.Name() != DeviceKeyName {
		return nil, fmt.Errorf("%w: device signer must be named %q", ErrSignature, DeviceKeyName)
	}
	msg, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if err := verifyByKey(msg, pub); err != nil {
		return nil, fmt.Errorf("%w: signer is not the device key named in the body", ErrSignature)
	}
	return msg, nil
}

func verifyByKey(msg []byte, pub ed25519.PublicKey) error {
	vkey, err := note.NewEd25519VerifierKey(DeviceKeyName, pub)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return verifyWith(msg, v)
}

// verifyWith opens msg with v alone and insists on one signature by v in canonical base64, so that
// the bytes are the only encoding of the artefact.
func verifyWith(msg []byte, v note.Verifier) error {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	if len(n.Sigs) != 1 || len(n.UnverifiedSigs) != 0 {
		return fmt.Errorf("%w: want exactly one signature", ErrSignature)
	}
	s := n.Sigs[0]
	raw, err := base64.StdEncoding.DecodeString(s.Base64)
	if err != nil || len(raw) != 4+ed25519.SignatureSize || binary.BigEndian.Uint32(raw) != v.KeyHash() {
		return fmt.Errorf("%w: signature encoding", ErrSignature)
	}
	want := n.Text + "\n— " + s.Name + " " + base64.StdEncoding.EncodeToString(raw) + "\n"
	if string(msg) != want {
		return fmt.Errorf("%w: signature not in canonical form", ErrSignature)
	}
	return nil
}
