package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeConsole answers with what the test sets and records each request.
type fakeConsole struct {
	mu       sync.Mutex
	handler  func(w http.ResponseWriter, r *http.Request, body string)
	requests []recorded
}

type recorded struct {
	method, path, body, session, auth string
	hasSession                        bool
}

func (f *fakeConsole) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	v, has := r.Header["X-Session-Id"]
	rec := recorded{method: r.Method, path: r.URL.RequestURI(), body: string(b), auth: r.Header.Get("Authorization"), hasSession: has}
	if has {
		rec.session = v[0]
	}
	f.mu.Lock()
	f.requests = append(f.requests, rec)
	h := f.handler
	f.mu.Unlock()
	h(w, r, string(b))
}

func (f *fakeConsole) last() recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

func (f *fakeConsole) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func (f *fakeConsole) set(h func(w http.ResponseWriter, r *http.Request, body string)) {
	f.mu.Lock()
	f.handler = h
	f.mu.Unlock()
}

func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func session(id string, ts int64) string {
	b, _ := json.Marshal(map[string]any{"id": id, "timestamp": ts})
	return string(b)
}

const (
	s1 = "74c3b620-6048-4bfd-9bf7-c9857a001694"
	s2 = "84c3b620-6048-4bfd-9bf7-c9857a001695"
	l1 = "AC75-267F-EF82-3731-AA42"
)

func newTestClient(t *testing.T) (*Client, *fakeConsole, *[]string) {
	t.Helper()
	fc := &fakeConsole{}
	srv := httptest.NewServer(fc)
	t.Cleanup(srv.Close)
	st, err := OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	c := &Client{BaseURL: srv.URL + "/", State: st, Warn: func(m string) { warnings = append(warnings, m) }}
	return c, fc, &warnings
}

func activated200(id string, ts int64, key string) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, r *http.Request, body string) {
		reply(w, 200, `{"statusCode":200,"statusText":"OK","data":{"sessionId":`+session(id, ts)+`,"licenseKey":"`+key+`"}}`)
	}
}

func TestActivateKeyThenAlreadyActive(t *testing.T) {
	c, fc, _ := newTestClient(t)
	ctx := context.Background()
	fc.set(activated200(s1, 100, l1))
	a, err := c.Activate(ctx, Credentials{Key: l1})
	if err != nil {
		t.Fatal(err)
	}
	if !a.New || a.License != l1 || a.Session.ID != s1 || a.Session.Timestamp != 100 {
		t.Errorf("activation %+v", a)
	}
	if r := fc.last(); r.path != "/api/v2/device/license/activate" || r.body != `{"licenseKey":"`+l1+`"}` || r.hasSession {
		t.Errorf("first activation sent %+v; want the key and no X-Session-Id", r)
	}
	// Second time: the stored key and session go out, a 204 keeps them.
	fc.set(func(w http.ResponseWriter, r *http.Request, _ string) {
		w.Header().Set("X-Session-Id", session(s1, 100))
		w.WriteHeader(204)
	})
	a, err = c.Activate(ctx, Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	if a.New || a.License != l1 || a.Session.ID != s1 {
		t.Errorf("re-activation %+v", a)
	}
	if r := fc.last(); r.session != s1 || !strings.Contains(r.body, l1) {
		t.Errorf("re-activation sent %+v; want the stored key and session", r)
	}
}

func TestActivateBearerAndSerial(t *testing.T) {
	c, fc, _ := newTestClient(t)
	fc.set(activated200(s1, 5, "L3-KEY-0001"))
	a, err := c.Activate(context.Background(), Credentials{Bearer: "jwt.token.here"})
	if err != nil {
		t.Fatal(err)
	}
	if r := fc.last(); r.body != "null" || r.auth != "Bearer jwt.token.here" || r.hasSession {
		t.Errorf("bearer activation sent %+v; want body null, the bearer and no session (as Core)", r)
	}
	if a.License != "L3-KEY-0001" {
		t.Errorf("license %q, want the one the console drew", a.License)
	}
	fc.set(activated200(s2, 6, "SN123456789"))
	if _, err := c.Activate(context.Background(), Credentials{Serial: "SN123456789"}); err != nil {
		t.Fatal(err)
	}
	if r := fc.last(); r.body != `{"licenseKey":"SN123456789"}` || r.session != s1 {
		t.Errorf("serial activation sent %+v", r)
	}
	if _, err := c.Activate(context.Background(), Credentials{Key: "a", Serial: "b"}); err == nil {
		t.Error("two credentials accepted")
	}
}

func TestActivateErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("nothing stored", func(t *testing.T) {
		c, fc, _ := newTestClient(t)
		if _, err := c.Activate(ctx, Credentials{}); !errors.Is(err, ErrNotActivated) {
			t.Errorf("err %v, want ErrNotActivated", err)
		}
		if fc.count() != 0 {
			t.Error("called the console with nothing to send")
		}
	})
	t.Run("403", func(t *testing.T) {
		c, fc, _ := newTestClient(t)
		fc.set(func(w http.ResponseWriter, r *http.Request, _ string) {
			reply(w, 403, `{"reason":"License found but maximum activations reached","statusCode":403,"statusText":"Forbidden"}`)
		})
		_, err := c.Activate(ctx, Credentials{Key: l1})
		var ae *APIError
		if !errors.Is(err, ErrRefused) || !errors.As(err, &ae) || ae.Status != 403 || ae.Reason != "License found but maximum activations reached" {
			t.Errorf("err %v, want APIError 403 with the reason", err)
		}
		if k, _ := c.State.License(); k != "" {
			t.Error("a refused activation stored the key")
		}
	})
	t.Run("403 with control characters", func(t *testing.T) {
		c, fc, _ := newTestClient(t)
		fc.set(func(w http.ResponseWriter, r *http.Request, _ string) {
			reply(w, 403, `{"reason":"bad\u001b[31m red\nline","statusCode":403,"statusText":"Forbidden"}`)
		})
		_, err := c.Activate(ctx, Credentials{Key: l1})
		var ae *APIError
		if !errors.As(err, &ae) || ae.Reason != "bad[31m redline" {
			t.Errorf("reason %q, want the control characters removed", ae.Reason)
		}
	})
	t.Run("500", func(t *testing.T) {
		c, fc, _ := newTestClient(t)
		fc.set(func(w http.ResponseWriter, r *http.Request, _ string) {
			reply(w, 500, `{"reason":"Could not validate device activation"}`)
		})
		if _, err := c.Activate(ctx, Credentials{Key: l1}); !errors.Is(err, ErrUnavailable) || !Retryable(err) {
			t.Errorf("err %v, want ErrUnavailable", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		st, _ := OpenState(t.TempDir())
		c := &Client{BaseURL: "http://127.0.0.1:1", State: st}
		if _, err := c.Activate(ctx, Credentials{Key: l1}); !errors.Is(err, ErrUnavailable) {
			t.Errorf("err %v, want ErrUnavailable", err)
		}
	})
	for name, body := range map[string]string{
		"no body":           ``,
		"string session":    `{"statusCode":200,"statusText":"OK","data":{"sessionId":"` + s1 + `","licenseKey":"k"}}`,
		"no license":        `{"statusCode":200,"statusText":"OK","data":{"sessionId":` + session(s1, 1) + `}}`,
		"status mismatch":   `{"statusCode":201,"statusText":"OK","data":{"sessionId":` + session(s1, 1) + `,"licenseKey":"k"}}`,
		"not json":          `<html>`,
		"data null":         `{"statusCode":200,"data":null}`,
		"unexpected status": ``,
	} {
		t.Run(name, func(t *testing.T) {
			c, fc, _ := newTestClient(t)
			status := 200
			if name == "unexpected status" {
				status = 302
			}
			fc.set(func(w http.ResponseWriter, r *http.Request, _ string) { reply(w, status, body) })
			_, err := c.Activate(ctx, Credentials{Key: l1})
			if err == nil {
				t.Fatal("accepted")
			}
			if name != "unexpected status" && !errors.Is(err, ErrProtocol) {
				t.Errorf("err %v, want ErrProtocol", err)
			}
		})
	}
	t.Run("204 without a stored session", func(t *testing.T) {
		c, fc, _ := newTestClient(t)
		fc.set(func(w http.ResponseWriter, r *http.Request, _ string) { w.WriteHeader(204) })
		if _, err := c.Activate(ctx, Credentials{Key: l1}); !errors.Is(err, ErrProtocol) {
			t.Errorf("err %v, want ErrProtocol (Core: already active, but nothing stored)", err)
		}
	})
}

func TestOlderSessionWarnsAndKeepsStored(t *testing.T) {
	c, fc, warnings := newTestClient(t)
	ctx := context.Background()
	fc.set(activated200(s1, 1000, l1))
	if _, err := c.Activate(ctx, Credentials{Key: l1}); err != nil {
		t.Fatal(err)
	}
	// A 200 whose session is older than the stored one: Core's rule keeps the stored session.
	fc.set(activated200(s2, 999, l1))
	a, err := c.Activate(ctx, Credentials{Key: l1})
	if err != nil {
		t.Fatal(err)
	}
	if a.Session.ID != s1 || a.Session.Timestamp != 1000 {
		t.Errorf("stored %+v, want the newer %s kept", a.Session, s1)
	}
	if len(*warnings) != 1 || !strings.Contains((*warnings)[0], "older") {
		t.Errorf("warnings %q, want one about an older session", *warnings)
	}
	// A header on any answer, an error included, is adopted when newer.
	fc.set(func(w http.ResponseWriter, r *http.Request, _ string) {
		w.Header().Set("X-Session-Id", session(s2, 2000))
		reply(w, 404, `{"reason":"Not Found","statusCode":404,"statusText":"Not Found"}`)
	})
	if _, err := c.Manifest(ctx, "tech.flecs.x", "1.0.0"); !errors.Is(err, ErrRefused) {
		t.Errorf("manifest 404: %v, want ErrRefused", err)
	}
	if s, _ := c.State.Session(); s.ID != s2 || s.Timestamp != 2000 {
		t.Errorf("session after a newer header: %+v", s)
	}
	// A header that is not a session object changes nothing.
	fc.set(func(w http.ResponseWriter, r *http.Request, _ string) {
		w.Header().Set("X-Session-Id", s1)
		reply(w, 200, `{"statusCode":200,"statusText":"OK","data":{"isValid":true}}`)
	})
	if ok, err := c.Validate(ctx); err != nil || !ok {
		t.Fatalf("validate = %v, %v", ok, err)
	}
	if s, _ := c.State.Session(); s.ID != s2 {
		t.Errorf("a bare UUID header replaced the session: %+v", s)
	}
}

func TestValidateManifestToken(t *testing.T) {
	c, fc, _ := newTestClient(t)
	ctx := context.Background()
	if _, err := c.Validate(ctx); !errors.Is(err, ErrNotActivated) || fc.count() != 0 {
		t.Errorf("validate without a session: %v (%d calls), want ErrNotActivated and no call", err, fc.count())
	}
	// Without a session, manifests and tokens go out with an empty X-Session-Id, as Core sends them.
	fc.set(func(w http.ResponseWriter, r *http.Request, _ string) {
		reply(w, 403, `{"reason":"Session not found","statusCode":403,"statusText":"Forbidden"}`)
	})
	if _, err := c.Token(ctx, "tech.flecs.official", "1.0.0"); !errors.Is(err, ErrRefused) {
		t.Errorf("token without a session: %v", err)
	}
	if r := fc.last(); !r.hasSession || r.session != "" {
		t.Errorf("token without a session sent %+v; want an empty X-Session-Id", r)
	}
	c.State.SetSession(Session{ID: s1, HasID: true, Timestamp: 1, HasTimestamp: true})
	for _, tc := range []struct{ valid string }{{"true"}, {"false"}} {
		fc.set(func(w http.ResponseWriter, r *http.Request, _ string) {
			reply(w, 200, `{"statusCode":200,"statusText":"OK","data":{"isValid":`+tc.valid+`}}`)
		})
		ok, err := c.Validate(ctx)
		if err != nil || ok != (tc.valid == "true") {
			t.Errorf("validate = %v, %v; want %s", ok, err, tc.valid)
		}
		if r := fc.last(); r.path != "/api/v2/device/license/validate" || r.session != s1 {
			t.Errorf("validate sent %+v", r)
		}
	}
	fc.set(func(w http.ResponseWriter, r *http.Request, _ string) {
		reply(w, 200, `{"statusCode":200,"statusText":"OK","data":{}}`)
	})
	if _, err := c.Validate(ctx); !errors.Is(err, ErrProtocol) {
		t.Errorf("validate without isValid: %v, want ErrProtocol", err)
	}
	fc.set(func(w http.ResponseWriter, r *http.Request, _ string) {
		reply(w, 200, `{"statusCode":200,"statusText":"OK","data":{"_schemaVersion":"3.0.0","app":"tech.flecs.official"}}`)
	})
	m, err := c.Manifest(ctx, "tech.flecs.official", "1.0.0+b")
	if err != nil || !strings.Contains(string(m), `"_schemaVersion":"3.0.0"`) {
		t.Errorf("manifest = %s, %v", m, err)
	}
	if r := fc.last(); r.path != "/api/v2/manifests/tech.flecs.official/1.0.0+b?max_manifest_version=3.0.0" || r.session != s1 {
		t.Errorf("manifest sent %+v", r)
	}
	fc.set(func(w http.ResponseWriter, r *http.Request, _ string) {
		reply(w, 200, `{"statusCode":200,"statusText":"OK","data":{"token":{"username":"u","password":"p"}}}`)
	})
	tok, err := c.Token(ctx, "tech.flecs.official", "1.0.0")
	if err != nil || tok == nil || tok.Username != "u" || tok.Password != "p" {
		t.Errorf("token = %+v, %v", tok, err)
	}
	if r := fc.last(); r.body != `{"app":"tech.flecs.official","version":"1.0.0"}` {
		t.Errorf("token sent %+v", r)
	}
	fc.set(func(w http.ResponseWriter, r *http.Request, _ string) { w.WriteHeader(204) })
	if tok, err := c.Token(ctx, "tech.flecs.community", "1.0.0"); err != nil || tok != nil {
		t.Errorf("token 204 = %+v, %v; want none needed", tok, err)
	}
	fc.set(func(w http.ResponseWriter, r *http.Request, _ string) {
		reply(w, 200, `{"statusCode":200,"statusText":"OK","data":{"username":"u","password":"p"}}`)
	})
	if _, err := c.Token(ctx, "tech.flecs.official", "1.0.0"); !errors.Is(err, ErrProtocol) {
		t.Errorf("token without the token wrapper: %v, want ErrProtocol (Core rejects it)", err)
	}
}

func TestBackoff(t *testing.T) {
	min, max := time.Second, 8*time.Second
	for _, tc := range []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{1, 0, 500 * time.Millisecond}, {1, 0.999999, time.Second - time.Microsecond},
		{2, 0, time.Second}, {3, 0.5, 3 * time.Second}, {4, 0, 4 * time.Second}, {10, 0, 4 * time.Second}, {60, 0.5, 6 * time.Second},
	} {
		got := Backoff(tc.n, min, max, tc.r)
		if d := got - tc.want; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("Backoff(%d, r=%v) = %v, want %v", tc.n, tc.r, got, tc.want)
		}
	}
}

// TestRunBacksOffAndRecovers drives Run with an injected sleep: the console fails three times,
// then recovers; the waits grow, are jittered, and reset after the recovery.
func TestRunBacksOffAndRecovers(t *testing.T) {
	c, fc, _ := newTestClient(t)
	var mu sync.Mutex
	calls := 0
	fc.set(func(w http.ResponseWriter, r *http.Request, _ string) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		switch {
		case strings.HasSuffix(r.URL.Path, "/activate"):
			activated200(s1, 1, l1)(w, r, "")
		case n >= 3 && n <= 5:
			reply(w, 503, `{"reason":"down"}`)
		case n == 7:
			// The console forgot the session: Run activates again with the stored key.
			reply(w, 200, `{"statusCode":200,"statusText":"OK","data":{"isValid":false}}`)
		default:
			reply(w, 200, `{"statusCode":200,"statusText":"OK","data":{"isValid":true}}`)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waits []time.Duration
	var kinds []string
	err := c.Run(ctx, RunOptions{Credentials: Credentials{Key: l1}, Interval: time.Minute, MinBackoff: time.Second, MaxBackoff: time.Hour,
		Rand: func() float64 { return 0.5 },
		Sleep: func(ctx context.Context, d time.Duration) error {
			waits = append(waits, d)
			if len(waits) == 8 {
				cancel()
				return ctx.Err()
			}
			return nil
		},
		OnEvent: func(e Event) { kinds = append(kinds, e.Kind) }})
	if err != nil {
		t.Fatal(err)
	}
	wantKinds := "activated valid backoff backoff backoff valid invalid activated valid"
	if got := strings.Join(kinds, " "); got != wantKinds {
		t.Errorf("events %q, want %q", got, wantKinds)
	}
	want := []time.Duration{time.Minute, time.Minute, 750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second, time.Minute, time.Minute, time.Minute}
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Errorf("wait %d = %v, want %v", i, waits[i], want[i])
		}
	}
}

func TestRunStopsOnRefusal(t *testing.T) {
	c, fc, _ := newTestClient(t)
	fc.set(func(w http.ResponseWriter, r *http.Request, _ string) {
		reply(w, 403, `{"reason":"License found but invalid","statusCode":403,"statusText":"Forbidden"}`)
	})
	err := c.Run(context.Background(), RunOptions{Credentials: Credentials{Key: l1},
		Sleep: func(context.Context, time.Duration) error { t.Fatal("slept after a refusal"); return nil }})
	if !errors.Is(err, ErrRefused) {
		t.Errorf("Run = %v, want ErrRefused", err)
	}
}
