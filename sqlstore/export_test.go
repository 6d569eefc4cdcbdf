package sqlstore

import "context"

// ExecForTest runs a statement on the store's writer, for tests that must corrupt or age a database.
func ExecForTest(ctx context.Context, s *Store, query string) error {
	_, err := s.w.ExecContext(ctx, query)
	return err
}

// BatchStatsForTest returns how many write transactions ran and how many Updates they carried.
func BatchStatsForTest(s *Store) (batches, updates int64) {
	return s.stats.batches.Load(), s.stats.updates.Load()
}
