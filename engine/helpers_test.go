package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastsocks/fastsocks/dial"
	"github.com/fastsocks/fastsocks/policy"
	"github.com/fastsocks/fastsocks/proto/socks5"
)

// logBuf collects an engine's log lines for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type testProxy struct {
	e    *Engine
	addr string
	log  *logBuf
}

// startProxy starts an engine on 127.0.0.1:0 with the given allow list and
// config tweaks, and checks at cleanup that it leaves no goroutine and no
// descriptor behind.
func startProxy(t *testing.T, allow []string, tweak func(*Config)) *testProxy {
	t.Helper()
	leakCheck(t)
	lb := &logBuf{}
	cfg := Config{
		Listen:           []string{"127.0.0.1:0"},
		Policy:           policy.MustNew(allow, nil),
		AllowPrivateDest: loopbackOK,
		Logger:           slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	for _, tn := range cfg.Tenants {
		if tn.AllowPrivateDest == nil {
			tn.AllowPrivateDest = loopbackOK // test targets are on loopback
		}
	}
	e, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		e.Close()
		if t.Failed() {
			t.Logf("proxy log:\n%s", lb.String())
		}
	})
	return &testProxy{e: e, addr: e.Addrs()[0].String(), log: lb}
}

// leakCheck records goroutines and descriptors now and, at cleanup (which
// runs after cleanups registered later), polls until both are back.
func leakCheck(t *testing.T) {
	t.Helper()
	g0 := runtime.NumGoroutine()
	fd0 := countFDs(t)
	t.Cleanup(func() {
		var g, fd int
		ok := waitFor(5*time.Second, func() bool {
			g, fd = runtime.NumGoroutine(), countFDs(t)
			return g <= g0 && fd <= fd0
		})
		if !ok {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Errorf("leak: goroutines %d -> %d, fds %d -> %d\n%s\n%s", g0, g, fd0, fd, fdList(), buf[:n])
		}
	})
}

// countFDs counts the descriptors the proxy could leak: sockets, epoll,
// eventfd and timerfd instances. (The Go runtime opens other files, such
// as cgroup CPU limits, on its own schedule.)
func countFDs(t *testing.T) int {
	warmNetpoll.Do(func() {
		// The runtime's own epoll and eventfd appear on first network use;
		// make that happen before anything is counted.
		if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
			ln.Close()
		}
	})
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("read /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		if strings.HasPrefix(l, "socket:") || strings.HasPrefix(l, "anon_inode:") {
			n++
		}
	}
	return n
}

var warmNetpoll sync.Once

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustWait(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !waitFor(d, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// target is a TCP server on 127.0.0.1:0 running handle for each connection.
type target struct {
	ln   net.Listener
	port uint16
	wg   sync.WaitGroup
}

func startTarget(t *testing.T, handle func(c *net.TCPConn)) *target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{ln: ln, port: uint16(ln.Addr().(*net.TCPAddr).Port)}
	tg.wg.Add(1)
	go func() {
		defer tg.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tg.wg.Add(1)
			go func() {
				defer tg.wg.Done()
				defer c.Close()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		tg.wg.Wait()
	})
	return tg
}

func echoHandler(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

// dialProxy connects to the proxy and returns the raw connection.
func dialProxy(t *testing.T, p *testProxy) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func readN(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

func write(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func greet(t *testing.T, c net.Conn) {
	t.Helper()
	write(t, c, []byte{0x05, 0x01, 0x00})
	if got := readN(t, c, 2); !bytes.Equal(got, []byte{0x05, 0x00}) {
		t.Fatalf("method selection = % x, want 05 00", got)
	}
}

// readReply reads a full SOCKS5 reply and returns its REP.
func readReply(t *testing.T, c net.Conn) socks5.ReplyCode {
	t.Helper()
	head := readN(t, c, 4)
	var rest int
	switch head[3] {
	case 0x01:
		rest = 4 + 2
	case 0x04:
		rest = 16 + 2
	default:
		t.Fatalf("reply ATYP %#x", head[3])
	}
	full := append(head, readN(t, c, rest)...)
	rep, _, n, err := socks5.ParseReply(full)
	if err != nil || n != len(full) {
		t.Fatalf("ParseReply(% x) = %v, %d, %v", full, rep, n, err)
	}
	return rep
}

// connect greets and asks for host:port, returning the REP.
func connect(t *testing.T, c net.Conn, host string, port uint16) socks5.ReplyCode {
	t.Helper()
	greet(t, c)
	write(t, c, socks5.AppendRequest(nil, socks5.CmdConnect, host, port))
	return readReply(t, c)
}

// tunnelTo opens a tunnel through p to localhost:port and fails unless it
// succeeds.
func tunnelTo(t *testing.T, p *testProxy, port uint16) *net.TCPConn {
	t.Helper()
	c := dialProxy(t, p)
	if rep := connect(t, c, "localhost", port); rep != socks5.RepSucceeded {
		t.Fatalf("CONNECT localhost:%d: REP %v", port, rep)
	}
	return c
}

// expectClosed asserts the proxy closes c (EOF or reset) within d.
func expectClosed(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 512)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %v", d)
		}
		return
	}
}

// blockingResolver resolves nothing: each lookup signals started, waits
// until its context ends, and reports that through canceled. No packet leaves the process.
func blockingResolver(started chan<- struct{}, canceled chan<- error) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			select {
			case started <- struct{}{}:
			default:
			}
			<-ctx.Done()
			select {
			case canceled <- ctx.Err():
			default:
			}
			return nil, ctx.Err()
		},
	}
}

// hangingResolver blocks every lookup until its context ends, signalling
// started once.
func hangingResolver(started chan<- struct{}) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			select {
			case started <- struct{}{}:
			default:
			}
			<-ctx.Done()
			return nil, ctx.Err()
		},
	}
}

// failingResolver fails every DNS exchange at once.
func failingResolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			return nil, fmt.Errorf("test resolver: no DNS here")
		},
	}
}

// newPool makes a dial pool closed at cleanup, after any proxy started
// later in the test (cleanups run last-in first-out).
func newPool(t *testing.T, cfg dial.Config) *dial.Pool {
	p := dial.New(cfg)
	t.Cleanup(p.Close)
	return p
}

func portOf(t *testing.T, addr string) uint16 {
	_, p, _ := net.SplitHostPort(addr)
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(n)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func mustPolicy(t *testing.T, allow, deny []string) *policy.Policy {
	t.Helper()
	p, err := policy.New(allow, deny)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func fdList() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var b strings.Builder
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fmt.Fprintf(&b, "%s -> %s\n", e.Name(), l)
	}
	return b.String()
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func discardLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// loopbackOK opens loopback to the resolved-address guard: the tests'
// targets listen there.
var loopbackOK = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
