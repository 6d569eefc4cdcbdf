//go:build unix

package main

// Backup under load: `openconsole backup` runs while 32 clients activate devices against the live
// server; the copy is then restored in place of the database (the README's procedure) and must
// hold every activation acknowledged before the backup started, with the seat limits and the
// timestamp clock intact.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"openconsole/sqlstore"
	"openconsole/sqlstore/sqlstoretest"
)

type backupJSON struct {
	File      string    `json:"file"`
	Bytes     int64     `json:"bytes"`
	StartedAt time.Time `json:"startedAt"`
	Seconds   float64   `json:"seconds"`
}

func TestBackupUnderLoad(t *testing.T) {
	bin := buildBinary(t)
	e := &e2e{bin: bin, dsn: sqlstoretest.DSN(t, "sqlite"), client: &http.Client{Timeout: 10 * time.Second}}
	dbFile := strings.TrimPrefix(e.dsn, "sqlite:")
	keys, seats := stormLicenses(t, e)
	srv := startServer(t, bin, e.dsn)
	st := startStorm(srv.url, keys, 32)
	st.waitAcks(t, 100, 30*time.Second)

	// Everything acknowledged up to here must be in the copy.
	before := st.acked()
	out := filepath.Join(t.TempDir(), "backup.db")
	var b backupJSON
	e.cli(t, &b, "", "backup", "--out", out)
	if b.File != out || b.Bytes <= 0 || b.StartedAt.IsZero() {
		t.Errorf("backup printed %+v; want file %s and its size", b, out)
	}
	if info, err := os.Stat(out); err != nil || info.Size() != b.Bytes {
		t.Errorf("backup file: %v (size %v); want %d bytes", err, info, b.Bytes)
	}
	// The storm went on during the backup and after it.
	st.waitAcks(t, len(st.acked())+50, 30*time.Second)
	st.halt(t)
	during := len(st.acked()) - len(before)
	srv.stop(t)
	t.Logf("%d activations acknowledged before the backup, %d during and after it", len(before), during)

	// A second backup to the same file is refused; the first is intact.
	if code, _, stderr := e.cliRun(t, "", "backup", "--out", out); code != 1 || !strings.Contains(stderr, "exists already") {
		t.Errorf("backup over an existing file: exit code %d, stderr %q; want 1 and \"exists already\"", code, stderr)
	}

	// Restore: with no server running, the copy takes the place of the database, and the old
	// database's -wal and -shm files go (SQLite would replay a stale WAL onto the copy).
	for _, f := range []string{dbFile, dbFile + "-wal", dbFile + "-shm"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	copyFile(t, out, dbFile)
	srv = startServer(t, bin, e.dsn)
	sessions := checkAcked(t, e, srv, before)
	checkSeats(t, e, seats, sessions)

	// The copy holds nothing that was not issued, and no more than was acknowledged in all.
	issued := make(map[string]bool)
	for _, a := range st.acked() {
		issued[a.session.ID] = true
	}
	for _, s := range sessions {
		if !issued[s.ID] {
			t.Errorf("the restored database holds session %s, which no client was given", s.ID)
		}
	}
	if len(sessions) < len(before) || len(sessions) > len(st.acked()) {
		t.Errorf("the restored database holds %d sessions; want between %d (before the backup) and %d (in all)", len(sessions), len(before), len(st.acked()))
	}
	checkNewTimestamps(t, e, srv, keys[0], maxTimestamp(sessions))
	srv.stop(t)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBackupRefusals: the errors of the backup command, PostgreSQL's included.
func TestBackupRefusals(t *testing.T) {
	dsn := sqlstoretest.DSN(t, "sqlite")
	runFail(t, 2, "backup needs --out", "--db", dsn, "backup")
	runFail(t, 2, "takes 0 argument(s)", "--db", dsn, "backup", "--out", filepath.Join(t.TempDir(), "x.db"), "extra")
	// A database that does not exist is not created just to be copied.
	runFail(t, 1, "no database at", "--db", dsn, "backup", "--out", filepath.Join(t.TempDir(), "x.db"))
	if _, err := os.Stat(strings.TrimPrefix(dsn, "sqlite:")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("backup of a missing database created it (stat: %v)", err)
	}
	// The directory of the copy must exist; nothing is left behind on failure.
	initDB(t, dsn)
	var lic licenseJSONOut
	runJSON(t, &lic, "--db", dsn, "license", "create")
	dir := t.TempDir()
	runFail(t, 1, "backup:", "--db", dsn, "backup", "--out", filepath.Join(dir, "missing", "x.db"))
	var b backupJSON
	runJSON(t, &b, "--db", dsn, "backup", "--out", filepath.Join(dir, "ok.db"))
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("backup left %d files in the directory, want only the copy: %v", len(entries), entries)
	}
	// The copy is a database the CLI can use, with the license in it.
	var licenses []licenseJSONOut
	runItems(t, &licenses, "--db", "sqlite:"+b.File, "license", "list")
	if len(licenses) != 1 || licenses[0].Key != lic.Key {
		t.Errorf("license list on the copy: %+v; want the one license %s", licenses, lic.Key)
	}

	if !strings.Contains(strings.Join(sqlstoretest.Engines(), " "), "postgres") {
		return
	}
	t.Run("postgres", func(t *testing.T) {
		pg := sqlstoretest.DSN(t, "postgres")
		out := filepath.Join(t.TempDir(), "x.db")
		runFail(t, 1, "pg_dump", "--db", pg, "backup", "--out", out)
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("backup on PostgreSQL wrote %s (stat: %v)", out, err)
		}
		if err := openStore(t, pg).Backup(context.Background(), out); !errors.Is(err, sqlstore.ErrBackupPostgres) {
			t.Errorf("Store.Backup on PostgreSQL: %v; want ErrBackupPostgres", err)
		}
	})
}
