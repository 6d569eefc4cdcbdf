package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
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

// fail reports err on stderr and returns exit code 1. Passwords of the DSN in use are masked:
// a driver's error may quote the DSN verbatim.
func (e *cliEnv) fail(err error) int {
	fmt.Fprintf(e.stderr, "openconsole: %s\n", scrubSecrets(err.Error(), e.dsn()))
	return 1
}

// flags returns a FlagSet for a command, with --db.
func (e *cliEnv) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	// A Func flag has no default to print: the DSN from OPENCONSOLE_DB may hold a password, and a
	// StringVar would show it in the help text after any flag error.
	fs.Func("db", "database: sqlite:PATH, a path, or postgres://... (env OPENCONSOLE_DB)", func(v string) error {
		e.db = v
		return nil
	})
	return fs
}

// parse parses args, allowing flags after positional arguments too, and checks the number of
// positional arguments. When it returns false the command should exit with the returned code:
// 0 after -h, 2 on a usage error.
func (e *cliEnv) parse(fs *flag.FlagSet, args []string, positional int) ([]string, int, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0, false
			}
			return nil, 2, false
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
		return nil, 2, false
	}
	return pos, 0, true
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

// secretParams are the query parameters of a PostgreSQL DSN that hold secrets (libpq and pgx
// accept a password there as well as in the user info).
var secretParams = []string{"password", "sslpassword"}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// redactDSN hides the passwords in a PostgreSQL DSN for logs.
func redactDSN(dsn string) string {
	if !isPostgres(dsn) {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://…"
	}
	if u.RawQuery != "" {
		q := u.Query()
		for _, k := range secretParams {
			if q.Has(k) {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// dsnSecrets returns the passwords in a PostgreSQL DSN as they are written in it (and decoded),
// found without url.Parse so that a DSN it refuses is covered too.
func dsnSecrets(dsn string) []string {
	if !isPostgres(dsn) {
		return nil
	}
	var out []string
	add := func(raw string) {
		if raw == "" {
			return
		}
		out = append(out, raw)
		if dec, err := url.QueryUnescape(raw); err == nil && dec != raw && dec != "" {
			out = append(out, dec)
		}
	}
	rest := dsn[strings.Index(dsn, "://")+3:]
	authority, query := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	// The user info ends at the last '@' of the authority; a password may contain '@' unescaped.
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		if _, pw, ok := strings.Cut(authority[:at], ":"); ok {
			add(pw)
		}
	}
	if i := strings.Index(rest, "?"); i >= 0 {
		query, _, _ = strings.Cut(rest[i+1:], "#")
	}
	for _, kv := range strings.Split(query, "&") {
		k, v, _ := strings.Cut(kv, "=")
		for _, s := range secretParams {
			if strings.EqualFold(k, s) {
				add(v)
			}
		}
	}
	return out
}

// scrubSecrets masks every password of dsn that appears in msg.
func scrubSecrets(msg, dsn string) string {
	for _, s := range dsnSecrets(dsn) {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	return msg
}

// withService opens the store and a service with opts, runs fn with it, and prints what fn returns
// as JSON, or fails with fn's error: the shape of every admin command.
func (e *cliEnv) withService(opts openconsole.Options, fn func(svc *openconsole.Service) (any, error)) int {
	opts.OneShot = true
	svc, _, done, err := e.open(sqlstore.Options{}, opts)
	if err != nil {
		return e.fail(err)
	}
	defer done()
	out, err := fn(svc)
	if err != nil {
		return e.fail(err)
	}
	return e.print(out)
}

// printList writes a listing as {"items": [...], "nextCursor": ...} while it reads it, so that
// memory does not grow with the listing. seq yields at most limit+1 items when limit > 0: the
// extra one only says that there is a next page, whose cursor is that of the last item printed.
func printList[T any](e *cliEnv, seq iter.Seq2[T, error], limit int, item func(T) any, cursor func(T) string) int {
	w := bufio.NewWriterSize(e.stdout, 64<<10)
	n := 0
	var last T
	next := ""
	for x, err := range seq {
		if err != nil {
			w.Flush()
			return e.fail(err)
		}
		if limit > 0 && n == limit {
			next = cursor(last)
			break
		}
		b, err := json.MarshalIndent(item(x), "    ", "  ")
		if err != nil {
			return e.fail(err)
		}
		if n == 0 {
			w.WriteString("{\n  \"items\": [\n    ")
		} else {
			w.WriteString(",\n    ")
		}
		w.Write(b)
		last = x
		n++
	}
	if n == 0 {
		w.WriteString("{\n  \"items\": [")
	} else {
		w.WriteString("\n  ")
	}
	nc := []byte("null")
	if next != "" {
		nc, _ = json.Marshal(next)
	}
	fmt.Fprintf(w, "],\n  \"nextCursor\": %s\n}\n", nc)
	if err := w.Flush(); err != nil {
		return e.fail(err)
	}
	return 0
}
