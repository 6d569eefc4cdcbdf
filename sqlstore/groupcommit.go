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
// one transaction, each in its own savepoint so that one failing does not undo the others, commits
// once and answers them all. Each function still sees the effects of the ones before it, in order,
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
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case s.writes <- req:
	case <-s.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once handed over the write may commit, so wait for its outcome even if ctx ends.
	return <-req.done
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
	s.stats.batches.Add(1)
	s.stats.updates.Add(int64(len(batch)))
	results := make([]error, len(batch))
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		t := &txn{ctx: ctx, tx: tx, d: s.d}
		if s.d.lockClock != "" {
			if _, err := tx.ExecContext(ctx, s.d.lockClock); err != nil {
				return err
			}
		}
		if len(batch) == 1 {
			results[0] = batch[0].run(t)
			return results[0] // nothing else to keep: roll the whole transaction back
		}
		for i, r := range batch {
			if _, err := tx.ExecContext(ctx, `SAVEPOINT w`); err != nil {
				return err
			}
			results[i] = r.run(t)
			if results[i] != nil {
				if _, err := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT w`); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `RELEASE SAVEPOINT w`); err != nil {
				return err
			}
		}
		return nil
	})
	for i, r := range batch {
		if results[i] == nil && err != nil {
			// The transaction did not commit: nothing of this Update is stored.
			results[i] = err
		}
		r.done <- results[i]
	}
}

// run calls the Update's function unless its caller has given up already.
func (r *writeReq) run(t *txn) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	return r.fn(t)
}
