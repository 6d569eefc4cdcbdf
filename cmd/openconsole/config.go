package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Configuration of serve. Every flag of serve's FlagSet is also a key of the config file (TOML,
// --config FILE, keys spelled as the flags: addr = "0.0.0.0:8080", session-ttl = "1h") and an
// environment variable (OPENCONSOLE_ and the name in upper case with _ for -: OPENCONSOLE_ADDR,
// OPENCONSOLE_SESSION_TTL). The FlagSet is the one table: a flag added to it is configurable all
// three ways, parsed by the same flag.Value. A flag on the command line wins over the environment,
// which wins over the file, which wins over the default. Unknown keys in the file are an error.

// configOnly are flags that are not settings: they are never read from the file or the
// environment (except --config, from OPENCONSOLE_CONFIG) and not printed.
var configOnly = map[string]bool{"config": true, "print-config": true, "server": true, "token-file": true}

// secretFlags are settings whose values --print-config does not show. db is shown with its
// passwords masked (redactDSN).
var secretFlags = map[string]bool{}

// setting is the effective value of one flag and where it came from.
type setting struct {
	name, value, source string
	typed               any // the flag's value as its flag.Getter gives it, for printing
}

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return "OPENCONSOLE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyConfig gives every flag of fs not set on the command line its value from the environment
// (lookupEnv; an empty variable counts as unset) or else from the config file, and returns the
// effective settings in name order. file "" means none. db is the --db value the command line or
// OPENCONSOLE_DB gave ("" if neither), set from the file when empty.
func applyConfig(fs *flag.FlagSet, file string, lookupEnv func(string) (string, bool), db *string) ([]setting, error) {
	fileVals := map[string]any{}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if _, err := toml.Decode(string(b), &fileVals); err != nil {
			return nil, fmt.Errorf("config %s: %w", file, err)
		}
		var unknown []string
		for k, v := range fileVals {
			if f := fs.Lookup(k); f == nil || configOnly[k] {
				unknown = append(unknown, k)
			} else if _, table := v.(map[string]any); table {
				unknown = append(unknown, k+" (a table)")
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return nil, fmt.Errorf("config %s: unknown key(s) %s (the keys are serve's flag names; openconsole serve --help lists them)",
				file, strings.Join(unknown, ", "))
		}
	}
	onCmdline := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCmdline[f.Name] = true })

	var out []setting
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if configOnly[f.Name] {
			return
		}
		source := "default"
		switch {
		case onCmdline[f.Name]:
			source = "flag --" + f.Name
		case f.Name == "db":
			// OPENCONSOLE_DB is read for every command (Run); the file comes after it.
			if *db != "" {
				source = "flag --db or " + envName("db")
			} else if v, ok := fileVals["db"]; ok {
				s, err := tomlString(v)
				if err == nil {
					err = f.Value.Set(s)
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("config %s: db: %w", file, err))
				}
				source = "file " + file
			}
		default:
			if v, ok := lookupEnv(envName(f.Name)); ok && v != "" {
				if err := f.Value.Set(v); err != nil {
					errs = append(errs, fmt.Errorf("%s=%q: %w", envName(f.Name), v, err))
				}
				source = "env " + envName(f.Name)
			} else if v, ok := fileVals[f.Name]; ok {
				s, err := tomlString(v)
				if err == nil {
					err = f.Value.Set(s)
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("config %s: %s: %w", file, f.Name, err))
				}
				source = "file " + file
			}
		}
		st := setting{name: f.Name, value: f.Value.String(), source: source}
		if g, ok := f.Value.(flag.Getter); ok {
			st.typed = g.Get()
		}
		if f.Name == "db" {
			st.value, st.typed = redactDSN(dbOrDefault(*db)), nil
		} else if secretFlags[f.Name] && st.value != "" {
			st.value, st.typed = "xxxxx", nil
		}
		out = append(out, st)
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func dbOrDefault(db string) string {
	if db == "" {
		return defaultDB
	}
	return db
}

// tomlString turns a TOML value into the text its flag parses: strings as they are, numbers and
// booleans as Go writes them. Arrays, tables and dates are refused.
func tomlString(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return "", fmt.Errorf("want a string, number or boolean, not %T", v)
}

// printConfig writes the settings as a TOML config file, each with its source in a comment.
func printConfig(w io.Writer, settings []setting) error {
	for _, s := range settings {
		var v any = s.value
		switch t := s.typed.(type) {
		case bool, int64, float64:
			v = t
		case int:
			v = int64(t)
		case uint:
			v = int64(t)
		}
		var b bytes.Buffer
		if err := toml.NewEncoder(&b).Encode(map[string]any{s.name: v}); err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "%s  # %s\n", strings.TrimRight(b.String(), "\n"), s.source); err != nil {
			return err
		}
	}
	return nil
}
