package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"openconsole/sqlstore/sqlstoretest"
)

// TestCLIUnderStorm is the case that failed when the CLI opened the SQLite database itself: 32
// clients activate continuously while the CLI creates and revokes 50 licenses. The CLI now sends
// each command to the server through its admin socket, so every command succeeds within 2 s, and
// every revoked license validates false within a second of its revocation.
func TestCLIUnderStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("a storm of activations: not in -short")
	}
	bin := buildBinary(t)
	e := &e2e{bin: bin, dsn: sqlstoretest.DSN(t, "sqlite"), client: &http.Client{Timeout: 10 * time.Second}}
	srv := startServer(t, bin, e.dsn)
	var big licenseJSONOut
	e.cli(t, &big, "", "license", "create", "--seats", "1000000")
	st := startStorm(srv.url, []string{big.Key}, 32)
	st.waitAcks(t, 200, 30*time.Second)

	timed := func(v any, args ...string) time.Duration {
		t.Helper()
		start := time.Now()
		code, stdout, stderr := e.cliRun(t, "", args...)
		took := time.Since(start)
		if code != 0 {
			t.Fatalf("openconsole %s under the storm: exit code %d; stderr:\n%s", strings.Join(args, " "), code, stderr)
		}
		if err := json.Unmarshal([]byte(stdout), v); err != nil {
			t.Fatalf("openconsole %s: %v\n%s", strings.Join(args, " "), err, stdout)
		}
		if took > 2*time.Second {
			t.Errorf("openconsole %s took %v under the storm, want at most 2s", strings.Join(args, " "), took)
		}
		return took
	}
	var slowest time.Duration
	jsonCT := map[string]string{"Content-Type": "application/json"}
	for i := 0; i < 50; i++ {
		var l, rev licenseJSONOut
		slowest = max(slowest, timed(&l, "license", "create", "--seats", "1"))
		s, _ := e.activate(t, srv, jsonBody(`{"licenseKey":"`+l.Key+`"}`), jsonCT, http.StatusOK)
		slowest = max(slowest, timed(&rev, "license", "revoke", l.Key))
		revoked := time.Now()
		for e.validate(t, srv, s.ID) {
			if time.Since(revoked) > time.Second {
				t.Fatalf("license %d: its session still validates %v after the revocation", i, time.Since(revoked))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	st.halt(t)
	acks := len(st.acked())
	t.Logf("100 CLI commands under a storm of %d acknowledged activations; the slowest took %v", acks, slowest)
	srv.stop(t)
}
