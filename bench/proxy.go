package main

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fastsocks/fastsocks/bench/baseline"
)

// subject is one thing the scenarios measure: a SOCKS5 proxy, or nothing
// (direct loopback, the upper bound).
type subject struct {
	Name string
	// Start starts the proxy for one scenario run (a fresh process, so RSS
	// figures start clean) or attaches to a running one. Nil means direct:
	// clients connect straight to the targets.
	Start func() (*proxyHandle, error)
}

func (s subject) direct() bool { return s.Start == nil }

// proxyHandle is a running proxy.
type proxyHandle struct {
	Addr netip.AddrPort
	PID  int
	// Stop ends a proxy the bench started (a no-op for --target) and
	// returns what was odd about its life: a crash, a slow exit, log lines.
	Stop func() []string
	// Exited is closed if the process ends before Stop; then ExitErr says
	// how. Nil for proxies the bench did not start.
	Exited  <-chan struct{}
	ExitErr func() error
}

// logTail keeps a process's stderr: every line is copied to w with a prefix
// (when w is non-nil), and the last few are kept for the report.
type logTail struct {
	mu    sync.Mutex
	lines []string
	n     int
}

func (l *logTail) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if len(l.lines) == 20 {
		copy(l.lines, l.lines[1:])
		l.lines = l.lines[:19]
	}
	l.lines = append(l.lines, s)
}

func (l *logTail) take() (n int, last []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, last = l.n, l.lines
	l.n, l.lines = 0, nil
	return n, last
}

// startProcess runs path with args as a proxy: its stderr is watched for
// "listening on ADDR" (and echoed to echo with a prefix), and its listening
// socket is also looked for in /proc, since at --log-level warn fastsocks
// does not log the address. stdin is a pipe that closes when the bench
// exits, which is how --serve-baseline knows to stop.
func startProcess(name, path string, args []string, echo io.Writer) (*proxyHandle, error) {
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	pid := cmd.Process.Pid
	tail := &logTail{}
	addrc := make(chan netip.AddrPort, 1)
	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			line := sc.Text()
			if !found {
				if a, ok := parseListening(line); ok {
					found = true
					addrc <- a
					continue
				}
			}
			tail.add(line)
			if echo != nil {
				fmt.Fprintf(echo, "  [%s] %s\n", name, line)
			}
		}
	}()
	exited := make(chan struct{})
	var waitErr error
	go func() {
		<-stderrDone
		waitErr = cmd.Wait()
		close(exited)
	}()
	fail := func(err error) (*proxyHandle, error) {
		cmd.Process.Kill()
		<-exited
		_, last := tail.take()
		if len(last) > 0 {
			err = fmt.Errorf("%w; its stderr ended with:\n    %s", err, strings.Join(last, "\n    "))
		}
		return nil, err
	}
	var addr netip.AddrPort
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case addr = <-addrc:
			break wait
		case <-exited:
			return fail(fmt.Errorf("%s exited before listening: %v", name, waitErr))
		case <-deadline:
			return fail(fmt.Errorf("%s did not listen within 20s", name))
		case <-tick.C:
			if a, ok := listeningAddr(pid); ok {
				addr = a
				break wait
			}
		}
	}
	h := &proxyHandle{
		Addr:    addr,
		PID:     pid,
		Exited:  exited,
		ExitErr: func() error { <-exited; return waitErr },
	}
	h.Stop = func() []string {
		var notes []string
		select {
		case <-exited:
			notes = append(notes, fmt.Sprintf("%s exited during the run: %v", name, waitErr))
		default:
			t0 := time.Now()
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
				if d := time.Since(t0); d > 2*time.Second {
					notes = append(notes, fmt.Sprintf("%s took %v to exit after SIGTERM", name, d.Round(time.Millisecond)))
				}
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				<-exited
				notes = append(notes, fmt.Sprintf("%s did not exit within 15s of SIGTERM; killed", name))
			}
		}
		stdin.Close()
		if n, last := tail.take(); n > 0 {
			notes = append(notes, fmt.Sprintf("%s logged %d lines on stderr; the last: %s", name, n, strings.Join(last[max(0, len(last)-3):], " | ")))
		}
		return notes
	}
	return h, nil
}

// parseListening finds "listening on HOST:PORT" in a log line (fastsocks'
// text or JSON log, or --serve-baseline's plain line).
func parseListening(line string) (netip.AddrPort, bool) {
	_, rest, ok := strings.Cut(line, "listening on ")
	if !ok {
		return netip.AddrPort{}, false
	}
	end := strings.IndexAny(rest, "\" ,")
	if end >= 0 {
		rest = rest[:end]
	}
	a, err := netip.ParseAddrPort(rest)
	return a, err == nil
}

// listeningAddr finds a TCP socket of pid in LISTEN state on 127.0.0.0/8,
// through /proc/PID/fd (socket inodes) and /proc/PID/net/tcp.
func listeningAddr(pid int) (netip.AddrPort, bool) {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return netip.AddrPort{}, false
	}
	inodes := map[string]bool{}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	if len(inodes) == 0 {
		return netip.AddrPort{}, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/tcp")
	if err != nil {
		return netip.AddrPort{}, false
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
			continue
		}
		hexIP, hexPort, ok := strings.Cut(f[1], ":")
		if !ok || len(hexIP) != 8 {
			continue
		}
		ipb, err1 := hex.DecodeString(hexIP)
		port, err2 := strconv.ParseUint(hexPort, 16, 16)
		if err1 != nil || err2 != nil {
			continue
		}
		// The kernel prints the address as a host-order 32-bit number.
		var a4 [4]byte
		binary.NativeEndian.PutUint32(a4[:], binary.BigEndian.Uint32(ipb))
		a := netip.AddrFrom4(a4)
		if a.IsLoopback() {
			return netip.AddrPortFrom(a, uint16(port)), true
		}
	}
	return netip.AddrPort{}, false
}

// buildFastsocks builds ./cmd/fastsocks of the module the bench runs in
// into dir and returns the binary's path.
func buildFastsocks(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the fastsocks module: run the bench from the repository (or pass --target and --pid)")
	}
	bin := filepath.Join(dir, "fastsocks")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/fastsocks")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/fastsocks: %v\n%s", err, out)
	}
	return bin, nil
}

// serveBaselineMain is the hidden --serve-baseline mode: a baseline proxy
// on listen, allowing the given names, until stdin closes or a signal.
func serveBaselineMain(listen string, allow []string) int {
	raiseNofile()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		return 1
	}
	fmt.Fprintln(os.Stderr, "baseline: listening on "+ln.Addr().String())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		ln.Close()
		os.Exit(0)
	}()
	if err := baseline.Serve(ln, baseline.AllowList(allow...)); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		return 1
	}
	return 0
}

// startTargetsProcess runs the targets in a subprocess of this binary, so
// their fds (one per tunnel) and CPU are not the bench's.
func startTargetsProcess(self string, n int) (*targets, error) {
	cmd := exec.Command(self, "--serve-targets", strconv.Itoa(n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("targets subprocess: %v", err)
	}
	echo, duplex, err := parseTargetsLine(line)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	return &targets{
		Echo: echo, Duplex: duplex, PID: cmd.Process.Pid,
		stop: func() error {
			stdin.Close()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				return err
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				return <-done
			}
		},
	}, nil
}
