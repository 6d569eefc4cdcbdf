package openconsole_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"openconsole"
	"openconsole/sqlstore"
	"openconsole/sqlstore/sqlstoretest"
)

// checkingStore checks the seat rule at every serialization point: after each transaction's
// function, inside the transaction, it recounts every license's seats and records any license whose
// bookkeeping disagrees with its sessions or whose sessions hold more seats than it has.
type checkingStore struct {
	openconsole.Store
	mu         sync.Mutex
	checks     int
	violations []string
}

func (c *checkingStore) Update(ctx context.Context, fn func(tx openconsole.Tx) error) error {
	return c.Store.Update(ctx, func(tx openconsole.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		sc, err := tx.SeatMismatches()
		if err != nil {
			return err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.checks++
		for _, m := range sc.Mismatches {
			c.violations = append(c.violations, fmt.Sprintf("license %d: taken %d, its sessions hold %d", m.LicenseID, m.Taken, m.Held))
		}
		for _, m := range sc.Over {
			c.violations = append(c.violations, fmt.Sprintf("license %d: %d seats, its sessions hold %d", m.LicenseID, m.Taken, m.Held))
		}
		return nil
	})
}

// offsetClock is the wall clock plus an offset that a test moves forward.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) Now() time.Time      { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *offsetClock) Add(d time.Duration) { c.offset.Add(int64(d)) }

// TestSeatRuleUnderRandomChurn mixes, at random and concurrently on two servers of one database,
// new activations, re-activations, validates, session revocations, license revocations and idle
// expiry (the clock jumps forward) on a few licenses. At every commit the bookkeeping must equal a
// recount and no license may hold more sessions than seats; no validate may say "valid" for a
// session that was revoked more than CacheStaleness before it began, or idle for longer than the
// timeout; and in the end every license validates at most its seats.
func TestSeatRuleUnderRandomChurn(t *testing.T) {
	const ttl = time.Minute
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		clock := &offsetClock{}
		var servers []*openconsole.Service
		var checkers []*checkingStore
		for i := 0; i < 2; i++ {
			st, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			cs := &checkingStore{Store: st}
			svc, err := openconsole.NewService(ctx, cs, openconsole.Options{SessionTTL: ttl, Now: clock.Now,
				TouchInterval: 20 * time.Millisecond, Limits: &openconsole.Limits{}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { svc.Close(); st.Close() })
			servers, checkers = append(servers, svc), append(checkers, cs)
		}

		type lic struct {
			key   string
			seats int
		}
		type sess struct {
			id, key string
		}
		var mu sync.Mutex
		pool := []lic{}
		for _, n := range []int{2, 3, 5} {
			l := mustLicense(t, servers[0], openconsole.LicenseInput{Seats: n})
			pool = append(pool, lic{l.Key, n})
		}
		var known []sess
		revokedAt := map[string]time.Time{} // session or license key -> when its revocation was answered
		// Every answered activity of a session (activation, re-activation, valid validate), with
		// its real start and end and the clock at its end.
		type activity struct {
			id                string
			start, end, clock time.Time
		}
		var acts []activity
		type check struct {
			id, key    string
			start, end time.Time // real
			clock      time.Time // the clock when it began
		}
		var valids []check
		counts := map[string]int{}

		deadline := time.Now().Add(3 * time.Second)
		var wg sync.WaitGroup
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(w), 42))
				for time.Now().Before(deadline) {
					svc := servers[r.IntN(2)]
					mu.Lock()
					l := pool[r.IntN(len(pool))]
					var s sess
					if len(known) > 0 {
						s = known[r.IntN(len(known))]
					}
					mu.Unlock()
					start, fakeStart := time.Now(), clock.Now()
					switch p := r.IntN(100); {
					case p < 35 || s.id == "": // a new device
						a, err := svc.Activate(ctx, openconsole.ActivateInput{LicenseKey: l.key})
						mu.Lock()
						if err == nil {
							known = append(known, sess{a.Session.ID, l.key})
							acts = append(acts, activity{a.Session.ID, start, time.Now(), clock.Now()})
							counts["200"]++
						} else if err == openconsole.ErrMaxActivations || err == openconsole.ErrLicenseInvalid {
							counts["403"]++
						} else {
							t.Errorf("activate: %v", err)
						}
						mu.Unlock()
					case p < 50: // a known device re-activates
						a, err := svc.Activate(ctx, openconsole.ActivateInput{LicenseKey: s.key, SessionID: s.id})
						mu.Lock()
						switch {
						case err == nil && !a.Created:
							acts = append(acts, activity{s.id, start, time.Now(), clock.Now()})
							counts["204"]++
						case err == nil:
							known = append(known, sess{a.Session.ID, s.key})
							acts = append(acts, activity{a.Session.ID, start, time.Now(), clock.Now()})
							counts["200 again"]++
						case err == openconsole.ErrMaxActivations || err == openconsole.ErrLicenseInvalid:
							counts["403"]++
						default:
							t.Errorf("re-activate: %v", err)
						}
						mu.Unlock()
					case p < 80:
						_, ok, err := svc.Validate(ctx, s.id)
						if err != nil {
							t.Errorf("validate: %v", err)
						}
						mu.Lock()
						if ok {
							valids = append(valids, check{s.id, s.key, start, time.Now(), fakeStart})
							acts = append(acts, activity{s.id, start, time.Now(), clock.Now()})
							counts["valid"]++
						} else {
							counts["invalid"]++
						}
						mu.Unlock()
					case p < 92:
						if _, err := svc.RevokeSession(ctx, s.id); err != nil {
							t.Errorf("revoke session: %v", err)
						}
						mu.Lock()
						if _, ok := revokedAt[s.id]; !ok {
							revokedAt[s.id] = time.Now()
						}
						counts["revoke session"]++
						mu.Unlock()
					case p < 94: // a license is revoked and another takes its place
						fresh, err := svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1 + r.IntN(5)})
						if err != nil {
							t.Errorf("create license: %v", err)
							continue
						}
						if _, err := svc.RevokeLicense(ctx, l.key, 0); err != nil {
							t.Errorf("revoke license: %v", err)
						}
						mu.Lock()
						pool = append(pool, lic{fresh.Key, fresh.Seats})
						if _, ok := revokedAt[l.key]; !ok {
							revokedAt[l.key] = time.Now()
							for i, x := range pool {
								if x.key == l.key {
									pool = append(pool[:i:i], pool[i+1:]...)
									break
								}
							}
							counts["revoke license"]++
						}
						mu.Unlock()
					default: // time passes: sessions nobody touched go idle
						clock.Add(ttl / 4)
						mu.Lock()
						counts["clock"]++
						mu.Unlock()
					}
				}
			}(w)
		}
		wg.Wait()
		t.Logf("outcomes: %v", counts)
		for _, k := range []string{"200", "204", "403", "valid", "invalid", "revoke session", "revoke license", "clock"} {
			if counts[k] == 0 {
				t.Errorf("no %q happened: the churn did not exercise it", k)
			}
		}

		// No validate said "valid" for a session revoked (or of a license revoked) more than
		// CacheStaleness before it began, or idle past the timeout: longer than the timeout after
		// the latest activity that may have counted (any that began before the validate ended).
		for _, c := range valids {
			for _, k := range []string{c.id, c.key} {
				if at, ok := revokedAt[k]; ok && c.start.Sub(at) > openconsole.CacheStaleness {
					t.Errorf("session %s validated %v after %s was revoked", c.id, c.start.Sub(at), k)
				}
			}
			var latest time.Time
			for _, a := range acts {
				if a.id == c.id && a.start.Before(c.end) && a.clock.After(latest) && !(a.start == c.start && a.end == c.end) {
					latest = a.clock
				}
			}
			if !latest.IsZero() && c.clock.Sub(latest) > ttl {
				t.Errorf("session %s validated %v after its last activity (timeout %v)", c.id, c.clock.Sub(latest), ttl)
			}
		}
		total := 0
		for _, cs := range checkers {
			cs.mu.Lock()
			total += cs.checks
			for _, v := range cs.violations {
				t.Error("at a commit: " + v)
			}
			cs.mu.Unlock()
		}
		if total == 0 {
			t.Fatal("no transaction was checked")
		}
		all, err := allSessions(servers[0], "")
		if err != nil {
			t.Fatal(err)
		}
		ended := 0
		for _, st := range all {
			if !st.Session.EndedAt.IsZero() {
				ended++
			}
		}
		if ended == 0 {
			t.Error("no session was ended by idle expiry: the churn did not exercise it")
		}
		t.Logf("%d sessions, %d ended idle", len(all), ended)
		c, err := servers[1].CheckSeats(ctx, false)
		if err != nil || len(c.Mismatches) != 0 || len(c.Over) != 0 {
			t.Errorf("check after the churn: %+v, %v", c, err)
		}

		// Once every cache has caught up, each license validates at most its seats, on both servers.
		time.Sleep(openconsole.CacheStaleness)
		seats := map[string]int{}
		mu.Lock()
		for _, l := range pool {
			seats[l.key] = l.seats
		}
		mu.Unlock()
		for i, svc := range servers {
			validating := map[string]int{}
			for _, s := range known {
				if valid(t, svc, s.id) {
					validating[s.key]++
				}
			}
			for key, n := range validating {
				if n > seats[key] {
					t.Errorf("server %d: license %s has %d sessions that validate, %d seats", i, key, n, seats[key])
				}
			}
		}
	})
}

// allSessions lists every session of a license ("" for all).
func allSessions(svc *openconsole.Service, key string) ([]openconsole.SessionState, error) {
	seq, err := svc.Sessions(ctx, openconsole.SessionFilter{License: key})
	if err != nil {
		return nil, err
	}
	return openconsole.Collect(seq)
}
