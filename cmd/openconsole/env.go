package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

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
	// server and tokenFile name a server to send admin commands to (client.go).
	server, tokenFile string
	// create lets open create a database that does not exist (serve, init).
	create bool
	// offlineKey is the certificate signing key a command on the database itself signs with
	// (offline issue --key-file); empty: the key held in the database.
	offlineKey string
	// readOnly: the command only reads (readOnlyCommands), so it opens the database read-only and
	// writes nothing to it: no migration, no key, no checkpoint. It works on a file it may not write.
	readOnly bool
}

// usageErr reports a usage error on stderr, with where to find the usage, and returns exit code 2.
func (e *cliEnv) usageErr(format string, args ...any) int {
	fmt.Fprintf(e.stderr, "openconsole: "+format+"\n", args...)
	fmt.Fprintln(e.stderr, "Run openconsole --help for the commands, openconsole COMMAND --help for a command's flags.")
	return 2
}

// fail reports err on stderr and returns exit code 1. Passwords of the DSN in use are masked:
// a driver's error may quote the DSN verbatim.
func (e *cliEnv) fail(err error) int {
	fmt.Fprintf(e.stderr, "openconsole: %s\n", scrubSecrets(err.Error(), e.dsn()))
	return 1
}

// flags returns a FlagSet for a command, with the global flags --db, --server and --token-file.
func (e *cliEnv) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	// A Func flag has no default to print: the DSN from OPENCONSOLE_DB may hold a password, and a
	// StringVar would show it in the help text after any flag error.
	fs.Func("db", "database: sqlite:PATH, a path, or postgres://... (env OPENCONSOLE_DB)", func(v string) error {
		e.db = v
		return nil
	})
	fs.Func("server", "send the command to this server, http(s)://HOST:PORT (env OPENCONSOLE_SERVER)", func(v string) error {
		e.server = v
		return nil
	})
	fs.Func("token-file", "with --server: the file holding an API token (default: env OPENCONSOLE_TOKEN)", func(v string) error {
		e.tokenFile = v
		return nil
	})
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage of openconsole %s:\n", fs.Name())
		// As PrintDefaults, spelled --flag, which is how the usage and the README write them.
		fs.VisitAll(func(f *flag.Flag) {
			kind, text := flag.UnquoteUsage(f)
			if kind == "value" {
				kind = "VALUE"
			}
			if kind != "" {
				kind = " " + kind
			}
			if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); isBool {
				kind = ""
			}
			def := ""
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
				def = fmt.Sprintf(" (default %q)", f.DefValue)
			}
			fmt.Fprintf(w, "  --%s%s\n    \t%s%s\n", f.Name, kind, strings.ReplaceAll(text, "\n", "\n    \t"), def)
		})
	}
	return fs
}

// parse parses args, allowing flags after positional arguments too, and checks the number of
// positional arguments. When it returns false the command should exit with the returned code:
// 0 after -h or --help (the help goes to stdout), 2 on a usage error (its message to stderr).
func (e *cliEnv) parse(fs *flag.FlagSet, args []string, positional int) ([]string, int, bool) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			fs.SetOutput(e.stdout)
			fs.Usage()
			return nil, 0, false
		}
	}
	var pos []string
	// Package flag's own messages speak of -flags and Go's types; flagError says them in words.
	fs.SetOutput(io.Discard)
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0, false
			}
			fmt.Fprintf(e.stderr, "openconsole: %s: %s\nRun openconsole %s --help for its flags.\n", fs.Name(), flagError(fs, err), fs.Name())
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
		fmt.Fprintf(e.stderr, "openconsole: %s takes %d argument(s), got %d\nRun openconsole %s --help for its usage.\n", fs.Name(), positional, len(pos), fs.Name())
		return nil, 2, false
	}
	return pos, 0, true
}

var (
	flagInvalidRE = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for (?:flag )?-([^:]+): (.*)$`)
	flagUnknownRE = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	flagNoArgRE   = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
)

// flagError says a parse error of package flag in words: --name, and for the flags of Go's types
// what a value looks like rather than strconv's or time's message.
func flagError(fs *flag.FlagSet, err error) string {
	msg := err.Error()
	if m := flagUnknownRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("there is no flag --%s", m[1])
	}
	if m := flagNoArgRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("--%s needs a value", m[1])
	}
	m := flagInvalidRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	value, name, why := m[1], m[2], m[3]
	if f := fs.Lookup(name); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			switch g.Get().(type) {
			case time.Duration:
				why = "want a duration like 90s, 15m or 12h"
			case int, int64, uint, uint64:
				why = "want a whole number"
			case bool:
				why = "want true or false"
			case float64:
				why = "want a number"
			}
		}
	}
	return fmt.Sprintf("--%s: %s (got %q)", name, why, value)
}

func (e *cliEnv) dsn() string {
	if e.db == "" {
		return defaultDB
	}
	return e.db
}

// open opens the store and a service on it. Call the returned function when done. A SQLite
// database that does not exist is created only by the commands that set e.create (serve, init):
// for any other, a mistyped path is "no database", not a new empty one.
func (e *cliEnv) open(storeOpts sqlstore.Options, opts openconsole.Options) (*openconsole.Service, *sqlstore.Store, func(), error) {
	if dsn := e.dsn(); !isPostgres(dsn) && !e.create {
		file := strings.TrimPrefix(dsn, "sqlite:")
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			return nil, nil, nil, fmt.Errorf("no database at %s (openconsole init creates one; serve does too)", file)
		}
	}
	if e.readOnly {
		storeOpts.ReadOnly, opts.ReadOnly = true, true
	}
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
