//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"openconsole/admin"
	"openconsole/sqlstore/sqlstoretest"
)

// The device binary, built once per test run next to the server's.
var ocdevBinary struct {
	once sync.Once
	path string
	err  error
}

func buildOcdev(t *testing.T) string {
	t.Helper()
	bin := buildBinary(t) // also makes the directory
	ocdevBinary.once.Do(func() {
		ocdevBinary.path = filepath.Join(filepath.Dir(bin), "ocdev")
		args := []string{"build", "-o", ocdevBinary.path}
		if raceEnabled() {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "../ocdev")...).CombinedOutput()
		if err != nil {
			ocdevBinary.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if ocdevBinary.err != nil {
		t.Fatalf("build ocdev: %v", ocdevBinary.err)
	}
	return ocdevBinary.path
}

// ocdev runs the device binary with its state in dir and returns its exit code and stdout.
func ocdev(t *testing.T, bin, dir string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, append(args, "--state", dir)...)
	cmd.Env = childEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ocdev %s: %v", strings.Join(args, " "), err)
	}
	if code != 0 && code != 3 {
		t.Logf("ocdev %s: exit %d\n%s", strings.Join(args, " "), code, stderr.String())
	}
	return code, stdout.String()
}

type ocdevStatus struct {
	Valid    bool       `json:"valid"`
	Mode     string     `json:"mode"`
	License  string     `json:"license"`
	NotAfter *time.Time `json:"notAfter"`
}

func deviceStatus(t *testing.T, bin, dir string) ocdevStatus {
	t.Helper()
	code, out := ocdev(t, bin, dir, "status", "--json")
	var s ocdevStatus
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil {
		t.Fatalf("ocdev status --json: exit %d\n%s", code, out)
	}
	return s
}

// TestOfflineRoundTripWithBinaries: ocdev offline request, openconsole offline issue, ocdev
// offline install, ocdev status valid; the certificate's session validates online; the same after
// the server restarts; then the device deactivates and the proof frees the seat.
func TestOfflineRoundTripWithBinaries(t *testing.T) {
	bin, dev := buildBinary(t), buildOcdev(t)
	for _, engine := range sqlstoretest.Engines() {
		t.Run(engine, func(t *testing.T) {
			e := &e2e{bin: bin, dsn: sqlstoretest.DSN(t, engine)}
			srv := startServer(t, bin, e.dsn)
			var lic licenseJSONOut
			e.cli(t, &lic, "", "license", "create", "--seats", "1")
			var key admin.OfflineKeyJSON
			e.cli(t, &key, "", "offline", "key")

			dir, files := t.TempDir(), t.TempDir()
			req, cert := filepath.Join(files, "req.note"), filepath.Join(files, "cert.note")
			if code, _ := ocdev(t, dev, dir, "offline", "request", "--key", lic.Key, "--out", req); code != 0 {
				t.Fatalf("ocdev offline request: exit %d", code)
			}
			if b, _ := os.ReadFile(req); bytes.Contains(b, []byte(lic.Key)) {
				t.Fatal("the request carries the license key")
			}
			var issued issuedOut
			e.cli(t, &issued, "", "offline", "issue", "--request", req, "--ttl", "30d", "--out", cert)
			if code, out := ocdev(t, dev, dir, "offline", "install", cert, "--pin", key.Verifier); code != 0 {
				t.Fatalf("ocdev offline install: exit %d %s", code, out)
			}
			s := deviceStatus(t, dev, dir)
			if !s.Valid || s.Mode != "offline" || s.NotAfter == nil || !s.NotAfter.Equal(time.Time(issued.Record.NotAfter)) {
				t.Fatalf("ocdev status after install: %+v; issued %+v", s, issued.Record)
			}
			if code, _ := ocdev(t, dev, dir, "validate", "--server", srv.url); code != 0 {
				t.Fatalf("ocdev validate of the certificate's session: exit %d", code)
			}

			// A restart of the server (and of the device: every ocdev run is a new process).
			srv.stop(t)
			srv = startServer(t, bin, e.dsn)
			if s := deviceStatus(t, dev, dir); !s.Valid || s.Mode != "offline" {
				t.Fatalf("ocdev status after the restart: %+v", s)
			}
			if code, _ := ocdev(t, dev, dir, "validate", "--server", srv.url); code != 0 {
				t.Fatalf("ocdev validate after the restart: exit %d", code)
			}

			// The device gives the certificate up; the proof frees the seat, once.
			proof := filepath.Join(files, "d.note")
			if code, _ := ocdev(t, dev, dir, "offline", "deactivate", "--out", proof); code != 0 {
				t.Fatalf("ocdev offline deactivate: exit %d", code)
			}
			var deact admin.DeactivatedJSON
			e.cli(t, &deact, "", "offline", "deactivate", "--proof", proof)
			if !deact.Freed {
				t.Fatalf("deactivate: %+v", deact)
			}
			if code, _, stderr := e.cliRun(t, "", "offline", "deactivate", "--proof", proof); code != 1 || !strings.Contains(stderr, "deactivated already") {
				t.Fatalf("replayed proof: exit %d %s", code, stderr)
			}
			if s := deviceStatus(t, dev, dir); s.Valid {
				t.Fatalf("ocdev status after deactivation: %+v", s)
			}
			if code, _ := ocdev(t, dev, dir, "validate", "--server", srv.url); code != 3 {
				t.Fatalf("ocdev validate after deactivation: exit %d, want 3 (not valid)", code)
			}
			var check admin.SeatCheckJSON
			e.cli(t, &check, "", "check")
			if !check.OK || check.HeldSeats != 0 {
				t.Fatalf("check: %+v", check)
			}
			srv.stop(t)
		})
	}
}
