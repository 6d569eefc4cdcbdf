package openconsole_test

import (
	"fmt"
	"testing"
	"time"

	"openconsole"
	"openconsole/sqlstore/sqlstoretest"
)

func BenchmarkParseSessionID(b *testing.B) {
	id := openconsole.NewSessionID()
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := openconsole.ParseSessionID(id); !ok {
			b.Fatal("refused")
		}
	}
}

// BenchmarkValidate measures Service.Validate on SQLite: from the cache (the steady state), and
// with the cache off (every call reads the database).
func BenchmarkValidate(b *testing.B) {
	for _, bc := range []struct {
		name  string
		cache int
	}{{"cached", 0}, {"uncached", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			st := sqlstoretest.Open(b, "sqlite")
			svc, err := openconsole.NewService(ctx, st, openconsole.Options{CacheSize: bc.cache})
			if err != nil {
				b.Fatal(err)
			}
			defer svc.Close()
			lic, err := svc.CreateLicense(ctx, openconsole.LicenseInput{Seats: 1})
			if err != nil {
				b.Fatal(err)
			}
			a, err := svc.Activate(ctx, openconsole.ActivateInput{LicenseKey: lic.Key})
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < 1000; i++ { // until the first poll trusts the cache
				if _, ok, _ := svc.Validate(ctx, a.Session.ID); !ok {
					b.Fatal("invalid")
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, ok, err := svc.Validate(ctx, a.Session.ID); !ok || err != nil {
						b.Fatal("invalid", err)
					}
				}
			})
		})
	}
}

// BenchmarkActivateSeats measures new activations (each takes a seat) from 32 concurrent clients,
// in one database that holds a license of 1,000,000 seats with N live sessions and many 10-seat
// licenses: on the big license, and spread over the small ones. The two rates must stay close
// whatever N is (scripts/perf seats gives the same figures over HTTP).
func BenchmarkActivateSeats(b *testing.B) {
	for _, engine := range sqlstoretest.Engines() {
		for _, live := range []int{0, 100_000} {
			b.Run(fmt.Sprintf("%s/live-%d", engine, live), func(b *testing.B) {
				st := sqlstoretest.Open(b, engine)
				svc, err := openconsole.NewService(ctx, st, openconsole.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer svc.Close()
				now := time.Now()
				ls := []openconsole.License{{Key: "BIG", Kind: openconsole.KindKey, Seats: 1_000_000, CreatedAt: now}}
				for i := 0; i < 20_000; i++ {
					ls = append(ls, openconsole.License{Key: fmt.Sprintf("M-%d", i), Kind: openconsole.KindKey, Seats: 10, CreatedAt: now})
				}
				ids, err := st.BulkInsertLicenses(ctx, ls)
				if err != nil {
					b.Fatal(err)
				}
				ss := make([]openconsole.Session, live)
				for i := range ss {
					ss[i] = openconsole.Session{ID: openconsole.NewSessionID(), LicenseID: ids["BIG"], Timestamp: now.UnixMilli() - 1e7 + int64(i), CreatedAt: now, LastSeenAt: now}
				}
				if err := st.BulkInsertSessions(ctx, ss); err != nil {
					b.Fatal(err)
				}
				small := 0
				for _, target := range []string{"many", "big", "many", "big"} {
					b.Run(target, func(b *testing.B) {
						keys := make(chan string, b.N)
						for i := 0; i < b.N; i++ {
							if target == "big" {
								keys <- "BIG"
							} else {
								keys <- ls[1+small/10%20_000].Key
								small++
							}
						}
						b.SetParallelism(16) // 32 clients on 2 cores
						b.ResetTimer()
						b.RunParallel(func(pb *testing.PB) {
							for pb.Next() {
								a, err := svc.Activate(ctx, openconsole.ActivateInput{LicenseKey: <-keys})
								if err != nil || !a.Created {
									b.Fatalf("activate: %+v, %v", a, err)
								}
							}
						})
						b.StopTimer()
						b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "activations/s")
						ws := st.WriteStats()
						b.ReportMetric(float64(ws.Updates)/float64(max(1, ws.Batches)), "updates/batch")
					})
				}
			})
		}
	}
}
