package admin_test

import (
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"openconsole"
	"openconsole/sqlstore/sqlstoretest"
)

// BenchmarkWebPages renders each page of the web console, server side, on a database of
// OPENCONSOLE_BENCH_LICENSES licenses (default 100,000) and OPENCONSOLE_BENCH_SESSIONS live
// sessions (default 1,000,000): half of them on one fleet license, the rest five to a license.
func BenchmarkWebPages(b *testing.B) {
	licenses, sessions := envInt(b, "OPENCONSOLE_BENCH_LICENSES", 100_000), envInt(b, "OPENCONSOLE_BENCH_SESSIONS", 1_000_000)
	for _, engine := range sqlstoretest.Engines() {
		b.Run(engine, func(b *testing.B) {
			dsn := sqlstoretest.DSN(b, engine)
			sqlstoretest.OpenDSN(b, dsn).Close() // migrate
			fleet := fillFleet(b, dsn, licenses, sessions)
			e := newWebEnv(b, dsn, openconsole.Options{})
			e.user(b, "ada", openconsole.RoleAdmin)
			for i := 0; i < 200; i++ { // an audit log to show
				if _, err := e.svc.SuspendLicense(ctx, fleet.small, 0); err != nil {
					b.Fatal(err)
				}
				if _, err := e.svc.ResumeLicense(ctx, fleet.small, 0); err != nil {
					b.Fatal(err)
				}
			}
			cookie := signInCookie(b, e)
			pages := []struct{ name, path string }{
				{"overview", "/admin/"},
				{"licenses", "/admin/licenses"},
				{"licenses-search-part", "/admin/licenses?q=" + url.QueryEscape(fleet.small[:len(fleet.small)-2])},
				{"licenses-search-none", "/admin/licenses?q=no-such-note"},
				{"licenses-search-common", "/admin/licenses?q=order"},
				{"licenses-near-limit", "/admin/licenses?near=1"},
				{"licenses-suspended", "/admin/licenses?status=suspended"},
				{"license-fleet", "/admin/licenses/" + fleet.big},
				{"license-fleet-page-100", "/admin/licenses/" + fleet.big + "?cursor=" + url.QueryEscape(fleet.bigCursor)},
				{"license-small", "/admin/licenses/" + fleet.small},
				{"users", "/admin/users"},
				{"serials", "/admin/serials"},
				{"apps", "/admin/apps"},
				{"tokens", "/admin/tokens"},
				{"audit", "/admin/audit"},
				{"audit-filtered", "/admin/audit?action=license.suspend"},
			}
			// What the overview's background refresh costs (its figures are counted at most every
			// 10 seconds, not per view): the statistics and the licenses near their seat limit.
			b.Run("overview-refresh", func(b *testing.B) {
				for b.Loop() {
					if _, err := e.svc.Stats(ctx); err != nil {
						b.Fatal(err)
					}
					for _, err := range e.svc.Licenses(ctx, openconsole.LicenseQuery{NearLimit: true, Limit: 10, Now: time.Now()}) {
						if err != nil {
							b.Fatal(err)
						}
					}
				}
			})
			for _, p := range pages {
				b.Run(p.name, func(b *testing.B) {
					req := httptest.NewRequest("GET", p.path, nil)
					req.AddCookie(cookie)
					for b.Loop() {
						rec := httptest.NewRecorder()
						e.srv.Config.Handler.ServeHTTP(rec, req)
						if rec.Code != http.StatusOK {
							b.Fatalf("GET %s: %d %s", p.path, rec.Code, rec.Body.String())
						}
					}
				})
			}
		})
	}
}

func envInt(b *testing.B, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 {
			b.Fatalf("%s=%q: want a number of at least 10", name, v)
		}
		return n
	}
	return def
}

func signInCookie(b *testing.B, e *webEnv) *http.Cookie {
	b.Helper()
	secret, _, err := e.svc.SignIn(ctx, "ada", "ada-password", "127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	return &http.Cookie{Name: "openconsole_session", Value: secret}
}

type fleetKeys struct {
	big, small, bigCursor string
}

// fillFleet writes the licenses and live sessions straight into the database, with their seat
// bookkeeping, in one transaction.
func fillFleet(b *testing.B, dsn string, licenses, sessions int) fleetKeys {
	b.Helper()
	start := time.Now()
	driver, name, pg := "pgx", dsn, true
	if strings.HasPrefix(dsn, "sqlite:") {
		driver, name, pg = "sqlite", strings.TrimPrefix(dsn, "sqlite:"), false
	}
	db, err := sql.Open(driver, name)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UnixMilli()
	big := sessions / 2
	perSmall := 5
	key := func(i int) string { return fmt.Sprintf("BENCH-%06d-%06d", i/1000000, i%1000000) }
	insert := func(head string, cols int, rows int, row func(i int) []any) {
		const batch = 500
		for lo := 0; lo < rows; lo += batch {
			n := min(batch, rows-lo)
			var q strings.Builder
			q.WriteString(head)
			args := make([]any, 0, n*cols)
			for i := 0; i < n; i++ {
				if i > 0 {
					q.WriteString(", ")
				}
				q.WriteString("(")
				for c := 0; c < cols; c++ {
					if c > 0 {
						q.WriteString(", ")
					}
					if pg {
						q.WriteString("$" + strconv.Itoa(len(args)+c+1))
					} else {
						q.WriteString("?")
					}
				}
				q.WriteString(")")
				args = append(args, row(lo+i)...)
			}
			if _, err := tx.Exec(q.String(), args...); err != nil {
				b.Fatal(err)
			}
		}
	}
	taken := func(i int) int {
		if i == 1 {
			return big
		}
		if (i-2)*perSmall < sessions-big {
			return min(perSmall, sessions-big-(i-2)*perSmall)
		}
		return 0
	}
	insert(`INSERT INTO licenses (id, key, kind, seats, created_at, updated_at, taken, note) VALUES `, 8, licenses, func(i int) []any {
		id := i + 1
		seats := 10
		if id == 1 {
			seats = sessions
		}
		return []any{id, key(id), "key", seats, now - int64(licenses-i)*1000, now, taken(id), fmt.Sprintf("order %d", 100000+id)}
	})
	insert(`INSERT INTO license_search (license_id, text) VALUES `, 2, licenses, func(i int) []any {
		return []any{i + 1, strings.ToLower(key(i+1)) + " " + fmt.Sprintf("order %d", 100000+i+1) + " "}
	})
	insert(`INSERT INTO sessions (id, license_id, ts, created_at, last_seen_at, addr) VALUES `, 6, sessions, func(i int) []any {
		lic := 1
		if i >= big {
			lic = 2 + (i-big)/perSmall
		}
		ts := now - int64(sessions-i)
		return []any{fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i), lic, ts, ts, ts, "192.0.2.1"}
	})
	hour := now / 3_600_000
	insert(`INSERT INTO activation_hours (hour, n) VALUES `, 2, 30*24, func(i int) []any { return []any{hour - int64(i), 100 + i%37} })
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d licenses and %d sessions written in %v", licenses, sessions, time.Since(start).Round(time.Millisecond))
	// The cursor of the 100th page of the fleet license's sessions (issue order).
	i := 100 * webPageSizeForBench
	ts := now - int64(sessions-i)
	return fleetKeys{big: key(1), small: key(2),
		bigCursor: openconsole.SessionCursor{LicenseID: 1, Timestamp: ts, ID: fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)}.String()}
}

// webPageSizeForBench is the web console's page size (50).
const webPageSizeForBench = 50
