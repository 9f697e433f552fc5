package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lnSpec is one configured listener: its settings (swapped whole on
// reload, read at each request) and the sockets serving it, one per loop
// for TCP (SO_REUSEPORT) and one for a unix socket.
type lnSpec struct {
	conf  atomic.Pointer[Listener]
	name  string   // the configured address, for logs
	addr  net.Addr // the bound address (TCP port 0 resolved)
	socks []*listener

	// A unix socket's path and the identity of the file fastsocks made,
	// so only that file is removed at close.
	path     string
	dev, ino uint64
}

// bindSpec opens the sockets for l. On error nothing is left open.
func (e *Engine) bindSpec(l Listener, unixIndex int) (*lnSpec, error) {
	s := &lnSpec{name: l.Address}
	cl := l
	s.conf.Store(&cl)
	if fd, ok := l.inherited(); ok {
		// A listening socket handed over by the service manager
		// (systemd socket activation): used as it is, never unlinked.
		addr, err := adoptListener(fd)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", l.Address, err)
		}
		s.addr = addr
		owner := e.loops[unixIndex%len(e.loops)]
		s.socks = []*listener{{fd: fd, spec: s, loop: owner}}
		return s, nil
	}
	if l.isUnix() {
		fd, err := e.listenUnix(s, l)
		if err != nil {
			return nil, err
		}
		// Unix listeners are spread over the loops; each accepts for itself.
		owner := e.loops[unixIndex%len(e.loops)]
		s.socks = []*listener{{fd: fd, spec: s, loop: owner}}
		return s, nil
	}
	ap, err := resolveListen(l.Address)
	if err != nil {
		return nil, err
	}
	loops := e.loops
	if e.cfg.handoff {
		loops = loops[:1]
	}
	for _, lp := range loops {
		fd, bound, err := listenTCP(ap)
		if err != nil {
			s.closeSockets()
			return nil, fmt.Errorf("listen on %s: %w", l.Address, err)
		}
		if ap.Port() == 0 {
			ap = bound
		}
		s.socks = append(s.socks, &listener{fd: fd, spec: s, loop: lp})
	}
	s.addr = net.TCPAddrFromAddrPort(ap)
	return s, nil
}

// closeSockets closes sockets that were never given to a loop.
func (s *lnSpec) closeSockets() {
	for _, ln := range s.socks {
		if ln.fd >= 0 {
			unix.Close(ln.fd)
			ln.fd = -1
		}
	}
	s.removeSocketFile()
}

// removeSocketFile unlinks a unix socket's path if it is still the file
// this listener created.
func (s *lnSpec) removeSocketFile() {
	if s.path == "" {
		return
	}
	var st unix.Stat_t
	if unix.Lstat(s.path, &st) == nil && st.Dev == s.dev && st.Ino == s.ino {
		os.Remove(s.path)
	}
	s.path = ""
}

// listenUnix makes a listening unix socket at l's path with l's mode.
// A stale socket file (nobody accepting) is replaced; a live one, or a
// file that is not a socket, is an error. The socket is bound under a
// temporary name, given its mode, and renamed into place, so the path
// never exists with a wider mode than asked for.
func (e *Engine) listenUnix(s *lnSpec, l Listener) (int, error) {
	path := filepath.Clean(l.unixPath())
	mode := l.Mode
	if mode == 0 {
		mode = 0o600
	}
	if len(path) > 107 {
		return -1, fmt.Errorf("listen on %s: path longer than the 107 bytes a unix socket address holds", l.Address)
	}
	if err := clearStaleSocket(path); err != nil {
		return -1, fmt.Errorf("listen on %s: %w", l.Address, err)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp-"+hex.EncodeToString(rnd[:]))
	if len(tmp) > 107 {
		tmp = path // no room for a temporary name: bind in place
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(fd)
		os.Remove(tmp)
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return -1, fmt.Errorf("listen on %s: %s: %w (is %s writable by this user?)", l.Address, what, err, filepath.Dir(path))
		}
		if errors.Is(err, unix.ENOENT) {
			return -1, fmt.Errorf("listen on %s: %s: %w (does %s exist?)", l.Address, what, err, filepath.Dir(path))
		}
		return -1, fmt.Errorf("listen on %s: %s: %w", l.Address, what, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: tmp}); err != nil {
		return fail("bind", err)
	}
	if err := os.Chmod(tmp, mode.Perm()); err != nil {
		return fail("chmod", err)
	}
	if err := unix.Listen(fd, 4096); err != nil {
		return fail("listen", os.NewSyscallError("listen", err))
	}
	if tmp != path {
		if err := os.Rename(tmp, path); err != nil {
			return fail("rename into place", err)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fail("stat", err)
	}
	s.path, s.dev, s.ino = path, st.Dev, st.Ino
	s.addr = &net.UnixAddr{Net: "unix", Name: path}
	return fd, nil
}

// adoptListener checks that fd is a listening stream socket, makes it
// non-blocking and close-on-exec, and returns its address.
func adoptListener(fd int) (net.Addr, error) {
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
		return nil, fmt.Errorf("descriptor %d is not a listening socket (SO_ACCEPTCONN %d, %v)", fd, v, err)
	}
	if v, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); v != unix.SOCK_STREAM {
		return nil, fmt.Errorf("descriptor %d is not a stream socket", fd)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, os.NewSyscallError("fcntl(O_NONBLOCK)", err)
	}
	unix.CloseOnExec(fd)
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return nil, os.NewSyscallError("getsockname", err)
	}
	if su, ok := sa.(*syscall.SockaddrUnix); ok {
		return &net.UnixAddr{Net: "unix", Name: su.Name}, nil
	}
	return net.TCPAddrFromAddrPort(addrPortOf(sa)), nil
}

// clearStaleSocket removes path if it is a unix socket nobody accepts on.
func clearStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket; not replacing it", path)
	}
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(context.Background(), "unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s is in use: another process accepts on it", path)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		// Left behind by a process that exited without removing it.
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing stale socket %s: %w", path, err)
		}
		return nil
	}
	return fmt.Errorf("%s exists and cannot be checked: %w", path, err)
}

// resolveListen turns a listen address into an IP and port. Host names are
// resolved from /etc/hosts or DNS once (e.g. "localhost:1080").
func resolveListen(addr string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen address %q: %w (want HOST:PORT, e.g. 127.0.0.1:1080, or unix:/path)", addr, err)
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
	sa, err := syscall.Getsockname(fd)
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

// addrPortOf converts a socket address from the standard library's
// syscall package. accept4 and getsockname go through it rather than
// x/sys/unix, whose conversion of an AF_INET address asks the kernel for
// the socket's protocol first: one extra getsockopt per call, twice per
// tunnel.
func addrPortOf(sa syscall.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *syscall.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
	}
	return netip.AddrPort{}
}
