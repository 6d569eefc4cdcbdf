package client

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// Clock is the device's sense of time for offline certificates: the wall clock, which anyone can
// set, and the time since boot, which only moves forward within one boot.
type Clock interface {
	// Now is the wall clock.
	Now() time.Time
	// Uptime is the time since boot, from a monotonic source that counts suspend (CLOCK_BOOTTIME).
	Uptime() (time.Duration, error)
	// BootID identifies the current boot; "" when the system does not tell.
	BootID() string
}

// SystemClock is the real clock: time.Now, /proc/uptime (Linux; CLOCK_BOOTTIME through the kernel's
// sysinfo when /proc is absent) and /proc/sys/kernel/random/boot_id.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Uptime returns the time since boot.
func (SystemClock) Uptime() (time.Duration, error) {
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			if secs, err := strconv.ParseFloat(f[0], 64); err == nil && secs >= 0 {
				return time.Duration(secs * float64(time.Second)), nil
			}
		}
	}
	return sysUptime()
}

// BootID returns the kernel's boot id, "" if unknown.
func (SystemClock) BootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Floor is the saved lower bound of the time: Time was known to have passed when Uptime (in boot
// BootID) was read.
type Floor struct {
	Time   time.Time     `json:"floor"`
	Uptime time.Duration `json:"uptimeNs"`
	BootID string        `json:"bootId,omitempty"`
}

// TrustedTime returns max(wall clock, floor + time since the floor was saved). Within the boot
// that saved the floor, the time since is the uptime's growth; after a reboot (another boot id, or
// the uptime went back) it is the whole uptime of this boot, which is less than the real time
// since, so the result stays a lower bound of the true time as long as the floor was. Without an
// uptime source it is max(wall, floor).
func TrustedTime(c Clock, f Floor) time.Time {
	wall := c.Now()
	if f.Time.IsZero() {
		return wall
	}
	t := f.Time
	if up, err := c.Uptime(); err == nil {
		boot := c.BootID()
		sameBoot := up >= f.Uptime && (boot == f.BootID)
		if sameBoot {
			t = t.Add(up - f.Uptime)
		} else {
			t = t.Add(up)
		}
	}
	if wall.After(t) {
		return wall
	}
	return t
}

// FloorAt returns the floor t as of now on c.
func FloorAt(c Clock, t time.Time) Floor {
	up, err := c.Uptime()
	if err != nil {
		up = 0
	}
	return Floor{Time: t.UTC(), Uptime: up, BootID: c.BootID()}
}
