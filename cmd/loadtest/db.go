package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // the "sqlite" database/sql driver
)

// dbReader reads the server's database directly, beside the server, for what the HTTP API does not
// tell: how many live sessions a license holds, how many last-seen times are still unwritten. On
// SQLite it is a read-only connection (WAL lets it read while the server writes).
type dbReader struct {
	db       *sql.DB
	postgres bool
}

func openReader(dsn string) (*dbReader, error) {
	if dsn == "" {
		return nil, errors.New("no database: give --db (the server's DSN)")
	}
	r := &dbReader{postgres: isPostgres(dsn)}
	var err error
	if r.postgres {
		r.db, err = sql.Open("pgx", dsn)
	} else {
		r.db, err = sql.Open("sqlite", strings.TrimPrefix(dsn, "sqlite:")+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)")
	}
	if err != nil {
		return nil, err
	}
	r.db.SetMaxOpenConns(1)
	if err := r.db.Ping(); err != nil {
		r.db.Close()
		return nil, err
	}
	return r, nil
}

func (r *dbReader) close() { r.db.Close() }

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// count runs a COUNT query written with ? placeholders.
func (r *dbReader) count(q string, args ...any) (int, error) {
	if r.postgres {
		q = dollarPlaceholders(q)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var n int
	err := r.db.QueryRowContext(ctx, q, args...).Scan(&n)
	return n, err
}

// liveSessions counts the sessions of the license with key that are not revoked: its taken seats
// for a server without an idle timeout.
func (r *dbReader) liveSessions(key string) (int, error) {
	return r.count(`SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL
		AND license_id = (SELECT id FROM licenses WHERE key = ?)`, key)
}

// unwritten counts the live sessions whose stored last-seen time is older than beforeMS. (The
// revoked_at condition lets SQLite count over the sessions_live index rather than the table.)
func (r *dbReader) unwritten(beforeMS int64) (int, error) {
	return r.count(`SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND last_seen_at < ?`, beforeMS)
}

// dollarPlaceholders rewrites ? placeholders as PostgreSQL's $1, $2, ...
func dollarPlaceholders(q string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

var dbName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// withDatabase returns the PostgreSQL DSN dsn with its database replaced by name.
func withDatabase(dsn, name string) (string, error) {
	if !isPostgres(dsn) {
		return "", fmt.Errorf("not a PostgreSQL DSN")
	}
	if !dbName.MatchString(name) {
		return "", fmt.Errorf("database name %q: want lower-case letters, digits and _", name)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // not the whole DSN: it may hold a password
		}
		return "", fmt.Errorf("bad PostgreSQL DSN: %v", err)
	}
	u.Path, u.RawPath = "/"+name, ""
	return u.String(), nil
}

// cmdPGDB creates or drops a PostgreSQL database on the server of a DSN, for scripts/perf:
//
//	loadtest pgdb create DSN NAME   prints the DSN of the new, empty database NAME
//	loadtest pgdb drop DSN NAME     drops it (and ends its connections)
func cmdPGDB(args []string) error {
	if len(args) != 3 || (args[0] != "create" && args[0] != "drop") {
		return errors.New("usage: loadtest pgdb create|drop DSN NAME")
	}
	newDSN, err := withDatabase(args[1], args[2])
	if err != nil {
		return err
	}
	db, err := sql.Open("pgx", args[1])
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The name is checked above: a plain identifier, safe to quote into the statement.
	if args[0] == "create" {
		if _, err := db.ExecContext(ctx, `CREATE DATABASE "`+args[2]+`"`); err != nil {
			return err
		}
		fmt.Println(newDSN)
		return nil
	}
	_, err = db.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+args[2]+`" WITH (FORCE)`)
	return err
}
