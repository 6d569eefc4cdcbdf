package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"openconsole"
	"openconsole/sqlstore"
)

// fleet describes what populate put in the database, for run to use.
type fleet struct {
	Keys    []string    `json:"keys"`    // licenses for key-mode devices, 10 seats each
	Users   []fleetUser `json:"users"`   // users whose licenses bearer-mode devices draw from
	Serials []string    `json:"serials"` // registered serials, one device each
	// Stored sessions, live, whose ids storedSessionID(Seed, i) gives for i < Stored.
	Seed   string `json:"seed"`
	Stored int    `json:"stored"`
	// PopulatedAtMS is when populate ran (Unix ms): the created and last-seen times of the stored
	// sessions lie StoredSeenAgoMS before it, and any last_seen_at older than it has not been
	// written since.
	PopulatedAtMS   int64 `json:"populated_at_ms,omitempty"`
	StoredSeenAgoMS int64 `json:"stored_seen_ago_ms,omitempty"`
	// One big license of BigSeats seats (populate --big-seats) holding BigLive live sessions, whose
	// ids bigSessionID(Seed, i) gives for i < BigLive.
	BigKey   string `json:"big_key,omitempty"`
	BigSeats int    `json:"big_seats,omitempty"`
	BigLive  int    `json:"big_live,omitempty"`
	// Many holds licenses of seatsPerLicense seats without sessions (populate --many), for the
	// many-license rounds of run --seats-rounds.
	Many []string `json:"many,omitempty"`
}

type fleetUser struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Seats    int    `json:"seats"`
}

const seatsPerLicense = 10

// storedSessionID derives the id of stored session i: a well-formed v4 UUID, the same in populate
// and run. (Real sessions get random ids from crypto/rand; these only fill a test database.)
func storedSessionID(seed string, i int) string { return derivedSessionID(seed, i) }

// bigSessionID derives the id of session i of the big license. Its hash input is the seed, a NUL,
// "big" and i: longer than any stored session's input of the same seed, so the two never collide
// (short of a SHA-256 collision).
func bigSessionID(seed string, i int) string { return derivedSessionID(seed+"\x00big", i) }

// derivedSessionID is a v4 UUID made of SHA-256(prefix || i as 8 big-endian bytes).
func derivedSessionID(prefix string, i int) string {
	var in [8]byte
	binary.BigEndian.PutUint64(in[:], uint64(i))
	sum := sha256.Sum256(append([]byte(prefix), in[:]...))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func cmdPopulate(args []string) error {
	fs := flag.NewFlagSet("populate", flag.ContinueOnError)
	db := fs.String("db", os.Getenv("OPENCONSOLE_DB"), "database DSN (as openconsole --db)")
	devices := fs.Int("devices", 10000, "devices that run will activate")
	bearerShare := fs.Float64("bearer-share", 0.1, "share of devices that activate with a user's bearer token")
	serialShare := fs.Float64("serial-share", 0.1, "share of devices that activate with a serial number")
	stored := fs.Int("stored", 0, "live sessions to store besides (for validate with a large fleet), on licenses of 10 seats")
	seenAgo := fs.Duration("stored-seen-ago", 0, "the stored sessions were created and last seen this long before now (due for write-back once older than the server's touch interval)")
	bigSeats := fs.Int("big-seats", 0, "also create one license of this many seats (for run --seats-rounds)")
	bigLive := fs.Int("big-live", 0, "live sessions to store on the big license")
	many := fs.Int("many", 0, "also create this many licenses of 10 seats without sessions (for run --seats-rounds)")
	out := fs.String("fleet", "fleet.json", "where to write the fleet description for run")
	seed := fs.String("seed", fmt.Sprint(time.Now().UnixNano()), "names and stored session ids derive from it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *db == "" {
		*db = "sqlite:openconsole.db"
	}
	if *bigLive > *bigSeats {
		return fmt.Errorf("--big-live %d exceeds --big-seats %d", *bigLive, *bigSeats)
	}
	if *seenAgo < 0 {
		return fmt.Errorf("--stored-seen-ago must not be negative")
	}
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, *db, sqlstore.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	svc, err := openconsole.NewService(ctx, st, openconsole.Options{CacheSize: -1})
	if err != nil {
		return err
	}
	defer svc.Close()

	start := time.Now()
	f := fleet{Seed: *seed, Stored: *stored, BigSeats: *bigSeats, BigLive: *bigLive}
	nBearer := int(float64(*devices) * *bearerShare)
	nSerial := int(float64(*devices) * *serialShare)
	nKey := *devices - nBearer - nSerial
	now := time.Now().UTC()
	f.PopulatedAtMS, f.StoredSeenAgoMS = now.UnixMilli(), seenAgo.Milliseconds()
	var lics []openconsole.License
	for i := 0; i < (nKey+seatsPerLicense-1)/seatsPerLicense; i++ {
		k := fmt.Sprintf("LT-%s-K%d", *seed, i)
		f.Keys = append(f.Keys, k)
		lics = append(lics, openconsole.License{Key: k, Kind: openconsole.KindKey, Seats: seatsPerLicense, CreatedAt: now})
	}
	// Bearer devices: users of 100 devices each, owning licenses of 10 seats.
	for u := 0; u*100 < nBearer; u++ {
		fu := fleetUser{Username: fmt.Sprintf("lt-%s-u%d", *seed, u), Password: "load-" + *seed, Seats: min(100, nBearer-u*100)}
		usr, err := svc.CreateUser(ctx, openconsole.UserInput{Username: fu.Username, Password: fu.Password})
		if err != nil {
			return err
		}
		for l := 0; l*seatsPerLicense < fu.Seats; l++ {
			lics = append(lics, openconsole.License{Key: fmt.Sprintf("LT-%s-U%d-%d", *seed, u, l), Kind: openconsole.KindKey,
				OwnerID: usr.ID, Seats: seatsPerLicense, CreatedAt: now})
		}
		f.Users = append(f.Users, fu)
	}
	if _, err := st.BulkInsertLicenses(ctx, lics); err != nil {
		return err
	}
	for i := 0; i < nSerial; i++ {
		sn := fmt.Sprintf("LT-%s-SN%d", *seed, i)
		if _, err := svc.RegisterSerialAdmin(ctx, openconsole.SerialInput{SerialNumber: sn, Model: "load", ManufacturerName: "load",
			ManufactureDate: "2026-01-01"}); err != nil {
			return err
		}
		f.Serials = append(f.Serials, sn)
	}
	fmt.Fprintf(os.Stderr, "fleet: %d key licenses, %d users, %d serials (%v)\n", len(f.Keys), len(f.Users), len(f.Serials), time.Since(start).Round(time.Millisecond))

	if *many > 0 {
		start := time.Now()
		ml := make([]openconsole.License, 0, *many)
		for i := 0; i < *many; i++ {
			k := fmt.Sprintf("LT-%s-M%d", *seed, i)
			f.Many = append(f.Many, k)
			ml = append(ml, openconsole.License{Key: k, Kind: openconsole.KindKey, Seats: seatsPerLicense, CreatedAt: now})
		}
		if _, err := st.BulkInsertLicenses(ctx, ml); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "many: %d licenses of %d seats (%v)\n", *many, seatsPerLicense, time.Since(start).Round(time.Millisecond))
	}
	if *bigSeats > 0 {
		start := time.Now()
		f.BigKey = fmt.Sprintf("LT-%s-BIG", *seed)
		ids, err := st.BulkInsertLicenses(ctx, []openconsole.License{{Key: f.BigKey, Kind: openconsole.KindKey, Seats: *bigSeats, CreatedAt: now}})
		if err != nil {
			return err
		}
		// Timestamps follow the stored sessions' (base+i for i < Stored), so that none repeats.
		base := now.UnixMilli() + int64(*stored)
		err = insertSessions(ctx, st, *bigLive, "big license", func(i int) openconsole.Session {
			return openconsole.Session{ID: bigSessionID(*seed, i), LicenseID: ids[f.BigKey], Timestamp: base + int64(i), CreatedAt: now, LastSeenAt: now}
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "big license %s: %d seats, %d live sessions (%v)\n", f.BigKey, *bigSeats, *bigLive, time.Since(start).Round(time.Millisecond))
	}

	if *stored > 0 {
		seen := now.Add(-*seenAgo)
		var storedLics []openconsole.License
		for i := 0; i < (*stored+seatsPerLicense-1)/seatsPerLicense; i++ {
			storedLics = append(storedLics, openconsole.License{Key: fmt.Sprintf("LT-%s-S%d", *seed, i), Kind: openconsole.KindKey,
				Seats: seatsPerLicense, CreatedAt: seen})
		}
		ids, err := st.BulkInsertLicenses(ctx, storedLics)
		if err != nil {
			return err
		}
		base := now.UnixMilli()
		err = insertSessions(ctx, st, *stored, "stored", func(i int) openconsole.Session {
			return openconsole.Session{ID: storedSessionID(*seed, i), LicenseID: ids[storedLics[i/seatsPerLicense].Key],
				Timestamp: base + int64(i), CreatedAt: seen, LastSeenAt: seen}
		})
		if err != nil {
			return err
		}
	}
	b, _ := json.MarshalIndent(f, "", "  ")
	return os.WriteFile(*out, b, 0o644)
}

// insertSessions bulk-inserts sessions session(0) to session(n-1), 100,000 at a time, reporting progress.
func insertSessions(ctx context.Context, st *sqlstore.Store, n int, what string, session func(int) openconsole.Session) error {
	start := time.Now()
	const chunk = 100_000
	for from := 0; from < n; from += chunk {
		ss := make([]openconsole.Session, 0, min(chunk, n-from))
		for i := from; i < min(from+chunk, n); i++ {
			ss = append(ss, session(i))
		}
		if err := st.BulkInsertSessions(ctx, ss); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%s: %d/%d sessions (%v)\n", what, min(from+chunk, n), n, time.Since(start).Round(time.Millisecond))
	}
	return nil
}
