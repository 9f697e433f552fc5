package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastsocks/fastsocks/dial"
	"github.com/fastsocks/fastsocks/policy"
)

// Engine is a running proxy: its loops, listeners and counters.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	pool    *dial.Pool
	ownPool bool
	policy  atomic.Pointer[policy.Policy]
	loops   []*loop
	addrs   []net.Addr
	wg      sync.WaitGroup

	// ticks derived from the timeouts, fixed at start.
	tick                                  time.Duration
	hsTicks, dialTicks, idleTicks         uint32
	lifeTicks, lingerTicks, acceptPauseTk uint32

	active     atomic.Int64
	handshakes atomic.Int64

	closeOnce  sync.Once
	stopAccept sync.Once
	accepting  atomic.Bool
}

// Start binds every listen address, starts the loops and returns the
// running engine. On error nothing is left open.
func Start(cfg Config) (*Engine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := initRuntimePoller(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, pool: cfg.Dialer}
	e.policy.Store(cfg.Policy)
	e.tick = cfg.tickFor()
	ticks := func(d time.Duration) uint32 {
		if d <= 0 {
			return 0
		}
		n := (d + e.tick - 1) / e.tick
		if n > 1<<30 {
			n = 1 << 30
		}
		return uint32(n)
	}
	e.hsTicks = ticks(cfg.HandshakeTimeout)
	// The dial pool enforces the dial timeout itself; the engine's own
	// deadline is a backstop a little later.
	e.dialTicks = ticks(cfg.DialTimeout + cfg.DialTimeout/10 + e.tick)
	e.idleTicks = ticks(cfg.IdleTimeout)
	e.lifeTicks = ticks(cfg.MaxLifetime)
	e.lingerTicks = ticks(cfg.Linger)
	e.acceptPauseTk = ticks(100 * time.Millisecond)

	if e.pool == nil {
		e.pool = dial.New(dial.Config{Timeout: cfg.DialTimeout})
		e.ownPool = true
	}

	var err error
	for i := 0; i < cfg.Loops; i++ {
		var l *loop
		if l, err = newLoop(e, i); err != nil {
			break
		}
		e.loops = append(e.loops, l)
	}
	if err == nil {
		err = e.bindAll()
	}
	if err != nil {
		for _, l := range e.loops {
			l.release()
		}
		if e.ownPool {
			e.pool.Close()
		}
		return nil, err
	}
	e.accepting.Store(true)
	for _, l := range e.loops {
		e.wg.Add(1)
		go l.run()
	}
	return e, nil
}

// initRuntimePoller makes the Go runtime create its own epoll instance now.
// The runtime does that lazily, on the first pollable file or timer, and
// aborts the whole process if it cannot get a descriptor then. The engine
// does its I/O with raw syscalls, so without this the first timer could
// come at a moment the proxy is out of descriptors, and crash it.
func initRuntimePoller() error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("engine: start: %w", err)
	}
	r.Close()
	w.Close()
	return nil
}

// bindAll opens one SO_REUSEPORT listening socket per loop for each listen
// address, so each loop accepts for itself and the kernel spreads new
// connections across loops. With port 0, the first socket picks the port
// and the others bind to it.
func (e *Engine) bindAll() error {
	for _, addr := range e.cfg.Listen {
		ap, err := resolveListen(addr)
		if err != nil {
			return err
		}
		loops := e.loops
		if e.cfg.handoff {
			loops = loops[:1]
		}
		for _, l := range loops {
			fd, bound, err := listenTCP(ap)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			if ap.Port() == 0 {
				ap = bound
			}
			l.addListener(fd, bound)
		}
		e.addrs = append(e.addrs, net.TCPAddrFromAddrPort(ap))
	}
	return nil
}

// resolveListen turns a listen address into an IP and port. Host names are
// resolved from /etc/hosts or DNS once (e.g. "localhost:1080").
func resolveListen(addr string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen address %q: %w (want HOST:PORT, e.g. 127.0.0.1:1080)", addr, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen address %q: bad port %q", addr, port)
	}
	if host == "" {
		return netip.AddrPort{}, fmt.Errorf("listen address %q: empty host; give an address explicitly (127.0.0.1 for this host only, 0.0.0.0 for every interface)", addr)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		ips, lerr := net.DefaultResolver.LookupNetIP(context.Background(), "ip", host)
		if lerr != nil || len(ips) == 0 {
			return netip.AddrPort{}, fmt.Errorf("listen address %q: cannot resolve %q: %v", addr, host, lerr)
		}
		ip = ips[0]
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(p)), nil
}

func listenTCP(ap netip.AddrPort) (int, netip.AddrPort, error) {
	family := unix.AF_INET
	if ap.Addr().Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, ap, os.NewSyscallError("socket", err)
	}
	fail := func(call string, err error) (int, netip.AddrPort, error) {
		unix.Close(fd)
		return -1, ap, os.NewSyscallError(call, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt(SO_REUSEADDR)", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return fail("setsockopt(SO_REUSEPORT)", err)
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail("setsockopt(IPV6_V6ONLY)", err)
		}
	}
	if err := unix.Bind(fd, sockaddr(ap)); err != nil {
		return fail("bind", err)
	}
	if err := unix.Listen(fd, 4096); err != nil {
		return fail("listen", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	return fd, addrPortOf(sa), nil
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func addrPortOf(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// Addrs returns the bound address of each Config.Listen entry, in order,
// with port 0 resolved.
func (e *Engine) Addrs() []net.Addr { return e.addrs }

// SetPolicy replaces the policy for requests made from now on; tunnels
// already open keep the decision made when they opened.
func (e *Engine) SetPolicy(p *policy.Policy) { e.policy.Store(p) }

// Stats returns a snapshot of the engine's counters.
func (e *Engine) Stats() Stats {
	st := Stats{Active: e.active.Load(), Handshakes: e.handshakes.Load()}
	for _, l := range e.loops {
		st.Accepted += l.accepted.Load()
		st.Refused += l.refused.Load()
		st.BytesUp += l.bytesUp.Load()
		st.BytesDown += l.bytesDown.Load()
	}
	return st
}

// StopAccepting closes every listener; open tunnels carry on.
func (e *Engine) StopAccepting() {
	e.stopAccept.Do(func() {
		e.accepting.Store(false)
		var wg sync.WaitGroup
		for _, l := range e.loops {
			wg.Add(1)
			if !l.post(func(l *loop) {
				l.closeListeners()
				wg.Done()
			}) {
				wg.Done()
			}
		}
		wg.Wait()
	})
}

// Shutdown stops accepting, then waits until every tunnel has finished or
// ctx is done, then closes what is left. It returns ctx.Err() if tunnels had
// to be cut.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.StopAccepting()
	var err error
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for e.active.Load() > 0 && err == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-tick.C:
		}
	}
	e.Close()
	return err
}

// Close closes every listener and tunnel at once and stops the loops.
func (e *Engine) Close() {
	e.closeOnce.Do(func() {
		e.StopAccepting()
		for _, l := range e.loops {
			l.stop()
		}
		e.wg.Wait()
		if e.ownPool {
			e.pool.Close()
		}
	})
}
