//go:build unix

package admin

import "syscall"

// maxFDs returns the RLIMIT_NOFILE soft limit.
func maxFDs() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	return uint64(r.Cur), true
}
