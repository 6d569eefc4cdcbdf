//go:build !linux

package client

import (
	"errors"
	"time"
)

// sysUptime has no portable source outside Linux; TrustedTime then falls back to max(wall, floor).
func sysUptime() (time.Duration, error) {
	return 0, errors.New("uptime: not available on this system")
}
