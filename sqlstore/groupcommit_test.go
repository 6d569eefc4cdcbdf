package sqlstore_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"openconsole"
	"openconsole/sqlstore"
	"openconsole/sqlstore/sqlstoretest"
)

// TestGroupCommitIsolatesUpdates: concurrent Updates that are committed together still succeed or
// fail one by one: a function that fails (by returning an error, or by a failing statement) leaves
// nothing behind, and the others are all stored.
func TestGroupCommitIsolatesUpdates(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		st := open(t, dsn)
		update(t, st, func(tx openconsole.Tx) error {
			_, err := tx.CreateUser(openconsole.User{Username: "taken", PasswordHash: "h", CreatedAt: t0})
			return err
		})
		const n = 300
		errs := make([]error, n)
		boom := errors.New("boom")
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				errs[i] = st.Update(ctx, func(tx openconsole.Tx) error {
					if _, err := tx.CreateUser(openconsole.User{Username: fmt.Sprint("u", i), PasswordHash: "h", CreatedAt: t0}); err != nil {
						return err
					}
					switch i % 3 {
					case 1:
						return boom // after a successful insert: it must be undone
					case 2:
						_, err := tx.CreateUser(openconsole.User{Username: "taken", PasswordHash: "h", CreatedAt: t0})
						return err // a failing statement inside the batch
					}
					return nil
				})
			}(i)
		}
		close(start)
		wg.Wait()
		if batches, updates := sqlstore.BatchStatsForTest(st); updates <= batches {
			t.Errorf("%d updates in %d transactions: no two were committed together, so this test did not test batching", updates, batches)
		}
		for i := 0; i < n; i++ {
			_, err := st.UserByUsername(ctx, fmt.Sprint("u", i))
			switch i % 3 {
			case 0:
				if errs[i] != nil || err != nil {
					t.Errorf("u%d: update %v, lookup %v; want stored", i, errs[i], err)
				}
			case 1:
				if !errors.Is(errs[i], boom) || !errors.Is(err, openconsole.ErrNotFound) {
					t.Errorf("u%d: update %v, lookup %v; want boom and nothing stored", i, errs[i], err)
				}
			case 2:
				if openconsole.ErrorCode(errs[i]) != openconsole.ECONFLICT || !errors.Is(err, openconsole.ErrNotFound) {
					t.Errorf("u%d: update %v, lookup %v; want a conflict and nothing stored", i, errs[i], err)
				}
			}
		}
	})
}

func TestUpdateAfterClose(t *testing.T) {
	st := open(t, sqlstoretest.DSN(t, "sqlite"))
	st.Close()
	if err := st.Update(ctx, func(openconsole.Tx) error { return nil }); err == nil {
		t.Error("Update on a closed store succeeded")
	}
}
