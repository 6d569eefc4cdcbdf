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
