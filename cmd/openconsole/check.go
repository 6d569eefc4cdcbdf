package main

import (
	"openconsole"
	"openconsole/sqlstore"
)

type seatMismatchOut struct {
	LicenseID int64  `json:"licenseId"`
	License   string `json:"license"` // redacted key
	Taken     int    `json:"taken"`   // the license's seat bookkeeping
	Held      int    `json:"held"`    // its sessions that hold a seat
}

type checkOut struct {
	OK         bool              `json:"ok"`
	Licenses   int               `json:"licenses"`
	HeldSeats  int               `json:"heldSeats"`
	Mismatches []seatMismatchOut `json:"mismatches"`
	Repaired   bool              `json:"repaired"`
}

// cmdCheck verifies the seat bookkeeping of every license against its sessions. It exits 1 when it
// finds a mismatch, unless --repair fixed them (in one transaction).
func cmdCheck(e *cliEnv, args []string) int {
	fs := e.flags("check")
	repair := fs.Bool("repair", false, "set every mismatching license's seat bookkeeping to the recount, in one transaction")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	svc, _, done, err := e.open(sqlstore.Options{}, openconsole.Options{OneShot: true})
	if err != nil {
		return e.fail(err)
	}
	defer done()
	c, err := svc.CheckSeats(e.ctx, *repair)
	if err != nil {
		return e.fail(err)
	}
	out := checkOut{OK: len(c.Mismatches) == 0, Licenses: c.Licenses, HeldSeats: c.Held,
		Mismatches: make([]seatMismatchOut, 0, len(c.Mismatches)), Repaired: *repair && len(c.Mismatches) > 0}
	for _, m := range c.Mismatches {
		out.Mismatches = append(out.Mismatches, seatMismatchOut{m.LicenseID, openconsole.RedactKey(m.Key), m.Taken, m.Held})
	}
	if code := e.print(out); code != 0 {
		return code
	}
	if !out.OK && !*repair {
		e.stderr.Write([]byte("openconsole: seat bookkeeping disagrees with the sessions; openconsole check --repair fixes it\n"))
		return 1
	}
	return 0
}
