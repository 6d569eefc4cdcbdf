package clustertest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"openconsole"
	"openconsole/api"
	"openconsole/sqlstore"
	"openconsole/sqlstore/sqlstoretest"
)

var ctx = context.Background()

// node is one OpenConsole server: its own pool, service and HTTP listener.
type node struct {
	st  *sqlstore.Store
	svc *openconsole.Service
	srv *httptest.Server
}

func startNode(t *testing.T, dsn string, skew time.Duration) *node {
	t.Helper()
	st, err := sqlstore.Open(ctx, dsn, sqlstore.Options{MaxConns: 8, ConnectTimeout: 2 * time.Second, StatementTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := openconsole.NewService(ctx, st, openconsole.Options{
		Now:    func() time.Time { return time.Now().Add(skew) },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{st: st, svc: svc, srv: httptest.NewServer(api.New(svc, slog.New(slog.NewTextHandler(io.Discard, nil))))}
	t.Cleanup(func() { n.srv.Close(); svc.Close(); st.Close() })
	return n
}

type result struct {
	status int
	id     string
	ts     int64
	valid  bool
	body   string
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}

func post(url, path, sid, body string) (result, error) {
	req, _ := http.NewRequest("POST", url+path, bytes.NewReader([]byte(body)))
	if sid != "" {
		req.Header.Set("X-Session-Id", sid)
	}
	resp, err := client.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, body: string(b)}
	var env struct {
		StatusCode int `json:"statusCode"`
		Data       struct {
			IsValid   bool `json:"isValid"`
			SessionID struct {
				ID        string `json:"id"`
				Timestamp int64  `json:"timestamp"`
			} `json:"sessionId"`
		} `json:"data"`
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &env); err != nil || env.StatusCode != resp.StatusCode {
			return r, fmt.Errorf("status %d with a body outside the envelope: %q", resp.StatusCode, b)
		}
	}
	r.id, r.ts, r.valid = env.Data.SessionID.ID, env.Data.SessionID.Timestamp, env.Data.IsValid
	return r, nil
}

func activate(n *node, key, sid string) (result, error) {
	return post(n.srv.URL, "/api/v2/device/license/activate", sid, `{"licenseKey":"`+key+`"}`)
}

func validate(n *node, sid string) (result, error) {
	return post(n.srv.URL, "/api/v2/device/license/validate", sid, "")
}

func postgresDSN(t *testing.T) string {
	t.Helper()
	return sqlstoretest.DSN(t, "postgres") // skips without OPENCONSOLE_TEST_POSTGRES
}

// TestTwoServersOneDatabase: with two servers on one PostgreSQL database (the second one's clock
// five seconds behind), seat limits hold across them, a session issued by one validates on the
// other, a revocation made by a third process is seen by both within a second, and timestamps keep
// increasing whichever server issues them.
func TestTwoServersOneDatabase(t *testing.T) {
	dsn := postgresDSN(t)
	a := startNode(t, dsn, 0)
	b := startNode(t, dsn, -5*time.Second)
	admin := startNode(t, dsn, 0) // stands for the CLI: another process on the database
	nodes := []*node{a, b}

	t.Run("seat limit across servers", func(t *testing.T) {
		lic, err := admin.svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 10})
		if err != nil {
			t.Fatal(err)
		}
		const clients = 200
		var wg sync.WaitGroup
		results := make([]result, clients)
		errs := make([]error, clients)
		start := make(chan struct{})
		for i := 0; i < clients; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				results[i], errs[i] = activate(nodes[i%2], lic.Key, "")
			}(i)
		}
		close(start)
		wg.Wait()
		ok, perNode := 0, [2]int{}
		for i, r := range results {
			if errs[i] != nil {
				t.Fatalf("activation %d: %v", i, errs[i])
			}
			switch r.status {
			case http.StatusOK:
				ok++
				perNode[i%2]++
			case http.StatusForbidden:
			default:
				t.Errorf("activation %d: status %d, want 200 or 403", i, r.status)
			}
		}
		if ok != 10 {
			t.Fatalf("%d activations succeeded across both servers (%v per server), want exactly 10", ok, perNode)
		}
	})

	lic, err := admin.svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 100})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a session from one server validates on the other at once", func(t *testing.T) {
		for i, from := range nodes {
			to := nodes[1-i]
			r, err := activate(from, lic.Key, "")
			if err != nil || r.status != http.StatusOK {
				t.Fatalf("activate: %+v, %v", r, err)
			}
			v, err := validate(to, r.id)
			if err != nil || !v.valid {
				t.Errorf("validate on the other server right after activation: %+v, %v", v, err)
			}
			if r2, _ := activate(to, lic.Key, r.id); r2.status != http.StatusNoContent {
				t.Errorf("re-activation on the other server: status %d, want 204", r2.status)
			}
		}
	})

	t.Run("revocations are seen by every server within a second", func(t *testing.T) {
		r, _ := activate(a, lic.Key, "")
		other, _ := activate(b, lic.Key, "")
		for _, n := range nodes { // warm whatever the servers keep
			if v, _ := validate(n, r.id); !v.valid {
				t.Fatal("fresh session invalid")
			}
		}
		if _, err := admin.svc.RevokeSession(ctx, r.id); err != nil {
			t.Fatal(err)
		}
		revokedAt := time.Now()
		waitInvalid(t, nodes, r.id, revokedAt)
		if v, _ := validate(a, other.id); !v.valid {
			t.Error("revoking one session invalidated another")
		}
		if _, err := admin.svc.RevokeLicense(ctx, lic.Key, 0); err != nil {
			t.Fatal(err)
		}
		waitInvalid(t, nodes, other.id, time.Now())
	})

	t.Run("timestamps increase across servers with skewed clocks", func(t *testing.T) {
		lic, err := admin.svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 50})
		if err != nil {
			t.Fatal(err)
		}
		c := startNode(t, dsn, 7*time.Second) // a third server, ahead
		all := []*node{a, b, c, b, a, c, a, b}
		var last int64
		for round := 0; round < 3; round++ {
			for i, n := range all {
				r, err := activate(n, lic.Key, "")
				if err != nil || r.status != http.StatusOK {
					t.Fatalf("activate: %+v, %v", r, err)
				}
				if r.ts <= last {
					t.Fatalf("round %d step %d: timestamp %d after %d: not increasing", round, i, r.ts, last)
				}
				last = r.ts
			}
		}
	})
}

// waitInvalid polls validate on every node until the session is invalid, failing if that takes
// longer than a second after the revocation.
func waitInvalid(t *testing.T, nodes []*node, sid string, since time.Time) {
	t.Helper()
	for i, n := range nodes {
		for {
			v, err := validate(n, sid)
			if err != nil {
				t.Fatal(err)
			}
			if !v.valid {
				break
			}
			if time.Since(since) > time.Second {
				t.Fatalf("server %d still validates a revoked session %v after the revocation", i, time.Since(since))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestPostgresRestartUnderLoad stops and restarts PostgreSQL while two servers answer a steady load
// of activations and validates. During the outage requests may fail (500 in the envelope) but no
// answer may be wrong: no validate says false for a live session, no seat is booked twice, and every
// activation answered 200 is there afterwards. The servers recover without a restart.
func TestPostgresRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a PostgreSQL cluster")
	}
	cluster := sqlstoretest.StartCluster(t)
	dsn := cluster.DSN()
	a, b := startNode(t, dsn, 0), startNode(t, dsn, 0)
	nodes := []*node{a, b}
	const licenses, seats = 40, 3
	keys := make([]string, licenses)
	for i := range keys {
		lic, err := a.svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: seats})
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = lic.Key
	}

	var mu sync.Mutex
	granted := map[string][]string{} // key -> session ids answered 200
	statuses := map[string]int{}
	var wrong []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var mine []string
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := nodes[i%2]
				key := keys[(w*7+i)%licenses]
				r, err := activate(n, key, "")
				mu.Lock()
				switch {
				case err != nil:
					wrong = append(wrong, "activate: "+err.Error())
				case r.status == http.StatusOK:
					granted[key] = append(granted[key], r.id)
					mine = append(mine, r.id)
				}
				statuses[fmt.Sprintf("activate %d", r.status)]++
				mu.Unlock()
				if len(mine) > 0 {
					sid := mine[i%len(mine)]
					v, err := validate(nodes[(i+1)%2], sid)
					mu.Lock()
					switch {
					case err != nil:
						wrong = append(wrong, "validate: "+err.Error())
					case v.status == http.StatusOK && !v.valid:
						wrong = append(wrong, "validate said false for live session "+sid)
					case v.status != http.StatusOK && v.status != http.StatusInternalServerError:
						wrong = append(wrong, fmt.Sprintf("validate status %d", v.status))
					}
					statuses[fmt.Sprintf("validate %d", v.status)]++
					mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		}(w)
	}

	time.Sleep(1500 * time.Millisecond)
	cluster.Stop()
	time.Sleep(1500 * time.Millisecond)
	cluster.Start()
	restarted := time.Now()
	// The servers must answer correctly again within seconds, on their own.
	recovered := false
	probe, _ := a.svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1000})
	for time.Since(restarted) < 10*time.Second {
		ra, _ := activate(a, probe.Key, "")
		rb, _ := activate(b, probe.Key, "")
		if ra.status == http.StatusOK && rb.status == http.StatusOK {
			recovered = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(1 * time.Second) // load after recovery
	close(stop)
	wg.Wait()
	if !recovered {
		t.Fatalf("servers did not recover within 10s of the restart")
	}
	t.Logf("outcomes: %v; recovered %v after the restart", statuses, time.Since(restarted).Round(time.Millisecond))
	for _, w := range wrong {
		t.Error(w)
	}
	if statuses["activate 500"] == 0 {
		t.Error("no request failed during the outage: the database was not really down")
	}
	for code := range statuses {
		switch code {
		case "activate 200", "activate 403", "activate 500", "validate 200", "validate 500":
		default:
			t.Errorf("unexpected outcome %q", code)
		}
	}

	// Every acknowledged activation is there and validates, and no license is over its seats.
	total := 0
	for _, key := range keys {
		ids := granted[key]
		if len(ids) > seats {
			t.Errorf("license %s: %d sessions acknowledged, seats %d", key, len(ids), seats)
		}
		for _, id := range ids {
			total++
			if v, err := validate(nodes[total%2], id); err != nil || !v.valid {
				t.Errorf("acknowledged session %s does not validate: %+v %v", id, v, err)
			}
		}
		sessions, err := allSessions(a.svc, key)
		if err != nil {
			t.Fatal(err)
		}
		if len(sessions) > seats {
			t.Errorf("license %s holds %d sessions, seats %d", key, len(sessions), seats)
		}
	}
	if total == 0 {
		t.Fatal("no activation succeeded")
	}
}

// allSessions lists every session of a license.
func allSessions(svc *openconsole.Service, key string) ([]openconsole.SessionState, error) {
	seq, err := svc.Sessions(context.Background(), openconsole.SessionFilter{License: key})
	if err != nil {
		return nil, err
	}
	return openconsole.Collect(seq)
}
