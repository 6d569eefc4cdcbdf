package sqlstore_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"openconsole"
	"openconsole/sqlstore"
	"openconsole/sqlstore/sqlstoretest"
)

// TestNewDatabaseFileModes: a database Open creates is readable by its owner only, its -wal and
// -shm files too, and so is the directory it creates, whatever the umask; a whole missing tree it
// does not create.
func TestNewDatabaseFileModes(t *testing.T) {
	old := syscall.Umask(0) // the most permissive umask: the modes must not depend on it
	defer syscall.Umask(old)
	root := t.TempDir()
	if _, err := sqlstore.Open(context.Background(), "sqlite:"+filepath.Join(root, "x", "y", "openconsole.db"), sqlstore.Options{}); err == nil ||
		!strings.Contains(err.Error(), "nor its parent exists") {
		t.Errorf("Open in a missing tree: %v, want a refusal", err)
	}
	file := filepath.Join(root, "a", "openconsole.db")
	st, err := sqlstore.Open(context.Background(), "sqlite:"+file, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// A write, so that SQLite has its write-ahead log and shared memory files in use.
	if err := st.Update(context.Background(), func(tx openconsole.Tx) error {
		return tx.AddSigningKey(openconsole.NewSigningKey(time.Now()))
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want os.FileMode
	}{
		{filepath.Join(root, "a"), 0o700},
		{file, 0o600}, {file + "-wal", 0o600}, {file + "-shm", 0o600},
	} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Fatalf("stat: %v", err)
		}
		if got := fi.Mode().Perm(); got != tc.want {
			t.Errorf("%s: mode %04o, want %04o", tc.path, got, tc.want)
		}
	}
	if got := sqlstore.ExposedFiles("sqlite:" + file); len(got) != 0 {
		t.Errorf("ExposedFiles of a new database = %v, want none", got)
	}
}

// TestExposedFiles names each database file that others may read.
func TestExposedFiles(t *testing.T) {
	file := filepath.Join(t.TempDir(), "openconsole.db")
	for name, mode := range map[string]os.FileMode{file: 0o644, file + "-wal": 0o600, file + "-shm": 0o640} {
		if err := os.WriteFile(name, nil, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(name, mode)
	}
	got := sqlstore.ExposedFiles(file)
	if len(got) != 2 || got[0].Path != file || got[0].Mode != 0o644 || got[1].Path != file+"-shm" || got[1].Mode != 0o640 {
		t.Errorf("ExposedFiles = %+v, want %s 0644 and %s-shm 0640", got, file, file)
	}
	if got := sqlstore.ExposedFiles("postgres://u@h/db"); got != nil {
		t.Errorf("ExposedFiles(postgres) = %v, want nil", got)
	}
}

func fileSum(t *testing.T, name string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestReadOnlyStore: a store opened ReadOnly reads, and writes nothing: Update is refused before
// it reaches the database, and the database itself refuses a write (SQLite mode=ro, PostgreSQL
// default_transaction_read_only).
func TestReadOnlyStore(t *testing.T) {
	ctx := context.Background()
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		st := sqlstoretest.OpenDSN(t, dsn)
		if err := st.Update(ctx, func(tx openconsole.Tx) error {
			return tx.AddSigningKey(openconsole.NewSigningKey(time.Now()))
		}); err != nil {
			t.Fatal(err)
		}
		st.Close()
		file := strings.TrimPrefix(dsn, "sqlite:")
		var before [32]byte
		if st.Engine() == "sqlite" {
			before = fileSum(t, file)
		}
		ro, err := sqlstore.Open(ctx, dsn, sqlstore.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		keys, err := ro.SigningKeys(ctx)
		if err != nil || len(keys) != 1 {
			t.Errorf("SigningKeys = %d keys, %v; want 1", len(keys), err)
		}
		if err := ro.Update(ctx, func(tx openconsole.Tx) error {
			return tx.AddSigningKey(openconsole.NewSigningKey(time.Now()))
		}); !errors.Is(err, sqlstore.ErrReadOnly) {
			t.Errorf("Update on a read-only store: %v, want ErrReadOnly", err)
		}
		if err := sqlstore.ReaderExecForTest(ctx, ro, `DELETE FROM signing_keys`); err == nil {
			t.Errorf("the database took a write from a read-only store")
		}
		if _, err := ro.TouchSessions(ctx, []openconsole.Touch{{SessionID: "x", At: time.Now()}}); !errors.Is(err, sqlstore.ErrReadOnly) {
			t.Errorf("TouchSessions on a read-only store: %v, want ErrReadOnly", err)
		}
		if err := ro.Close(); err != nil {
			t.Fatal(err)
		}
		if st.Engine() == "sqlite" && fileSum(t, file) != before {
			t.Errorf("the database file changed under a read-only store")
		}
	})
}

// TestReadOnlyStoreRefusesOldSchema: a read-only store does not migrate; on a schema older than
// this build it says what to do.
func TestReadOnlyStoreRefusesOldSchema(t *testing.T) {
	ctx := context.Background()
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		st := sqlstoretest.OpenDSN(t, dsn)
		if err := sqlstore.ExecForTest(ctx, st, `DELETE FROM schema_migrations WHERE version = (SELECT MAX(version) FROM schema_migrations)`); err != nil {
			t.Fatal(err)
		}
		st.Close()
		_, err := sqlstore.Open(ctx, dsn, sqlstore.Options{ReadOnly: true})
		if err == nil || !strings.Contains(err.Error(), "older than this build") || !strings.Contains(err.Error(), "openconsole serve") {
			t.Fatalf("read-only Open on an old schema: %v, want a refusal that names openconsole serve", err)
		}
	})
}

// TestReadOnlyStoreNoDatabase: a read-only Open of a missing file creates nothing.
func TestReadOnlyStoreNoDatabase(t *testing.T) {
	file := filepath.Join(t.TempDir(), "typo.db")
	_, err := sqlstore.Open(context.Background(), "sqlite:"+file, sqlstore.Options{ReadOnly: true})
	if err == nil || !strings.Contains(err.Error(), "no database at "+file) {
		t.Errorf("read-only Open of a missing file: %v, want no database at %s", err, file)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("read-only Open created %s (stat: %v)", file, err)
	}
}

// TestReadOnlyBackup: a read-only store backs up.
func TestReadOnlyBackup(t *testing.T) {
	ctx := context.Background()
	dsn := sqlstoretest.DSN(t, "sqlite")
	sqlstoretest.OpenDSN(t, dsn).Close()
	ro, err := sqlstore.Open(ctx, dsn, sqlstore.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	out := filepath.Join(t.TempDir(), "copy.db")
	if err := ro.Backup(ctx, out); err != nil {
		t.Fatalf("Backup on a read-only store: %v", err)
	}
	cp, err := sqlstore.Open(ctx, "sqlite:"+out, sqlstore.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("the copy does not open: %v", err)
	}
	cp.Close()
}
