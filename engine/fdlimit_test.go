package engine

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastsocks/fastsocks/policy"
	"github.com/fastsocks/fastsocks/proto/socks5"
)

const fdChildEnv = "FASTSOCKS_FD_CHILD"

// TestFDExhaustion runs a proxy in a child process with a low descriptor
// limit, fills it with idle clients until accept fails with EMFILE, and
// checks that the proxy pauses accepting without spinning, keeps relaying
// the tunnel it has, and accepts again once descriptors are free.
func TestFDExhaustion(t *testing.T) {
	if os.Getenv(fdChildEnv) == "1" {
		lowFDChild(nil)
		return
	}
	tg := startTarget(t, echoHandler)
	cmd, addr, logs := startLowFDChild(t, "TestFDExhaustion", fdChildEnv)
	p := &testProxy{addr: addr}

	tunnel := tunnelTo(t, p, tg.port)
	echo := func(msg string) {
		t.Helper()
		write(t, tunnel, []byte(msg))
		if got := readN(t, tunnel, len(msg)); string(got) != msg {
			t.Fatalf("echo %q, want %q", got, msg)
		}
	}
	echo("before")

	// Idle clients until the child logs that accept is paused.
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	paused := func() bool { return strings.Contains(logs.String(), "accept paused") }
	for i := 0; i < 200 && !paused(); i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		idle = append(idle, c)
		waitFor(50*time.Millisecond, paused)
	}
	mustWait(t, 5*time.Second, "the child to log 'accept paused'", paused)
	// A few more, so connections certainly wait in the accept queue.
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		idle = append(idle, c)
	}

	// Paused, not spinning: the child's CPU time over a second stays low.
	cpu0 := cpuTime(t, cmd.Process.Pid)
	time.Sleep(time.Second) // a measured interval, not a wait for readiness
	used := cpuTime(t, cmd.Process.Pid) - cpu0
	t.Logf("child CPU while paused: %v", used)
	if used > 300*time.Millisecond {
		t.Fatalf("child used %v of CPU in 1s while out of descriptors: spinning", used)
	}
	if n := strings.Count(logs.String(), "accept paused"); n != 1 {
		t.Errorf("'accept paused' logged %d times in one burst, want once", n)
	}

	echo("during") // the open tunnel keeps relaying

	for _, c := range idle {
		c.Close()
	}
	idle = nil
	// Once descriptors free up, new tunnels work again.
	var c2 net.Conn
	mustWait(t, 10*time.Second, "a new tunnel after descriptors freed", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		msg := socks5.AppendRequest([]byte{0x05, 0x01, 0x00}, socks5.CmdConnect, "localhost", tg.port)
		reply := make([]byte, 12)
		if _, err := c.Write(msg); err != nil {
			c.Close()
			return false
		}
		if _, err := io.ReadFull(c, reply); err != nil || reply[3] != byte(socks5.RepSucceeded) {
			c.Close()
			return false
		}
		c.SetDeadline(time.Time{})
		c2 = c
		return true
	})
	defer c2.Close()
	write(t, c2, []byte("after"))
	if got := readN(t, c2, 5); string(got) != "after" {
		t.Fatalf("echo %q", got)
	}
	echo("still")
	if !strings.Contains(logs.String(), "accept resumed") {
		t.Errorf("no 'accept resumed' log line")
	}
}

// startLowFDChild re-runs this test binary's test named test as a child
// proxy (env set to "1" selects lowFDChild in it) and returns it with its
// address and log. At cleanup the child's stdin closes, which stops it.
func startLowFDChild(t *testing.T, test, env string) (*exec.Cmd, string, *logBuf) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env+"=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	logs := &logBuf{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("the child proxy did not exit within 10s of its stdin closing")
		}
		if t.Failed() {
			t.Logf("child log:\n%s", logs)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child gave no address: %v", err)
	}
	return cmd, strings.TrimSpace(strings.TrimPrefix(line, "ADDR ")), logs
}

// lowFDChild is the child side: a proxy with one loop under
// RLIMIT_NOFILE 64, with tweak applied to its config, serving until its
// stdin closes.
func lowFDChild(tweak func(*Config)) {
	lim := syscall.Rlimit{Cur: 64, Max: 64}
	var cur syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur)
	if cur.Max < lim.Max {
		lim.Max = cur.Max
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		os.Stderr.WriteString("setrlimit: " + err.Error() + "\n")
		os.Exit(1)
	}
	cfg := Config{
		Listen:           []string{"127.0.0.1:0"},
		Loops:            1,
		Policy:           policy.MustNew([]string{"localhost"}, nil),
		AllowPrivateDest: loopbackOK,
		Logger:           slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	e, err := Start(cfg)
	if err != nil {
		os.Stderr.WriteString("start: " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("ADDR " + e.Addrs()[0].String() + "\n")
	io.Copy(io.Discard, os.Stdin)
	e.Close()
	os.Exit(0)
}

var statFields = regexp.MustCompile(`\) \S+ (.*)`)

// cpuTime returns a process's user+system CPU time from /proc/PID/stat.
func cpuTime(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	m := statFields.FindSubmatch(b)
	if m == nil {
		t.Fatalf("cannot parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(m[1]))
	// After the state field: ppid(0) ... utime is field 14 of the whole
	// line, i.e. index 10 here, stime index 11.
	ut, _ := strconv.ParseInt(f[10], 10, 64)
	st, _ := strconv.ParseInt(f[11], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}
