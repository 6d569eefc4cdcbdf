// Package sqlstoretest gives tests fresh databases on every engine: a temporary SQLite file always,
// and a fresh PostgreSQL database whenever OPENCONSOLE_TEST_POSTGRES holds a DSN of a server (each
// test creates its own database there and drops it afterwards, so the server need not be empty).
package sqlstoretest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"openconsole/sqlstore"
)

// PostgresEnv names the environment variable with the DSN of a PostgreSQL server for tests.
const PostgresEnv = "OPENCONSOLE_TEST_POSTGRES"

// Engines returns the engines tests run on: "sqlite", and "postgres" when PostgresEnv is set.
func Engines() []string {
	if os.Getenv(PostgresEnv) != "" {
		return []string{"sqlite", "postgres"}
	}
	return []string{"sqlite"}
}

// Each runs fn as a subtest per engine with the DSN of a fresh, empty database.
func Each(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	for _, engine := range Engines() {
		t.Run(engine, func(t *testing.T) { fn(t, DSN(t, engine)) })
	}
}

// DSN returns the DSN of a fresh database on engine, removed when t ends.
func DSN(t testing.TB, engine string) string {
	t.Helper()
	switch engine {
	case "sqlite":
		return "sqlite:" + filepath.Join(t.TempDir(), "openconsole.db")
	case "postgres":
		return newPostgresDB(t)
	}
	t.Fatalf("unknown engine %q", engine)
	return ""
}

// Open opens a fresh store on engine, closed when t ends.
func Open(t testing.TB, engine string) *sqlstore.Store {
	t.Helper()
	return OpenDSN(t, DSN(t, engine))
}

// OpenDSN opens the store at dsn (creating and migrating it), closed when t ends.
func OpenDSN(t testing.TB, dsn string) *sqlstore.Store {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newPostgresDB(t testing.TB) string {
	t.Helper()
	server := os.Getenv(PostgresEnv)
	if server == "" {
		t.Skipf("%s is not set", PostgresEnv)
	}
	admin, err := sql.Open("pgx", server)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	defer admin.Close()
	b := make([]byte, 6)
	rand.Read(b)
	name := "openconsole_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
		t.Fatalf("postgres: create database: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", server)
		if err != nil {
			return
		}
		defer db.Close()
		db.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
	})
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("postgres: bad %s: %v", PostgresEnv, err)
	}
	u.Path = "/" + name
	return u.String()
}

// Exec runs a statement on the database at dsn behind OpenConsole's back (to corrupt it, say).
func Exec(t testing.TB, dsn, query string, args ...any) {
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
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}
