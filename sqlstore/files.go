package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The SQLite database file and its -wal and -shm files hold password hashes, the JWT signing keys,
// the data key and every license key: only their owner may read them.

// createSQLiteFile creates an empty database file, mode 0600, when none exists at file (an empty
// file is an empty SQLite database), and its directory, mode 0700, when only that is missing. SQLite itself would
// create the file 0644 (less the umask); it gives the -wal and -shm files it creates later the
// mode of the database file, so they are 0600 too.
func createSQLiteFile(file string) error {
	if strings.HasPrefix(file, "file:") || strings.HasPrefix(file, ":memory:") {
		return nil // a URI or an in-memory database: SQLite's business
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		return nil // there is one (or SQLite reports the error better)
	}
	// The database's own directory is created when its parent exists (/var/lib/openconsole), not a
	// whole missing tree: that is more likely a mistyped path.
	dir := filepath.Dir(file)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if _, perr := os.Stat(filepath.Dir(dir)); perr != nil {
			return fmt.Errorf("open %s: neither the directory %s nor its parent exists", file, dir)
		}
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("open %s: %w", file, err)
		}
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil // another process created it meanwhile
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", file, err)
	}
	// Whatever the umask: exactly owner read and write.
	err = f.Chmod(0o600)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", file, err)
	}
	return nil
}

// ExposedFile is a database file that users other than its owner may read.
type ExposedFile struct {
	Path string
	Mode os.FileMode // its permission bits
}

// ExposedFiles returns those of the SQLite database's files (the database, -wal and -shm) that
// users other than the owner may read; none for PostgreSQL. A server names them at start; their
// modes are the operator's to change.
func ExposedFiles(dsn string) []ExposedFile {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return nil
	}
	file := strings.TrimPrefix(dsn, "sqlite:")
	var out []ExposedFile
	for _, f := range []string{file, file + "-wal", file + "-shm"} {
		if fi, err := os.Stat(f); err == nil && fi.Mode().Perm()&0o044 != 0 {
			out = append(out, ExposedFile{Path: f, Mode: fi.Mode().Perm()})
		}
	}
	return out
}

// sqliteURI is file as a SQLite URI with the given query: the characters that URIs give a meaning
// escaped, so that any file name works.
func sqliteURI(file, query string) string {
	return "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(file) + "?" + query
}

// openSQLiteReadOnly opens an existing database file only to read it: mode=ro, which still needs
// the -wal and -shm files (SQLite creates them when the directory allows it); when they cannot be
// had because the directory is not writable, immutable=1, which reads the database file alone and
// so is right only when there is no write-ahead log holding committed changes.
func openSQLiteReadOnly(file string, opts Options) (*Store, error) {
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no database at %s", file)
	} else if err != nil {
		return nil, fmt.Errorf("open %s: %w", file, err)
	}
	query := "_pragma=busy_timeout(10000)&_pragma=query_only(1)&_pragma=cache_size(-1024)&mode=ro"
	dsn := sqliteURI(file, query)
	db, err := probeSQLite(dsn, opts.MaxConns)
	if err != nil {
		if fi, serr := os.Stat(file + "-wal"); serr == nil && fi.Size() > 0 {
			return nil, fmt.Errorf("open %s read-only: %w (its write-ahead log %s-wal holds changes that cannot be read without a writable -shm file next to it)",
				file, explainSQLite(file, err), file)
		}
		dsn = sqliteURI(file, query+"&immutable=1")
		var ierr error
		if db, ierr = probeSQLite(dsn, opts.MaxConns); ierr != nil {
			return nil, fmt.Errorf("open %s read-only: %w", file, explainSQLite(file, err))
		}
	}
	return &Store{d: sqliteDialect, w: db, r: db, roDSN: dsn, file: file}, nil
}

// probeSQLite opens a pool on dsn and reads from it: opening alone does not reach the -wal and -shm
// files.
func probeSQLite(dsn string, conns int) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master`).Scan(&n); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// explained is an error of the driver said in words: Error is the words, Unwrap the driver's error.
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

// explainSQLite turns SQLite's refusals to write into what to do about them, keeping err to unwrap.
func explainSQLite(file string, err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	dir := filepath.Dir(file)
	if abs, aerr := filepath.Abs(dir); aerr == nil {
		dir = abs
	}
	switch se.Code() {
	case sqlite3.SQLITE_READONLY_DIRECTORY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY_CANTINIT:
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() && !writable(dir) {
			return &explained{fmt.Sprintf("the directory %s is not writable by this user, and SQLite keeps the database's -wal and -shm files next to it: "+
				"a change needs write access to %s (commands that only read, such as license list, work without it)", dir, dir), err}
		}
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_READONLY_DBMOVED, sqlite3.SQLITE_READONLY_CANTLOCK:
		return &explained{fmt.Sprintf("%s is not writable by this user: a change needs write access to it (commands that only read, such as license list, work on it)", file), err}
	}
	return err
}

// writable reports whether this process may create files in dir.
func writable(dir string) bool {
	return syscall.Access(dir, 0x2 /* W_OK */) == nil
}

// knownVersion is the newest migration this build has for the engine.
func knownVersion(d *dialect) (int, error) {
	entries, err := fs.ReadDir(migrations, path.Join("migrations", d.name))
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	known := 0
	for _, e := range entries {
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			return 0, fmt.Errorf("migrate: bad migration name %s", e.Name())
		}
		known = max(known, v)
	}
	return known, nil
}

// checkSchema is migrate for a read-only store: the schema must be this build's.
func (s *Store) checkSchema(ctx context.Context) error {
	known, err := knownVersion(s.d)
	if err != nil {
		return err
	}
	var current int
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("the database has no OpenConsole schema (openconsole init creates it): %w", err)
	}
	switch {
	case current > known:
		return fmt.Errorf("the database schema is at version %d, newer than this build of OpenConsole knows (%d); upgrade OpenConsole", current, known)
	case current < known:
		return fmt.Errorf("the database schema is at version %d, older than this build's %d, and this command does not change the database: "+
			"start openconsole serve on it (or run openconsole init) to upgrade it", current, known)
	}
	return nil
}
