package openconsole_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"openconsole"
	"openconsole/sqlstore"
	"openconsole/sqlstore/sqlstoretest"
)

// countingStore counts the session reads that reach the database and can make the change log fail.
type countingStore struct {
	openconsole.Store
	reads      atomic.Int64
	changesErr atomic.Bool
}

func (c *countingStore) SessionState(ctx context.Context, id string) (openconsole.SessionState, error) {
	c.reads.Add(1)
	return c.Store.SessionState(ctx, id)
}

func (c *countingStore) Changes(ctx context.Context, after int64, limit int) ([]openconsole.Change, error) {
	if c.changesErr.Load() {
		return nil, errors.New("change log unreachable")
	}
	return c.Store.Changes(ctx, after, limit)
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// TestCacheSeesOtherProcessesWithinStaleness: a server answers repeated validates from its cache,
// and a revocation made by another process on the same database (the CLI, another server) is seen
// within openconsole.CacheStaleness.
func TestCacheSeesOtherProcessesWithinStaleness(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		st, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		cs := &countingStore{Store: st}
		server, err := openconsole.NewService(ctx, cs, openconsole.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer server.Close()
		admin := newService(t, dsn, openconsole.Options{CacheSize: -1})

		lic := mustLicense(t, admin, openconsole.LicenseInput{Seats: 3})
		a, _ := activate(t, admin, lic.Key, "")
		b, _ := activate(t, admin, lic.Key, "")
		waitFor(t, 2*time.Second, "cache trusted after start", func() bool {
			valid(t, server, a.Session.ID)
			before := cs.reads.Load()
			valid(t, server, a.Session.ID)
			return cs.reads.Load() == before
		})
		before := cs.reads.Load()
		for i := 0; i < 100; i++ {
			if !valid(t, server, a.Session.ID) {
				t.Fatal("live session invalid")
			}
		}
		if got := cs.reads.Load() - before; got != 0 {
			t.Errorf("100 validates of a cached session read the database %d times, want 0", got)
		}

		if _, err := admin.RevokeSession(ctx, a.Session.ID); err != nil {
			t.Fatal(err)
		}
		took := waitFor(t, openconsole.CacheStaleness, "session revocation seen", func() bool { return !valid(t, server, a.Session.ID) })
		t.Logf("session revocation seen after %v", took)
		if !valid(t, server, b.Session.ID) {
			t.Fatal("revoking one session invalidated another")
		}
		if _, err := admin.RevokeLicense(ctx, lic.Key, 0); err != nil {
			t.Fatal(err)
		}
		took = waitFor(t, openconsole.CacheStaleness, "license revocation seen", func() bool { return !valid(t, server, b.Session.ID) })
		t.Logf("license revocation seen after %v", took)
	})
}

// TestCacheDistrustedWhenChangeLogUnreadable: when the change log cannot be read, the server stops
// answering from its cache within openconsole.CacheStaleness and reads the database instead.
func TestCacheDistrustedWhenChangeLogUnreadable(t *testing.T) {
	st := sqlstoretest.Open(t, "sqlite")
	cs := &countingStore{Store: st}
	svc, err := openconsole.NewService(ctx, cs, openconsole.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	lic := mustLicense(t, svc, openconsole.LicenseInput{Seats: 1})
	a, _ := activate(t, svc, lic.Key, "")
	waitFor(t, 2*time.Second, "cache in use", func() bool {
		valid(t, svc, a.Session.ID)
		before := cs.reads.Load()
		valid(t, svc, a.Session.ID)
		return cs.reads.Load() == before
	})
	cs.changesErr.Store(true)
	waitFor(t, openconsole.CacheStaleness, "cache distrusted", func() bool {
		before := cs.reads.Load()
		valid(t, svc, a.Session.ID)
		return cs.reads.Load() > before
	})
	cs.changesErr.Store(false)
	waitFor(t, 2*time.Second, "cache trusted again", func() bool {
		before := cs.reads.Load()
		valid(t, svc, a.Session.ID)
		return cs.reads.Load() == before
	})
}

func TestSeenClockPacking(t *testing.T) {
	now := time.Now().UnixMilli()
	for _, tc := range []struct {
		ttl     time.Duration
		maxLoss time.Duration
	}{{0, time.Second}, {600 * time.Millisecond, 6 * time.Millisecond}, {50 * time.Millisecond, time.Millisecond}, {24 * time.Hour, time.Second}} {
		c := openconsole.NewSeenClockForTest(tc.ttl)
		for _, ms := range []int64{now, now - 3_600_000, now + 3_600_000, now - 20*24*3_600_000} {
			got := c.Unpack(c.Pack(ms)).UnixMilli()
			if got > ms || ms-got >= tc.maxLoss.Milliseconds() {
				t.Errorf("ttl %v: %d packs to %d: off by %dms, want [0, %v)", tc.ttl, ms, got, ms-got, tc.maxLoss)
			}
		}
		if !c.Unpack(c.Pack(0)).IsZero() {
			t.Errorf("ttl %v: the zero time does not survive packing", tc.ttl)
		}
	}
}
