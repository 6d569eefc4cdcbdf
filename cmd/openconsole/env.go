package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"

	"openconsole"
	"openconsole/sqlstore"
)

// defaultDB is the database when neither --db nor OPENCONSOLE_DB names one.
const defaultDB = "sqlite:openconsole.db"

// cliEnv is what every command runs with.
type cliEnv struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	db     string
}

func (e *cliEnv) usageErr(format string, args ...any) int {
	fmt.Fprintf(e.stderr, "openconsole: "+format+"\n\n%s", append(args, usage)...)
	return 2
}

func (e *cliEnv) fail(err error) int {
	fmt.Fprintf(e.stderr, "openconsole: %v\n", err)
	return 1
}

// flags returns a FlagSet for a command, with --db.
func (e *cliEnv) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&e.db, "db", e.db, "database: sqlite:PATH, a path, or postgres://... (env OPENCONSOLE_DB)")
	return fs
}

// parse parses args, allowing flags after positional arguments too, and checks the number of
// positional arguments.
func (e *cliEnv) parse(fs *flag.FlagSet, args []string, positional int) ([]string, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, false
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != positional {
		fmt.Fprintf(e.stderr, "openconsole: %s takes %d argument(s), got %d\n", fs.Name(), positional, len(pos))
		return nil, false
	}
	return pos, true
}

func (e *cliEnv) dsn() string {
	if e.db == "" {
		return defaultDB
	}
	return e.db
}

// open opens the store and a service on it. Call the returned function when done.
func (e *cliEnv) open(storeOpts sqlstore.Options, opts openconsole.Options) (*openconsole.Service, *sqlstore.Store, func(), error) {
	st, err := sqlstore.Open(e.ctx, e.dsn(), storeOpts)
	if err != nil {
		return nil, nil, nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(e.stderr, nil))
	}
	svc, err := openconsole.NewService(e.ctx, st, opts)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	return svc, st, func() { svc.Close(); st.Close() }, nil
}

// print writes v as indented JSON on stdout.
func (e *cliEnv) print(v any) int {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return e.fail(err)
	}
	return 0
}

// redactDSN hides a password in a PostgreSQL DSN for logs.
func redactDSN(dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			return u.Redacted()
		}
		return "postgres://…"
	}
	return dsn
}
