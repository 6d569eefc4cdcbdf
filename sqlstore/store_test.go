package sqlstore_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"openconsole"
	"openconsole/sqlstore"
	"openconsole/sqlstore/sqlstoretest"
)

var ctx = context.Background()

func open(t *testing.T, dsn string) *sqlstore.Store {
	t.Helper()
	st, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func update(t *testing.T, st *sqlstore.Store, fn func(tx openconsole.Tx) error) {
	t.Helper()
	if err := st.Update(ctx, fn); err != nil {
		t.Fatalf("update: %v", err)
	}
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)

func TestMigrationsAreIdempotentAndRefuseNewerSchema(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		st := open(t, dsn)
		update(t, st, func(tx openconsole.Tx) error {
			_, err := tx.CreateUser(openconsole.User{Username: "a", PasswordHash: "h", CreatedAt: t0})
			return err
		})
		st.Close()

		// Opening again applies nothing and keeps the data.
		st = open(t, dsn)
		if _, err := st.UserByUsername(ctx, "a"); err != nil {
			t.Fatalf("user after reopen: %v", err)
		}
		// A schema from a future build is refused.
		if err := sqlstore.ExecForTest(ctx, st, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)`); err != nil {
			t.Fatal(err)
		}
		st.Close()
		_, err := sqlstore.Open(ctx, dsn, sqlstore.Options{})
		if err == nil || !strings.Contains(err.Error(), "newer than this build") {
			t.Fatalf("open on a newer schema: err = %v, want a refusal", err)
		}
	})
}

func TestUsers(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		st := open(t, dsn)
		var u openconsole.User
		update(t, st, func(tx openconsole.Tx) error {
			var err error
			u, err = tx.CreateUser(openconsole.User{Username: "m1", Email: "m@x", DisplayName: "M", PasswordHash: "h",
				Vendor: true, Whitelabeled: true, CreatedAt: t0})
			return err
		})
		if u.ID <= 0 {
			t.Fatalf("id = %d, want > 0", u.ID)
		}
		got, err := st.UserByID(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := u
		want.CreatedAt = t0.Truncate(time.Millisecond)
		if got != want {
			t.Errorf("UserByID = %+v, want %+v", got, want)
		}
		if got, _ := st.UserByUsername(ctx, "m1"); got != want {
			t.Errorf("UserByUsername = %+v, want %+v", got, want)
		}
		if _, err := st.UserByUsername(ctx, "nobody"); !errors.Is(err, openconsole.ErrNotFound) {
			t.Errorf("unknown user: err = %v, want ErrNotFound", err)
		}
		err = st.Update(ctx, func(tx openconsole.Tx) error {
			_, err := tx.CreateUser(openconsole.User{Username: "m1", PasswordHash: "h", CreatedAt: t0})
			return err
		})
		if openconsole.ErrorCode(err) != openconsole.ECONFLICT {
			t.Errorf("duplicate user: err = %v, want ECONFLICT", err)
		}
	})
}

func TestLicensesAndSerials(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		st := open(t, dsn)
		var owner openconsole.User
		var a, b, sn openconsole.License
		update(t, st, func(tx openconsole.Tx) error {
			var err error
			if owner, err = tx.CreateUser(openconsole.User{Username: "o", PasswordHash: "h", CreatedAt: t0}); err != nil {
				return err
			}
			if a, err = tx.CreateLicense(openconsole.License{Key: "AAAA", Kind: openconsole.KindKey, OwnerID: owner.ID, Seats: 2,
				ExpiresAt: t0.Add(time.Hour), CreatedAt: t0}); err != nil {
				return err
			}
			if b, err = tx.CreateLicense(openconsole.License{Key: "BBBB", Kind: openconsole.KindKey, OwnerID: owner.ID, Seats: 1, CreatedAt: t0}); err != nil {
				return err
			}
			if sn, err = tx.CreateLicense(openconsole.License{Key: "SN1", Kind: openconsole.KindSerial, Seats: 1, CreatedAt: t0}); err != nil {
				return err
			}
			return tx.CreateSerial(openconsole.Serial{LicenseID: sn.ID, SerialNumber: "SN1", Model: "m", ManufacturerName: "x",
				ManufacturerID: 791, ManufactureDate: "2025-01-01", RegisteredBy: owner.ID, CreatedAt: t0})
		})
		got, err := st.LicenseByKey(ctx, "AAAA")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != a.ID || got.OwnerID != owner.ID || got.Seats != 2 || !got.ExpiresAt.Equal(t0.Add(time.Hour).Truncate(time.Millisecond)) ||
			!got.RevokedAt.IsZero() || got.Kind != openconsole.KindKey {
			t.Errorf("LicenseByKey = %+v", got)
		}
		if _, err := st.LicenseByKey(ctx, "aaaa"); !errors.Is(err, openconsole.ErrNotFound) {
			t.Errorf("keys are exact: err = %v, want ErrNotFound", err)
		}

		// In a transaction: the owner's key licenses in id order, serials excluded.
		update(t, st, func(tx openconsole.Tx) error {
			ls, err := tx.LockLicensesByOwner(owner.ID)
			if err != nil {
				return err
			}
			if len(ls) != 2 || ls[0].ID != a.ID || ls[1].ID != b.ID {
				t.Errorf("LockLicensesByOwner = %+v, want [AAAA BBBB]", ls)
			}
			return nil
		})

		// Duplicate key (a serial equal to a license key too) is a conflict.
		err = st.Update(ctx, func(tx openconsole.Tx) error {
			_, err := tx.CreateLicense(openconsole.License{Key: "SN1", Kind: openconsole.KindKey, Seats: 1, CreatedAt: t0})
			return err
		})
		if openconsole.ErrorCode(err) != openconsole.ECONFLICT {
			t.Errorf("duplicate key: err = %v, want ECONFLICT", err)
		}

		sr, err := st.SerialByLicense(ctx, sn.ID)
		if err != nil {
			t.Fatal(err)
		}
		if sr.SerialNumber != "SN1" || sr.ManufacturerID != 791 || sr.Status != openconsole.SerialRegistered || sr.RegisteredBy != owner.ID {
			t.Errorf("SerialByLicense = %+v", sr)
		}
		update(t, st, func(tx openconsole.Tx) error { return tx.MarkSerialActivated(sn.ID) })
		if sr, _ = st.SerialByLicense(ctx, sn.ID); sr.Status != openconsole.SerialActivated {
			t.Errorf("status after MarkSerialActivated = %d, want %d", sr.Status, openconsole.SerialActivated)
		}

		// PutLicense stores what an operator changes, and logs a change for the caches.
		latest, _ := st.LatestChange(ctx)
		update(t, st, func(tx openconsole.Tx) error {
			l, err := tx.LockLicenseByKey("BBBB")
			if err != nil {
				return err
			}
			l.Seats, l.Note, l.Metadata, l.OwnerID = 7, "a note", []byte(`{"order":"42"}`), 0
			l.SuspendedAt, l.RevokedAt, l.UpdatedAt, l.Version = t0.Add(time.Minute), t0.Add(time.Hour), t0.Add(time.Hour), l.Version+1
			return tx.PutLicense(l)
		})
		got, err = st.LicenseByKey(ctx, "BBBB")
		if err != nil || got.Seats != 7 || got.Note != "a note" || string(got.Metadata) != `{"order":"42"}` || got.OwnerID != 0 ||
			got.Owner != "" || !got.SuspendedAt.Equal(t0.Add(time.Minute).Truncate(time.Millisecond)) ||
			!got.RevokedAt.Equal(t0.Add(time.Hour).Truncate(time.Millisecond)) || got.Version != 2 {
			t.Errorf("after PutLicense: %+v, %v", got, err)
		}
		if a, _ := st.LicenseByKey(ctx, "AAAA"); a.Owner != "o" || a.Version != 1 || string(a.Metadata) != "{}" {
			t.Errorf("license AAAA = %+v, want owner o, version 1, metadata {}", a)
		}
		if changes, _ := st.Changes(ctx, latest, 10); len(changes) != 1 || changes[0].LicenseID != b.ID || changes[0].SessionID != "" {
			t.Errorf("changes after PutLicense = %+v, want one of license %d", changes, b.ID)
		}
		err = st.Update(ctx, func(tx openconsole.Tx) error { return tx.PutLicense(openconsole.License{ID: 9999}) })
		if !errors.Is(err, openconsole.ErrNotFound) {
			t.Errorf("put unknown: err = %v, want ErrNotFound", err)
		}
	})
}

func TestSessionsAndSeats(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		st := open(t, dsn)
		var lic openconsole.License
		ids := []string{openconsole.NewSessionID(), openconsole.NewSessionID(), openconsole.NewSessionID()}
		update(t, st, func(tx openconsole.Tx) error {
			var err error
			if lic, err = tx.CreateLicense(openconsole.License{Key: "K", Kind: openconsole.KindKey, Seats: 3, CreatedAt: t0}); err != nil {
				return err
			}
			for i, id := range ids {
				at := t0.Add(time.Duration(i) * time.Minute)
				if err := tx.CreateSession(openconsole.Session{ID: id, LicenseID: lic.ID, Timestamp: int64(100 + i), CreatedAt: at, LastSeenAt: at, Addr: "192.0.2.1"}); err != nil {
					return err
				}
			}
			// Within the transaction, the license counts the seats just taken, and the sessions
			// are there.
			got, err := tx.LockLicenseByKey("K")
			if err != nil {
				return err
			}
			if got.Taken != 3 {
				t.Errorf("taken within the creating transaction = %d, want 3", got.Taken)
			}
			if s, err := tx.Session(ids[1]); err != nil || s.LicenseID != lic.ID || s.Timestamp != 101 {
				t.Errorf("Session within the creating transaction = %+v, %v", s, err)
			}
			return nil
		})
		taken := func() int {
			t.Helper()
			l, err := st.LicenseByKey(ctx, "K")
			if err != nil {
				t.Fatal(err)
			}
			return l.Taken
		}
		if n := taken(); n != 3 {
			t.Errorf("taken seats = %d, want 3", n)
		}
		var revoked openconsole.Session
		update(t, st, func(tx openconsole.Tx) error {
			var err error
			revoked, err = tx.RevokeSession(ids[2], t0.Add(time.Hour))
			return err
		})
		if revoked.ID != ids[2] || !revoked.RevokedAt.IsZero() {
			t.Errorf("RevokeSession returned %+v, want the session as it was", revoked)
		}
		// Revoking again frees nothing more.
		update(t, st, func(tx openconsole.Tx) error { _, err := tx.RevokeSession(ids[2], t0.Add(2*time.Hour)); return err })
		if n := taken(); n != 2 {
			t.Errorf("taken seats after a revocation = %d, want 2", n)
		}
		err := st.Update(ctx, func(tx openconsole.Tx) error { _, err := tx.RevokeSession(openconsole.NewSessionID(), t0); return err })
		if !errors.Is(err, openconsole.ErrNotFound) {
			t.Errorf("revoke unknown session: err = %v, want ErrNotFound", err)
		}

		// Idle sessions: those holding a seat, last seen before a time, oldest first.
		var idle []openconsole.IdleSession
		update(t, st, func(tx openconsole.Tx) error {
			var err error
			idle, err = tx.IdleSessions(t0.Add(90*time.Second), 10)
			return err
		})
		if len(idle) != 2 || idle[0].ID != ids[0] || idle[1].ID != ids[1] {
			t.Errorf("IdleSessions before t0+90s = %+v, want ids 0 and 1", idle)
		}

		// Touching moves last-seen forward only, skips unknown ids, and reports sessions that no
		// longer hold a seat.
		later, earlier := t0.Add(2*time.Hour), t0.Add(-time.Hour)
		gone, err := st.TouchSessions(ctx, []openconsole.Touch{{SessionID: ids[0], At: later}, {SessionID: ids[1], At: earlier},
			{SessionID: openconsole.NewSessionID(), At: later}, {SessionID: ids[2], At: later}})
		if err != nil {
			t.Fatal(err)
		}
		if len(gone) != 1 || gone[0] != ids[2] {
			t.Errorf("TouchSessions reported %v gone, want the revoked %s", gone, ids[2])
		}
		s0, err := st.SessionState(ctx, ids[0])
		if err != nil {
			t.Fatal(err)
		}
		if !s0.Session.LastSeenAt.Equal(later) || s0.License.Key != "K" || s0.Session.Timestamp != 100 || !s0.Session.HoldsSeat() {
			t.Errorf("SessionState = %+v", s0)
		}
		s1, _ := st.SessionState(ctx, ids[1])
		if !s1.Session.LastSeenAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("last seen after an older touch = %v, want unchanged %v", s1.Session.LastSeenAt, t0.Add(time.Minute))
		}
		s2, _ := st.SessionState(ctx, ids[2])
		if s2.Session.RevokedAt.IsZero() || s2.Session.HoldsSeat() {
			t.Errorf("revoked session shows no revocation")
		}
		if _, err := st.SessionState(ctx, openconsole.NewSessionID()); !errors.Is(err, openconsole.ErrNotFound) {
			t.Errorf("unknown session: err = %v, want ErrNotFound", err)
		}

		// Ending idle sessions re-checks that they are still idle: ids[0] was touched since.
		var ended map[int64]int
		update(t, st, func(tx openconsole.Tx) error {
			var err error
			ended, err = tx.EndIdleSessions([]string{ids[0], ids[1], ids[2]}, t0.Add(90*time.Second), t0.Add(3*time.Hour))
			return err
		})
		if len(ended) != 1 || ended[lic.ID] != 1 {
			t.Errorf("EndIdleSessions ended %v, want one session of license %d", ended, lic.ID)
		}
		if s1, _ = st.SessionState(ctx, ids[1]); s1.Session.HoldsSeat() || !s1.Session.EndedAt.Equal(t0.Add(3*time.Hour)) {
			t.Errorf("ended session = %+v", s1.Session)
		}
		if n := taken(); n != 1 {
			t.Errorf("taken seats after ending one = %d, want 1", n)
		}
		if c, err := st.SeatMismatches(ctx); err != nil || len(c.Mismatches) != 0 || c.Licenses != 1 || c.Held != 1 {
			t.Errorf("SeatMismatches = %+v, %v; want none, 1 license, 1 held seat", c, err)
		}

		list, err := openconsole.Collect(st.ListSessions(ctx, openconsole.SessionQuery{LicenseID: lic.ID}))
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 3 || list[0].Session.ID != ids[0] || list[2].Session.ID != ids[2] || list[0].License.Key != "K" || list[0].Session.Addr != "192.0.2.1" {
			t.Errorf("ListSessions = %+v", list)
		}
		page, _ := openconsole.Collect(st.ListSessions(ctx, openconsole.SessionQuery{After: openconsole.CursorOf(list[0]), Limit: 1}))
		if len(page) != 1 || page[0].Session.ID != ids[1] {
			t.Errorf("ListSessions after the first, limit 1 = %+v, want the second", page)
		}
		lics, err := openconsole.Collect(st.ListLicenses(ctx, openconsole.LicenseQuery{}))
		if err != nil {
			t.Fatal(err)
		}
		if len(lics) != 1 || lics[0].Taken != 1 {
			t.Errorf("ListLicenses = %+v, want one license with 1 taken seat", lics)
		}
	})
}

// TestSeatRepair: a license whose bookkeeping was changed behind the store's back is found by
// SeatMismatches and set right by SetTakenSeats.
func TestSeatRepair(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		st := open(t, dsn)
		var lic openconsole.License
		update(t, st, func(tx openconsole.Tx) error {
			var err error
			if lic, err = tx.CreateLicense(openconsole.License{Key: "R", Kind: openconsole.KindKey, Seats: 5, CreatedAt: t0}); err != nil {
				return err
			}
			return tx.CreateSession(openconsole.Session{ID: openconsole.NewSessionID(), LicenseID: lic.ID, Timestamp: 1, CreatedAt: t0, LastSeenAt: t0})
		})
		if err := sqlstore.ExecForTest(ctx, st, `UPDATE licenses SET taken = 4`); err != nil {
			t.Fatal(err)
		}
		c, err := st.SeatMismatches(ctx)
		if err != nil || len(c.Mismatches) != 1 || c.Mismatches[0] != (openconsole.SeatMismatch{LicenseID: lic.ID, Key: "R", Taken: 4, Held: 1}) {
			t.Fatalf("SeatMismatches = %+v, %v", c, err)
		}
		update(t, st, func(tx openconsole.Tx) error { return tx.SetTakenSeats(lic.ID, 1) })
		if c, err := st.SeatMismatches(ctx); err != nil || len(c.Mismatches) != 0 {
			t.Errorf("after repair: %+v, %v", c, err)
		}
	})
}

// TestNextTimestampMonotonic: the clock guard never goes back, whatever the wall clock does, and
// survives reopening the database.
func TestNextTimestampMonotonic(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		st := open(t, dsn)
		next := func(st *sqlstore.Store, now time.Time) int64 {
			t.Helper()
			var ts int64
			update(t, st, func(tx openconsole.Tx) error {
				var err error
				ts, err = tx.NextTimestamp(now)
				return err
			})
			return ts
		}
		a := next(st, t0)
		if a != t0.UnixMilli() {
			t.Errorf("first timestamp = %d, want now %d", a, t0.UnixMilli())
		}
		b := next(st, t0)                      // same millisecond
		c := next(st, t0.Add(-10*time.Second)) // the clock stepped back
		if !(b > a && c > b) {
			t.Errorf("timestamps %d, %d, %d are not increasing", a, b, c)
		}
		st.Close()
		st = open(t, dsn)
		if d := next(st, t0.Add(-time.Hour)); d <= c {
			t.Errorf("timestamp after reopen = %d, want > %d", d, c)
		}
		if e := next(st, t0.Add(time.Hour)); e != t0.Add(time.Hour).UnixMilli() {
			t.Errorf("timestamp follows the clock forward: got %d, want %d", e, t0.Add(time.Hour).UnixMilli())
		}
	})
}

func TestSigningKeys(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		st := open(t, dsn)
		k1, k2 := openconsole.NewSigningKey(t0), openconsole.NewSigningKey(t0.Add(time.Hour))
		update(t, st, func(tx openconsole.Tx) error { return tx.AddSigningKey(k2) })
		update(t, st, func(tx openconsole.Tx) error { return tx.AddSigningKey(k1) })
		keys, err := st.SigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// In the order they were added, not by their times: k1, added last, signs although its
		// clock was behind.
		if len(keys) != 2 || keys[0].ID != k2.ID || keys[1].ID != k1.ID || string(keys[1].Secret) != string(k1.Secret) {
			t.Errorf("SigningKeys = %+v, want k2 then k1 (insertion order)", keys)
		}
	})
}

func TestUpdateRollsBackOnError(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		st := open(t, dsn)
		boom := errors.New("boom")
		err := st.Update(ctx, func(tx openconsole.Tx) error {
			if _, err := tx.CreateUser(openconsole.User{Username: "ghost", PasswordHash: "h", CreatedAt: t0}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		if _, err := st.UserByUsername(ctx, "ghost"); !errors.Is(err, openconsole.ErrNotFound) {
			t.Errorf("user of a failed transaction: err = %v, want ErrNotFound", err)
		}
	})
}

func TestOpenRefusesBadDSN(t *testing.T) {
	if _, err := sqlstore.Open(ctx, "sqlite:", sqlstore.Options{}); err == nil {
		t.Error("empty SQLite path accepted")
	}
	if _, err := sqlstore.Open(ctx, "sqlite:"+t.TempDir()+"/no/such/dir/x.db", sqlstore.Options{}); err == nil {
		t.Error("SQLite path in a missing directory accepted")
	}
}

func TestBulkInsert(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		st := open(t, dsn)
		var ls []openconsole.License
		for i := 0; i < 1000; i++ {
			ls = append(ls, openconsole.License{Key: "BULK-" + string(rune('A'+i%26)) + "-" + time.Duration(i).String(), Kind: openconsole.KindKey, Seats: 2, CreatedAt: t0})
		}
		ids, err := st.BulkInsertLicenses(ctx, ls)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != len(ls) {
			t.Fatalf("%d ids for %d licenses", len(ids), len(ls))
		}
		var ss []openconsole.Session
		for i := 0; i < 2000; i++ {
			ss = append(ss, openconsole.Session{ID: openconsole.NewSessionID(), LicenseID: ids[ls[i/2].Key],
				Timestamp: t0.UnixMilli() + int64(i), CreatedAt: t0, LastSeenAt: t0})
		}
		if err := st.BulkInsertSessions(ctx, ss); err != nil {
			t.Fatal(err)
		}
		got, err := st.SessionState(ctx, ss[1999].ID)
		if err != nil || got.License.Key != ls[999].Key {
			t.Fatalf("bulk session: %+v, %v", got, err)
		}
		// The bulk load took the sessions' seats.
		if c, err := st.SeatMismatches(ctx); err != nil || len(c.Mismatches) != 0 || c.Held != 2000 {
			t.Errorf("seats after a bulk load: %+v, %v; want 2000 held and no mismatch", c, err)
		}
		var next int64
		update(t, st, func(tx openconsole.Tx) error {
			next, err = tx.NextTimestamp(t0)
			return err
		})
		if next <= ss[1999].Timestamp {
			t.Errorf("timestamp after a bulk load = %d, want > %d", next, ss[1999].Timestamp)
		}
	})
}

// TestSchemasAgree: the SQLite and the PostgreSQL migrations build the same tables, columns (by
// type family and nullability) and indexes. It needs PostgreSQL.
func TestSchemasAgree(t *testing.T) {
	if len(sqlstoretest.Engines()) < 2 {
		t.Skipf("needs PostgreSQL (%s)", sqlstoretest.PostgresEnv)
	}
	var schemas [][]string
	for _, engine := range sqlstoretest.Engines() {
		s, err := sqlstore.Schema(ctx, sqlstoretest.Open(t, engine))
		if err != nil {
			t.Fatalf("%s: %v", engine, err)
		}
		schemas = append(schemas, s)
	}
	if !slices.Equal(schemas[0], schemas[1]) {
		t.Errorf("the schemas differ:\nsqlite:\n  %s\npostgres:\n  %s", strings.Join(schemas[0], "\n  "), strings.Join(schemas[1], "\n  "))
	}
	t.Logf("schema:\n  %s", strings.Join(schemas[0], "\n  "))
	if len(schemas[0]) < 10 {
		t.Errorf("schema has %d lines, too few to be the real one:\n%s", len(schemas[0]), strings.Join(schemas[0], "\n"))
	}
}
