package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastsocks/fastsocks/proto/socks5"
)

// targetHost is the only name the bench asks a proxy to reach; proxies
// resolve it from /etc/hosts, so no DNS query leaves the machine.
const targetHost = "localhost"

// client opens tunnels: through a SOCKS5 proxy (greeting, then CONNECT
// localhost:port, in lock-step as curl and x/net/proxy do) or straight to the
// target for the direct-loopback runs. Source addresses rotate over
// 127.0.0.2..127.0.0.(1+n), with IP_BIND_ADDRESS_NO_PORT so the port is
// picked at connect time, per destination, and ephemeral ports do not run
// out.
type client struct {
	sources []netip.Addr
	direct  netip.Addr // what "localhost" resolves to, for direct runs
	next    atomic.Uint64
	timeout time.Duration

	errMu  sync.Mutex
	errs   map[string]int64
	nerrs  atomic.Int64
	sample []string
}

// newClient checks that each source address can be bound and resolves
// "localhost" (from /etc/hosts) once for the direct runs.
func newClient(sources int) (*client, error) {
	cl := &client{timeout: 10 * time.Second, errs: map[string]int64{}}
	addrs, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip4", targetHost)
	if err != nil || len(addrs) == 0 {
		return nil, fmt.Errorf("resolving %q (from /etc/hosts): %v", targetHost, err)
	}
	cl.direct = addrs[0].Unmap()
	if !cl.direct.IsLoopback() {
		return nil, fmt.Errorf("%q resolves to %v, not a loopback address; the bench only measures loopback", targetHost, cl.direct)
	}
	if sources < 1 {
		sources = 1
	}
	for i := 0; i < sources && i < 250; i++ {
		a := netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)})
		ln, err := net.Listen("tcp", netip.AddrPortFrom(a, 0).String())
		if err != nil {
			if i == 0 {
				// No 127/8 beyond 127.0.0.1 (some sandboxes): use it alone.
				cl.sources = []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1})}
				return cl, nil
			}
			break
		}
		ln.Close()
		cl.sources = append(cl.sources, a)
	}
	return cl, nil
}

func bindNoPort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// dial connects to addr from the next source address.
func (cl *client) dial(addr netip.AddrPort) (*net.TCPConn, error) {
	src := cl.sources[int(cl.next.Add(1)%uint64(len(cl.sources)))]
	d := net.Dialer{
		LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)),
		Timeout:   cl.timeout,
		Control:   bindNoPort,
	}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// open returns a connection to localhost:port: through the SOCKS5 proxy at
// proxy, or straight to it when proxy is invalid (direct). setup is the time
// from the start of the dial to the proxy's success reply (to the end of the
// TCP handshake for direct).
func (cl *client) open(proxy netip.AddrPort, port uint16) (c *net.TCPConn, setup time.Duration, err error) {
	t0 := time.Now()
	if !proxy.IsValid() {
		c, err = cl.dial(netip.AddrPortFrom(cl.direct, port))
		if err != nil {
			return nil, 0, &stepError{"connect", err}
		}
		return c, time.Since(t0), nil
	}
	c, err = cl.dial(proxy)
	if err != nil {
		return nil, 0, &stepError{"connect", err}
	}
	if err := cl.handshake(c, port); err != nil {
		c.SetLinger(0)
		c.Close()
		return nil, 0, err
	}
	return c, time.Since(t0), nil
}

// stepError names the step of a tunnel's life that failed, so error counts
// group by cause.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func (cl *client) handshake(c *net.TCPConn, port uint16) error {
	c.SetDeadline(time.Now().Add(cl.timeout))
	var arr [512]byte
	b := socks5.AppendGreeting(arr[:0], socks5.MethodNoAuth)
	if _, err := c.Write(b); err != nil {
		return &stepError{"greeting", err}
	}
	if _, err := io.ReadFull(c, arr[:2]); err != nil {
		return &stepError{"method selection", err}
	}
	if arr[0] != socks5.Version || arr[1] != byte(socks5.MethodNoAuth) {
		return &stepError{"method selection", fmt.Errorf("got % x, want 05 00", arr[:2])}
	}
	b = socks5.AppendRequest(arr[:0], socks5.CmdConnect, targetHost, port)
	if _, err := c.Write(b); err != nil {
		return &stepError{"request", err}
	}
	have := 0
	for {
		rep, _, _, err := socks5.ParseReply(arr[:have])
		if err == nil {
			if rep != socks5.RepSucceeded {
				return &stepError{"reply", fmt.Errorf("REP %#02x (%v)", byte(rep), rep)}
			}
			// Bytes after the reply are the target's (duplex targets
			// write at once); they are dropped, as no scenario depends
			// on the first few. Echo targets send nothing unasked.
			break
		}
		if err != socks5.ErrShort {
			return &stepError{"reply", err}
		}
		k, rerr := c.Read(arr[have:])
		have += k
		if rerr != nil && k == 0 {
			return &stepError{"reply", rerr}
		}
	}
	c.SetDeadline(time.Time{})
	return nil
}

// fail counts err under its kind and keeps a few samples for the report.
func (cl *client) fail(err error) {
	cl.nerrs.Add(1)
	key := errKind(err)
	cl.errMu.Lock()
	cl.errs[key]++
	if cl.errs[key] == 1 && len(cl.sample) < 8 {
		cl.sample = append(cl.sample, err.Error())
	}
	cl.errMu.Unlock()
}

// errKind groups errors by step and errno, so a report says "connect:
// EADDRNOTAVAIL x 1200" rather than 1200 lines.
func errKind(err error) string {
	step := "io"
	var se *stepError
	if errors.As(err, &se) {
		step = se.step
	}
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return step + ": " + unix.ErrnoName(errno)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return step + ": EOF"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT), isTimeout(err):
		return step + ": timeout"
	}
	if se != nil {
		return step + ": " + se.err.Error()
	}
	return step + ": " + err.Error()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// takeErrors returns and resets the error counts, most frequent first.
func (cl *client) takeErrors() (total int64, kinds []string, samples []string) {
	cl.errMu.Lock()
	defer cl.errMu.Unlock()
	total = cl.nerrs.Swap(0)
	type kv struct {
		k string
		n int64
	}
	var all []kv
	for k, n := range cl.errs {
		all = append(all, kv{k, n})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n })
	for _, e := range all {
		kinds = append(kinds, e.k+" x"+strconv.FormatInt(e.n, 10))
	}
	samples = cl.sample
	cl.errs, cl.sample = map[string]int64{}, nil
	return total, kinds, samples
}
