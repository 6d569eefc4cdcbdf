package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The seats figure: new activations per second on one license that already holds many live
// sessions (round A), against the rate over many 10-seat licenses (round B), in alternating rounds
// of one run. Every activation is a new device: key mode, no X-Session-Id, so each one that is
// answered 200 takes a seat.

// seatPool hands out the seats of the many licenses: take number j goes to license j mod n, so
// that activations running at the same time are on different licenses, and no license is taken
// more than seatsPerLicense times in all rounds.
type seatPool struct {
	keys []string
	next atomic.Int64
}

func (p *seatPool) take() (string, bool) {
	j := int(p.next.Add(1) - 1)
	if len(p.keys) == 0 || j >= len(p.keys)*seatsPerLicense {
		return "", false
	}
	return p.keys[j%len(p.keys)], true
}

// taken is how many seats take has handed out.
func (p *seatPool) taken() int {
	return min(int(p.next.Load()), len(p.keys)*seatsPerLicense)
}

// medianIndex returns the index of the median of xs: the middle one, the upper of the two middle
// ones for an even count (as median does for rounds), -1 for none.
func medianIndex(xs []float64) int {
	if len(xs) == 0 {
		return -1
	}
	idx := make([]int, len(xs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return xs[idx[a]] < xs[idx[b]] })
	return idx[len(idx)/2]
}

// okRate is the 200 answers per second of a load.
func okRate(s summary) float64 {
	if s.Seconds <= 0 {
		return 0
	}
	return float64(s.Statuses["200"]) / s.Seconds
}

type seatsRound struct {
	Big      summary `json:"big"`
	Many     summary `json:"many"`
	BigPerS  float64 `json:"big_activations_per_s"` // 200 answers a second
	ManyPerS float64 `json:"many_activations_per_s"`
	// BigCreated is how many sessions the round added to the big license, read from the database:
	// more than its 200s when requests timed out but their activations were committed. When some
	// did, round B waits first until the count stops moving (BigSettleS), so that it does not queue
	// behind what the server is still doing for round A.
	BigCreated int     `json:"big_sessions_created"`
	BigSettleS float64 `json:"big_settle_s,omitempty"`
	// BigCreatedPerS is BigCreated over the round and the wait after it: what the server did,
	// answered in time or not.
	BigCreatedPerS float64 `json:"big_sessions_created_per_s"`
	ManyExhausted  bool    `json:"many_exhausted,omitempty"`
}

type seatsReport struct {
	Conns            int          `json:"conns"`
	BigConns         int          `json:"big_conns"`
	Duration         string       `json:"round_duration"`
	BigKey           string       `json:"big_key"`
	BigSeats         int          `json:"big_seats"`
	BigLiveStart     int          `json:"big_live_start"`
	BigLiveEnd       int          `json:"big_live_end"`
	BigTaken         int          `json:"big_activations"` // the 200s of all rounds A
	ManyLicenses     int          `json:"many_licenses"`
	ManyTaken        int          `json:"many_activations_attempted"`
	Rounds           []seatsRound `json:"rounds"`
	MedianBig        float64      `json:"median_big_activations_per_s"`
	MedianBigCreated float64      `json:"median_big_sessions_created_per_s"`
	MedianMany       float64      `json:"median_many_activations_per_s"`
	Ratio            float64      `json:"ratio_big_vs_many"`
}

// runSeats runs o.seatsRounds alternating rounds A (the big license) and B (the many licenses).
func runSeats(o runOpts, f fleet) error {
	if f.BigKey == "" || len(f.Many) == 0 {
		return fmt.Errorf("--seats-rounds: the fleet needs a big license and many licenses (populate --big-seats S --many N)")
	}
	db, err := openReader(o.db)
	if err != nil {
		return fmt.Errorf("--seats-rounds: %w", err)
	}
	defer db.close()
	rep := seatsReport{Conns: o.conns, BigConns: o.bigConns, Duration: o.duration.String(), BigKey: f.BigKey, BigSeats: f.BigSeats, ManyLicenses: len(f.Many)}
	if rep.BigLiveStart, err = db.liveSessions(f.BigKey); err != nil {
		return err
	}
	pool := &seatPool{keys: f.Many}
	var big, many, created []float64
	live := rep.BigLiveStart
	for r := 0; r < o.seatsRounds; r++ {
		var rd seatsRound
		if rd.Big, err = activateLoad(o, o.bigConns, "activate (big license)", func() (string, bool) { return f.BigKey, true }); err != nil {
			return err
		}
		now, err := db.liveSessions(f.BigKey)
		if err != nil {
			return err
		}
		if rd.Big.Statuses["transport error"] > 0 {
			t0 := time.Now()
			for time.Since(t0) < 2*time.Minute {
				time.Sleep(time.Second)
				next, err := db.liveSessions(f.BigKey)
				if err != nil {
					return err
				}
				if next == now {
					break
				}
				now = next
			}
			rd.BigSettleS = time.Since(t0).Seconds()
		}
		rd.BigCreated, live = now-live, now
		if t := rd.Big.Seconds + rd.BigSettleS; t > 0 {
			rd.BigCreatedPerS = float64(rd.BigCreated) / t
		}
		if rd.Many, err = activateLoad(o, o.conns, "activate (many licenses)", pool.take); err != nil {
			return err
		}
		rd.BigPerS, rd.ManyPerS = okRate(rd.Big), okRate(rd.Many)
		rd.ManyExhausted = pool.taken() == len(f.Many)*seatsPerLicense
		rep.BigTaken += rd.Big.Statuses["200"]
		rep.Rounds = append(rep.Rounds, rd)
		big, many, created = append(big, rd.BigPerS), append(many, rd.ManyPerS), append(created, rd.BigCreatedPerS)
		if !o.jsonOut {
			fmt.Printf("  round %d: big license %.2f/s (%d sessions created), many licenses %.1f/s\n", r+1, rd.BigPerS, rd.BigCreated, rd.ManyPerS)
		}
	}
	if rep.BigLiveEnd, err = db.liveSessions(f.BigKey); err != nil {
		return err
	}
	rep.ManyTaken = pool.taken()
	rep.MedianBig, rep.MedianMany = big[medianIndex(big)], many[medianIndex(many)]
	rep.MedianBigCreated = created[medianIndex(created)]
	if rep.MedianMany > 0 {
		rep.Ratio = rep.MedianBig / rep.MedianMany
	}
	rep.print(o.jsonOut)
	return writeJSON(o.jsonFile, rep)
}

// activateLoad activates new devices over conns connections for o.duration, or until next runs out
// of keys: each request is {"licenseKey": next()} without a session id, sent once.
func activateLoad(o runOpts, conns int, name string, next func() (string, bool)) (summary, error) {
	deadline := time.Now().Add(o.duration)
	total := newStats(name)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errc := make(chan error, conns)
	start := time.Now()
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial(o.addr)
			if err != nil {
				errc <- err
				return
			}
			defer c.close()
			s := newStats(name)
			body := make([]byte, 0, 128)
			for time.Now().Before(deadline) {
				key, ok := next()
				if !ok {
					break
				}
				body = append(append(append(body[:0], `{"licenseKey":"`...), key...), `"}`...)
				t0 := time.Now()
				resp, err := c.postOnce("/api/v2/device/license/activate", []string{"Content-Type: application/json"}, body)
				s.add(time.Since(t0), resp.status, err)
			}
			mu.Lock()
			total.merge(s)
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	select {
	case err := <-errc:
		return summary{}, err
	default:
	}
	return total.summary(), nil
}

func statusList(m map[string]int) string {
	var st []string
	for k, v := range m {
		st = append(st, fmt.Sprintf("%s:%d", k, v))
	}
	sort.Strings(st)
	return strings.Join(st, " ")
}

func (r seatsReport) print(asJSON bool) {
	if asJSON {
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Println(string(b))
		return
	}
	fmt.Printf("\nbig license %s, %d seats: %d live sessions at the start, %d at the end (%+d; rounds A were answered %d times 200)\n",
		r.BigKey, r.BigSeats, r.BigLiveStart, r.BigLiveEnd, r.BigLiveEnd-r.BigLiveStart, r.BigTaken)
	fmt.Printf("many licenses: %d of %d seats, %d taken or tried by rounds B\n", r.ManyLicenses, r.ManyLicenses*seatsPerLicense, r.ManyTaken)
	fmt.Printf("%d connections (%d for the big license), %d alternating rounds of %s\n\n", r.Conns, r.BigConns, len(r.Rounds), r.Duration)
	fmt.Printf("%-5s | %-70s | %-51s | %s\n", "round", "A: the big license", "B: many 10-seat licenses", "A/B")
	fmt.Printf("%-5s | %8s %8s %8s %7s %9s  %-24s | %8s %8s %8s  %-22s |\n", "", "act/s", "p50 ms", "p99 ms", "created", "created/s", "statuses", "act/s", "p50 ms", "p99 ms", "statuses")
	for i, rd := range r.Rounds {
		ratio := 0.0
		if rd.ManyPerS > 0 {
			ratio = rd.BigPerS / rd.ManyPerS
		}
		var notes []string
		if rd.BigSettleS > 0 {
			notes = append(notes, fmt.Sprintf("waited %.0fs for the server to finish round A", rd.BigSettleS))
		}
		if rd.ManyExhausted {
			notes = append(notes, "the many licenses ran out of seats: populate more with --many")
		}
		note := ""
		if len(notes) > 0 {
			note = "  (" + strings.Join(notes, "; ") + ")"
		}
		fmt.Printf("%-5d | %8.2f %8.1f %8.1f %7d %9.2f  %-24s | %8.1f %8.2f %8.2f  %-22s | %.4fx%s\n", i+1,
			rd.BigPerS, rd.Big.P50ms, rd.Big.P99ms, rd.BigCreated, rd.BigCreatedPerS, statusList(rd.Big.Statuses),
			rd.ManyPerS, rd.Many.P50ms, rd.Many.P99ms, statusList(rd.Many.Statuses), ratio, note)
	}
	fmt.Printf("\nmedian: big license %.2f activations/s (sessions created %.2f/s), many licenses %.1f/s: ratio A/B %.4fx\n",
		r.MedianBig, r.MedianBigCreated, r.MedianMany, r.Ratio)
}
