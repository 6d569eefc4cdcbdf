package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"openconsole"
)

func TestStoredSessionIDs(t *testing.T) {
	a, b := storedSessionID("s", 1), storedSessionID("s", 2)
	if a == b || a != storedSessionID("s", 1) {
		t.Fatalf("ids not deterministic and distinct: %s %s", a, b)
	}
	if got, ok := openconsole.ParseSessionID(a); !ok || got != a || a[14] != '4' {
		t.Errorf("%s is not a canonical v4 UUID", a)
	}
}

// TestBigSessionIDs: the big license's ids are deterministic, canonical v4 UUIDs, and none of them
// is a stored session's id of the same seed (populate puts both in one database).
func TestBigSessionIDs(t *testing.T) {
	const n = 20000
	stored := make(map[string]bool, n)
	for i := 0; i < n; i++ {
		stored[storedSessionID("perf", i)] = true
	}
	for i := 0; i < n; i++ {
		id := bigSessionID("perf", i)
		if stored[id] {
			t.Fatalf("big session %d has the id of a stored session: %s", i, id)
		}
		if got, ok := openconsole.ParseSessionID(id); !ok || got != id || id[14] != '4' {
			t.Fatalf("%s is not a canonical v4 UUID", id)
		}
	}
	if bigSessionID("perf", 7) != bigSessionID("perf", 7) || bigSessionID("perf", 7) == bigSessionID("perf", 8) {
		t.Error("big session ids are not deterministic and distinct")
	}
	// Changing how stored ids derive would orphan the sessions of existing test databases.
	if got, want := storedSessionID("s", 1), "320e5b0e-54d9-4ad0-a70f-3e2336c94b76"; got != want {
		t.Errorf("storedSessionID(s, 1) = %s; it was %s", got, want)
	}
}

// TestClientAgainstBaseline: the raw client reads the baseline's answers, session header included,
// over one kept-alive connection.
func TestClientAgainstBaseline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(baselineHandler))
	defer srv.Close()
	c, err := dial(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for i := 0; i < 3; i++ {
		resp, err := c.post("/api/v2/device/license/validate", []string{"X-Session-Id: abc"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.status != 200 || string(resp.body) != string(baselineBody) || !strings.Contains(string(resp.session), `"id":"abc"`) {
			t.Fatalf("response %d %q session %q", resp.status, resp.body, resp.session)
		}
	}
}
