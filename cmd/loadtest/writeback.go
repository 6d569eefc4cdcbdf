package main

import (
	"encoding/json"
	"fmt"
	"time"
)

// The write-back figure: validate throughput while the server writes back the last-seen times of
// a whole fleet at once, against its own steady rate after. populate --stored-seen-ago stores
// sessions last seen longer ago than the server's touch interval, so the first validate of each one
// records activity to be written; the sweep validates every one, and the rounds after it run while
// the write-back drains and then in the steady state. "Drained" is read from the database: no
// session left whose last_seen_at is older than the time populate ran.

type wbRound struct {
	Phase        string  `json:"phase"` // "drain": the round started with last-seen times unwritten; "after": none left
	AtS          float64 `json:"at_s"`  // when the round started, seconds after the sweep started
	PendingStart int     `json:"unwritten_start"`
	PendingEnd   int     `json:"unwritten_end"`
	Validate     summary `json:"validate"`
}

type wbReport struct {
	Conns              int       `json:"conns"`
	Duration           string    `json:"round_duration"`
	Sessions           int       `json:"sessions"`
	PendingBeforeSweep int       `json:"unwritten_before_sweep"`
	Sweep              summary   `json:"sweep"`
	PendingAfterSweep  int       `json:"unwritten_after_sweep"`
	Rounds             []wbRound `json:"rounds"`
	Drained            bool      `json:"drained"`
	// The drain ended between these two counts (seconds after the sweep started): the last that
	// found a session unwritten and the first that found none.
	DrainLastPendingS float64 `json:"drain_last_unwritten_at_s"`
	DrainDoneS        float64 `json:"drain_done_by_s,omitempty"`
	MedianDrain       float64 `json:"median_drain_per_s"`
	MedianAfter       float64 `json:"median_after_per_s"`
	Ratio             float64 `json:"ratio_drain_vs_after"`
}

func runWriteback(o runOpts, f fleet, sessions []string) error {
	if f.PopulatedAtMS == 0 {
		return fmt.Errorf("--writeback: the fleet does not say when it was populated (populate again)")
	}
	db, err := openReader(o.db)
	if err != nil {
		return fmt.Errorf("--writeback: %w", err)
	}
	defer db.close()
	rep := wbReport{Conns: o.conns, Duration: o.duration.String(), Sessions: len(sessions)}
	if rep.PendingBeforeSweep, err = db.unwritten(f.PopulatedAtMS); err != nil {
		return err
	}
	if rep.PendingBeforeSweep == 0 {
		return fmt.Errorf("--writeback: no stored session has a last-seen time before populate ran (populate --stored-seen-ago 20m)")
	}
	progress := func(format string, args ...any) {
		if !o.jsonOut {
			fmt.Printf(format, args...)
		}
	}
	start := time.Now()
	if rep.Sweep, err = sweep(o, o.addr, sessions, "validate (sweep)"); err != nil {
		return err
	}
	countAt := time.Since(start)
	pending, err := db.unwritten(f.PopulatedAtMS)
	if err != nil {
		return err
	}
	rep.PendingAfterSweep = pending
	progress("sweep: %d validates in %.1fs (%.0f/s); %d of %d last-seen times unwritten at its end\n",
		rep.Sweep.Requests, rep.Sweep.Seconds, rep.Sweep.Throughput, pending, rep.PendingBeforeSweep)
	after := 0
	for {
		if pending > 0 {
			rep.DrainLastPendingS = countAt.Seconds()
		} else if !rep.Drained {
			rep.Drained, rep.DrainDoneS = true, countAt.Seconds()
		}
		if rep.Drained && after >= o.afterRounds {
			break
		}
		if !rep.Drained && time.Since(start) > o.maxDrain {
			progress("not drained after %v: giving up\n", o.maxDrain)
			break
		}
		rd := wbRound{Phase: "drain", AtS: time.Since(start).Seconds(), PendingStart: pending}
		if pending == 0 {
			rd.Phase = "after"
			after++
		}
		if rd.Validate, err = validateLoad(o, o.addr, sessions, "validate"); err != nil {
			return err
		}
		countAt = time.Since(start)
		if pending, err = db.unwritten(f.PopulatedAtMS); err != nil {
			return err
		}
		rd.PendingEnd = pending
		rep.Rounds = append(rep.Rounds, rd)
		progress("  round %2d at %6.1fs (%-5s): %8.0f validates/s, unwritten %d -> %d\n",
			len(rep.Rounds), rd.AtS, rd.Phase, rd.Validate.Throughput, rd.PendingStart, rd.PendingEnd)
	}
	rep.MedianDrain, rep.MedianAfter, rep.Ratio = wbMedians(rep.Rounds)
	rep.print(o.jsonOut)
	return writeJSON(o.jsonFile, rep)
}

// wbMedians returns the median validate rate of the rounds during the drain and after it, and
// their ratio (0 when either has no round).
func wbMedians(rounds []wbRound) (drain, after, ratio float64) {
	var d, a []float64
	for _, rd := range rounds {
		if rd.Phase == "drain" {
			d = append(d, rd.Validate.Throughput)
		} else {
			a = append(a, rd.Validate.Throughput)
		}
	}
	if i := medianIndex(d); i >= 0 {
		drain = d[i]
	}
	if i := medianIndex(a); i >= 0 {
		after = a[i]
	}
	if drain > 0 && after > 0 {
		ratio = drain / after
	}
	return drain, after, ratio
}

func (r wbReport) print(asJSON bool) {
	if asJSON {
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Println(string(b))
		return
	}
	fmt.Printf("\n%d stored sessions, %d connections, rounds of %s; times are seconds after the sweep started\n\n", r.Sessions, r.Conns, r.Duration)
	fmt.Printf("%-6s %-6s %7s %12s %12s %10s %8s %8s  %s\n", "round", "phase", "at s", "unwritten", "at end", "req/s", "p50 ms", "p99 ms", "statuses")
	for i, rd := range r.Rounds {
		fmt.Printf("%-6d %-6s %7.1f %12d %12d %10.0f %8.2f %8.2f  %s\n", i+1, rd.Phase, rd.AtS, rd.PendingStart, rd.PendingEnd,
			rd.Validate.Throughput, rd.Validate.P50ms, rd.Validate.P99ms, statusList(rd.Validate.Statuses))
	}
	fmt.Println()
	if r.Drained {
		fmt.Printf("write-back drained between %.1fs and %.1fs after the sweep started (the sweep took %.1fs; %d unwritten at its end)\n",
			r.DrainLastPendingS, r.DrainDoneS, r.Sweep.Seconds, r.PendingAfterSweep)
	} else {
		left := r.PendingAfterSweep
		if len(r.Rounds) > 0 {
			left = r.Rounds[len(r.Rounds)-1].PendingEnd
		}
		fmt.Printf("write-back NOT drained: %d unwritten at %.1fs\n", left, r.DrainLastPendingS)
	}
	switch {
	case r.Ratio > 0:
		fmt.Printf("median during the drain %.0f/s, after %.0f/s: ratio %.2fx\n", r.MedianDrain, r.MedianAfter, r.Ratio)
	case r.MedianDrain == 0:
		fmt.Printf("no round started during the drain (it ended with the sweep); after: %.0f/s\n", r.MedianAfter)
	default:
		fmt.Printf("median during the drain %.0f/s; no round after it\n", r.MedianDrain)
	}
}
