package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"openconsole/sqlstore/sqlstoretest"
)

var adminListenRE = regexp.MustCompile(`msg="admin console and operator API listening" addr=(\S+)`)

// TestAdminAddr: with --admin-addr the admin console and the operator API are served there only,
// and the device listener answers none of their paths; without it, both share --addr.
func TestAdminAddr(t *testing.T) {
	dsn := sqlstoretest.DSN(t, "sqlite")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--db", dsn}, strings.NewReader(""), &stdout, &stderr)
	}()
	var devices, admins string
	for deadline := time.Now().Add(10 * time.Second); devices == "" || admins == ""; time.Sleep(20 * time.Millisecond) {
		if m := listenRE.FindStringSubmatch(stderr.String()); m != nil {
			devices = m[1]
		}
		if m := adminListenRE.FindStringSubmatch(stderr.String()); m != nil {
			admins = m[1]
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d; stderr:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not log both addresses; stderr:\n%s", stderr.String())
		}
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(addr, path string) int {
		resp, err := hc.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	post := func(addr, path string) int {
		resp, err := hc.Post("http://"+addr+path, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		addr, method, path string
		want               int
	}{
		{devices, "POST", "/api/v2/device/license/validate", 200},
		{devices, "GET", "/admin/login", 404},
		{devices, "GET", "/admin/", 404},
		{devices, "GET", "/api/openconsole/v1/openapi.json", 404},
		{devices, "GET", "/api/openconsole/v1/licenses", 404},
		{admins, "GET", "/admin/login", 200},
		{admins, "GET", "/admin/", 303},
		{admins, "GET", "/api/openconsole/v1/openapi.json", 200},
		{admins, "GET", "/api/openconsole/v1/licenses", 401},
		{admins, "POST", "/api/v2/device/license/validate", 404},
	} {
		var got int
		if c.method == "GET" {
			got = get(c.addr, c.path)
		} else {
			got = post(c.addr, c.path)
		}
		if got != c.want {
			t.Errorf("%s %s on the %s listener: %d, want %d", c.method, c.path, map[bool]string{true: "device", false: "admin"}[c.addr == devices], got, c.want)
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exit code %d; stderr:\n%s", code, stderr.String())
	}
}
