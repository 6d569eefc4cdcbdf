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

// TestSeatPool: every license is handed out at most seatsPerLicense times, takes in a row go to
// different licenses, and the pool says when it is empty.
func TestSeatPool(t *testing.T) {
	p := &seatPool{keys: []string{"a", "b", "c"}}
	used := map[string]int{}
	prev := ""
	for i := 0; i < 3*seatsPerLicense; i++ {
		k, ok := p.take()
		if !ok {
			t.Fatalf("take %d: pool empty after %d of %d seats", i, i, 3*seatsPerLicense)
		}
		if k == prev {
			t.Fatalf("take %d: %s twice in a row", i, k)
		}
		used[k]++
		prev = k
	}
	for k, n := range used {
		if n != seatsPerLicense {
			t.Errorf("license %s taken %d times, want %d", k, n, seatsPerLicense)
		}
	}
	if k, ok := p.take(); ok {
		t.Errorf("take after all seats: %s", k)
	}
	if p.taken() != 3*seatsPerLicense {
		t.Errorf("taken() = %d, want %d", p.taken(), 3*seatsPerLicense)
	}
	if _, ok := (&seatPool{}).take(); ok {
		t.Error("an empty pool handed out a seat")
	}
}

func TestMedianIndex(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want int
	}{
		{nil, -1},
		{[]float64{5}, 0},
		{[]float64{3, 1, 2}, 2},
		{[]float64{1, 9, 5, 7}, 3}, // even: the upper middle (7), like median
		{[]float64{2, 2, 1}, 0},
	} {
		if got := medianIndex(tc.xs); got != tc.want {
			t.Errorf("medianIndex(%v) = %d, want %d", tc.xs, got, tc.want)
		}
	}
	// medianIndex and median agree on which round is the median.
	rounds := []summary{{Name: "a", Throughput: 30}, {Name: "b", Throughput: 10}, {Name: "c", Throughput: 20}, {Name: "d", Throughput: 40}}
	xs := make([]float64, len(rounds))
	for i, r := range rounds {
		xs[i] = r.Throughput
	}
	if got, want := rounds[medianIndex(xs)].Name, median(rounds).Name; got != want {
		t.Errorf("medianIndex picks round %s, median picks %s", got, want)
	}
}

func TestWithDatabase(t *testing.T) {
	got, err := withDatabase("postgres://postgres:p%2Fw@127.0.0.1:5432/postgres?sslmode=disable", "perf_seats_1")
	if want := "postgres://postgres:p%2Fw@127.0.0.1:5432/perf_seats_1?sslmode=disable"; err != nil || got != want {
		t.Errorf("withDatabase = %q, %v; want %q", got, err, want)
	}
	if got, err := withDatabase("postgresql://h", "x"); err != nil || got != "postgresql://h/x" {
		t.Errorf("withDatabase without a database = %q, %v", got, err)
	}
	for _, bad := range []struct{ dsn, name string }{
		{"sqlite:x.db", "a"},
		{"postgres://h/db", `a"; DROP TABLE x; --`},
		{"postgres://h/db", "Upper"},
		{"postgres://h/db", ""},
	} {
		if got, err := withDatabase(bad.dsn, bad.name); err == nil {
			t.Errorf("withDatabase(%q, %q) = %q; want an error", bad.dsn, bad.name, got)
		}
	}
}

func TestDollarPlaceholders(t *testing.T) {
	if got, want := dollarPlaceholders(`SELECT COUNT(*) FROM t WHERE a = ? AND b < ?`), `SELECT COUNT(*) FROM t WHERE a = $1 AND b < $2`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestWritebackMedians(t *testing.T) {
	round := func(phase string, rate float64) wbRound {
		return wbRound{Phase: phase, Validate: summary{Throughput: rate}}
	}
	rounds := []wbRound{round("drain", 8000), round("drain", 12000), round("drain", 10000), round("after", 30000), round("after", 20000), round("after", 25000)}
	d, a, r := wbMedians(rounds)
	if d != 10000 || a != 25000 || r != 0.4 {
		t.Errorf("wbMedians = %v, %v, %v; want 10000, 25000, 0.4", d, a, r)
	}
	if d, a, r := wbMedians(rounds[3:]); d != 0 || a != 25000 || r != 0 {
		t.Errorf("without drain rounds: %v, %v, %v; want 0, 25000, 0", d, a, r)
	}
}
