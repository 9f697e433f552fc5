//go:build !unix

package admin

// maxFDs reports no limit where there is no RLIMIT_NOFILE; the metric is
// left out.
func maxFDs() (uint64, bool) { return 0, false }
