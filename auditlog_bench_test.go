package openconsole_test

import (
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"openconsole"
	"openconsole/sqlstore/sqlstoretest"
)

// BenchmarkAuditedChange measures one administrative change (a license created: the license, its
// audit entry and the tree hashes the entry adds, in one transaction) on an empty audit log and on
// one of OPENCONSOLE_BENCH_AUDIT entries (default 1,000,000), on every engine configured.
func BenchmarkAuditedChange(b *testing.B) {
	big := int64(1_000_000)
	if v := os.Getenv("OPENCONSOLE_BENCH_AUDIT"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			b.Fatalf("OPENCONSOLE_BENCH_AUDIT=%q: want a positive number", v)
		}
		big = n
	}
	for _, engine := range sqlstoretest.Engines() {
		for _, entries := range []int64{0, big} {
			b.Run(fmt.Sprintf("%s/entries=%d", engine, entries), func(b *testing.B) {
				dsn := sqlstoretest.DSN(b, engine)
				fillAuditLog(b, dsn, entries)
				st := sqlstoretest.OpenDSN(b, dsn)
				svc, err := openconsole.NewService(ctx, st, openconsole.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer svc.Close()
				b.ResetTimer()
				for b.Loop() {
					if _, err := svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1}); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if n, err := st.AuditSize(ctx); err != nil || n != entries+int64(b.N) {
					b.Fatalf("the log has %d entries (%v), want %d", n, err, entries+int64(b.N))
				}
			})
		}
	}
}

// fillAuditLog writes n audit entries and their tree hashes straight into the (migrated, empty)
// database at dsn, in one transaction: as the service would, only faster.
func fillAuditLog(b *testing.B, dsn string, n int64) {
	b.Helper()
	if n == 0 {
		return
	}
	start := time.Now()
	st := sqlstoretest.OpenDSN(b, dsn) // migrates
	st.Close()
	driver, name, ph := "pgx", dsn, func(i int) string { return "$" + strconv.Itoa(i) }
	if strings.HasPrefix(dsn, "sqlite:") {
		driver, name, ph = "sqlite", strings.TrimPrefix(dsn, "sqlite:"), func(int) string { return "?" }
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
	var hashes memHashes
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const rows = 200
	var eq, hq strings.Builder
	var eargs, hargs []any
	flush := func() {
		for _, q := range []struct {
			sb   *strings.Builder
			args *[]any
		}{{&eq, &eargs}, {&hq, &hargs}} {
			if len(*q.args) == 0 {
				continue
			}
			if _, err := tx.Exec(q.sb.String(), *q.args...); err != nil {
				b.Fatal(err)
			}
			q.sb.Reset()
			*q.args = (*q.args)[:0]
		}
	}
	for seq := int64(0); seq < n; seq++ {
		e := openconsole.AuditEntry{Seq: seq, At: at.Add(time.Duration(seq) * time.Millisecond),
			Actor:  openconsole.Actor{Kind: openconsole.ActorToken, Name: "shop", Addr: "192.0.2.1"},
			Action: "license.create", Target: openconsole.LicenseTarget(strconv.FormatInt(seq, 10)),
			Before: []byte("{}"), After: []byte(`{"seats":5,"note":"order ` + strconv.FormatInt(seq, 10) + `"}`)}
		hs, err := tlog.StoredHashes(seq, openconsole.AuditLeaf(e), &hashes)
		if err != nil {
			b.Fatal(err)
		}
		if eq.Len() == 0 {
			eq.WriteString(`INSERT INTO audit_entries (seq, at, actor_kind, actor_name, addr, action, target, before, after) VALUES `)
		} else {
			eq.WriteString(", ")
		}
		k := len(eargs)
		eq.WriteString("(")
		for i := 1; i <= 9; i++ {
			if i > 1 {
				eq.WriteString(", ")
			}
			eq.WriteString(ph(k + i))
		}
		eq.WriteString(")")
		eargs = append(eargs, e.Seq, e.At.UnixMilli(), e.Actor.Kind, e.Actor.Name, e.Actor.Addr, e.Action, e.Target, string(e.Before), string(e.After))
		for _, h := range hs {
			if hq.Len() == 0 {
				hq.WriteString(`INSERT INTO audit_hashes (idx, hash) VALUES `)
			} else {
				hq.WriteString(", ")
			}
			k := len(hargs)
			hq.WriteString("(" + ph(k+1) + ", " + ph(k+2) + ")")
			hargs = append(hargs, int64(len(hashes)), h[:])
			hashes = append(hashes, h)
		}
		if len(eargs) >= rows*9 {
			flush()
		}
	}
	flush()
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d audit entries written in %v", n, time.Since(start).Round(time.Millisecond))
}
