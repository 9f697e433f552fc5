package engine

import (
	"errors"
	"net/netip"
	"os"
	"syscall"

	"github.com/panjf2000/gnet/v2/pkg/netpoll"
	"golang.org/x/sys/unix"

	"github.com/fastsocks/fastsocks/dial"
	"github.com/fastsocks/fastsocks/proto/socks5"
)

// Direct dials are connected by the loop itself: a dial-pool worker only
// resolves the name (a lookup may block; a non-blocking connect does not),
// then the loop opens non-blocking sockets and waits for them like any
// other descriptor. Dials through an upstream proxy stay whole in the pool:
// their CONNECT exchange is a blocking conversation.

var (
	errNoAddress   = errors.New("no address to connect to")
	errDialTimeout = errors.New("no connection within the dial timeout")
)

// attemptDelay is how long one connection attempt runs alone before the
// next address is tried alongside it (happy eyeballs, RFC 8305 section 5
// recommends 250 ms).
const attemptDelay = 250e6 // ns

// maxAttempts bounds the attempts in flight at once for one tunnel.
const maxAttempts = 2

// dialState is a tunnel's direct dial in progress; it exists only while
// the tunnel is dialing.
type dialState struct {
	blocked string // the last address the guard refused, and why
	addrs   []netip.Addr
	next    int              // index of the next address to try
	fds     [maxAttempts]int // in-flight attempts, -1 when free
	lastErr error
	nextAt  uint32 // tick at which another address may start alongside
}

func (d *dialState) inflight() int {
	n := 0
	for _, fd := range d.fds {
		if fd >= 0 {
			n++
		}
	}
	return n
}

// startDirect begins a direct dial of host:port: at once for an IP
// literal or a name in /etc/hosts, else after a lookup in the pool.
func (l *loop) startDirect(t *tunnel, host string, port uint16) {
	if ip, err := netip.ParseAddr(host); err == nil && ip.Zone() == "" {
		l.connectAddrs(t, []netip.Addr{ip.Unmap()})
		return
	}
	if addrs := l.e.pool.LookupStatic(host); addrs != nil {
		l.connectAddrs(t, addrs)
		return
	}
	job, err := l.e.pool.Resolve(host, func(addrs []netip.Addr, err error) {
		l.post(func(l *loop) { l.onResolved(t, addrs, err) })
	})
	if err != nil {
		l.dialFailed(t, err)
		return
	}
	t.job = job
}

func (l *loop) onResolved(t *tunnel, addrs []netip.Addr, err error) {
	if t.state != stateDialing || t.dl != nil {
		return // closed, or timed out, while resolving
	}
	t.job = nil
	if err != nil {
		l.dialFailed(t, err)
		return
	}
	l.connectAddrs(t, addrs)
}

func (l *loop) connectAddrs(t *tunnel, addrs []netip.Addr) {
	t.dl = &dialState{addrs: addrs, fds: [maxAttempts]int{-1, -1}}
	l.attempt(t)
}

// attempt starts connecting to the next address. Addresses that fail at
// once are skipped; when none is left and nothing is in flight, the dial
// has failed.
func (l *loop) attempt(t *tunnel) {
	d := t.dl
	for d.next < len(d.addrs) {
		ap := netip.AddrPortFrom(d.addrs[d.next], t.port)
		d.next++
		if why := t.tenant.guard.Check(ap.Addr()); why != "" {
			// The address actually dialed is what is checked: a name
			// that resolves to a guarded range cannot slip through.
			d.blocked = ap.Addr().String() + " is " + why
			continue
		}
		fd, err := l.connectOne(t, ap)
		if err != nil {
			d.lastErr = err
			continue
		}
		for i := range d.fds {
			if d.fds[i] < 0 {
				d.fds[i] = fd
				break
			}
		}
		d.nextAt = l.tick + l.e.attemptTicks
		l.armDialing(t)
		return
	}
	if d.inflight() == 0 {
		l.directFailed(t)
	}
}

// connectOne opens a non-blocking socket, starts connecting it to ap and
// watches it. The connect finishes (or fails) as a write event.
func (l *loop) connectOne(t *tunnel, ap netip.AddrPort) (int, error) {
	family := unix.AF_INET
	if ap.Addr().Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err := unix.Connect(fd, sockaddr(ap)); err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return -1, os.NewSyscallError("connect", err)
	}
	l.setEntry(fd, fdEntry{att: t})
	l.pa.FD = fd
	if err := l.poller.AddReadWrite(&l.pa, true); err != nil {
		l.clearEntry(fd)
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// onAttempt handles an event on a connecting socket.
func (l *loop) onAttempt(t *tunnel, fd int, ev netpoll.IOEvent) {
	d := t.dl
	if t.state != stateDialing || d == nil {
		return
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
		return // not done yet
	}
	// Writable with no error or hang-up: connected, without asking. An
	// error or hang-up: SO_ERROR says which.
	var errno int
	var err error
	if ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		if errno, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && errno == 0 {
			errno = int(unix.ECONNRESET) // hung up before it was used
		}
	}
	for i := range d.fds {
		if d.fds[i] == fd {
			d.fds[i] = -1
		}
	}
	if err != nil || errno != 0 {
		l.clearEntry(fd)
		unix.Close(fd)
		if err == nil {
			err = os.NewSyscallError("connect", unix.Errno(errno))
		}
		d.lastErr = err
		l.attempt(t) // the next address, or the end
		return
	}
	// Connected: the other attempt, if any, loses.
	for i, other := range d.fds {
		if other >= 0 {
			l.clearEntry(other)
			unix.Close(other)
			d.fds[i] = -1
		}
	}
	t.dl = nil
	c := dial.Conn{FD: fd}
	if t.fe == feSOCKS5 {
		if sa, err := syscall.Getsockname(fd); err == nil {
			c.Local = addrPortOf(sa)
		}
	}
	l.setEntry(fd, fdEntry{s: &t.u})
	t.u.fd = fd
	t.u.readable = ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP) != 0
	l.spliceStart(t, c)
}

// closeAttempts closes every in-flight attempt of t.
func (l *loop) closeAttempts(t *tunnel) {
	if t.dl == nil {
		return
	}
	for i, fd := range t.dl.fds {
		if fd >= 0 {
			l.clearEntry(fd)
			unix.Close(fd)
			t.dl.fds[i] = -1
		}
	}
	t.dl = nil
}

func (l *loop) directFailed(t *tunnel) {
	err := t.dl.lastErr
	if err == nil && t.dl.blocked != "" {
		blocked := t.dl.blocked
		l.closeAttempts(t)
		l.logRequest(t, VerdictDeny, "blocked-destination", "detail", blocked)
		l.refuse(t, socks5.RepNotAllowed, 403, "blocked-destination",
			"fastsocks: "+t.host+" resolves to a destination this proxy does not reach ("+blocked+")")
		return
	}
	l.closeAttempts(t)
	if err == nil {
		err = errNoAddress
	}
	l.dialFailed(t, &dial.Error{Kind: dial.Classify(err), Host: t.host, Port: t.port, Err: err})
}

// armDialing puts a dialing tunnel in the wheel at the earlier of its dial
// deadline and, while addresses remain, the time the next may start.
func (l *loop) armDialing(t *tunnel) {
	due := t.since + l.e.dialTicks
	if d := t.dl; d != nil && d.next < len(d.addrs) && d.inflight() < maxAttempts && int32(d.nextAt-due) < 0 {
		due = d.nextAt
	}
	l.wheel.add(t, l.tick, due)
}
