package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"openconsole/admin"
	"openconsole/sqlstore"
)

type backupOut struct {
	File      string     `json:"file"`
	Bytes     int64      `json:"bytes"`
	StartedAt admin.Time `json:"startedAt"` // every write acknowledged before this is in the copy
	Seconds   float64    `json:"seconds"`
}

// cmdBackup is `backup --out FILE`: a consistent copy of a SQLite database, also while servers
// use it. Restoring is putting the copy in place of the database while no server runs (README).
func cmdBackup(e *cliEnv, args []string) int {
	fs := e.flags("backup")
	out := fs.String("out", "", "file to write the copy to; it must not exist (required)")
	if _, code, ok := e.parse(fs, args, 0); !ok {
		return code
	}
	if *out == "" {
		return e.usageErr("backup needs --out FILE")
	}
	dsn := e.dsn()
	if isPostgres(dsn) {
		return e.fail(sqlstore.ErrBackupPostgres)
	}
	// Opening a SQLite path that does not exist would create an empty database and back that up.
	file := strings.TrimPrefix(dsn, "sqlite:")
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		return e.fail(fmt.Errorf("backup: no database at %s", file))
	} else if err != nil {
		return e.fail(fmt.Errorf("backup: %w", err))
	}
	// Read-only: a backup changes nothing, and works on a file this user may only read.
	st, err := sqlstore.Open(e.ctx, dsn, sqlstore.Options{MaxConns: 2, ReadOnly: true})
	if err != nil {
		return e.fail(err)
	}
	defer st.Close()
	start := time.Now()
	if err := st.Backup(e.ctx, *out); err != nil {
		return e.fail(err)
	}
	info, err := os.Stat(*out)
	if err != nil {
		return e.fail(err)
	}
	abs, _ := filepath.Abs(*out)
	return e.print(backupOut{File: abs, Bytes: info.Size(), StartedAt: admin.Time(start),
		Seconds: math.Round(time.Since(start).Seconds()*1000) / 1000})
}
