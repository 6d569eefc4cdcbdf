package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type runOpts struct {
	addr         string
	addr2        string // with --url2: a second server sharing the validate load
	compare      string // with --compare: a second server measured in its own rounds, alternating
	compareName  string
	conns        int
	duration     time.Duration
	rate         float64
	validateFrom string // "activated" or "stored"
	baseline     bool
	rounds       int
	jsonOut      bool
	jsonFile     string // also write the JSON report here (--seats-rounds, --writeback)
	db           string // the server's database, read directly by --seats-rounds and --writeback
	seatsRounds  int
	bigConns     int // connections of the big-license rounds (default conns)
	writeback    bool
	afterRounds  int
	maxDrain     time.Duration
}

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	target := fs.String("url", "http://127.0.0.1:8080", "the OpenConsole server")
	target2 := fs.String("url2", "", "a second server on the same database: validate connections alternate between the two")
	compare := fs.String("compare", "", "with --baseline: a second server (its own copy of the database) measured in rounds of its own, alternating with the baseline and --url")
	compareName := fs.String("compare-name", "compared", "with --compare: its name in the report")
	fleetFile := fs.String("fleet", "fleet.json", "the fleet description written by populate")
	devices := fs.Int("devices", 0, "activate this many of the fleet's devices (0: all)")
	var o runOpts
	fs.IntVar(&o.conns, "conns", 64, "concurrent connections")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to validate (per round and server)")
	fs.Float64Var(&o.rate, "rate", 0, "validate requests per second in all (0: as fast as possible)")
	fs.StringVar(&o.validateFrom, "validate", "activated", "which sessions validate: activated (by this run) or stored (populate --stored)")
	fs.BoolVar(&o.baseline, "baseline", false, "also run the validate load against the bare net/http baseline, alternating")
	fs.IntVar(&o.rounds, "rounds", 3, "with --baseline: alternating rounds of baseline and server; medians are reported")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON")
	fs.StringVar(&o.jsonFile, "json-file", "", "with --seats-rounds or --writeback: also write the JSON report to this file")
	fs.StringVar(&o.db, "db", os.Getenv("OPENCONSOLE_DB"), "the server's database DSN (for --seats-rounds and --writeback, which read it directly)")
	fs.IntVar(&o.seatsRounds, "seats-rounds", 0, "instead of the fleet: alternating rounds of new activations on the big license and over the many licenses (populate --big-seats --many)")
	fs.IntVar(&o.bigConns, "big-conns", 0, "with --seats-rounds: connections of the big-license rounds (0: --conns)")
	fs.BoolVar(&o.writeback, "writeback", false, "validate every stored session once, then validate in rounds while their last-seen times are written back, and after (populate --stored-seen-ago)")
	fs.IntVar(&o.afterRounds, "after-rounds", 3, "with --writeback: rounds once the write-back has drained")
	fs.DurationVar(&o.maxDrain, "max-drain", 10*time.Minute, "with --writeback: give up waiting for the drain after this long")
	skipActivate := fs.Bool("skip-activate", false, "do not activate (only with --validate stored)")
	warmup := fs.Bool("warmup", false, "first validate every session once (reported apart: the server's first look at each session)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("--url: want http://HOST:PORT")
	}
	o.addr = u.Host
	if *target2 != "" {
		u2, err := url.Parse(*target2)
		if err != nil || u2.Host == "" {
			return fmt.Errorf("--url2: want http://HOST:PORT")
		}
		o.addr2 = u2.Host
	}
	if *compare != "" {
		u3, err := url.Parse(*compare)
		if err != nil || u3.Host == "" {
			return fmt.Errorf("--compare: want http://HOST:PORT")
		}
		if !o.baseline || o.addr2 != "" {
			return fmt.Errorf("--compare: needs --baseline, and does not combine with --url2")
		}
		o.compare, o.compareName = u3.Host, *compareName
	}
	var f fleet
	b, err := os.ReadFile(*fleetFile)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("%s: %w", *fleetFile, err)
	}
	if o.seatsRounds > 0 {
		if o.bigConns <= 0 {
			o.bigConns = o.conns
		}
		return runSeats(o, f)
	}

	rep := report{Conns: o.conns}
	var sessions []string
	if !*skipActivate {
		var st map[string]*stats
		sessions, st, err = activateFleet(o, f, *devices)
		if err != nil {
			return err
		}
		for _, s := range st {
			rep.Endpoints = append(rep.Endpoints, s.summary())
		}
	}
	if o.validateFrom == "stored" {
		if f.Stored == 0 {
			return fmt.Errorf("--validate stored: the fleet has no stored sessions")
		}
		sessions = nil
		for i := 0; i < f.Stored; i++ {
			sessions = append(sessions, storedSessionID(f.Seed, i))
		}
	}
	if len(sessions) == 0 {
		return fmt.Errorf("no sessions to validate")
	}
	rep.Sessions = len(sessions)
	if o.writeback {
		if o.validateFrom != "stored" || o.baseline || o.addr2 != "" {
			return fmt.Errorf("--writeback: validates the stored sessions (--validate stored) of one server, without --baseline")
		}
		return runWriteback(o, f, sessions)
	}

	if *warmup {
		// Each server gets its own first look at every session (their caches are their own).
		one := o
		one.addr2 = ""
		n := 0
		for _, addr := range []string{o.addr, o.addr2, o.compare} {
			if addr == "" {
				continue
			}
			n++
			s, err := sweep(one, addr, sessions, fmt.Sprintf("validate (first look %d)", n))
			if err != nil {
				return err
			}
			rep.Endpoints = append(rep.Endpoints, s)
		}
	}

	var baseAddr string
	if o.baseline {
		exe, _ := os.Executable()
		cmd := exec.Command(exe, "baseline")
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		defer cmd.Process.Kill()
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		baseAddr = strings.TrimSpace(line)
	}
	rounds := 1
	if o.baseline {
		rounds = o.rounds
	}
	// Each round measures the baseline, the server and the compared server; with --compare the
	// order rotates from round to round, so that none of the three always follows the same one.
	var server, base, compared []summary
	for r := 0; r < rounds; r++ {
		steps := []func() error{}
		if o.baseline {
			steps = append(steps, func() error {
				s, err := validateLoad(o, baseAddr, sessions, "validate (baseline)")
				base = append(base, s)
				return err
			})
		}
		steps = append(steps, func() error {
			s, err := validateLoad(o, o.addr, sessions, "validate")
			server = append(server, s)
			return err
		})
		if o.compare != "" {
			steps = append(steps, func() error {
				s, err := validateLoad(o, o.compare, sessions, "validate ("+o.compareName+")")
				compared = append(compared, s)
				return err
			})
			k := r % len(steps)
			steps = slices.Concat(steps[k:], steps[:k])
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
	}
	rep.Endpoints = append(rep.Endpoints, median(server))
	if o.baseline {
		mb, ms := median(base), median(server)
		if o.compare != "" {
			mc := median(compared)
			rep.Endpoints = append(rep.Endpoints, mc)
			rep.Compared = &comparison{Name: o.compareName, ThroughputRatio: mc.Throughput / mb.Throughput,
				P99Ratio: mc.P99ms / mb.P99ms, ServerOverCompared: ms.Throughput / mc.Throughput}
			for i := range compared {
				rep.Compared.Rounds = append(rep.Compared.Rounds, compared[i].Throughput)
			}
		}
		rep.Endpoints = append(rep.Endpoints, mb)
		rep.ThroughputRatio = ms.Throughput / mb.Throughput
		rep.P99Ratio = ms.P99ms / mb.P99ms
		for i := range server {
			rep.Rounds = append(rep.Rounds, [2]float64{server[i].Throughput, base[i].Throughput})
		}
	}
	rep.print(o.jsonOut)
	return nil
}

// activateFleet activates the fleet's devices over o.conns connections: key mode, then bearer mode
// (one login per user), then serial mode, all interleaved. It returns the sessions issued.
func activateFleet(o runOpts, f fleet, limit int) ([]string, map[string]*stats, error) {
	type job struct {
		mode, key string
		user      int
	}
	var jobs []job
	for _, k := range f.Keys {
		for i := 0; i < seatsPerLicense; i++ {
			jobs = append(jobs, job{mode: "key", key: k})
		}
	}
	for u, fu := range f.Users {
		for i := 0; i < fu.Seats; i++ {
			jobs = append(jobs, job{mode: "bearer", user: u})
		}
	}
	for _, sn := range f.Serials {
		jobs = append(jobs, job{mode: "serial", key: sn})
	}
	rand.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	if limit > 0 && limit < len(jobs) {
		jobs = jobs[:limit]
	}

	tokens := make([]string, len(f.Users))
	var tokMu sync.Mutex
	st := map[string]*stats{}
	for _, n := range []string{"activate (key)", "activate (bearer)", "activate (serial)", "login"} {
		st[n] = newStats(n)
	}
	var next atomic.Int64
	var sessMu sync.Mutex
	var sessions []string
	var wg sync.WaitGroup
	errc := make(chan error, o.conns)
	start := time.Now()
	for w := 0; w < o.conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial(o.addr)
			if err != nil {
				errc <- err
				return
			}
			defer c.close()
			local := map[string]*stats{}
			for n := range st {
				local[n] = newStats(n)
			}
			for {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) {
					break
				}
				j := jobs[i]
				var headers []string
				body := []byte("null")
				switch j.mode {
				case "key", "serial":
					body = []byte(`{"licenseKey":"` + j.key + `"}`)
				case "bearer":
					tokMu.Lock()
					tok := tokens[j.user]
					tokMu.Unlock()
					if tok == "" {
						t0 := time.Now()
						u := f.Users[j.user]
						resp, err := c.post("/api/v2/auth/login", []string{"Content-Type: application/json"},
							[]byte(`{"username":"`+u.Username+`","password":"`+u.Password+`"}`))
						local["login"].add(time.Since(t0), resp.status, err)
						var lr struct {
							Data struct {
								JWT struct {
									Token string `json:"token"`
								} `json:"jwt"`
							} `json:"data"`
						}
						if err == nil && json.Unmarshal(resp.body, &lr) == nil {
							tok = lr.Data.JWT.Token
							tokMu.Lock()
							tokens[j.user] = tok
							tokMu.Unlock()
						}
					}
					headers = []string{"Authorization: Bearer " + tok}
				}
				t0 := time.Now()
				resp, err := c.post("/api/v2/device/license/activate", append(headers, "Content-Type: application/json"), body)
				local["activate ("+j.mode+")"].add(time.Since(t0), resp.status, err)
				if err == nil && resp.status == 200 {
					var ar struct {
						Data struct {
							SessionID struct {
								ID string `json:"id"`
							} `json:"sessionId"`
						} `json:"data"`
					}
					if json.Unmarshal(resp.body, &ar) == nil {
						sessMu.Lock()
						sessions = append(sessions, ar.Data.SessionID.ID)
						sessMu.Unlock()
					}
				}
			}
			sessMu.Lock()
			for n, s := range local {
				st[n].merge(s)
			}
			sessMu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errc:
		return nil, nil, err
	default:
	}
	for n, s := range st {
		if s.count() == 0 {
			delete(st, n)
			continue
		}
		s.elapsed = elapsed
	}
	return sessions, st, nil
}

// sweep validates every session once, spread over o.conns connections.
func sweep(o runOpts, addr string, sessions []string, name string) (summary, error) {
	var next atomic.Int64
	return drive(o, addr, sessions, name, func(*rand.Rand) (int, bool) {
		i := int(next.Add(1) - 1)
		return i, i < len(sessions)
	})
}

// validateLoad validates random sessions of the list over o.conns connections for o.duration, at
// o.rate requests a second in all when that is set.
func validateLoad(o runOpts, addr string, sessions []string, name string) (summary, error) {
	deadline := time.Now().Add(o.duration)
	var interval time.Duration
	if o.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(o.conns) / o.rate)
	}
	return drive(o, addr, sessions, name, func(rng *rand.Rand) (int, bool) {
		if interval > 0 {
			time.Sleep(interval) // closed loop, paced
		}
		return rng.IntN(len(sessions)), time.Now().Before(deadline)
	})
}

// drive runs o.conns connections that validate the session next names until it says stop.
func drive(o runOpts, addr string, sessions []string, name string, next func(*rand.Rand) (int, bool)) (summary, error) {
	total := newStats(name)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errc := make(chan error, o.conns)
	start := time.Now()
	for w := 0; w < o.conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c, err := dial(pick(o, addr, w))
			if err != nil {
				errc <- err
				return
			}
			defer c.close()
			s := newStats(name)
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for {
				i, ok := next(rng)
				if !ok {
					break
				}
				t0 := time.Now()
				resp, err := c.post("/api/v2/device/license/validate", []string{"X-Session-Id: " + sessions[i]}, nil)
				if err == nil && resp.status == 200 && !bytes.Contains(resp.body, []byte(`"isValid":true`)) {
					s.add(time.Since(t0), statusNotValid, nil) // answered, but not valid
					continue
				}
				s.add(time.Since(t0), resp.status, err)
			}
			mu.Lock()
			total.merge(s)
			mu.Unlock()
		}(w)
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

// statusNotValid stands for "200 with isValid:false" in the statistics.
const statusNotValid = 1200

// pick returns the address connection w of a load against addr talks to: with a second server,
// every other connection goes there.
func pick(o runOpts, addr string, w int) string {
	if addr == o.addr && o.addr2 != "" && w%2 == 1 {
		return o.addr2
	}
	return addr
}

// stats collects latencies and statuses of one endpoint.
type stats struct {
	name     string
	lat      []time.Duration
	statuses map[int]int
	errs     int
	elapsed  time.Duration
}

func newStats(name string) *stats { return &stats{name: name, statuses: map[int]int{}} }

func (s *stats) add(d time.Duration, status int, err error) {
	if err != nil {
		s.errs++
		return
	}
	s.lat = append(s.lat, d)
	s.statuses[status]++
}

func (s *stats) merge(o *stats) {
	s.lat = append(s.lat, o.lat...)
	for k, v := range o.statuses {
		s.statuses[k] += v
	}
	s.errs += o.errs
}

func (s *stats) count() int { return len(s.lat) + s.errs }

type summary struct {
	Name       string         `json:"name"`
	Requests   int            `json:"requests"`
	Throughput float64        `json:"throughput_per_s"`
	P50ms      float64        `json:"p50_ms"`
	P90ms      float64        `json:"p90_ms"`
	P99ms      float64        `json:"p99_ms"`
	Maxms      float64        `json:"max_ms"`
	Statuses   map[string]int `json:"statuses"`
	Seconds    float64        `json:"seconds,omitempty"` // how long the load ran
}

func (s *stats) summary() summary {
	sort.Slice(s.lat, func(i, j int) bool { return s.lat[i] < s.lat[j] })
	q := func(p float64) float64 {
		if len(s.lat) == 0 {
			return 0
		}
		return float64(s.lat[min(len(s.lat)-1, int(p*float64(len(s.lat))))].Microseconds()) / 1000
	}
	out := summary{Name: s.name, Requests: s.count(), P50ms: q(0.50), P90ms: q(0.90), P99ms: q(0.99), Statuses: map[string]int{}}
	if len(s.lat) > 0 {
		out.Maxms = float64(s.lat[len(s.lat)-1].Microseconds()) / 1000
	}
	if s.elapsed > 0 {
		out.Throughput = float64(s.count()) / s.elapsed.Seconds()
		out.Seconds = s.elapsed.Seconds()
	}
	for k, v := range s.statuses {
		name := fmt.Sprint(k)
		if k == statusNotValid {
			name = "200 isValid:false"
		}
		out.Statuses[name] = v
	}
	if s.errs > 0 {
		out.Statuses["transport error"] = s.errs
	}
	return out
}

// median returns the round with the median throughput.
func median(ss []summary) summary {
	sorted := append([]summary(nil), ss...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Throughput < sorted[j].Throughput })
	return sorted[len(sorted)/2]
}

type report struct {
	Conns           int          `json:"conns"`
	Sessions        int          `json:"sessions_validated"`
	Endpoints       []summary    `json:"endpoints"`
	ThroughputRatio float64      `json:"throughput_ratio_vs_baseline,omitempty"`
	P99Ratio        float64      `json:"p99_ratio_vs_baseline,omitempty"`
	Rounds          [][2]float64 `json:"rounds_server_baseline_per_s,omitempty"`
	Compared        *comparison  `json:"compared,omitempty"`
}

// comparison is the second server of --compare against the baseline of the same rounds.
type comparison struct {
	Name               string    `json:"name"`
	ThroughputRatio    float64   `json:"throughput_ratio_vs_baseline"`
	P99Ratio           float64   `json:"p99_ratio_vs_baseline"`
	ServerOverCompared float64   `json:"server_over_compared"`
	Rounds             []float64 `json:"rounds_per_s"`
}

func (r report) print(asJSON bool) {
	if asJSON {
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Println(string(b))
		return
	}
	fmt.Printf("%d connections, validating %d sessions\n\n", r.Conns, r.Sessions)
	fmt.Printf("%-22s %9s %10s %8s %8s %8s %8s  %s\n", "endpoint", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "statuses")
	for _, e := range r.Endpoints {
		var st []string
		for k, v := range e.Statuses {
			st = append(st, fmt.Sprintf("%s:%d", k, v))
		}
		sort.Strings(st)
		fmt.Printf("%-22s %9d %10.0f %8.2f %8.2f %8.2f %8.2f  %s\n", e.Name, e.Requests, e.Throughput, e.P50ms, e.P90ms, e.P99ms, e.Maxms, strings.Join(st, " "))
	}
	if r.ThroughputRatio > 0 {
		fmt.Printf("\nvalidate vs baseline (medians of %d alternating rounds): throughput %.2fx, p99 %.2fx\n", len(r.Rounds), r.ThroughputRatio, r.P99Ratio)
		for i, rd := range r.Rounds {
			fmt.Printf("  round %d: server %.0f/s, baseline %.0f/s (%.2fx)\n", i+1, rd[0], rd[1], rd[0]/rd[1])
		}
	}
	if c := r.Compared; c != nil {
		fmt.Printf("%s vs baseline (same rounds): throughput %.2fx, p99 %.2fx; server over %s: %.2fx\n",
			c.Name, c.ThroughputRatio, c.P99Ratio, c.Name, c.ServerOverCompared)
		for i, t := range c.Rounds {
			fmt.Printf("  round %d: %s %.0f/s, baseline %.0f/s (%.2fx)\n", i+1, c.Name, t, r.Rounds[i][1], t/r.Rounds[i][1])
		}
	}
}

// writeJSON writes v as indented JSON to file, unless file is "".
func writeJSON(file string, v any) error {
	if file == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}
