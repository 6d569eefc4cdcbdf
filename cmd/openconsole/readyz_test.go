package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"openconsole/sqlstore"
	"openconsole/sqlstore/sqlstoretest"
)

// TestReadyzFollowsTheDatabase runs serve on a PostgreSQL cluster of its own, stops the cluster
// and starts it again: /readyz answers 200, then 503 with the reason while the database is away,
// then 200 again, and /healthz answers 200 throughout (the process still serves). It needs the
// PostgreSQL server binaries and, as root, a postgres user; without them it skips, or fails when
// OPENCONSOLE_REQUIRE_TOOLS is set.
func TestReadyzFollowsTheDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and stops a PostgreSQL cluster")
	}
	missing := ""
	if bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(bins) == 0 {
		missing = "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin; Debian package postgresql)"
	} else if _, err := user.Lookup("postgres"); os.Geteuid() == 0 && err != nil {
		missing = "running as root and there is no postgres user to run a cluster as"
	}
	if missing != "" {
		if os.Getenv("OPENCONSOLE_REQUIRE_TOOLS") != "" {
			t.Fatal(missing)
		}
		t.Skip(missing)
	}
	cluster := sqlstoretest.StartCluster(t)
	// A short connect timeout, so that a check while the database is away fails fast.
	p := startInProcess(t, "--addr", "127.0.0.1:0", "--db", cluster.DSN(), "--db-connect-timeout", "1s", "--ready-timeout", "1s")
	base := "http://" + p.addr
	c := &http.Client{Timeout: 10 * time.Second}
	// waitFor polls /readyz (its answer is reused for a second) until it gives want.
	waitFor := func(want int, reason string) {
		t.Helper()
		var code int
		var body string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			code, body, _ = call(t, c, "GET", base+"/readyz", "")
			if code == want && strings.Contains(body, reason) {
				return
			}
		}
		t.Fatalf("/readyz: %d %s, want %d with %q", code, body, want, reason)
	}
	waitFor(200, `"status":"ready"`)
	cluster.Stop()
	waitFor(503, `{"status":"unavailable","reason":"database unreachable"}`)
	if code, body, _ := call(t, c, "GET", base+"/healthz", ""); code != 200 {
		t.Errorf("/healthz while the database is away: %d %s, want 200", code, body)
	}
	cluster.Start()
	waitFor(200, `"status":"ready"`)
}

// TestHealthDuringShutdown: once shutdown begins both checks answer 503 with the reason, and a
// schema that is not current is its own reason.
func TestHealthDuringShutdown(t *testing.T) {
	var readyErr error
	h := newHealth(func(context.Context) error { return readyErr }, time.Second, discardLogger())
	get := func(fn http.HandlerFunc) (int, string) {
		w := httptest.NewRecorder()
		fn(w, httptest.NewRequest("GET", "/", nil))
		return w.Code, strings.TrimSpace(w.Body.String())
	}
	if code, body := get(h.readyz); code != 200 || body != `{"status":"ready"}` {
		t.Errorf("readyz: %d %s", code, body)
	}
	readyErr = fmt.Errorf("%w: at version 9, this build expects 7", sqlstore.ErrSchemaNotCurrent)
	h.checked = time.Time{} // forget the reused answer
	if code, body := get(h.readyz); code != 503 || body != `{"status":"unavailable","reason":"database schema not current"}` {
		t.Errorf("readyz on a schema not current: %d %s", code, body)
	}
	h.shutdown()
	for name, fn := range map[string]http.HandlerFunc{"healthz": h.healthz, "readyz": h.readyz} {
		if code, body := get(fn); code != 503 || body != `{"status":"unavailable","reason":"shutting down"}` {
			t.Errorf("%s during shutdown: %d %s, want 503 shutting down", name, code, body)
		}
	}
}
