package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"openconsole"
)

// Group commit. Every acknowledged write must be on disk before it is answered (SQLite
// synchronous=FULL; PostgreSQL's default synchronous_commit), so a commit costs an fsync. Rather
// than weaken that, one writer goroutine per store takes every Update that is waiting, runs them in
// one transaction, commits once and answers them all; should one of them fail in a way that cannot
// be kept apart from the others, they are run again one transaction each (see tryBatch). Each function still sees the effects of the ones before it, in order,
// so the rules (seat counts, the timestamp clock) hold exactly as if they had run one by one. At low
// load a batch is a single Update and nothing waits.

// maxBatch bounds the Updates in one transaction.
const maxBatch = 256

// batchTimeout bounds one batch transaction: every statement in it is a short indexed one.
const batchTimeout = 30 * time.Second

type writeReq struct {
	ctx  context.Context
	fn   func(openconsole.Tx) error
	done chan error
}

var errClosed = errors.New("store closed")

// Update implements openconsole.Store. The functions of concurrent Updates are committed together
// (group commit); each one's effects are all there or all gone. On SQLite write transactions run
// one at a time on the one writer connection (BEGIN IMMEDIATE); on PostgreSQL each batch first locks
// the clock row, so batches from several servers run one after another and cannot deadlock on
// license rows.
func (s *Store) Update(ctx context.Context, fn func(openconsole.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.readOnly {
		return ErrReadOnly
	}
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case s.writes <- req:
	case <-s.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once handed over the write may commit, so wait for its outcome even if ctx ends.
	err := <-req.done
	if err != nil && s.file != "" {
		err = explainSQLite(s.file, err)
	}
	return err
}

func (s *Store) writer() {
	defer close(s.writerDone)
	for {
		var first *writeReq
		select {
		case first = <-s.writes:
		case <-s.quit:
			return
		}
		batch := []*writeReq{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-s.writes:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.runBatch(batch)
	}
}

func (s *Store) runBatch(batch []*writeReq) {
	if o := s.observer.Load(); o != nil {
		defer func(start time.Time) { (*o).ObserveBatch(len(batch), time.Since(start)) }(time.Now())
	}
	s.stats.batches.Add(1)
	s.stats.updates.Add(int64(len(batch)))
	if len(batch) > 1 {
		if results, ok := s.tryBatch(batch); ok {
			for i, r := range batch {
				r.done <- results[i]
			}
			return
		}
		s.stats.fallbacks.Add(1)
	}
	// One transaction per function: alone, or after a batch that could not keep every function's
	// outcome apart.
	for _, r := range batch {
		r.done <- s.runOne(r)
	}
}

// tryBatch runs the functions in one transaction without savepoints (each costs round trips and,
// on PostgreSQL, a subtransaction). That is sound as long as every function that fails does so
// before it writes, as the activation rules do when they refuse; a function that fails after a
// write, or any failing statement (which aborts a PostgreSQL transaction), makes tryBatch roll back
// and report false, and the caller runs the functions one by one instead.
func (s *Store) tryBatch(batch []*writeReq) ([]error, bool) {
	results := make([]error, len(batch))
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	errUnbatchable := errors.New("unbatchable")
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		t := s.newTxn(ctx, tx)
		if err := s.lockForBatch(t); err != nil {
			return err
		}
		for i, r := range batch {
			writes := t.writes
			results[i] = r.run(t)
			if t.failed || (results[i] != nil && t.writes != writes) {
				return errUnbatchable
			}
		}
		return t.flush()
	})
	return results, err == nil
}

// runOne runs one function in a transaction of its own; any error rolls it back.
func (s *Store) runOne(r *writeReq) error {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	return s.inTx(ctx, func(tx *sql.Tx) error {
		t := s.newTxn(ctx, tx)
		if err := s.lockForBatch(t); err != nil {
			return err
		}
		if err := r.run(t); err != nil {
			return err
		}
		return t.flush()
	})
}

// lockForBatch takes the lock that orders write transactions across servers (PostgreSQL): the
// clock row, whose value the batch's timestamps then continue from.
func (s *Store) lockForBatch(t *txn) error {
	if s.d.lockClock == "" {
		return nil
	}
	if err := t.tx.QueryRowContext(t.ctx, s.d.lockClock).Scan(&t.clock); err != nil {
		return err
	}
	t.clockKnown = true
	return nil
}

// run calls the Update's function unless its caller has given up already.
func (r *writeReq) run(t *txn) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	return r.fn(t)
}

// WriteStats counts the work of the group-commit writer since the store was opened.
type WriteStats struct {
	Batches   int64 // transactions committed (or tried) for Updates
	Updates   int64 // Updates run in them
	Fallbacks int64 // batches that had to be run again one Update per transaction
}

// WriteStats returns the writer's counters.
func (s *Store) WriteStats() WriteStats {
	return WriteStats{s.stats.batches.Load(), s.stats.updates.Load(), s.stats.fallbacks.Load()}
}

// BatchObserver is told of every group-commit batch: how many Updates it ran and how long it took
// from its start to its last answer (the commit included). It is called on the writer goroutine,
// so it must be quick.
type BatchObserver interface {
	ObserveBatch(updates int, d time.Duration)
}

// SetBatchObserver makes the writer report every batch to o (nil: to nobody).
func (s *Store) SetBatchObserver(o BatchObserver) {
	if o == nil {
		s.observer.Store(nil)
		return
	}
	s.observer.Store(&o)
}
