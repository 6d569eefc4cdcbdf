package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"openconsole"
	"openconsole/sqlstore"
	"openconsole/sqlstore/sqlstoretest"
)

// result is what one in-process run of the command line produced.
type result struct {
	code           int
	stdout, stderr string
}

// run runs the command line in process with stdin as standard input. Whatever the command, its
// output must never hold a password hash.
func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	r := result{code, stdout.String(), stderr.String()}
	if strings.Contains(r.stdout+r.stderr, "$argon2") {
		t.Errorf("openconsole %s printed a password hash:\n%s%s", strings.Join(args, " "), r.stdout, r.stderr)
	}
	return r
}

// runJSON runs a command that must succeed and decodes its stdout into v.
func runJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	r := run(t, "", args...)
	if r.code != 0 {
		t.Fatalf("openconsole %s: exit code %d, want 0; stderr:\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("openconsole %s: stdout is not the expected JSON: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
	if dec.More() {
		t.Fatalf("openconsole %s: more than one JSON value on stdout:\n%s", strings.Join(args, " "), r.stdout)
	}
}

// runItems runs a listing command and decodes its items into v (a pointer to a slice); the output
// must be exactly {"items": [...], "nextCursor": ...}. It returns nextCursor ("" for null).
func runItems(t *testing.T, v any, args ...string) string {
	t.Helper()
	var page struct {
		Items      json.RawMessage `json:"items"`
		NextCursor *string         `json:"nextCursor"`
	}
	runJSON(t, &page, args...)
	if page.Items == nil {
		t.Fatalf("openconsole %s: no items", strings.Join(args, " "))
	}
	dec := json.NewDecoder(strings.NewReader(string(page.Items)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("openconsole %s: items are not the expected JSON: %v\n%s", strings.Join(args, " "), err, page.Items)
	}
	if page.NextCursor == nil {
		return ""
	}
	return *page.NextCursor
}

// runFail runs a command that must fail with code, print nothing on stdout and a message
// containing msg on stderr.
func runFail(t *testing.T, code int, msg string, args ...string) result {
	t.Helper()
	r := run(t, "", args...)
	if r.code != code {
		t.Errorf("openconsole %s: exit code %d, want %d; stderr:\n%s", strings.Join(args, " "), r.code, code, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("openconsole %s: stdout = %q, want it empty on error", strings.Join(args, " "), r.stdout)
	}
	if !strings.Contains(r.stderr, msg) {
		t.Errorf("openconsole %s: stderr = %q, want a message containing %q", strings.Join(args, " "), r.stderr, msg)
	}
	// Runtime errors are one line; usage errors may come from package flag and carry the help.
	if code == 1 && (!strings.HasPrefix(r.stderr, "openconsole: ") || strings.Count(r.stderr, "\n") != 1) {
		t.Errorf("openconsole %s: stderr = %q, want one line \"openconsole: ...\"", strings.Join(args, " "), r.stderr)
	}
	return r
}

// jsonKeys returns the sorted keys of the JSON object s.
func jsonKeys(t *testing.T, s string) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, s)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func checkKeys(t *testing.T, what, stdout string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if got := jsonKeys(t, stdout); !slices.Equal(got, want) {
		t.Errorf("%s keys = %v, want %v", what, got, want)
	}
}

// openStore opens the store at dsn directly, to check what the CLI wrote.
func openStore(t *testing.T, dsn string) *sqlstore.Store {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{})
	if err != nil {
		t.Fatalf("open store %s: %v", dsn, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// The JSON the commands print. runJSON refuses unknown fields, so these pin the shapes.
type userJSON struct {
	ID           int64     `json:"id"`
	Username     string    `json:"username"`
	Email        string    `json:"email"`
	DisplayName  string    `json:"displayName"`
	Vendor       bool      `json:"vendor"`
	Whitelabeled bool      `json:"whitelabeled"`
	CreatedAt    time.Time `json:"createdAt"`
}

type licenseJSONOut struct {
	ID           int64      `json:"id"`
	Key          string     `json:"key"`
	Kind         string     `json:"kind"`
	Owner        *string    `json:"owner"`
	Activations  int        `json:"activations"`
	LiveSessions *int       `json:"liveSessions"`
	ExpiresAt    *time.Time `json:"expiresAt"`
	Revoked      bool       `json:"revoked"`
	RevokedAt    *time.Time `json:"revokedAt"`
	CreatedAt    time.Time  `json:"createdAt"`
}

type serialJSONOut struct {
	LicenseKey   string `json:"licenseKey"`
	SerialNumber string `json:"serial_number"`
	Model        string `json:"model"`
	Manufacturer struct {
		Name string `json:"name"`
		ID   int64  `json:"id"`
	} `json:"manufacturer"`
	ManufactureDate string    `json:"manufacture_date"`
	Status          int       `json:"status"`
	CreatedAt       time.Time `json:"created_at"`
}

type sessionJSONOut struct {
	ID         string     `json:"id"`
	License    string     `json:"license"`
	Timestamp  int64      `json:"timestamp"`
	Live       bool       `json:"live"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastSeenAt time.Time  `json:"lastSeenAt"`
	Revoked    bool       `json:"revoked"`
	RevokedAt  *time.Time `json:"revokedAt"`
}

type revokedSessionJSON struct {
	ID      string `json:"id"`
	Revoked bool   `json:"revoked"`
}

var keyPattern = regexp.MustCompile(`^[0-9A-F]{4}(-[0-9A-F]{4}){4}$`)

func findLicense(t *testing.T, ls []licenseJSONOut, key string) licenseJSONOut {
	t.Helper()
	for _, l := range ls {
		if l.Key == key {
			return l
		}
	}
	t.Fatalf("license %s not in license list %+v", key, ls)
	return licenseJSONOut{}
}

func findSession(t *testing.T, ss []sessionJSONOut, id string) sessionJSONOut {
	t.Helper()
	for _, s := range ss {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("session %s not in session list %+v", id, ss)
	return sessionJSONOut{}
}

func liveSessions(t *testing.T, l licenseJSONOut) int {
	t.Helper()
	if l.LiveSessions == nil {
		t.Fatalf("license list entry %s has no liveSessions", l.Key)
	}
	return *l.LiveSessions
}

func TestUserCreate(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		const pw = "correct-horse-battery"
		r := run(t, "", "--db", dsn, "user", "create", "--username", "alice", "--password", pw,
			"--email", "alice@example.com", "--display-name", "Alice A.", "--vendor", "--whitelabeled")
		if r.code != 0 {
			t.Fatalf("user create: exit code %d, want 0; stderr:\n%s", r.code, r.stderr)
		}
		checkKeys(t, "user create", r.stdout, "id", "username", "email", "displayName", "vendor", "whitelabeled", "createdAt")
		var u userJSON
		if err := json.Unmarshal([]byte(r.stdout), &u); err != nil {
			t.Fatal(err)
		}
		want := userJSON{ID: u.ID, Username: "alice", Email: "alice@example.com", DisplayName: "Alice A.", Vendor: true, Whitelabeled: true, CreatedAt: u.CreatedAt}
		if u != want {
			t.Errorf("user create printed %+v, want %+v", u, want)
		}
		if u.ID <= 0 || time.Since(u.CreatedAt) > time.Minute || u.CreatedAt.Location() != time.UTC {
			t.Errorf("user create: id %d, createdAt %v; want a positive id and a recent UTC time", u.ID, u.CreatedAt)
		}

		// The password is stored hashed, and neither it nor its hash is ever printed.
		stored, err := openStore(t, dsn).UserByUsername(context.Background(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		if !openconsole.CheckPassword(stored.PasswordHash, pw) {
			t.Errorf("stored hash does not match the password given with --password")
		}
		if out := r.stdout + r.stderr; strings.Contains(out, pw) || strings.Contains(out, stored.PasswordHash) {
			t.Errorf("user create printed the password or its hash:\n%s", out)
		}

		// Defaults: display name = username, flags false.
		var bob userJSON
		runJSON(t, &bob, "--db", dsn, "user", "create", "--username", "bob", "--password", "x")
		if bob.DisplayName != "bob" || bob.Vendor || bob.Whitelabeled || bob.Email != "" || bob.ID == u.ID {
			t.Errorf("user create with defaults printed %+v", bob)
		}

		r = runFail(t, 1, "exists already", "--db", dsn, "user", "create", "--username", "alice", "--password", "other-"+pw)
		if strings.Contains(r.stderr, pw) {
			t.Errorf("duplicate user error shows the password: %q", r.stderr)
		}
	})
}

func TestUserCreatePasswordStdin(t *testing.T) {
	dsn := sqlstoretest.DSN(t, "sqlite")
	const pw = "s3cret from stdin"
	for _, tc := range []struct {
		name, stdin string
	}{
		{"newline", pw + "\n"},
		{"crlf", pw + "\r\n"},
		{"no newline", pw},
		{"first line only", pw + "\nsecond line\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user := strings.ReplaceAll(tc.name, " ", "-")
			r := run(t, tc.stdin, "user", "create", "--db", dsn, "--username", user, "--password-stdin")
			if r.code != 0 {
				t.Fatalf("exit code %d, want 0; stderr:\n%s", r.code, r.stderr)
			}
			if strings.Contains(r.stdout+r.stderr, pw) {
				t.Errorf("user create printed the password:\n%s%s", r.stdout, r.stderr)
			}
			u, err := openStore(t, dsn).UserByUsername(context.Background(), user)
			if err != nil {
				t.Fatal(err)
			}
			if !openconsole.CheckPassword(u.PasswordHash, pw) {
				t.Errorf("stored password for stdin %q is not %q", tc.stdin, pw)
			}
		})
	}
	t.Run("errors", func(t *testing.T) {
		runFail(t, 1, "no password on standard input", "--db", dsn, "user", "create", "--username", "e1", "--password-stdin")
		if r := run(t, "\n", "--db", dsn, "user", "create", "--username", "e2", "--password-stdin"); r.code != 2 || r.stdout != "" {
			t.Errorf("empty line on stdin: exit code %d, stdout %q; want 2 and nothing", r.code, r.stdout)
		}
		runFail(t, 2, "not both", "--db", dsn, "user", "create", "--username", "e3", "--password", "a", "--password-stdin")
		var stdout, stderr bytes.Buffer
		if code := Run(context.Background(), []string{"--db", dsn, "user", "create", "--username", "e4", "--password-stdin"}, nil, &stdout, &stderr); code != 1 {
			t.Errorf("nil stdin: exit code %d, want 1; stderr %q", code, stderr.String())
		}
	})
}

func TestLicenseCommands(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		runJSON(t, new(userJSON), "--db", dsn, "user", "create", "--username", "owner", "--password", "pw")

		r := run(t, "", "--db", dsn, "license", "create", "--owner", "owner", "--activations", "2")
		if r.code != 0 {
			t.Fatalf("license create: exit code %d; stderr:\n%s", r.code, r.stderr)
		}
		checkKeys(t, "license create", r.stdout, "id", "key", "kind", "owner", "activations", "expiresAt", "revoked", "revokedAt", "createdAt")
		var l1 licenseJSONOut
		if err := json.Unmarshal([]byte(r.stdout), &l1); err != nil {
			t.Fatal(err)
		}
		if !keyPattern.MatchString(l1.Key) {
			t.Errorf("generated key %q, want the form XXXX-XXXX-XXXX-XXXX-XXXX", l1.Key)
		}
		if l1.Kind != "key" || l1.Owner == nil || *l1.Owner != "owner" || l1.Activations != 2 ||
			l1.ExpiresAt != nil || l1.Revoked || l1.RevokedAt != nil || l1.LiveSessions != nil {
			t.Errorf("license create printed %+v", l1)
		}

		// Own key, expiry, no owner; the default is one activation.
		var l2 licenseJSONOut
		runJSON(t, &l2, "license", "create", "--key", "MY-KEY_1.x", "--expires", "2030-01-02T03:04:05+02:00", "--db", dsn)
		wantExp := time.Date(2030, 1, 2, 1, 4, 5, 0, time.UTC)
		if l2.Key != "MY-KEY_1.x" || l2.Owner != nil || l2.Activations != 1 || l2.ExpiresAt == nil || !l2.ExpiresAt.Equal(wantExp) {
			t.Errorf("license create --key --expires printed %+v (expiresAt %v), want key MY-KEY_1.x, no owner, 1 activation, expiry %v",
				l2, l2.ExpiresAt, wantExp)
		}

		var list []licenseJSONOut
		runItems(t, &list, "--db", dsn, "license", "list")
		if len(list) != 2 {
			t.Fatalf("license list has %d entries, want 2: %+v", len(list), list)
		}
		for _, l := range list {
			if got := liveSessions(t, l); got != 0 {
				t.Errorf("license %s: liveSessions %d, want 0", l.Key, got)
			}
		}
		if got := findLicense(t, list, l1.Key); got.ID != l1.ID || got.Activations != 2 || *got.Owner != "owner" {
			t.Errorf("license list entry %+v, want the created %+v", got, l1)
		}

		var rev licenseJSONOut
		runJSON(t, &rev, "--db", dsn, "license", "revoke", l1.Key)
		if !rev.Revoked || rev.RevokedAt == nil || rev.Key != l1.Key || rev.ID != l1.ID {
			t.Errorf("license revoke printed %+v, want %s revoked with a time", rev, l1.Key)
		}
		// Revoking again is harmless and keeps the first time.
		var rev2 licenseJSONOut
		runJSON(t, &rev2, "--db", dsn, "license", "revoke", l1.Key)
		if !rev2.Revoked || rev2.RevokedAt == nil || !rev2.RevokedAt.Equal(*rev.RevokedAt) {
			t.Errorf("second license revoke printed %+v, want revokedAt %v kept", rev2, rev.RevokedAt)
		}
		runItems(t, &list, "--db", dsn, "license", "list")
		if got := findLicense(t, list, l1.Key); !got.Revoked || got.RevokedAt == nil {
			t.Errorf("license list after revoke: %+v, want revoked", got)
		}
		if got := findLicense(t, list, l2.Key); got.Revoked {
			t.Errorf("license list: %s revoked too: %+v", l2.Key, got)
		}

		for _, tc := range []struct {
			name string
			msg  string
			args []string
		}{
			{"unknown owner", `user "nobody" not found`, []string{"license", "create", "--owner", "nobody"}},
			{"duplicate key", "exists already", []string{"license", "create", "--key", "MY-KEY_1.x"}},
			{"key with a space", "license key", []string{"license", "create", "--key", "bad key"}},
			{"key not ASCII", "license key", []string{"license", "create", "--key", "KEY-ä"}},
			{"key too long", "license key", []string{"license", "create", "--key", strings.Repeat("K", openconsole.MaxKeyLength+1)}},
			{"zero activations", "activations", []string{"license", "create", "--activations", "0"}},
			{"negative activations", "activations", []string{"license", "create", "--activations", "-3"}},
			{"revoke unknown", "license not found", []string{"license", "revoke", "NO-SUCH-KEY"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				runFail(t, 1, tc.msg, append([]string{"--db", dsn}, tc.args...)...)
			})
		}
		runItems(t, &list, "--db", dsn, "license", "list")
		if len(list) != 2 {
			t.Errorf("refused creates left %d licenses, want 2: %+v", len(list), list)
		}
	})
}

func TestSerialRegister(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		args := []string{"--db", dsn, "serial", "register", "--serial", "SN123456789", "--model", "IPC-xyz",
			"--manufacturer", "Example Manufacturer", "--manufacturer-id", "791", "--date", "2025-01-01"}
		r := run(t, "", args...)
		if r.code != 0 {
			t.Fatalf("serial register: exit code %d; stderr:\n%s", r.code, r.stderr)
		}
		checkKeys(t, "serial register", r.stdout, "licenseKey", "serial_number", "model", "manufacturer", "manufacture_date", "status", "created_at")
		var sr serialJSONOut
		if err := json.Unmarshal([]byte(r.stdout), &sr); err != nil {
			t.Fatal(err)
		}
		if sr.LicenseKey != "SN123456789" || sr.SerialNumber != "SN123456789" || sr.Model != "IPC-xyz" ||
			sr.Manufacturer.Name != "Example Manufacturer" || sr.Manufacturer.ID != 791 ||
			sr.ManufactureDate != "2025-01-01" || sr.Status != 0 || time.Since(sr.CreatedAt) > time.Minute {
			t.Errorf("serial register printed %+v", sr)
		}

		var list []licenseJSONOut
		runItems(t, &list, "--db", dsn, "license", "list")
		if got := findLicense(t, list, "SN123456789"); got.Kind != "serial" || got.Activations != 1 || got.Owner != nil {
			t.Errorf("license list shows the serial as %+v, want kind serial with 1 activation and no owner", got)
		}

		runFail(t, 1, "already registered", args...)
		runFail(t, 1, "manufacture_date", "--db", dsn, "serial", "register", "--serial", "SN2", "--model", "m",
			"--manufacturer", "x", "--date", "01.01.2025")
		runFail(t, 1, "serial_number", "--db", dsn, "serial", "register", "--serial", "SN 3", "--model", "m",
			"--manufacturer", "x", "--date", "2025-01-01")
	})
}

// activate activates a device on key directly through the service, as the server would.
func activate(t *testing.T, dsn, key string) openconsole.SessionRef {
	t.Helper()
	ctx := context.Background()
	st := openStore(t, dsn)
	svc, err := openconsole.NewService(ctx, st, openconsole.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	act, err := svc.Activate(ctx, openconsole.ActivateInput{LicenseKey: key})
	if err != nil || !act.Created {
		t.Fatalf("activate %s: %+v, %v; want a new session", key, act, err)
	}
	return act.Session
}

func TestSessionCommands(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		var l1, l2 licenseJSONOut
		runJSON(t, &l1, "--db", dsn, "license", "create", "--activations", "2")
		runJSON(t, &l2, "--db", dsn, "license", "create")

		var ss []sessionJSONOut
		r := run(t, "", "--db", dsn, "session", "list")
		if want := "{\n  \"items\": [],\n  \"nextCursor\": null\n}\n"; r.code != 0 || r.stdout != want {
			t.Errorf("session list without sessions: exit code %d, stdout %q; want 0 and %q", r.code, r.stdout, want)
		}

		s1 := activate(t, dsn, l1.Key)
		s2 := activate(t, dsn, l1.Key)
		s3 := activate(t, dsn, l2.Key)

		var raw []json.RawMessage
		if runItems(t, &raw, "--db", dsn, "session", "list"); len(raw) != 3 {
			t.Fatalf("session list: %d entries, want 3", len(raw))
		}
		checkKeys(t, "session list entry", string(raw[0]), "id", "license", "timestamp", "live", "createdAt", "lastSeenAt", "revoked", "revokedAt")
		runItems(t, &ss, "--db", dsn, "session", "list")
		for _, want := range []struct {
			ref openconsole.SessionRef
			key string
		}{{s1, l1.Key}, {s2, l1.Key}, {s3, l2.Key}} {
			got := findSession(t, ss, want.ref.ID)
			if got.License != want.key || got.Timestamp != want.ref.Timestamp || !got.Live || got.Revoked || got.RevokedAt != nil ||
				time.Since(got.CreatedAt) > time.Minute || got.LastSeenAt.Before(got.CreatedAt) {
				t.Errorf("session list entry %+v, want the live session %+v of %s", got, want.ref, want.key)
			}
		}
		runItems(t, &ss, "--db", dsn, "session", "list", "--license", l1.Key)
		if len(ss) != 2 {
			t.Errorf("session list --license %s: %d sessions, want 2", l1.Key, len(ss))
		}
		var list []licenseJSONOut
		runItems(t, &list, "--db", dsn, "license", "list")
		if got := liveSessions(t, findLicense(t, list, l1.Key)); got != 2 {
			t.Errorf("liveSessions of %s = %d, want 2", l1.Key, got)
		}

		// Ids are accepted in upper case and printed normalised.
		var rs revokedSessionJSON
		runJSON(t, &rs, "--db", dsn, "session", "revoke", strings.ToUpper(s1.ID))
		if rs != (revokedSessionJSON{s1.ID, true}) {
			t.Errorf("session revoke printed %+v, want {%s true}", rs, s1.ID)
		}
		runItems(t, &ss, "--db", dsn, "session", "list", "--license", l1.Key)
		if got := findSession(t, ss, s1.ID); got.Live || !got.Revoked || got.RevokedAt == nil {
			t.Errorf("revoked session listed as %+v", got)
		}
		if got := findSession(t, ss, s2.ID); !got.Live || got.Revoked {
			t.Errorf("other session listed as %+v, want it live", got)
		}
		runItems(t, &list, "--db", dsn, "license", "list")
		if got := liveSessions(t, findLicense(t, list, l1.Key)); got != 1 {
			t.Errorf("liveSessions of %s after a session revoke = %d, want 1", l1.Key, got)
		}

		// A revoked license takes its sessions down with it.
		runJSON(t, new(licenseJSONOut), "--db", dsn, "license", "revoke", l2.Key)
		runItems(t, &ss, "--db", dsn, "session", "list", "--license", l2.Key)
		if len(ss) != 1 || ss[0].Live || ss[0].Revoked {
			t.Errorf("sessions of a revoked license: %+v, want one not live and not itself revoked", ss)
		}
		runItems(t, &list, "--db", dsn, "license", "list")
		if got := liveSessions(t, findLicense(t, list, l2.Key)); got != 0 {
			t.Errorf("liveSessions of the revoked license %s = %d, want 0 (session list shows its session not live)", l2.Key, got)
		}

		runFail(t, 1, "session not found", "--db", dsn, "session", "revoke", "00000000-0000-4000-8000-000000000000")
		runFail(t, 1, "UUID", "--db", dsn, "session", "revoke", "not-a-uuid")
		runFail(t, 1, "license not found", "--db", dsn, "session", "list", "--license", "NO-SUCH-KEY")
	})
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  string
		args []string
	}{
		{"no command", "Usage:", nil},
		{"unknown command", `unknown command "frobnicate"`, []string{"frobnicate"}},
		{"unknown subcommand", `unknown command "user delete"`, []string{"user", "delete"}},
		{"missing subcommand", "license needs a subcommand", []string{"license"}},
		{"--db without value", "--db", []string{"--db"}},
		{"unknown flag", "flag provided but not defined", []string{"license", "list", "--bogus"}},
		{"user create without username", "needs --username", []string{"user", "create", "--password", "x"}},
		{"user create without password", "needs --username", []string{"user", "create", "--username", "x"}},
		{"user create positional", "takes 0 argument(s)", []string{"user", "create", "--username", "x", "--password", "y", "extra"}},
		{"bad --expires", "--expires", []string{"license", "create", "--expires", "tomorrow"}},
		{"--expires without zone", "--expires", []string{"license", "create", "--expires", "2030-01-01T00:00:00"}},
		{"--activations not a number", "invalid value", []string{"license", "create", "--activations", "two"}},
		{"license revoke without key", "takes 1 argument(s), got 0", []string{"license", "revoke"}},
		{"license revoke two keys", "takes 1 argument(s), got 2", []string{"license", "revoke", "A", "B"}},
		{"license list positional", "takes 0 argument(s)", []string{"license", "list", "x"}},
		{"session revoke without id", "takes 1 argument(s), got 0", []string{"session", "revoke"}},
		{"serial register without serial", "serial register needs", []string{"serial", "register", "--model", "m", "--manufacturer", "x", "--date", "2025-01-01"}},
		{"serial register without date", "serial register needs", []string{"serial", "register", "--serial", "S", "--model", "m", "--manufacturer", "x"}},
		{"serial register bad id", "invalid value", []string{"serial", "register", "--manufacturer-id", "abc"}},
		{"serve positional", "takes 0 argument(s)", []string{"serve", "extra"}},
		{"serve zero token ttl", "--token-ttl", []string{"serve", "--token-ttl", "0"}},
		{"serve negative session ttl", "--session-ttl", []string{"serve", "--session-ttl", "-1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A usage error is found before the database is touched.
			db := filepath.Join(t.TempDir(), "never.db")
			t.Setenv("OPENCONSOLE_DB", "sqlite:"+db)
			runFail(t, 2, tc.msg, tc.args...)
			if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a usage error created the database (stat: %v)", err)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"license", "list", "-h"}, {"user", "create", "--help"}} {
		r := run(t, "", args...)
		if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "Usage") {
			t.Errorf("openconsole %s: exit code %d, stdout %q, stderr %q; want 0, nothing, and usage on stderr",
				strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}
}

// TestDBFlag checks every way of naming the database: --db before or after the command, in both
// spellings, the later one winning, and OPENCONSOLE_DB below any flag.
func TestDBFlag(t *testing.T) {
	t.Setenv("OPENCONSOLE_DB", "sqlite:"+filepath.Join(t.TempDir(), "env-default.db"))
	for _, tc := range []struct {
		name string
		args func(dsn, other string) []string
	}{
		{"--db before", func(dsn, _ string) []string { return []string{"--db", dsn, "user", "create"} }},
		{"--db= before", func(dsn, _ string) []string { return []string{"--db=" + dsn, "user", "create"} }},
		{"-db before", func(dsn, _ string) []string { return []string{"-db", dsn, "user", "create"} }},
		{"--db after", func(dsn, _ string) []string { return []string{"user", "create", "--db", dsn} }},
		{"--db= after", func(dsn, _ string) []string { return []string{"user", "create", "--db=" + dsn} }},
		{"after wins over before", func(dsn, other string) []string { return []string{"--db", other, "user", "create", "--db", dsn} }},
		{"last before wins", func(dsn, other string) []string { return []string{"--db", other, "--db", dsn, "user", "create"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dsn, other := "sqlite:"+filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
			args := append(tc.args(dsn, other), "--username", "u", "--password", "p")
			runJSON(t, new(userJSON), args...)
			// The user is in dsn, and only there.
			runJSON(t, new(licenseJSONOut), "--db", dsn, "license", "create", "--owner", "u")
			runFail(t, 1, "not found", "--db", other, "license", "create", "--owner", "u")
			runFail(t, 1, "not found", "license", "create", "--owner", "u")
		})
	}
}

func TestDBEnv(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		t.Setenv("OPENCONSOLE_DB", dsn)
		runJSON(t, new(userJSON), "user", "create", "--username", "envuser", "--password", "p")
		if _, err := openStore(t, dsn).UserByUsername(context.Background(), "envuser"); err != nil {
			t.Errorf("user created with OPENCONSOLE_DB=%s is not there: %v", redactDSN(dsn), err)
		}
		// A flag beats the environment.
		other := "sqlite:" + filepath.Join(t.TempDir(), "other.db")
		var list []licenseJSONOut
		runJSON(t, new(licenseJSONOut), "license", "create", "--owner", "envuser")
		runItems(t, &list, "license", "list", "--db", other)
		if len(list) != 0 {
			t.Errorf("license list --db %s shows the licenses of OPENCONSOLE_DB: %+v", other, list)
		}
		runItems(t, &list, "license", "list")
		if len(list) != 1 {
			t.Errorf("license list on OPENCONSOLE_DB: %d licenses, want 1", len(list))
		}
	})
	t.Run("plain path", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "plain.db")
		t.Setenv("OPENCONSOLE_DB", path)
		runJSON(t, new(userJSON), "user", "create", "--username", "plain", "--password", "p")
		if _, err := openStore(t, "sqlite:"+path).UserByUsername(context.Background(), "plain"); err != nil {
			t.Errorf("user created with OPENCONSOLE_DB=%s: %v", path, err)
		}
	})
	t.Run("default", func(t *testing.T) {
		dir := t.TempDir()
		t.Chdir(dir)
		t.Setenv("OPENCONSOLE_DB", "")
		runJSON(t, new(userJSON), "user", "create", "--username", "dflt", "--password", "p")
		if _, err := os.Stat(filepath.Join(dir, "openconsole.db")); err != nil {
			t.Errorf("without --db or OPENCONSOLE_DB the database is not ./openconsole.db: %v", err)
		}
	})
	t.Run("unusable", func(t *testing.T) {
		t.Setenv("OPENCONSOLE_DB", filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"))
		runFail(t, 1, "", "license", "list")
	})
}

// TestNoSecretsPrinted checks that a database password never reaches the output: not from the
// help text of a flag error, not from a driver error quoting the DSN, not from the serve log.
func TestNoSecretsPrinted(t *testing.T) {
	const pw = "hunter2-Pa55"
	t.Run("flag error shows no env DSN", func(t *testing.T) {
		t.Setenv("OPENCONSOLE_DB", "postgres://bob:"+pw+"@127.0.0.1:1/x")
		r := runFail(t, 2, "flag provided but not defined", "user", "create", "--bogus")
		if strings.Contains(r.stderr, pw) {
			t.Errorf("stderr shows the DSN password:\n%s", r.stderr)
		}
	})
	for _, dsn := range []string{
		"postgres://bob:" + pw + "@127.0.0.1:abc/x",                  // url.Parse refuses it
		"postgres://bob:" + pw + "@127.0.0.1/x%zz",                   // bad escape
		"postgres://bob@127.0.0.1:1/x?password=" + pw + "&sslmode=x", // pgx refuses it
		"postgresql://bob:" + pw + "@127.0.0.1:1/x?connect_timeout=1&sslmode=disable",
	} {
		r := runFail(t, 1, "", "--db", dsn, "license", "list")
		if strings.Contains(r.stderr, pw) {
			t.Errorf("error for DSN %s shows the password:\n%s", redactDSN(dsn), r.stderr)
		}
	}
}

func TestRedactDSN(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"sqlite:/tmp/x.db", "sqlite:/tmp/x.db"},
		{"/tmp/x.db", "/tmp/x.db"},
		{"postgres://u:pw@h:5432/db?sslmode=disable", "postgres://u:xxxxx@h:5432/db?sslmode=disable"},
		{"postgresql://u@h/db?password=pw&sslmode=disable", "postgresql://u@h/db?password=xxxxx&sslmode=disable"},
		{"postgres://u@h/db?sslpassword=pw", "postgres://u@h/db?sslpassword=xxxxx"},
		{"postgres://u:pw@h:abc/db", "postgres://…"},
	} {
		if got := redactDSN(tc.dsn); got != tc.want {
			t.Errorf("redactDSN(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
}

func TestScrubSecrets(t *testing.T) {
	for _, tc := range []struct{ dsn, msg, want string }{
		{"postgres://u:p%40ss@h/db", `parse "postgres://u:p%40ss@h/db": bad`, `parse "postgres://u:xxxxx@h/db": bad`},
		{"postgres://u:p%40ss@h/db", "auth failed for p@ss", "auth failed for xxxxx"},
		{"postgres://u:a@b@h:x/db", `parse "postgres://u:a@b@h:x/db"`, `parse "postgres://u:xxxxx@h:x/db"`},
		{"postgres://u@h/db?sslmode=x&Password=pw9#frag", "password=pw9 refused", "password=xxxxx refused"},
		{"postgres://u@h/db", "nothing to hide", "nothing to hide"},
		{"sqlite:/tmp/pw.db", "open /tmp/pw.db", "open /tmp/pw.db"},
	} {
		if got := scrubSecrets(tc.msg, tc.dsn); got != tc.want {
			t.Errorf("scrubSecrets(%q, %q) = %q, want %q", tc.msg, tc.dsn, got, tc.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader in different goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

var listenRE = regexp.MustCompile(`msg="openconsole listening" addr=(\S+)`)

// TestServeInProcess runs serve through Run: it listens, answers, logs no password, and returns 0
// once its context is cancelled (what SIGTERM does in main).
func TestServeInProcess(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		const pw = "serve-Secret-77"
		if isPostgres(dsn) {
			// The test server trusts every connection, so a password in the DSN is accepted and
			// ignored: enough to see whether the log shows it.
			sep := "?"
			if strings.Contains(dsn, "?") {
				sep = "&"
			}
			dsn += sep + "password=" + pw
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var stdout, stderr syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--db", dsn}, strings.NewReader(""), &stdout, &stderr)
		}()
		var addr string
		for deadline := time.Now().Add(10 * time.Second); addr == ""; {
			if m := listenRE.FindStringSubmatch(stderr.String()); m != nil {
				addr = m[1]
				break
			}
			select {
			case code := <-done:
				t.Fatalf("serve exited with code %d before listening; stderr:\n%s", code, stderr.String())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("serve did not log its address; stderr:\n%s", stderr.String())
			}
		}
		resp, err := http.Post("http://"+addr+"/api/v2/device/license/validate", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := `{"statusCode":200,"statusText":"OK","data":{"isValid":false}}`; resp.StatusCode != 200 || string(body) != want {
			t.Errorf("validate without a session: %d %s, want 200 %s", resp.StatusCode, body, want)
		}
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exit code after cancel = %d, want 0; stderr:\n%s", code, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("serve did not return within 10s of its context being cancelled")
		}
		if got := stdout.String(); got != "" {
			t.Errorf("serve wrote %q on stdout, want nothing", got)
		}
		log := stderr.String()
		if !strings.Contains(log, `msg="shutting down"`) {
			t.Errorf("serve did not log its shutdown:\n%s", log)
		}
		if strings.Contains(log, pw) {
			t.Errorf("serve log shows the DSN password:\n%s", log)
		}
	})
	t.Run("listen fails", func(t *testing.T) {
		runFail(t, 1, "", "serve", "--addr", "127.0.0.1:notaport", "--db", sqlstoretest.DSN(t, "sqlite"))
	})
}

// execSQL runs a statement on the database at dsn behind OpenConsole's back, to corrupt it.
func execSQL(t *testing.T, dsn, query string) {
	t.Helper()
	driver, name := "pgx", dsn
	if strings.HasPrefix(dsn, "sqlite:") {
		driver, name = "sqlite", strings.TrimPrefix(dsn, "sqlite:")
	}
	db, err := sql.Open(driver, name)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// TestCheckCommand: openconsole check finds seat bookkeeping that disagrees with the sessions,
// exits 1 and names the license; --repair sets it right in one go, after which check passes.
func TestCheckCommand(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		var l1, l2 licenseJSONOut
		runJSON(t, &l1, "--db", dsn, "license", "create", "--activations", "3")
		runJSON(t, &l2, "--db", dsn, "license", "create", "--activations", "3")
		activate(t, dsn, l1.Key)
		activate(t, dsn, l1.Key)
		activate(t, dsn, l2.Key)
		type checkJSON struct {
			OK         bool `json:"ok"`
			Licenses   int  `json:"licenses"`
			HeldSeats  int  `json:"heldSeats"`
			Mismatches []struct {
				LicenseID int64  `json:"licenseId"`
				License   string `json:"license"`
				Taken     int    `json:"taken"`
				Held      int    `json:"held"`
			} `json:"mismatches"`
			Repaired bool `json:"repaired"`
		}
		var c checkJSON
		runJSON(t, &c, "--db", dsn, "check")
		if !c.OK || c.Licenses != 2 || c.HeldSeats != 3 || len(c.Mismatches) != 0 || c.Repaired {
			t.Fatalf("check of a sound database = %+v", c)
		}

		execSQL(t, dsn, "UPDATE licenses SET taken = 0 WHERE key = '"+l1.Key+"'")
		r := run(t, "", "--db", dsn, "check")
		if r.code != 1 || !strings.Contains(r.stderr, "--repair") {
			t.Errorf("check of a corrupt database: exit code %d, stderr %q; want 1 and a hint", r.code, r.stderr)
		}
		if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
			t.Fatal(err)
		}
		if c.OK || len(c.Mismatches) != 1 || c.Mismatches[0].LicenseID != l1.ID || c.Mismatches[0].Taken != 0 || c.Mismatches[0].Held != 2 ||
			strings.Contains(r.stdout, l1.Key) {
			t.Errorf("check found %+v, want license %d with taken 0 and 2 held, its key not in full:\n%s", c, l1.ID, r.stdout)
		}

		runJSON(t, &c, "--db", dsn, "check", "--repair")
		if c.OK || !c.Repaired || len(c.Mismatches) != 1 {
			t.Errorf("check --repair = %+v, want the mismatch reported and repaired", c)
		}
		runJSON(t, &c, "--db", dsn, "check")
		if !c.OK || len(c.Mismatches) != 0 {
			t.Errorf("check after the repair = %+v", c)
		}
		var list []licenseJSONOut
		runItems(t, &list, "--db", dsn, "license", "list")
		if got := liveSessions(t, findLicense(t, list, l1.Key)); got != 2 {
			t.Errorf("taken seats of %s after the repair = %d, want 2", l1.Key, got)
		}
	})
}

// TestListPaging: license list and session list page with --limit and --after; the pages together
// are the whole listing once, also when rows are added between pages.
func TestListPaging(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		var keys []string
		for i := 0; i < 5; i++ {
			var l licenseJSONOut
			runJSON(t, &l, "--db", dsn, "license", "create", "--activations", "10")
			keys = append(keys, l.Key)
		}
		for i := 0; i < 7; i++ {
			activate(t, dsn, keys[0])
		}
		activate(t, dsn, keys[1])

		var seen []string
		after := ""
		for page := 0; ; page++ {
			var ls []licenseJSONOut
			args := []string{"--db", dsn, "license", "list", "--limit", "2"}
			if after != "" {
				args = append(args, "--after", after)
			}
			after = runItems(t, &ls, args...)
			for _, l := range ls {
				seen = append(seen, l.Key)
			}
			if page == 0 {
				// Added after the first page: it comes last, and nothing is skipped or repeated.
				var l licenseJSONOut
				runJSON(t, &l, "--db", dsn, "license", "create")
				keys = append(keys, l.Key)
			}
			if after == "" {
				break
			}
			if len(ls) != 2 {
				t.Fatalf("a page with a next cursor has %d licenses, want 2", len(ls))
			}
		}
		if !slices.Equal(seen, keys) {
			t.Errorf("paged license list = %v, want %v", seen, keys)
		}

		for _, tc := range []struct {
			license string
			want    int
		}{{keys[0], 7}, {"", 8}} {
			var ids []string
			after = ""
			for {
				var ss []sessionJSONOut
				args := []string{"--db", dsn, "session", "list", "--limit", "3"}
				if tc.license != "" {
					args = append(args, "--license", tc.license)
				}
				if after != "" {
					args = append(args, "--after", after)
				}
				after = runItems(t, &ss, args...)
				for _, s := range ss {
					ids = append(ids, s.ID)
				}
				if after == "" {
					break
				}
			}
			if len(ids) != tc.want || len(slices.Compact(slices.Sorted(slices.Values(ids)))) != tc.want {
				t.Errorf("paged session list --license %q: %d ids (%d distinct), want %d", tc.license, len(ids), len(slices.Compact(slices.Sorted(slices.Values(ids)))), tc.want)
			}
		}
		runFail(t, 2, "--after", "--db", dsn, "license", "list", "--after", "nonsense")
		runFail(t, 2, "--after", "--db", dsn, "session", "list", "--after", openconsole.LicenseCursor(3))
		runFail(t, 2, "--limit", "--db", dsn, "session", "list", "--limit", "-1")
	})
}
