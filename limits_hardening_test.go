package openconsole_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"openconsole"
	"openconsole/sqlstore/sqlstoretest"
)

// TestPasswordChecksBounded (issue 10, finding 1): however many logins arrive at once, at most
// MaxPasswordChecks password hashes run at the same time (each takes 19 MiB); a few more wait for
// a slot, and the rest are refused at once with ErrBusy (503) without being checked.
func TestPasswordChecksBounded(t *testing.T) {
	const bound, queue, extra = 2, 2 * 8, 10
	var inside, peak, calls atomic.Int32
	entered := make(chan struct{}, 100)
	gate := make(chan struct{})
	defer openconsole.SetPasswordCheckForTest(func(hash, password string) bool {
		calls.Add(1)
		n := inside.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		entered <- struct{}{}
		<-gate
		inside.Add(-1)
		return false
	})()
	svc := newService(t, sqlstoretest.DSN(t, "sqlite"), openconsole.Options{MaxPasswordChecks: bound})

	const n = bound + queue + extra
	results := make(chan error, n)
	for i := range n {
		go func() {
			_, err := svc.Login(ctx, openconsole.LoginInput{Username: fmt.Sprintf("user-%d", i), Password: "guess",
				ClientAddr: fmt.Sprintf("198.51.100.%d", i)})
			results <- err
		}()
	}
	for range bound {
		<-entered
	}
	// The logins beyond the slots and the queue are refused at once, while the slots are held.
	var busy, refusedCredentials int
	for busy < extra {
		switch err := <-results; err {
		case openconsole.ErrBusy:
			busy++
		default:
			t.Fatalf("while every slot is held: err = %v, want ErrBusy", err)
		}
	}
	close(gate)
	for range n - extra {
		switch err := <-results; err {
		case openconsole.ErrBusy:
			busy++ // a queued login that waited longer than PasswordQueueWait (a slow machine)
		case openconsole.ErrBadCredentials:
			refusedCredentials++
		default:
			t.Errorf("err = %v, want ErrBadCredentials or ErrBusy", err)
		}
	}
	if p := peak.Load(); p != bound {
		t.Errorf("%d logins at once ran %d password checks at the same time, want the bound %d", n, p, bound)
	}
	if int(calls.Load()) != refusedCredentials || refusedCredentials < bound {
		t.Errorf("%d checks ran, %d logins refused for their password; want equal and at least %d", calls.Load(), refusedCredentials, bound)
	}
	if busy < extra {
		t.Errorf("%d logins refused busy, want at least %d", busy, extra)
	}
}

// TestLoginThrottleUnderConcurrency (issue 10, finding 4): 300 simultaneous wrong passwords for one
// user check exactly the burst (10) of them, the bucket does not go below zero, and the right
// password afterwards waits at most one token's refill time (30 s at 2/min), then works.
func TestLoginThrottleUnderConcurrency(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		var checks atomic.Int32
		defer openconsole.SetPasswordCheckForTest(func(hash, password string) bool {
			checks.Add(1)
			return openconsole.CheckPassword(hash, password)
		})()
		clock := &fakeClock{t: time.Now()}
		svc := newService(t, dsn, openconsole.Options{Now: clock.Now, MaxPasswordChecks: 400})
		if _, err := svc.CreateUser(ctx, openconsole.UserInput{Username: "victim", Password: "right-password"}); err != nil {
			t.Fatal(err)
		}
		burst := openconsole.DefaultLimits.LoginFailuresPerUser.Burst
		refill := time.Duration(float64(time.Minute) / openconsole.DefaultLimits.LoginFailuresPerUser.PerMinute)

		const n = 300
		var wg sync.WaitGroup
		var bad, throttled atomic.Int32
		var maxWait atomic.Int64
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := svc.Login(ctx, openconsole.LoginInput{Username: "victim", Password: "wrong",
					ClientAddr: fmt.Sprintf("10.1.%d.%d", i/200, i%200)})
				switch e := err.(type) {
				case *openconsole.ThrottledError:
					throttled.Add(1)
					for {
						m := maxWait.Load()
						if int64(e.RetryAfter) <= m || maxWait.CompareAndSwap(m, int64(e.RetryAfter)) {
							break
						}
					}
				default:
					if err != openconsole.ErrBadCredentials {
						t.Errorf("err = %v", err)
					}
					bad.Add(1)
				}
			}()
		}
		wg.Wait()
		if c := checks.Load(); int(c) != burst || int(bad.Load()) != burst || int(throttled.Load()) != n-burst {
			t.Errorf("%d simultaneous wrong passwords: %d checked, %d refused as wrong, %d throttled; want %d checked",
				n, c, bad.Load(), throttled.Load(), burst)
		}
		if w := time.Duration(maxWait.Load()); w > refill {
			t.Errorf("Retry-After up to %v, want at most the refill time of one token, %v", w, refill)
		}
		_, err := svc.Login(ctx, openconsole.LoginInput{Username: "victim", Password: "right-password", ClientAddr: "10.2.0.1"})
		te, ok := err.(*openconsole.ThrottledError)
		if !ok || te.RetryAfter > refill || te.RetryAfter <= 0 {
			t.Fatalf("right password right after the storm: err = %v, want throttled for at most %v", err, refill)
		}
		clock.Add(te.RetryAfter)
		if _, err := svc.Login(ctx, openconsole.LoginInput{Username: "victim", Password: "right-password", ClientAddr: "10.2.0.1"}); err != nil {
			t.Errorf("right password after Retry-After (%v): %v", te.RetryAfter, err)
		}
		// A success gives its token back: the user is not throttled by their own logins.
		for i := range 2 * burst {
			if _, err := svc.Login(ctx, openconsole.LoginInput{Username: "victim", Password: "right-password", ClientAddr: "10.2.0.1"}); err != nil {
				t.Fatalf("successful login %d: %v", i, err)
			}
		}
	})
}

func TestAddrSubject(t *testing.T) {
	for _, tc := range []struct {
		in     string
		prefix int
		want   string
	}{
		{"198.51.100.8", 64, "198.51.100.8"},
		{"::ffff:198.51.100.8", 64, "198.51.100.8"},
		{"::FFFF:c633:6408", 64, "198.51.100.8"},
		{" 198.51.100.8 ", 64, "198.51.100.8"},
		{"198.51.100.8:4711", 64, "198.51.100.8"},
		{"2001:db8:1:2::1", 64, "2001:db8:1:2::/64"},
		{"2001:DB8:1:2:ffff:ffff:ffff:ffff", 64, "2001:db8:1:2::/64"},
		{"[2001:db8:1:2::7]:443", 64, "2001:db8:1:2::/64"},
		{"[2001:db8:1:2::7]", 64, "2001:db8:1:2::/64"},
		{"fe80::1%eth0", 64, "fe80::/64"},
		{"2001:db8:1:2::1", 48, "2001:db8:1::/48"},
		{"2001:db8:1:2::1", 128, "2001:db8:1:2::1"},
		{"not-an-address", 64, "not-an-address"},
	} {
		if got := openconsole.AddrSubject(tc.in, tc.prefix); got != tc.want {
			t.Errorf("AddrSubject(%q, %d) = %q, want %q", tc.in, tc.prefix, got, tc.want)
		}
	}
}

// TestAbuseLimitsCountNetworks (issue 10, finding 2): guesses of keys and serial numbers, and
// failed logins, count by network: every address of one IPv6 /64 (the configurable prefix) and
// both spellings of an IPv4 address share one bucket.
func TestAbuseLimitsCountNetworks(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		limits := openconsole.Limits{
			ActivationFailuresPerAddr: openconsole.Limit{Burst: 5, PerMinute: 1},
			LoginFailuresPerUser:      openconsole.Limit{Burst: 100, PerMinute: 1},
			LoginFailuresPerAddr:      openconsole.Limit{Burst: 5, PerMinute: 1},
		}
		clock := &fakeClock{t: time.Now()}
		svc := newService(t, dsn, openconsole.Options{Now: clock.Now, Limits: &limits})
		vendor, err := svc.CreateUser(ctx, openconsole.UserInput{Username: "vendor", Password: "vendor-password", Vendor: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.RegisterSerial(ctx, vendor, openconsole.SerialInput{SerialNumber: "SN000042", Model: "IPC",
			ManufacturerName: "M", ManufacturerID: 1, ManufactureDate: "2025-01-01"}); err != nil {
			t.Fatal(err)
		}
		guess := func(key, from string) error {
			_, err := svc.Activate(ctx, openconsole.ActivateInput{LicenseKey: key, ClientAddr: from})
			return err
		}
		// Serial-number guessing from many addresses of one /64: 5 checked, then throttled, the
		// registered serial included.
		for i := range 5 {
			if err := guess(fmt.Sprintf("SN%06d", i), fmt.Sprintf("2001:db8:1:2::%x", i+1)); err != openconsole.ErrLicenseNotFound {
				t.Fatalf("guess %d: %v, want License not found", i, err)
			}
		}
		for i, from := range []string{"2001:db8:1:2::99", "2001:db8:1:2:ffff::1", "[2001:db8:1:2::5]:1234"} {
			if err := guess("SN000042", from); openconsole.ErrorCode(err) != openconsole.ETHROTTLED {
				t.Errorf("serial from %s after 5 guesses from its /64 (%d): %v, want throttled", from, i, err)
			}
		}
		// Another /64 is not affected.
		if err := guess("SN000042", "2001:db8:1:3::1"); err != nil {
			t.Errorf("registered serial from another /64: %v", err)
		}
		// IPv4 and its mapped spelling are one subject.
		for i := range 5 {
			from := "198.51.100.8"
			if i%2 == 1 {
				from = "::ffff:198.51.100.8"
			}
			if err := guess(fmt.Sprintf("NOPE-%d", i), from); err != openconsole.ErrLicenseNotFound {
				t.Fatalf("IPv4 guess %d: %v", i, err)
			}
		}
		for _, from := range []string{"198.51.100.8", "::ffff:198.51.100.8"} {
			if err := guess("NOPE-X", from); openconsole.ErrorCode(err) != openconsole.ETHROTTLED {
				t.Errorf("guess from %s after 5 from both spellings: %v, want throttled", from, err)
			}
		}
		// Failed logins from one /64 across usernames.
		for i := range 5 {
			_, err := svc.Login(ctx, openconsole.LoginInput{Username: fmt.Sprintf("u%d", i), Password: "x",
				ClientAddr: fmt.Sprintf("2001:db8:9:9::%x", i+1)})
			if err != openconsole.ErrBadCredentials {
				t.Fatalf("login %d: %v", i, err)
			}
		}
		if _, err := svc.Login(ctx, openconsole.LoginInput{Username: "vendor", Password: "vendor-password",
			ClientAddr: "2001:db8:9:9:1:2:3:4"}); openconsole.ErrorCode(err) != openconsole.ETHROTTLED {
			t.Errorf("login from a /64 after 5 failures from it: %v, want throttled", err)
		}
	})
	t.Run("prefix", func(t *testing.T) {
		limits := openconsole.Limits{ActivationFailuresPerAddr: openconsole.Limit{Burst: 2, PerMinute: 1}, IPv6Prefix: 48}
		svc := newService(t, sqlstoretest.DSN(t, "sqlite"), openconsole.Options{Limits: &limits})
		for i, from := range []string{"2001:db8:1:1::1", "2001:db8:1:2::1"} {
			if _, err := svc.Activate(ctx, openconsole.ActivateInput{LicenseKey: "NOPE", ClientAddr: from}); err != openconsole.ErrLicenseNotFound {
				t.Fatalf("guess %d: %v", i, err)
			}
		}
		if _, err := svc.Activate(ctx, openconsole.ActivateInput{LicenseKey: "NOPE", ClientAddr: "2001:db8:1:ffff::1"}); openconsole.ErrorCode(err) != openconsole.ETHROTTLED {
			t.Errorf("third guess from one /48 with IPv6Prefix 48: %v, want throttled", err)
		}
	})
}

// TestTokenIssuancesAggregated (issue 10, finding 9): download-token answers are counted on one
// record per session, app version and kind, also when they arrive at once, instead of a row each.
func TestTokenIssuancesAggregated(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		clock := &fakeClock{t: time.Now().Truncate(time.Millisecond)}
		svc := newService(t, dsn, openconsole.Options{Now: clock.Now})
		lic := mustLicense(t, svc, openconsole.LicenseInput{Seats: 1})
		act, err := activate(t, svc, lic.Key, "")
		if err != nil {
			t.Fatal(err)
		}
		first := clock.Now()
		const n = 200
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := svc.DownloadToken(ctx, act.Session, "tech.flecs.community", "1.0.0"); err != nil {
					t.Errorf("token %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		clock.Add(time.Minute)
		if _, err := svc.DownloadToken(ctx, act.Session, "tech.flecs.community", "1.0.0"); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.DownloadToken(ctx, act.Session, "tech.flecs.community", "2.0.0"); err != nil {
			t.Fatal(err)
		}
		got, err := svc.TokenIssuances(ctx, act.Session.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("%d token answers for two versions stored %d records, want 2: %+v", n+2, len(got), got)
		}
		a, b := got[0], got[1]
		if a.Version != "1.0.0" || a.Count != n+1 || !a.IssuedAt.Equal(first) || !a.LastIssuedAt.Equal(clock.Now()) || a.Credentials {
			t.Errorf("record of 1.0.0 = %+v; want %d answers, first at %v, last at %v", a, n+1, first, clock.Now())
		}
		if b.Version != "2.0.0" || b.Count != 1 || !b.IssuedAt.Equal(b.LastIssuedAt) {
			t.Errorf("record of 2.0.0 = %+v; want one answer", b)
		}
	})
}
