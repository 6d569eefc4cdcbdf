package client

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// File names inside the state directory. The first two are FLECS Core's (wire contract §3.4), so a
// directory can move between Core and ocdev in either direction.
const (
	LicenseFile   = ".license"    // the license key (or serial), one line, no newline
	SessionFile   = ".session_id" // the session id, then its timestamp, on two lines
	DeviceKeyFile = ".device_key" // the offline device key, note signer encoding, 0600
	offlineDir    = "offline"     // request.note, pending.key, cert.note, state.json
)

// State is a device's state directory. Every write is atomic (temporary file, fsync, rename,
// fsync of the directory), so a crash leaves the old file or the new one, never a torn one.
type State struct {
	Dir string
}

// OpenState opens (and creates, mode 0700) the state directory dir.
func OpenState(dir string) (*State, error) {
	if dir == "" {
		return nil, stateErr("open state", fmt.Errorf("no directory given"))
	}
	if err := os.MkdirAll(filepath.Join(dir, offlineDir), 0o700); err != nil {
		return nil, stateErr("open state", err)
	}
	return &State{Dir: dir}, nil
}

// Session is a FLECS session as a device stores it. As in FLECS Core, either part may be absent:
// HasID and HasTimestamp say which are present.
type Session struct {
	ID           string
	Timestamp    uint64
	HasID        bool
	HasTimestamp bool
}

// Adopt applies FLECS Core's rule for a session received from the console (a 200 body or any
// X-Session-Id header): incoming replaces stored when stored has no id or no timestamp, or when
// incoming has a timestamp not lower than stored's. Otherwise stored is kept. older reports the
// case worth a warning: both have timestamps and incoming's is lower.
func Adopt(stored, incoming Session) (result Session, adopted, older bool) {
	switch {
	case !stored.HasID || !stored.HasTimestamp:
		return incoming, true, false
	case incoming.HasTimestamp && incoming.Timestamp >= stored.Timestamp:
		return incoming, true, false
	default:
		return stored, false, incoming.HasTimestamp
	}
}

// License returns the stored license key, "" when none is stored. Like FLECS Core it reads the
// first line of .license.
func (s *State) License() (string, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, LicenseFile))
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", stateErr("read license", err)
	}
	return firstLine(string(b)), nil
}

// SetLicense stores the license key as FLECS Core does: the key, no newline, mode 0600.
func (s *State) SetLicense(key string) error {
	if strings.ContainsAny(key, "\r\n") {
		return stateErr("write license", fmt.Errorf("license key contains a line break"))
	}
	if err := writeFileAtomic(filepath.Join(s.Dir, LicenseFile), []byte(key), 0o600); err != nil {
		return stateErr("write license", err)
	}
	return nil
}

// Session returns the stored session, read by FLECS Core's rules: the first line is the id, the
// second the timestamp if it parses as an unsigned integer. A missing file is an empty session.
func (s *State) Session() (Session, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, SessionFile))
	if os.IsNotExist(err) {
		return Session{}, nil
	}
	if err != nil {
		return Session{}, stateErr("read session", err)
	}
	return parseSessionFile(string(b)), nil
}

func parseSessionFile(content string) Session {
	var sess Session
	lines := rustLines(content)
	if len(lines) > 0 {
		sess.ID, sess.HasID = lines[0], true
	}
	if len(lines) > 1 {
		if ts, err := strconv.ParseUint(lines[1], 10, 64); err == nil {
			sess.Timestamp, sess.HasTimestamp = ts, true
		}
	}
	return sess
}

// SetSession stores sess as FLECS Core does: "id\ntimestamp", or just the id when it has no
// timestamp, or an empty file when it has no id; no final newline.
func (s *State) SetSession(sess Session) error {
	var content string
	switch {
	case sess.HasID && sess.HasTimestamp:
		content = sess.ID + "\n" + strconv.FormatUint(sess.Timestamp, 10)
	case sess.HasID:
		content = sess.ID
	}
	if strings.ContainsAny(sess.ID, "\r\n") {
		return stateErr("write session", fmt.Errorf("session id contains a line break"))
	}
	if err := writeFileAtomic(filepath.Join(s.Dir, SessionFile), []byte(content), 0o600); err != nil {
		return stateErr("write session", err)
	}
	return nil
}

// rustLines splits like Rust's str::lines: on "\n", dropping one "\r" before it, with no empty
// last element for a final newline.
func rustLines(s string) []string {
	if s == "" {
		return nil
	}
	parts := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i, p := range parts {
		parts[i] = strings.TrimSuffix(p, "\r")
	}
	return parts
}

func firstLine(s string) string {
	if l := rustLines(s); len(l) > 0 {
		return l[0]
	}
	return ""
}

// writeFileAtomic writes data to path through a temporary file in the same directory: write,
// fsync, rename, fsync the directory. perm applies from the first byte written.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	// The rename is durable only once the directory entry is.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
