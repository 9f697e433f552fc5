package admin

import "os"

// openFDs counts the process's open file descriptors: the entries of
// /proc/self/fd, less the one used to read it. ok is false where there is
// no /proc (the metric is then left out).
func openFDs() (n int, ok bool) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, false
	}
	return len(names) - 1, true
}
