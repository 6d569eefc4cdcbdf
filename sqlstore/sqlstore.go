// Package sqlstore is the one openconsole.Store, on embedded SQLite (the default, pure Go) or on
// PostgreSQL. The SQL is hand-written in the subset both engines share; the few statements that
// differ sit in the dialect table below.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"openconsole"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations
var migrations embed.FS

// Options tune the connection pools. Zero values pick the defaults.
type Options struct {
	// MaxConns caps the connections of the read pool (SQLite) or of the pool (PostgreSQL).
	// Default 8 on SQLite (reads are CPU-bound there: more connections only cost memory), 16 on
	// PostgreSQL.
	MaxConns int
	// StatementTimeout bounds each PostgreSQL statement (default 10s).
	StatementTimeout time.Duration
	// ConnectTimeout bounds establishing a PostgreSQL connection (default 5s).
	ConnectTimeout time.Duration
	// ReadOnly opens the database only to read it, for commands that must never write: no
	// migration (a schema older than this build is refused), no writer, and Update answers
	// ErrReadOnly. A SQLite file must exist; it is opened with mode=ro, and with immutable=1 when
	// its directory is not writable and it has no write-ahead log to read. A PostgreSQL session is
	// opened with default_transaction_read_only=on.
	ReadOnly bool
}

// ErrReadOnly is the answer of Update on a store opened with Options.ReadOnly.
var ErrReadOnly = errors.New("the database is opened read-only")

// Store is an openconsole.Store on a SQL database.
type Store struct {
	d     *dialect
	w     *sql.DB // writes: one connection on SQLite, so that writers queue in Go
	r     *sql.DB // reads: a pool; the same as w on PostgreSQL
	state *sql.Stmt
	// prepared holds the statements of the write path, prepared once on the writer (SQLite only;
	// keyed by their text for the engine). Statements not in it are parsed each time they run.
	prepared map[string]*sql.Stmt

	// readOnly: opened with Options.ReadOnly; roDSN is then the SQLite DSN it was opened with.
	readOnly bool
	roDSN    string
	file     string // the SQLite database file, for error messages

	writes     chan *writeReq // to the group-commit writer
	quit       chan struct{}
	closeOnce  sync.Once
	writerDone chan struct{}
	stats      struct{ batches, updates, fallbacks atomic.Int64 }
	observer   atomic.Pointer[BatchObserver]
	known      int // the schema version this build migrates to
}

var _ openconsole.Store = (*Store)(nil)

// dialect holds what differs between the engines.
type dialect struct {
	name       string
	forUpdate  string // appended to SELECTs that lock license rows
	lockClock  string // run first in every write batch, to order batches across servers
	bindDollar bool   // placeholders are $1, $2, ... rather than ?
	rewritten  sync.Map
}

var (
	sqliteDialect   = &dialect{name: "sqlite"}
	postgresDialect = &dialect{
		name:       "postgres",
		forUpdate:  " FOR UPDATE",
		lockClock:  `SELECT last_ms FROM clock WHERE id = 1 FOR UPDATE`,
		bindDollar: true,
	}
)

// preparedQueries are the statements of the write path that run many times per second.
var preparedQueries = []string{
	lockLicenseByKey, lockLicensesByOwner, sessionByID, insertSession, addTaken, markSerial, endIdle, idleSessions,
	touchSession, countActivations, expiredSessions, `SELECT last_ms FROM clock WHERE id = 1`, `UPDATE clock SET last_ms = ? WHERE id = 1`,
}

// q rewrites a query written with ? placeholders for the engine.
func (d *dialect) q(query string) string {
	if !d.bindDollar {
		return query
	}
	if v, ok := d.rewritten.Load(query); ok {
		return v.(string)
	}
	out := d.rewrite(query)
	d.rewritten.Store(query, out)
	return out
}

func (d *dialect) rewrite(query string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// Open opens the database named by dsn and brings its schema up to date. dsn is
// postgres://... (or postgresql://...), sqlite:PATH, or a plain file path for SQLite. A SQLite
// database that does not exist is created (unless opts.ReadOnly) readable by its owner only:
// the file 0600 (its -wal and -shm files take the same mode), its directory 0700 when that is
// missing but its parent exists.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.StatementTimeout <= 0 {
		opts.StatementTimeout = 10 * time.Second
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	var s *Store
	var err error
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if opts.MaxConns <= 0 {
			opts.MaxConns = 16
		}
		s, err = openPostgres(dsn, opts)
	} else {
		if opts.MaxConns <= 0 {
			opts.MaxConns = 8
		}
		s, err = openSQLite(strings.TrimPrefix(dsn, "sqlite:"), opts)
	}
	if err != nil {
		return nil, err
	}
	s.readOnly = opts.ReadOnly
	if s.readOnly {
		err = s.checkSchema(ctx)
	} else {
		err = s.migrate(ctx)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	if s.state, err = s.r.PrepareContext(ctx, s.d.q(sessionStateQuery)); err != nil {
		s.Close()
		return nil, fmt.Errorf("prepare: %w", err)
	}
	s.prepared = make(map[string]*sql.Stmt)
	if s.readOnly {
		return s, nil
	}
	if s.d == sqliteDialect {
		for _, q := range preparedQueries {
			st, err := s.w.PrepareContext(ctx, q)
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("prepare: %w", err)
			}
			s.prepared[q] = st
		}
	}
	s.writes, s.quit, s.writerDone = make(chan *writeReq), make(chan struct{}), make(chan struct{})
	go s.writer()
	return s, nil
}

func openSQLite(file string, opts Options) (*Store, error) {
	if file == "" {
		return nil, errors.New("open: empty SQLite path")
	}
	if opts.ReadOnly {
		return openSQLiteReadOnly(file, opts)
	}
	if err := createSQLiteFile(file); err != nil {
		return nil, err
	}
	// FULL: every commit is on disk before it returns, so an acknowledged activation survives a
	// crash of the machine, not only of the process.
	pragmas := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"
	w, err := sql.Open("sqlite", file+"?"+pragmas+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", file, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := w.Ping(); err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", file, explainSQLite(file, err))
	}
	// Readers look sessions up one by one, and the validate cache keeps them off the database
	// anyway: 1 MiB of page cache each is plenty.
	r, err := sql.Open("sqlite", file+"?"+pragmas+"&_pragma=query_only(1)&_pragma=cache_size(-1024)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", file, err)
	}
	r.SetMaxOpenConns(opts.MaxConns)
	r.SetMaxIdleConns(opts.MaxConns)
	r.SetConnMaxIdleTime(0)
	r.SetConnMaxLifetime(0)
	return &Store{d: sqliteDialect, w: w, r: r, file: file}, nil
}

func openPostgres(dsn string, opts Options) (*Store, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		// Not %w: url.Error quotes the whole DSN, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("open: bad PostgreSQL DSN: %v", err)
	}
	q := u.Query()
	if opts.ReadOnly {
		// Every transaction of every connection is read-only: the server refuses any write.
		q.Set("default_transaction_read_only", "on")
	}
	if q.Get("connect_timeout") == "" {
		q.Set("connect_timeout", strconv.Itoa(int((opts.ConnectTimeout+time.Second-1)/time.Second)))
	}
	if q.Get("statement_timeout") == "" {
		q.Set("statement_timeout", strconv.FormatInt(opts.StatementTimeout.Milliseconds(), 10))
	}
	u.RawQuery = q.Encode()
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	db.SetMaxOpenConns(opts.MaxConns)
	db.SetMaxIdleConns(opts.MaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), opts.ConnectTimeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open PostgreSQL: %w", err)
	}
	return &Store{d: postgresDialect, w: db, r: db}, nil
}

// Engine names the database engine: "sqlite" or "postgres".
func (s *Store) Engine() string { return s.d.name }

// Close closes the database.
func (s *Store) Close() error {
	if s.quit != nil {
		s.closeOnce.Do(func() { close(s.quit) })
		<-s.writerDone
	}
	if s.d == sqliteDialect && !s.readOnly {
		// Leave no write-ahead log behind: the next start (or a copy of the file) need not replay it.
		s.w.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	}
	if s.state != nil {
		s.state.Close()
	}
	for _, st := range s.prepared {
		st.Close()
	}
	err := s.w.Close()
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

// backfills complete a migration in its transaction, by version, where what it fills in is
// computed by OpenConsole rather than SQL (the engines do not share the function).
var backfills = map[int]func(context.Context, *dialect, *sql.Tx) error{
	9: backfillKeyHashes,
}

// migrate applies the embedded migrations the database has not seen, each in its own
// transaction, and refuses a database whose schema is newer than this build knows.
func (s *Store) migrate(ctx context.Context) error {
	dir := path.Join("migrations", s.d.name)
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	type mig struct {
		version int
		name    string
	}
	var all []mig
	for _, e := range entries {
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migrate: bad migration name %s", e.Name())
		}
		all = append(all, mig{v, e.Name()})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].version < all[j].version })
	known := 0
	if len(all) > 0 {
		known = all[len(all)-1].version
	}
	s.known = known

	// The common case, a database already at this build's version, needs no write lock: CLI
	// commands open the database while servers write to it, and a busy SQLite writer can keep
	// others waiting for its lock.
	var current int
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err == nil {
		if current > known {
			return fmt.Errorf("migrate: the database schema is at version %d, newer than this build of OpenConsole knows (%d); upgrade OpenConsole", current, known)
		}
		if current == known {
			return nil
		}
	}
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range all {
		body, err := fs.ReadFile(migrations, path.Join(dir, m.name))
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		err = s.inTx(ctx, func(tx *sql.Tx) error {
			if s.d == postgresDialect {
				// Servers starting together on one database migrate one at a time.
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7401)`); err != nil {
					return err
				}
			}
			var current int
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
				return err
			}
			if current > known {
				return fmt.Errorf("the database schema is at version %d, newer than this build of OpenConsole knows (%d); upgrade OpenConsole", current, known)
			}
			if current >= m.version {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			if fill := backfills[m.version]; fill != nil {
				if err := fill(ctx, s.d, tx); err != nil {
					return fmt.Errorf("%s: backfill: %w", m.name, err)
				}
			}
			_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
				m.version, m.name, time.Now().UnixMilli())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	if len(all) == 0 {
		return nil
	}
	if err := s.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if current > known {
		return fmt.Errorf("migrate: the database schema is at version %d, newer than this build of OpenConsole knows (%d); upgrade OpenConsole", current, known)
	}
	return nil
}

// inTx runs fn in a write transaction, retrying on PostgreSQL serialization failures and deadlocks.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := s.tryTx(ctx, fn)
		if err == nil || attempt >= 5 || !retryable(err) || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
}

func (s *Store) tryTx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	if s.readOnly {
		return ErrReadOnly
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// retryable reports whether a transaction failed in a way that running it again may cure.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return false
}

// isUnique reports whether err is a unique or primary-key violation, by driver error code.
func isUnique(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	return false
}

// Millisecond times: 0 (or NULL) is the zero time.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func nullMS(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func fromNullMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMS(v.Int64)
}

// Readiness failures, for a health check to branch on.
var (
	// ErrUnreachable: the database did not answer (in time).
	ErrUnreachable = errors.New("database unreachable")
	// ErrSchemaNotCurrent: the database's schema is not the version this build migrates to (another
	// server of a different version migrated it, or a restore put an older one in place).
	ErrSchemaNotCurrent = errors.New("database schema not current")
)

// Ready reports whether the database answers a query within ctx's deadline and its schema is
// the version this build knows. The error wraps ErrUnreachable or ErrSchemaNotCurrent.
func (s *Store) Ready(ctx context.Context) error {
	var current int
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	if current != s.known {
		return fmt.Errorf("%w: at version %d, this build expects %d", ErrSchemaNotCurrent, current, s.known)
	}
	return nil
}

// PoolStats are the statistics of one of the store's connection pools.
type PoolStats struct {
	Name string // "read" and "write" on SQLite, "pool" on PostgreSQL
	sql.DBStats
}

// Pools returns the statistics of the store's connection pools.
func (s *Store) Pools() []PoolStats {
	if s.r == s.w {
		return []PoolStats{{"pool", s.w.Stats()}}
	}
	return []PoolStats{{"read", s.r.Stats()}, {"write", s.w.Stats()}}
}
