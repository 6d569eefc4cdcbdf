//go:build unix

package main

// Graceful shutdown: SIGTERM in the middle of an activation storm, with slow clients whose requests
// are half sent. The server must stop accepting connections at once, finish the requests in
// flight (the slow ones included, once they complete), exit 0, and lose no activation it answered
// 200: all of them are there after a restart.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"openconsole/sqlstore/sqlstoretest"
)

// slowActivation is a key-mode activation whose body is sent in two halves: the second only once
// release is closed. The server has the request headers and is in the handler, reading the body.
type slowActivation struct {
	key  string
	conn net.Conn
	rest string
}

func startSlowActivation(addr, key string) (*slowActivation, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	body := `{"licenseKey":"` + key + `"}`
	head := fmt.Sprintf("POST /api/v2/device/license/activate HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, len(body))
	half := len(body) / 2
	if _, err := conn.Write([]byte(head + body[:half])); err != nil {
		conn.Close()
		return nil, err
	}
	return &slowActivation{key: key, conn: conn, rest: body[half:]}, nil
}

// finish sends the rest of the body and reads the answer, which must be a 200 with a new session.
func (s *slowActivation) finish() (ack, error) {
	defer s.conn.Close()
	s.conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := s.conn.Write([]byte(s.rest)); err != nil {
		return ack{}, fmt.Errorf("send the rest of the body: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(s.conn), nil)
	if err != nil {
		return ack{}, fmt.Errorf("read the answer: %w", err)
	}
	defer resp.Body.Close()
	var env struct {
		Data struct {
			SessionID  *wireSession `json:"sessionId"`
			LicenseKey string       `json:"licenseKey"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || resp.StatusCode != http.StatusOK || env.Data.SessionID == nil || env.Data.LicenseKey != s.key {
		return ack{}, fmt.Errorf("answer %d (decode: %v); want 200 with a session on %s", resp.StatusCode, err, s.key)
	}
	return ack{*env.Data.SessionID, s.key, time.Now()}, nil
}

func TestGracefulShutdown(t *testing.T) {
	bin := buildBinary(t)
	for _, engine := range sqlstoretest.Engines() {
		t.Run(engine, func(t *testing.T) {
			e := &e2e{bin: bin, dsn: sqlstoretest.DSN(t, engine), client: &http.Client{Timeout: 10 * time.Second}}
			keys, seats := stormLicenses(t, e)
			srv := startServer(t, bin, e.dsn)
			addr := strings.TrimPrefix(srv.url, "http://")

			st := startStorm(srv.url, keys, 32)
			st.waitAcks(t, 100, 30*time.Second)
			const nslow = 8
			var slow []*slowActivation
			for range nslow {
				s, err := startSlowActivation(addr, keys[0])
				if err != nil {
					t.Fatalf("slow client: %v", err)
				}
				slow = append(slow, s)
			}
			// Let the server read their headers and enter the handler.
			time.Sleep(500 * time.Millisecond)

			if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatalf("SIGTERM: %v", err)
			}
			// It stops accepting at once, but cannot exit while the slow requests are unfinished.
			deadline := time.Now().Add(5 * time.Second)
			for {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					break
				}
				c.Close()
				if time.Now().After(deadline) {
					t.Fatalf("the server still accepts connections 5s after SIGTERM")
				}
				time.Sleep(10 * time.Millisecond)
			}
			select {
			case <-srv.done:
				t.Fatalf("the server exited (%v) with %d requests in flight", srv.err, nslow)
			case <-time.After(300 * time.Millisecond):
			}

			// The slow clients finish their requests: each gets its answer.
			var wg sync.WaitGroup
			slowAcks := make([]ack, nslow)
			slowErrs := make([]error, nslow)
			for i, s := range slow {
				wg.Add(1)
				go func() {
					defer wg.Done()
					slowAcks[i], slowErrs[i] = s.finish()
				}()
			}
			wg.Wait()
			for i, err := range slowErrs {
				if err != nil {
					t.Errorf("slow request %d in flight at SIGTERM: %v", i, err)
				}
			}

			select {
			case <-srv.done:
			case <-time.After(15 * time.Second):
				t.Fatalf("the server still runs 15s after SIGTERM with no request in flight")
			}
			if srv.err != nil {
				t.Errorf("server exit after SIGTERM: %v, want exit code 0", srv.err)
			}
			if log := srv.logText(); !strings.Contains(log, `msg="shutting down"`) {
				t.Errorf("the server did not log its shutdown; log:\n%s", log)
			}
			st.halt(t)

			all := st.acked()
			for i, a := range slowAcks {
				if slowErrs[i] == nil {
					all = append(all, a)
				}
			}
			srv = startServer(t, bin, e.dsn)
			sessions := checkAcked(t, e, srv, all)
			checkSeats(t, e, seats, sessions)
			checkNewTimestamps(t, e, srv, keys[0], maxTimestamp(sessions))
			srv.stop(t)
		})
	}
}
