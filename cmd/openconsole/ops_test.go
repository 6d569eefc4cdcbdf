package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"openconsole/sqlstore/sqlstoretest"
)

// inproc is `openconsole serve` running in this process through Run.
type inproc struct {
	addr, adminAddr string
	stderr          *syncBuffer
	cancel          context.CancelFunc
	done            chan int
}

// startInProcess runs serve with args (after "serve") and waits until it logs its address (and
// its admin address, with --admin-addr). It is stopped when the test ends.
func startInProcess(t *testing.T, args ...string) *inproc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &inproc{stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	wantAdmin := false
	for _, a := range args {
		wantAdmin = wantAdmin || strings.HasPrefix(a, "--admin-addr")
	}
	go func() {
		p.done <- Run(ctx, append([]string{"serve"}, args...), strings.NewReader(""), io.Discard, p.stderr)
	}()
	t.Cleanup(func() { p.stop(t) })
	for deadline := time.Now().Add(15 * time.Second); p.addr == "" || (wantAdmin && p.adminAddr == ""); time.Sleep(10 * time.Millisecond) {
		if m := listenRE.FindStringSubmatch(p.stderr.String()); m != nil {
			p.addr = m[1]
		}
		if m := adminListenRE.FindStringSubmatch(p.stderr.String()); m != nil {
			p.adminAddr = m[1]
		}
		select {
		case code := <-p.done:
			p.done <- code
			t.Fatalf("serve exited with %d before listening; stderr:\n%s", code, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not log its address; stderr:\n%s", p.stderr.String())
		}
	}
	return p
}

// stop cancels serve (as SIGTERM does) and checks it returns 0.
func (p *inproc) stop(t *testing.T) {
	t.Helper()
	p.cancel()
	select {
	case code := <-p.done:
		if code != 0 {
			t.Errorf("serve exit code %d, want 0; stderr:\n%s", code, p.stderr.String())
		}
		p.done <- code
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not stop within 20s of its cancellation")
	}
}

// call sends a request and returns the status, the body and the headers.
func call(t *testing.T, c *http.Client, method, url, body string, header ...string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// scrape fetches and parses /metrics with the Prometheus text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body, h := call(t, http.DefaultClient, "GET", url, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("GET %s: Content-Type %q, want the text format", url, ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return mfs
}

// sample returns the value of the sample of family name whose labels include want (k=v pairs); a
// histogram's value is its count. found is false when there is none.
func sample(mfs map[string]*dto.MetricFamily, name string, want ...string) (v float64, found bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// TestMetricsCountWhatHappens drives every activation outcome, validates, throttled logins and the
// group commit through a running server, then checks that /metrics parses and says so.
func TestMetricsCountWhatHappens(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		p := startInProcess(t, "--addr", "127.0.0.1:0", "--db", dsn, "--limit-activation", "1,0.001", "--limit-login-user", "1,0.001")
		base := "http://" + p.addr
		const pw = "metrics-Pass-1"
		for _, u := range []string{"u1", "u2"} {
			if r := run(t, pw+"\n", "--db", dsn, "user", "create", "--username", u, "--password-stdin"); r.code != 0 {
				t.Fatalf("user create: %s", r.stderr)
			}
		}
		var keyA, keyR, keyFull licenseJSONOut
		runJSON(t, &keyA, "--db", dsn, "license", "create", "--owner", "u1", "--seats", "1")
		runJSON(t, &keyR, "--db", dsn, "license", "create", "--seats", "1")
		runJSON(t, &keyR, "--db", dsn, "license", "revoke", keyR.Key)
		runJSON(t, &keyFull, "--db", dsn, "license", "create", "--owner", "u2", "--seats", "1")
		var sr serialJSONOut
		runJSON(t, &sr, "--db", dsn, "serial", "register", "--serial", "SN-METRICS-1", "--model", "m",
			"--manufacturer", "x", "--manufacturer-id", "1", "--date", "2025-01-01")

		c := &http.Client{Timeout: 10 * time.Second}
		statuses := map[int]int{} // of the activations
		activate := func(want int, body string, header ...string) http.Header {
			t.Helper()
			code, b, h := call(t, c, "POST", base+"/api/v2/device/license/activate", body, header...)
			if code != want {
				t.Fatalf("activate %s %v: %d %s, want %d", body, header, code, b, want)
			}
			if h.Get("X-Request-Id") == "" {
				t.Errorf("activate: no X-Request-Id in the answer")
			}
			statuses[code]++
			return h
		}
		login := func(user, password string) (int, string) {
			code, b, _ := call(t, c, "POST", base+"/api/v2/auth/login", `{"username":"`+user+`","password":"`+password+`"}`)
			return code, b
		}
		keyBody := func(k string) string { return `{"licenseKey":"` + k + `"}` }

		h := activate(200, keyBody(keyA.Key))
		var sess struct{ ID string }
		json.Unmarshal([]byte(h.Get("X-Session-Id")), &sess)
		activate(204, keyBody(keyA.Key), "X-Session-Id", sess.ID)
		activate(403, keyBody(keyA.Key))                     // max_activations
		activate(403, keyBody(keyR.Key))                     // license_invalid
		activate(200, keyBody(keyFull.Key))                  // u2's only license is full now
		activate(200, keyBody("SN-METRICS-1"))               // serial mode
		activate(403, "null")                                // missing_authorization
		activate(403, "null", "Authorization", "Basic eDp5") // invalid_authorization
		activate(403, "null", "Authorization", "Bearer not-a-token")
		code, b := login("u2", pw)
		var lr struct {
			Data struct{ JWT struct{ Token string } }
		}
		if json.Unmarshal([]byte(b), &lr); code != 200 || lr.Data.JWT.Token == "" {
			t.Fatalf("login: %d %s", code, b)
		}
		activate(403, "null", "Authorization", "Bearer "+lr.Data.JWT.Token) // no_remaining_seats
		activate(403, keyBody("AAAA-AAAA-AAAA-AAAA-AAAA"))                  // license_not_found, empties the bucket
		activate(429, keyBody("BBBB-BBBB-BBBB-BBBB-BBBB"))                  // throttled
		if code, _ := login("u1", "wrong"); code != 403 {
			t.Fatalf("wrong password: %d, want 403", code)
		}
		if code, _ := login("u1", "wrong"); code != 429 {
			t.Fatalf("second wrong password with a burst of 1: %d, want 429", code)
		}
		for _, sid := range []string{sess.ID, "3f1b6f62-0c1e-4e8a-9d3c-2a4b5c6d7e8f"} {
			call(t, c, "POST", base+"/api/v2/device/license/validate", "", "X-Session-Id", sid)
		}

		mfs := scrape(t, base+"/metrics")
		for _, w := range []struct {
			mode, status, reason string
			n                    float64
		}{
			{"key", "200", "created", 2}, {"key", "204", "still_active", 1}, {"key", "403", "max_activations", 1},
			{"key", "403", "license_invalid", 1}, {"key", "403", "license_not_found", 1}, {"key", "429", "throttled", 1},
			{"serial", "200", "created", 1}, {"bearer", "403", "missing_authorization", 1},
			{"bearer", "403", "invalid_authorization", 1}, {"bearer", "403", "token_refused", 1},
			{"bearer", "403", "no_remaining_seats", 1}, {"bearer", "200", "created", 0}, {"serial", "500", "error", 0},
		} {
			if got, ok := sample(mfs, "openconsole_activations_total", "mode", w.mode, "status", w.status, "reason", w.reason); !ok || got != w.n {
				t.Errorf("openconsole_activations_total{mode=%s,status=%s,reason=%s} = %v (found %v), want %v", w.mode, w.status, w.reason, got, ok, w.n)
			}
		}
		for _, w := range []struct {
			name   string
			labels []string
			n      float64
		}{
			{"openconsole_validates_total", []string{"result", "valid"}, 1},
			{"openconsole_validates_total", []string{"result", "invalid"}, 1},
			{"openconsole_validates_total", []string{"result", "error"}, 0},
			{"openconsole_throttled_total", []string{"limit", "activation_per_addr"}, 1},
			{"openconsole_throttled_total", []string{"limit", "login_per_user"}, 1},
			{"openconsole_throttled_total", []string{"limit", "login_per_addr"}, 0},
			{"openconsole_throttled_total", []string{"limit", "in_flight"}, 0},
			{"openconsole_http_requests_total", []string{"route", "/api/v2/device/license/activate", "code", "2xx"}, float64(statuses[200] + statuses[204])},
			{"openconsole_http_requests_total", []string{"route", "/api/v2/device/license/activate", "code", "4xx"}, float64(statuses[403] + statuses[429])},
			{"openconsole_http_requests_total", []string{"route", "/api/v2/device/license/validate", "code", "2xx"}, 2},
			{"openconsole_http_requests_total", []string{"route", "/api/v2/auth/login", "code", "4xx"}, 2},
			{"openconsole_http_request_duration_seconds", []string{"route", "/api/v2/device/license/activate"}, float64(statuses[200] + statuses[204] + statuses[403] + statuses[429])},
			{"openconsole_database_up", nil, 1},
			{"openconsole_build_info", nil, 1},
		} {
			if got, ok := sample(mfs, w.name, w.labels...); !ok || got != w.n {
				t.Errorf("%s%v = %v (found %v), want %v", w.name, w.labels, got, ok, w.n)
			}
		}
		// Every 200 activation was an Update of its own or shared a batch; the CLI's changes too.
		if n, ok := sample(mfs, "openconsole_group_commit_batch_updates"); !ok || n < 1 {
			t.Errorf("openconsole_group_commit_batch_updates count = %v (found %v), want at least 1", n, ok)
		}
		var updates float64
		for _, m := range mfs["openconsole_group_commit_batch_updates"].GetMetric() {
			updates = m.GetHistogram().GetSampleSum()
		}
		if updates < 3 {
			t.Errorf("group commit batches ran %v Updates, want at least the 3 new sessions", updates)
		}
		if n, ok := sample(mfs, "openconsole_group_commit_duration_seconds"); !ok || n < 1 {
			t.Errorf("openconsole_group_commit_duration_seconds count = %v, want at least 1", n)
		}
		hits, _ := sample(mfs, "openconsole_cache_hits_total")
		misses, _ := sample(mfs, "openconsole_cache_misses_total")
		if hits+misses < 2 {
			t.Errorf("cache hits %v + misses %v, want at least the 2 validates' lookups", hits, misses)
		}
		if _, ok := sample(mfs, "openconsole_change_poll_lag_seconds"); !ok {
			t.Errorf("no openconsole_change_poll_lag_seconds")
		}
		if n, ok := sample(mfs, "openconsole_password_hashes_total"); !ok || n < 4 {
			t.Errorf("openconsole_password_hashes_total = %v, want at least the 2 users' and 3 logins' hashes", n)
		}
		for _, name := range []string{"openconsole_db_connections", "openconsole_db_max_open_connections", "openconsole_licenses",
			"openconsole_sessions_live", "go_goroutines", "process_resident_memory_bytes"} {
			if mfs[name] == nil {
				t.Errorf("/metrics has no %s", name)
			}
		}
	})
}

// TestMetricsOff: with --metrics=false there is no /metrics, and the console API's 404 answers.
func TestMetricsOff(t *testing.T) {
	p := startInProcess(t, "--addr", "127.0.0.1:0", "--db", sqlstoretest.DSN(t, "sqlite"), "--metrics=false")
	code, body, _ := call(t, http.DefaultClient, "GET", "http://"+p.addr+"/metrics", "")
	if code != 404 || !strings.Contains(body, `"statusCode":404`) {
		t.Errorf("GET /metrics with --metrics=false: %d %s, want the console API's 404", code, body)
	}
}

// TestHealthEndpoints: /healthz and /readyz answer JSON on both listeners; /metrics is only on the
// admin listener when there is one; the console API still answers its own 404 and 405 envelopes.
func TestHealthEndpoints(t *testing.T) {
	p := startInProcess(t, "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--db", sqlstoretest.DSN(t, "sqlite"))
	for _, addr := range []string{p.addr, p.adminAddr} {
		for path, want := range map[string]string{"/healthz": `{"status":"ok"}`, "/readyz": `{"status":"ready"}`} {
			code, body, h := call(t, http.DefaultClient, "GET", "http://"+addr+path, "")
			if code != 200 || strings.TrimSpace(body) != want || h.Get("Content-Type") != "application/json" {
				t.Errorf("GET %s on %s: %d %q (%s), want 200 %s", path, addr, code, body, h.Get("Content-Type"), want)
			}
			if code, _, _ := call(t, http.DefaultClient, "POST", "http://"+addr+path, "{}"); code != 405 {
				t.Errorf("POST %s: %d, want 405", path, code)
			}
		}
	}
	if code, _, _ := call(t, http.DefaultClient, "GET", "http://"+p.addr+"/metrics", ""); code != 404 {
		t.Errorf("GET /metrics on the device listener with --admin-addr: %d, want 404", code)
	}
	scrape(t, "http://"+p.adminAddr+"/metrics")
	code, body, _ := call(t, http.DefaultClient, "GET", "http://"+p.addr+"/api/v2/nothing", "")
	if code != 404 || !strings.Contains(body, `"statusCode":404`) {
		t.Errorf("GET /api/v2/nothing: %d %s, want the 404 envelope", code, body)
	}
	code, body, _ = call(t, http.DefaultClient, "GET", "http://"+p.addr+"/api/v2/device/license/validate", "")
	if code != 405 || !strings.Contains(body, `"statusCode":405`) {
		t.Errorf("GET validate: %d %s, want the 405 envelope", code, body)
	}
}

// TestRequestID: a request id is generated and echoed; one sent by a client is ignored unless the
// server runs behind a proxy it trusts (--client-ip-header), and then kept when well-formed.
func TestRequestID(t *testing.T) {
	direct := startInProcess(t, "--addr", "127.0.0.1:0", "--db", sqlstoretest.DSN(t, "sqlite"))
	proxied := startInProcess(t, "--addr", "127.0.0.1:0", "--db", sqlstoretest.DSN(t, "sqlite"), "--client-ip-header", "X-Forwarded-For")
	url := func(p *inproc) string { return "http://" + p.addr + "/api/v2/device/license/validate" }
	_, _, h1 := call(t, http.DefaultClient, "POST", url(direct), "")
	_, _, h2 := call(t, http.DefaultClient, "POST", url(direct), "")
	if a, b := h1.Get("X-Request-Id"), h2.Get("X-Request-Id"); a == "" || a == b {
		t.Errorf("generated request ids %q and %q, want two different ones", a, b)
	}
	if _, _, h := call(t, http.DefaultClient, "POST", url(direct), "", "X-Request-Id", "from-client-1"); h.Get("X-Request-Id") == "from-client-1" {
		t.Errorf("a server not behind a proxy kept the client's request id")
	}
	if _, _, h := call(t, http.DefaultClient, "POST", url(proxied), "", "X-Request-Id", "from-proxy-1", "X-Forwarded-For", "198.51.100.9"); h.Get("X-Request-Id") != "from-proxy-1" {
		t.Errorf("behind a proxy: request id %q, want the proxy's from-proxy-1", h.Get("X-Request-Id"))
	}
	if _, _, h := call(t, http.DefaultClient, "POST", url(proxied), "", "X-Request-Id", "bad id\"x"); h.Get("X-Request-Id") == "bad id\"x" || h.Get("X-Request-Id") == "" {
		t.Errorf("behind a proxy, a malformed request id: answered %q, want a generated one", h.Get("X-Request-Id"))
	}
	proxied.stop(t)
	log := proxied.stderr.String()
	if !strings.Contains(log, "request_id=from-proxy-1") || !strings.Contains(log, "client=198.51.100.9") ||
		!strings.Contains(log, "route=/api/v2/device/license/validate") {
		t.Errorf("access log lacks the proxy's request id, the client address or the route:\n%s", log)
	}
}

// TestLogFormatJSON: --log-format json writes one JSON object per line, access lines included.
func TestLogFormatJSON(t *testing.T) {
	p := startInProcessJSON(t)
	call(t, http.DefaultClient, "POST", "http://"+p.addr+"/api/v2/device/license/validate", "")
	p.stop(t)
	var sawAccess bool
	for _, line := range strings.Split(strings.TrimSpace(p.stderr.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["msg"] == "request" {
			sawAccess = true
			for _, k := range []string{"method", "route", "status", "duration", "client", "request_id"} {
				if _, ok := m[k]; !ok {
					t.Errorf("access line %s has no %s", line, k)
				}
			}
		}
	}
	if !sawAccess {
		t.Errorf("no access line in:\n%s", p.stderr.String())
	}
}

func startInProcessJSON(t *testing.T) *inproc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &inproc{stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() {
		p.done <- Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--db", sqlstoretest.DSN(t, "sqlite"), "--log-format", "json"},
			strings.NewReader(""), io.Discard, p.stderr)
	}()
	t.Cleanup(func() { p.stop(t) })
	for deadline := time.Now().Add(15 * time.Second); p.addr == ""; time.Sleep(10 * time.Millisecond) {
		for _, line := range strings.Split(p.stderr.String(), "\n") {
			var m struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &m) == nil && m.Msg == "openconsole listening" {
				p.addr = m.Addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not log its address; stderr:\n%s", p.stderr.String())
		}
	}
	return p
}

// TestVersion: openconsole version prints the build information as JSON; /metrics has the same
// in openconsole_build_info.
func TestVersion(t *testing.T) {
	var v struct {
		Version, Revision, Built, GoVersion string
	}
	runJSON(t, &v, "version")
	if v.GoVersion != runtime.Version() || v.Version == "" || v.Revision == "" || v.Built == "" {
		t.Errorf("version printed %+v, want the Go version %s and every field set", v, runtime.Version())
	}
	p := startInProcess(t, "--addr", "127.0.0.1:0", "--db", sqlstoretest.DSN(t, "sqlite"))
	mfs := scrape(t, "http://"+p.addr+"/metrics")
	if n, ok := sample(mfs, "openconsole_build_info", "version", v.Version, "revision", v.Revision, "goversion", v.GoVersion); !ok || n != 1 {
		t.Errorf("openconsole_build_info for %+v: %v (found %v), want 1", v, n, ok)
	}
}
