// Package metrics exports OpenConsole's operational metrics in the Prometheus format. It is the
// one package that imports the Prometheus client: the domain (package openconsole), the console
// API and the store count into atomic values and observer hooks of their own, and this package
// reads them when it is scraped. Nothing here runs per request but the HTTP metrics (Route), which
// are resolved once per route and sharded, so that a request costs three uncontended atomic adds
// and no allocation.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"openconsole"
	"openconsole/sqlstore"
)

// FleetInterval is how often the fleet gauges (live sessions, licenses by status) are read from
// the database: never per request or per scrape.
const FleetInterval = 30 * time.Second

// readyInterval is how often the database's readiness is checked for openconsole_database_up.
const readyInterval = 10 * time.Second

// Sources are what the metrics are read from. Service is required; the others may be nil.
type Sources struct {
	Service *openconsole.Service
	// Overloaded returns the requests refused for want of an in-flight slot (api.Server.Overloaded).
	Overloaded func() uint64
	// Store is the database: its pools, its readiness and its group-commit batches.
	Store *sqlstore.Store
	// PasswordQueue returns the password checks waiting for a slot, when the service bounds them
	// (nil: openconsole_password_hash_queue is not exported).
	PasswordQueue func() int
}

// Metrics is a registry of OpenConsole's metrics with its HTTP request metrics.
type Metrics struct {
	reg     *prometheus.Registry
	src     Sources
	log     *slog.Logger
	routes  map[string]*Route // resolved by Prepare; read-only afterwards
	dynamic sync.Map          // pattern -> *Route, for routes first seen while serving
	other   *Route

	batchSize, batchSeconds prometheus.Histogram

	fleet struct {
		sync.Mutex
		ok       bool
		at       time.Time
		stats    openconsole.Stats
		upToDate atomic.Bool // the last readiness check succeeded
	}
	stop chan struct{}
	done sync.WaitGroup
}

// New returns the metrics of src. Call Start to begin reading the fleet gauges and Close to stop.
func New(src Sources, log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.Default()
	}
	m := &Metrics{reg: prometheus.NewRegistry(), src: src, log: log, routes: make(map[string]*Route), stop: make(chan struct{})}
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "openconsole_group_commit_batch_updates",
		Help:    "Updates committed together in one group-commit transaction.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 9), // 1 .. 256, the batch bound
	})
	m.batchSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "openconsole_group_commit_duration_seconds",
		Help:    "Time of one group-commit transaction, from its start to the last answer (the durable commit included).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	m.other = m.newRoute("other")
	m.reg.MustRegister(m.batchSize, m.batchSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&collector{m: m})
	if src.Store != nil {
		src.Store.SetBatchObserver(m)
	}
	return m
}

// Handler serves the metrics in the Prometheus text format (or protobuf, as the scraper asks).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelWarn)})
}

// Registry returns the registry, for tests that gather it directly.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// RouteShards is how many copies of its counters a route keeps. Requests served at once on
// different cores would otherwise all add to the same few counters, and a counter that moves
// between cores' caches on every request costs more than the rest of the metrics together; each
// request adds to the shard its caller names (the observer's pooled recorders, which stay with
// the core that made them, each carry one), and a scrape sums them.
const RouteShards = 16

// latencyBuckets are the upper bounds of openconsole_http_request_duration_seconds.
var latencyBuckets = [...]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// routeShard is one copy of a route's counters, padded so that no two shards share a cache line.
type routeShard struct {
	codes   [6]atomic.Uint64                       // by status / 100; [0] for anything outside 100..599
	buckets [len(latencyBuckets) + 1]atomic.Uint64 // requests by the first bound at or above their latency; the last: above all
	sumNS   atomic.Int64                           // their latencies added up
	_       [64]byte
}

// Route is the request metrics of one route, resolved once: observing a request costs no lookup,
// no allocation and three atomic adds on its shard.
type Route struct {
	pattern string
	shards  [RouteShards]routeShard
}

var codeClasses = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

func (m *Metrics) newRoute(pattern string) *Route { return &Route{pattern: pattern} }

// Prepare resolves the metrics of the given route patterns, before serving starts.
func (m *Metrics) Prepare(patterns ...string) {
	for _, p := range patterns {
		if _, ok := m.routes[p]; !ok {
			m.routes[p] = m.newRoute(p)
		}
	}
}

// Route returns the metrics of a route pattern; "" is the route of requests no route claimed. A
// pattern not prepared is resolved on first use (the operator API's and the web console's routes,
// which are not on the devices' hot path); the set of patterns is the servers' routes, so it stays
// small.
func (m *Metrics) Route(pattern string) *Route {
	if pattern == "" {
		return m.other
	}
	if r, ok := m.routes[pattern]; ok {
		return r
	}
	if r, ok := m.dynamic.Load(pattern); ok {
		return r.(*Route)
	}
	r, _ := m.dynamic.LoadOrStore(pattern, m.newRoute(pattern))
	return r.(*Route)
}

// Observe counts a request answered with status after d, in shard (any number: it is taken modulo
// RouteShards).
func (r *Route) Observe(shard uint32, status int, d time.Duration) {
	sh := &r.shards[shard%RouteShards]
	c := status / 100
	if c < 1 || c > 5 {
		c = 0
	}
	sh.codes[c].Add(1)
	secs := d.Seconds()
	b := 0
	for b < len(latencyBuckets) && secs > latencyBuckets[b] {
		b++
	}
	sh.buckets[b].Add(1)
	sh.sumNS.Add(int64(d))
}

// collect sends the route's request counter by status class and its latency histogram.
func (r *Route) collect(ch chan<- prometheus.Metric) {
	var codes [6]uint64
	var buckets [len(latencyBuckets) + 1]uint64
	var sum int64
	for i := range r.shards {
		sh := &r.shards[i]
		for c := range codes {
			codes[c] += sh.codes[c].Load()
		}
		for b := range buckets {
			buckets[b] += sh.buckets[b].Load()
		}
		sum += sh.sumNS.Load()
	}
	for c, class := range codeClasses {
		ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(codes[c]), r.pattern, class)
	}
	cumulative := make(map[float64]uint64, len(latencyBuckets))
	var count uint64
	for b, le := range latencyBuckets {
		count += buckets[b]
		cumulative[le] = count
	}
	count += buckets[len(latencyBuckets)]
	ch <- prometheus.MustNewConstHistogram(descLatency, count, time.Duration(sum).Seconds(), cumulative, r.pattern)
}

// eachRoute calls f with every route resolved so far.
func (m *Metrics) eachRoute(f func(*Route)) {
	for _, r := range m.routes {
		f(r)
	}
	m.dynamic.Range(func(_, v any) bool {
		f(v.(*Route))
		return true
	})
	f(m.other)
}

// ObserveBatch implements sqlstore.BatchObserver.
func (m *Metrics) ObserveBatch(updates int, d time.Duration) {
	m.batchSize.Observe(float64(updates))
	m.batchSeconds.Observe(d.Seconds())
}

// Start begins the background reads of the database: its readiness every 10 s and the fleet
// gauges every FleetInterval, the first ones at once.
func (m *Metrics) Start() {
	if m.src.Store == nil {
		return
	}
	m.done.Add(1)
	go func() {
		defer m.done.Done()
		m.checkReady()
		m.readFleet()
		ready := time.NewTicker(readyInterval)
		fleet := time.NewTicker(FleetInterval)
		defer ready.Stop()
		defer fleet.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-ready.C:
				m.checkReady()
			case <-fleet.C:
				m.readFleet()
			}
		}
	}()
}

// Close stops the background reads.
func (m *Metrics) Close() {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	m.done.Wait()
}

func (m *Metrics) checkReady() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.fleet.upToDate.Store(m.src.Store.Ready(ctx) == nil)
}

func (m *Metrics) readFleet() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := m.src.Service.Stats(ctx)
	m.fleet.Lock()
	defer m.fleet.Unlock()
	if err != nil {
		m.log.Warn("metrics: read fleet statistics", "err", err)
		return
	}
	m.fleet.ok, m.fleet.at, m.fleet.stats = true, time.Now(), st
}

// collector reads the domain's and the store's counters at scrape time.
type collector struct{ m *Metrics }

var (
	descRequests = prometheus.NewDesc("openconsole_http_requests_total",
		"HTTP requests answered, by route pattern and status class.", []string{"route", "code"}, nil)
	descLatency = prometheus.NewDesc("openconsole_http_request_duration_seconds",
		"Time from a request's arrival at the handler to its answer, by route pattern.", []string{"route"}, nil)
	descActivations = prometheus.NewDesc("openconsole_activations_total",
		"Activations by mode (key, serial, bearer) and outcome: the HTTP status and a reason (each 403 refusal has its own).",
		[]string{"mode", "status", "reason"}, nil)
	descValidates = prometheus.NewDesc("openconsole_validates_total",
		"Validates by result: valid, invalid (unknown, revoked, expired or idle session) and error (the store failed).",
		[]string{"result"}, nil)
	descCacheSessions = prometheus.NewDesc("openconsole_cache_sessions", "Sessions held in the validate cache.", nil, nil)
	descCacheHits     = prometheus.NewDesc("openconsole_cache_hits_total", "Session lookups answered by the validate cache.", nil, nil)
	descCacheMisses   = prometheus.NewDesc("openconsole_cache_misses_total", "Session lookups the validate cache sent to the database.", nil, nil)
	descPollLag       = prometheus.NewDesc("openconsole_change_poll_lag_seconds",
		"Time since the last successful poll of the change log began: how far the validate cache may lag changes made elsewhere.", nil, nil)
	descThrottled = prometheus.NewDesc("openconsole_throttled_total",
		"Requests refused by an abuse limit (activation_per_addr, login_per_user, login_per_addr) or for want of an in-flight slot (in_flight).",
		[]string{"limit"}, nil)
	descHashActive = prometheus.NewDesc("openconsole_password_hashes_in_progress", "Password hash computations (argon2id) running now.", nil, nil)
	descHashTotal  = prometheus.NewDesc("openconsole_password_hashes_total", "Password hash computations (argon2id) done.", nil, nil)
	descHashQueue  = prometheus.NewDesc("openconsole_password_hash_queue", "Password checks waiting for a free slot.", nil, nil)
	descDBConns    = prometheus.NewDesc("openconsole_db_connections", "Open database connections by pool and state (in_use, idle).", []string{"pool", "state"}, nil)
	descDBMax      = prometheus.NewDesc("openconsole_db_max_open_connections", "The bound on a pool's open connections.", []string{"pool"}, nil)
	descDBWaits    = prometheus.NewDesc("openconsole_db_waits_total", "Times a request waited for a free connection of a pool.", []string{"pool"}, nil)
	descDBWaitSecs = prometheus.NewDesc("openconsole_db_wait_seconds_total", "Time requests waited for a free connection of a pool.", []string{"pool"}, nil)
	descDBUp       = prometheus.NewDesc("openconsole_database_up",
		"1 when the last readiness check (every 10 s) found the database answering and its schema current, else 0.", nil, nil)
	descLive = prometheus.NewDesc("openconsole_sessions_live",
		"Seats held on active licenses: live sessions, and idle ones until a sweep ends them (read every 30 s).", nil, nil)
	descLicenses = prometheus.NewDesc("openconsole_licenses", "Licenses by status (read every 30 s).", []string{"status"}, nil)
	descFleetAge = prometheus.NewDesc("openconsole_fleet_stats_age_seconds", "Age of the fleet gauges (openconsole_sessions_live, openconsole_licenses).", nil, nil)
	descBuild    = prometheus.NewDesc("openconsole_build_info", "The running build: module version, VCS revision and time, Go version. Always 1.",
		[]string{"version", "revision", "built", "goversion"}, nil)
)

// LicenseStatuses are the statuses openconsole_licenses reports, each also when it counts none.
var LicenseStatuses = []openconsole.LicenseStatus{openconsole.StatusActive, openconsole.StatusSuspended, openconsole.StatusExpired, openconsole.StatusRevoked}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descLatency, descActivations, descValidates, descCacheSessions, descCacheHits, descCacheMisses,
		descPollLag, descThrottled, descHashActive, descHashTotal, descHashQueue, descDBConns, descDBMax, descDBWaits, descDBWaitSecs,
		descDBUp, descLive, descLicenses, descFleetAge, descBuild} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	m.eachRoute(func(r *Route) { r.collect(ch) })
	cnt := m.src.Service.Counters()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for mode := range openconsole.NumActivationModes {
		for o := range openconsole.NumActivationOutcomes {
			info := openconsole.ActivationOutcomes[o]
			counter(descActivations, cnt.Activations[mode][o].Load(), openconsole.ActivationModeNames[mode], info.Status, info.Reason)
		}
	}
	for r := range openconsole.NumValidateResults {
		counter(descValidates, cnt.Validates[r].Load(), openconsole.ValidateResultNames[r])
	}
	gauge(descCacheSessions, float64(m.src.Service.CachedSessions()))
	counter(descCacheHits, cnt.CacheHits.Load())
	counter(descCacheMisses, cnt.CacheMisses.Load())
	if lag, ok := m.src.Service.ChangePollLag(); ok {
		gauge(descPollLag, lag.Seconds())
	}
	for l := range openconsole.NumThrottleLimits {
		counter(descThrottled, cnt.Throttled[l].Load(), openconsole.ThrottleLimitNames[l])
	}
	if m.src.Overloaded != nil {
		counter(descThrottled, m.src.Overloaded(), "in_flight")
	}
	active, total := openconsole.PasswordHashStats()
	gauge(descHashActive, float64(active))
	counter(descHashTotal, total)
	if m.src.PasswordQueue != nil {
		gauge(descHashQueue, float64(m.src.PasswordQueue()))
	}
	if m.src.Store != nil {
		for _, p := range m.src.Store.Pools() {
			gauge(descDBConns, float64(p.InUse), p.Name, "in_use")
			gauge(descDBConns, float64(p.Idle), p.Name, "idle")
			gauge(descDBMax, float64(p.MaxOpenConnections), p.Name)
			counter(descDBWaits, uint64(p.WaitCount), p.Name)
			ch <- prometheus.MustNewConstMetric(descDBWaitSecs, prometheus.CounterValue, p.WaitDuration.Seconds(), p.Name)
		}
		up := 0.0
		if m.fleet.upToDate.Load() {
			up = 1
		}
		gauge(descDBUp, up)
	}
	m.fleet.Lock()
	ok, at, st := m.fleet.ok, m.fleet.at, m.fleet.stats
	m.fleet.Unlock()
	if ok {
		gauge(descLive, float64(st.HeldSeats))
		for _, s := range LicenseStatuses {
			gauge(descLicenses, float64(st.Licenses[s]), string(s))
		}
		gauge(descFleetAge, time.Since(at).Seconds())
	}
	b := ReadBuild()
	gauge(descBuild, 1, b.Version, b.Revision, b.Time, b.GoVersion)
}

// Build describes the running binary, from its embedded build information.
type Build struct {
	Version   string `json:"version"`   // the module version: (devel) for a build from a checkout
	Revision  string `json:"revision"`  // the VCS commit, with "-dirty" when the tree had changes
	Time      string `json:"built"`     // the commit's time (RFC 3339), the nearest to a build time Go records
	GoVersion string `json:"goVersion"` // the Go toolchain
}

// ReadBuild returns the build information of the running binary (fields it lacks are "unknown").
func ReadBuild() Build {
	b := Build{Version: "unknown", Revision: "unknown", Time: "unknown", GoVersion: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.GoVersion = bi.GoVersion
	if bi.Main.Version != "" {
		b.Version = bi.Main.Version
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && !strings.HasSuffix(b.Revision, "-dirty") && b.Revision != "unknown" {
		b.Revision += "-dirty"
	}
	return b
}
