// Package baseline is a plain goroutine-per-connection SOCKS5 proxy, the
// design fastsocks is measured against: one goroutine per client for the
// handshake and one direction of the relay, a second for the other
// direction, and io.Copy between two *net.TCPConn (which on Linux splices in
// the kernel through a pipe per direction).
//
// It serves the same protocol subset as fastsocks (no authentication,
// CONNECT, DOMAIN addresses only; REP 0x02 for a name the allow func refuses)
// so that the bench compares designs, not features. It has no idle timeout,
// no dial pool and no flow control beyond what the kernel and io.Copy give;
// it is a yardstick, not a product.
package baseline

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fastsocks/fastsocks/proto/socks5"
)

// DefaultHandshakeTimeout bounds greeting plus request when
// Server.HandshakeTimeout is zero.
const DefaultHandshakeTimeout = 10 * time.Second

// DefaultDialTimeout bounds the dial to the target when Server.DialTimeout is
// zero.
const DefaultDialTimeout = 10 * time.Second

// Server is a goroutine-per-connection SOCKS5 proxy. The zero value refuses
// every host (Allow is nil).
type Server struct {
	// Allow reports whether a target host name may be reached. If nil,
	// every request is refused with REP 0x02.
	Allow func(host string) bool
	// Dial connects to the target. If nil, a net.Dialer with DialTimeout is
	// used (it resolves names with the net package's resolver, which reads
	// /etc/hosts first).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// HandshakeTimeout bounds greeting and request. Zero means
	// DefaultHandshakeTimeout; negative means none.
	HandshakeTimeout time.Duration
	// DialTimeout bounds the dial. Zero means DefaultDialTimeout.
	DialTimeout time.Duration
}

// Serve accepts on ln and proxies each connection with s until ln is closed;
// it then returns nil. Temporary accept errors (EMFILE, ENFILE, ECONNABORTED)
// back off from 5 ms up to 1 s, as net/http's server does, and never end the
// loop. Serve does not wait for the connections it started.
func (s *Server) Serve(ln net.Listener) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if isTemporary(err) {
				if delay == 0 {
					delay = 5 * time.Millisecond
				} else if delay *= 2; delay > time.Second {
					delay = time.Second
				}
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		go s.handle(c)
	}
}

// Serve is (&Server{Allow: allow}).Serve(ln).
func Serve(ln net.Listener, allow func(host string) bool) error {
	return (&Server{Allow: allow}).Serve(ln)
}

// AllowList returns an allow func matching host names exactly, ignoring case
// and one trailing dot, against names. It is the subset of fastsocks' policy
// the bench needs (--allow localhost).
func AllowList(names ...string) func(host string) bool {
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[strings.ToLower(strings.TrimSuffix(n, "."))] = true
	}
	return func(host string) bool {
		return set[strings.ToLower(strings.TrimSuffix(host, "."))]
	}
}

func isTemporary(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM)
}

// maxHandshake is the longest greeting (2+255) or request (4+1+255+2).
const maxHandshake = 262

// readMsg reads from c into buf[:*have] until parse stops returning ErrShort.
func readMsg[T any](c net.Conn, buf []byte, have *int, parse func([]byte) (T, int, error)) (T, int, error) {
	for {
		m, n, err := parse(buf[:*have])
		if err != socks5.ErrShort {
			return m, n, err
		}
		if *have == len(buf) {
			return m, 0, errors.New("baseline: handshake message too long")
		}
		k, rerr := c.Read(buf[*have:])
		*have += k
		if rerr != nil && k == 0 {
			return m, 0, rerr
		}
	}
}

func (s *Server) handle(c net.Conn) {
	client := c.(*net.TCPConn)
	up, err := s.handshake(client)
	if err != nil {
		client.Close()
		return
	}
	relay(client, up)
}

// handshake runs greeting and request on client and returns the connected
// upstream, with any early data the client sent already written to it. On
// error the client has been answered (when the protocol has an answer) and
// the caller closes it.
func (s *Server) handshake(client *net.TCPConn) (*net.TCPConn, error) {
	hto := s.HandshakeTimeout
	if hto == 0 {
		hto = DefaultHandshakeTimeout
	}
	if hto > 0 {
		client.SetDeadline(time.Now().Add(hto))
	}
	var arr [2 * maxHandshake]byte
	buf := arr[:]
	have := 0
	g, n, err := readMsg(client, buf, &have, socks5.ParseGreeting)
	if err != nil {
		return nil, err
	}
	if !g.Offers(socks5.MethodNoAuth) {
		client.Write(socks5.AppendMethod(nil, socks5.MethodNoAcceptable))
		return nil, errors.New("baseline: client does not offer no-auth")
	}
	copy(buf, buf[n:have])
	have -= n
	if _, err := client.Write(socks5.AppendMethod(nil, socks5.MethodNoAuth)); err != nil {
		return nil, err
	}
	r, n, err := readMsg(client, buf, &have, socks5.ParseRequest)
	if err != nil {
		var pe *socks5.Error
		if errors.As(err, &pe) && !pe.NoReply {
			client.Write(socks5.AppendReply(nil, pe.Reply, netip.AddrPort{}))
		}
		return nil, err
	}
	host := string(r.Host)
	if s.Allow == nil || !s.Allow(host) {
		client.Write(socks5.AppendReply(nil, socks5.RepNotAllowed, netip.AddrPort{}))
		return nil, errors.New("baseline: host not allowed: " + host)
	}
	early := buf[n:have]
	dto := s.DialTimeout
	if dto <= 0 {
		dto = DefaultDialTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), dto)
	defer cancel()
	dial := s.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	uc, err := dial(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(int(r.Port))))
	if err != nil {
		client.Write(socks5.AppendReply(nil, dialReply(err), netip.AddrPort{}))
		return nil, err
	}
	up, ok := uc.(*net.TCPConn)
	if !ok {
		uc.Close()
		client.Write(socks5.AppendReply(nil, socks5.RepGeneralFailure, netip.AddrPort{}))
		return nil, errors.New("baseline: dialer returned a non-TCP connection")
	}
	bound, _ := netip.ParseAddrPort(up.LocalAddr().String())
	if _, err := client.Write(socks5.AppendReply(nil, socks5.RepSucceeded, bound)); err != nil {
		up.Close()
		return nil, err
	}
	if len(early) > 0 {
		if _, err := up.Write(early); err != nil {
			up.Close()
			return nil, err
		}
	}
	client.SetDeadline(time.Time{})
	return up, nil
}

// dialReply maps a dial error to the REP RFC 1928 §6 has for it.
func dialReply(err error) socks5.ReplyCode {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return socks5.RepConnectionRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return socks5.RepNetworkUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH), errors.As(err, &dnsErr):
		return socks5.RepHostUnreachable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT):
		return socks5.RepTTLExpired
	}
	return socks5.RepGeneralFailure
}

// relay copies both ways, one goroutine per direction. EOF on one side is
// passed on as a half-close; an error on either side closes both, so the
// other direction ends too.
func relay(client, up *net.TCPConn) {
	var once sync.Once
	abort := func() {
		once.Do(func() {
			// A reset is passed on as a reset: SO_LINGER 0 then close.
			client.SetLinger(0)
			up.SetLinger(0)
			client.Close()
			up.Close()
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := io.Copy(up, client); err != nil {
			abort()
			return
		}
		up.CloseWrite()
	}()
	if _, err := io.Copy(client, up); err != nil {
		abort()
	} else {
		client.CloseWrite()
	}
	<-done
	client.Close()
	up.Close()
}
