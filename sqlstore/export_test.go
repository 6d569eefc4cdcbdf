package sqlstore

import (
	"context"
	"database/sql"
)

// ExecForTest runs a statement on the store's writer, for tests that must corrupt or age a database.
func ExecForTest(ctx context.Context, s *Store, query string) error {
	_, err := s.w.ExecContext(ctx, query)
	return err
}

// BatchStatsForTest returns how many write transactions ran and how many Updates they carried.
func BatchStatsForTest(s *Store) (batches, updates int64) {
	return s.stats.batches.Load(), s.stats.updates.Load()
}

// Schema describes the tables and indexes of the store's database in terms both engines share:
// "table: col type [not null], ..." and "index table(cols) [unique] [partial]" lines, sorted.
func Schema(ctx context.Context, s *Store) ([]string, error) {
	return s.schema(ctx)
}

// BackfillKeyHashesForTest runs the backfill of migration 0009 again.
func BackfillKeyHashesForTest(ctx context.Context, s *Store) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return backfillKeyHashes(ctx, s.d, tx) })
}

// ReaderExecForTest runs a statement on the store's read pool, for tests of a read-only store.
func ReaderExecForTest(ctx context.Context, s *Store, query string) error {
	_, err := s.r.ExecContext(ctx, query)
	return err
}
