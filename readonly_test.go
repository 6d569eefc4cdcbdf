package openconsole_test

import (
	"errors"
	"testing"

	"openconsole"
	"openconsole/sqlstore"
	"openconsole/sqlstore/sqlstoretest"
)

// TestReadOnlyServiceWritesNothing: a ReadOnly service on a read-only store starts on a database
// without keys (creating none), reads, and signs no audit checkpoint where a service that may write
// would sign one.
func TestReadOnlyServiceWritesNothing(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		sqlstoretest.OpenDSN(t, dsn).Close()
		readOnly := func(t *testing.T, fn func(svc *openconsole.Service, st *sqlstore.Store)) {
			t.Helper()
			st, err := sqlstore.Open(ctx, dsn, sqlstore.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			svc, err := openconsole.NewService(ctx, st, openconsole.Options{ReadOnly: true})
			if err != nil {
				t.Fatalf("read-only service on a database without keys: %v", err)
			}
			fn(svc, st)
			if err := svc.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
		readOnly(t, func(svc *openconsole.Service, st *sqlstore.Store) {
			if _, err := svc.AuditKeyInfo(ctx); err != nil {
				t.Errorf("AuditKeyInfo: %v", err)
			}
		})
		st := sqlstoretest.OpenDSN(t, dsn)
		if keys, _ := st.SigningKeys(ctx); len(keys) != 0 {
			t.Errorf("a read-only service stored %d signing keys", len(keys))
		}
		if keys, _ := st.AuditKeys(ctx); len(keys) != 0 {
			t.Errorf("a read-only service stored %d audit keys", len(keys))
		}
		// A service that writes: keys, a license, an audit entry, a checkpoint of it; then another
		// entry, which a writing service would sign on the next AuditCheckpoint.
		svc, err := openconsole.NewService(ctx, st, openconsole.Options{})
		if err != nil {
			t.Fatal(err)
		}
		mustLicense(t, svc, openconsole.LicenseInput{Seats: 1})
		if _, err := svc.AuditCheckpoint(ctx); err != nil {
			t.Fatal(err)
		}
		mustLicense(t, svc, openconsole.LicenseInput{Seats: 1})
		svc.Close()
		before, err := st.AuditCheckpoint(ctx, -1)
		if err != nil {
			t.Fatal(err)
		}
		st.Close()
		readOnly(t, func(svc *openconsole.Service, st *sqlstore.Store) {
			c, err := svc.AuditCheckpoint(ctx)
			if err != nil || c.Size != before.Size {
				t.Errorf("AuditCheckpoint = size %d, %v; want the stored one, size %d", c.Size, err, before.Size)
			}
			if _, err := svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1}); !errors.Is(err, sqlstore.ErrReadOnly) {
				t.Errorf("CreateLicense on a read-only service: %v, want ErrReadOnly", err)
			}
		})
		st = sqlstoretest.OpenDSN(t, dsn)
		if after, err := st.AuditCheckpoint(ctx, -1); err != nil || after.Size != before.Size {
			t.Errorf("latest checkpoint after the read-only service: size %d, %v; want %d (none signed)", after.Size, err, before.Size)
		}
	})
}
