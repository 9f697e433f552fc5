package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. The
// kernel exports it as 100 on every Linux architecture Go supports
// (sysconf(_SC_CLK_TCK) returns this constant), so it is not looked up.
const clockTicks = 100

// procSample is one reading of a process from /proc.
type procSample struct {
	At      time.Time
	CPU     time.Duration // utime + stime, all threads
	RSS     int64         // VmRSS, bytes
	FDs     int           // entries in /proc/PID/fd
	Threads int
}

// readProc samples pid. fds is skipped (set to -1) when withFDs is false,
// since listing 16,000 fds costs a few milliseconds.
func readProc(pid int, withFDs bool) (procSample, error) {
	s := procSample{At: time.Now(), FDs: -1}
	cpu, err := readCPU(pid)
	if err != nil {
		return s, err
	}
	s.CPU = cpu
	rss, threads, err := readStatus(pid)
	if err != nil {
		return s, err
	}
	s.RSS, s.Threads = rss, threads
	if withFDs {
		n, err := countFDs(pid)
		if err != nil {
			return s, err
		}
		s.FDs = n
	}
	return s, nil
}

// readCPU returns utime+stime of pid from /proc/PID/stat (fields 14 and 15,
// counted after the parenthesised command name, which may hold spaces).
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/PID/stat: no ')' in %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/PID/stat: %d fields after the name, want at least 13", len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/PID/stat: utime %q stime %q", f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// readStatus returns VmRSS in bytes and Threads from /proc/PID/status.
func readStatus(pid int) (rss int64, threads int, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	return parseStatus(b)
}

func parseStatus(b []byte) (rss int64, threads int, err error) {
	foundRSS := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "VmRSS":
			kb, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/PID/status: VmRSS %q", v)
			}
			rss, foundRSS = kb<<10, true
		case "Threads":
			threads, _ = strconv.Atoi(v)
		}
	}
	if !foundRSS {
		return 0, 0, fmt.Errorf("/proc/PID/status: no VmRSS line (is the process a zombie?)")
	}
	return rss, threads, nil
}

// machineBusy returns the CPU time all CPUs spent busy (everything but
// idle and iowait) since boot, from the first line of /proc/stat.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: first line %q", line)
	}
	var busy int64
	// user nice system idle iowait irq softirq steal ...; guest time is
	// already in user.
	for i, v := range f[1:min(len(f), 9)] {
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %q", line)
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}

// countFDs counts the open file descriptors of pid.
func countFDs(pid int) (int, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	for {
		names, err := f.Readdirnames(4096)
		n += len(names)
		if err != nil || len(names) == 0 {
			break
		}
	}
	return n, nil
}

// fdLimit returns the soft "Max open files" limit of pid from
// /proc/PID/limits (-1 if unlimited or unreadable).
func fdLimit(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				if n, err := strconv.Atoi(f[0]); err == nil {
					return n
				}
			}
		}
	}
	return -1
}

// raiseNofile raises this process's RLIMIT_NOFILE soft limit to the hard
// limit and returns the new soft limit.
func raiseNofile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, os.NewSyscallError("getrlimit", err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, os.NewSyscallError("setrlimit", err)
		}
	}
	return rl.Cur, nil
}

// cpuDelta is the CPU a process used between two samples, in cores.
func cores(a, b procSample) float64 {
	wall := b.At.Sub(a.At)
	if wall <= 0 {
		return 0
	}
	return float64(b.CPU-a.CPU) / float64(wall)
}
