package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// parseServe parses serve's flags from args, then the environment env and the config file holding
// file ("" for none), as cmdServe does.
func parseServe(t *testing.T, args []string, env map[string]string, file string, db string) (*serveConfig, []setting, string, error) {
	t.Helper()
	e := &cliEnv{stdout: io.Discard, stderr: io.Discard, db: db}
	fs := e.flags("serve")
	fs.SetOutput(io.Discard)
	c := serveFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	path := ""
	if file != "" {
		path = filepath.Join(t.TempDir(), "openconsole.toml")
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	settings, err := applyConfig(fs, path, lookup, &e.db)
	return c, settings, e.db, err
}

func TestConfigPrecedence(t *testing.T) {
	const file = `
addr = "10.0.0.1:1"
session-ttl = "3h"
max-in-flight = 100
metrics = false
limit-activation = "5,5"
`
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		file string
		// what must hold afterwards
		addr       string
		sessionTTL time.Duration
		inFlight   int
		metrics    bool
		limitBurst int
		sources    map[string]string // setting -> source prefix
	}{
		{name: "defaults", addr: "127.0.0.1:8080", inFlight: 4096, metrics: true, limitBurst: 30,
			sources: map[string]string{"addr": "default", "session-ttl": "default"}},
		{name: "file over default", file: file, addr: "10.0.0.1:1", sessionTTL: 3 * time.Hour, inFlight: 100, limitBurst: 5,
			sources: map[string]string{"addr": "file ", "max-in-flight": "file ", "token-ttl": "default"}},
		{name: "env over file", file: file, env: map[string]string{"OPENCONSOLE_ADDR": "10.0.0.2:2", "OPENCONSOLE_METRICS": "true",
			"OPENCONSOLE_LIMIT_ACTIVATION": "7,1"},
			addr: "10.0.0.2:2", sessionTTL: 3 * time.Hour, inFlight: 100, metrics: true, limitBurst: 7,
			sources: map[string]string{"addr": "env OPENCONSOLE_ADDR", "session-ttl": "file ", "metrics": "env OPENCONSOLE_METRICS"}},
		{name: "flag over env over file", file: file, args: []string{"--addr", "10.0.0.3:3", "--session-ttl", "1m"},
			env:  map[string]string{"OPENCONSOLE_ADDR": "10.0.0.2:2", "OPENCONSOLE_SESSION_TTL": "2h", "OPENCONSOLE_MAX_IN_FLIGHT": "7"},
			addr: "10.0.0.3:3", sessionTTL: time.Minute, inFlight: 7, limitBurst: 5,
			sources: map[string]string{"addr": "flag --addr", "session-ttl": "flag --session-ttl", "max-in-flight": "env ", "metrics": "file "}},
		{name: "an empty variable is unset", file: file, env: map[string]string{"OPENCONSOLE_ADDR": ""},
			addr: "10.0.0.1:1", sessionTTL: 3 * time.Hour, inFlight: 100, limitBurst: 5,
			sources: map[string]string{"addr": "file "}},
		{name: "env alone", env: map[string]string{"OPENCONSOLE_SESSION_TTL": "90s"}, addr: "127.0.0.1:8080",
			sessionTTL: 90 * time.Second, inFlight: 4096, metrics: true, limitBurst: 30,
			sources: map[string]string{"session-ttl": "env "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, settings, _, err := parseServe(t, tc.args, tc.env, tc.file, "")
			if err != nil {
				t.Fatal(err)
			}
			if c.addr != tc.addr || c.sessionTTL != tc.sessionTTL || c.maxInFlight != tc.inFlight || c.metrics != tc.metrics ||
				c.limits.ActivationFailuresPerAddr.Burst != tc.limitBurst {
				t.Errorf("got addr %q ttl %v in-flight %d metrics %v burst %d; want %q %v %d %v %d", c.addr, c.sessionTTL, c.maxInFlight,
					c.metrics, c.limits.ActivationFailuresPerAddr.Burst, tc.addr, tc.sessionTTL, tc.inFlight, tc.metrics, tc.limitBurst)
			}
			src := map[string]string{}
			for _, s := range settings {
				src[s.name] = s.source
			}
			for k, want := range tc.sources {
				if !strings.HasPrefix(src[k], want) {
					t.Errorf("source of %s = %q, want %q...", k, src[k], want)
				}
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		want       string
	}{
		{name: "unknown key", file: "addr = \"x:1\"\nadress = \"y\"\nzzz = 1\n", want: "unknown key(s) adress, zzz"},
		{name: "a table", file: "[addr]\nx = 1\n", want: "addr (a table)"},
		{name: "not a setting", file: "print-config = true\n", want: "unknown key(s) print-config"},
		{name: "bad TOML", file: "addr = \n", want: "config "},
		{name: "bad value in the file", file: "session-ttl = \"soon\"\n", want: "session-ttl"},
		{name: "an array", file: "addr = [1]\n", want: "want a string, number or boolean"},
		{name: "bad value in the environment", env: map[string]string{"OPENCONSOLE_MAX_IN_FLIGHT": "many"}, want: "OPENCONSOLE_MAX_IN_FLIGHT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := parseServe(t, nil, tc.env, tc.file, "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestConfigDB: db comes from --db or OPENCONSOLE_DB (read for every command), else the file.
func TestConfigDB(t *testing.T) {
	_, _, db, err := parseServe(t, nil, nil, "db = \"sqlite:/tmp/from-file.db\"\n", "")
	if err != nil || db != "sqlite:/tmp/from-file.db" {
		t.Errorf("db from the file: %q, %v", db, err)
	}
	_, _, db, err = parseServe(t, nil, nil, "db = \"sqlite:/tmp/from-file.db\"\n", "sqlite:/tmp/from-env.db")
	if err != nil || db != "sqlite:/tmp/from-env.db" {
		t.Errorf("db from the environment and the file: %q, %v; want the environment's", db, err)
	}
}

// TestPrintConfig: the output is a config file that reads back to the same settings, and shows no
// password of the DSN.
func TestPrintConfig(t *testing.T) {
	const pw = "print-Secret-9"
	r := run(t, "", "--db", "postgres://oc:"+pw+"@db.example:5432/oc?sslpassword="+pw, "serve", "--print-config",
		"--addr", "0.0.0.0:9", "--session-ttl", "2h", "--limit-login-user", "0", "--default-store", "3")
	if r.code != 0 {
		t.Fatalf("serve --print-config: exit %d, %s", r.code, r.stderr)
	}
	if strings.Contains(r.stdout, pw) {
		t.Errorf("--print-config shows the DSN's password:\n%s", r.stdout)
	}
	for _, want := range []string{`addr = "0.0.0.0:9"  # flag --addr`, `session-ttl = "2h0m0s"  # flag --session-ttl`,
		`max-in-flight = 4096  # default`, `metrics = true  # default`, `limit-login-user = "0"`, `default-store = "3"`,
		`limit-activation = "30,30"  # default`, `db = "postgres://oc:xxxxx@db.example:5432/oc?sslpassword=xxxxx"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--print-config lacks %q:\n%s", want, r.stdout)
		}
	}
	// Read back (without db, whose password is masked), it gives the same configuration.
	var kept []string
	for _, line := range strings.Split(r.stdout, "\n") {
		if !strings.HasPrefix(line, "db = ") {
			kept = append(kept, line)
		}
	}
	c, _, _, err := parseServe(t, nil, nil, strings.Join(kept, "\n"), "")
	if err != nil {
		t.Fatalf("the printed configuration does not read back: %v\n%s", err, r.stdout)
	}
	if c.addr != "0.0.0.0:9" || c.sessionTTL != 2*time.Hour || c.limits.LoginFailuresPerUser.Burst != 0 || !c.defaultStore.set || c.defaultStore.id != 3 {
		t.Errorf("read back: %+v", c)
	}
	secretFlags["addr"] = true
	defer delete(secretFlags, "addr")
	if r := run(t, "", "serve", "--print-config", "--addr", "0.0.0.0:9"); !strings.Contains(r.stdout, `addr = "xxxxx"`) {
		t.Errorf("a secret setting is printed:\n%s", r.stdout)
	}
}

// TestServeConfigFile runs serve with its address from a config file and a bad one.
func TestServeConfigFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("addr = \"127.0.0.1:0\"\nlog-format = \"text\"\n"), 0o600)
	startInProcess(t, "--config", good, "--db", filepath.Join(dir, "oc.db"))
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("adr = \"127.0.0.1:0\"\n"), 0o600)
	runFail(t, 2, "unknown key(s) adr", "serve", "--config", bad, "--db", filepath.Join(dir, "oc.db"))
	t.Setenv("OPENCONSOLE_CONFIG", bad)
	runFail(t, 2, "unknown key(s) adr", "serve", "--db", filepath.Join(dir, "oc.db"))
}
