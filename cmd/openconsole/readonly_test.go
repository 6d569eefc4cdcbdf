package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"openconsole"
	"openconsole/sqlstore"
)

// readOnlyRuns are the read-only commands as a test runs them (audit verify needs an entry).
var readOnlyRuns = [][]string{
	{"user", "list"}, {"user", "show", "alice"}, {"license", "list"}, {"serial", "list"}, {"session", "list"},
	{"token", "list"}, {"stats"}, {"check"}, {"audit", "list"}, {"audit", "export"}, {"audit", "verify"},
	{"audit", "key"}, {"app", "manifest", "list"}, {"app", "tokens", "list"}, {"product", "list"}, {"subscription", "list"},
}

// fingerprint is what a write would change: on SQLite the database file (every change reaches it
// when the last connection closes), on both engines the keys and the latest audit checkpoint.
func fingerprint(t *testing.T, dsn string) string {
	t.Helper()
	var b strings.Builder
	if !isPostgres(dsn) {
		raw, err := os.ReadFile(strings.TrimPrefix(dsn, "sqlite:"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(raw)
		b.Write(sum[:])
	}
	st, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	keys, _ := st.SigningKeys(ctx)
	akeys, _ := st.AuditKeys(ctx)
	cp, cerr := st.AuditCheckpoint(ctx, -1)
	n, _ := st.AuditSize(ctx)
	b.WriteString(strings.Repeat("k", len(keys)) + strings.Repeat("a", len(akeys)))
	if cerr == nil {
		b.WriteString(string(cp.Note))
	}
	b.WriteString(strings.Repeat("e", int(n)))
	return b.String()
}

// TestReadOnlyCommandsWriteNothing: the read-only commands, run on the database itself, leave it
// as it was (no migration, no key created, no checkpoint signed) and print no warning, on a
// database a server never started on (no keys yet) and after changes since the last checkpoint.
func TestReadOnlyCommandsWriteNothing(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		// init creates the audit key; drop the JWT signing key to see that nothing creates one.
		execSQL(t, dsn, `DELETE FROM signing_keys`)
		runJSON(t, &userJSON{}, "--db", dsn, "user", "create", "--username", "alice", "--password", "pw-long-enough")
		var lic licenseJSONOut
		runJSON(t, &lic, "--db", dsn, "license", "create", "--seats", "2")
		before := fingerprint(t, dsn)
		runs := append(readOnlyRuns, []string{"license", "show", lic.Key})
		if !isPostgres(dsn) {
			runs = append(runs, []string{"backup", "--out", filepath.Join(t.TempDir(), "copy.db")})
		}
		for _, args := range runs {
			r := run(t, "", append([]string{"--db", dsn}, args...)...)
			if r.code != 0 || r.stderr != "" {
				t.Errorf("openconsole %s: exit code %d, stderr %q; want 0 and nothing on stderr", strings.Join(args, " "), r.code, r.stderr)
			}
		}
		if after := fingerprint(t, dsn); after != before {
			t.Errorf("the read-only commands changed the database")
		}
		// The commands that change the database do change it (the fingerprint sees a change).
		runJSON(t, &lic, "--db", dsn, "license", "suspend", lic.Key)
		if after := fingerprint(t, dsn); after == before {
			t.Errorf("a change is not seen by the fingerprint: the check above proves nothing")
		}
	})
}

// TestReadOnlyCommandsOnOldSchema: a read-only command does not migrate: it says how to.
func TestReadOnlyCommandsOnOldSchema(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		execSQL(t, dsn, `DELETE FROM schema_migrations WHERE version = (SELECT MAX(version) FROM schema_migrations)`)
		runFail(t, 1, "start openconsole serve on it (or run openconsole init)", "--db", dsn, "license", "list")
		runFail(t, 1, "start openconsole serve on it (or run openconsole init)", "--db", dsn, "audit", "verify")
	})
}

// asOtherUser runs the binary bin with args and returns exit code, stdout and stderr. As root,
// whom file modes do not stop, it runs as nobody (65534), so that a read-only file is read-only.
func asOtherUser(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = childEnv()
	if os.Getuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// openDir is a new directory that every user may enter, removed when t ends.
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "openconsole-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755); os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestReadOnlyFileAndDirectory: on a database file this user may only read, in a directory it may
// not write (SQLite cannot have its -wal and -shm files there), the read-only commands work and
// change nothing; a change fails with a message in words, not SQLite's error code.
func TestReadOnlyFileAndDirectory(t *testing.T) {
	built := buildBinary(t)
	// The binary where the other user can run it.
	bin := filepath.Join(openDir(t), "openconsole")
	raw, err := os.ReadFile(built)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(openDir(t), "db")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "openconsole.db")
	initDB(t, db)
	var lic licenseJSONOut
	runJSON(t, &lic, "--db", db, "license", "create", "--note", "read me")
	if err := os.Chmod(db, 0o444); err != nil {
		t.Fatal(err)
	}
	out := openDir(t)
	os.Chmod(out, 0o777)
	for _, dirMode := range []os.FileMode{0o555, 0o777} {
		if err := os.Chmod(dir, dirMode); err != nil {
			t.Fatal(err)
		}
		before := fingerprint(t, "sqlite:"+db)
		for _, args := range [][]string{{"license", "list"}, {"license", "show", lic.Key}, {"check"}, {"audit", "verify"}, {"stats"},
			{"backup", "--out", filepath.Join(out, "copy-"+dirMode.String()+".db")}} {
			code, stdout, stderr := asOtherUser(t, bin, append([]string{"--db", db}, args...)...)
			if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "{") {
				t.Errorf("directory %04o: openconsole %s: exit code %d, stderr %q; want 0, JSON, nothing on stderr",
					dirMode, strings.Join(args, " "), code, stderr)
			}
		}
		if after := fingerprint(t, "sqlite:"+db); after != before {
			t.Errorf("directory %04o: the read-only commands changed the database", dirMode)
		}
		code, _, stderr := asOtherUser(t, bin, "--db", db, "license", "create")
		want := "is not writable by this user"
		if code != 1 || !strings.Contains(stderr, want) || strings.Contains(stderr, "(1544)") || strings.Contains(stderr, "(8)") ||
			strings.Count(stderr, "\n") != 1 {
			t.Errorf("directory %04o: license create: exit code %d, stderr %q; want 1 and one line saying %q", dirMode, code, stderr, want)
		}
	}
	// A read-only directory with an empty -wal left behind but no -shm: SQLite's mode=ro cannot
	// open it (it would have to create the -shm), immutable=1 reads the database file alone.
	for _, f := range []string{db + "-wal", db + "-shm"} {
		os.Remove(f)
	}
	if err := os.WriteFile(db+"-wal", nil, 0o444); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o555)
	if code, stdout, stderr := asOtherUser(t, bin, "--db", db, "license", "show", lic.Key); code != 0 || !strings.Contains(stdout, lic.Key) {
		t.Errorf("read-only directory, empty -wal, no -shm: license show: exit code %d, stderr %q", code, stderr)
	}
	// A -wal that holds changes cannot be read without a -shm: said so, rather than an old state.
	os.Chmod(dir, 0o755)
	os.Chmod(db, 0o600)
	os.Remove(db + "-wal")
	holdWAL(t, db, func() {
		os.Chmod(dir, 0o555)
		defer os.Chmod(dir, 0o755)
		code, _, stderr := asOtherUser(t, bin, "--db", db, "license", "list")
		if code != 1 || !strings.Contains(stderr, "write-ahead log") {
			t.Errorf("read-only directory, a -wal with changes, no -shm: exit code %d, stderr %q; want 1 naming the write-ahead log", code, stderr)
		}
	})
	// The other user's -wal and -shm are left in the writable directory; the owner still writes.
	os.Chmod(db, 0o600)
	runJSON(t, &lic, "--db", db, "license", "suspend", lic.Key)
	if lic.Status != string(openconsole.StatusSuspended) {
		t.Errorf("status = %s after suspend", lic.Status)
	}
}

// serveInProcess runs serve through Run until the returned stop is called; stop returns its log.
func serveInProcess(t *testing.T, args ...string) (stop func() string) {
	_, stop = serveAt(t, args...)
	return stop
}

// serveAt is serveInProcess that also returns the address serve listens on.
func serveAt(t *testing.T, args ...string) (addr string, stop func() string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), strings.NewReader(""), &stdout, &stderr)
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if m := listenRE.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case code := <-done:
			cancel()
			t.Fatalf("serve exited with code %d before listening; stderr:\n%s", code, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not log its address; stderr:\n%s", stderr.String())
		}
	}
	return addr, func() string {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exit code %d; stderr:\n%s", code, stderr.String())
		}
		return stderr.String()
	}
}

// TestServeDatabaseFileModes: the database serve creates, its -wal and -shm, and the directories
// it creates are its user's only, whatever the umask; on an existing database that others may
// read, serve warns at start, naming the file.
func TestServeDatabaseFileModes(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	root := t.TempDir()
	db := filepath.Join(root, "openconsole", "openconsole.db")
	stop := serveInProcess(t, "--db", db)
	for _, tc := range []struct {
		path string
		want os.FileMode
	}{
		{filepath.Dir(db), 0o700},
		{db, 0o600}, {db + "-wal", 0o600}, {db + "-shm", 0o600}, {db + ".sock", 0o600},
	} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Errorf("while serve runs: %v", err)
		} else if got := fi.Mode().Perm(); got != tc.want {
			t.Errorf("%s: mode %04o, want %04o", tc.path, got, tc.want)
		}
	}
	if log := stop(); strings.Contains(log, "other users may read") {
		t.Errorf("serve warned about the files it created itself:\n%s", log)
	}
	if err := os.Chmod(db, 0o644); err != nil {
		t.Fatal(err)
	}
	log := serveInProcess(t, "--db", db)()
	want := `msg="other users may read this database file, which holds password hashes, signing keys and license keys: chmod 600 it" file=` + db + ` mode=0644`
	if !strings.Contains(log, want) {
		t.Errorf("serve on a database of mode 0644 did not warn %q:\n%s", want, log)
	}
}

// commandArgs are arguments that get each command past its usage checks to the database.
var commandArgs = map[string][]string{
	"user create": {"--username", "u", "--password", "p"}, "user update": {"u", "--email", "e@x"}, "user show": {"u"},
	"license show": {"K"}, "license update": {"K", "--seats", "2"}, "license suspend": {"K"}, "license resume": {"K"},
	"license revoke": {"K"}, "serial register": {"--serial", "S", "--model", "m", "--manufacturer", "M", "--date", "2025-01-01"},
	"session show": {"00000000-0000-4000-8000-000000000000"}, "session revoke": {"00000000-0000-4000-8000-000000000000"},
	"token create": {"--name", "n", "--role", "reader"}, "token revoke": {"tok_1"}, "backup": {"--out", "copy.db"},
	"app manifest remove": {"a", "1.0.0"}, "app credentials set": {"a", "--username", "u"},
	"subscription add": {"--user", "u", "--product", "1"},
}

// notOnDatabase are the commands that never open the database: serve and init create it, keygen
// writes a key file; the others are given a file to read first (so they fail on it, not on the
// database) and are run below with one.
var notOnDatabase = map[string]bool{"serve": true, "init": true, "audit keygen": true, "offline keygen": true, "version": true}

// TestMistypedDBCreatesNothing: every command but serve and init, pointed at a database that does
// not exist, says "no database at PATH", exits 1 and leaves no file behind.
func TestMistypedDBCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	manifest := writeFile(t, "m.json", manifestDoc(t, nil))
	products := writeFile(t, "p.json", `[{"id":1,"name":"P"}]`)
	note := writeFile(t, "x.note", "not a note\n")
	files := map[string][]string{"app manifest add": {manifest}, "product import": {products},
		"offline issue": {"--request", note, "--out", filepath.Join(t.TempDir(), "cert.note")}, "offline deactivate": {"--proof", note}}
	for name := range commands {
		if notOnDatabase[name] {
			continue
		}
		args := commandArgs[name]
		if f, ok := files[name]; ok {
			args = f
		}
		db := filepath.Join(dir, "typo-"+strings.ReplaceAll(name, " ", "-")+".db")
		full := append(append([]string{"--db", db}, strings.Fields(name)...), args...)
		r := run(t, "pw\n", full...)
		if r.code != 1 || !strings.Contains(r.stderr, "no database at "+db) {
			t.Errorf("openconsole %s: exit %d, stderr %q; want 1 and \"no database at %s\"", strings.Join(full, " "), r.code, r.stderr, db)
		}
		for _, f := range []string{db, db + "-wal", db + "-shm", db + ".sock"} {
			if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("openconsole %s created %s", name, f)
			}
		}
	}
}

// holdWAL leaves db with a write-ahead log that holds a change and no -shm file (as a server that
// died would leave it, its -shm removed) and runs fn; the database is readable by others meanwhile.
func holdWAL(t *testing.T, db string, fn func()) {
	t.Helper()
	raw, err := sql.Open("sqlite", db+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetMaxOpenConns(1)
	// No checkpoint on close, so the change stays in the -wal.
	for _, q := range []string{`PRAGMA wal_autocheckpoint=0`, `UPDATE licenses SET note = 'in the log'`} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	copyWAL, err := os.ReadFile(db + "-wal")
	if err != nil || len(copyWAL) == 0 {
		t.Fatalf("no write-ahead log: %v", err)
	}
	raw.Close()
	// Closing checkpointed and removed the log: put it back, without -shm.
	os.Remove(db + "-shm")
	if err := os.WriteFile(db+"-wal", copyWAL, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(db, 0o644)
	defer func() { os.Remove(db + "-wal"); os.Chmod(db, 0o600) }()
	fn()
}
