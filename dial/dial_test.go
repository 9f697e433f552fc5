package dial

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type result struct {
	c   Conn
	err error
}

func dialWait(t *testing.T, p *Pool, host string, port uint16) result {
	t.Helper()
	ch := make(chan result, 1)
	if _, err := p.Dial(host, port, func(c Conn, err error) { ch <- result{c, err} }); err != nil {
		t.Fatalf("Dial: %v", err)
	}
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("no result")
	}
	return result{}
}

func TestDialConnectsAndHandsOverFD(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	p := New(Config{})
	defer p.Close()
	r := dialWait(t, p, "localhost", uint16(ln.Addr().(*net.TCPAddr).Port))
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer unix.Close(r.c.FD)
	if !r.c.Local.Addr().IsLoopback() || r.c.Local.Port() == 0 {
		t.Errorf("Local = %v", r.c.Local)
	}
	if r.c.Remote.String() != ln.Addr().String() {
		t.Errorf("Remote = %v, want %v", r.c.Remote, ln.Addr())
	}
	fl, err := unix.FcntlInt(uintptr(r.c.FD), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Errorf("descriptor not non-blocking (flags %#x, %v)", fl, err)
	}
	fdfl, _ := unix.FcntlInt(uintptr(r.c.FD), unix.F_GETFD, 0)
	if fdfl&unix.FD_CLOEXEC == 0 {
		t.Error("descriptor not close-on-exec")
	}
	// The socket is live after the Go connection was closed.
	var pfd = []unix.PollFd{{Fd: int32(r.c.FD), Events: unix.POLLIN}}
	unix.Poll(pfd, 5000)
	buf := make([]byte, 2)
	if n, err := unix.Read(r.c.FD, buf); err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want Kind
	}{
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, KindRefused},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ENETUNREACH)}, KindNetUnreachable},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}, KindHostUnreachable},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ETIMEDOUT)}, KindTimeout},
		{&net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}, KindNoSuchHost},
		{&net.DNSError{Err: "i/o timeout", Name: "x.test", IsTimeout: true}, KindTimeout},
		{&net.DNSError{Err: "server misbehaving", Name: "x.test"}, KindHostUnreachable},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), KindTimeout},
		{context.Canceled, KindCanceled},
		{errors.New("kaboom"), KindOther},
	}
	for _, c := range cases {
		if got := classify(c.err); got != c.want {
			t.Errorf("classify(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestRefusedAndNoSuchHost(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	p := New(Config{})
	defer p.Close()
	if r := dialWait(t, p, "127.0.0.1", port); KindOf(r.err) != KindRefused || r.c.FD != -1 {
		t.Fatalf("closed port: %v (fd %d), want refused", r.err, r.c.FD)
	}
	// A resolver that reports "no such host" without sending a packet.
	nx := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		return nil, &net.DNSError{Err: "no such host", IsNotFound: true}
	}}
	p2 := New(Config{Resolver: nx})
	defer p2.Close()
	if r := dialWait(t, p2, "nowhere.test", 80); KindOf(r.err) == KindOther {
		t.Fatalf("unresolvable name: %v, want a resolution kind", r.err)
	}
}

// hangingResolver blocks each lookup until its context ends.
func hangingResolver(started chan<- struct{}) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}}
}

func TestTimeout(t *testing.T) {
	p := New(Config{Resolver: hangingResolver(nil), Timeout: 200 * time.Millisecond})
	defer p.Close()
	start := time.Now()
	r := dialWait(t, p, "slow.test", 80)
	if KindOf(r.err) != KindTimeout {
		t.Fatalf("%v, want timeout", r.err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeout took %v", d)
	}
}

func TestCancel(t *testing.T) {
	started := make(chan struct{}, 1)
	p := New(Config{Resolver: hangingResolver(started), Timeout: time.Minute})
	defer p.Close()
	ch := make(chan result, 1)
	j, err := p.Dial("slow.test", 80, func(c Conn, err error) { ch <- result{c, err} })
	if err != nil {
		t.Fatal(err)
	}
	<-started
	j.Cancel()
	select {
	case r := <-ch:
		if KindOf(r.err) != KindCanceled {
			t.Fatalf("%v, want canceled", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancel did not end the dial")
	}
}

// TestBoundedWorkersAndQueue: at most Workers dials run at once; beyond
// Workers+Queue, Dial fails at once with KindQueueFull; Close ends every
// accepted dial with its done called exactly once, and no goroutine stays.
func TestBoundedWorkersAndQueue(t *testing.T) {
	g0 := runtime.NumGoroutine()
	var running, peak atomic.Int32
	// Control runs once per connect attempt, after resolution (none for
	// an IP literal); blocking in it holds a worker without any traffic.
	hold := func(ctx context.Context, network, address string, c syscall.RawConn) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-ctx.Done()
		running.Add(-1)
		return ctx.Err()
	}
	p := New(Config{Workers: 3, Queue: 5, Control: hold, Timeout: time.Minute})
	var calls sync.WaitGroup
	var done atomic.Int32
	accepted := 0
	submit := func(i int) error {
		calls.Add(1)
		_, err := p.Dial("127.0.0.1", uint16(9000+i), func(c Conn, err error) {
			done.Add(1)
			calls.Done()
		})
		if err != nil {
			calls.Done()
		} else {
			accepted++
		}
		return err
	}
	for i := 0; i < 3; i++ {
		if err := submit(i); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for running.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if running.Load() != 3 {
		t.Fatalf("%d dials running, want 3", running.Load())
	}
	for i := 3; i < 8; i++ {
		if err := submit(i); err != nil {
			t.Fatalf("dial %d should queue: %v", i, err)
		}
	}
	if err := submit(8); KindOf(err) != KindQueueFull {
		t.Fatalf("dial beyond workers+queue: %v, want queue full", err)
	}
	if pk := peak.Load(); pk > 3 {
		t.Fatalf("%d lookups ran at once with 3 workers", pk)
	}
	p.Close()
	calls.Wait()
	if done.Load() != int32(accepted) {
		t.Fatalf("done called %d times for %d dials", done.Load(), accepted)
	}
	if _, err := p.Dial("127.0.0.1", 9, func(Conn, error) {}); KindOf(err) != KindClosed {
		t.Fatalf("dial after Close: %v", err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > g0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > g0 {
		t.Fatalf("goroutines %d -> %d after Close", g0, g)
	}
}
