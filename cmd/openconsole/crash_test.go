//go:build unix

package main

// Crash safety: the real binary under a storm of activations from many concurrent clients is
// killed with SIGKILL and restarted on the same database. What a client was told must still hold:
// every activation answered 200 is stored and validates; no license has more live sessions than
// seats; and the session timestamps issued after the restart are above every one issued before.
//
// The storm helpers here are shared with the graceful shutdown and backup tests.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"openconsole/sqlstore/sqlstoretest"
)

// soakEnv makes the crash test run kill-and-restart rounds for this long (a Go duration such as
// 2m) instead of one short round.
const soakEnv = "OPENCONSOLE_CRASH_SOAK"

// ack is an activation a client saw answered 200.
type ack struct {
	session wireSession
	key     string
	at      time.Time // when the answer was read
}

// storm is many clients activating devices by license key, each activation without a session so
// that each 200 issues a new session and takes a seat.
type storm struct {
	url    string
	keys   []string
	client *http.Client
	stop   chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex
	acks   []ack
	status map[int]int // answers by status; 0 counts transport errors (expected once killed)
	bad    []string    // answers that break the contract, whatever happened to the server
}

// startStorm starts workers clients activating the keys round-robin against url until stopped.
func startStorm(url string, keys []string, workers int) *storm {
	s := &storm{
		url: url, keys: keys, stop: make(chan struct{}), status: make(map[int]int),
		client: &http.Client{
			Timeout:   20 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers},
		},
	}
	for w := range workers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for i := w; ; i++ {
				select {
				case <-s.stop:
					return
				default:
				}
				s.activate(keys[i%len(keys)])
			}
		}()
	}
	return s
}

// activate sends one key-mode activation as FLECS Core does and records its outcome.
func (s *storm) activate(key string) {
	body, _ := json.Marshal(map[string]string{"licenseKey": key})
	resp, err := s.client.Post(s.url+"/api/v2/device/license/activate", "application/json", bytes.NewReader(body))
	if err != nil {
		s.record(0, nil, "")
		// The server is gone or going: do not spin.
		time.Sleep(5 * time.Millisecond)
		return
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		s.record(0, nil, "") // cut off mid-answer: not acknowledged
		return
	}
	switch resp.StatusCode {
	case http.StatusOK:
		var env struct {
			StatusCode int `json:"statusCode"`
			Data       struct {
				SessionID  *wireSession `json:"sessionId"`
				LicenseKey string       `json:"licenseKey"`
			} `json:"data"`
		}
		if json.Unmarshal(b, &env) != nil || env.StatusCode != 200 || env.Data.SessionID == nil || env.Data.LicenseKey != key {
			s.record(200, nil, fmt.Sprintf("activate %s: 200 %s", key, b))
			return
		}
		s.record(200, &ack{*env.Data.SessionID, key, time.Now()}, "")
	case http.StatusForbidden:
		// A full license; anything else is a wrong answer.
		if !bytes.Contains(b, []byte(`"License found but maximum activations reached"`)) {
			s.record(403, nil, fmt.Sprintf("activate %s: 403 %s", key, b))
			return
		}
		s.record(403, nil, "")
	case http.StatusServiceUnavailable:
		s.record(503, nil, "") // overload shedding is an honest answer; the device retries
	default:
		s.record(resp.StatusCode, nil, fmt.Sprintf("activate %s: %d %s", key, resp.StatusCode, b))
	}
}

func (s *storm) record(status int, a *ack, bad string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status[status]++
	if a != nil {
		s.acks = append(s.acks, *a)
	}
	if bad != "" && len(s.bad) < 20 {
		s.bad = append(s.bad, bad)
	}
}

// acked returns the activations acknowledged so far.
func (s *storm) acked() []ack {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ack(nil), s.acks...)
}

// waitAcks waits until at least n activations were acknowledged.
func (s *storm) waitAcks(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(s.acked()) < n {
		if time.Now().After(deadline) {
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("only %d activations answered 200 within %v (answers by status: %v; bad: %q)", len(s.acks), within, s.status, s.bad)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// halt stops the clients and waits for them; it reports wrong answers as test errors.
func (s *storm) halt(t *testing.T) {
	t.Helper()
	close(s.stop)
	s.wg.Wait()
	s.client.CloseIdleConnections()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.bad {
		t.Errorf("storm: %s", b)
	}
	t.Logf("storm: %d acknowledged activations; answers by status (0: transport error): %v", len(s.acks), s.status)
}

// stormLicenses creates the licenses of a storm through the CLI: large ones, so that the storm
// keeps issuing sessions, and small ones, whose seats the clients fight for.
func stormLicenses(t *testing.T, e *e2e) (keys []string, seats map[string]int) {
	t.Helper()
	seats = make(map[string]int)
	e.cli(t, new(struct{ Database, Engine string }), "", "init")
	for i, n := range []int{1_000_000, 1_000_000, 1_000_000, 1_000_000, 3, 5, 1} {
		var lic licenseJSONOut
		e.cli(t, &lic, "", "license", "create", "--activations", fmt.Sprint(n), "--key", fmt.Sprintf("STORM-%d-%04X", i, rand.IntN(1<<16)))
		keys = append(keys, lic.Key)
		seats[lic.Key] = n
	}
	return keys, seats
}

// checkAcked checks, on a running server, that every acknowledged activation is stored as it was
// answered (same license, same timestamp), live, and validates true. It returns the stored sessions.
func checkAcked(t *testing.T, e *e2e, srv *server, acks []ack) []sessionJSONOut {
	t.Helper()
	var sessions []sessionJSONOut
	e.cliItems(t, &sessions, "session", "list")
	byID := make(map[string]sessionJSONOut, len(sessions))
	for _, s := range sessions {
		byID[s.ID] = s
	}
	lost := 0
	for _, a := range acks {
		got, ok := byID[a.session.ID]
		switch {
		case !ok:
			lost++
			if lost <= 10 {
				t.Errorf("session %s of %s answered 200 at %s is not stored", a.session.ID, a.key, a.at.Format(time.StampMicro))
			}
		case got.License != a.key || got.Timestamp != a.session.Timestamp || !got.Live:
			t.Errorf("session %s answered 200 as %+v on %s is stored as %+v", a.session.ID, a.session, a.key, got)
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d activations answered 200 are lost", lost, len(acks))
	}

	// Every one validates over the wire: 16 clients at a time.
	var wg sync.WaitGroup
	var invalid atomic.Int64
	work := make(chan string)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				if ok, err := validateRaw(e.client, srv.url, id); err != nil || !ok {
					if invalid.Add(1) <= 10 {
						t.Errorf("validate %s after the restart: valid=%v, err=%v; want true", id, ok, err)
					}
				}
			}
		}()
	}
	for _, a := range acks {
		work <- a.session.ID
	}
	close(work)
	wg.Wait()
	return sessions
}

// validateRaw is a device validate that reports errors rather than failing the test, for use in
// goroutines.
func validateRaw(c *http.Client, url, id string) (bool, error) {
	req, err := http.NewRequest("POST", url+"/api/v2/device/license/validate", nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("X-Session-Id", id)
	resp, err := c.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var env struct {
		Data struct {
			IsValid *bool `json:"isValid"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || resp.StatusCode != 200 || env.Data.IsValid == nil {
		return false, fmt.Errorf("validate: status %d, decode %v", resp.StatusCode, err)
	}
	return *env.Data.IsValid, nil
}

// checkSeats checks that no license has more live sessions than seats, both as license list counts
// them and by counting the live sessions of session list.
func checkSeats(t *testing.T, e *e2e, seats map[string]int, sessions []sessionJSONOut) {
	t.Helper()
	var licenses []licenseJSONOut
	e.cliItems(t, &licenses, "license", "list")
	live := make(map[string]int)
	for _, s := range sessions {
		if s.Live {
			live[s.License]++
		}
	}
	for _, l := range licenses {
		if n := liveSessions(t, l); n > l.Seats.Total {
			t.Errorf("license list: %s has %d seats taken, more than its %d seats", l.Key, n, l.Seats.Total)
		}
		if live[l.Key] > l.Seats.Total {
			t.Errorf("session list: %s has %d live sessions, more than its %d seats", l.Key, live[l.Key], l.Seats.Total)
		}
		if want, ok := seats[l.Key]; ok && want < 10 && live[l.Key] != want {
			// A storm of hundreds of activations fills a small license.
			t.Errorf("license %s: %d live sessions after the storm, want all %d seats taken", l.Key, live[l.Key], want)
		}
	}
}

// maxTimestamp returns the largest session timestamp stored.
func maxTimestamp(sessions []sessionJSONOut) int64 {
	var m int64
	for _, s := range sessions {
		m = max(m, s.Timestamp)
	}
	return m
}

// checkNewTimestamps activates a few devices on the restarted server and checks that each new
// timestamp is above before, the largest one issued before the restart.
func checkNewTimestamps(t *testing.T, e *e2e, srv *server, key string, before int64) {
	t.Helper()
	body := jsonBody(`{"licenseKey":"` + key + `"}`)
	last := before
	for range 5 {
		s, _ := e.activate(t, srv, body, map[string]string{"Content-Type": "application/json"}, http.StatusOK)
		if s.Timestamp <= last {
			t.Errorf("session %s issued after the restart has timestamp %d, not above %d (the largest before it)", s.ID, s.Timestamp, last)
		}
		last = max(last, s.Timestamp)
	}
}

// TestCrashSafety kills the server with SIGKILL in the middle of an activation storm from 64
// clients, restarts it on the same database, and checks what the clients were told. With
// OPENCONSOLE_CRASH_SOAK set to a duration it repeats kill-and-restart rounds for that long.
func TestCrashSafety(t *testing.T) {
	bin := buildBinary(t)
	soak := time.Duration(0)
	if v := os.Getenv(soakEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", soakEnv, v, err)
		}
		soak = d
	}
	for _, engine := range sqlstoretest.Engines() {
		t.Run(engine, func(t *testing.T) {
			e := &e2e{bin: bin, dsn: sqlstoretest.DSN(t, engine), client: &http.Client{Timeout: 10 * time.Second}}
			keys, seats := stormLicenses(t, e)
			var all []ack // every activation acknowledged in any round
			end := time.Now().Add(soak)
			for round := 1; ; round++ {
				srv := startServer(t, bin, e.dsn)
				st := startStorm(srv.url, keys, 64)
				// Kill at a random moment once the storm is well under way.
				st.waitAcks(t, 200, 30*time.Second)
				time.Sleep(time.Duration(rand.IntN(500)) * time.Millisecond)
				if err := srv.cmd.Process.Kill(); err != nil {
					t.Fatalf("SIGKILL: %v", err)
				}
				<-srv.done
				st.halt(t)
				all = append(all, st.acked()...)

				// The seat bookkeeping survived the crash: openconsole check finds no mismatch.
				checkBookkeeping(t, e)
				srv = startServer(t, bin, e.dsn)
				sessions := checkAcked(t, e, srv, all)
				checkSeats(t, e, seats, sessions)
				before := maxTimestamp(sessions)
				for _, a := range all {
					if a.session.Timestamp > before {
						t.Errorf("acknowledged session %s has timestamp %d, above every stored one (%d)", a.session.ID, a.session.Timestamp, before)
					}
				}
				checkNewTimestamps(t, e, srv, keys[0], before)
				if !sortedUnique(all) {
					t.Errorf("two acknowledged activations share a session id or a timestamp")
				}
				srv.stop(t)
				if t.Failed() || !time.Now().Before(end) {
					t.Logf("%d round(s), %d acknowledged activations checked", round, len(all))
					return
				}
			}
		})
	}
}

// checkBookkeeping runs openconsole check and fails the test on a mismatch.
func checkBookkeeping(t *testing.T, e *e2e) {
	t.Helper()
	code, stdout, stderr := e.cliRun(t, "", "check")
	var out struct {
		OK         bool              `json:"ok"`
		Licenses   int               `json:"licenses"`
		HeldSeats  int               `json:"heldSeats"`
		Mismatches []json.RawMessage `json:"mismatches"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("openconsole check: bad JSON %v:\n%s%s", err, stdout, stderr)
	}
	if code != 0 || !out.OK || len(out.Mismatches) != 0 || out.Licenses == 0 {
		t.Errorf("openconsole check after the crash: exit code %d, %s%s", code, stdout, stderr)
	}
}

// sortedUnique reports whether the acknowledged sessions have distinct ids and distinct timestamps.
func sortedUnique(acks []ack) bool {
	ids := make(map[string]bool, len(acks))
	ts := make([]int64, 0, len(acks))
	for _, a := range acks {
		if ids[a.session.ID] {
			return false
		}
		ids[a.session.ID] = true
		ts = append(ts, a.session.Timestamp)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	for i := 1; i < len(ts); i++ {
		if ts[i] == ts[i-1] {
			return false
		}
	}
	return true
}
