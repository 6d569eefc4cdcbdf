package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrBackupPostgres is what Backup returns on PostgreSQL, whose own tools make consistent copies.
var ErrBackupPostgres = errors.New("backup: this database is PostgreSQL; back it up with pg_dump (and restore with pg_restore or psql), see the README")

// Backup writes a consistent copy of a SQLite database to the file path, while the database stays
// in use: the copy is a snapshot of one read transaction (SQLite's VACUUM INTO), so it holds every
// write committed before Backup began and no half of any later one, and writers are not blocked.
//
// The copy is written to a temporary file next to path, checked with PRAGMA integrity_check,
// flushed to disk, and only then given its name, so path never names a partial copy. Backup refuses
// to overwrite an existing file. On PostgreSQL it returns ErrBackupPostgres.
func (s *Store) Backup(ctx context.Context, path string) (err error) {
	if s.d != sqliteDialect {
		return ErrBackupPostgres
	}
	if path == "" {
		return errors.New("backup: empty output path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := os.Lstat(abs); err == nil {
		return fmt.Errorf("backup: %s exists already; choose a new name or remove it", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("backup: %w", err)
	}
	dir := filepath.Dir(abs)
	f, err := os.CreateTemp(dir, "."+filepath.Base(abs)+".tmp-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	tmp := f.Name()
	f.Close()
	// VACUUM INTO wants a file that does not exist or is empty; the empty temporary file reserves
	// the name.
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()

	// The read pool is query_only, which forbids VACUUM INTO: the backup gets a connection of its
	// own to the same file. It only reads there (in one read transaction, which in WAL mode neither
	// waits for the writer nor holds it up) and writes the new file.
	var seq int
	var name, file string
	if err := s.r.QueryRowContext(ctx, `SELECT seq, name, file FROM pragma_database_list WHERE name = 'main'`).Scan(&seq, &name, &file); err != nil {
		return fmt.Errorf("backup: find the database file: %w", err)
	}
	if file == "" {
		return errors.New("backup: the database is not a file")
	}
	srcDSN := file + "?_pragma=busy_timeout(10000)"
	if s.readOnly {
		srcDSN = s.roDSN // without query_only, which forbids VACUUM INTO
		srcDSN = strings.Replace(srcDSN, "&_pragma=query_only(1)", "", 1)
	}
	src, err := sql.Open("sqlite", srcDSN)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer src.Close()
	src.SetMaxOpenConns(1)
	if _, err := src.ExecContext(ctx, `VACUUM INTO ?`, tmp); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := checkCopy(ctx, src, tmp); err != nil {
		return fmt.Errorf("backup: the copy is not sound: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	// A hard link gives the copy its name without replacing a file that appeared meanwhile.
	if err := os.Link(tmp, abs); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	os.Remove(tmp)
	if err := syncFile(dir); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// checkCopy attaches the copy to db (by name, so any file name works) and runs SQLite's integrity
// check on it.
func checkCopy(ctx context.Context, db *sql.DB, file string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `ATTACH DATABASE ? AS backup_copy`, file); err != nil {
		return err
	}
	defer conn.ExecContext(context.Background(), `DETACH DATABASE backup_copy`)
	var res string
	if err := conn.QueryRowContext(ctx, `PRAGMA backup_copy.integrity_check`).Scan(&res); err != nil {
		return err
	}
	if res != "ok" {
		return fmt.Errorf("integrity_check: %s", res)
	}
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM backup_copy.schema_migrations`).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return errors.New("no schema recorded")
	}
	return nil
}

// syncFile flushes a file or a directory to disk.
func syncFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
