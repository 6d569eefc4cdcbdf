package metrics_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"openconsole"
	"openconsole/metrics"
	"openconsole/sqlstore/sqlstoretest"
)

func gauge(t *testing.T, m *metrics.Metrics, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			return value(s), true
		}
	}
	return 0, false
}

func value(s *dto.Metric) float64 {
	switch {
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Counter != nil:
		return s.Counter.GetValue()
	}
	return 0
}

// TestFleetGauges: the fleet gauges come from the database when Start reads them (and every
// FleetInterval after), not per scrape: licenses created after the read are not in them until the
// next one.
func TestFleetGauges(t *testing.T) {
	for _, engine := range sqlstoretest.Engines() {
		t.Run(engine, func(t *testing.T) { testFleetGauges(t, engine) })
	}
}

func testFleetGauges(t *testing.T, engine string) {
	{
		ctx := context.Background()
		st := sqlstoretest.Open(t, engine)
		svc, err := openconsole.NewService(ctx, st, openconsole.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer svc.Close()
		var keys []string
		for range 3 {
			lic, err := svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 2})
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, lic.Key)
		}
		if _, err := svc.RevokeLicense(ctx, keys[2], 0); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := svc.Activate(ctx, openconsole.ActivateInput{LicenseKey: keys[0]}); err != nil {
				t.Fatal(err)
			}
		}
		m := metrics.New(metrics.Sources{Service: svc, Store: st}, nil)
		if _, ok := gauge(t, m, "openconsole_licenses", nil); ok {
			t.Errorf("fleet gauges before the first read")
		}
		m.Start()
		defer m.Close()
		// Start reads at once, in the background; wait for that read.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, ok := gauge(t, m, "openconsole_licenses", nil); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no fleet gauges 10s after Start")
			}
		}
		for status, want := range map[string]float64{"active": 2, "revoked": 1, "suspended": 0, "expired": 0} {
			if got, _ := gauge(t, m, "openconsole_licenses", map[string]string{"status": status}); got != want {
				t.Errorf("openconsole_licenses{status=%s} = %v, want %v", status, got, want)
			}
		}
		if got, _ := gauge(t, m, "openconsole_sessions_live", nil); got != 2 {
			t.Errorf("openconsole_sessions_live = %v, want 2", got)
		}
		if got, _ := gauge(t, m, "openconsole_database_up", nil); got != 1 {
			t.Errorf("openconsole_database_up = %v, want 1", got)
		}
		// Not per scrape: a license created now is not counted until the next read.
		if _, err := svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1}); err != nil {
			t.Fatal(err)
		}
		if got, _ := gauge(t, m, "openconsole_licenses", map[string]string{"status": "active"}); got != 2 {
			t.Errorf("openconsole_licenses{status=active} = %v right after a scrape-time change, want the last read's 2", got)
		}
	}
}

// TestMetricNames: every metric follows the naming rules promtool lints for.
func TestMetricNames(t *testing.T) {
	st := sqlstoretest.Open(t, "sqlite")
	svc, err := openconsole.NewService(context.Background(), st, openconsole.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	m := metrics.New(metrics.Sources{Service: svc, Store: st, PasswordQueue: func() int { return 3 }}, nil)
	m.Prepare("/api/v2/device/license/validate")
	m.Route("/api/v2/device/license/validate").Observe(0, 200, time.Millisecond)
	m.ObserveBatch(3, time.Millisecond)
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	if got, ok := gauge(t, m, "openconsole_password_hash_queue", nil); !ok || got != 3 {
		t.Errorf("openconsole_password_hash_queue = %v (found %v), want 3", got, ok)
	}
}

// TestDeployFilesNameRealMetrics: every openconsole_ metric the Grafana dashboard and the alerting
// rules in deploy/ query is one this package exports.
func TestDeployFilesNameRealMetrics(t *testing.T) {
	ctx := context.Background()
	st := sqlstoretest.Open(t, "sqlite")
	svc, err := openconsole.NewService(ctx, st, openconsole.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	m := metrics.New(metrics.Sources{Service: svc, Store: st, Overloaded: func() uint64 { return 0 }}, nil)
	m.Route("/api/v2/device/license/validate").Observe(0, 200, time.Millisecond)
	m.ObserveBatch(1, time.Millisecond)
	m.Start()
	defer m.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, ok := gauge(t, m, "openconsole_licenses", nil); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no fleet gauges 10s after Start")
		}
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]dto.MetricType{}
	for _, mf := range mfs {
		exported[mf.GetName()] = mf.GetType()
	}
	name := regexp.MustCompile(`\b(openconsole|process|go)_[a-z0-9_]+`)
	for _, file := range []string{"../deploy/grafana-dashboard.json", "../deploy/prometheus-alerts.yml"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, n := range name.FindAllString(string(b), -1) {
			base := n
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(n, suffix); ok && exported[b] == dto.MetricType_HISTOGRAM {
					base = b
				}
			}
			if _, ok := exported[base]; !ok {
				t.Errorf("%s queries %s, which is not exported", file, n)
			}
			seen++
		}
		if seen < 5 {
			t.Errorf("%s names only %d metrics", file, seen)
		}
	}
}

// TestRouteShardsSum: requests observed from many goroutines in different shards are exported as
// one counter per status class and one histogram per route, with every request counted once, in
// the right buckets (cumulative, as Prometheus reads them) and the latencies summed.
func TestRouteShardsSum(t *testing.T) {
	st := sqlstoretest.Open(t, "sqlite")
	svc, err := openconsole.NewService(context.Background(), st, openconsole.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	m := metrics.New(metrics.Sources{Service: svc}, nil)
	const route = "/api/v2/device/license/validate"
	m.Prepare(route)
	r := m.Route(route)
	const workers, each = 8, 1000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				shard := uint32(w*each + i) // every shard, and past RouteShards
				if i%4 == 0 {
					r.Observe(shard, 503, 20*time.Millisecond) // bucket le=0.025
				} else {
					r.Observe(shard, 200, 300*time.Microsecond) // bucket le=0.0005
				}
			}
		}()
	}
	wg.Wait()
	total := workers * each
	slow := total / 4
	if got, _ := gauge(t, m, "openconsole_http_requests_total", map[string]string{"route": route, "code": "2xx"}); got != float64(total-slow) {
		t.Errorf("2xx = %v, want %d", got, total-slow)
	}
	if got, _ := gauge(t, m, "openconsole_http_requests_total", map[string]string{"route": route, "code": "5xx"}); got != float64(slow) {
		t.Errorf("5xx = %v, want %d", got, slow)
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var h *dto.Histogram
	for _, mf := range mfs {
		if mf.GetName() != "openconsole_http_request_duration_seconds" {
			continue
		}
		for _, s := range mf.GetMetric() {
			if s.GetLabel()[0].GetValue() == route {
				h = s.GetHistogram()
			}
		}
	}
	if h == nil {
		t.Fatal("no latency histogram for the route")
	}
	if h.GetSampleCount() != uint64(total) {
		t.Errorf("histogram count %d, want %d", h.GetSampleCount(), total)
	}
	wantSum := float64(slow)*0.020 + float64(total-slow)*0.0003
	if d := h.GetSampleSum() - wantSum; d > 1e-6 || d < -1e-6 {
		t.Errorf("histogram sum %v, want %v", h.GetSampleSum(), wantSum)
	}
	for _, b := range h.GetBucket() {
		var want uint64
		switch {
		case b.GetUpperBound() >= 0.025:
			want = uint64(total)
		case b.GetUpperBound() >= 0.0005:
			want = uint64(total - slow)
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
}
