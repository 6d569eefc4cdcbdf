package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"openconsole"
	"openconsole/api"
	"openconsole/sqlstore"
	"openconsole/sqlstore/sqlstoretest"
)

// limitServer runs the API with the default abuse limits, taking the client address from
// X-Forwarded-For so that one test can speak from several addresses. Its clock stands still, so
// that no bucket refills while a slow (race-detector) run is under way.
func limitServer(t *testing.T, dsn string) (*openconsole.Service, string) {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	svc, err := openconsole.NewService(context.Background(), st, openconsole.Options{Now: func() time.Time { return frozen }})
	if err != nil {
		t.Fatal(err)
	}
	h := api.New(svc, slog.New(slog.NewTextHandler(io.Discard, nil)), api.WithClientIPHeader("X-Forwarded-For"))
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); svc.Close(); st.Close() })
	return svc, srv.URL
}

type limitResp struct {
	status     int
	reason     string
	retryAfter string
	sessionID  string
}

func limitPost(t *testing.T, c *http.Client, url, path, from, sid, body string) limitResp {
	t.Helper()
	req, _ := http.NewRequest("POST", url+path, bytes.NewReader([]byte(body)))
	req.Header.Set("X-Forwarded-For", from)
	if sid != "" {
		req.Header.Set("X-Session-Id", sid)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env struct {
		Reason     string `json:"reason"`
		StatusCode int    `json:"statusCode"`
		Data       struct {
			SessionID struct {
				ID string `json:"id"`
			} `json:"sessionId"`
		} `json:"data"`
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &env); err != nil || env.StatusCode != resp.StatusCode {
			t.Fatalf("status %d with body %q outside the envelope", resp.StatusCode, b)
		}
	}
	return limitResp{resp.StatusCode, env.Reason, resp.Header.Get("Retry-After"), env.Data.SessionID.ID}
}

// TestKeyGuessingThrottledBootStormNot: 2,000 devices behind one NAT address activate with valid
// keys at once and all succeed (then validate); 1,000 random keys from one address are refused
// 429 after the configured burst of failures, while a device of that address that presents its
// live session still gets its 204, and other addresses are not affected.
func TestKeyGuessingThrottledBootStormNot(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		svc, url := limitServer(t, dsn)
		ctx := context.Background()
		const devices, seats = 2000, 50
		var keys []string
		for i := 0; i < devices/seats; i++ {
			lic, err := svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: seats})
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, lic.Key)
		}
		const nat = "203.0.113.7"
		c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		sessions := make([]string, devices)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		var mu sync.Mutex
		failed := map[int]int{}
		for i := 0; i < devices; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				r := limitPost(t, c, url, "/api/v2/device/license/activate", nat, "", `{"licenseKey":"`+keys[i%len(keys)]+`"}`)
				mu.Lock()
				defer mu.Unlock()
				if r.status != http.StatusOK {
					failed[r.status]++
					return
				}
				sessions[i] = r.sessionID
			}(i)
		}
		wg.Wait()
		if len(failed) > 0 {
			t.Fatalf("boot storm from one address: failures by status %v, want every device activated", failed)
		}
		for i, sid := range sessions {
			if r := limitPost(t, c, url, "/api/v2/device/license/validate", nat, sid, ""); r.status != http.StatusOK {
				t.Fatalf("validate of device %d: status %d", i, r.status)
			}
		}

		// Key guessing from one address.
		const attacker = "198.51.100.9"
		burst := openconsole.DefaultLimits.ActivationFailuresPerAddr.Burst
		notFound, throttled := 0, 0
		for i := 0; i < 1000; i++ {
			r := limitPost(t, c, url, "/api/v2/device/license/activate", attacker, "", fmt.Sprintf(`{"licenseKey":"GUESS-%04d-%s"}`, i, openconsole.NewLicenseKey()))
			switch r.status {
			case http.StatusForbidden:
				notFound++
				if throttled > 0 {
					t.Fatalf("guess %d answered 403 after being throttled", i)
				}
			case http.StatusTooManyRequests:
				throttled++
				if n, err := strconv.Atoi(r.retryAfter); err != nil || n < 1 {
					t.Fatalf("429 with Retry-After %q, want a positive number of seconds", r.retryAfter)
				}
			default:
				t.Fatalf("guess %d: status %d", i, r.status)
			}
		}
		if notFound != burst || throttled != 1000-burst {
			t.Errorf("1000 guesses: %d answered not found, %d throttled; want %d and %d", notFound, throttled, burst, 1000-burst)
		}
		// Throttled or not, a real key is not let through for the guessing address...
		if r := limitPost(t, c, url, "/api/v2/device/license/activate", attacker, "", `{"licenseKey":"`+keys[0]+`"}`); r.status != http.StatusTooManyRequests {
			t.Errorf("real key from the throttled address: status %d, want 429", r.status)
		}
		// ...but a device there that presents its live session is answered.
		if r := limitPost(t, c, url, "/api/v2/device/license/activate", attacker, sessions[0], `{"licenseKey":"`+keys[0]+`"}`); r.status != http.StatusNoContent {
			t.Errorf("re-activation with a live session from the throttled address: status %d, want 204", r.status)
		}
		// Other addresses are not affected.
		if r := limitPost(t, c, url, "/api/v2/device/license/activate", "192.0.2.1", "", `{"licenseKey":"NOPE"}`); r.status != http.StatusForbidden {
			t.Errorf("unknown key from another address: status %d, want 403", r.status)
		}
	})
}

// TestLoginThrottling: failed logins are throttled per username (even from many addresses, and even
// for the right password once throttled) and per address (even across usernames).
func TestLoginThrottling(t *testing.T) {
	svc, url := limitServer(t, sqlstoretest.DSN(t, "sqlite"))
	ctx := context.Background()
	for _, u := range []string{"victim", "bystander"} {
		if _, err := svc.CreateUser(ctx, openconsole.UserInput{Username: u, Password: "right"}); err != nil {
			t.Fatal(err)
		}
	}
	c := &http.Client{}
	login := func(from, user, pw string) limitResp {
		return limitPost(t, c, url, "/api/v2/auth/login", from, "", `{"username":"`+user+`","password":"`+pw+`"}`)
	}
	perUser := openconsole.DefaultLimits.LoginFailuresPerUser.Burst
	for i := 0; i < perUser; i++ {
		if r := login(fmt.Sprintf("10.0.0.%d", i), "victim", "wrong"); r.status != http.StatusForbidden {
			t.Fatalf("failure %d: status %d, want 403", i, r.status)
		}
	}
	if r := login("10.0.1.1", "victim", "right"); r.status != http.StatusTooManyRequests || r.retryAfter == "" {
		t.Errorf("right password after %d failures from many addresses: status %d Retry-After %q, want 429", perUser, r.status, r.retryAfter)
	}
	if r := login("10.0.1.1", "bystander", "right"); r.status != http.StatusOK {
		t.Errorf("another user: status %d, want 200", r.status)
	}

	perAddr := openconsole.DefaultLimits.LoginFailuresPerAddr.Burst
	for i := 0; i < perAddr; i++ {
		if r := login("10.9.9.9", fmt.Sprintf("nobody%d", i), "x"); r.status != http.StatusForbidden {
			t.Fatalf("spray %d: status %d, want 403", i, r.status)
		}
	}
	if r := login("10.9.9.9", "bystander", "right"); r.status != http.StatusTooManyRequests {
		t.Errorf("login from an address that sprayed %d usernames: status %d, want 429", perAddr, r.status)
	}
}

// TestOverloadAnswers503: past the in-flight bound a request is answered 503 in the envelope, with
// the CORS headers a browser needs to read it.
func TestOverloadAnswers503(t *testing.T) {
	st := sqlstoretest.Open(t, "sqlite")
	svc, err := openconsole.NewService(context.Background(), st, openconsole.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	h := api.New(svc, slog.New(slog.NewTextHandler(io.Discard, nil)), api.WithMaxInFlight(1), api.WithMaxInFlightWeb(1))
	// Hold the one slot of each class with a request whose body never finishes arriving.
	var pws []*io.PipeWriter
	var done sync.WaitGroup
	for _, path := range []string{"/api/v2/device/license/activate", "/api/v2/auth/login"} {
		pr, pw := io.Pipe()
		pws = append(pws, pw)
		started := make(chan struct{})
		done.Add(1)
		go func() {
			defer done.Done()
			req := httptest.NewRequest("POST", path, io.TeeReader(pr, closeOnRead(started)))
			h.ServeHTTP(httptest.NewRecorder(), req)
		}()
		pw.Write([]byte("{"))
		<-started
	}
	for _, path := range []string{"/api/v2/device/license/validate", "/api/v2/products/apps"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", path, nil)
		req.Header.Set("Origin", "http://device.local")
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s: status %d Retry-After %q, want 503 with Retry-After", path, rec.Code, rec.Header().Get("Retry-After"))
		}
		if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "http://device.local" {
			t.Errorf("%s 503: Access-Control-Allow-Origin %q, want the request's Origin", path, got)
		}
		if got := rec.Header().Get("Access-Control-Expose-Headers"); got != "X-Session-Id" {
			t.Errorf("%s 503: Access-Control-Expose-Headers %q, want X-Session-Id", path, got)
		}
		var env struct {
			StatusCode int    `json:"statusCode"`
			Reason     string `json:"reason"`
		}
		if json.Unmarshal(rec.Body.Bytes(), &env) != nil || env.StatusCode != 503 || env.Reason == "" {
			t.Errorf("503 body %q is not the error envelope", rec.Body.String())
		}
	}
	for _, pw := range pws {
		pw.Close()
	}
	done.Wait()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v2/device/license/validate", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("after the slot is free: status %d, want 200", rec.Code)
	}
}

// TestInFlightBoundUnderConcurrency: of many requests arriving at once, exactly the bound are
// admitted and the rest answered 503; refused requests take no slot with them, so once the
// admitted ones finish the whole bound is free again.
func TestInFlightBoundUnderConcurrency(t *testing.T) {
	st := sqlstoretest.Open(t, "sqlite")
	svc, err := openconsole.NewService(context.Background(), st, openconsole.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	const bound, clients = 3, 40
	h := api.New(svc, slog.New(slog.NewTextHandler(io.Discard, nil)), api.WithMaxInFlight(bound))
	for round := range 2 {
		var pws []*io.PipeWriter
		codes := make(chan int, clients)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range clients {
			pr, pw := io.Pipe()
			pws = append(pws, pw)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				rec := httptest.NewRecorder()
				// An admitted activation reads its body, which arrives only when the pipe closes.
				h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v2/device/license/activate", pr))
				codes <- rec.Code
			}()
		}
		close(start)
		refused := 0
		timeout := time.After(10 * time.Second)
		for refused < clients-bound {
			select {
			case c := <-codes:
				if c != http.StatusServiceUnavailable {
					t.Fatalf("round %d: a request finished with %d while the admitted ones still wait for their bodies", round, c)
				}
				refused++
			case <-timeout:
				for _, pw := range pws {
					pw.Close()
				}
				t.Fatalf("round %d: %d refused, want %d: more than %d admitted", round, refused, clients-bound, bound)
			}
		}
		for _, pw := range pws {
			pw.Close()
		}
		wg.Wait()
		close(codes)
		for c := range codes {
			if c == http.StatusServiceUnavailable {
				t.Errorf("round %d: more than %d requests refused", round, clients-bound)
			}
		}
	}
}

// closeOnRead is a writer that closes ch on the first write: it tells when the handler has begun
// reading the body.
type closeOnRead chan struct{}

func (c closeOnRead) Write(p []byte) (int, error) {
	select {
	case <-c:
	default:
		close(c)
	}
	return len(p), nil
}

// TestStoreOutageLogsOncePerRoute (issue 10, finding 10): while the database is down every device
// request fails, and the log gets one line per route, not one per request.
func TestStoreOutageLogsOncePerRoute(t *testing.T) {
	st := sqlstoretest.Open(t, "sqlite")
	svc, err := openconsole.NewService(context.Background(), st, openconsole.Options{CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	var logBuf safeBuffer
	h := api.New(svc, slog.New(slog.NewTextHandler(&logBuf, nil)))
	st.Close() // the outage
	const n = 2000
	for i := range n {
		path, body := "/api/v2/device/license/validate", ""
		if i%2 == 1 {
			path, body = "/api/v2/tokens", `{"app":"tech.flecs.x","version":"1"}`
		}
		req := httptest.NewRequest("POST", path, bytes.NewReader([]byte(body)))
		req.Header.Set("X-Session-Id", "74c3b620-6048-4bfd-9bf7-c9857a001694")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusInternalServerError {
			t.Fatalf("%s during the outage: status %d, want 500", path, rec.Code)
		}
	}
	var errorLines []string
	for _, l := range strings.Split(strings.TrimSpace(logBuf.String()), "\n") {
		if strings.Contains(l, "level=ERROR") {
			errorLines = append(errorLines, l)
		}
	}
	if len(errorLines) != 2 {
		t.Errorf("%d failed requests wrote %d error lines, want 2 (one per route):\n%s", n, len(errorLines), strings.Join(errorLines, "\n"))
	}
}

// safeBuffer is a bytes.Buffer for a logger that may write from several goroutines.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestKeyGuessingFromOneIPv6Network (issue 10, finding 2): 60 guesses from 60 addresses of one
// IPv6 /64 are 30 checked and 30 throttled, as from one IPv4 address; an IPv4 address and its
// IPv4-mapped spelling share their bucket.
func TestKeyGuessingFromOneIPv6Network(t *testing.T) {
	_, url := limitServer(t, sqlstoretest.DSN(t, "sqlite"))
	c := &http.Client{}
	count := func(from func(i int) string) (notFound, throttled int) {
		for i := range 60 {
			r := limitPost(t, c, url, "/api/v2/device/license/activate", from(i), "", fmt.Sprintf(`{"licenseKey":"GUESS-%d"}`, i))
			switch {
			case r.status == http.StatusForbidden && r.reason == "License not found":
				notFound++
			case r.status == http.StatusTooManyRequests && r.retryAfter != "":
				throttled++
			default:
				t.Fatalf("guess %d: status %d %q", i, r.status, r.reason)
			}
		}
		return notFound, throttled
	}
	burst := openconsole.DefaultLimits.ActivationFailuresPerAddr.Burst
	if nf, th := count(func(i int) string { return fmt.Sprintf("2001:db8:aa:bb:%x::%x", i, i+1) }); nf != burst || th != 60-burst {
		t.Errorf("one /64: %d checked, %d throttled; want %d checked", nf, th, burst)
	}
	if nf, th := count(func(i int) string { return []string{"198.51.100.8", "::ffff:198.51.100.8"}[i%2] }); nf != burst || th != 60-burst {
		t.Errorf("one IPv4 address in two spellings: %d checked, %d throttled; want %d checked", nf, th, burst)
	}
}
