package sqlstore_test

import (
	"errors"
	"testing"

	"openconsole"
	"openconsole/sqlstore"
	"openconsole/sqlstore/sqlstoretest"
)

// TestLicenseByKeyHash: every license is found by its key's SHA-256, whether created one by one,
// in bulk, or before migration 0009 (its backfill).
func TestLicenseByKeyHash(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		st := open(t, dsn)
		update(t, st, func(tx openconsole.Tx) error {
			_, err := tx.CreateLicense(openconsole.License{Key: "AAAA-BBBB", Kind: openconsole.KindKey, Seats: 1, CreatedAt: t0})
			return err
		})
		if _, err := st.BulkInsertLicenses(ctx, []openconsole.License{{Key: "BULK-0001", Kind: openconsole.KindKey, Seats: 1, CreatedAt: t0}}); err != nil {
			t.Fatal(err)
		}
		find := func(key string) error {
			return st.Update(ctx, func(tx openconsole.Tx) error {
				l, err := tx.LockLicenseByKeyHash(openconsole.LicenseKeyHash(key))
				if err == nil && l.Key != key {
					t.Errorf("hash of %s found %s", key, l.Key)
				}
				return err
			})
		}
		for _, k := range []string{"AAAA-BBBB", "BULK-0001"} {
			if err := find(k); err != nil {
				t.Fatalf("%s: %v", k, err)
			}
		}
		if err := find("NONE"); !errors.Is(err, openconsole.ErrNotFound) {
			t.Fatalf("unknown hash: %v, want ErrNotFound", err)
		}
		// As a database from before 0009 holds them: no hashes, until the backfill.
		if err := sqlstore.ExecForTest(ctx, st, `UPDATE licenses SET key_sha256 = NULL`); err != nil {
			t.Fatal(err)
		}
		if err := find("AAAA-BBBB"); !errors.Is(err, openconsole.ErrNotFound) {
			t.Fatalf("without hashes: %v, want ErrNotFound", err)
		}
		if err := sqlstore.BackfillKeyHashesForTest(ctx, st); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"AAAA-BBBB", "BULK-0001"} {
			if err := find(k); err != nil {
				t.Fatalf("%s after the backfill: %v", k, err)
			}
		}
	})
}
