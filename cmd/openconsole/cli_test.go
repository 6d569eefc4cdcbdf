package main

import (
	"bytes"
	"context"
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
	"openconsole/admin"
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

// The JSON the commands print: the operator API's (runJSON refuses unknown fields, so these pin
// the shapes).
type (
	userJSON       = admin.UserJSON
	licenseJSONOut = admin.LicenseJSON
	sessionJSONOut = admin.SessionJSON
	serialJSONOut  = admin.SerialJSON
	tokenJSONOut   = admin.TokenJSON
)

var keyPattern = regexp.MustCompile(`^[0-9A-F]{4}(-[0-9A-F]{4}){4}$`)

// eachDB runs fn on a fresh, initialised database of every engine.
func eachDB(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		initDB(t, dsn)
		fn(t, dsn)
	})
}

// initDB creates the database at dsn with openconsole init.
func initDB(t *testing.T, dsn string) {
	t.Helper()
	var out struct {
		Database string `json:"database"`
		Engine   string `json:"engine"`
	}
	runJSON(t, &out, "--db", dsn, "init")
}

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

// liveSessions is the seats a listed license's sessions hold.
func liveSessions(t *testing.T, l licenseJSONOut) int {
	t.Helper()
	return l.Seats.Taken
}

func tm(t admin.Time) time.Time { return time.Time(t) }

// compact is a JSON value in its compact form.
func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// TestNoDatabaseIsNotCreated: only init (and serve) create a database; any other command on a
// path where none exists fails with "no database" and leaves nothing behind.
func TestNoDatabaseIsNotCreated(t *testing.T) {
	db := filepath.Join(t.TempDir(), "typo.db")
	for _, args := range [][]string{{"license", "list"}, {"user", "create", "--username", "u", "--password", "p"}, {"check"}, {"stats"}} {
		runFail(t, 1, "no database at "+db, append([]string{"--db", db}, args...)...)
		if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("openconsole %s created the database (stat: %v)", strings.Join(args, " "), err)
		}
	}
	initDB(t, "sqlite:"+db)
	var list []licenseJSONOut
	runItems(t, &list, "--db", db, "license", "list")
	// init on an existing database brings it up to date and keeps it.
	initDB(t, "sqlite:"+db)
}

func TestUserCommands(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		const pw = "correct-horse-battery"
		r := run(t, "", "--db", dsn, "user", "create", "--username", "alice", "--password", pw,
			"--email", "alice@example.com", "--display-name", "Alice A.", "--vendor", "--whitelabeled", "--role", "operator")
		if r.code != 0 {
			t.Fatalf("user create: exit code %d, want 0; stderr:\n%s", r.code, r.stderr)
		}
		checkKeys(t, "user create", r.stdout, "id", "username", "email", "displayName", "vendor", "whitelabeled", "disabled",
			"role", "createdAt", "updatedAt", "version")
		var u userJSON
		if err := json.Unmarshal([]byte(r.stdout), &u); err != nil {
			t.Fatal(err)
		}
		if u.Username != "alice" || u.Email != "alice@example.com" || u.DisplayName != "Alice A." || !u.Vendor || !u.Whitelabeled ||
			u.Disabled || u.Role == nil || *u.Role != "operator" || u.ID <= 0 || u.Version != 1 || time.Since(tm(u.CreatedAt)) > time.Minute {
			t.Errorf("user create printed %+v", u)
		}
		if !regexp.MustCompile(`"createdAt": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"`).MatchString(r.stdout) {
			t.Errorf("times are not RFC 3339 UTC with milliseconds:\n%s", r.stdout)
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

		// Defaults: display name = username, flags false, no role.
		var bob userJSON
		runJSON(t, &bob, "--db", dsn, "user", "create", "--username", "bob", "--password", "x")
		if bob.DisplayName != "bob" || bob.Vendor || bob.Whitelabeled || bob.Email != "" || bob.Role != nil || bob.ID == u.ID {
			t.Errorf("user create with defaults printed %+v", bob)
		}
		r = runFail(t, 1, "exists already", "--db", dsn, "user", "create", "--username", "alice", "--password", "other-"+pw)
		if strings.Contains(r.stderr, pw) {
			t.Errorf("duplicate user error shows the password: %q", r.stderr)
		}

		// Update: fields, disabling, the role, the password from stdin.
		var upd userJSON
		r = run(t, "new-pw\n", "--db", dsn, "user", "update", "bob", "--email", "b@x", "--disabled", "--role", "reader", "--password-stdin")
		if r.code != 0 {
			t.Fatalf("user update: exit code %d; stderr:\n%s", r.code, r.stderr)
		}
		if err := json.Unmarshal([]byte(r.stdout), &upd); err != nil {
			t.Fatal(err)
		}
		if upd.Email != "b@x" || !upd.Disabled || upd.Role == nil || *upd.Role != "reader" || upd.Version != 2 {
			t.Errorf("user update printed %+v", upd)
		}
		if got, _ := openStore(t, dsn).UserByUsername(context.Background(), "bob"); !openconsole.CheckPassword(got.PasswordHash, "new-pw") {
			t.Errorf("user update --password-stdin did not set the password")
		}
		runJSON(t, &upd, "--db", dsn, "user", "update", "bob", "--disabled=false", "--role", "none")
		if upd.Disabled || upd.Role != nil {
			t.Errorf("user update --disabled=false --role none printed %+v", upd)
		}
		runFail(t, 1, "changed", "--db", dsn, "user", "update", "bob", "--email", "c@x", "--if-version", "1")
		runFail(t, 1, "user not found", "--db", dsn, "user", "update", "nobody", "--email", "x")
		runFail(t, 1, "role", "--db", dsn, "user", "update", "bob", "--role", "king")
		runFail(t, 2, "something to change", "--db", dsn, "user", "update", "bob")

		var users []userJSON
		runItems(t, &users, "--db", dsn, "user", "list")
		if len(users) != 2 || users[0].Username != "alice" || users[1].Username != "bob" {
			t.Errorf("user list = %+v", users)
		}
		var shown userJSON
		runJSON(t, &shown, "--db", dsn, "user", "show", "alice")
		if shown.ID != u.ID {
			t.Errorf("user show = %+v", shown)
		}
	})
}

func TestUserCreatePasswordStdin(t *testing.T) {
	dsn := sqlstoretest.DSN(t, "sqlite")
	initDB(t, dsn)
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
	eachDB(t, func(t *testing.T, dsn string) {
		runJSON(t, new(userJSON), "--db", dsn, "user", "create", "--username", "owner", "--password", "pw")

		r := run(t, "", "--db", dsn, "license", "create", "--owner", "owner", "--seats", "2")
		if r.code != 0 {
			t.Fatalf("license create: exit code %d; stderr:\n%s", r.code, r.stderr)
		}
		checkKeys(t, "license create", r.stdout, "id", "key", "kind", "status", "owner", "seats", "expiresAt", "suspendedAt",
			"revokedAt", "note", "metadata", "createdAt", "updatedAt", "version")
		var l1 licenseJSONOut
		if err := json.Unmarshal([]byte(r.stdout), &l1); err != nil {
			t.Fatal(err)
		}
		if !keyPattern.MatchString(l1.Key) {
			t.Errorf("generated key %q, want the form XXXX-XXXX-XXXX-XXXX-XXXX", l1.Key)
		}
		if l1.Kind != "key" || l1.Status != "active" || l1.Owner == nil || *l1.Owner != "owner" || l1.Seats != (admin.Seats{Total: 2}) ||
			!tm(l1.ExpiresAt).IsZero() || !tm(l1.RevokedAt).IsZero() || l1.Version != 1 {
			t.Errorf("license create printed %+v", l1)
		}

		// Own key, expiry, note and metadata, no owner; the default is one seat; --activations still works.
		var l2 licenseJSONOut
		runJSON(t, &l2, "license", "create", "--key", "MY-KEY_1.x", "--expires", "2030-01-02T03:04:05+02:00", "--note", "for the lab",
			"--metadata", `{"order": "4711"}`, "--db", dsn)
		wantExp := time.Date(2030, 1, 2, 1, 4, 5, 0, time.UTC)
		if l2.Key != "MY-KEY_1.x" || l2.Owner != nil || l2.Seats.Total != 1 || !tm(l2.ExpiresAt).Equal(wantExp) || l2.Note != "for the lab" ||
			compact(l2.Metadata) != `{"order":"4711"}` {
			t.Errorf("license create --key --expires --note --metadata printed %+v", l2)
		}
		var l3 licenseJSONOut
		runJSON(t, &l3, "--db", dsn, "license", "create", "--activations", "3", "--expires", "2031-05-06")
		if l3.Seats.Total != 3 || !tm(l3.ExpiresAt).Equal(time.Date(2031, 5, 6, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("license create --activations 3 --expires DATE printed %+v", l3)
		}
		runFail(t, 2, "in the past", "--db", dsn, "license", "create", "--expires", "2001-01-01")
		var past licenseJSONOut
		runJSON(t, &past, "--db", dsn, "license", "create", "--expires", "2001-01-01", "--allow-past")
		if past.Status != "expired" {
			t.Errorf("a license created with a past expiry has status %s, want expired", past.Status)
		}

		var list []licenseJSONOut
		runItems(t, &list, "--db", dsn, "license", "list")
		if len(list) != 4 {
			t.Fatalf("license list has %d entries, want 4: %+v", len(list), list)
		}
		if got := findLicense(t, list, l1.Key); got.ID != l1.ID || got.Seats.Total != 2 || *got.Owner != "owner" {
			t.Errorf("license list entry %+v, want the created %+v", got, l1)
		}
		for _, tc := range []struct {
			args []string
			want []string
		}{
			{[]string{"--owner", "owner"}, []string{l1.Key}},
			{[]string{"--search", "lab"}, []string{l2.Key}},
			{[]string{"--search", "my-key"}, []string{l2.Key}},
			{[]string{"--status", "expired"}, []string{past.Key}},
		} {
			runItems(t, &list, append([]string{"--db", dsn, "license", "list"}, tc.args...)...)
			var got []string
			for _, l := range list {
				got = append(got, l.Key)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("license list %v = %v, want %v", tc.args, got, tc.want)
			}
		}
		runFail(t, 1, "status must be", "--db", dsn, "license", "list", "--status", "sleeping")

		var shown licenseJSONOut
		runJSON(t, &shown, "--db", dsn, "license", "show", l1.Key)
		if shown.ID != l1.ID || shown.Version != 1 {
			t.Errorf("license show = %+v", shown)
		}

		// Update: seats, expiry, owner, note, metadata; each change raises the version.
		var upd licenseJSONOut
		runJSON(t, &upd, "--db", dsn, "license", "update", l1.Key, "--seats", "5", "--expires", "2032-01-01", "--owner", "none",
			"--note", "grown", "--metadata", `{"po":1}`)
		if upd.Seats.Total != 5 || !tm(upd.ExpiresAt).Equal(time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC)) || upd.Owner != nil ||
			upd.Note != "grown" || compact(upd.Metadata) != `{"po":1}` || upd.Version != 2 {
			t.Errorf("license update printed %+v", upd)
		}
		runJSON(t, &upd, "--db", dsn, "license", "update", l1.Key, "--expires", "never", "--owner", "owner", "--if-version", "2")
		if !tm(upd.ExpiresAt).IsZero() || upd.Owner == nil || upd.Version != 3 {
			t.Errorf("license update --expires never --owner printed %+v", upd)
		}
		runFail(t, 1, "changed", "--db", dsn, "license", "update", l1.Key, "--seats", "1", "--if-version", "2")
		runFail(t, 2, "something to change", "--db", dsn, "license", "update", l1.Key)

		// Suspend, resume, revoke; repeating one changes nothing.
		for _, step := range []struct{ action, status string }{{"suspend", "suspended"}, {"suspend", "suspended"},
			{"resume", "active"}, {"revoke", "revoked"}, {"revoke", "revoked"}} {
			var got licenseJSONOut
			runJSON(t, &got, "--db", dsn, "license", step.action, l1.Key)
			if got.Status != step.status {
				t.Errorf("license %s printed status %s, want %s", step.action, got.Status, step.status)
			}
		}
		runJSON(t, &shown, "--db", dsn, "license", "show", l1.Key)
		if tm(shown.RevokedAt).IsZero() || shown.Version != 6 {
			t.Errorf("license after suspend, resume and revoke = %+v, want revoked at version 6", shown)
		}
		runFail(t, 1, "revoked", "--db", dsn, "license", "resume", l1.Key)
		runFail(t, 1, "revoked", "--db", dsn, "license", "update", l1.Key, "--seats", "9")

		for _, tc := range []struct {
			name string
			code int
			msg  string
			args []string
		}{
			{"unknown owner", 1, `user "nobody" not found`, []string{"license", "create", "--owner", "nobody"}},
			{"duplicate key", 1, "exists already", []string{"license", "create", "--key", "MY-KEY_1.x"}},
			{"key with a space", 1, "license key", []string{"license", "create", "--key", "bad key"}},
			{"key not ASCII", 1, "license key", []string{"license", "create", "--key", "KEY-ä"}},
			{"key too long", 1, "license key", []string{"license", "create", "--key", strings.Repeat("K", openconsole.MaxKeyLength+1)}},
			{"zero seats", 2, "want a number of seats", []string{"license", "create", "--seats", "0"}},
			{"negative activations", 2, "want a number of seats", []string{"license", "create", "--activations", "-3"}},
			{"metadata not an object", 1, "metadata must be a JSON object", []string{"license", "create", "--metadata", "[1]"}},
			{"metadata not JSON", 2, "--metadata", []string{"license", "create", "--metadata", "{"}},
			{"revoke unknown", 1, "license not found", []string{"license", "revoke", "NO-SUCH-KEY"}},
			{"show unknown", 1, "license not found", []string{"license", "show", "NO-SUCH-KEY"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				runFail(t, tc.code, tc.msg, append([]string{"--db", dsn}, tc.args...)...)
			})
		}
		runItems(t, &list, "--db", dsn, "license", "list")
		if len(list) != 4 {
			t.Errorf("refused creates left %d licenses, want 4: %+v", len(list), list)
		}
		var in90d licenseJSONOut
		runJSON(t, &in90d, "--db", dsn, "license", "create", "--expires", "90d")
		if d := time.Until(tm(in90d.ExpiresAt)); d < 89*24*time.Hour || d > 90*24*time.Hour {
			t.Errorf("license create --expires 90d: expires in %v, want 90 days", d)
		}
		runFail(t, 2, "in the past", "--db", dsn, "license", "update", in90d.Key, "--expires", "2001-01-01")
		runJSON(t, &in90d, "--db", dsn, "license", "update", in90d.Key, "--expires", "2001-01-01", "--allow-past")
		if in90d.Status != "expired" {
			t.Errorf("license update --expires PAST --allow-past: status %s, want expired", in90d.Status)
		}
	})
}

func TestSerialCommands(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		args := []string{"--db", dsn, "serial", "register", "--serial", "SN123456789", "--model", "IPC-xyz",
			"--manufacturer", "Example Manufacturer", "--manufacturer-id", "791", "--date", "2025-01-01"}
		r := run(t, "", args...)
		if r.code != 0 {
			t.Fatalf("serial register: exit code %d; stderr:\n%s", r.code, r.stderr)
		}
		checkKeys(t, "serial register", r.stdout, "serialNumber", "model", "manufacturer", "manufactureDate", "status", "createdAt")
		var sr serialJSONOut
		if err := json.Unmarshal([]byte(r.stdout), &sr); err != nil {
			t.Fatal(err)
		}
		if sr.SerialNumber != "SN123456789" || sr.Model != "IPC-xyz" || sr.Manufacturer != (admin.ManufacturerJSON{Name: "Example Manufacturer", ID: 791}) ||
			sr.ManufactureDate != "2025-01-01" || sr.Status != "registered" || time.Since(tm(sr.CreatedAt)) > time.Minute {
			t.Errorf("serial register printed %+v", sr)
		}
		var list []licenseJSONOut
		runItems(t, &list, "--db", dsn, "license", "list")
		if got := findLicense(t, list, "SN123456789"); got.Kind != "serial" || got.Seats.Total != 1 || got.Owner != nil {
			t.Errorf("license list shows the serial as %+v, want kind serial with 1 seat and no owner", got)
		}
		activate(t, dsn, "SN123456789")
		var serials []serialJSONOut
		runItems(t, &serials, "--db", dsn, "serial", "list")
		if len(serials) != 1 || serials[0].Status != "activated" {
			t.Errorf("serial list after an activation = %+v", serials)
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
	act, err := svc.Activate(ctx, openconsole.ActivateInput{LicenseKey: key, ClientAddr: "192.0.2.7"})
	if err != nil || !act.Created {
		t.Fatalf("activate %s: %+v, %v; want a new session", key, act, err)
	}
	return act.Session
}

func TestSessionCommands(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		var l1, l2 licenseJSONOut
		runJSON(t, &l1, "--db", dsn, "license", "create", "--seats", "2")
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
		checkKeys(t, "session list entry", string(raw[0]), "id", "license", "timestamp", "live", "createdAt", "lastSeenAt",
			"revokedAt", "endedAt", "activatedFrom", "expiresAt")
		runItems(t, &ss, "--db", dsn, "session", "list")
		for _, want := range []struct {
			ref openconsole.SessionRef
			key string
		}{{s1, l1.Key}, {s2, l1.Key}, {s3, l2.Key}} {
			got := findSession(t, ss, want.ref.ID)
			if got.License != want.key || got.Timestamp != want.ref.Timestamp || !got.Live || !tm(got.RevokedAt).IsZero() ||
				time.Since(tm(got.CreatedAt)) > time.Minute || tm(got.LastSeenAt).Before(tm(got.CreatedAt)) || got.ActivatedFrom != "192.0.2.7" {
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
			t.Errorf("taken seats of %s = %d, want 2", l1.Key, got)
		}

		// Ids are accepted in upper case and printed normalised.
		var rs sessionJSONOut
		runJSON(t, &rs, "--db", dsn, "session", "revoke", strings.ToUpper(s1.ID))
		if rs.ID != s1.ID || rs.Live || tm(rs.RevokedAt).IsZero() {
			t.Errorf("session revoke printed %+v, want %s revoked", rs, s1.ID)
		}
		var one sessionJSONOut
		runJSON(t, &one, "--db", dsn, "session", "show", s2.ID)
		if one.ID != s2.ID || !one.Live {
			t.Errorf("session show = %+v", one)
		}
		runItems(t, &ss, "--db", dsn, "session", "list", "--license", l1.Key, "--live", "true")
		if len(ss) != 1 || ss[0].ID != s2.ID {
			t.Errorf("session list --live true = %+v, want only %s", ss, s2.ID)
		}
		runItems(t, &ss, "--db", dsn, "session", "list", "--license", l1.Key, "--live", "false")
		if len(ss) != 1 || ss[0].ID != s1.ID {
			t.Errorf("session list --live false = %+v, want only %s", ss, s1.ID)
		}
		runItems(t, &list, "--db", dsn, "license", "list")
		if got := liveSessions(t, findLicense(t, list, l1.Key)); got != 1 {
			t.Errorf("taken seats of %s after a session revoke = %d, want 1", l1.Key, got)
		}

		// A revoked license takes its sessions down with it.
		runJSON(t, new(licenseJSONOut), "--db", dsn, "license", "revoke", l2.Key)
		runItems(t, &ss, "--db", dsn, "session", "list", "--license", l2.Key)
		if len(ss) != 1 || ss[0].Live || !tm(ss[0].RevokedAt).IsZero() {
			t.Errorf("sessions of a revoked license: %+v, want one not live and not itself revoked", ss)
		}

		runFail(t, 1, "session not found", "--db", dsn, "session", "revoke", "00000000-0000-4000-8000-000000000000")
		runFail(t, 1, "UUID", "--db", dsn, "session", "revoke", "not-a-uuid")
		runFail(t, 1, "license not found", "--db", dsn, "session", "list", "--license", "NO-SUCH-KEY")
		runFail(t, 2, "--live", "--db", dsn, "session", "list", "--live", "maybe")
	})
}

// TestTokenCommands: a new token's secret is printed once, by create; list never shows it; a
// revoked token is refused by the server.
func TestTokenCommands(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		r := run(t, "", "--db", dsn, "token", "create", "--name", "shop", "--role", "operator", "--expires", "90d")
		if r.code != 0 {
			t.Fatalf("token create: exit code %d; stderr:\n%s", r.code, r.stderr)
		}
		checkKeys(t, "token create", r.stdout, "id", "name", "role", "token", "createdAt", "expiresAt", "revokedAt", "lastUsedAt")
		var tok tokenJSONOut
		if err := json.Unmarshal([]byte(r.stdout), &tok); err != nil {
			t.Fatal(err)
		}
		if tok.Token == nil || !strings.HasPrefix(*tok.Token, "ocp_") || tok.Role != "operator" || tok.Name != "shop" ||
			tm(tok.ExpiresAt).Sub(time.Now()) < 89*24*time.Hour {
			t.Errorf("token create printed %+v", tok)
		}
		list := run(t, "", "--db", dsn, "token", "list")
		if list.code != 0 || strings.Contains(list.stdout, *tok.Token) || !strings.Contains(list.stdout, tok.ID) {
			t.Errorf("token list: code %d, shows the secret or not the token:\n%s", list.code, list.stdout)
		}
		st := openStore(t, dsn)
		stored, err := st.APITokens(context.Background())
		if err != nil || len(stored) != 1 || stored[0].SecretHash != openconsole.HashAPITokenSecret(*tok.Token) ||
			strings.Contains(stored[0].SecretHash, *tok.Token) {
			t.Errorf("stored tokens %+v, %v: want one, kept as the secret's hash", stored, err)
		}
		var rev tokenJSONOut
		runJSON(t, &rev, "--db", dsn, "token", "revoke", tok.ID)
		if tm(rev.RevokedAt).IsZero() || rev.Token != nil {
			t.Errorf("token revoke printed %+v", rev)
		}
		runFail(t, 1, "role must be", "--db", dsn, "token", "create", "--name", "x", "--role", "root")
		runFail(t, 2, "want a date like 2027-01-31", "--db", dsn, "token", "create", "--name", "x", "--role", "reader", "--expires", "soon")
		var dated tokenJSONOut
		runJSON(t, &dated, "--db", dsn, "token", "create", "--name", "dated", "--role", "reader", "--expires", "2031-01-31")
		if !tm(dated.ExpiresAt).Equal(time.Date(2031, 1, 31, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("token create --expires 2031-01-31 printed expiresAt %v", tm(dated.ExpiresAt))
		}
		runFail(t, 1, "token not found", "--db", dsn, "token", "revoke", "tok_0000")
	})
}

func TestStatsCommand(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		var l licenseJSONOut
		runJSON(t, &l, "--db", dsn, "license", "create", "--seats", "3")
		runJSON(t, new(licenseJSONOut), "--db", dsn, "license", "create")
		activate(t, dsn, l.Key)
		activate(t, dsn, l.Key)
		runJSON(t, new(licenseJSONOut), "--db", dsn, "license", "suspend", l.Key)
		var st admin.StatsJSON
		runJSON(t, &st, "--db", dsn, "stats")
		if st.Licenses["active"] != 1 || st.Licenses["suspended"] != 1 || st.Activations24h != 2 || st.Activations7d != 2 ||
			len(st.ActivationsByDay) != 30 || st.ActivationsByDay[29].Count != 2 {
			t.Errorf("stats = %+v", st)
		}
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
		{"unknown flag", "license list: there is no flag --bogus", []string{"license", "list", "--bogus"}},
		{"flag without value", "--limit needs a value", []string{"license", "list", "--limit"}},
		{"bad number", `--limit: want a whole number (got "ten")`, []string{"license", "list", "--limit", "ten"}},
		{"bad bool", `--vendor: want true or false (got "maybe")`, []string{"user", "update", "u", "--vendor=maybe"}},
		{"bad duration", `--session-ttl: want a duration like 90s, 15m or 12h (got "90d")`, []string{"serve", "--session-ttl", "90d"}},
		{"--expires in the past", "lies in the past; add --allow-past", []string{"license", "create", "--expires", "2020-01-31"}},
		{"update --expires in the past", "lies in the past; add --allow-past", []string{"license", "update", "K", "--expires", "2020-01-31T00:00:00Z"}},
		{"token --expires in the past", "lies in the past", []string{"token", "create", "--name", "x", "--role", "reader", "--expires", "2020-01-31"}},
		{"token bad --expires", "--expires: want a date like 2027-01-31", []string{"token", "create", "--name", "x", "--role", "reader", "--expires", "soon"}},
		{"negative --expires", "--expires: want a date like 2027-01-31", []string{"license", "create", "--expires", "-5d"}},
		{"user create without username", "needs --username", []string{"user", "create", "--password", "x"}},
		{"user create without password", "needs --username", []string{"user", "create", "--username", "x"}},
		{"user create positional", "takes 0 argument(s)", []string{"user", "create", "--username", "x", "--password", "y", "extra"}},
		{"bad --expires", `--expires: want a date like 2027-01-31, a time like 2027-01-31T12:00:00Z or a duration like 90d (got "tomorrow")`, []string{"license", "create", "--expires", "tomorrow"}},
		{"--expires without zone", "--expires: want a date like 2027-01-31", []string{"license", "create", "--expires", "2030-01-01T00:00:00"}},
		{"--seats not a number", "want a number of seats", []string{"license", "create", "--seats", "two"}},
		{"license revoke without key", "takes 1 argument(s), got 0", []string{"license", "revoke"}},
		{"license revoke two keys", "takes 1 argument(s), got 2", []string{"license", "revoke", "A", "B"}},
		{"license list positional", "takes 0 argument(s)", []string{"license", "list", "x"}},
		{"session revoke without id", "takes 1 argument(s), got 0", []string{"session", "revoke"}},
		{"serial register without serial", "serial register needs", []string{"serial", "register", "--model", "m", "--manufacturer", "x", "--date", "2025-01-01"}},
		{"serial register without date", "serial register needs", []string{"serial", "register", "--serial", "S", "--model", "m", "--manufacturer", "x"}},
		{"serial register bad id", `--manufacturer-id: want a whole number (got "abc")`, []string{"serial", "register", "--manufacturer-id", "abc"}},
		{"token create without role", "needs --name and --role", []string{"token", "create", "--name", "x"}},
		{"serve positional", "takes 0 argument(s)", []string{"serve", "extra"}},
		{"serve zero token ttl", "--token-ttl", []string{"serve", "--token-ttl", "0"}},
		{"serve negative session ttl", "--session-ttl", []string{"serve", "--session-ttl", "-1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A usage error is found before the database is touched.
			db := filepath.Join(t.TempDir(), "never.db")
			t.Setenv("OPENCONSOLE_DB", "sqlite:"+db)
			r := runFail(t, 2, tc.msg, tc.args...)
			// Plain words: no Go flag spelling (-flag), no Go layout or parser message.
			for _, bad := range []string{"2006-01-02", "parse error", "invalid value", "flag provided", " -" + strings.TrimLeft(lastFlag(tc.args), "-") + ":"} {
				if bad != " -:" && strings.Contains(r.stderr, bad) {
					t.Errorf("stderr %q has %q", r.stderr, bad)
				}
			}
			if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a usage error created the database (stat: %v)", err)
			}
		})
	}
}

// lastFlag is the last argument that is a flag, "" if none.
func lastFlag(args []string) string {
	for i := len(args) - 1; i >= 0; i-- {
		if strings.HasPrefix(args[i], "-") {
			name, _, _ := strings.Cut(args[i], "=")
			return name
		}
	}
	return ""
}

// TestHelp: help goes to stdout and exits 0, for the program, for every command, and for every
// group of commands (license --help, app manifest --help, help license).
func TestHelp(t *testing.T) {
	type helpCase struct {
		args []string
		want string // on stdout
	}
	all := []helpCase{{[]string{"help"}, "Commands:"}, {[]string{"--help"}, "Commands:"}, {[]string{"-h"}, "Commands:"}}
	groups := map[string]bool{}
	for name := range commands {
		words := strings.Fields(name)
		want := "Usage of openconsole " + name + ":"
		all = append(all, helpCase{append(words, "--help"), want}, helpCase{append(words, "-h"), want},
			helpCase{append([]string{"help"}, words...), want}, helpCase{append([]string{"--db", "x.db"}, append(words, "--help")...), want})
		for i := 1; i < len(words); i++ {
			groups[strings.Join(words[:i], " ")] = true
		}
	}
	for g := range groups {
		want := "openconsole [--db DSN] [--server URL [--token-file FILE]] " + g + " SUBCOMMAND"
		all = append(all, helpCase{append(strings.Fields(g), "--help"), want}, helpCase{append([]string{"help"}, strings.Fields(g)...), want})
	}
	for _, tc := range all {
		r := run(t, "", tc.args...)
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, tc.want) {
			t.Errorf("openconsole %s: exit code %d, stderr %q, stdout %.80q; want 0, %q on stdout, nothing on stderr",
				strings.Join(tc.args, " "), r.code, r.stderr, r.stdout, tc.want)
		}
		if regexp.MustCompile(`\n  -[a-z]`).MatchString(r.stdout) {
			t.Errorf("openconsole %s: the help spells a flag -flag, not --flag:\n%s", strings.Join(tc.args, " "), r.stdout)
		}
	}
	if _, err := os.Stat("x.db"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--help created a database (stat: %v)", err)
	}
}

// TestDBFlag checks every way of naming the database: --db before or after the command, in both
// spellings, the later one winning, and OPENCONSOLE_DB below any flag.
func TestDBFlag(t *testing.T) {
	t.Setenv("OPENCONSOLE_DB", "sqlite:"+filepath.Join(t.TempDir(), "env-default.db"))
	initDB(t, os.Getenv("OPENCONSOLE_DB"))
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
			initDB(t, dsn)
			initDB(t, other)
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
	eachDB(t, func(t *testing.T, dsn string) {
		t.Setenv("OPENCONSOLE_DB", dsn)
		runJSON(t, new(userJSON), "user", "create", "--username", "envuser", "--password", "p")
		if _, err := openStore(t, dsn).UserByUsername(context.Background(), "envuser"); err != nil {
			t.Errorf("user created with OPENCONSOLE_DB=%s is not there: %v", redactDSN(dsn), err)
		}
		// A flag beats the environment.
		other := "sqlite:" + filepath.Join(t.TempDir(), "other.db")
		initDB(t, other)
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
		runJSON(t, new(struct{ Database, Engine string }), "init")
		runJSON(t, new(userJSON), "user", "create", "--username", "plain", "--password", "p")
		if _, err := openStore(t, "sqlite:"+path).UserByUsername(context.Background(), "plain"); err != nil {
			t.Errorf("user created with OPENCONSOLE_DB=%s: %v", path, err)
		}
	})
	t.Run("default", func(t *testing.T) {
		dir := t.TempDir()
		t.Chdir(dir)
		t.Setenv("OPENCONSOLE_DB", "")
		runJSON(t, new(struct{ Database, Engine string }), "init")
		runJSON(t, new(userJSON), "user", "create", "--username", "dflt", "--password", "p")
		if _, err := os.Stat(filepath.Join(dir, "openconsole.db")); err != nil {
			t.Errorf("without --db or OPENCONSOLE_DB the database is not ./openconsole.db: %v", err)
		}
	})
	t.Run("unusable", func(t *testing.T) {
		t.Setenv("OPENCONSOLE_DB", filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"))
		runFail(t, 1, "no database", "license", "list")
		runFail(t, 1, "", "init")
	})
}

// TestNoSecretsPrinted checks that a database password never reaches the output: not from the
// help text of a flag error, not from a driver error quoting the DSN, not from the serve log.
func TestNoSecretsPrinted(t *testing.T) {
	const pw = "hunter2-Pa55"
	t.Run("flag error shows no env DSN", func(t *testing.T) {
		t.Setenv("OPENCONSOLE_DB", "postgres://bob:"+pw+"@127.0.0.1:1/x")
		r := runFail(t, 2, "there is no flag --bogus", "user", "create", "--bogus")
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
func execSQL(t *testing.T, dsn, query string) { t.Helper(); sqlstoretest.Exec(t, dsn, query) }

// TestCheckCommand: openconsole check finds seat bookkeeping that disagrees with the sessions,
// exits 1 and names the license; --repair sets it right in one go, after which check passes.
func TestCheckCommand(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
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
	eachDB(t, func(t *testing.T, dsn string) {
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
		runFail(t, 1, "invalid cursor", "--db", dsn, "license", "list", "--after", "nonsense")
		runFail(t, 1, "invalid cursor", "--db", dsn, "session", "list", "--after", openconsole.LicenseCursor(3))
	})
}
