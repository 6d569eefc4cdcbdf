package client

import (
	"syscall"
	"time"
)

// sysUptime reads the kernel's uptime (CLOCK_BOOTTIME, whole seconds) through sysinfo(2).
func sysUptime() (time.Duration, error) {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 0, err
	}
	return time.Duration(si.Uptime) * time.Second, nil
}
