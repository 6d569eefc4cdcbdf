package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"

	"openconsole"
	"openconsole/api"
	"openconsole/sqlstore"
	"openconsole/sqlstore/sqlstoretest"
)

// seatServer starts the console API over a fresh store at dsn.
func seatServer(t *testing.T, dsn string) (*openconsole.Service, *httptest.Server) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := openconsole.NewService(ctx, st, openconsole.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(svc, slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(func() { srv.Close(); svc.Close(); st.Close() })
	return svc, srv
}

type seatResult struct {
	status int
	id     string
	ts     int64
	reason string
}

// seatActivate posts one key-mode activation, with a session id when sid is not "".
func seatActivate(client *http.Client, url, key, sid string) (seatResult, error) {
	req, _ := http.NewRequest("POST", url+"/api/v2/device/license/activate",
		bytes.NewReader([]byte(`{"licenseKey":"`+key+`"}`)))
	req.Header.Set("Content-Type", "application/json")
	if sid != "" {
		req.Header.Set("X-Session-Id", sid)
	}
	resp, err := client.Do(req)
	if err != nil {
		return seatResult{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := seatResult{status: resp.StatusCode}
	var env struct {
		Reason string `json:"reason"`
		Data   struct {
			SessionID struct {
				ID        string `json:"id"`
				Timestamp int64  `json:"timestamp"`
			} `json:"sessionId"`
		} `json:"data"`
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &env); err != nil {
			return r, err
		}
	}
	r.id, r.ts, r.reason = env.Data.SessionID.ID, env.Data.SessionID.Timestamp, env.Reason
	if resp.StatusCode == http.StatusNoContent {
		var h struct {
			ID        string `json:"id"`
			Timestamp int64  `json:"timestamp"`
		}
		if err := json.Unmarshal([]byte(resp.Header.Get("X-Session-Id")), &h); err != nil {
			return r, err
		}
		r.id, r.ts = h.ID, h.Timestamp
	}
	return r, nil
}

// storm runs n activations at once (released together) and returns their results.
func seatStorm(t *testing.T, url string, n int, key string, sids []string) []seatResult {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n}}
	defer client.CloseIdleConnections()
	results := make([]seatResult, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sid := ""
			if sids != nil {
				sid = sids[i]
			}
			<-start
			results[i], errs[i] = seatActivate(client, url, key, sid)
		}(i)
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("activation %d: %v", i, err)
		}
	}
	return results
}

// TestConcurrentActivationSeatLimit: 200 clients activate a 10-seat license at the same moment;
// exactly 10 get a session, the rest 403, and no seat is booked twice. Then each of the 10 devices
// re-activates with its own session at the same moment as 190 newcomers: the 10 get 204 with their
// own session and every newcomer is refused.
func TestConcurrentActivationSeatLimit(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		const clients, seats = 200, 10
		svc, srv := seatServer(t, dsn)
		ctx := context.Background()
		lic, err := svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: seats})
		if err != nil {
			t.Fatal(err)
		}

		results := seatStorm(t, srv.URL, clients, lic.Key, nil)
		var won []seatResult
		for _, r := range results {
			switch r.status {
			case http.StatusOK:
				won = append(won, r)
			case http.StatusForbidden:
				if r.reason != openconsole.ErrMaxActivations.Message {
					t.Errorf("403 reason = %q, want %q", r.reason, openconsole.ErrMaxActivations.Message)
				}
			default:
				t.Errorf("status = %d, want 200 or 403", r.status)
			}
		}
		if len(won) != seats {
			t.Fatalf("%d activations succeeded, want exactly %d", len(won), seats)
		}
		// Distinct sessions with distinct, strictly increasing timestamps in commit order.
		ids := map[string]bool{}
		var stamps []int64
		for _, r := range won {
			if ids[r.id] {
				t.Errorf("session %s issued twice", r.id)
			}
			ids[r.id] = true
			stamps = append(stamps, r.ts)
		}
		sort.Slice(stamps, func(i, j int) bool { return stamps[i] < stamps[j] })
		for i := 1; i < len(stamps); i++ {
			if stamps[i] == stamps[i-1] {
				t.Errorf("timestamp %d issued twice", stamps[i])
			}
		}
		sessions, err := allSessions(svc, lic.Key)
		if err != nil {
			t.Fatal(err)
		}
		if len(sessions) != seats {
			t.Fatalf("store holds %d sessions for the license, want %d", len(sessions), seats)
		}

		// The holders re-activate with their own sessions while 190 newcomers try at once.
		sids := make([]string, clients)
		for i, r := range won {
			sids[i] = r.id
		}
		results = seatStorm(t, srv.URL, clients, lic.Key, sids)
		for i, r := range results {
			if i < seats {
				if r.status != http.StatusNoContent || r.id != sids[i] {
					t.Errorf("holder %d: status %d session %q, want 204 with its own session %q", i, r.status, r.id, sids[i])
				}
				continue
			}
			if r.status != http.StatusForbidden {
				t.Errorf("newcomer %d: status %d, want 403", i, r.status)
			}
		}
		if sessions, _ = allSessions(svc, lic.Key); len(sessions) != seats {
			t.Errorf("store holds %d sessions after the second storm, want %d", len(sessions), seats)
		}
	})
}

// TestConcurrentTimestampsMonotonic: activations racing on many licenses get pairwise distinct
// timestamps, and every activation that starts after another has finished gets a larger one.
func TestConcurrentTimestampsMonotonic(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		svc, srv := seatServer(t, dsn)
		ctx := context.Background()
		const licenses, perLicense = 20, 5
		keys := make([]string, licenses)
		for i := range keys {
			lic, err := svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: perLicense})
			if err != nil {
				t.Fatal(err)
			}
			keys[i] = lic.Key
		}
		client := &http.Client{}
		var mu sync.Mutex
		var all []int64
		var wg sync.WaitGroup
		for i := 0; i < licenses*perLicense; i++ {
			wg.Add(1)
			go func(key string) {
				defer wg.Done()
				r, err := seatActivate(client, srv.URL, key, "")
				if err != nil || r.status != http.StatusOK {
					t.Errorf("activate: status %d err %v reason %q", r.status, err, r.reason)
					return
				}
				mu.Lock()
				all = append(all, r.ts)
				mu.Unlock()
			}(keys[i%licenses])
		}
		wg.Wait()
		seen := map[int64]bool{}
		var max int64
		for _, ts := range all {
			if seen[ts] {
				t.Errorf("timestamp %d issued twice", ts)
			}
			seen[ts] = true
			if ts > max {
				max = ts
			}
		}
		lic, err := svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1})
		if err != nil {
			t.Fatal(err)
		}
		r, err := seatActivate(client, srv.URL, lic.Key, "")
		if err != nil || r.status != http.StatusOK {
			t.Fatalf("activate after the storm: status %d err %v", r.status, err)
		}
		if r.ts <= max {
			t.Errorf("timestamp after the storm = %d, want > %d", r.ts, max)
		}
	})
}

// allSessions lists every session of a license.
func allSessions(svc *openconsole.Service, key string) ([]openconsole.SessionState, error) {
	seq, err := svc.Sessions(context.Background(), openconsole.SessionFilter{License: key})
	if err != nil {
		return nil, err
	}
	return openconsole.Collect(seq)
}
