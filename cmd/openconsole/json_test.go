package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var (
	camelCase  = regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)
	looksTime  = regexp.MustCompile(`^\d{4}-\d\d-\d\dT`)
	apiTimeRE  = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	opaqueKeys = map[string]bool{"metadata": true, "document": true} // what the caller stored, as given
)

// checkJSONStyle walks a JSON value: every object key camelCase, every time RFC 3339 in UTC with
// milliseconds, as the operator API writes them.
func checkJSONStyle(t *testing.T, what, path string, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if !camelCase.MatchString(k) {
				t.Errorf("%s: key %s%s is not camelCase", what, path, k)
			}
			if !opaqueKeys[k] {
				checkJSONStyle(t, what, path+k+".", e)
			}
		}
	case []any:
		for _, e := range v {
			checkJSONStyle(t, what, path, e)
		}
	case string:
		if looksTime.MatchString(v) && !apiTimeRE.MatchString(v) {
			t.Errorf("%s: %s = %q, want a time like 2026-12-02T12:00:46.030Z", what, strings.TrimSuffix(path, "."), v)
		}
	}
}

// jsonOut runs a command that must succeed and returns each JSON value it printed (audit export
// prints one per line), checked for style.
func jsonOut(t *testing.T, stdin string, args ...string) []any {
	t.Helper()
	r := run(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("openconsole %s: exit code %d; stderr:\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	var out []any
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	for dec.More() {
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("openconsole %s: not JSON: %v\n%s", strings.Join(args, " "), err, r.stdout)
		}
		checkJSONStyle(t, "openconsole "+strings.Join(args[2:], " "), "", v)
		out = append(out, v)
	}
	if len(out) == 0 {
		t.Fatalf("openconsole %s printed no JSON", strings.Join(args, " "))
	}
	return out
}

func objKeys(v any) []string {
	m, _ := v.(map[string]any)
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// firstItem is the first item of a listing's output.
func firstItem(t *testing.T, v []any) any {
	t.Helper()
	items, _ := v[0].(map[string]any)["items"].([]any)
	if len(items) == 0 {
		t.Fatalf("listing without items: %v", v)
	}
	return items[0]
}

// TestJSONOutputStyle: every command prints JSON in one style (camelCase keys, times as
// 2026-12-02T12:00:46.030Z), and a create prints the fields its list prints for the same object
// (the token's secret, shown once, and a manifest's replaced flag aside).
func TestJSONOutputStyle(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		db := []string{"--db", dsn}
		c := func(args ...string) []any { t.Helper(); return jsonOut(t, "", append(db, args...)...) }
		same := func(what string, created any, listed []any, except ...string) {
			t.Helper()
			want := slices.DeleteFunc(objKeys(created), func(k string) bool { return slices.Contains(except, k) })
			if got := objKeys(firstItem(t, listed)); !slices.Equal(got, want) {
				t.Errorf("%s: list prints fields %v, create %v", what, got, want)
			}
		}
		user := c("user", "create", "--username", "alice", "--password", "pw-long-enough", "--email", "a@example.com")
		same("user", user[0], c("user", "list"))
		c("user", "show", "alice")
		lic := c("license", "create", "--owner", "alice", "--seats", "2", "--expires", "2031-05-06", "--metadata", `{"order_no":"4711","at":"2026-01-01T00:00:00Z"}`)
		same("license", lic[0], c("license", "list"))
		key := lic[0].(map[string]any)["key"].(string)
		c("license", "show", key)
		c("license", "update", key, "--expires", "90d")
		activate(t, dsn, key)
		sessions := c("session", "list", "--license", key)
		c("session", "show", firstItem(t, sessions).(map[string]any)["id"].(string))
		serial := c("serial", "register", "--serial", "SN-1", "--model", "m", "--manufacturer", "ACME", "--manufacturer-id", "3", "--date", "2025-01-01")
		same("serial", serial[0], c("serial", "list"))
		tok := c("token", "create", "--name", "shop", "--role", "operator", "--expires", "2031-01-31")
		same("token", tok[0], c("token", "list"), "token")
		manifest := writeFile(t, "m.json", manifestDoc(t, nil))
		added := c("app", "manifest", "add", manifest, "--official")
		same("manifest", added[0], c("app", "manifest", "list"), "replaced")
		jsonOut(t, "registry-pw\n", append(db, "app", "credentials", "set", "tech.flecs.official", "--username", "u")...)
		c("app", "tokens", "list")
		c("product", "import", writeFile(t, "p.json", `[{"id":7,"name":"App","store":{"id":1},
			"attributes":[{"id":1,"name":"reverse-domain-name","options":["tech.flecs.official"]}]}]`))
		c("product", "list")
		sub := c("subscription", "add", "--user", "alice", "--product", "7")
		same("subscription", sub[0], c("subscription", "list"))
		c("stats")
		c("check")
		c("check", "--repair")
		c("jwt", "rotate")
		c("audit", "list")
		c("audit", "export")
		c("audit", "checkpoint")
		c("audit", "checkpoint", "--out", filepath.Join(t.TempDir(), "cp"))
		c("audit", "verify")
		c("audit", "key")
		keyFile := filepath.Join(t.TempDir(), "audit.key")
		c("audit", "keygen", "--out", keyFile)
		c("audit", "key", "--key-file", keyFile)
		c("init")
		if !isPostgres(dsn) {
			c("backup", "--out", filepath.Join(t.TempDir(), "copy.db"))
		}
		c("license", "revoke", key)
	})
}

// TestSameOutputThroughServer: a command prints the same bytes whether it runs on the database
// itself or through a running server (its local socket on SQLite, --server with a token on both).
func TestSameOutputThroughServer(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		db := []string{"--db", dsn}
		c := func(args ...string) []any { t.Helper(); return jsonOut(t, "", append(db, args...)...) }
		c("user", "create", "--username", "alice", "--password", "pw-long-enough")
		key := c("license", "create", "--owner", "alice", "--expires", "2031-05-06")[0].(map[string]any)["key"].(string)
		activate(t, dsn, key)
		sid := firstItem(t, c("session", "list"))
		tok := c("token", "create", "--name", "cli", "--role", "admin")[0].(map[string]any)["token"].(string)
		tokenFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		commands := [][]string{{"license", "show", key}, {"license", "list"}, {"user", "show", "alice"}, {"user", "list"},
			{"session", "show", sid.(map[string]any)["id"].(string)}, {"session", "list"}, {"check"}}
		direct := map[string]string{}
		for _, args := range commands {
			direct[strings.Join(args, " ")] = run(t, "", append(db, args...)...).stdout
		}
		addr, stop := serveAt(t, db...)
		defer stop()
		ways := map[string][]string{"--server": {"--server", "http://" + addr, "--token-file", tokenFile}}
		if !isPostgres(dsn) {
			ways["socket"] = nil
		}
		for way, flags := range ways {
			for _, args := range commands {
				r := run(t, "", append(append(append([]string{}, db...), flags...), args...)...)
				if want := direct[strings.Join(args, " ")]; r.code != 0 || r.stdout != want {
					t.Errorf("%s: openconsole %s: exit %d, printed\n%s\nwant, as on the database itself:\n%s%s", way, strings.Join(args, " "), r.code, r.stdout, want, r.stderr)
				}
			}
		}
	})
}
