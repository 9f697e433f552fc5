package engine

import (
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/fastsocks/fastsocks/dial"
	"github.com/fastsocks/fastsocks/internal/testutil"
	"github.com/fastsocks/fastsocks/proto/socks5"
)

// blackhole listens on ip:port with its accept queue full, so a connect to
// it hangs (the kernel drops the SYN) instead of failing.
func blackhole(t *testing.T, ip string, port int) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	a := netip.MustParseAddr(ip).As4()
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: a}); err != nil {
		t.Fatalf("cannot bind %s:%d: %v", ip, port, err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	// Fill the queue: connections the listener never accepts.
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	for i := 0; i < 4; i++ {
		d := net.Dialer{Timeout: 200 * time.Millisecond}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return // the queue is full: SYNs are dropped now
		}
		t.Cleanup(func() { c.Close() })
	}
}

// TestDirectDialTriesNextAddress: a name with two addresses, the first
// refusing, connects to the second.
func TestDirectDialTriesNextAddress(t *testing.T) {
	tg := startTarget(t, echoHandler)
	res := testutil.Resolver(map[string][]netip.Addr{
		"two.test":  {netip.MustParseAddr("127.0.0.3"), netip.MustParseAddr("127.0.0.1")},
		"none.test": {netip.MustParseAddr("127.0.0.3")},
	}, nil)
	pool := newPool(t, dial.Config{Resolver: res})
	p := startProxy(t, []string{"**.test"}, func(c *Config) { c.Dialer = pool })
	c := dialProxy(t, p)
	if rep := connect(t, c, "two.test", tg.port); rep != socks5.RepSucceeded {
		t.Fatalf("REP %v", rep)
	}
	write(t, c, []byte("hi"))
	if got := readN(t, c, 2); string(got) != "hi" {
		t.Fatalf("echo %q", got)
	}
	c2 := dialProxy(t, p)
	if rep := connect(t, c2, "none.test", tg.port); rep != socks5.RepConnectionRefused {
		t.Fatalf("only a refusing address: REP %v, want connection refused", rep)
	}
	c3 := dialProxy(t, p)
	if rep := connect(t, c3, "missing.test", tg.port); rep != socks5.RepHostUnreachable {
		t.Fatalf("NXDOMAIN: REP %v, want host unreachable", rep)
	}
}

// TestHappyEyeballs: when the first address hangs, the next one starts
// after the attempt delay and wins, well within the dial timeout.
func TestHappyEyeballs(t *testing.T) {
	tg := startTarget(t, echoHandler)
	blackhole(t, "127.0.0.4", int(tg.port))
	res := testutil.Resolver(map[string][]netip.Addr{
		"slowfirst.test": {netip.MustParseAddr("127.0.0.4"), netip.MustParseAddr("127.0.0.1")},
		"hang.test":      {netip.MustParseAddr("127.0.0.4")},
	}, nil)
	pool := newPool(t, dial.Config{Resolver: res, Timeout: 10 * time.Second})
	p := startProxy(t, []string{"**.test"}, func(c *Config) { c.Dialer = pool; c.DialTimeout = 2 * time.Second })
	c := dialProxy(t, p)
	start := time.Now()
	if rep := connect(t, c, "slowfirst.test", tg.port); rep != socks5.RepSucceeded {
		t.Fatalf("REP %v", rep)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 1500*time.Millisecond {
		t.Fatalf("connected after %v; want about the 250ms attempt delay", d)
	}
	write(t, c, []byte("ok"))
	if got := readN(t, c, 2); string(got) != "ok" {
		t.Fatalf("echo %q", got)
	}
	// Only a hanging address: the dial timeout answers.
	c2 := dialProxy(t, p)
	start = time.Now()
	if rep := connect(t, c2, "hang.test", tg.port); rep != socks5.RepHostUnreachable {
		t.Fatalf("REP %v, want host unreachable (timeout)", rep)
	}
	if d := time.Since(start); d < 1500*time.Millisecond || d > 5*time.Second {
		t.Fatalf("timeout answered after %v, want about the 2s dial timeout", d)
	}
}
